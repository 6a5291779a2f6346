"""The lead-and-backing task (chapter 5.5, taught in ``notebooks/21_lead_and_backing.ipynb``).

After Kelian (Mike) Li's master-project proposal *Autonomous vocal and backing track mixing* (``li2022vocal``): a
simpler task than multitrack mixing, the one a karaoke app or an amateur producer faces. The inputs are the *raw*
lead (a dry mono stem ``(T,)``) and the *backing*, an already finished stereo mix of everything else ``(2, T)``; the
output is one channel strip for the lead (gain, EQ, compressor, pan, reverb send with its bus T60 and return) so that
``lead_console(raw lead) + backing`` sounds like the engineer's mix.

On the bundled set (:func:`pair`) the backing is the sum of the engineer's other wet stems
(:func:`automix_lite.data.wet_stems_of`), and the wet lead stem *is* the one-track console with the engineer's lead
row, reverb bus and master gain, so the engineer's lead parameters are known exactly (:func:`lead_params`, the master
gain folded into the lead's gain and compressor threshold).

Measurements (:func:`lead_to_mix_lu`, :func:`lead_to_backing_lu`, :func:`loudness_range_db`,
:func:`engineer_stats`): integrated loudness differences (LU, BS.1770 via
:func:`automix_lite.audio.loudness_lufs`) and a short-block loudness range. The songs are only 8-10 s long, so EBU
R 128's LRA (3 s windows, 10th-95th percentile) would rest on a handful of windows; :func:`loudness_range_db` is
:func:`automix_lite.audio.level_range_db` over 400 ms blocks every 100 ms, 10th to 95th percentile, without
K-weighting (as chapters 2.2 and 5.3 measure it), in dB.

The rules (:func:`rule_params`, the proposal's baseline), each a small function: gain to a lead-to-mix ratio of
-3 LU (:func:`solve_gain`), a compressor from a grid towards a loudness range of 14 dB (:func:`rule_compressor`; it
only compresses, so a lead already below the target is left alone), a peak cut on the lead where the backing masks
it most (:func:`masking_per_band`, :func:`masking_eq`), and a reverb time linear in tempo (:func:`fit_t60_tempo`,
fitted on the TRAIN engineers, :func:`rule_constants`).

Two data-driven models (:func:`train_model`, small MLPs trained by one seeded Adam loop here, not by
:mod:`automix_lite.train`): the *intermediate-feature* model predicts what the engineer's result measures
(lead-to-mix ratio, the wet lead's loudness range, T60) and post-processing turns that into parameters; the *direct*
model predicts gain, threshold, ratio and T60. Trained on TRAIN crops with a random level alteration of the raw lead,
which leaves the intermediate targets unchanged but moves the direct gain target (:func:`alter`). And a
*self-supervised EQ* (:func:`train_eq_model`): a random peak EQ applied to the engineer's wet lead, the model learns
the inverse peak (same centre and Q, negated gain: an RBJ peak is exactly undone by its negation).

:func:`evaluate` scores every method on the TEST mixes with the Part 4 metrics; ``benchmarks/lead_backing.py`` writes
the results (:func:`read_results`, :func:`results_table`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from . import audio, dsp

__all__ = ["SAMPLE_RATE", "ENGINEERS", "N_BANDS", "BAND_EDGES", "TARGET_LMR_LU", "TARGET_LRA_DB", "lead_index",
           "neutral_params", "lead_params", "lead_console", "render", "pair", "lead_to_mix_lu", "lead_to_backing_lu",
           "loudness_range_db", "engineer_stats", "fit_t60_tempo", "rule_constants", "solve_gain", "band_energies",
           "masking_per_band", "masking_eq", "rule_compressor", "rule_params", "FEATURE_NAMES", "LEVEL_DEPENDENT",
           "input_features", "alter", "INTERMEDIATE_NAMES", "DIRECT_NAMES", "intermediate_targets", "direct_targets",
           "training_set", "LeadMLP", "train_model", "params_from_intermediate", "params_from_direct",
           "peak_response_db", "EQ_RANGE", "lead_spectra", "eq_batch", "EqCorrector", "train_eq_model", "predict_eq",
           "spectral_error_db", "evaluate_eq", "METHODS", "evaluate", "summarize", "results_table", "altered_table",
           "read_results", "RESULTS_FILE", "BAND_CENTRES", "LOSS_FREQS", "THRESHOLDS_REL", "RATIOS"]

SAMPLE_RATE = 44100
ENGINEERS = ("natural", "punchy")
N_BANDS = 24
BAND_EDGES = np.geomspace(40.0, 16000.0, N_BANDS + 1)
"""Edges (Hz) of the 24 log-spaced bands of :func:`band_energies` (as :mod:`automix_lite.fxnorm`'s)."""
BAND_CENTRES = np.sqrt(BAND_EDGES[:-1] * BAND_EDGES[1:])
"""Geometric centres (Hz) of those bands."""
TARGET_LMR_LU = -3.0
"""The proposal's lead-to-mix ratio (its "-3 dB vocal-to-mix ratio"), LU."""
TARGET_LRA_DB = 14.0
"""The proposal's loudness range of the lead (its "14 dB"), here in :func:`loudness_range_db`'s dB."""
LRA_FRAME_MS, LRA_HOP_MS, LRA_PERCENTILES = 400.0, 100.0, (10.0, 95.0)
ATTACK_MS, RELEASE_MS, KNEE_DB = 5.0, 100.0, 6.0
"""The rules' compressor ballistics (the engineers' lead row: 5 ms attack, 100 ms release, 6 dB knee)."""
THRESHOLDS_REL = (3.0, 0.0, -4.0, -8.0, -12.0, -18.0)
"""The compressor grid's thresholds, dB relative to the lead's loudness at the compressor (:func:`rule_compressor`)."""
RATIOS = (1.5, 2.0, 3.0, 4.0, 6.0)
SILENCE_DB = -60.0
_FFT = 4096


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def _tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a tensor or array of samples; got {type(x).__name__}.") from None
    if not x.is_floating_point():
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf samples; clean or replace them first.")
    return x.float()


def _check_lead(lead, sr: float, name: str = "lead") -> torch.Tensor:
    x = _tensor(lead, name)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"{name} must be one mono stem (samples,); got shape {tuple(x.shape)} (mix a stereo lead "
                         "to mono first, e.g. lead.mean(0)).")
    if x.shape[0] < audio.MIN_LOUDNESS_SECONDS * sr:
        raise ValueError(f"{name} has {x.shape[0]} samples; give at least {audio.MIN_LOUDNESS_SECONDS} s of audio.")
    if 20 * math.log10(float(x.pow(2).mean().sqrt()) + 1e-20) < SILENCE_DB - 20:
        raise ValueError(f"{name} is silent (RMS below {SILENCE_DB - 20:g} dBFS): there is no lead to mix.")
    return x


def _check_backing(backing, n: Optional[int], name: str = "backing") -> torch.Tensor:
    x = _tensor(backing, name)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"{name} must be a stereo mix (2, samples); got shape {tuple(x.shape)}.")
    if n is not None and x.shape[-1] != n:
        raise ValueError(f"{name} has {x.shape[-1]} samples but the lead {n}: give the same excerpt of both.")
    return x


def _check_tempo(tempo) -> float:
    if isinstance(tempo, bool) or not isinstance(tempo, (int, float)) or not math.isfinite(tempo) or tempo <= 0:
        raise ValueError(f"tempo must be a positive number of beats per minute; got {tempo!r}.")
    return float(tempo)


def _check_engineer(engineer) -> str:
    if engineer not in ENGINEERS:
        raise ValueError(f"unknown engineer {engineer!r}; choose one of {', '.join(ENGINEERS)}.")
    return engineer


# --------------------------------------------------------------------------------------------
# The one-track console, the pairs
# --------------------------------------------------------------------------------------------

