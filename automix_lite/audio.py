"""Audio files, resampling and loudness (taught in ``notebooks/02_gain_loudness_panning.ipynb``).

- :func:`load` / :func:`save`: audio files through ``soundfile`` as ``(1, channels, samples)`` float32
  tensors; ``load(path, sample_rate=...)`` always returns audio at the requested rate.
- :func:`resample`: exact polyphase resampling (``scipy.signal.resample_poly``) of ``(B, C, T)`` tensors.
- :func:`loudness_lufs` / :func:`normalize_loudness`: integrated loudness after ITU-R BS.1770
  (K-weighting, 400 ms blocks, -70 LUFS absolute and -10 LU relative gates) via ``pyloudnorm``.
- :func:`db_to_gain` / :func:`gain_to_db`: the decibel helpers of :mod:`automix_lite.dsp.panning`.
- :func:`frame_power` / :func:`frame_levels`: short-term levels, the mean square (or its level in dB) of
  consecutive frames of a few tens of milliseconds (chapter 1.2 ``02_gain_loudness_panning``, 1.4
  ``04_dynamics``, 1.6 ``06_channel_strip_console`` and 3.1 ``11_datasets`` measure with them), and
  :func:`level_range_db`, the spread of those levels (chapters 1.4, 1.6; with 400 ms blocks the loudness
  range of the knowledge mixer of chapter 2.2, ``07_baselines``).

Resampling and loudness measurement run in NumPy/SciPy on the CPU: they are not differentiable. The
short-term levels are torch operations on ``x``'s device.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from ._checks import as_param, bcast, check_audio, check_sample_rate
from .dsp.panning import db_to_gain, gain_to_db  # noqa: F401  (re-exported)

MIN_LOUDNESS_SECONDS = 0.4  # one BS.1770 gating block
LOUDNESS_RANGE = (-70.0, 0.0)  # target_lufs range: -70 LUFS is BS.1770's absolute gate


def _whole_hz(sample_rate, name: str) -> int:
    sr = check_sample_rate(sample_rate, name)
    if sr != int(sr):
        raise ValueError(f"{name} must be a whole number of Hz for exact polyphase resampling; got {sr}.")
    return int(sr)


def resample(x: torch.Tensor, orig_sr, new_sr) -> torch.Tensor:
    """Resample ``x`` ``(batch, channels, samples)`` from ``orig_sr`` to ``new_sr`` Hz (whole numbers).

    Exact rational polyphase resampling (``scipy.signal.resample_poly``, up/down = new/old in lowest
    terms, Kaiser-windowed anti-aliasing filter). The output has ``ceil(samples * new_sr / orig_sr)``
    samples, ``x``'s dtype and device. Runs in SciPy: no gradient flows through it.
    """
    from scipy.signal import resample_poly

    check_audio(x)
    old, new = _whole_hz(orig_sr, "orig_sr"), _whole_hz(new_sr, "new_sr")
    if old == new:
        return x
    ratio = Fraction(new, old)
    y = resample_poly(x.detach().cpu().double().numpy(), ratio.numerator, ratio.denominator, axis=-1)
    return torch.from_numpy(y).to(dtype=x.dtype, device=x.device)


def load(path, sample_rate=None, mono: bool = False):
    """Read an audio file as ``(audio, sample_rate)``; ``audio`` is a float32 tensor ``(1, channels, samples)``.

    ``sample_rate`` (Hz): when given, the audio is resampled to it (see :func:`resample`) and that rate
    is returned. ``mono=True`` averages the channels into one. Raises ``FileNotFoundError`` for a
    missing file and ``ValueError`` for a file that is not readable audio, has no samples, or holds NaN or
    infinite samples (float files can).
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no audio file at {path!r}: check the path (relative paths start at {os.getcwd()!r}).")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder, not an audio file.")
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise ValueError(
            f"cannot read {path!r} as audio ({err}). Formats soundfile reads: WAV, FLAC, OGG, AIFF, MP3 and more; "
            "is the file complete and really audio?"
        ) from None
    if data.shape[0] == 0:
        raise ValueError(f"{path!r} contains no audio samples (0 frames).")
    if not np.isfinite(data).all():
        bad = ~np.isfinite(data)
        raise ValueError(f"{path!r} contains {int(bad.sum())} NaN or infinite sample(s) (the first at sample "
                         f"{int(np.argwhere(bad)[0, 0])}); repair the file or re-export it (e.g. as 24-bit PCM).")
    audio = torch.from_numpy(np.ascontiguousarray(data.T)).unsqueeze(0)
    if mono:
        audio = audio.mean(dim=1, keepdim=True)
    if sample_rate is not None:
        audio = resample(audio, file_sr, sample_rate)
        file_sr = _whole_hz(sample_rate, "sample_rate")
    return audio, int(file_sr)


