"""Reverse engineering a mix: fit the whole console to stems and a target mix by gradient descent, then prune
the mixing graph (chapter 5.4, ``notebooks/20_reverse_engineering.ipynb``).

Given mono stems ``(N, T)`` and the stereo mix made from them ``(2, T)``, :func:`fit` finds every parameter of
:func:`automix_lite.dsp.mix` (per track: gain, high-pass and parametric EQ, compressor, pan, reverb send; the
reverb bus's decay and return; the master gain) that renders the mix, by Adam through the differentiable
console with the stereo MR-STFT loss (:class:`automix_lite.losses.StereoLoss`), as chapter 2.3 fits one
track's settings. Barchiesi and Reiss (2010) reverse-engineered gains, pans and EQ of linear mixes by least
squares; Lee et al. (2024) fit a large graph of processors per track by gradient descent and then *prune* it.

**Parameters.** The controls are the console's [0, 1] normalised parameters (:mod:`automix_lite.parameters`),
optimised as logits ``z`` with ``c = sigmoid(z)``. Where they start (:func:`initial_params`): gains and pans
from non-negative least squares of the mix's left and right band powers on the stems' (the stems are roughly
uncorrelated, so powers add; Barchiesi and Reiss's idea on a mel filterbank), EQ flat, a gentle compressor
(ratio 1.5, threshold -20 dB: at ratio 1 the threshold and times have no gradient), reverb sends at -30 dB,
T60 1 s, return 0 dB, master 0 dB. Adam's learning rate follows a cosine decay.

**Pruning.** A *processor* is one stage of one strip (:data:`PROCESSORS`: gain, eq, compressor, pan, reverb
send); removing it sets it to its neutral setting (:data:`NEUTRAL`: 0 dB, a flat EQ with the high-pass at
20 Hz, ratio 1 and no make-up, centre, send at -80 dB), where it does nothing. :func:`prune` repeats: try
removing each remaining processor, remove the one whose removal raises the loss least, and keep the removal
if the loss stays within ``tolerance`` (relative) of the full fit's; if it does not, fine-tune what is left and
keep it only if that brings the loss back within. A refused removal is undone and that processor is kept for
good. It stops when every processor has been refused or removed, or after ``patience`` refusals in a row.
"""

from __future__ import annotations

import math
import os
import time
from typing import Mapping, Optional

import numpy as np
import torch

from . import dsp
from .dsp.console import ALL_NAMES, DEFAULT_N_PEAKS, STRIP_NAMES
from .parameters import SPEC_BY_NAME, MixParams

__all__ = ["PROCESSORS", "NEUTRAL", "initial_params", "fit", "prune", "active_processors", "with_neutral", "processor_error",
           "neutral_in", "evaluate_song", "results_table", "read_results", "RESULTS_FILE"]

PROCESSORS = ("gain", "eq", "compressor", "pan", "reverb")
"""The prunable stages of a channel strip (``ParamSpec.processor`` of the strip's parameters)."""

NEUTRAL = {"gain": {"gain_db": 0.0},
           "eq": {"highpass_cutoff_hz": 20.0, "low_shelf_gain_db": 0.0, "peak_gain_db": 0.0, "high_shelf_gain_db": 0.0},
           "compressor": {"ratio": 1.0, "threshold_db": 0.0, "makeup_db": 0.0},
           "pan": {"pan": 0.5},
           "reverb": {"reverb_send_db": -80.0}}
"""Each processor's settings that make it do nothing (its other parameters then have no effect)."""

START = {"threshold_db": -20.0, "ratio": 1.5, "reverb_send_db": -30.0, "reverb_t60_s": 1.0}


def _fail(message: str):
    raise ValueError(message)


def _inputs(stems, mix, sample_rate) -> tuple:
    from ._checks import check_audio, check_sample_rate

    sr = check_sample_rate(sample_rate)
    if not isinstance(stems, torch.Tensor) or stems.ndim != 2:
        _fail(f"stems must be a (tracks, samples) tensor of mono stems; got "
              f"{tuple(stems.shape) if isinstance(stems, torch.Tensor) else type(stems).__name__}.")
    if not isinstance(mix, torch.Tensor) or mix.ndim != 2 or mix.shape[0] != 2:
        _fail(f"mix must be a stereo (2, samples) tensor; got "
              f"{tuple(mix.shape) if isinstance(mix, torch.Tensor) else type(mix).__name__}.")
    if mix.shape[-1] != stems.shape[-1]:
        _fail(f"the mix has {mix.shape[-1]} samples and the stems {stems.shape[-1]}: reverse engineering needs the mix "
              "of exactly these stems, sample-aligned (trim both to the same span).")
    check_audio(stems.unsqueeze(0), "stems")
    check_audio(mix.unsqueeze(0), "mix", channels=2)
    if float(mix.abs().max()) == 0.0:
        _fail("the mix is silent: there is nothing to fit.")
    return stems.float(), mix.float(), sr


