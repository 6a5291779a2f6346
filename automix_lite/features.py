"""Mix features, their running means and percentage errors, and Fréchet distances between sets of mixes
(chapter 4.1, taught in ``notebooks/15_objective_evaluation.ipynb``; ``automix evaluate``).

The feature set is the one of the evaluation notebook of the automix-toolkit tutorial (Steinmetz, Vanka,
Martínez-Ramírez et al., ``automix/evaluation/utils_evaluation.py``; the same functions are in Sony's
FxNorm-automix, ``automix/utils_data_normalization.py``), computed on a stereo mix ``(2, T)`` or
``(1, 2, T)``:

- **spectral** (each channel on its own; STFT of 4096 samples every 1024): ``centroid``, ``bandwidth``,
  ``rolloff`` (Hz), ``contrast_lows`` (0-250 Hz), ``contrast_mids`` (250-2000 Hz), ``contrast_highs``
  (2000 Hz-Nyquist) (librosa's contrast, dB) and ``flatness`` (ratio 0..1);
- **panning** (the stereo panning spectrum; STFT of 4096 every 1024): ``panning_rms_total``, ``_lows``
  (0-250 Hz), ``_mids`` (250-2500 Hz), ``_highs`` (2500 Hz-Nyquist), 0 (centre) .. 1 (hard-panned);
- **dynamics** (frames of 4096 samples every 1024): ``rms_level`` (dBFS), ``dynamic_spread`` (dB),
  ``crest_factor`` (dB);
- **loudness** (400 ms blocks): ``lufs`` (LUFS), ``peak`` (dBFS).

Frame lengths are the toolkit's at 44.1 kHz (4096 samples = 92.9 ms, hop 23.2 ms).

Every feature is a series over frames; its **running mean** over the past ``N`` frames (40; 80 blocks of
100 ms for loudness by default) is compared between an output mix and a reference mix by the **mean
absolute percentage error** (MAPE, in percent), and the features' MAPEs are averaged per group.

Normalisation. Before the spectral, panning and dynamics features each mix is **peak-normalised** to
-1 dBFS (one gain for both channels, as the toolkit does with ``pyloudnorm.normalize.peak``), so a pure
gain change moves only the loudness group. The loudness features see the mix as it is.

Two definition sets (``compat``):

- ``compat=False`` (default): physically meaningful definitions. Crest factor = peak level minus RMS
  level in dB (a sine reads 3.01 dB); the percentage error is that of the feature itself,
  ``|out - ref| / max(|ref|, floor)`` with a floor per feature (:data:`FEATURES`) that guards values near 0
  (e.g. the panning RMS of a mono mix is 0; its floor is 0.05); frames where a mix is silent (RMS below
  :data:`SILENCE_DB` after peak normalisation; loudness blocks below BS.1770's -70 LUFS gate) have no
  spectrum, panning or level and are left out (NaN) of the running means and errors; the panning RMS
  weights each frequency bin by its energy; loudness is BS.1770 momentary loudness of 400 ms blocks every
  100 ms, measured with one continuous K-weighting filter (pyloudnorm), and the summary value is the
  integrated loudness of the whole mix; frame lengths scale with the sample rate.
- ``compat=True``: the toolkit's definitions, as its code shows them, quirks included (each listed in
  :func:`differences`, with its source line): crest factor as a *ratio of two dB values*, RMS level and
  dynamic spread flipped to ``-x + 1`` before the error, eps = 1 Hz added to centroid, bandwidth and
  roll-off, sqrt-Hann windows and a complex64 STFT, per-frame loudness with a filter restarted in every
  frame, frames of fixed sample counts whatever the rate, valid-only running means (the mix must hold
  40 frames of every group: 8.2 s at 44.1 kHz), reference frames with zero panning RMS deleted, and
  scikit-learn's MAPE (reported here in percent: the toolkit's fraction x 100). Not reproduced: the
  toolkit first trims leading and trailing silence of the reference with SoX's ``silence`` effect and cuts
  the output by as many samples; pass trimmed mixes for that.

Distribution-level scores: :func:`embed_mixes` turns mixes into embeddings (offline: log-mel statistics
or the bundled DMC's track encoder, *not* VGGish) and :func:`frechet_distance` measures the Fréchet
distance of Gaussians fitted to two sets of them (Table 12-13 of Steinmetz 2020 report it on VGGish
embeddings; those numbers are not comparable with these).

Public functions: :func:`check_mix`, :func:`feature_series`, :func:`running_mean`, :func:`mix_features`,
:func:`feature_mape`, :func:`feature_table`, :func:`differences`, :func:`differences_table`,
:func:`embed_mixes`, :func:`frechet_distance`.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Optional

import numpy as np

__all__ = ["GROUPS", "FEATURES", "SILENCE_DB", "PEAK_TARGET_DB", "check_mix", "feature_series", "running_mean",
           "mix_features", "feature_mape", "feature_table", "differences", "differences_table", "embed_mixes",
           "frechet_distance"]

GROUPS = {
    "spectral": ("centroid", "bandwidth", "contrast_lows", "contrast_mids", "contrast_highs", "rolloff", "flatness"),
    "panning": ("panning_rms_total", "panning_rms_lows", "panning_rms_mids", "panning_rms_highs"),
    "dynamics": ("rms_level", "dynamic_spread", "crest_factor"),
    "loudness": ("lufs", "peak"),
}
"""The four groups and their features (in the toolkit's order; its keys ``lufs_loudness`` and
``peak_loudness`` are ``lufs`` and ``peak`` here)."""

FEATURES = {
    # name: (unit, floor of the default error's denominator in that unit)
    "centroid": ("Hz", 1.0), "bandwidth": ("Hz", 1.0), "contrast_lows": ("dB", 1.0),
    "contrast_mids": ("dB", 1.0), "contrast_highs": ("dB", 1.0), "rolloff": ("Hz", 1.0),
    "flatness": ("ratio", 1e-6),
    "panning_rms_total": ("0..1", 0.05), "panning_rms_lows": ("0..1", 0.05), "panning_rms_mids": ("0..1", 0.05),
    "panning_rms_highs": ("0..1", 0.05),
    "rms_level": ("dBFS", 1.0), "dynamic_spread": ("dB", 0.1), "crest_factor": ("dB", 0.1),
    "lufs": ("LUFS", 1.0), "peak": ("dBFS", 1.0),
}
"""``name -> (unit, floor)``. The default percentage error of a running-mean value is
``100 |out - ref| / max(|ref|, floor)``: the floor (in the feature's unit) keeps a reference near 0 (a
mono mix's panning RMS, a square wave's crest factor, a peak at 0 dBFS) from dividing by ~0. In compat
mode the feature's unit is the same but crest factor is a ratio (no unit) and the guard is scikit-learn's
(float64 machine epsilon)."""

SILENCE_DB = -90.0
"""Default mode: a frame whose RMS (per channel for the spectral features, both channels for panning and
dynamics) is below this level after peak normalisation to -1 dBFS is silent; its features are NaN."""

PEAK_TARGET_DB = -1.0
"""The peak (dBFS) that the spectral, panning and dynamics features normalise each mix to (both modes)."""

SPREAD_CLAMP_DB = -60.0
"""Default dynamic spread: a sample's level relative to its frame's RMS level counts at least this much (an
exact zero would count as -inf; in the toolkit as about -600 dB)."""

_RUNNING = {"default": {"stft": 40, "loudness": 80}, "compat": {"stft": 40, "loudness": 40}}
_BANDS = {"panning_rms_total": (0.0, None), "panning_rms_lows": (0.0, 250.0),
          "panning_rms_mids": (250.0, 2500.0), "panning_rms_highs": (2500.0, None)}
_SK_EPS = np.finfo(np.float64).eps  # sklearn.metrics.mean_absolute_percentage_error's guard
_SILENT_PEAK = 1e-6  # -120 dBFS


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def check_mix(audio, name: str = "mix") -> np.ndarray:
    """``audio`` (a stereo mix ``(2, T)`` or ``(1, 2, T)``, torch tensor or NumPy array) as float64 ``(2, T)``.

    One ``ValueError`` each for: not stereo (mono ``(T,)``, ``(1, T)``, ``(1, 1, T)``; more channels; a
    batch), NaN or infinite samples, silence (sample peak below -120 dBFS: no feature is defined) and fewer
    than one sample. Taught in ``notebooks/15_objective_evaluation.ipynb``.
    """
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().double().numpy()
    a = np.asarray(audio)
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric samples; got dtype {a.dtype}.")
    a = a.astype(np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1):
        raise ValueError(f"{name} is mono (shape {a.shape}); the mix features need a stereo mix (2, samples). "
                         "Duplicate the channel (np.stack([x, x])) if it really is a mono mix.")
    if a.ndim != 2 or a.shape[0] != 2:
        raise ValueError(f"{name} must be a stereo mix shaped (2, samples) or (1, 2, samples); got shape {a.shape}.")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no samples.")
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains {int((~np.isfinite(a)).sum())} NaN or infinite sample(s) (the first in "
                         f"channel {bad[0]} at sample {bad[1]}); its features are undefined.")
    peak = float(np.abs(a).max())
    if peak < _SILENT_PEAK:
        raise ValueError(f"{name} is silent (peak {20 * math.log10(peak) if peak > 0 else -math.inf:.1f} dBFS, below "
                         "-120 dBFS): it has no spectrum, panning or loudness to compare.")
    return a


def _rate(sample_rate) -> float:
    from ._checks import check_sample_rate

    return check_sample_rate(sample_rate)


def _sizes(sr: float, compat: bool) -> dict:
    """Frame and hop lengths (samples): the toolkit's at 44.1 kHz; scaled with the rate unless ``compat``."""
    if compat:
        return {"n_fft": 4096, "hop": 1024, "lframe": 17640, "lhop": 8820}
    k = sr / 44100.0
    return {"n_fft": 2 * max(1, round(2048 * k)), "hop": max(1, round(1024 * k)), "lframe": None, "lhop": None}