_FORMAT_ALIASES = {"WAVE": "WAV", "AIF": "AIFF", "AIFC": "AIFF", "OGA": "OGG"}


def output_format(path, subtype: Optional[str] = "PCM_24") -> tuple:
    """``(format, subtype)`` that :func:`save` writes ``path`` with: the format told by the ending (``.wav``,
    ``.flac``, ``.aif`` ...); ``subtype=None`` takes 24-bit PCM where the format has it, else its default
    (Vorbis for ``.ogg``). A ``ValueError`` says when soundfile cannot write the ending or the subtype."""
    import soundfile as sf

    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").upper()
    fmt = _FORMAT_ALIASES.get(ext, ext)
    if fmt not in sf.available_formats():
        raise ValueError(f"cannot write audio as {os.fspath(path)!r}: soundfile does not know the extension "
                         f"{ext.lower() or '(none)'!r}; use .wav, .flac, .aiff or .ogg.")
    if subtype is None:
        subtype = "PCM_24" if sf.check_format(fmt, "PCM_24") else sf.default_subtype(fmt)
    if not sf.check_format(fmt, subtype):
        raise ValueError(f"subtype={subtype!r} is not valid for {fmt}; choose one of {sorted(sf.available_subtypes(fmt))}.")
    return fmt, subtype