def lead_index(roles: Sequence[str]) -> int:
    """The index of the (one) ``"lead"`` in a song's ``roles``; ``ValueError`` if there is none or more than one."""
    hits = [k for k, r in enumerate(roles) if r == "lead"]
    if len(hits) != 1:
        raise ValueError(f"a lead-and-backing pair needs exactly one 'lead' track; the roles are {list(roles)}.")
    return hits[0]


def neutral_params(batch: int = 1) -> dict:
    """Neutral settings of the one-track console (float32): gain 0 dB, flat EQ, ratio 1, centred, no send, T60 1.5 s,
    return and master 0 dB. Track-level ``(batch, 1)``, peaks ``(batch, 1, 3)``, bus ``(batch,)``."""
    p = dsp.default_params(batch, 1)
    p["attack_ms"][:] = ATTACK_MS
    p["release_ms"][:] = RELEASE_MS
    p["knee_db"][:] = KNEE_DB
    return p


def lead_params(params: Mapping, index: int) -> dict:
    """Track ``index``'s row of console ``params`` (batch 1, e.g. :func:`automix_lite.data.mix_params`) as one-track
    console parameters, with the reverb bus and the master gain folded in: ``gain_db`` and ``threshold_db`` both
    raised by ``master_gain_db`` (so the compressor reduces the same gain) and the master set to 0 dB. Rendered by
    :func:`lead_console`, they give that track's wet stem (:func:`automix_lite.dsp.wet_stems`)."""
    out = {}
    for name, v in params.items():
        v = torch.as_tensor(v).float()
        out[name] = v[:, index:index + 1].clone() if v.ndim >= 2 else v.clone().reshape(1)
    m = out["master_gain_db"]
    out["gain_db"] = out["gain_db"] + m[:, None]
    out["threshold_db"] = out["threshold_db"] + m[:, None]
    out["master_gain_db"] = torch.zeros_like(m)
    return out


def lead_console(lead, params: Mapping, sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """The lead through its one-track console: ``lead`` ``(T,)`` or ``(B, T)``, ``params`` one-track console
    parameters (batch 1 or ``B``) -> stereo ``(B, 2, T)``."""
    x = _tensor(lead, "lead")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"lead must be (samples,) or (batch, samples); got shape {tuple(x.shape)}.")
    b = max(x.shape[0], int(torch.as_tensor(params["gain_db"]).shape[0]))
    with torch.no_grad():
        return dsp.mix(x.expand(b, -1)[:, None], sample_rate, params)


def render(lead, backing, params: Mapping, sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """``lead_console(lead, params) + backing``: the mix ``(2, T)`` (``(B, 2, T)`` for a batch of parameters)."""
    b = _check_backing(backing, None)
    y = lead_console(lead, params, sample_rate)
    if y.shape[-1] != b.shape[-1]:
        raise ValueError(f"backing has {b.shape[-1]} samples but the lead {y.shape[-1]}: give the same excerpt of both.")
    y = y + b
    return y[0] if y.shape[0] == 1 else y


def pair(song_id: str, engineer: str = "natural", seconds: Optional[float] = None, start: float = 0.0) -> dict:
    """A lead-and-backing pair of a bundled song: ``{"lead": (T,) raw dry lead, "backing": (2, T) the engineer's
    other wet stems summed, "mix": (2, T) the engineer's mix, "wet_lead": (2, T), "truth": one-track console params
    (:func:`lead_params`), "tempo": bpm, "song", "engineer", "sample_rate"}``; ``seconds`` from ``start`` (s) or the
    whole song."""
    from . import data

    _check_engineer(engineer)
    s = data.load_song(song_id)
    k = lead_index(s["roles"])
    wet = data.wet_stems_of(song_id, engineer)
    a = round(start * data.SAMPLE_RATE)
    b = wet.shape[-1] if seconds is None else min(wet.shape[-1], a + round(seconds * data.SAMPLE_RATE))
    others = torch.cat([wet[:k], wet[k + 1:]]).sum(0)
    return {"lead": s["tracks"][k, a:b].clone(), "backing": others[:, a:b].contiguous(),
            "mix": wet.sum(0)[:, a:b].contiguous(), "wet_lead": wet[k, :, a:b].contiguous(),
            "truth": lead_params(data.mix_params(song_id, engineer), k), "tempo": float(s["entry"]["tempo"]),
            "song": song_id, "engineer": engineer, "sample_rate": data.SAMPLE_RATE}


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------

def _lufs(x: torch.Tensor, sr: float) -> float:
    x = x.float()
    x = x[None, None] if x.ndim == 1 else x[None] if x.ndim == 2 else x
    v, _ = audio._measure(x, sr)
    return float(v[0])


def lead_to_mix_lu(wet_lead, mix, sample_rate: float = SAMPLE_RATE) -> float:
    """Lead-to-mix ratio (LU): integrated loudness of the wet lead ``(2, T)`` minus that of the mix ``(2, T)``."""
    return _lufs(_check_backing(wet_lead, None, "wet_lead"), sample_rate) - _lufs(_check_backing(mix, None, "mix"), sample_rate)


def lead_to_backing_lu(wet_lead, backing, sample_rate: float = SAMPLE_RATE) -> float:
    """Lead-to-backing ratio (LU): integrated loudness of the wet lead minus that of the backing (both ``(2, T)``)."""
    return _lufs(_check_backing(wet_lead, None, "wet_lead"), sample_rate) - _lufs(_check_backing(backing, None), sample_rate)


def loudness_range_db(x, sample_rate: float = SAMPLE_RATE) -> float:
    """Loudness range (dB) of a clip ``(T,)`` or ``(C, T)``: the 10th-95th percentile spread of its 400 ms block
    levels every 100 ms (:func:`automix_lite.audio.level_range_db`, blocks within 40 dB of the loudest, no
    K-weighting). EBU R 128's LRA uses 3 s windows, which on 8-10 s songs leaves too few to rank."""
    return float(audio.level_range_db(_tensor(x, "x"), sample_rate, LRA_FRAME_MS, LRA_HOP_MS, LRA_PERCENTILES))


@functools.lru_cache(maxsize=256)
def _stats_row(song_id: str, engineer: str) -> tuple:
    p = pair(song_id, engineer)
    t = p["truth"]
    sr = p["sample_rate"]
    return (("song", song_id), ("engineer", engineer), ("tempo", p["tempo"]),
            ("lead_to_mix_lu", lead_to_mix_lu(p["wet_lead"], p["mix"], sr)),
            ("lead_to_backing_lu", lead_to_backing_lu(p["wet_lead"], p["backing"], sr)),
            ("raw_lra_db", loudness_range_db(p["lead"], sr)), ("wet_lra_db", loudness_range_db(p["wet_lead"], sr)),
            ("t60_s", float(t["reverb_t60_s"][0])), ("send_db", float(t["reverb_send_db"][0, 0])),
            ("return_db", float(t["reverb_return_db"][0])), ("gain_db", float(t["gain_db"][0, 0])),
            ("raw_lufs", _lufs(p["lead"], sr)), ("ratio", float(t["ratio"][0, 0])))


def engineer_stats(split: str = "train", engineers: Sequence[str] = ENGINEERS, songs: Optional[int] = None) -> dict:
    """What the bundled engineers do to the lead on ``split`` (first ``songs`` songs): ``{"rows": one dict per song
    and engineer (tempo, lead_to_mix_lu, lead_to_backing_lu, raw_lra_db, wet_lra_db, t60_s, send_db, return_db,
    gain_db, raw_lufs, ratio), "summary": {engineer: {key: (mean, sd, min, max)}}, "t60_fit": {engineer: (a, b)}}``
    with ``T60 = a + b * tempo`` fitted by least squares (:func:`fit_t60_tempo`). Rows are cached in memory."""
    from . import data

    rows = [dict(_stats_row(e["id"], _check_engineer(eng))) for eng in engineers for e in data.songs("songs", split)[:songs]]
    keys = [k for k in rows[0] if k not in ("song", "engineer")]
    summary, fit = {}, {}
    for eng in engineers:
        r = [row for row in rows if row["engineer"] == eng]
        summary[eng] = {k: tuple(float(f(np.array([x[k] for x in r]))) for f in (np.mean, lambda v: v.std(ddof=1) if v.size > 1 else 0.0, np.min, np.max))
                        for k in keys}
        fit[eng] = fit_t60_tempo([x["tempo"] for x in r], [x["t60_s"] for x in r]) if len(r) > 1 else (float(r[0]["t60_s"]), 0.0)
    return {"rows": rows, "summary": summary, "t60_fit": fit, "split": split}


def fit_t60_tempo(tempos, t60s) -> tuple:
    """Least-squares line ``T60 = a + b * tempo`` (s, bpm) through the points: returns ``(a, b)``."""
    t, y = np.asarray(tempos, dtype=float), np.asarray(t60s, dtype=float)
    if t.shape != y.shape or t.ndim != 1 or t.size < 2:
        raise ValueError(f"tempos and t60s must be two 1-D sequences of the same length >= 2; got {t.shape} and {y.shape}.")
    if not (np.isfinite(t).all() and np.isfinite(y).all()):
        raise ValueError("tempos and t60s must be finite numbers.")
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(t), t], 1), y, rcond=None)
    return float(a), float(b)