def _band_powers(x: torch.Tensor, sr: float, n_bands: int = 48) -> np.ndarray:
    """Mel-band power of ``x`` (C, T) per frame, frames of 2048 every 1024, concatenated -> (C, bands * frames)."""
    import librosa

    spec = torch.stft(x.double(), 2048, 1024, window=torch.hann_window(2048, dtype=torch.float64), return_complex=True)
    fb = torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=2048, n_mels=n_bands, fmin=30.0, fmax=min(16000.0, sr / 2))).double()
    return (fb.unsqueeze(0) @ spec.abs().pow(2)).reshape(x.shape[0], -1).numpy()


def initial_params(stems: torch.Tensor, mix: torch.Tensor, sample_rate, pan_law: str = dsp.DEFAULT_PAN_LAW) -> MixParams:
    """Where :func:`fit` starts: per-track gain and pan from non-negative least squares of the mix's left and
    right band powers on the stems' band powers (``P_side ~ sum_i w_i P_i``, so ``w_i`` is the squared gain of
    track ``i`` into that side), the rest as in :data:`START` (module docstring). A track that least squares gives no
    weight (its band powers are explained by the others', common on short excerpts) starts centred at the median
    gain of the rest, where the descent can still hear it and decide; likewise a pan starts within [0.05, 0.95] (one
    side's weight can be zero for the same reason, and at 0 or 1 the pan's logit is saturated and gets no
    gradient). ``stems`` (N, T), ``mix`` (2, T)."""
    from scipy.optimize import nnls

    stems, mix, sr = _inputs(stems, mix, sample_rate)
    n = stems.shape[0]
    a = _band_powers(stems, sr).T  # (rows, N)
    scale = a.max(0, keepdims=True) + 1e-20
    w = np.stack([nnls(a / scale, _band_powers(mix[c:c + 1], sr)[0])[0] / scale[0] for c in range(2)])  # (2, N)
    left, right = np.sqrt(w[0]), np.sqrt(w[1])
    pans = torch.linspace(0, 1, 201, dtype=torch.float64)
    gl, gr = (g.numpy() for g in dsp.pan_gains(pans, pan_law))
    p = dsp.default_params(1, n)
    found = []
    for i in range(n):
        if left[i] + right[i] < 1e-6:  # no weight: the others' band powers explain the mix (collinear stems)
            continue
        k = int(np.argmin(np.abs(np.arctan2(right[i], left[i]) - np.arctan2(gr, gl))))
        p["pan"][0, i] = float(pans[k].clamp(0.05, 0.95))  # at 0 or 1 the pan's logit is saturated: no gradient
        g = math.hypot(left[i], right[i]) / math.hypot(gl[k], gr[k])
        p["gain_db"][0, i] = float(np.clip(20 * math.log10(g), SPEC_BY_NAME["gain_db"].low + 1, SPEC_BY_NAME["gain_db"].high - 1))
        found.append(i)
    others = [i for i in range(n) if i not in found]
    if found and others:  # start those audible (the median gain, centred): at -40 dB a track gets no gradient
        p["gain_db"][0, others] = float(p["gain_db"][0, found].median())
    for name, v in START.items():
        p[name] = torch.full_like(p[name], v)
    return MixParams(p, "full")


def _columns(n_peaks: int) -> list:
    """``(name, processor)`` of each column of ``dsp.pack_params``'s track block."""
    names = dsp.param_names(n_peaks)[0]
    return [(c, SPEC_BY_NAME[c.split("[")[0]].processor) for c in names]


def _neutral_row(n_peaks: int) -> torch.Tensor:
    """One track's packed normalised controls with every processor neutral (columns without a neutral value:
    their default, unused once the processor is neutral)."""
    p = dsp.default_params(1, 1, n_peaks)
    for proc in NEUTRAL.values():
        for k, v in proc.items():
            p[k] = torch.full_like(p[k], v)
    return dsp.pack_params(dsp.params_to_normalized(p))[0][0, 0]