def _min_samples(sr: float, compat: bool, running: bool = False) -> int:
    """Samples needed for one frame of every group or (``running``, compat) for the toolkit's 40 frames."""
    s = _sizes(sr, compat)
    if compat:
        n = _RUNNING["compat"]["stft"] if running else 1
        return max((n - 1) * s["hop"] + s["n_fft"], (n - 1) * s["lhop"] + s["lframe"])
    return max(s["n_fft"], math.ceil(0.4 * sr))


def _peak_normalise(x: np.ndarray) -> np.ndarray:
    return x * (10 ** (PEAK_TARGET_DB / 20) / np.abs(x).max())


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """``(..., T)`` -> ``(..., frames, n)``: whole frames only (no padding), as ``librosa.util.frame``."""
    count = 1 + (x.shape[-1] - n) // hop
    return np.lib.stride_tricks.sliding_window_view(x, n, axis=-1)[..., ::hop, :][..., :count, :]


def _db(power_or_amp, amplitude: bool = True):
    with np.errstate(divide="ignore"):
        return (20.0 if amplitude else 10.0) * np.log10(power_or_amp)


# --------------------------------------------------------------------------------------------
# Frame series
# --------------------------------------------------------------------------------------------


def _stft(x: np.ndarray, n: int, hop: int, compat: bool) -> np.ndarray:
    """Complex STFT ``(2, bins, frames)``, ``center=False``: Hann window, or (compat) the toolkit's
    sqrt-Hann and complex64 storage."""
    import librosa

    window = np.sqrt(np.hanning(n + 1)[:-1]) if compat else "hann"
    spec = np.stack([librosa.stft(ch, n_fft=n, hop_length=hop, window=window, center=False) for ch in x])
    return spec.astype(np.complex64) if compat else spec