@functools.lru_cache(maxsize=8)
def _constants(engineer: str, split: str) -> tuple:
    st = engineer_stats(split, (engineer,))
    rows = st["rows"]
    a, b = st["t60_fit"][engineer]
    return (("t60_a", a), ("t60_b", b), ("send_db", float(np.median([r["send_db"] for r in rows]))),
            ("return_db", float(np.median([r["return_db"] for r in rows]))))


def rule_constants(engineer: str = "natural", split: str = "train") -> dict:
    """The rules' constants fitted on ``split``'s ``engineer``: ``{"t60_a", "t60_b"}`` (:func:`fit_t60_tempo`) and the
    median lead reverb ``send_db`` and bus ``return_db``."""
    return dict(_constants(_check_engineer(engineer), split))


# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------

def solve_gain(wet_lead, backing, sample_rate: float = SAMPLE_RATE, target_lu: float = TARGET_LMR_LU,
               iterations: int = 4) -> float:
    """The gain (dB) to apply to ``wet_lead`` ``(2, T)`` so that its lead-to-mix ratio against ``backing`` is
    ``target_lu``.

    Start from power addition (lead and backing uncorrelated: ``L_mix = 10 log10(10^(L_lead/10) + 10^(L_b/10))``,
    hence ``L_lead = L_b + 10 log10(r / (1 - r))`` with ``r = 10^(target/10)``), then Newton steps on the measured
    ratio (its slope in the gain is ``1 - r``), which absorb gating and correlation."""
    lead, b = _check_backing(wet_lead, None, "wet_lead"), _check_backing(backing, wet_lead.shape[-1])
    if not -20.0 < target_lu < 0.0:
        raise ValueError(f"target_lu must lie in (-20, 0) LU (the lead is part of the mix); got {target_lu!r}.")
    lead_l, back_l = _lufs(lead, sample_rate), _lufs(b, sample_rate)
    if not math.isfinite(lead_l):
        raise ValueError("wet_lead is silent (-inf LUFS): there is no lead to set the level of.")
    r = 10 ** (target_lu / 10)
    g = back_l + 10 * math.log10(r / (1 - r)) - lead_l if math.isfinite(back_l) else 0.0
    for _ in range(iterations):
        y = lead * 10 ** (g / 20)
        now = _lufs(y, sample_rate) - _lufs(y + b, sample_rate)
        g += (target_lu - now) / max(1 - 10 ** (now / 10), 0.05)
    return float(g)


def _mid_power(x: torch.Tensor) -> np.ndarray:
    """Long-term power spectrum (n_fft 4096, hop 1024, Hann) of a mono ``(T,)`` or the mid of ``(2, T)``."""
    m = x if x.ndim == 1 else x.mean(0)
    spec = torch.stft(m.float(), _FFT, _FFT // 4, window=torch.hann_window(_FFT), return_complex=True)
    return spec.abs().pow(2).mean(-1).double().numpy()


def _band_sum(power: np.ndarray, sr: float) -> np.ndarray:
    freqs = np.fft.rfftfreq(2 * (power.shape[-1] - 1), 1.0 / sr)
    return np.stack([power[..., (freqs >= lo) & (freqs < hi)].mean(-1) for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])], -1)