class _Console:
    """The search's state: logits of the track block ``(N, D)`` and the bus block ``(3,)``, and ``removed``
    ``(N, len(PROCESSORS))`` (True: that processor is held at its neutral setting)."""

    def __init__(self, params: Mapping, n_peaks: int):
        norm = dsp.params_to_normalized({k: params[k].float() for k in ALL_NAMES})
        track, bus = dsp.pack_params(norm)
        self.n_peaks, self.cols = n_peaks, _columns(n_peaks)
        self.proc_of = torch.tensor([PROCESSORS.index(p) for _, p in self.cols])
        self.track = torch.logit(track[0].clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
        self.bus = torch.logit(bus[0].clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
        self.removed = torch.zeros(track.shape[1], len(PROCESSORS), dtype=torch.bool)
        self.neutral = _neutral_row(n_peaks)

    def params(self, removed: Optional[torch.Tensor] = None) -> dict:
        """The console's parameters with ``removed`` ``(N, 5)`` (default: the current set) or a batch of
        candidate sets ``(B, N, 5)`` held neutral -> a dict of batch 1 or B."""
        removed = self.removed if removed is None else removed
        held = removed[..., self.proc_of]  # (N, D) or (B, N, D)
        track = torch.where(held, self.neutral, torch.sigmoid(self.track))
        if track.ndim == 2:
            track = track.unsqueeze(0)
        bus = torch.sigmoid(self.bus).expand(track.shape[0], -1)
        return dsp.params_from_normalized(dsp.unpack_params(track, bus, self.n_peaks))

    def snapshot(self) -> tuple:
        return self.track.detach().clone(), self.bus.detach().clone(), self.removed.clone()

    def restore(self, snap: tuple) -> None:
        with torch.no_grad():
            self.track.copy_(snap[0]), self.bus.copy_(snap[1])
        self.removed = snap[2].clone()


def _loss_fn(stems, mix, sr):
    """``loss_of(params)``: the stereo loss of the console's mix, one value per batch item of ``params`` (a
    float tensor ``(B,)``; ``B = 1`` for the search)."""
    from .losses import StereoLoss

    loss = StereoLoss()
    x, y = stems.unsqueeze(0), mix.unsqueeze(0)

    def loss_of(p):
        out = dsp.mix(x.expand(p["gain_db"].shape[0], -1, -1), sr, p)
        return torch.stack([loss(out[b:b + 1], y) for b in range(out.shape[0])])

    return loss_of


def _descend(console: _Console, loss_of, steps: int, lr: float) -> list:
    """Adam on the logits with a cosine decay from ``lr`` to ``lr / 20``, ending at the best state seen (the
    start included); returns the loss per step."""
    opt = torch.optim.Adam([console.track, console.bus], lr=lr)
    values, best = [], (math.inf, None)
    for step in range(steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
        loss = loss_of(console.params())[0]
        v = float(loss.detach())
        if v < best[0]:
            best = (v, console.snapshot())
        if step == steps:
            break
        values.append(v)
        opt.zero_grad()
        loss.backward()
        opt.step()
    console.restore(best[1])
    return values


def _check_budget(steps, lr):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        _fail(f"steps must be a whole number >= 0; got {steps!r}.")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < 10:
        _fail(f"lr must be a learning rate in (0, 10); got {lr!r}.")


def _result(console: _Console, loss_of, history: dict, t0: float) -> dict:
    with torch.no_grad():
        p = {k: v.detach() for k, v in console.params().items()}
        history["loss"] = float(loss_of(p)[0])
    history["seconds"] = time.perf_counter() - t0
    history["removed"] = console.removed.clone()
    return {"params": MixParams(p, "full"), **history}


def fit(stems: torch.Tensor, mix: torch.Tensor, sample_rate, steps: int = 300, lr: float = 0.05,
        start: Optional[Mapping] = None, n_peaks: int = DEFAULT_N_PEAKS) -> dict:
    """Fit the full console so that ``dsp.mix(stems, params)`` matches ``mix`` (stereo MR-STFT loss).

    ``stems`` mono ``(N, T)``, ``mix`` stereo ``(2, T)`` made from them (sample-aligned), at ``sample_rate`` Hz.
    ``start``: the parameters to start from (default :func:`initial_params`). Adam, ``steps`` steps, cosine decay
    from ``lr``. Deterministic (no randomness). Returns ``{"params": MixParams (batch 1, full console),
    "loss": the final loss, "start_loss", "losses": per step, "seconds", "removed": (N, 5) all False}``.
    """
    stems, mix, sr = _inputs(stems, mix, sample_rate)
    _check_budget(steps, lr)
    t0 = time.perf_counter()
    console = _Console(initial_params(stems, mix, sr) if start is None else start, n_peaks)
    loss_of = _loss_fn(stems, mix, sr)
    with torch.no_grad():
        start_loss = float(loss_of(console.params())[0])
    losses = _descend(console, loss_of, steps, lr)
    return _result(console, loss_of, {"start_loss": start_loss, "losses": losses}, t0)


def prune(stems: torch.Tensor, mix: torch.Tensor, sample_rate, fitted: Mapping, tolerance: float = 0.05,
          finetune_steps: int = 20, lr: float = 0.005, patience: int = 3, n_peaks: int = DEFAULT_N_PEAKS) -> dict:
    """Prune the processing graph of a fitted console (the module docstring's greedy search).

    ``fitted``: :func:`fit`'s result (or its ``"params"``). Each round removes the processor whose removal
    raises the loss least; if the loss then exceeds ``limit = (1 + tolerance)`` times the fitted loss, the
    remaining processors are fine-tuned (Adam, ``finetune_steps`` from ``lr``, the best state kept) and the
    removal is undone, for good, if the loss still exceeds it. The search stops when no processor is left to
    try or after ``patience`` refusals in a row. The returned loss is never above ``limit``. Returns
    ``{"params", "loss", "base_loss", "limit", "removed": (N, 5) bool (True: removed; columns
    :data:`PROCESSORS`), "steps": one dict per attempt (track, processor, loss_if_removed, loss, fine_tuned,
    removed), "seconds"}``.
    """
    stems, mix, sr = _inputs(stems, mix, sample_rate)
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 <= tolerance < 10:
        _fail(f"tolerance must be a relative loss increase in [0, 10) (0.05 = 5 %); got {tolerance!r}.")
    _check_budget(finetune_steps, lr)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        _fail(f"patience must be a whole number >= 1 (refusals in a row before the search stops); got {patience!r}.")
    t0 = time.perf_counter()
    params = fitted["params"] if "params" in fitted and not isinstance(fitted, MixParams) else fitted
    console = _Console(params, n_peaks)
    loss_of = _loss_fn(stems, mix, sr)
    with torch.no_grad():
        base = float(loss_of(console.params())[0])
    limit = base * (1 + tolerance)
    refused = torch.zeros_like(console.removed)  # removals that broke the tolerance: never tried again
    attempts, misses = [], 0
    while misses < patience:
        open_ = (~console.removed & ~refused).nonzero().tolist()
        if not open_:
            break
        trial = console.removed.expand(len(open_), -1, -1).clone()
        for b, (i, j) in enumerate(open_):
            trial[b, i, j] = True
        with torch.no_grad():  # every candidate removal, eight to a batch
            losses = torch.cat([loss_of(console.params(trial[k:k + 8])) for k in range(0, len(open_), 8)])
        b = int(torch.argmin(losses))
        i, j = open_[b]
        snap = console.snapshot()
        console.removed[i, j] = True
        after, tuned = float(losses[b]), False
        if after > limit and finetune_steps:  # the other processors may make up for it
            _descend(console, loss_of, finetune_steps, lr)
            with torch.no_grad():
                after, tuned = float(loss_of(console.params())[0]), True
        ok = after <= limit
        attempts.append({"track": i, "processor": PROCESSORS[j], "loss_if_removed": float(losses[b]),
                         "loss": after, "fine_tuned": tuned, "removed": ok})
        misses = 0 if ok else misses + 1
        if not ok:
            console.restore(snap)
            refused[i, j] = True
    return _result(console, loss_of, {"base_loss": base, "limit": limit, "steps": attempts}, t0)


def with_neutral(params: Mapping, removed: torch.Tensor) -> MixParams:
    """A copy of a batch-1 console with the processors ``removed`` ``(N, 5)`` bool (columns :data:`PROCESSORS`) at
    their :data:`NEUTRAL` settings: the graph with those processors taken out. ``benchmarks/reverse.py`` uses it to
    make sparse consoles whose graph pruning should find."""
    removed = torch.as_tensor(removed, dtype=torch.bool)
    n = params["gain_db"].shape[-1]
    if removed.shape != (n, len(PROCESSORS)):
        _fail(f"removed must be (tracks, processors) = ({n}, {len(PROCESSORS)}); got {tuple(removed.shape)}.")
    out = {k: v.detach().clone() for k, v in params.items()}
    for j, proc in enumerate(PROCESSORS):
        rows = removed[:, j]
        for name, value in NEUTRAL[proc].items():
            out[name][0, rows] = value
    return MixParams(out, "full")


def active_processors(params: Mapping) -> torch.Tensor:
    """``(N, 5)`` bool: which processors of a batch-1 console do something (not at their :data:`NEUTRAL`
    setting, within a small tolerance: 0.1 dB, ratio 1.01, pan 0.005, send -79 dB). For the engineer's known
    parameters: which processors a pruned graph *should* keep."""
    n = params["gain_db"].shape[-1]
    out = torch.zeros(n, len(PROCESSORS), dtype=torch.bool)
    g = params["gain_db"][0].abs() > 0.1
    eq = ((params["highpass_cutoff_hz"][0] > 21.0) | (params["low_shelf_gain_db"][0].abs() > 0.1)
          | (params["peak_gain_db"][0].abs() > 0.1).any(-1) | (params["high_shelf_gain_db"][0].abs() > 0.1))
    comp = (params["ratio"][0] > 1.01) & (params["threshold_db"][0] < -0.1) | (params["makeup_db"][0] > 0.1)
    pan = (params["pan"][0] - 0.5).abs() > 0.005
    rev = params["reverb_send_db"][0] > -79.0
    for j, v in enumerate((g, eq, comp, pan, rev)):
        out[:, j] = v
    return out


def neutral_in(params: Mapping) -> torch.Tensor:
    """``(N, 5)`` bool: the complement of :func:`active_processors`."""
    return ~active_processors(params)


def processor_error(params: Mapping, truth: Mapping, stems: Optional[torch.Tensor] = None,
                    sample_rate: float = 44100.0) -> dict:
    """Mean absolute error per processor type between two batch-1 consoles, in the parameters' units: gain (dB,
    mean offset removed, which the master gain absorbs), pan, EQ (dB, the mean over 30 Hz-16 kHz of the
    magnitude responses' difference; with ``stems (N, T)`` weighted by each stem's power spectrum, so that bands a
    track does not play in, where no mix can tell its EQ, do not count), compressor (dB of the static curve, make-up
    included, at -30..0 dB input), reverb level (dB: send + return, which trade off, floored at -60 dB), T60 (s)."""
    def np1(name, p):
        return p[name][0].detach().double().numpy()

    g = np1("gain_db", params) - np1("gain_db", truth)
    freqs = np.geomspace(30, 16000, 96)
    diff = np.abs(_eq_db(params, freqs, sample_rate) - _eq_db(truth, freqs, sample_rate))
    if stems is None:
        eq = diff.mean(-1)
    else:
        spec = np.abs(np.fft.rfft(stems.detach().double().numpy(), axis=-1)) ** 2
        bins = np.fft.rfftfreq(stems.shape[-1], 1 / sample_rate)
        edges = np.concatenate([[freqs[0] / 1.035], np.sqrt(freqs[1:] * freqs[:-1]), [freqs[-1] * 1.035]])
        w = np.stack([np.histogram(bins, edges, weights=s)[0] for s in spec]) + 1e-30  # power per band
        eq = (diff * w).sum(-1) / w.sum(-1)
    level_in = np.linspace(-30, 0, 31)
    comp = np.abs(_comp_db(params, level_in) - _comp_db(truth, level_in)).mean(-1)

    def level(p):  # what the listener hears of each track's reverb: send + return, floored at -60 dB
        return np.maximum(np1("reverb_send_db", p) + np1("reverb_return_db", p), -60.0)

    sends = level(params) - level(truth)
    return {"gain_db": float(np.abs(g - g.mean()).mean()), "pan": float(np.abs(np1("pan", params) - np1("pan", truth)).mean()),
            "eq_db": float(eq.mean()), "compressor_db": float(comp.mean()), "reverb_db": float(np.abs(sends).mean()),
            "reverb_t60_s": float(abs(np1("reverb_t60_s", params) - np1("reverb_t60_s", truth)).mean())}


def _eq_db(params: Mapping, freqs: np.ndarray, sr: float = 44100.0) -> np.ndarray:
    """Magnitude response (dB) of each track's EQ at ``freqs`` -> (N, F)."""
    from scipy.signal import sosfreqz

    strip = {k: params[k][0].detach().double() for k in STRIP_NAMES}
    sos = dsp.strip_eq_sos(sr, strip).numpy()  # (N, sections, 6)
    return np.stack([20 * np.log10(np.abs(sosfreqz(s, worN=freqs, fs=sr)[1]) + 1e-12) for s in sos])


def _comp_db(params: Mapping, level_db: np.ndarray) -> np.ndarray:
    """Static gain (dB) of each track's compressor, make-up included, at input levels ``level_db`` -> (N, L)."""
    thr, ratio, knee, makeup = (params[k][0].detach().double().numpy()[:, None]
                                for k in ("threshold_db", "ratio", "knee_db", "makeup_db"))
    x = level_db[None, :]
    over = x - thr
    soft = (1 / ratio - 1) * (over + knee / 2) ** 2 / (2 * np.maximum(knee, 1e-9))
    hard = (1 / ratio - 1) * over
    gain = np.where(2 * over < -knee, 0.0, np.where(2 * np.abs(over) <= knee, soft, hard))
    return gain + makeup


# --------------------------------------------------------------------------------------------
# Measured on the bundled set, against the engineer's known parameters (benchmarks/reverse.py)
# --------------------------------------------------------------------------------------------

def evaluate_song(song_id: str, engineer: str = "natural", seconds: float = 3.0, steps: int = 150,
                  tolerance: float = 0.05, finetune_steps: int = 10, sparsity: Optional[float] = None,
                  seed: int = 0) -> dict:
    """Reverse-engineer the first ``seconds`` of a bundled song's ``engineer`` mix and score it against the known
    parameters: ``{"song", "tracks", "fit": processor_error, "pruned": processor_error, "fit_loss", "pruned_loss",
    "start_loss", "features_mape": the Part 4 feature groups' MAPE (percent) of the refitted (pruned) mix against the
    target, "removed": fraction,
    "removed_neutral": fraction of the removed processors the engineer had left neutral, "neutral_removed":
    fraction of the engineer's neutral processors that were removed, "gain_db"/"pan": ``{"truth", "fit"}`` per
    track, "removed_mask"/"neutral_mask": ``(N, 5)`` 0/1 lists over :data:`PROCESSORS`, "fit_s", "prune_s"}``."""
    from . import data, features

    n = round(seconds * data.SAMPLE_RATE)
    x = data.load_song(song_id)["tracks"][:, :n]
    y = data.reproduce_mix(song_id, engineer)[:, :n]
    truth = data.mix_params(song_id, engineer)
    if sparsity is not None:
        if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool) or not 0 < sparsity < 1:
            _fail(f"sparsity must be a fraction in (0, 1) of processors to set neutral; got {sparsity!r}.")
        g = torch.Generator().manual_seed(seed)
        drop = torch.rand(x.shape[0], len(PROCESSORS), generator=g).flatten().argsort()[:round(sparsity * x.shape[0] * len(PROCESSORS))]
        mask = torch.zeros(x.shape[0] * len(PROCESSORS), dtype=torch.bool)
        mask[drop] = True
        truth = with_neutral(truth, mask.view(x.shape[0], len(PROCESSORS)))
        with torch.no_grad():
            y = dsp.mix(x[None], data.SAMPLE_RATE, dict(truth))[0]
    fitted = fit(x, y, data.SAMPLE_RATE, steps=steps)
    pruned = prune(x, y, data.SAMPLE_RATE, fitted, tolerance=tolerance, finetune_steps=finetune_steps)
    with torch.no_grad():
        refit = dsp.mix(x[None], data.SAMPLE_RATE, dict(pruned["params"]))[0]
    groups = features.feature_mape(refit.double().numpy(), y.double().numpy(), data.SAMPLE_RATE)["groups"]
    removed, neutral = pruned["removed"], neutral_in(truth)
    return {"song": song_id, "engineer": engineer, "sparsity": sparsity, "tracks": int(x.shape[0]), "seconds": seconds,
            "start_loss": fitted["start_loss"], "fit_loss": fitted["loss"], "pruned_loss": pruned["loss"],
            "fit": processor_error(fitted["params"], truth, x, data.SAMPLE_RATE),
            "pruned": processor_error(pruned["params"], truth, x, data.SAMPLE_RATE),
            "features_mape": {g: float(v) for g, v in groups.items()},
            "removed": float(removed.float().mean()),
            "removed_neutral": float((removed & neutral).sum() / max(int(removed.sum()), 1)),
            "neutral_removed": float((removed & neutral).sum() / max(int(neutral.sum()), 1)),
            "removed_by_processor": {p: float(removed[:, j].float().mean()) for j, p in enumerate(PROCESSORS)},
            "neutral_by_processor": {p: float(neutral[:, j].float().mean()) for j, p in enumerate(PROCESSORS)},
            "gain_db": {"truth": _row(truth, "gain_db"), "fit": _row(fitted["params"], "gain_db")},
            "pan": {"truth": _row(truth, "pan"), "fit": _row(fitted["params"], "pan")},
            "removed_mask": removed.int().tolist(), "neutral_mask": neutral.int().tolist(),
            "fit_s": fitted["seconds"], "prune_s": pruned["seconds"]}


def _row(params: Mapping, name: str) -> list:
    return [round(float(v), 4) for v in params[name][0].detach().double()]


RESULTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                            "reverse_results.json")


def _mean_ci(values) -> str:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return f"{v.mean():.2f}"
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return f"{v.mean():.2f} ± {half:.2f}"


def results_table(results: Mapping) -> str:
    """Markdown tables of ``benchmarks/reverse.py``'s results (:func:`read_results`): per task and target (the
    engineer's console, or a sparse one: :func:`evaluate_song`'s ``sparsity``), the parameter error per
    processor type after the fit and after pruning, then the loss, the Part 4 feature match, the pruning and the
    time per song (mean ± 95 % CI over songs, Student t)."""
    errs = ("gain_db", "pan", "eq_db", "compressor_db", "reverb_db", "reverb_t60_s")
    out = []
    for task, sparsity in dict.fromkeys((r["task"], r.get("sparsity")) for r in results["rows"]):
        rows = [r for r in results["rows"] if r["task"] == task and r.get("sparsity") == sparsity]
        who = (f"the {rows[0]['engineer']} engineer" if sparsity is None else
               f"a sparse {rows[0]['engineer']} engineer ({sparsity:.0%} of the processors set neutral)")
        out += [f"**{task}, {who}** ({len(rows)} TEST songs)", "",
                "| after | " + " | ".join(errs) + " |", "|---|" + "---|" * len(errs)]
        out += [f"| {stage} | " + " | ".join(_mean_ci([r[stage][e] for r in rows]) for e in errs) + " |"
                for stage in ("fit", "pruned")]
        groups = list(rows[0]["features_mape"])
        out += ["", "| stereo loss: start | fit | pruned | processors removed | removed that the engineer left neutral | "
                "engineer's neutral ones removed | " + " | ".join(f"{g} MAPE %" for g in groups) + " | s per song |",
                "|---|---|---|---|---|---|" + "---|" * len(groups) + "---|",
                "| " + " | ".join(_mean_ci([r[k] for r in rows]) for k in ("start_loss", "fit_loss", "pruned_loss"))
                + " | " + " | ".join(f"{100 * np.mean([r[k] for r in rows]):.0f} %" for k in
                                     ("removed", "removed_neutral", "neutral_removed"))
                + " | " + " | ".join(_mean_ci([r["features_mape"][g] for r in rows]) for g in groups)
                + f" | {np.mean([r['fit_s'] + r['prune_s'] for r in rows]):.0f} |", ""]
        out += ["| processor | " + " | ".join(PROCESSORS) + " |", "|---|" + "---|" * len(PROCESSORS),
                "| removed | " + " | ".join(f"{100 * np.mean([r['removed_by_processor'][p] for r in rows]):.0f} %"
                                         for p in PROCESSORS) + " |",
                "| neutral in the engineer's console | " + " | ".join(
                    f"{100 * np.mean([r['neutral_by_processor'][p] for r in rows]):.0f} %" for p in PROCESSORS) + " |", ""]
    return "\n".join(out)


def read_results(path: Optional[str] = None) -> Optional[dict]:
    """``benchmarks/reverse_results.json`` as written by ``benchmarks/reverse.py``; ``None`` when absent or partial
    (the benchmark writes the songs done so far with ``"partial": true`` while it runs)."""
    import json

    path = RESULTS_FILE if path is None else path
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        results = json.load(f)
    return None if results.get("partial") else results