def save(path, audio, sample_rate, overwrite: bool = False, subtype: Optional[str] = "PCM_24"):
    """Write ``audio`` ((samples,), (channels, samples) or (1, channels, samples)) to ``path``; returns the path.

    The format follows the extension (``.wav``, ``.flac``, ...; see :func:`output_format`); ``subtype`` is the
    sample format (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ..., None: the format's best). An existing file is
    kept unless ``overwrite=True``. The file is written next to ``path`` under a temporary name and renamed
    into place when complete (``_checks.atomic_outputs``): never a truncated file under ``path``. NaN/inf
    samples raise a ``ValueError``; peaks above 0 dBFS give a warning (integer subtypes clip them).
    """
    import soundfile as sf

    from ._checks import atomic_outputs

    path = os.fspath(path)
    sr = _whole_hz(sample_rate, "sample_rate")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} already exists; pass overwrite=True (--overwrite) to replace it, or choose "
                              "another name.")
    a = audio.detach().cpu().double().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, dtype=np.float64)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(f"save writes one clip; got a batch of {a.shape[0]}. Save each item, e.g. audio[0:1].")
        a = a[0]
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"audio must be (samples,), (channels, samples) or (1, channels, samples) with samples; got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"audio for {path!r} contains NaN or infinite samples; refusing to write it.")
    fmt, subtype = output_format(path, subtype)
    peak = float(np.abs(a).max())
    if peak > 1.0:
        clip = "clipped at 0 dBFS in the file" if subtype.startswith("PCM") else "clipped on playback"
        warnings.warn(
            f"audio for {path!r} peaks at {gain_to_db(peak):+.2f} dBFS and will be {clip}; "
            "lower its level (e.g. automix_lite.dsp.gain) before saving.",
            stacklevel=2,
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_outputs([path], overwrite) as (tmp,):
        try:
            sf.write(tmp, a.T, sr, subtype=subtype, format=fmt)
        except (sf.SoundFileError, RuntimeError) as err:  # libsndfile does not say why: a full disk, usually
            raise ValueError(f"could not write {path!r} ({err}); is there enough free space?") from None
    return path


def loudness_lufs(x: torch.Tensor, sample_rate) -> torch.Tensor:
    """Integrated loudness (LUFS) of each batch item of ``x`` ``(batch, channels, samples)``; returns ``(batch,)``.

    ITU-R BS.1770 via ``pyloudnorm``: K-weighting, mean square over 400 ms blocks (75 % overlap),
    absolute gate at -70 LUFS and relative gate 10 LU below the ungated loudness; channels (at most 5,
    order L, R, C, Ls, Rs) are summed with the standard weights. The standard gives a 1 kHz sine at
    0 dBFS -3.01 LUFS in mono (0.0 on both stereo channels); pyloudnorm, whose K-weighting filters are
    redesigned for every rate rather than taken from the standard's 48 kHz table, reads 0.04 LU lower. Items that are silent (no block
    above -70 LUFS) measure ``-inf`` with a warning. Needs at least 0.4 s of audio. Not differentiable.
    """
    check_audio(x)
    values, silent = _measure(x, sample_rate)
    if silent:
        warnings.warn(
            f"batch item(s) {silent} are silent (no 400 ms block above -70 LUFS): their loudness is -inf LUFS.",
            stacklevel=2,
        )
    return values


def _measure(x: torch.Tensor, sample_rate):
    """(loudness per item as a (batch,) tensor, indices of silent items)."""
    import pyloudnorm

    sr = check_sample_rate(sample_rate)
    if x.shape[1] > 5:
        raise ValueError(f"BS.1770 loudness takes at most 5 channels (L, R, C, Ls, Rs); got {x.shape[1]}.")
    if x.shape[-1] < MIN_LOUDNESS_SECONDS * sr:
        raise ValueError(
            f"loudness needs at least {MIN_LOUDNESS_SECONDS} s of audio (one gating block, "
            f"{math.ceil(MIN_LOUDNESS_SECONDS * sr)} samples at {sr:g} Hz); got {x.shape[-1]} samples."
        )
    meter = pyloudnorm.Meter(sr)
    data = x.detach().cpu().double().numpy()
    values = [float(meter.integrated_loudness(item.T)) for item in data]
    silent = [i for i, v in enumerate(values) if v == -math.inf]
    return torch.tensor(values, dtype=x.dtype, device=x.device), silent


def normalize_loudness(x: torch.Tensor, sample_rate, target_lufs) -> torch.Tensor:
    """Scale each batch item of ``x`` ``(batch, channels, samples)`` to ``target_lufs`` integrated loudness.

    ``target_lufs``: float or ``(batch,)`` tensor in [-70, 0] LUFS. The gain ``target - measured`` (dB)
    is measured without gradient and applied as a constant, so gradients flow to ``x`` only. Silent
    items (``-inf`` LUFS) cannot be normalised and are returned unchanged, with a warning. Peaks may
    exceed 0 dBFS afterwards; check with ``automix_lite.display.peak_db``.
    """
    check_audio(x)
    target = as_param(target_lufs, "target_lufs", x.shape[0], x, *LOUDNESS_RANGE, "LUFS").detach()
    measured, silent = _measure(x, sample_rate)
    if silent:
        warnings.warn(f"batch item(s) {silent} are silent (-inf LUFS) and are left unchanged.", stacklevel=2)
    change_db = torch.where(torch.isfinite(measured), target - measured, torch.zeros_like(measured))
    return bcast(db_to_gain(change_db)) * x


# --------------------------------------------------------------------------------------------
# Short-term levels
# --------------------------------------------------------------------------------------------


def _as_signal(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        if isinstance(x, (list, tuple, np.ndarray)):
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        else:
            raise TypeError(f"{name} must be a torch.Tensor (or a NumPy array) of samples; got {type(x).__name__}.")
    if x.ndim == 0 or not x.is_floating_point():
        raise ValueError(f"{name} must be floating-point samples along its last dimension; got shape "
                         f"{tuple(x.shape)} and dtype {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite samples.")
    return x


def _frame_samples(ms, sample_rate, name: str) -> int:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"{name} must be a positive number of milliseconds; got {ms!r}.")
    n = round(ms * sample_rate / 1000)
    if n < 1:
        raise ValueError(f"{name}={ms!r} ms is shorter than one sample at {sample_rate:g} Hz.")
    return n


def frame_power(x, sample_rate, frame_ms: float = 50.0, hop_ms: Optional[float] = None) -> torch.Tensor:
    """Mean square of ``x`` in short frames along its last dimension: ``(..., samples)`` -> ``(..., frames)``.

    A frame holds ``round(frame_ms * sample_rate / 1000)`` samples (50 ms: 2,205 at 44.1 kHz); frame ``k``
    starts at ``k * hop`` with ``hop`` from ``hop_ms`` (default ``frame_ms``: frames back to back; 400 ms
    blocks every 100 ms overlap by 75 %, as BS.1770's). Only whole frames are measured, so there are
    ``1 + (samples - frame) // hop`` and the last few samples may be left out. Every channel keeps its own
    row: sum or average them for all channels together (:func:`frame_levels` averages). Taught in chapter
    1.2 (``notebooks/02_gain_loudness_panning.ipynb``, the power of a pan sweep). Differentiable;
    ``x`` may be a NumPy array (read as float64). Raises ``ValueError`` for audio shorter than one frame,
    non-finite samples and non-positive frame or hop lengths.
    """
    x = _as_signal(x)
    sr = check_sample_rate(sample_rate)
    n = _frame_samples(frame_ms, sr, "frame_ms")
    hop = n if hop_ms is None else _frame_samples(hop_ms, sr, "hop_ms")
    if x.shape[-1] < n:
        raise ValueError(f"x has {x.shape[-1]} samples, fewer than one {frame_ms:g} ms frame ({n} samples at "
                         f"{sr:g} Hz): use shorter frames or more audio.")
    return x.square().unfold(-1, n, hop).mean(-1)


def frame_levels(x, sample_rate, frame_ms: float = 50.0, hop_ms: Optional[float] = None,
                 floor_db: float = -120.0) -> torch.Tensor:
    """Short-term level (dBFS) of every frame of ``x``, all channels together.

    ``10 log10`` of the mean square over a frame and over the channels, i.e. the RMS level of each frame (a
    full-scale sine reads -3.01 dB, as with ``display.rms_db``). Shapes: ``(samples,)`` and
    ``(channels, samples)`` give ``(frames,)``, ``(batch, channels, samples)`` gives ``(batch, frames)``.
    Frames as in :func:`frame_power` (default 50 ms, back to back). Levels below ``floor_db`` (silence) read
    ``floor_db``. Taught in chapters 1.4 (``notebooks/04_dynamics.ipynb``) and 1.6
    (``06_channel_strip_console.ipynb``), used in 3.1 (``11_datasets.ipynb``).
    """
    x = _as_signal(x)
    if x.ndim > 3:
        raise ValueError(f"x must be (samples,), (channels, samples) or (batch, channels, samples); got shape {tuple(x.shape)}.")
    p = frame_power(x, sample_rate, frame_ms, hop_ms)
    if x.ndim > 1:
        p = p.mean(-2)
    return 10 * torch.log10(p.clamp_min(10 ** (floor_db / 10)))


def level_range_db(x, sample_rate, frame_ms: float = 50.0, hop_ms: Optional[float] = None,
                   percentiles=(10.0, 90.0), within_db: float = 40.0, reference=None) -> float:
    """Spread (dB) of the short-term levels of a clip: how even its level is.

    The difference between two percentiles (default the 10th and the 90th) of :func:`frame_levels` over the
    frames that count: those where ``reference`` (default ``x`` itself; same length) is within ``within_db``
    of its loudest frame, so silence does not widen the range and a track before and after processing is
    measured on the same frames. ``x``: one clip, ``(samples,)``, ``(channels, samples)`` or
    ``(1, channels, samples)``. Compression shrinks it (chapter 1.4, ``notebooks/04_dynamics.ipynb``;
    chapter 1.6, ``06_channel_strip_console.ipynb``); with ``frame_ms=400, hop_ms=100, percentiles=(10, 95)``
    it is the loudness range by which the knowledge mixer of chapter 2.2 sets its ratios (without
    K-weighting, as :func:`automix_lite.baselines.knowledge_mix` measures it).
    """
    lo, hi = percentiles
    if not 0 <= lo <= hi <= 100:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low <= high <= 100; got {percentiles!r}.")
    levels = frame_levels(x, sample_rate, frame_ms, hop_ms)
    ref = levels if reference is None else frame_levels(reference, sample_rate, frame_ms, hop_ms)
    if levels.ndim > 1 or ref.ndim > 1:
        if levels.shape[0] != 1 or ref.shape[0] != 1:
            raise ValueError("level_range_db measures one clip; got a batch: index one item, e.g. x[0].")
        levels, ref = levels.reshape(-1), ref.reshape(-1)
    if ref.shape != levels.shape:
        raise ValueError(f"reference must be as long as x ({levels.shape[0]} frames); it has {ref.shape[0]}.")
    counted = levels[ref > ref.max() - within_db].double()
    if counted.numel() == 0:
        raise ValueError("no frame of the reference is within within_db of its loudest frame.")
    q = torch.quantile(counted, torch.tensor([lo / 100, hi / 100], dtype=torch.float64, device=counted.device))
    return float(q[1] - q[0])