def _spectral(sr: float, spec: np.ndarray, compat: bool, silent: Optional[np.ndarray], n: int,
              hop: int) -> dict:
    import librosa

    mag = np.abs(spec)  # (2, bins, frames)
    out = {}
    cen = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=n, hop_length=hop)[:, 0]
    bw = librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=n, hop_length=hop, centroid=cen[:, None], norm=True,
                                            p=2)[:, 0]
    ct = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n, hop_length=hop, fmin=250.0, n_bands=4,
                                           quantile=0.02, linear=False)  # (2, 5, frames)
    ro = librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=n, hop_length=hop, roll_percent=0.85)[:, 0]
    ft = librosa.feature.spectral_flatness(S=mag, n_fft=n, hop_length=hop, amin=1e-10, power=2.0)[:, 0]
    eps = 1.0 if compat else 0.0  # the toolkit adds eps = 1e-0 to centroid, bandwidth and roll-off
    out["centroid"], out["bandwidth"], out["rolloff"] = cen + eps, bw + eps, ro + eps
    out["contrast_lows"], out["contrast_highs"] = ct[:, 0], ct[:, -1]
    out["contrast_bands_mids"] = ct[:, 1:4]  # the toolkit averages the three bands' running means
    out["flatness"] = ft
    if silent is not None:  # (2, frames): a silent channel frame has no spectrum
        for key, v in out.items():
            out[key] = np.where(silent[:, None, :] if v.ndim == 3 else silent, np.nan, v)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _sps(spec: np.ndarray, compat: bool):
    """Stereo panning spectrum (Tzanetakis, Jones & McNally 2007) ``(bins, frames)`` and the bins' energy.

    ``psi = 2 |L| |R| / (|L|^2 + |R|^2)`` (1 where L = R: centred; 0 where one side is 0: hard-panned) and
    ``SPS = (1 - psi) sign(|R| - |L|)``: 0 in the centre, -1 hard left, +1 hard right (the sign of the
    toolkit's ``psi_L - psi_R = |R|/|L| - |L|/|R|``). Bins without energy are centred (0).
    """
    if compat:
        left, right = np.abs(spec[0] + 1e-20), np.abs(spec[1] + 1e-20)  # as the toolkit: eps before abs
        phi = 2 * np.abs(left * np.conj(right)) / (left ** 2 + right ** 2)
        delta = np.abs(left * np.conj(right)) / left ** 2 - np.abs(right * np.conj(left)) / right ** 2
        return (1 - phi) * np.sign(delta), None
    left, right = np.abs(spec[0]), np.abs(spec[1])
    energy = left ** 2 + right ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(energy > 0, 2 * left * right / energy, 1.0)
    return (1 - phi) * np.sign(right - left), energy


def _panning(spec: np.ndarray, sr: float, n: int, compat: bool, silent: Optional[np.ndarray]) -> dict:
    sps, energy = _sps(spec, compat)
    out = {}
    for key, (lo, hi) in _BANDS.items():
        hi = sr // 2 if hi is None else hi
        f1, f2 = int(np.floor(lo * n / sr)), int(np.floor(hi * n / sr))  # the toolkit's bins [f1, f2)
        s = sps[f1:f2]
        if compat:
            out[key] = np.sqrt(np.sum(s ** 2, axis=0) / (f2 - f1))
        else:
            w = energy[f1:f2]
            total = w.sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.sqrt(np.sum(w * s ** 2, axis=0) / total)
            v[(total <= 0) | silent] = np.nan
            out[key] = v
    return out


def _dynamics(x: np.ndarray, n: int, hop: int, compat: bool, silent: Optional[np.ndarray]) -> dict:
    fr = _frames(x, n, hop)  # (2, frames, n)
    if compat:  # per channel, then the mean over the channels (toolkit: get_rms_dynamic_crest)
        rms = _db(np.sqrt(np.sum(fr ** 2, -1) / n) + 1e-30)
        spread = np.sum(_db(np.abs(fr) + 1e-30) - rms[..., None], -1) / n
        crest = _db(np.max(np.abs(fr), -1) + 1e-30) / rms
        return {"rms_level": rms.mean(0), "dynamic_spread": spread.mean(0), "crest_factor": crest.mean(0)}
    ms = np.mean(fr ** 2, axis=(0, 2))  # both channels together
    rms = _db(np.maximum(ms, 1e-24), amplitude=False)
    peak = _db(np.maximum(np.abs(fr).max(axis=(0, 2)), 1e-12))
    level = _db(np.maximum(np.abs(fr), 1e-30))  # (2, frames, n)
    spread = np.maximum(level - rms[None, :, None], SPREAD_CLAMP_DB).mean(axis=(0, 2))
    crest = peak - rms
    out = {"rms_level": rms, "dynamic_spread": spread, "crest_factor": crest}
    for v in out.values():
        v[silent] = np.nan
    return out