def band_energies(x, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Mean power per band (linear, :data:`N_BANDS` log bands 40 Hz-16 kHz, :data:`BAND_EDGES`) of a mono ``(T,)``
    or the mid ``(L + R) / 2`` of a stereo ``(2, T)`` clip."""
    x = _tensor(x, "x")
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] not in (1, 2)):
        raise ValueError(f"x must be (samples,) or (channels, samples) with 1 or 2 channels; got {tuple(x.shape)}.")
    if x.shape[-1] < _FFT:
        raise ValueError(f"x has {x.shape[-1]} samples; band energies need at least {_FFT}.")
    return _band_sum(_mid_power(x), sample_rate)


def masking_per_band(lead, backing, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """How much the backing masks the lead in each band: ``M_b = w_b * max(0, 10 log10(E_backing,b / E_lead,b))``,
    the dB by which the backing exceeds the lead in band ``b`` (0 where the lead dominates) weighted by the lead's
    share of its own energy ``w_b = E_lead,b / sum E_lead`` (a band the lead hardly plays in does not count).
    ``lead`` mono or stereo, ``backing`` ``(2, T)``; energies from :func:`band_energies`. Returns ``(N_BANDS,)``."""
    el, eb = band_energies(lead, sample_rate), band_energies(backing, sample_rate)
    w = el / max(el.sum(), 1e-30)
    return w * np.maximum(0.0, 10 * np.log10((eb + 1e-30) / (el + 1e-30)))


def masking_eq(lead, backing, sample_rate: float = SAMPLE_RATE, gain_db: float = -3.0, q: float = 1.0,
               low_hz: float = 150.0, high_hz: float = 8000.0) -> dict:
    """The rule's EQ: one peak of ``gain_db`` (default a 3 dB cut) and ``q`` at the centre of the band between
    ``low_hz`` and ``high_hz`` where :func:`masking_per_band` is largest. Only the lead can move (the backing is a
    finished mix), so the rule cuts the lead where the backing covers it anyway; the gain step then raises the whole
    lead, which lifts its unmasked bands. No band masked: ``gain_db`` 0. Returns ``{"peak_cutoff_hz", "peak_gain_db",
    "peak_q", "band", "masking"}``."""
    m = masking_per_band(lead, backing, sample_rate)
    ok = (BAND_CENTRES >= low_hz) & (BAND_CENTRES <= high_hz)
    band = int(np.argmax(np.where(ok, m, -1.0)))
    return {"peak_cutoff_hz": float(BAND_CENTRES[band]), "peak_gain_db": float(gain_db) if m[band] > 0 else 0.0,
            "peak_q": float(q), "band": band, "masking": m.tolist()}


def _with(params: Mapping, batch: int = 1, **values) -> dict:
    out = {k: torch.as_tensor(v).float().clone() for k, v in params.items()}
    if batch > 1:
        out = {k: v.expand(batch, *v.shape[1:]).clone() for k, v in out.items()}
    for name, v in values.items():
        if name.startswith("peak_"):
            band, v = v
            out[name][:, 0, band] = torch.as_tensor(v, dtype=torch.float32)
            continue
        v = torch.as_tensor(v, dtype=torch.float32)
        if out[name].ndim == 2:
            out[name][:, 0] = v
        else:
            out[name][:] = v
    return out


def rule_compressor(lead, params: Mapping, backing=None, sample_rate: float = SAMPLE_RATE,
                    target_lra_db: float = TARGET_LRA_DB) -> dict:
    """The compressor setting from a small grid (ratio 1, and :data:`THRESHOLDS_REL` x :data:`RATIOS`, rendered in one
    batch) whose wet lead has the loudness range (:func:`loudness_range_db`) closest to ``target_lra_db``; among the
    settings within 0.25 dB of the closest, the gentlest (least static gain reduction at the lead's loudness,
    ``max(0, -threshold_rel) (1 - 1 / ratio)``).

    Thresholds sit relative to the lead's loudness at the compressor (the raw lead's LUFS plus ``gain_db``), so the
    choice does not depend on the gain. Compression only narrows the range: a lead whose uncompressed range is already
    at or below the target keeps ratio 1 (and the grid is not rendered: ``"grid"`` holds that one setting). Returns ``{"params": params with threshold_db and ratio set, "threshold_db",
    "ratio", "lra_db": the chosen range, "lra_before_db", "grid": [(threshold_rel, ratio, lra)]}``."""
    x = _check_lead(lead, sample_rate)
    level = _lufs(x, sample_rate) + float(params["gain_db"][0, 0])
    before = loudness_range_db(lead_console(x, _with(params, ratio=1.0), sample_rate)[0], sample_rate)
    if before <= target_lra_db:  # compression would only narrow it further: leave the lead alone
        out = _with(params, ratio=1.0)
        return {"params": out, "threshold_db": float(out["threshold_db"][0, 0]), "ratio": 1.0, "lra_db": before,
                "lra_before_db": before, "grid": [(0.0, 1.0, before)]}
    grid = [(0.0, 1.0)] + [(t, r) for t in THRESHOLDS_REL for r in RATIOS]
    thr = torch.tensor([min(0.0, max(-60.0, level + t)) for t, _ in grid])
    p = _with(params, len(grid), threshold_db=thr, ratio=torch.tensor([r for _, r in grid]))
    y = lead_console(x, p, sample_rate)
    lra = [loudness_range_db(v, sample_rate) for v in y]
    miss = np.array([abs(v - target_lra_db) for v in lra])
    # the gentlest setting (least static gain reduction at the lead's loudness) among those within 0.25 dB of the best
    reduction = np.array([max(0.0, -t) * (1 - 1 / r) for t, r in grid])
    k = int(np.argmin(np.where(miss <= miss.min() + 0.25, reduction, np.inf)))
    out = _with(params, threshold_db=float(thr[k]), ratio=grid[k][1])
    return {"params": out, "threshold_db": float(thr[k]), "ratio": grid[k][1], "lra_db": lra[k],
            "lra_before_db": lra[0], "grid": [(t, r, v) for (t, r), v in zip(grid, lra)]}


def _set_gain(lead, backing, params: Mapping, sr: float, target_lu: float) -> dict:
    """``params`` with ``gain_db`` raised by the gain that brings the wet lead to ``target_lu`` (the threshold moves
    with it, so the compressor acts the same and the wet lead only scales)."""
    d = solve_gain(lead_console(lead, params, sr)[0], backing, sr, target_lu)
    g, t = float(params["gain_db"][0, 0]) + d, float(params["threshold_db"][0, 0]) + d
    g = min(24.0, max(-48.0, g))
    return _with(params, gain_db=g, threshold_db=min(0.0, max(-60.0, t)))


def rule_params(lead, backing, tempo: float, sample_rate: float = SAMPLE_RATE, engineer: str = "natural",
                target_lu: float = TARGET_LMR_LU, target_lra_db: Optional[float] = TARGET_LRA_DB,
                eq: bool = True, t60_s: Optional[float] = None, constants: Optional[Mapping] = None) -> dict:
    """The proposal's rule baseline: one-track console parameters for ``lead`` ``(T,)`` against ``backing`` ``(2, T)``.

    In order: the masking EQ (:func:`masking_eq` of the lead at the gain that the uncorrected strip needs, peak band
    0; ``eq=False`` skips it), so that no step depends on the raw lead's level; the reverb (``T60 = a + b *
    tempo``, send and return: :func:`rule_constants` of ``engineer``'s TRAIN mixes unless ``constants`` are given;
    ``t60_s`` overrides the line); a first gain (:func:`solve_gain`); the compressor (:func:`rule_compressor`,
    ``target_lra_db=None`` skips it); the gain again to ``target_lu`` with the compressor in place. Returns
    ``{"params", "eq", "compressor", "t60_s"}``."""
    x = _check_lead(lead, sample_rate)
    b = _check_backing(backing, x.shape[0])
    tempo = _check_tempo(tempo)
    c = rule_constants(engineer) if constants is None else dict(constants)
    t60 = c["t60_a"] + c["t60_b"] * tempo if t60_s is None else float(t60_s)
    t60 = min(5.0, max(0.1, t60))
    p = _with(neutral_params(), reverb_t60_s=t60, reverb_send_db=c["send_db"], reverb_return_db=c["return_db"])
    # masking is measured with the lead at the level it will have in the mix, so the rules do not depend on the raw
    # lead's recorded level
    g0 = solve_gain(lead_console(x, p, sample_rate)[0], b, sample_rate, target_lu)
    e = masking_eq(x * 10 ** (g0 / 20), b, sample_rate) if eq else None
    if e is not None:
        p = _with(p, peak_cutoff_hz=(0, e["peak_cutoff_hz"]), peak_gain_db=(0, e["peak_gain_db"]),
                  peak_q=(0, e["peak_q"]))
    p = _set_gain(x, b, p, sample_rate, target_lu)
    comp = None
    if target_lra_db is not None:
        comp = rule_compressor(x, p, b, sample_rate, target_lra_db)
        p = _set_gain(x, b, comp["params"], sample_rate, target_lu)
        comp = {k: v for k, v in comp.items() if k != "params"}
    return {"params": p, "eq": e, "compressor": comp, "t60_s": t60}


# --------------------------------------------------------------------------------------------
# The data-driven models: features, targets, the level alteration
# --------------------------------------------------------------------------------------------

FEATURE_NAMES = tuple([f"lead_band_{k}_db" for k in range(N_BANDS)] + [f"backing_band_{k}_db" for k in range(N_BANDS)]
                      + ["lead_lufs", "backing_lufs", "lead_crest_db", "lead_lra_db", "backing_lra_db", "tempo_100bpm"])
"""The models' inputs (:func:`input_features`): band levels (dB, 10 log10 of :func:`band_energies`) of the raw lead and
of the backing, both integrated loudnesses, the lead's crest factor and both loudness ranges, tempo / 100."""
LEVEL_DEPENDENT = np.array([n.startswith("lead_band") or n == "lead_lufs" for n in FEATURE_NAMES], dtype=float)
"""1 for the features that move by exactly ``a`` dB when the raw lead is scaled by ``a`` dB (:func:`alter`)."""
INTERMEDIATE_NAMES = ("lead_to_mix_lu", "wet_lra_db", "t60_s")
DIRECT_NAMES = ("gain_db", "threshold_db", "log2_ratio", "t60_s")


