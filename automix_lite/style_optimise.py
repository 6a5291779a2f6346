"""Training-free style transfer by optimisation: fit an EQ -> compressor chain (one track) or the console (a
multitrack) so that the output matches a reference *in style*, and a matching-EQ baseline (chapter 5.1,
``notebooks/17_style_transfer_track.ipynb``, the section "Training-free style transfer by optimisation"; the
multitrack case foreshadows chapter 5.2).

A trained style-transfer model (DeepAFx-ST, Steinmetz et al. 2022; Diff-MST, Vanka et al. 2024) predicts
parameters from an input and a reference in one forward pass. Without training, the same parameters can be
*searched for* directly, one input/reference pair at a time:

- ``method="gradient"``: Adam on unconstrained logits ``z``; the [0, 1] controls are ``c = sigmoid(z)`` and the
  parameters in real units follow from each parameter's range (linear or logarithmic, as
  :class:`automix_lite.parameters.ParamSpec`). Gradients flow through the differentiable DSP of
  :mod:`automix_lite.dsp` (exact, chapter 2.3's first route). ``steps`` = Adam steps.
- ``method="cma"``: CMA-ES (Hansen's ``cma`` package) on the same [0, 1] controls, box-constrained with the
  package's boundary handling, black-box (no gradients: the chain could be a plugin). ``steps`` = the budget
  in objective evaluations; each generation's candidates are rendered in one batch.

Both start from the same neutral-ish controls (:data:`TRACK_START`, :data:`MIX_START`), both are seeded and
deterministic, and both return the best parameters seen with a history of the objective per step/evaluation.

**The single-track chain** (:data:`TRACK_SPECS`, 17 controls): ``dsp.parametric_eq`` (low shelf, three
peaking bands, high shelf; shelf Q 0.707) -> ``dsp.compressor`` (knee fixed at 6 dB, make-up 0) -> an output
gain. The ranges are those the bundled neural proxy was trained on (:data:`automix_lite.parameters.PROXY_SPECS`,
chapter 2.4: EQ gains +-12 dB, each peaking band its own decade, Q 0.5-4), so this search and a proxy-based
one span the same chain; ``output_gain_db`` (-24..+24 dB) replaces the compressor's make-up (both are a gain
after the compressor; one is enough, and make-up cannot attenuate). Mono or stereo input (all channels get
the same settings; the compressor's detector is linked). Render any settings with :func:`process_track`.

**The style objective** (``objective="style"``, the default; content-independent, all terms in dB). For a
signal ``s`` (channels ``c``, STFT frames ``t`` of 2048 samples every 512 with a Hann window, 64 mel bands
30 Hz - min(16 kHz, fs/2) of ``librosa.filters.mel``; short-term frames ``j`` of 50 ms every 25 ms):

    A_k(s)    = 10 log10( mean_{c,t} (M |STFT s|^2)_{k,t,c} + 1e-10 )        average (long-term) mel spectrum
    level(s)  = 10 log10( mean_{c,n} s^2 + 1e-10 )                          RMS level
    l_j(s)    = 10 log10( mean_{c, n in j} s^2 + 1e-10 ),  J = { j : l_j > max_j l_j - 40 dB }  active frames
    crest(s)  = mean_{j in J} ( 20 log10 max_{c, n in j} |s| - l_j )       short-term crest factor
    spread(s) = std_{j in J} l_j                                            spread of short-term levels

    D(y, r) = mean_k |A_k(y) - A_k(r)| + |level(y) - level(r)| + |crest(y) - crest(r)| + |spread(y) - spread(r)|

The spectrum term is a matching-EQ target (the average spectrum does not depend on which notes are played, to
first order), the other three measure level and dynamics (what the compressor changes). ``J`` is chosen from
the signal without gradient. For a mix (``optimise_mix``) the terms are computed on the mid ``(L + R) / 2``,
and two stereo terms are added:

    W_k(s)     = max( A_k(side) - A_k(mid), -30 dB ),  side = (L - R) / 2   width spectrum
    balance(s) = level(L) - level(R)
    D_mix(y, r) = D(mid y, mid r) + mean_k |W_k(y) - W_k(r)| + |balance(y) - balance(r)|

Other objectives: ``"mrstft"`` (the MR-STFT loss of :class:`automix_lite.losses.MRSTFTLoss` to the reference;
:class:`~automix_lite.losses.StereoLoss` for mixes): only meaningful when the reference has the same content as
the input (it *is* the target), and it needs the same shape; ``"features"``: the Part 4 summaries
(:func:`automix_lite.features.mix_features`, mono duplicated to stereo), ``mean_f |x_f - r_f| / max(|r_f|,
floor_f)`` over the 16 features of :data:`automix_lite.features.FEATURES` (a fraction, not percent); numpy and
librosa, not differentiable, so only with ``method="cma"``.

**The multitrack console** (``optimise_mix``, :data:`MIX_SPECS`): per track ``gain_db`` (-24..+12 dB),
``pan``, ``low_shelf_gain_db``, the three ``peak_gain_db`` bands and ``high_shelf_gain_db`` (+-12 dB, at the
console's default cutoffs and Q), and ``master_gain_db`` (-24..+24 dB): ``7 N + 1`` controls through
:func:`automix_lite.dsp.mix`. Everything else stays neutral (high-pass 20 Hz, compressor ratio 1, reverb send
-80 dB): the returned :class:`~automix_lite.parameters.MixParams` holds the full console, so a parameter file
written with :func:`automix_lite.parameters.write` renders the same mix with ``automix render``. Pans start at
0.5 plus a seeded jitter of +-0.1 (exactly centred tracks have no side signal, and then no gradient toward a
width).

**The baseline** :func:`matching_eq` (DeepAFx-ST's training-free baseline): a linear-phase FIR whose magnitude
is the ratio of the reference's and the input's average spectra (1/3-octave smoothed), then a gain to the
reference's integrated loudness (BS.1770, pyloudnorm).

Measured on this project's shared 2-core CPU (torch 2.11, 44.1 kHz, other jobs running; the first call in a
process also compiles the compressor's numba kernels, about 3 s more): ``optimise_track`` on 1 s of a mono stem
with the style objective, gradient, 80 steps: 3.2 s (150 steps: 5.9 s, about 35 ms a step); CMA-ES, 240
evaluations (popsize 12, rendered a generation at a time): 2.5 s; the ``"features"`` objective costs about 0.1 s
an evaluation (25: 2.9 s). ``optimise_mix`` on 1 s of a 4-track song: gradient, 30 steps: 2.4 s; CMA-ES, 85
evaluations: 1.5 s (1.5 s of audio: 2.8 s and 1.6 s). ``matching_eq`` of 1 s: 0.02-0.05 s. The objective
reductions these budgets reach are stated in ``tests/test_style_optimise.py``: on the keys stem of
``song_pop_04`` in a known style, the style objective falls from 30.0 to 3.2 dB (gradient, 80 steps) and to
3.6 dB (CMA-ES, 240 evaluations), and the MR-STFT to the unseen target from 7.66 (the input) to 0.16 and 0.25
(matching EQ: 0.27); CMA-ES improves slowly in 18 dimensions (its population still spreads widely after
240 evaluations) and much more slowly for a mix (29 controls for 4 tracks: 15.9 -> 10.8 dB in 85 evaluations,
against 6.7 dB for 30 gradient steps).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Mapping, Optional

import numpy as np
import torch

from . import dsp
from .parameters import PROXY_SPECS, SPEC_BY_NAME, MixParams, ParamSpec

__all__ = ["TRACK_SPECS", "TRACK_START", "MIX_SPECS", "MIX_START", "METHODS", "OBJECTIVES", "MIN_SECONDS",
           "SILENCE_DB", "process_track", "style_features", "style_distance", "optimise_track", "optimise_mix",
           "matching_eq"]

METHODS = ("gradient", "cma")
OBJECTIVES = ("style", "mrstft", "features")
MIN_SECONDS = 0.5
"""Shortest input or reference (s): the style statistics need frames, the loudness meter 0.4 s."""
SILENCE_DB = -80.0
"""An input or reference whose RMS level is below this (dBFS) is silent: there is no style to match."""

KNEE_DB = 6.0  # the compressor's knee, fixed (SPECS default)
N_MELS, N_FFT, HOP = 64, 2048, 512
FRAME_S, FRAME_HOP_S, ACTIVE_DB = 0.050, 0.025, 40.0
WIDTH_FLOOR_DB = -30.0
PAN_JITTER = 0.1

_CHAIN_NAMES = ("low_shelf_gain_db", "low_shelf_cutoff_hz", "peak_gain_db[0]", "peak_cutoff_hz[0]", "peak_q[0]",
                "peak_gain_db[1]", "peak_cutoff_hz[1]", "peak_q[1]", "peak_gain_db[2]", "peak_cutoff_hz[2]", "peak_q[2]",
                "high_shelf_gain_db", "high_shelf_cutoff_hz", "threshold_db", "ratio", "attack_ms", "release_ms")
_PROXY = {s.name: s for s in PROXY_SPECS}
TRACK_SPECS: tuple = tuple(_PROXY[n] for n in _CHAIN_NAMES) + (
    ParamSpec("output_gain_db", -24.0, 24.0, "dB", "linear", 0.0, "gain after the compressor", "track", "gain"),)
"""The single-track chain's parameters: the proxy's ranges (chapter 2.4) and an output gain."""
TRACK_NAMES = tuple(s.name for s in TRACK_SPECS)

TRACK_START = {"low_shelf_gain_db": 0.0, "low_shelf_cutoff_hz": 110.0, "peak_gain_db[0]": 0.0,
               "peak_cutoff_hz[0]": 250.0, "peak_q[0]": 1.0, "peak_gain_db[1]": 0.0, "peak_cutoff_hz[1]": 1000.0,
               "peak_q[1]": 1.0, "peak_gain_db[2]": 0.0, "peak_cutoff_hz[2]": 3200.0, "peak_q[2]": 1.0,
               "high_shelf_gain_db": 0.0, "high_shelf_cutoff_hz": 5700.0, "threshold_db": -30.0, "ratio": 1.5,
               "attack_ms": 10.0, "release_ms": 100.0, "output_gain_db": 0.0}
"""Where both methods start (real units): EQ flat, a gentle 1.5:1 compressor (at ratio 1 exactly the threshold
and times would have no gradient), unity output gain."""


def _narrow(name: str, low: float, high: float) -> ParamSpec:
    return replace(SPEC_BY_NAME[name], low=float(low), high=float(high))


MIX_SPECS: tuple = (_narrow("gain_db", -24, 12), SPEC_BY_NAME["pan"], _narrow("low_shelf_gain_db", -12, 12),
                    _narrow("peak_gain_db", -12, 12), _narrow("high_shelf_gain_db", -12, 12),
                    _narrow("master_gain_db", -24, 24))
"""The console parameters ``optimise_mix`` sets (``peak_gain_db``: each of the 3 bands), narrowed ranges."""
MIX_START = {"gain_db": 0.0, "pan": 0.5, "low_shelf_gain_db": 0.0, "peak_gain_db": 0.0, "high_shelf_gain_db": 0.0,
             "master_gain_db": 0.0}
"""Where both methods start (pans jittered by +-``PAN_JITTER``, seeded)."""


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _fail(message: str):
    raise ValueError(message)


def _audio(a, name: str, sr: float, channels=(1, 2)) -> torch.Tensor:
    """``a`` as ``(1, C, T)`` float (float64 stays float64); shapes ``(T,)``, ``(C, T)``, ``(1, C, T)``."""
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    if not isinstance(a, torch.Tensor) or not a.is_floating_point():
        _fail(f"{name} must be a floating-point tensor of samples; got {type(a).__name__}"
              + (f" of dtype {a.dtype}" if isinstance(a, torch.Tensor) else "") + ".")
    shape = tuple(a.shape)
    if a.ndim == 1:
        a = a.view(1, 1, -1)
    elif a.ndim == 2:
        a = a.unsqueeze(0)
    elif a.ndim != 3 or a.shape[0] != 1:
        _fail(f"{name} must be (samples,), (channels, samples) or (1, channels, samples); got shape {shape}.")
    if a.shape[1] not in channels:
        want = " or ".join({1: "mono (1 channel)", 2: "stereo (2 channels)"}[c] for c in channels)
        _fail(f"{name} must be {want}; got {a.shape[1]} channels (shape {shape}).")
    if a.dtype not in (torch.float32, torch.float64):
        a = a.float()
    if not bool(torch.isfinite(a).all()):
        _fail(f"{name} contains NaN or infinite samples.")
    if a.shape[-1] < MIN_SECONDS * sr:
        _fail(f"{name} is too short: {a.shape[-1]} samples ({a.shape[-1] / sr:.3f} s); it needs at least "
              f"{MIN_SECONDS} s ({math.ceil(MIN_SECONDS * sr)} samples at {sr:g} Hz).")
    rms = float(a.double().square().mean().sqrt())
    if rms <= 10 ** (SILENCE_DB / 20):
        _fail(f"{name} is silent (RMS {20 * math.log10(max(rms, 1e-30)):.1f} dBFS, below {SILENCE_DB:g} dBFS): "
              "there is no style to match.")
    return a


def _rate(sample_rate) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not math.isfinite(sample_rate) \
            or sample_rate < 8000:
        _fail(f"sample_rate must be a number of Hz, at least 8000; got {sample_rate!r}.")
    return float(sample_rate)


def _check_search(lr, sigma0, popsize):
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        _fail(f"lr must be a positive learning rate (e.g. 0.05); got {lr!r}.")
    if isinstance(sigma0, bool) or not isinstance(sigma0, (int, float)) or not 0 < sigma0 <= 1:
        _fail(f"sigma0 must be CMA-ES's initial step on the [0, 1] controls, in (0, 1]; got {sigma0!r}.")
    if popsize is not None and (isinstance(popsize, bool) or not isinstance(popsize, int) or popsize < 2):
        _fail(f"popsize must be None (CMA-ES's default) or an integer of at least 2; got {popsize!r}.")


def _check_run(method, objective, steps, allowed=OBJECTIVES):
    if method not in METHODS:
        _fail(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    if objective not in allowed:
        _fail(f"objective must be one of {', '.join(map(repr, allowed))}; got {objective!r}.")
    if objective == "features" and method == "gradient":
        _fail('objective "features" (numpy/librosa) has no gradient; use method="cma" with it.')
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        _fail(f"steps (the budget: Adam steps, or CMA-ES evaluations) must be a positive integer; got {steps!r}.")


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------


def _real(specs, controls: torch.Tensor) -> torch.Tensor:
    """[0, 1] controls ``(..., P)`` -> real units per ``specs`` (column ``p`` by ``specs[p]``)."""
    return torch.stack([s.from_normalized(controls[..., i]) for i, s in enumerate(specs)], -1)


def _norm(specs, values) -> torch.Tensor:
    return torch.tensor([float(s.to_normalized(torch.tensor(float(v), dtype=torch.float64)))
                         for s, v in zip(specs, values)], dtype=torch.float64)


def _chain(x: torch.Tensor, sr: float, v: torch.Tensor) -> torch.Tensor:
    """``x`` (1 or B, C, T), real values ``v`` (B, 18) in ``TRACK_NAMES`` order -> (B, C, T)."""
    b = v.shape[0]
    x = x.expand(b, *x.shape[1:]) if x.shape[0] != b else x
    col = {n: v[:, i] for i, n in enumerate(TRACK_NAMES)}
    pk = lambda p: torch.stack([col[f"{p}[{k}]"] for k in range(3)], -1)  # noqa: E731
    y = dsp.parametric_eq(x, sr, low_shelf_gain_db=col["low_shelf_gain_db"],
                          low_shelf_cutoff_hz=col["low_shelf_cutoff_hz"], peak_gain_db=pk("peak_gain_db"),
                          peak_cutoff_hz=pk("peak_cutoff_hz"), peak_q=pk("peak_q"),
                          high_shelf_gain_db=col["high_shelf_gain_db"], high_shelf_cutoff_hz=col["high_shelf_cutoff_hz"])
    y = dsp.compressor(y, sr, col["threshold_db"], col["ratio"], col["attack_ms"], col["release_ms"], KNEE_DB, 0.0)
    return y * dsp.db_to_gain(col["output_gain_db"]).view(b, 1, 1)


def process_track(x, sample_rate, params: Mapping) -> torch.Tensor:
    """Render the single-track chain: ``x`` ``(T,)``, ``(C, T)`` or ``(1, C, T)`` (C = 1 or 2) with ``params``
    (``TRACK_NAMES`` -> real units, numbers or 0-d tensors, every name; as ``optimise_track`` returns them)
    -> ``(1, C, T)``. Differentiable."""
    sr = _rate(sample_rate)
    if not isinstance(params, Mapping) or set(params) != set(TRACK_NAMES):
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        _fail(f"params must give exactly the chain's parameters {', '.join(TRACK_NAMES)}; got {got}.")
    for s in TRACK_SPECS:
        value = float(params[s.name])
        if not s.low - 1e-9 <= value <= s.high + 1e-9:
            _fail(f"{s.name} must lie in [{s.low:g}, {s.high:g}] {s.unit}; got {value!r}.")
    x = _audio(x, "x", sr)
    v = torch.stack([torch.as_tensor(params[n], dtype=x.dtype).reshape(()) for n in TRACK_NAMES]).view(1, -1)
    return _chain(x, sr, v)


# --------------------------------------------------------------------------------------------
# Style statistics and objectives
# --------------------------------------------------------------------------------------------

_MELS: dict = {}


def _mel(sr: float, dtype) -> torch.Tensor:
    key = (sr, dtype)
    if key not in _MELS:
        import librosa

        m = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmin=30.0, fmax=min(16000.0, sr / 2))
        _MELS[key] = torch.from_numpy(m).to(dtype)
    return _MELS[key]


def _db(p: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(p + 1e-10)


def _spectrum(s: torch.Tensor, sr: float) -> torch.Tensor:
    """``s`` (B, C, T) -> average mel spectrum in dB ``(B, 64)`` (power averaged over frames and channels)."""
    b, c, t = s.shape
    spec = torch.stft(s.reshape(b * c, t), N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=s.dtype),
                      center=False, return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (B C, F, frames)
    mel = torch.einsum("kf,bft->bkt", _mel(sr, s.dtype), power)
    return _db(mel.view(b, c, N_MELS, -1).mean((1, 3)))


def _dynamics(s: torch.Tensor, sr: float) -> tuple:
    """``s`` (B, C, T) -> (level, crest, spread), each ``(B,)`` dB (see the module docstring)."""
    n, hop = round(FRAME_S * sr), round(FRAME_HOP_S * sr)
    level = _db(s.square().mean((1, 2)))
    frames = s.unfold(-1, n, hop)  # (B, C, J, n)
    lj = _db(frames.square().mean((1, 3)))  # (B, J)
    peak = 20 * torch.log10(frames.abs().amax((1, 3)) + 1e-10)
    active = (lj.detach() > lj.detach().amax(-1, keepdim=True) - ACTIVE_DB).to(s.dtype)
    count = active.sum(-1)
    crest = ((peak - lj) * active).sum(-1) / count
    mean = (lj * active).sum(-1, keepdim=True) / count.unsqueeze(-1)
    var = ((lj - mean).square() * active).sum(-1) / count
    spread = torch.sqrt(var + 1e-12)
    return level, crest, spread


def style_features(s: torch.Tensor, sample_rate, stereo: bool = False) -> dict:
    """The statistics of the style objective of ``s`` ``(B, C, T)``: ``{"spectrum": (B, 64), "level", "crest",
    "spread": (B,)}`` in dB; with ``stereo`` (C = 2) computed on the mid, plus ``"width"`` ``(B, 64)`` and
    ``"balance"`` ``(B,)``. Differentiable (the active frames are chosen without gradient)."""
    sr = float(sample_rate)
    if stereo:
        mid, side = (s[:, :1] + s[:, 1:2]) / 2, (s[:, :1] - s[:, 1:2]) / 2
        out = style_features(mid, sr)
        out["width"] = torch.clamp(_spectrum(side, sr) - out["spectrum"], min=WIDTH_FLOOR_DB)
        out["balance"] = _db(s[:, 0].square().mean(-1)) - _db(s[:, 1].square().mean(-1))
        return out
    level, crest, spread = _dynamics(s, sr)
    return {"spectrum": _spectrum(s, sr), "level": level, "crest": crest, "spread": spread}


def style_distance(a: Mapping, b: Mapping) -> torch.Tensor:
    """``D`` (or ``D_mix`` when both have ``"width"``) between two :func:`style_features` dicts: ``(B,)`` dB,
    the reference ``b`` broadcasting from a batch of 1."""
    d = (a["spectrum"] - b["spectrum"]).abs().mean(-1)
    for k in ("level", "crest", "spread", "balance"):
        if k in a:
            d = d + (a[k] - b[k]).abs()
    if "width" in a:
        d = d + (a["width"] - b["width"]).abs().mean(-1)
    return d


def _feature_error(y: np.ndarray, ref: dict, sr: float) -> float:
    from .features import FEATURES, mix_features

    out = mix_features(np.repeat(y, 2, 0) if y.shape[0] == 1 else y, sr)
    errs = [abs(out[k] - ref[k]) / max(abs(ref[k]), floor) for k, (_, floor) in FEATURES.items()
            if math.isfinite(out[k]) and math.isfinite(ref[k])]
    return float(np.mean(errs)) if errs else float("inf")


def _objective(objective: str, reference: torch.Tensor, sr: float, stereo: bool):
    """``f(y (B, C, T)) -> (B,)`` values (a tensor for the differentiable objectives)."""
    if objective == "style":
        with torch.no_grad():
            ref = style_features(reference, sr, stereo)
        return lambda y: style_distance(style_features(y, sr, stereo), ref)
    if objective == "mrstft":
        from .losses import MRSTFTLoss, StereoLoss

        loss = StereoLoss() if stereo else MRSTFTLoss()
        return lambda y: torch.stack([loss(y[i:i + 1], reference.to(y.dtype)) for i in range(y.shape[0])])
    ref = _feature_stats(reference, sr)
    return lambda y: torch.tensor([_feature_error(y[i].detach().double().numpy(), ref, sr) for i in range(y.shape[0])])


def _feature_stats(reference: torch.Tensor, sr: float) -> dict:
    from .features import mix_features

    r = reference[0].detach().double().numpy()
    return mix_features(np.repeat(r, 2, 0) if r.shape[0] == 1 else r, sr)


# --------------------------------------------------------------------------------------------
# The two searches
# --------------------------------------------------------------------------------------------


def _logit(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(0.02, 0.98)
    return torch.log(c / (1 - c))


def _search(render, f, c0: torch.Tensor, method: str, steps: int, seed: int, lr: float, sigma0: float,
            popsize: Optional[int]):
    """Minimise ``f(render(controls (B, P)))`` over controls in [0, 1]^P from ``c0`` (P,).
    Returns (best controls (P,), history dict)."""
    t0 = time.perf_counter()
    values, best_c, best_v = [], c0.clone(), math.inf
    if method == "gradient":
        z = _logit(c0).clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            c = torch.sigmoid(z)
            loss = f(render(c.unsqueeze(0)))[0]
            v = float(loss.detach())
            values.append(v)
            if v < best_v:
                best_v, best_c = v, c.detach().clone()
            opt.zero_grad()
            loss.backward()
            opt.step()
        pop = None
    else:
        import cma

        p = c0.numel()
        pop = max(2, min(popsize or 4 + int(3 * math.log(p)), steps))
        state = np.random.get_state()  # cma seeds numpy's global generator: keep the caller's stream intact
        try:
            es = cma.CMAEvolutionStrategy(c0.numpy().tolist(), sigma0, {
                "bounds": [0.0, 1.0], "seed": int(seed) + 1, "popsize": pop, "maxfevals": steps,
                "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolfun": 0.0, "tolx": 0.0, "tolflatfitness": 10**9,
                "tolfunhist": 0.0, "tolstagnation": 10**9})
            with torch.no_grad():  # the start, as the gradient route's first value
                best_v = float(f(render(c0.unsqueeze(0)))[0])
            values.append(best_v)
            while len(values) + pop <= steps:
                xs = es.ask()
                cand = torch.tensor(np.array(xs), dtype=c0.dtype).clamp(0, 1)
                with torch.no_grad():
                    fx = [float(v) for v in f(render(cand))]
                es.tell(xs, fx)
                for x_, v in zip(cand, fx):
                    values.append(v)
                    if v < best_v:
                        best_v, best_c = v, x_.clone()
        finally:
            np.random.set_state(state)
    running = list(np.minimum.accumulate(values))
    history = {"method": method, "values": values, "best": running, "start": values[0], "final": best_v,
               "evaluations": len(values), "popsize": pop, "seconds": time.perf_counter() - t0}
    return best_c, history


def optimise_track(x, reference, sample_rate, method: str = "gradient", objective: str = "style", steps: int = 150,
                   seed: int = 0, lr: float = 0.05, sigma0: float = 0.1, popsize: Optional[int] = None):
    """Fit the EQ -> compressor chain (:data:`TRACK_SPECS`) so that ``x`` processed matches ``reference``'s style.

    ``x``, ``reference``: ``(T,)``, ``(C, T)`` or ``(1, C, T)`` tensors, mono or stereo, at ``sample_rate`` Hz, at
    least :data:`MIN_SECONDS` long, of any lengths (``"mrstft"``: the same shape). ``method``: ``"gradient"``
    (Adam, learning rate ``lr`` on the logits, ``steps`` steps) or ``"cma"`` (CMA-ES, ``steps`` evaluations,
    initial step ``sigma0`` on the [0, 1] controls, ``popsize`` default ``4 + 3 ln 18 = 12``, numpy seeded from
    ``seed`` and restored after; the gradient route has no randomness). ``objective``: ``"style"`` (default),
    ``"mrstft"`` or ``"features"`` (cma only).

    Returns ``(y (1, C, T), params, history)``: the input rendered with the best parameters seen, those
    parameters (``TRACK_NAMES`` -> float, real units) and ``history`` (``values``: the objective per step or
    evaluation; ``best``: its running minimum; ``start``, ``final``, ``evaluations``, ``popsize``, ``seconds``).
    """
    sr = _rate(sample_rate)
    _check_run(method, objective, steps)
    _check_search(lr, sigma0, popsize)
    x = _audio(x, "x", sr)
    ref = _audio(reference, "reference", sr)
    if objective == "mrstft" and x.shape != ref.shape:
        _fail(f'objective "mrstft" compares signals sample by sample and needs x and reference of one shape; got '
              f"{tuple(x.shape)} and {tuple(ref.shape)} (use \"style\" for different content).")
    ref = ref.to(x.dtype)
    f = _objective(objective, ref, sr, stereo=False)
    c0 = _norm(TRACK_SPECS, [TRACK_START[n] for n in TRACK_NAMES]).to(x.dtype)
    best, history = _search(lambda c: _chain(x, sr, _real(TRACK_SPECS, c)), f, c0, method, steps, seed, lr,
                            sigma0, popsize)
    real = _real(TRACK_SPECS, best.unsqueeze(0))
    with torch.no_grad():
        y = _chain(x, sr, real)
    history["objective"] = objective
    return y, {n: float(v) for n, v in zip(TRACK_NAMES, real[0])}, history


# --------------------------------------------------------------------------------------------
# The multitrack console
# --------------------------------------------------------------------------------------------


def _mix_columns(n: int) -> list:
    """``(spec, name, band)`` of the ``7 N + 1`` controls: per track (in track order) gain, pan, low shelf,
    3 peaks, high shelf; then the master gain."""
    cols = []
    for _ in range(n):
        for s in MIX_SPECS[:-1]:
            cols += [(s, s.name, k) for k in range(3)] if s.name == "peak_gain_db" else [(s, s.name, None)]
    return cols + [(MIX_SPECS[-1], "master_gain_db", None)]


def _console(c: torch.Tensor, n: int, like: torch.Tensor) -> dict:
    """Controls ``(B, 7 N + 1)`` -> the full console's parameters (batch B), neutral where not optimised."""
    b = c.shape[0]
    specs = [s for s, _, _ in _mix_columns(n)]
    v = _real(specs, c)
    per = v[:, :-1].reshape(b, n, 7)
    p = dsp.default_params(b, n, dtype=like.dtype)
    p.update({"gain_db": per[..., 0], "pan": per[..., 1], "low_shelf_gain_db": per[..., 2],
              "peak_gain_db": per[..., 3:6], "high_shelf_gain_db": per[..., 6], "master_gain_db": v[:, -1]})
    return p