def _loudness(x: np.ndarray, sr: float, compat: bool) -> tuple:
    """``({"lufs": series, "peak": series}, integrated LUFS, sample peak dBFS)``."""
    import pyloudnorm

    if compat:  # toolkit: get_lufs_peak_frames, a new meter for every 400 ms frame, hop 200 ms
        s = _sizes(sr, True)
        if s["lframe"] < 0.4 * sr:
            raise ValueError(f"compat loudness: the toolkit's frames of {s['lframe']} samples are shorter than a "
                             f"400 ms BS.1770 block at {sr:g} Hz (pyloudnorm refuses them); compat needs a rate of "
                             "at most 44100 Hz. Use the default mode or resample.")
        fr = _frames(x, s["lframe"], s["lhop"])  # (2, frames, n)
        peaks, lufs = [], []
        with warnings.catch_warnings(), np.errstate(divide="ignore"):
            warnings.simplefilter("ignore")
            for k in range(fr.shape[1]):
                frame = fr[:, k, :]
                peaks.append(20.0 * np.log10(np.max(np.abs(frame))))
                lufs.append(pyloudnorm.Meter(int(sr)).integrated_loudness(frame.T))
        series = {"lufs": np.asarray(lufs) + 1e-10, "peak": np.asarray(peaks) + 1e-10}
        return series, float(np.mean(series["lufs"])), float(np.mean(series["peak"]))
    meter = pyloudnorm.Meter(int(sr))  # 400 ms blocks, 75 % overlap: hop 100 ms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        integrated = float(meter.integrated_loudness(x.T))
    blocks = np.asarray(meter.blockwise_loudness, dtype=np.float64)
    gated = ~(blocks >= -70.0)
    blocks[gated] = np.nan
    peaks = np.empty(blocks.shape)
    for j in range(blocks.size):  # the sample range pyloudnorm uses for block j
        a, b = int(0.4 * (j * 0.25) * sr), int(0.4 * (j * 0.25 + 1) * sr)
        peaks[j] = np.abs(x[:, a:b]).max() if b > a else 0.0
    peaks = _db(np.maximum(peaks, 1e-12))
    peaks[gated] = np.nan
    return {"lufs": blocks, "peak": peaks}, integrated, float(_db(np.abs(x).max()))


def feature_series(audio, sample_rate, compat: bool = False) -> dict:
    """Every feature of a stereo mix as a series over frames (``notebooks/15_objective_evaluation.ipynb``).

    ``audio``: ``(2, T)`` or ``(1, 2, T)`` (checked by :func:`check_mix`); ``sample_rate`` in Hz. Returns
    ``{name: array}``: the spectral features per channel, ``(2, frames)``, the others ``(frames,)``; units in
    :data:`FEATURES`. Frames at 44.1 kHz (the default scales them with the rate; ``compat`` keeps the
    toolkit's sample counts): spectral, panning, dynamics 4096 samples (92.9 ms) every 1024 (23.2 ms),
    ``center=False``, Hann window (compat: sqrt-Hann); loudness 400 ms blocks every 100 ms (compat: 17640
    samples every 8820). Default: silent frames are NaN (see :data:`SILENCE_DB`). Extra key
    ``contrast_bands_mids`` ``(2, 3, frames)``: the three middle contrast bands (250-500, 500-1000,
    1000-2000 Hz) whose mean is ``contrast_mids``.
    """
    return _series(check_mix(audio), _rate(sample_rate), compat)[0]


def _series(x: np.ndarray, sr: float, compat: bool) -> tuple:
    """``(series, integrated LUFS, sample peak dBFS)`` of a checked mix."""
    need = _min_samples(sr, compat)
    if x.shape[1] < need:
        why = "one loudness frame (17640 samples in compat) and one STFT frame"
        raise ValueError(f"the mix has {x.shape[1]} samples ({x.shape[1] / sr:.2f} s); the features need at least "
                         f"{need} ({need / sr:.2f} s at {sr:g} Hz): {why}.")
    s = _sizes(sr, compat)
    n, hop = s["n_fft"], s["hop"]
    xn = _peak_normalise(x)
    silent_ch = silent = None
    if not compat:
        ms = np.mean(_frames(xn, n, hop) ** 2, axis=-1)  # (2, frames)
        floor = 10 ** (SILENCE_DB / 10)
        silent_ch, silent = ms < floor, ms.mean(0) < floor
    spec = _stft(xn, n, hop, compat)
    out = _spectral(sr, spec, compat, silent_ch, n, hop)
    out["contrast_mids"] = np.mean(out["contrast_bands_mids"], axis=1)
    out.update(_panning(spec, sr, n, compat, silent))
    out.update(_dynamics(xn, n, hop, compat, silent))
    loud, integrated, peak = _loudness(x, sr, compat)
    out.update(loud)
    return out, integrated, peak