def input_features(lead, backing, tempo: float, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """The :data:`FEATURE_NAMES` vector ``(54,)`` of a raw lead ``(T,)`` and a backing ``(2, T)``."""
    x = _check_lead(lead, sample_rate)
    b = _check_backing(backing, x.shape[0])
    tempo = _check_tempo(tempo)
    rms = float(x.pow(2).mean().sqrt())
    return np.concatenate([10 * np.log10(band_energies(x, sample_rate) + 1e-20),
                           10 * np.log10(band_energies(b, sample_rate) + 1e-20),
                           [_lufs(x, sample_rate), _lufs(b, sample_rate), 20 * math.log10(float(x.abs().max()) / rms),
                            loudness_range_db(x, sample_rate), loudness_range_db(b, sample_rate), tempo / 100]])


def alter(features, alteration_db) -> np.ndarray:
    """Features of the raw lead scaled by ``alteration_db`` (scalar or one per row): the level-dependent ones
    (:data:`LEVEL_DEPENDENT`) shift by exactly that many dB, the rest stay (crest factor and range are ratios)."""
    f = np.asarray(features, dtype=float)
    a = np.asarray(alteration_db, dtype=float)
    return f + (a[..., None] if a.ndim else a) * LEVEL_DEPENDENT


def intermediate_targets(wet_lead, mix, t60_s: float, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """What the engineer's result measures (:data:`INTERMEDIATE_NAMES`): lead-to-mix ratio (LU), the wet lead's
    loudness range (dB), the lead's T60 (s). None of them depends on the raw lead's level."""
    return np.array([lead_to_mix_lu(wet_lead, mix, sample_rate), loudness_range_db(wet_lead, sample_rate), float(t60_s)])


def direct_targets(truth: Mapping, alteration_db=0.0) -> np.ndarray:
    """The engineer's parameters as the direct model predicts them (:data:`DIRECT_NAMES`), for a raw lead altered by
    ``alteration_db``: the gain moves by ``-alteration_db`` (the fader undoes the alteration); threshold (after the
    gain), log2 ratio and T60 do not move."""
    a = np.asarray(alteration_db, dtype=float)
    base = np.array([float(truth["gain_db"][0, 0]), float(truth["threshold_db"][0, 0]),
                     math.log2(float(truth["ratio"][0, 0])), float(truth["reverb_t60_s"][0])])
    return base - (a[..., None] if a.ndim else a) * np.array([1.0, 0.0, 0.0, 0.0])


_SET_VERSION = 1


def training_set(split: str = "train", crops: int = 8, seconds: float = 6.0, seed: int = 0,
                 engineers: Sequence[str] = ENGINEERS, cache: bool = True) -> dict:
    """Crops of the pairs of ``split`` for the models: ``{"x": (n, 54) features, "intermediate": (n, 3),
    "direct": (n, 4) targets at alteration 0, "song": [...], "engineer": [...]}``.

    ``crops`` random crops of ``seconds`` per song and engineer (``numpy.random.default_rng([seed, song index])``),
    skipping crops whose raw lead is quieter than -60 LUFS. Cached as JSON under
    :func:`automix_lite.data.cache_dir` (written atomically)."""
    from . import data

    for eng in engineers:
        _check_engineer(eng)
    entries = data.songs("songs", split)
    key = hashlib.sha256(json.dumps([_SET_VERSION, split, crops, seconds, seed, list(engineers),
                                     sorted(data.manifest().get("checksums", {}).items())]).encode()).hexdigest()[:16]
    path = os.path.join(data.cache_dir(), "lead_backing", f"set.{split}.{key}.json")
    if cache and os.path.isfile(path):
        with open(path) as f:
            d = json.load(f)
        return {k: np.asarray(v) if k in ("x", "intermediate", "direct") else v for k, v in d.items()}
    rows = {"x": [], "intermediate": [], "direct": [], "song": [], "engineer": []}
    n = round(seconds * data.SAMPLE_RATE)
    for i, e in enumerate(entries):
        rng = np.random.default_rng([seed, i])
        starts = rng.integers(0, max(1, e["samples"] - n), crops)
        for eng in engineers:
            p = pair(e["id"], eng)
            for a in starts:
                sl = slice(int(a), int(a) + n)
                lead, back = p["lead"][sl], p["backing"][:, sl]
                if _lufs(lead, data.SAMPLE_RATE) < SILENCE_DB:
                    continue
                rows["x"].append(input_features(lead, back, p["tempo"]).tolist())
                rows["intermediate"].append(intermediate_targets(p["wet_lead"][:, sl], p["mix"][:, sl],
                                                                 float(p["truth"]["reverb_t60_s"][0])).tolist())
                rows["direct"].append(direct_targets(p["truth"]).tolist())
                rows["song"].append(e["id"])
                rows["engineer"].append(eng)
    if cache:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f)
        os.replace(tmp, path)
    return {k: np.asarray(v) if k in ("x", "intermediate", "direct") else v for k, v in rows.items()}


class LeadMLP(nn.Module):
    """A small MLP ``n_in -> hidden -> hidden -> n_out`` (GELU) with fixed input and output standardisation
    (``x_mean``, ``x_std``, ``y_mean``, ``y_std`` buffers from the training set): :meth:`forward` maps standardised
    inputs to standardised outputs, :meth:`predict` real units to real units."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64, x_stats=None, y_stats=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, n_out))
        xs = x_stats or (np.zeros(n_in), np.ones(n_in))
        ys = y_stats or (np.zeros(n_out), np.ones(n_out))
        for name, v in (("x_mean", xs[0]), ("x_std", xs[1]), ("y_mean", ys[0]), ("y_std", ys[1])):
            self.register_buffer(name, torch.as_tensor(np.asarray(v), dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def predict(self, x) -> np.ndarray:
        """Real-unit outputs ``(n, n_out)`` for real-unit inputs ``(n, n_in)`` (or one ``(n_in,)`` -> ``(n_out,)``)."""
        a = torch.as_tensor(np.asarray(x, dtype=np.float32))
        one = a.ndim == 1
        with torch.no_grad():
            y = self((a.reshape(-1, a.shape[-1]) - self.x_mean) / self.x_std) * self.y_std + self.y_mean
        y = y.double().numpy()
        return y[0] if one else y


def _stats(a: np.ndarray) -> tuple:
    return a.mean(0), np.maximum(a.std(0), 1e-3)


def _targets(kind: str, s: Mapping, alteration: np.ndarray) -> np.ndarray:
    if kind == "intermediate":
        return s["intermediate"]
    return s["direct"] - alteration[:, None] * np.array([1.0, 0.0, 0.0, 0.0])


def train_model(kind: str, train: Mapping, val: Optional[Mapping] = None, steps: int = 1500, batch_size: int = 64,
                lr: float = 1e-3, hidden: int = 64, weight_decay: float = 1e-4, alter_db: float = 12.0,
                val_every: int = 50, seed: int = 0) -> tuple:
    """Train the ``"intermediate"`` or the ``"direct"`` model on :func:`training_set` crops ``train``.

    Every step draws ``batch_size`` crops and a level alteration ``a ~ U(-alter_db, alter_db)`` dB of each raw lead
    (:func:`alter`; the direct gain target moves by ``-a``, :func:`direct_targets`); loss: mean squared error of the
    standardised outputs. AdamW at ``lr`` (``weight_decay``) with a cosine decay to 5 %, seeded by ``seed``. Every ``val_every`` steps the
    loss on ``val`` (one fixed alteration per crop, seed + 1) is recorded and the best model kept. Returns ``(model,
    history {"step", "loss", "val_step", "val_loss", "best_val"})``."""
    if kind not in ("intermediate", "direct"):
        raise ValueError(f"kind must be 'intermediate' or 'direct'; got {kind!r}.")
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = train["x"]
    xs = _stats(alter(x, g.uniform(-alter_db, alter_db, len(x))))
    ys = _stats(_targets(kind, train, g.uniform(-alter_db, alter_db, len(x))))
    model = LeadMLP(x.shape[1], 3 if kind == "intermediate" else 4, hidden, xs, ys)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def loss_of(xa, ya):
        z = (torch.as_tensor(xa, dtype=torch.float32) - model.x_mean) / model.x_std
        t = (torch.as_tensor(ya, dtype=torch.float32) - model.y_mean) / model.y_std
        return (model(z) - t).pow(2).mean()

    if val is not None:
        va = np.random.default_rng(seed + 1).uniform(-alter_db, alter_db, len(val["x"]))
        vx, vy = alter(val["x"], va), _targets(kind, val, va)
    def batch_loss():
        idx = g.integers(0, len(x), batch_size)
        a = g.uniform(-alter_db, alter_db, batch_size)
        return loss_of(alter(x[idx], a), _targets(kind, {k: train[k][idx] for k in ("intermediate", "direct")}, a))

    return _fit(model, opt, steps, batch_loss, None if val is None else (lambda: loss_of(vx, vy)), val_every)


def _fit(model: nn.Module, opt, steps: int, batch_loss, val_loss, val_every: int) -> tuple:
    """The loop both trainers share: ``steps`` optimiser steps on ``batch_loss()`` with a cosine decay of the learning
    rate to 5 %, ``val_loss()`` (if given) every ``val_every`` steps and at the end, the best model kept. Returns
    ``(model in eval mode, history {"step", "loss", "val_step", "val_loss", "best_val"})``."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    hist = {"step": [], "loss": [], "val_step": [], "val_loss": [], "best_val": None}
    best = (math.inf, None)
    for step in range(1, steps + 1):
        loss = batch_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist["step"].append(step)
        hist["loss"].append(loss.item())
        if val_loss is not None and (step % val_every == 0 or step == steps):
            with torch.no_grad():
                v = float(val_loss())
            hist["val_step"].append(step)
            hist["val_loss"].append(v)
            if v < best[0]:
                best = (v, {k: t.clone() for k, t in model.state_dict().items()})
    if best[1] is not None:
        model.load_state_dict(best[1])
        hist["best_val"] = best[0]
    model.eval()
    return model, hist


def params_from_intermediate(pred, lead, backing, tempo: float, sample_rate: float = SAMPLE_RATE,
                             engineer: str = "natural", eq: bool = True, constants: Optional[Mapping] = None) -> dict:
    """Post-processing of the intermediate model: :func:`rule_params` with the predicted lead-to-mix ratio as the
    gain's target, the predicted loudness range as the compressor's and the predicted T60 (clipped to 0.1-5 s);
    ``constants`` (send and return) as for :func:`rule_params`."""
    lmr, lra, t60 = (float(v) for v in np.asarray(pred).reshape(-1)[:3])
    return rule_params(lead, backing, tempo, sample_rate, engineer, target_lu=min(-0.5, max(-19.0, lmr)),
                       target_lra_db=lra, eq=eq, t60_s=t60, constants=constants)


def params_from_direct(pred, lead, backing, tempo: float, sample_rate: float = SAMPLE_RATE, engineer: str = "natural",
                       eq: bool = True, constants: Optional[Mapping] = None) -> dict:
    """The direct model's parameters: its gain, threshold, ratio and T60 (clipped to the console's ranges) in the rules'
    strip (masking EQ, send and return of :func:`rule_params`, ``constants`` as there)."""
    gain, thr, l2r, t60 = (float(v) for v in np.asarray(pred).reshape(-1)[:4])
    base = rule_params(lead, backing, tempo, sample_rate, engineer, target_lra_db=None, eq=eq, constants=constants)
    p = _with(base["params"], gain_db=min(24.0, max(-48.0, gain)), threshold_db=min(0.0, max(-60.0, thr)),
              ratio=min(20.0, max(1.0, 2 ** l2r)), reverb_t60_s=min(5.0, max(0.1, t60)))
    return {"params": p, "eq": base["eq"], "compressor": None, "t60_s": float(p["reverb_t60_s"][0])}


# --------------------------------------------------------------------------------------------
# The self-supervised EQ
# --------------------------------------------------------------------------------------------

EQ_RANGE = {"centre_hz": (200.0, 8000.0), "gain_db": (-12.0, 12.0), "q": 1.0}
"""The random peak EQ of the self-supervised task: centre log-uniform, gain uniform, fixed Q."""
_EQ_FFT = 2048
LOSS_FREQS = np.geomspace(100.0, 12000.0, 64)
"""The 64 log frequencies (Hz) on which the self-supervised EQ's loss compares responses."""


def peak_response_db(freqs, centre_hz, gain_db, q=1.0, sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """Magnitude response (dB) of RBJ peaking biquads at ``freqs`` (Hz, ``(F,)``): ``centre_hz`` and ``gain_db`` are
    ``(B,)`` tensors (or floats) -> ``(B, F)`` float64. Differentiable in centre and gain. A peak of ``-g`` at the same centre and
    Q is the exact inverse of one of ``+g`` (its response is the negative in dB)."""
    c = torch.as_tensor(centre_hz).to(torch.float64).reshape(-1)
    g = torch.as_tensor(gain_db).to(torch.float64).reshape(-1)
    b, a = dsp.biquad_coefficients("peaking", g, c, torch.full_like(c, float(q)), sample_rate)
    w = 2 * math.pi * torch.as_tensor(np.asarray(freqs, dtype=np.float64)) / sample_rate
    z = torch.exp(-1j * w.to(torch.complex128))  # z^-1 on the unit circle

    def poly(k):
        k = k.to(torch.complex128)
        return k[:, :1] + k[:, 1:2] * z + k[:, 2:3] * z * z

    return 20 * torch.log10(poly(b).abs() / poly(a).abs())


@functools.lru_cache(maxsize=8)
def _lead_spectra(split: str, engineers: tuple, kind: str, segment_s: float) -> np.ndarray:
    from . import data

    out = []
    hop = _EQ_FFT // 4
    per = max(1, round(segment_s * data.SAMPLE_RATE / hop))
    for e in data.songs("songs", split):
        for eng in engineers:
            p = pair(e["id"], eng)
            x = p["wet_lead"].mean(0) if kind == "wet" else p["lead"]
            spec = torch.stft(x, _EQ_FFT, hop, window=torch.hann_window(_EQ_FFT), return_complex=True).abs().pow(2)
            frames = spec.double().numpy()
            segs = [frames[:, i:i + per].mean(1) for i in range(0, frames.shape[1] - per + 1, per)]
            out.append(np.stack(segs))
    return np.stack([s[:min(len(t) for t in out)] for s in out])


def lead_spectra(split: str = "train", engineers: Sequence[str] = ENGINEERS, kind: str = "wet",
                 segment_s: float = 1.0) -> np.ndarray:
    """Power spectra ``(leads, segments, 1025)`` (n_fft 2048) of the wet (``kind="wet"``, the mid) or raw
    (``"raw"``) leads of ``split`` (one lead per song and engineer), averaged over ``segment_s`` segments."""
    if kind not in ("wet", "raw"):
        raise ValueError(f"kind must be 'wet' or 'raw'; got {kind!r}.")
    return _lead_spectra(split, tuple(_check_engineer(e) for e in engineers), kind, float(segment_s))


_EQ_FREQS = np.fft.rfftfreq(_EQ_FFT, 1.0 / SAMPLE_RATE)
_EQ_MASKS = np.stack([(_EQ_FREQS >= lo) & (_EQ_FREQS < hi) for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])]).astype(float)
_EQ_MASKS /= np.maximum(_EQ_MASKS.sum(1, keepdims=True), 1)