def optimise_mix(stems, reference_mix, sample_rate, method: str = "gradient", objective: str = "style",
                 steps: int = 60, seed: int = 0, lr: float = 0.05, sigma0: float = 0.1, popsize: Optional[int] = None):
    """Fit per-track gain, pan and EQ gains and the master gain (:data:`MIX_SPECS`) so that the mix of ``stems``
    matches the *style* of ``reference_mix`` (a mix of other music).

    ``stems``: mono stems ``(N, T)`` or ``(1, N, T)``; ``reference_mix``: stereo ``(2, T')`` or ``(1, 2, T')``,
    any length (``"mrstft"``, the stereo loss: ``T' = T``); both at ``sample_rate`` Hz, at least
    :data:`MIN_SECONDS`. ``method``, ``steps``, ``seed``, ``lr``, ``sigma0``, ``popsize`` as for
    :func:`optimise_track`; the objective ``"style"`` is ``D_mix`` of the module docstring. The search renders
    with the reverb bus off (its send is at -80 dB, neutral); the returned mix is rendered by
    :func:`automix_lite.dsp.mix` with every bus on, as ``automix render`` renders the returned parameters.

    Returns ``(mix (2, T), params, history)``: ``params`` a batch-1 :class:`~automix_lite.parameters.MixParams`
    of the full console; ``history`` as for :func:`optimise_track`.
    """
    sr = _rate(sample_rate)
    _check_run(method, objective, steps)
    _check_search(lr, sigma0, popsize)
    if isinstance(stems, torch.Tensor) and stems.ndim == 3 and stems.shape[0] == 1:
        stems = stems[0]
    if not isinstance(stems, torch.Tensor) or stems.ndim != 2 or not stems.is_floating_point():
        got = tuple(stems.shape) if isinstance(stems, torch.Tensor) else type(stems).__name__
        _fail(f"stems must be a floating (tracks, samples) tensor of mono stems (or (1, tracks, samples)); got {got}.")
    tracks = _audio(stems.unsqueeze(0), "stems", sr, channels=(stems.shape[0],))
    ref = _audio(reference_mix, "reference_mix", sr, channels=(2,)).to(tracks.dtype)
    if objective == "mrstft" and ref.shape[-1] != tracks.shape[-1]:
        _fail(f'objective "mrstft" needs a reference mix as long as the stems ({tracks.shape[-1]} samples); got '
              f'{ref.shape[-1]} (use "style" for a mix of other music).')
    n = tracks.shape[1]
    f = _objective(objective, ref, sr, stereo=True)
    cols = _mix_columns(n)
    gen = torch.Generator().manual_seed(int(seed))
    jitter = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * PAN_JITTER
    start = [MIX_START[name] + (float(jitter[i // 7]) if name == "pan" else 0.0) for i, (_, name, _) in enumerate(cols)]
    c0 = _norm([s for s, _, _ in cols], start).to(tracks.dtype)

    def render(c):
        return dsp.mix(tracks.expand(c.shape[0], -1, -1), sr, _console(c, n, tracks), reverb=False)

    best, history = _search(render, f, c0, method, steps, seed, lr, sigma0, popsize)
    with torch.no_grad():
        p = {k: v.detach() for k, v in _console(best.unsqueeze(0), n, tracks).items()}
        out = dsp.mix(tracks, sr, p)[0]
    history["objective"] = objective
    return out, MixParams(p, "full"), history


# --------------------------------------------------------------------------------------------
# The matching-EQ baseline
# --------------------------------------------------------------------------------------------


def _average_spectrum(a: np.ndarray, n_fft: int) -> np.ndarray:
    """Welch average power spectrum of ``a`` (C, T) (Hann, 50 % overlap, channels averaged) -> (n_fft/2 + 1,)."""
    from scipy.signal import welch

    _, p = welch(a, nperseg=min(n_fft, a.shape[-1]), nfft=n_fft, axis=-1)
    return p.mean(0)


def _smooth_octave(p: np.ndarray, fraction: float = 3.0) -> np.ndarray:
    """Fractional-octave smoothing: bin ``k`` -> the mean power of bins within ``k * 2^(+-1 / (2 fraction))``."""
    k = np.arange(p.size, dtype=np.float64)
    lo = np.clip(np.floor(k * 2 ** (-0.5 / fraction)), 0, p.size - 1).astype(int)
    hi = np.clip(np.ceil(k * 2 ** (0.5 / fraction)), 0, p.size - 1).astype(int)
    cs = np.concatenate([[0.0], np.cumsum(p)])
    return (cs[hi + 1] - cs[lo]) / (hi - lo + 1)


def matching_eq(x, reference, sample_rate, n_taps: int = 4095, max_gain_db: float = 24.0) -> torch.Tensor:
    """The training-free baseline: ``x`` EQ'd to ``reference``'s average spectrum and set to its loudness.

    ``x``, ``reference``: ``(T,)``, ``(C, T)`` or ``(1, C, T)``, mono or stereo, any lengths, at ``sample_rate``.
    The EQ is a linear-phase FIR of ``n_taps`` taps (odd; applied centred, so without delay) whose magnitude
    is ``sqrt(P_ref / P_x)`` of the 1/3-octave-smoothed Welch spectra (FFT 4096 at 44.1 kHz, scaled with the
    rate), limited to +-``max_gain_db``, designed by frequency sampling with a Hann window. Then one gain sets
    the integrated loudness (:func:`automix_lite.audio.loudness_lufs`) to the reference's. Returns ``x``'s
    shape and dtype.
    """
    from scipy.signal import fftconvolve

    from .audio import loudness_lufs

    sr = _rate(sample_rate)
    if isinstance(n_taps, bool) or not isinstance(n_taps, int) or n_taps < 3 or n_taps % 2 == 0:
        _fail(f"n_taps must be an odd integer of at least 3; got {n_taps!r}.")
    shape = tuple(x.shape) if isinstance(x, (torch.Tensor, np.ndarray)) else None
    xt = _audio(x, "x", sr)
    rt = _audio(reference, "reference", sr)
    a, r = xt[0].double().numpy(), rt[0].double().numpy()
    n_fft = 1 << max(8, round(math.log2(4096 * sr / 44100)))
    px, pr = _smooth_octave(_average_spectrum(a, n_fft)), _smooth_octave(_average_spectrum(r, n_fft))
    floor = 1e-20
    gain_db = np.clip(10 * np.log10((pr + floor) / (px + floor)), -max_gain_db, max_gain_db)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs >= 20.0) & (freqs <= min(20000.0, 0.45 * sr))
    idx = np.flatnonzero(band)
    gain_db = np.interp(np.arange(freqs.size), idx, gain_db[idx])  # hold the edge values outside 20 Hz - 20 kHz
    # linear-phase FIR by frequency sampling on a fine grid, windowed to n_taps
    grid = 1 << max(int(math.ceil(math.log2(n_taps))) + 1, int(math.log2(n_fft)))
    mag = np.interp(np.fft.rfftfreq(grid, 1 / sr), freqs, 10 ** (gain_db / 20))
    h = np.fft.irfft(mag, grid)
    h = np.roll(h, n_taps // 2)[:n_taps] * np.hanning(n_taps + 2)[1:-1]
    y = fftconvolve(a, h[None, :], mode="full", axes=-1)[:, n_taps // 2: n_taps // 2 + a.shape[-1]]
    yt = torch.from_numpy(y).unsqueeze(0)
    change = float(loudness_lufs(rt.double(), sr)[0] - loudness_lufs(yt, sr)[0])
    yt = (yt * 10 ** (change / 20)).to(xt.dtype)
    return yt.reshape(shape) if shape is not None else yt