def running_mean(x, n: int, compat: bool = False) -> np.ndarray:
    """Running mean of ``x`` ``(..., frames)`` over the past ``n`` frames along the last axis.

    Output ``(..., frames - n + 1)``: value ``k`` is the mean of frames ``k .. k + n - 1``. Default: NaN frames
    are skipped (the mean of the others; NaN where all ``n`` are NaN) and a series shorter than ``n`` gives its
    one mean. ``compat``: the toolkit's ``running_mean_std`` (a cumulative sum; NaN propagates; a series
    shorter than ``n`` gives an empty result). Taught in ``notebooks/15_objective_evaluation.ipynb``.
    """
    x = np.asarray(x, dtype=np.float64)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive whole number of frames; got {n!r}.")
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    if compat:
        c = np.cumsum(np.pad(x, pad), axis=-1)
        return (c[..., n:] - c[..., :-n]) / float(n) if x.shape[-1] >= n else x[..., :0]
    n = min(n, x.shape[-1])
    ok = np.isfinite(x)
    c = np.cumsum(np.pad(np.where(ok, x, 0.0), pad), axis=-1)
    k = np.cumsum(np.pad(ok.astype(np.float64), pad), axis=-1)
    total, count = c[..., n:] - c[..., :-n], k[..., n:] - k[..., :-n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


# --------------------------------------------------------------------------------------------
# Summary values and errors
# --------------------------------------------------------------------------------------------


def _summary(series: dict, integrated: float, peak: float, compat: bool) -> dict:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (e.g. a band without energy)
        for name in FEATURES:
            out[name] = float(np.nanmean(series[name]))
    if not compat:
        out["lufs"], out["peak"] = integrated, peak
    return out


def mix_features(audio, sample_rate, compat: bool = False) -> dict:
    """Summary value of every feature of a stereo mix ``(2, T)`` / ``(1, 2, T)``: ``{name: float}`` in the units
    of :data:`FEATURES` (``notebooks/15_objective_evaluation.ipynb``).

    The mean of the feature's frame series (:func:`feature_series`; silent frames left out; spectral
    features averaged over both channels), except, by default, ``lufs`` = integrated loudness of the whole mix
    (ITU-R BS.1770 via pyloudnorm) and ``peak`` = its sample peak (dBFS, not the oversampled true peak). In
    ``compat`` mode these two are the means of the toolkit's per-frame values too. Spectral, panning and
    dynamics values are those of the mix peak-normalised to -1 dBFS.
    """
    x, sr = check_mix(audio), _rate(sample_rate)
    series, integrated, peak = _series(x, sr, compat)
    return _summary(series, integrated, peak, compat)


def _rates(sample_rate) -> float:
    if isinstance(sample_rate, (tuple, list)):
        if len(sample_rate) != 2:
            raise ValueError(f"sample_rate must be one rate or (output rate, reference rate); got {sample_rate!r}.")
        a, b = _rate(sample_rate[0]), _rate(sample_rate[1])
        if a != b:
            raise ValueError(f"the output is at {a:g} Hz and the reference at {b:g} Hz; resample one of them "
                             "(automix_lite.audio.resample) so that both have the same rate.")
        return a
    return _rate(sample_rate)


def _mape(out: np.ndarray, ref: np.ndarray, floor: float, compat: bool) -> float:
    """Percent. Default: over positions where both are finite, denominator ``max(|ref|, floor)``; compat:
    scikit-learn's ``mean_absolute_percentage_error`` (NaN or empty input raise there, so here)."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if compat:
        if out.size == 0 or not (np.isfinite(out).all() and np.isfinite(ref).all()):
            raise ValueError("empty or non-finite")
        return float(100 * np.mean(np.abs(ref - out) / np.maximum(np.abs(ref), _SK_EPS)))
    ok = np.isfinite(out) & np.isfinite(ref)
    if not ok.any():
        return math.nan
    return float(100 * np.mean(np.abs(out[ok] - ref[ok]) / np.maximum(np.abs(ref[ok]), floor)))


def _errors(so: dict, sr_: dict, compat: bool) -> dict:
    """Per-feature MAPE (percent) between the series of the output ``so`` and of the reference ``sr_``."""
    mode = "compat" if compat else "default"
    errors = {}

    def fail(group, what):
        raise ValueError(f"compat {group}: {what}; the toolkit's MAPE fails here (scikit-learn refuses NaN, "
                         "infinite or empty input). Use the default mode (compat=False, no --compat).")

    for name in GROUPS["spectral"]:  # per channel, then the mean over the channels (both modes)
        n = _RUNNING[mode]["stft"]
        per_channel = []
        for ch in range(2):
            if name == "contrast_mids" and compat:  # toolkit: MAPE of the mean of the three bands' running means
                o = running_mean(so["contrast_bands_mids"][ch], n, True).mean(0)
                r = running_mean(sr_["contrast_bands_mids"][ch], n, True).mean(0)
            else:
                o, r = running_mean(so[name][ch], n, compat), running_mean(sr_[name][ch], n, compat)
            try:
                per_channel.append(_mape(o, r, FEATURES[name][1], compat))
            except ValueError:
                fail("spectral", f"{name} of channel {ch} is not finite")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            errors[name] = float(np.nanmean(per_channel))
    names = GROUPS["panning"]
    if compat:  # toolkit: delete the frames where the reference's whole-band panning RMS is exactly 0
        keep = sr_["panning_rms_total"] != 0.0
        if not keep.any():
            fail("panning", "the reference's panning RMS is 0 in every frame (a mono mix), so the toolkit deletes "
                            "every frame")
    for name in names:
        o, r = so[name], sr_[name]
        if compat:
            o, r = o[keep], r[keep]
        o, r = running_mean(o, _RUNNING[mode]["stft"], compat), running_mean(r, _RUNNING[mode]["stft"], compat)
        try:
            errors[name] = _mape(o, r, FEATURES[name][1], compat)
        except ValueError:
            fail("panning", f"fewer than {_RUNNING[mode]['stft']} frames remain for {name}")
    for name in GROUPS["dynamics"]:
        o, r = so[name], sr_[name]
        if compat and name in ("rms_level", "dynamic_spread"):  # toolkit: x -> -x + 1 before the error
            o, r = -o + 1.0, -r + 1.0
        n = _RUNNING[mode]["stft"]
        try:
            errors[name] = _mape(running_mean(o, n, compat), running_mean(r, n, compat), FEATURES[name][1], compat)
        except ValueError:
            fail("dynamics", f"{name} is not finite")
    for name in GROUPS["loudness"]:
        n = _RUNNING[mode]["loudness"]
        try:
            errors[name] = _mape(running_mean(so[name], n, compat), running_mean(sr_[name], n, compat),
                                 FEATURES[name][1], compat)
        except ValueError:
            fail("loudness", f"a frame is digitally silent, so its {name} is -inf")
    return errors


def feature_mape(output, reference, sample_rate, compat: bool = False, trim: bool = False) -> dict:
    """Mean absolute percentage error (percent) of every feature's running mean, ``output`` against ``reference``.

    ``output``, ``reference``: stereo mixes ``(2, T)`` / ``(1, 2, T)`` (NumPy or torch) of one song, aligned in
    time; ``sample_rate``: Hz, or ``(output rate, reference rate)`` to have different rates refused. Returns
    ``{"features": {name: percent}, "groups": {group: percent}, "output": {name: summary}, "reference": {...},
    "compat": bool}``: a group's value is the mean of its features' errors (NaN ones left out, with a warning),
    the summaries are :func:`mix_features`'s. Per feature: running means (:func:`running_mean`, 40 frames; 80
    loudness blocks by default, 40 in compat) of both mixes, then ``100 * mean(|out - ref| / max(|ref|,
    floor))`` (floors in :data:`FEATURES`; compat: scikit-learn's MAPE of the toolkit's flipped/epsiloned
    values, x 100). Spectral features: the error per channel, then the mean. Identical mixes give 0 in every
    group. ``ValueError`` (one each): a mix that is mono, not finite, silent or too short (:func:`check_mix`);
    different rates; different lengths unless ``trim=True`` (then both are cut at the end to the shorter).
    Taught in ``notebooks/15_objective_evaluation.ipynb``.
    """
    out, ref = check_mix(output, "the output"), check_mix(reference, "the reference")
    sr = _rates(sample_rate)
    if out.shape[1] != ref.shape[1]:
        if not trim:
            raise ValueError(f"the output has {out.shape[1]} samples ({out.shape[1] / sr:.3f} s) and the reference "
                             f"{ref.shape[1]} ({ref.shape[1] / sr:.3f} s); mixes of one song must be equally long and "
                             "aligned. Pass trim=True (--trim) to cut both to the shorter at the end.")
        t = min(out.shape[1], ref.shape[1])
        out, ref = out[:, :t], ref[:, :t]
    need = _min_samples(sr, compat, running=True)
    if compat and out.shape[1] < need:
        raise ValueError(f"the mixes have {out.shape[1]} samples ({out.shape[1] / sr:.2f} s); compat reproduces the "
                         f"toolkit, whose running means need 40 frames of every group: {need} samples "
                         f"({need / sr:.2f} s at {sr:g} Hz), or its MAPE fails. Use longer mixes or the default mode.")
    (so, io, po), (sr_, ir, pr) = _series(out, sr, compat), _series(ref, sr, compat)
    errors = _errors(so, sr_, compat)
    groups = {}
    for group, names in GROUPS.items():
        vals = [errors[n] for n in names if math.isfinite(errors[n])]
        missing = [n for n in names if not math.isfinite(errors[n])]
        if missing:
            warnings.warn(f"no frame where both mixes are audible for {', '.join(missing)}: left out of the "
                          f"{group} mean", stacklevel=2)
        groups[group] = float(np.mean(vals)) if vals else math.nan
    return {"features": errors, "groups": groups, "output": _summary(so, io, po, compat),
            "reference": _summary(sr_, ir, pr, compat), "compat": bool(compat)}


def feature_table(result: dict) -> str:
    """Plain-text table of a :func:`feature_mape` result: per feature the output's and the reference's summary
    values and the percentage error of the running means, then the MAPE of each group
    (``automix evaluate``; ``notebooks/15_objective_evaluation.ipynb``)."""
    mode = "compat (toolkit definitions)" if result.get("compat") else "default definitions"
    unit = {**{k: u for k, (u, _) in FEATURES.items()}, **({"crest_factor": "ratio"} if result.get("compat") else {})}
    lines = [f"{'feature':<20}{'unit':<7}{'output':>11}{'reference':>11}{'error %':>10}   ({mode})"]
    for group, names in GROUPS.items():
        for name in names:
            o, r, e = result["output"][name], result["reference"][name], result["features"][name]
            lines.append(f"{name:<20}{unit[name]:<7}{o:>11.4g}{r:>11.4g}{e:>10.2f}")
        lines.append(f"{'  ' + group + ' MAPE':<49}{result['groups'][group]:>10.2f}")
    lines.append("values: whole-mix summaries; error: MAPE of the running means (percent)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Where the two definition sets disagree
# --------------------------------------------------------------------------------------------

_SRC = "automix-toolkit automix/evaluation/utils_evaluation.py"
_DIFFERENCES = (
    ("crest factor", "crest_factor", "peak level - RMS level (dB); a sine reads 3.01 dB",
     "20log10(peak) / 20log10(RMS): a ratio of two dB values (a sine at -1 dBFS peak reads 0.249)",
     f"{_SRC}, get_rms_dynamic_crest"),
    ("flipped values", "rms_level, dynamic_spread", "error of the feature itself (dB)",
     "error of -x + 1 (e.g. -20 dBFS becomes 21)", f"{_SRC}, compute_dynamic_features"),
    ("error guard", "all", "100 |out - ref| / max(|ref|, floor), floors per feature (panning 0.05, dB 1 or 0.1, "
     "Hz 1, flatness 1e-6)", "scikit-learn mean_absolute_percentage_error: denominator max(|ref|, 2.2e-16), "
     "a fraction (x 100 here)", f"{_SRC}, every compute_*_features"),
    ("eps added", "centroid, bandwidth, rolloff", "none", "+1 Hz (eps = 1e-0) before the running mean",
     f"{_SRC}, compute_spectral_features"),
    ("window", "spectral, panning", "Hann (periodic), float64 STFT", "sqrt-Hann, STFT stored as complex64",
     f"{_SRC}, compute_stft / compute_spectral_features"),
    ("frame lengths", "all", "the toolkit's at 44.1 kHz, scaled with the rate",
     "fixed sample counts (4096/1024; 17640/8820 for loudness) at any rate", f"{_SRC}, get_features"),
    ("silent frames", "spectral, panning, dynamics", f"NaN below {SILENCE_DB:g} dBFS (after peak norm.), skipped",
     "kept (centroid 0 + 1 Hz, spread near -600 dB, crest ratio ~0)", f"{_SRC}, amp_to_db (+1e-30)"),
    ("panning RMS", "panning_rms_*", "bins weighted by their energy |L|^2 + |R|^2",
     "unweighted RMS over the bins (a quiet bin counts as much as a loud one)", f"{_SRC}, get_panning_rms_frame"),
    ("zero-panning frames", "panning_rms_*", "kept (guarded by the floor)",
     "frames where the reference's whole-band RMS is 0 are deleted from both (a mono reference fails)",
     f"{_SRC}, compute_panning_features"),
    ("dynamics channels", "rms_level, dynamic_spread, crest_factor", "both channels together in each frame",
     "each channel, then the mean of the channels' dB values", f"{_SRC}, get_rms_dynamic_crest"),
    ("dynamic spread", "dynamic_spread", f"mean sample level re frame RMS, clamped at {SPREAD_CLAMP_DB:g} dB",
     "unclamped (an exact zero sample counts as about -600 dB)", f"{_SRC}, get_rms_dynamic_crest"),
    ("loudness frames", "lufs, peak", "momentary loudness of 400 ms blocks every 100 ms, one continuous "
     "K-weighting; gated (< -70 LUFS) blocks skipped; running mean 80 blocks (8.3 s)",
     "pyloudnorm integrated loudness of each 400 ms frame every 200 ms, filter restarted per frame; silent frame "
     "-inf fails; running mean 40 frames (8.2 s)", f"{_SRC}, get_lufs_peak_frames / compute_loudness_features"),
    ("loudness summary", "lufs, peak", "integrated loudness and sample peak of the whole mix",
     "mean of the per-frame values", "this module (the toolkit reports only errors)"),
    ("running mean", "all", "NaN-aware; a series shorter than N gives its one mean",
     "valid-only cumulative sum: fewer than 40 frames fails (mixes under 8.2 s at 44.1 kHz)",
     f"{_SRC}, running_mean_std"),
    ("silence trimming", "all", "none: mixes are compared as given",
     "SoX 'silence' trims the reference's leading/trailing silence, the output is cut by as many samples "
     "(NOT reproduced)", f"{_SRC}, get_features"),
)


def differences() -> list:
    """Where ``compat=True`` (the toolkit's definitions) and the default disagree: a list of ``{"aspect",
    "features", "default", "compat", "source"}`` dicts (``notebooks/15_objective_evaluation.ipynb`` shows
    them with :func:`differences_table`). Common to both: features per channel for the spectral group, peak
    normalisation to -1 dBFS, librosa's centroid, bandwidth (p = 2), contrast (fmin 250 Hz, 4 octave bands +
    the rest, quantile 0.02, ``10 log10`` of a magnitude ratio), roll-off (85 %) and flatness (power spectrum),
    the panning spectrum's formula and bands, ``N = 40`` STFT frames."""
    return [dict(zip(("aspect", "features", "default", "compat", "source"), row)) for row in _DIFFERENCES]