def _bands_db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(power @ _EQ_MASKS.T + 1e-20)


def _shape(power: np.ndarray) -> np.ndarray:
    db = _bands_db(power)
    return db - db.mean(-1, keepdims=True)


def eq_batch(spectra: np.ndarray, n: int, rng: np.random.Generator) -> dict:
    """``n`` self-supervised examples: a random lead and run of 1-4 segments of ``spectra`` (:func:`lead_spectra`), a
    random peak EQ (:data:`EQ_RANGE`) applied to its power spectrum; ``{"x": (n, 24) band shape (dB, mean removed) of
    the EQ'd lead, "power": (n, 1025) clean power, "centre_hz", "gain_db": (n,) the EQ; the label is the same centre
    and -gain_db}``."""
    lo, hi = EQ_RANGE["centre_hz"]
    i = rng.integers(0, spectra.shape[0], n)
    length = rng.integers(1, min(4, spectra.shape[1]) + 1, n)
    start = rng.integers(0, spectra.shape[1] - length + 1)
    power = np.stack([spectra[a, s:s + k].mean(0) for a, s, k in zip(i, start, length)])
    centre = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    gain = rng.uniform(*EQ_RANGE["gain_db"], n)
    h = peak_response_db(_EQ_FREQS[1:], centre, gain, EQ_RANGE["q"]).double().numpy()
    h = np.concatenate([np.zeros((n, 1)), h], 1)
    return {"x": _shape(power * 10 ** (h / 10)), "power": power, "centre_hz": centre, "gain_db": gain}


class EqCorrector(nn.Module):
    """The self-supervised EQ model: an MLP from the 24-band shape (dB) of a lead to one correcting peak (centre in
    :data:`EQ_RANGE`, log-scaled by a sigmoid; gain ``12 tanh``; Q fixed). ``forward(x (B, 24))`` -> ``(centre_hz
    (B,), gain_db (B,))``."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_BANDS, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> tuple:
        lo, hi = EQ_RANGE["centre_hz"]
        o = self.net(x / 10.0)
        centre = torch.exp(math.log(lo) + torch.sigmoid(o[:, 0]) * math.log(hi / lo))
        return centre, 12.0 * torch.tanh(o[:, 1])


def _eq_loss(model: EqCorrector, b: Mapping) -> torch.Tensor:
    c, g = model(torch.as_tensor(b["x"], dtype=torch.float32))
    want = -peak_response_db(LOSS_FREQS, b["centre_hz"], b["gain_db"], EQ_RANGE["q"])
    return (peak_response_db(LOSS_FREQS, c, g, EQ_RANGE["q"]) - want).pow(2).mean()


def train_eq_model(spectra: Optional[np.ndarray] = None, val_spectra: Optional[np.ndarray] = None, steps: int = 1500,
                   batch_size: int = 64, lr: float = 3e-3, hidden: int = 64, val_every: int = 50, seed: int = 0) -> tuple:
    """Train an :class:`EqCorrector` on :func:`eq_batch` examples of the TRAIN wet leads (``spectra``, default
    :func:`lead_spectra`): loss = mean squared difference (dB) between the predicted correction's response and the
    true inverse (``-`` the random EQ's) on 64 log frequencies 100 Hz-12 kHz. Adam, cosine decay, seeded; validation
    on 256 fixed examples of ``val_spectra`` (default the VAL wet leads) every ``val_every`` steps, the best kept.
    Returns ``(model, history)`` like :func:`train_model`."""
    spectra = lead_spectra("train") if spectra is None else spectra
    val_spectra = lead_spectra("val") if val_spectra is None else val_spectra
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EqCorrector(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    vb = eq_batch(val_spectra, 256, np.random.default_rng(seed + 1))
    return _fit(model, opt, steps, lambda: _eq_loss(model, eq_batch(spectra, batch_size, rng)),
                lambda: _eq_loss(model, vb), val_every)


def predict_eq(model: EqCorrector, lead, sample_rate: float = SAMPLE_RATE) -> dict:
    """The correcting peak ``{"centre_hz", "gain_db", "q"}`` the model proposes for a lead (mono ``(T,)`` or
    ``(2, T)``)."""
    x = _tensor(lead, "lead")
    m = x if x.ndim == 1 else x.mean(0)
    spec = torch.stft(m, _EQ_FFT, _EQ_FFT // 4, window=torch.hann_window(_EQ_FFT), return_complex=True)
    power = spec.abs().pow(2).mean(-1).double().numpy()
    with torch.no_grad():
        c, g = model(torch.as_tensor(_shape(power[None]), dtype=torch.float32))
    return {"centre_hz": float(c[0]), "gain_db": float(g[0]), "q": EQ_RANGE["q"]}


def spectral_error_db(power: np.ndarray, response_db: np.ndarray, within_db: float = 30.0) -> np.ndarray:
    """Band-weighted spectral error (dB) of leads whose clean power spectra ``power`` ``(n, 1025)`` went through a
    response ``response_db`` ``(n, 1025)``: the mean over the bands within ``within_db`` of the lead's loudest band
    (where it plays) of ``|band level after - band level before|``, each band's level from its mean power. Returns
    ``(n,)``."""
    before = _bands_db(power)
    after = _bands_db(power * 10 ** (response_db / 10))
    audible = before > before.max(-1, keepdims=True) - within_db
    return (np.abs(after - before) * audible).sum(-1) / audible.sum(-1)


def _full_response(centre, gain) -> np.ndarray:
    h = peak_response_db(_EQ_FREQS[1:], centre, gain, EQ_RANGE["q"]).double().numpy()
    return np.concatenate([np.zeros((h.shape[0], 1)), h], 1)


def _average_rule(x: np.ndarray, average: np.ndarray) -> np.ndarray:
    """The rule: match the TRAIN average band shape (correction per band, smoothed over 3 bands, clipped to +-12 dB,
    interpolated on log frequency over the bins)."""
    delta = average[None] - x
    delta = np.stack([np.convolve(np.pad(d, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid") for d in delta])
    delta = np.clip(delta - delta.mean(-1, keepdims=True), -12.0, 12.0)
    f = np.log(np.maximum(_EQ_FREQS, 1.0))
    return np.stack([np.interp(f, np.log(BAND_CENTRES), d) for d in delta])


def evaluate_eq(model: EqCorrector, split: str = "test", n: int = 256, seed: int = 7,
                train_spectra: Optional[np.ndarray] = None) -> dict:
    """The self-supervised EQ on ``n`` random EQs of ``split``'s wet leads (seeded): the spectral error
    (:func:`spectral_error_db`) of the EQ'd lead left alone (``"none"``), corrected by the model (``"model"``) and by
    the rule that matches the TRAIN wet leads' average band shape (``"rule"``); each ``(mean, ci95)`` (Student t over
    the examples), with the per-example values under ``"values"``."""
    from scipy import stats

    spectra = lead_spectra(split)
    train_spectra = lead_spectra("train") if train_spectra is None else train_spectra
    average = _shape(train_spectra.reshape(-1, train_spectra.shape[-1])).mean(0)
    b = eq_batch(spectra, n, np.random.default_rng(seed))
    h = _full_response(b["centre_hz"], b["gain_db"])
    with torch.no_grad():
        c, g = model(torch.as_tensor(b["x"], dtype=torch.float32))
    values = {"none": spectral_error_db(b["power"], h),
              "model": spectral_error_db(b["power"], h + _full_response(c.numpy(), g.numpy())),
              "rule": spectral_error_db(b["power"], h + _average_rule(b["x"], average))}
    out = {k: (float(v.mean()), float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)))
           for k, v in values.items()}
    return {**out, "values": {k: v.tolist() for k, v in values.items()}, "n": n, "split": split}


# --------------------------------------------------------------------------------------------
# Evaluation on the TEST mixes
# --------------------------------------------------------------------------------------------

METHODS = ("engineer", "naive", "rules", "direct", "intermediate", "rules + ss-eq")
"""(i) the engineer's own lead parameters (the oracle), (ii) the raw lead at unity gain, no processing, (iii) the
rules, (iv) the direct model, (v) the intermediate-feature model, (vi) the rules plus the self-supervised EQ's
correcting peak (peak band 1)."""


def _score(p: Mapping, params: Mapping, loss) -> dict:
    from . import features, metrics

    sr = p["sample_rate"]
    wet = lead_console(p["lead"], params, sr)[0]
    y = wet + p["backing"]
    groups = features.feature_mape(y.double().numpy(), p["mix"].double().numpy(), sr)["groups"]
    t, truth = params, p["truth"]
    send = float(t["reverb_send_db"][0, 0])
    return {"stereo": metrics.matched_stereo_loss(y[None], p["mix"][None], sr, loss),
            **{f"{g} MAPE": float(v) for g, v in groups.items()},
            "lmr_lu": lead_to_mix_lu(wet, y, sr),
            "lmr_error_lu": abs(lead_to_mix_lu(wet, y, sr) - lead_to_mix_lu(p["wet_lead"], p["mix"], sr)),
            "gain_error_db": abs(float(t["gain_db"][0, 0]) - float(truth["gain_db"][0, 0])),
            "t60_error_s": abs(float(t["reverb_t60_s"][0]) - float(truth["reverb_t60_s"][0])) if send > -79 else None}


def evaluate(split: str = "test", engineers: Sequence[str] = ENGINEERS, models: Optional[Mapping] = None,
             seconds: Optional[float] = None, songs: Optional[int] = None, alteration_db: float = 0.0,
             methods: Sequence[str] = METHODS) -> dict:
    """Score every method of :data:`METHODS` on ``split``'s pairs (first ``seconds`` of the first ``songs`` songs) against
    the engineer's mix: matched stereo MR-STFT loss (:func:`automix_lite.metrics.matched_stereo_loss`), the Part 4
    feature MAPE groups (:func:`automix_lite.features.feature_mape`), the lead-to-mix ratio error (LU), the gain error
    (dB) and the T60 error (s; none for the naive mix, which has no reverb). ``models``: ``{"direct", "intermediate",
    "eq"}`` (any may be missing; their methods are then skipped); ``methods``: which to run. ``alteration_db`` scales every
    raw lead by that many dB first (the engineer's oracle gain moves by ``-alteration_db``). Returns ``{"rows": [...],
    "split", "seconds", "alteration_db"}``."""
    from . import data
    from .losses import StereoLoss

    models = dict(models or {})
    loss = StereoLoss()
    rows = []
    for e in data.songs("songs", split)[:songs]:
        for eng in engineers:
            p = pair(e["id"], eng, seconds)
            p["lead"] = p["lead"] * 10 ** (alteration_db / 20)
            p["truth"] = _with(p["truth"], gain_db=float(p["truth"]["gain_db"][0, 0]) - alteration_db)
            sr, lead, back, tempo = p["sample_rate"], p["lead"], p["backing"], p["tempo"]
            cands = {"engineer": p["truth"], "naive": neutral_params()}
            rules = rule_params(lead, back, tempo, sr, eng)
            cands["rules"] = rules["params"]
            if "direct" in models or "intermediate" in models:
                f = input_features(lead, back, tempo, sr)
            if "direct" in models and "direct" in methods:
                cands["direct"] = params_from_direct(models["direct"].predict(f), lead, back, tempo, sr, eng)["params"]
            if "intermediate" in models and "intermediate" in methods:
                cands["intermediate"] = params_from_intermediate(models["intermediate"].predict(f), lead, back, tempo,
                                                                 sr, eng)["params"]
            if "eq" in models and "rules + ss-eq" in methods:
                corr = predict_eq(models["eq"], lead, sr)
                q = _with(rules["params"], peak_cutoff_hz=(1, corr["centre_hz"]), peak_gain_db=(1, corr["gain_db"]),
                          peak_q=(1, corr["q"]))
                cands["rules + ss-eq"] = _set_gain(lead, back, q, sr, TARGET_LMR_LU)
            for name, params in cands.items():
                if name not in methods:
                    continue
                rows.append({"song": e["id"], "engineer": eng, "method": name, **_score(p, params, loss)})
    return {"rows": rows, "split": split, "seconds": seconds, "alteration_db": float(alteration_db)}


def _ci(v) -> tuple:
    from scipy import stats

    v = np.asarray([x for x in v if x is not None], dtype=float)
    if v.size == 0:
        return (None, None, 0)
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return (float(v.mean()), half, int(v.size))


METRICS = ("stereo", "spectral MAPE", "panning MAPE", "dynamics MAPE", "loudness MAPE", "lmr_error_lu", "gain_error_db",
           "t60_error_s")


def summarize(results: Mapping) -> dict:
    """``{"by": {engineer: {method: {metric: (mean, ci95, n)}}}, "paired": {(a, b) text: {metric: (mean diff, ci95,
    n)}}}``: means over songs (Student t), and paired differences ``a - b`` over songs of each song's mean over the
    engineers, for rules - naive, intermediate - direct, intermediate - rules and rules + ss-eq - rules."""
    rows = results["rows"]
    engs = list(dict.fromkeys(r["engineer"] for r in rows))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    metrics_ = [m for m in METRICS if m in rows[0]]
    by = {e: {m: {k: _ci([r[k] for r in rows if r["engineer"] == e and r["method"] == m]) for k in metrics_}
              for m in methods} for e in engs}
    songs = list(dict.fromkeys(r["song"] for r in rows))

    def per_song(m, k):
        out = []
        for s in songs:
            v = [r[k] for r in rows if r["song"] == s and r["method"] == m and r[k] is not None]
            out.append(float(np.mean(v)) if v else None)
        return out

    paired = {}
    for a, b in (("rules", "naive"), ("intermediate", "direct"), ("intermediate", "rules"), ("rules + ss-eq", "rules")):
        if a in methods and b in methods:
            paired[f"{a} - {b}"] = {k: _ci([x - y for x, y in zip(per_song(a, k), per_song(b, k))
                                            if x is not None and y is not None]) for k in metrics_}
    return {"by": by, "paired": paired}


def _fmt(t) -> str:
    m, h, n = t
    return "—" if m is None else f"{m:.2f} ± {h:.2f}"


def results_table(results: Mapping) -> str:
    """Markdown: per engineer, every method's metrics (mean ± 95 % CI over the songs), then the paired differences
    (:func:`summarize`). ``results``: :func:`evaluate`'s output or :func:`read_results`'s ``"evaluation"``."""
    results = results.get("evaluation", results)
    s = summarize(results)
    metrics_ = [k for k in METRICS if k in next(iter(next(iter(s["by"].values())).values()))]
    head = "| method | " + " | ".join(metrics_) + " |\n|---|" + "---|" * len(metrics_)
    out = []
    for eng, by in s["by"].items():
        n = next(iter(by.values()))["stereo"][2]
        out += [f"**{eng}** ({n} {results.get('split', 'test').upper()} songs; mean ± 95 % CI)", "", head]
        out += [f"| {m} | " + " | ".join(_fmt(v[k]) for k in metrics_) + " |" for m, v in by.items()]
        out.append("")
    if s["paired"]:
        out += ["**Paired differences** (a − b over the songs, each song's mean over the engineers; negative: a is "
                "closer)", "", head.replace("| method |", "| a − b |")]
        out += [f"| {pair_} | " + " | ".join(_fmt(v[k]) for k in metrics_) + " |" for pair_, v in s["paired"].items()]
    return "\n".join(out)


def altered_table(results: Mapping) -> str:
    """Markdown: the lead-to-mix, gain and stereo-loss errors of every method and alteration in ``results["altered"]``
    (:func:`read_results`; ``{"-10": evaluate(..., alteration_db=-10), ...}``), mean ± 95 % CI over the songs."""
    out = ["| raw lead | engineer | method | lmr_error_lu | gain_error_db | stereo |", "|---|---|---|---|---|---|"]
    for a, res in results["altered"].items():
        for eng, by in summarize(res)["by"].items():
            out += [f"| {a} dB | {eng} | {m} | " + " | ".join(_fmt(v[k]) for k in ("lmr_error_lu", "gain_error_db", "stereo"))
                    + " |" for m, v in by.items()]
    return "\n".join(out)


RESULTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                            "lead_backing_results.json")


def read_results(path: Optional[str] = None) -> Optional[dict]:
    """``benchmarks/lead_backing_results.json`` as written by ``benchmarks/lead_backing.py`` (engineer stats, training
    histories, the EQ evaluation, the TEST evaluation); ``None`` when absent."""
    path = RESULTS_FILE if path is None else path
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