def differences_table(output=None, reference=None, sample_rate=None) -> str:
    """Markdown table of :func:`differences`; given two mixes (as :func:`feature_mape`), a second table with
    every feature's error in both modes side by side (``notebooks/15_objective_evaluation.ipynb``)."""
    rows = ["| aspect | features | default | compat (toolkit) | source |", "|---|---|---|---|---|"]
    rows += [f"| {d['aspect']} | {d['features']} | {d['default']} | {d['compat']} | {d['source']} |"
             for d in differences()]
    if output is None:
        return "\n".join(rows)
    a = feature_mape(output, reference, sample_rate)
    try:
        b = feature_mape(output, reference, sample_rate, compat=True)
    except ValueError as err:
        return "\n".join(rows) + f"\n\ncompat mode fails on these mixes: {err}"
    rows += ["", "| feature | default error % | compat error % |", "|---|---|---|"]
    rows += [f"| {name} | {a['features'][name]:.2f} | {b['features'][name]:.2f} |" for name in FEATURES]
    rows += [f"| **{g}** | **{a['groups'][g]:.2f}** | **{b['groups'][g]:.2f}** |" for g in GROUPS]
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Embeddings and the Fréchet distance
# --------------------------------------------------------------------------------------------


def _logmel_embedding(x: np.ndarray, sr: float, n_mels: int) -> np.ndarray:
    import librosa

    stats = []
    for sig in ((x[0] + x[1]) / 2, (x[0] - x[1]) / 2):  # mid, side
        mel = librosa.feature.melspectrogram(y=sig, sr=sr, n_fft=2048, hop_length=1024, n_mels=n_mels, fmin=0.0,
                                             fmax=sr / 2, power=2.0)
        db = 10 * np.log10(np.maximum(mel, 1e-10))
        stats += [db.mean(1), db.std(1)]
    return np.concatenate(stats)


def embed_mixes(mixes: Iterable, sample_rate, embedding: str = "logmel", n_mels: int = 32) -> np.ndarray:
    """Embeddings ``(N, D)`` of ``N`` stereo mixes (each ``(2, T)`` / ``(1, 2, T)``, any length) for
    :func:`frechet_distance` (``notebooks/15_objective_evaluation.ipynb``).

    - ``"logmel"`` (offline, no weights): for the mid ``(L + R) / 2`` and the side ``(L - R) / 2`` of each mix,
      a power mel spectrogram (librosa: ``n_fft`` 2048, hop 1024, Hann, centred frames, ``n_mels`` Slaney mel
      bands from 0 Hz to Nyquist), in dB (``10 log10``, floored at -100 dB); per band its mean and its standard
      deviation over time. ``D = 4 n_mels``: [mid means, mid stds, side means, side stds]; absolute levels are
      kept (the mix is not normalised). A mono mix has side means at -100 dB.
    - ``"dmc"``: the bundled DMC's track encoder (``automix_lite.pretrained.load("dmc_basic_songs").encoder``,
      a log-mel CNN trained to estimate mixing parameters, plus the track's RMS level) applied to the mid and
      the side (resampled to 44.1 kHz if needed); ``D = 2 x 129``.
    - ``"fx_encoder"``: the bundled contrastive effects encoder (``automix_lite.pretrained.load("fx_encoder")``,
      :mod:`automix_lite.models.fx_encoder`, trained contrastively to tell effect chains apart across content; it
      mostly hears pan and reverb, see its model card) of the stereo mix (resampled to 44.1 kHz if needed);
      ``D = 64`` unit vectors.

    None is VGGish (Steinmetz 2020, Tables 12-13, used VGGish models pretrained on music tagging, which
    cannot be downloaded here): the distances are not comparable with the thesis' numbers, only with each
    other under the same embedding. The Fréchet distance fits a Gaussian per set: a full covariance needs
    ``N > D`` mixes to be non-singular and about ``10 D`` for a stable estimate (``logmel``: 1,280 mixes at
    ``n_mels=32``); with fewer use ``frechet_distance(..., diagonal=True)`` (a few dozen mixes) or
    ``shrinkage``, or fewer ``n_mels``. ``sample_rate``: Hz, one for all mixes.
    """
    sr = _rate(sample_rate)
    if embedding not in ("logmel", "dmc", "fx_encoder"):
        raise ValueError(f"embedding must be 'logmel', 'dmc' or 'fx_encoder'; got {embedding!r}.")
    if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1:
        raise ValueError(f"n_mels must be a positive whole number; got {n_mels!r}.")
    mixes = [check_mix(m, f"mix {k}") for k, m in enumerate(mixes)]
    if not mixes:
        raise ValueError("no mixes to embed.")
    if embedding == "logmel":
        return np.stack([_logmel_embedding(x, sr, n_mels) for x in mixes])
    import torch

    from . import audio, pretrained

    model_sr = 44100
    if embedding == "fx_encoder":
        fx = pretrained.load("fx_encoder")
        resampled = (torch.from_numpy(np.ascontiguousarray(x)).float()[None] for x in mixes)
        return np.stack([fx.embed(t if sr == model_sr else audio.resample(t, int(sr), model_sr))[0].double().numpy()
                         for t in resampled])
    encoder = pretrained.load("dmc_basic_songs").encoder.eval()
    rows = []
    with torch.no_grad():
        for x in mixes:
            t = torch.from_numpy(np.stack([(x[0] + x[1]) / 2, (x[0] - x[1]) / 2])).float()
            if sr != model_sr:
                t = audio.resample(t[None], int(sr), model_sr)[0]
            rows.append(encoder(t).reshape(-1).double().numpy())
    return np.stack(rows)


def _embeddings(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{name} must be N x D embeddings with N >= 2 (a covariance needs two); got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return a


def frechet_distance(a, b, diagonal: bool = False, shrinkage: float = 0.0, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings ``a`` ``(N1, D)`` and ``b`` ``(N2, D)``
    (``notebooks/15_objective_evaluation.ipynb``): ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``
    (Dowson & Landau 1982; FID, FAD), in squared embedding units. ``(N,)`` arrays are read as ``D = 1``.

    Means and unbiased covariances (``N - 1``). ``diagonal=True`` keeps only the variances (the sum over
    dimensions of the 1-D distance ``(m_a - m_b)^2 + s_a^2 + s_b^2 - 2 s_a s_b``): usable with a few dozen
    embeddings. ``shrinkage`` in [0, 1] pulls each covariance towards ``tr(S)/D`` times the identity,
    ``(1 - shrinkage) S + shrinkage tr(S)/D I`` (a Ledoit-Wolf-style target; the weight is yours). The matrix
    square root is ``scipy.linalg.sqrtm`` of ``S_a S_b``; when it is not finite or does not square back to
    ``S_a S_b`` (relative error above 1e-6: near-singular covariances, e.g. ``N <= D``) both covariances get
    ``eps`` times their mean variance added on the diagonal and it is taken again; imaginary parts below
    1e-3 of the trace scale are rounding and dropped, larger ones raise ``ValueError``. Rounding below 0 is
    returned as 0. ``N <= D`` with a full covariance warns: the estimate is poor (see :func:`embed_mixes`).
    """
    from scipy import linalg

    a, b = _embeddings(a, "a"), _embeddings(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension; got {a.shape[1]} and {b.shape[1]}.")
    if not (isinstance(shrinkage, (int, float)) and 0.0 <= shrinkage <= 1.0):
        raise ValueError(f"shrinkage must be a number in [0, 1]; got {shrinkage!r}.")
    if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive number; got {eps!r}.")
    d = a.shape[1]
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    if diagonal:
        va, vb = a.var(0, ddof=1), b.var(0, ddof=1)
        if shrinkage:
            va = (1 - shrinkage) * va + shrinkage * va.mean()
            vb = (1 - shrinkage) * vb + shrinkage * vb.mean()
        return max(0.0, mean_term + float(np.sum(va + vb - 2 * np.sqrt(va * vb))))
    if min(a.shape[0], b.shape[0]) <= d and not shrinkage:
        warnings.warn(f"{min(a.shape[0], b.shape[0])} embeddings of dimension {d}: the covariance is singular and "
                      "the distance unreliable; use diagonal=True, shrinkage, or about 10 x D embeddings per set.",
                      stacklevel=2)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    if shrinkage:
        sa = (1 - shrinkage) * sa + shrinkage * np.trace(sa) / d * np.eye(d)
        sb = (1 - shrinkage) * sb + shrinkage * np.trace(sb) / d * np.eye(d)
    scale = max((np.trace(sa) + np.trace(sb)) / (2 * d), 1e-300)

    def root(x, y):
        product = x @ y
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = linalg.sqrtm(product)
        r = np.asarray(r)
        if not np.isfinite(r).all():
            return None
        err = np.linalg.norm(r @ r - product) / max(np.linalg.norm(product), 1e-300)
        return r if err <= 1e-6 else None

    r = root(sa, sb)
    if r is None:
        offset = eps * scale * np.eye(d)
        r = root(sa + offset, sb + offset)
        if r is None:
            raise ValueError("the covariances are too ill-conditioned for a matrix square root even after adding "
                             f"eps={eps:g} x their mean variance; use diagonal=True or shrinkage.")
        sa, sb = sa + offset, sb + offset
    if np.iscomplexobj(r):
        if np.abs(np.diag(r).imag).max() > 1e-3 * scale:
            raise ValueError(f"the matrix square root has imaginary parts up to {np.abs(r.imag).max():.3g}; the "
                             "covariances are not positive semi-definite enough; use diagonal=True or shrinkage.")
        r = r.real
    return max(0.0, mean_term + float(np.trace(sa) + np.trace(sb) - 2 * np.trace(r)))
