"""The channel strip and the mixing console (taught in ``notebooks/06_channel_strip_console.ipynb``).

Signal chain after Steinmetz (2020, sec. 4.2.5, fig. 8), with the reverb as a send to a shared bus:

    track (mono) -> gain -> high-pass -> parametric EQ -> compressor -> pan -> (stereo) -> master bus
                                                                            '-> send level -> reverb bus

    master = master_gain * ( sum_tracks strip_out + reverb_return * reverb(sum_tracks send) )

- Gain: ``gain_db``. EQ: a 2nd-order Butterworth high-pass (Q = 0.707; 20 Hz is practically off), a
  low shelf, ``n_peaks`` peaking bands and a high shelf (shelf Q = 0.707): all ``3 + n_peaks``
  biquads run in one ``sosfilt`` call. Compressor: ``dynamics.compressor`` (ratio 1 = bypass).
  Pan: ``panning.pan`` with the ``"-4.5dB"`` law by default (``DEFAULT_PAN_LAW``), the compromise
  between linear (-6 dB in the centre) and constant-power (-3 dB) panning used on many consoles.
- Send: post-fader, post-pan (stereo), scaled by ``reverb_send_db``. The reverb bus convolves the left
  and right sums of the sends with two decorrelated impulse responses of the same decay time
  ``reverb_t60_s`` (``reverb.reverb_impulse_response`` with its default damping and early
  reflections, unit energy, a fixed seed: the same parameters always give the same reverb), 100 % wet,
  then scales them by ``reverb_return_db``. ``master_gain_db`` scales the sum.

Parameters live in one table, ``SPECS`` (a tuple of ``ParamSpec``, defined in :mod:`automix_lite.parameters`,
where the proxy's ranges are derived from it too), in real units. Levels: ``"track"`` (one value per track:
``(B, N)`` for the console, ``(B,)`` for one strip), ``"peak"`` (one per track and peaking band: ``(B, N, P)`` /
``(B, P)``), ``"bus"`` (the reverb bus) and ``"master"`` (one per mix: ``(B,)``).
``params_to_normalized`` / ``params_from_normalized`` map them to and from [0, 1] controls (linear or
logarithmic per parameter), the interface used by the neural networks of Parts 2 and 3.

Cutoff ranges reach 16 kHz; at sample rates below 35.6 kHz cutoffs above 0.45 fs are clamped to
0.45 fs inside the strip (so ranges and normalisation do not depend on the sample rate).
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from .._checks import as_param, check_audio, check_sample_rate
from ..parameters import LEVELS, SCALES, SPEC_BY_NAME, SPECS, ParamSpec  # noqa: F401  (the one parameter table)
from .biquad import biquad_sos, parametric_eq_sos, sosfilt
from .dynamics import EPS as _DETECTOR_EPS, compressor
from .panning import LAWS, db_to_gain, pan
from .reverb import fft_convolve, reverb_impulse_response

DEFAULT_PAN_LAW = "-4.5dB"
DEFAULT_N_PEAKS = 3
FILTER_Q = 0.707  # Q of the high-pass and of both shelves (Butterworth-like)
CUTOFF_LIMIT = 0.45  # cutoffs are clamped to CUTOFF_LIMIT * sample_rate (acts only below 35.6 kHz)
REVERB_SEED = 0  # noise seed of the reverb bus's stereo impulse response


STRIP_NAMES = tuple(s.name for s in SPECS if s.per_track)
BUS_NAMES = tuple(s.name for s in SPECS if not s.per_track)  # the reverb bus, then the master
ALL_NAMES = STRIP_NAMES + BUS_NAMES


def peak_cutoff_defaults(n_peaks: int) -> list:
    """Default centres of ``n_peaks`` peaking bands: geometrically spaced from 250 to 4000 Hz (1 band: 1 kHz)."""
    if n_peaks == 1:
        return [1000.0]
    return [250.0 * 16.0 ** (k / (n_peaks - 1)) for k in range(n_peaks)]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_law(law: str) -> str:
    if law not in LAWS:
        raise ValueError(f"pan_law={law!r} is not a panning law; use one of {', '.join(map(repr, LAWS))}.")
    return law


def _check_n_peaks(n_peaks) -> int:
    if isinstance(n_peaks, bool) or not isinstance(n_peaks, int) or n_peaks < 0:
        raise ValueError(f"n_peaks must be a non-negative integer (number of peaking bands); got {n_peaks!r}.")
    return n_peaks


def _check_keys(params, expected: Sequence[str], what: str) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of parameter name -> value; got {type(params).__name__}. "
                        "Start from default_params(batch, n_tracks).")
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(map(str, extra))}")
        raise ValueError(f"params for {what}: {'; '.join(parts)}. The names are those of "
                         f"automix_lite.dsp.console.SPECS ({what} takes {', '.join(expected)}).")


def _n_peaks_of(params, lead: int, default: int) -> int:
    """The number of peaking bands given by the peak-level tensors (last dim), else ``default``."""
    for name in ("peak_gain_db", "peak_cutoff_hz", "peak_q"):
        v = params.get(name)
        if isinstance(v, torch.Tensor) and v.ndim == lead + 1:
            return v.shape[-1]
    return default


def _shape_text(shape, dims) -> str:
    return "(" + ", ".join(f"{d}={s}" for d, s in zip(dims, shape)) + ")"


def _validated(params, names, shapes, dims, like) -> dict:
    """Check and convert ``params`` to tensors on ``like``'s dtype/device with the exact ``shapes[level]``.

    Numbers broadcast to the full shape; tensors must have the shape (a leading batch size of 1
    broadcasts). Values are range-checked with ``_checks.as_param``.
    """
    out = {}
    for name in names:
        spec = SPEC_BY_NAME[name]
        shape, dim = shapes[spec.level], dims[spec.level]
        value = params[name]
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            t = value.to(device=like.device, dtype=like.dtype)
            if t.ndim != len(shape) or t.shape[1:] != shape[1:] or t.shape[0] not in (1, shape[0]):
                raise ValueError(f"{name} must have shape {_shape_text(shape, dim)}; got {tuple(t.shape)}. "
                                 "Give one value per batch item" + (", track" if "tracks" in dim else "")
                                 + (" and band" if "bands" in dim else "") + ".")
            t = t.expand(shape)
        elif isinstance(value, (int, float, torch.Tensor)) and not isinstance(value, bool):
            t = torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(shape)
        else:
            raise TypeError(f"{name} must be a number or a tensor of shape {_shape_text(shape, dim)}; "
                            f"got {type(value).__name__}.")
        flat = t.reshape(-1)
        if flat.numel():
            as_param(flat, name, flat.numel(), like, spec.low, spec.high, spec.unit)
        out[name] = t
    return out


# --------------------------------------------------------------------------------------------
# Normalisation and parameter sets
# --------------------------------------------------------------------------------------------


def _known(params, what: str):
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a dict of parameter name -> value; got {type(params).__name__}.")
    unknown = [k for k in params if k not in SPEC_BY_NAME]
    if unknown:
        raise ValueError(f"{what} has unknown parameter(s) {', '.join(map(str, unknown))}; "
                         f"known names: {', '.join(ALL_NAMES)}.")


def params_to_normalized(params: Mapping) -> dict:
    """Real units -> [0, 1] controls, per ``SPECS`` (linear or logarithmic); same keys and shapes.

    ``params`` maps any of the ``SPECS`` names to numbers or tensors of any shape; values outside a
    parameter's range raise a ``ValueError``. Differentiable; the exact inverse of
    ``params_from_normalized`` on [0, 1].
    """
    _known(params, "params")
    out = {}
    for name, value in params.items():
        spec = SPEC_BY_NAME[name]
        t = value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.get_default_dtype())
        flat = t.reshape(-1)
        if flat.numel():
            as_param(flat, name, flat.numel(), flat, spec.low, spec.high, spec.unit)
        out[name] = spec.to_normalized(t)
    return out


def params_from_normalized(norm: Mapping) -> dict:
    """[0, 1] controls -> real units, per ``SPECS``; same keys and shapes. Differentiable.

    Values are first clamped into [0, 1] (so any network output maps into range; the gradient is
    zero outside [0, 1], so squash outputs, e.g. with a sigmoid, before calling this). NaN raises.
    """
    _known(norm, "norm")
    out = {}
    for name, value in norm.items():
        t = value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.get_default_dtype())
        if bool(torch.isnan(t).any()):
            raise ValueError(f"normalized {name} contains NaN; check the network that produced it.")
        out[name] = SPEC_BY_NAME[name].from_normalized(t.clamp(0.0, 1.0))
    return out


def _shapes(batch: int, n_tracks: Optional[int], n_peaks: int):
    lead = (batch,) if n_tracks is None else (batch, n_tracks)
    return {"track": lead, "peak": lead + (n_peaks,), "bus": (batch,), "master": (batch,)}


def _check_sizes(batch, n_tracks, n_peaks):
    for v, n in ((batch, "batch"), (n_tracks, "n_tracks")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{n} must be a positive integer; got {v!r}.")
    return _check_n_peaks(n_peaks)


def default_params(batch: int = 1, n_tracks: int = 1, n_peaks: int = DEFAULT_N_PEAKS,
                   dtype=torch.float32, device=None) -> dict:
    """Neutral console settings: every track centred at 0 dB, EQ flat (high-pass at 20 Hz), ratio 1,
    reverb send at -80 dB, bus gains 0 dB. Track params ``(batch, n_tracks)``, peaks
    ``(batch, n_tracks, n_peaks)``, bus params ``(batch,)``; fresh tensors you may edit in place.
    """
    n_peaks = _check_sizes(batch, n_tracks, n_peaks)
    shapes = _shapes(batch, n_tracks, n_peaks)
    out = {}
    for s in SPECS:
        if s.name == "peak_cutoff_hz":
            t = torch.tensor(peak_cutoff_defaults(n_peaks), dtype=dtype, device=device)
            out[s.name] = t.expand(shapes["peak"]).clone()
        else:
            out[s.name] = torch.full(shapes[s.level], s.default, dtype=dtype, device=device)
    return out


def random_params(batch: int = 1, n_tracks: int = 1, generator: Optional[torch.Generator] = None,
                  n_peaks: int = DEFAULT_N_PEAKS, dtype=torch.float32, device=None) -> dict:
    """Parameters drawn uniformly over the normalized [0, 1] controls (so log-scaled parameters are
    log-uniform), as the thesis samples its training configurations. ``generator`` (a CPU
    ``torch.Generator``) makes the draw reproducible. Shapes as in ``default_params``.
    """
    n_peaks = _check_sizes(batch, n_tracks, n_peaks)
    shapes = _shapes(batch, n_tracks, n_peaks)
    norm = {s.name: torch.rand(shapes[s.level], generator=generator, dtype=dtype).to(device) for s in SPECS}
    return params_from_normalized(norm)


def pack_params(params: Mapping) -> tuple:
    """Concatenate console params (real or normalized) into ``(track (B, N, D), bus (B, D_bus))``.

    Columns follow ``param_names(n_peaks)``: ``SPECS`` order, peak parameters expanded band by band.
    """
    _check_keys(params, ALL_NAMES, "pack_params")
    cols = [params[n] if SPEC_BY_NAME[n].level == "peak" else params[n].unsqueeze(-1) for n in STRIP_NAMES]
    return torch.cat(cols, -1), torch.stack([params[n] for n in BUS_NAMES], -1)


def param_names(n_peaks: int = DEFAULT_N_PEAKS) -> tuple:
    """Column names of ``pack_params``: ``(track_columns, bus_columns)``; peaks as ``peak_gain_db[k]``."""
    track = []
    for n in STRIP_NAMES:
        track += [f"{n}[{k}]" for k in range(n_peaks)] if SPEC_BY_NAME[n].level == "peak" else [n]
    return tuple(track), BUS_NAMES


def unpack_params(track: torch.Tensor, bus: torch.Tensor, n_peaks: int = DEFAULT_N_PEAKS) -> dict:
    """Inverse of ``pack_params``: ``track`` (B, N, D) and ``bus`` (B, D_bus) -> params dict."""
    n_peaks = _check_n_peaks(n_peaks)
    width = len(param_names(n_peaks)[0])
    if track.ndim != 3 or track.shape[-1] != width or bus.ndim != 2 or bus.shape[-1] != len(BUS_NAMES):
        raise ValueError(f"track must be (batch, tracks, {width}) and bus (batch, {len(BUS_NAMES)}) for "
                         f"n_peaks={n_peaks}; got {tuple(track.shape)} and {tuple(bus.shape)}.")
    out, i = {}, 0
    for n in STRIP_NAMES:
        if SPEC_BY_NAME[n].level == "peak":
            out[n], i = track[..., i:i + n_peaks], i + n_peaks
        else:
            out[n], i = track[..., i], i + 1
    out.update({n: bus[:, j] for j, n in enumerate(BUS_NAMES)})
    return out


# --------------------------------------------------------------------------------------------
# Processing
# --------------------------------------------------------------------------------------------


EQ_NAMES = ("highpass_cutoff_hz", "low_shelf_gain_db", "low_shelf_cutoff_hz", "peak_gain_db", "peak_cutoff_hz",
            "peak_q", "high_shelf_gain_db", "high_shelf_cutoff_hz")


def _eq_sos(sr: float, p: Mapping, m: int, like: torch.Tensor) -> torch.Tensor:
    """Sections (M, 3 + P, 6) of high-pass + parametric EQ from track params (M,) and peaks (M, P)."""
    cap = CUTOFF_LIMIT * sr
    # coefficients in float64 (as in parametric_eq): float32 RBJ coefficients cost ~2.5e-4 of accuracy
    hp = biquad_sos("highpass", 0.0, p["highpass_cutoff_hz"].double().clamp(max=cap), FILTER_Q, sr)
    eq = parametric_eq_sos(
        sr, batch=m, like=torch.empty(0, dtype=torch.float64, device=like.device),  # not like.double(): a copy of x
        low_shelf_gain_db=p["low_shelf_gain_db"], low_shelf_cutoff_hz=p["low_shelf_cutoff_hz"].clamp(max=cap),
        low_shelf_q=FILTER_Q, peak_gain_db=p["peak_gain_db"], peak_cutoff_hz=p["peak_cutoff_hz"].clamp(max=cap),
        peak_q=p["peak_q"], high_shelf_gain_db=p["high_shelf_gain_db"],
        high_shelf_cutoff_hz=p["high_shelf_cutoff_hz"].clamp(max=cap), high_shelf_q=FILTER_Q,
    )
    return torch.cat([hp.unsqueeze(1), eq], 1)


def strip_eq_sos(sample_rate, params: Mapping) -> torch.Tensor:
    """The strip's EQ as second-order sections ``(..., 3 + P, 6)``: high-pass, low shelf, P peaks, high shelf.

    ``params`` holds (at least) the EQ names of ``SPECS`` as tensors: track-level ``(...)`` (e.g.
    ``(B, N)``), peaks ``(..., P)``; other keys are ignored. For plots with ``biquad.sosfreqz``.
    """
    sr = check_sample_rate(sample_rate)
    _known(params, "params")
    missing = [k for k in EQ_NAMES if k not in params]
    if missing:
        raise ValueError(f"strip_eq_sos needs {', '.join(missing)} (names of SPECS); start from default_params.")
    lead = params["highpass_cutoff_hz"].shape
    m = math.prod(lead)
    shapes = {"track": (m,), "peak": (m, _n_peaks_of(params, len(lead), DEFAULT_N_PEAKS)), "bus": (m,)}
    flat = {k: (params[k].reshape(m, -1) if SPEC_BY_NAME[k].level == "peak" else params[k].reshape(m))
            for k in EQ_NAMES}
    dims = {"track": ("items",), "peak": ("items", "bands"), "bus": ("items",)}
    like = params["highpass_cutoff_hz"]
    p = _validated(flat, EQ_NAMES, shapes, dims, like if like.is_floating_point() else like.float())
    sos = _eq_sos(sr, p, m, p["highpass_cutoff_hz"])
    return sos.view(*lead, *sos.shape[1:])


def _strip(x: torch.Tensor, sr: float, p: dict, law: str):
    """All strips at once: ``x`` (M, 1, T), track params (M,), peaks (M, P) -> (out, send), each (M, 2, T)."""
    m = x.shape[0]
    y = x * db_to_gain(p["gain_db"]).view(m, 1, 1)
    y = sosfilt(_eq_sos(sr, p, m, x).unsqueeze(1), y)  # all 3 + P sections in one pass
    y = compressor(y, sr, p["threshold_db"], p["ratio"], p["attack_ms"], p["release_ms"], p["knee_db"], p["makeup_db"])
    y = pan(y, p["pan"], law)
    return y, y * db_to_gain(p["reverb_send_db"]).view(m, 1, 1)


def channel_strip(x: torch.Tensor, sample_rate, params: Mapping, pan_law: str = DEFAULT_PAN_LAW):
    """One channel strip per batch item: mono ``x`` (B, 1, T) -> ``(out, send)``, each stereo (B, 2, T).

    gain -> high-pass + parametric EQ -> compressor -> pan; ``send`` is ``out`` scaled by
    ``reverb_send_db`` (post-fader, post-pan). ``params`` holds exactly the strip names of ``SPECS``
    (``STRIP_NAMES``): numbers or ``(B,)`` tensors, peak parameters ``(B, P)`` tensors (or numbers,
    then ``P = 3``). Differentiable in ``x`` and every parameter.
    """
    check_audio(x, channels=1)
    sr = check_sample_rate(sample_rate)
    _check_law(pan_law)
    _check_keys(params, STRIP_NAMES, "channel_strip")
    b = x.shape[0]
    shapes = _shapes(b, None, _n_peaks_of(params, 1, DEFAULT_N_PEAKS))
    dims = {"track": ("batch",), "peak": ("batch", "bands"), "bus": ("batch",)}
    return _strip(x, sr, _validated(params, STRIP_NAMES, shapes, dims, x), pan_law)


def _check_tracks(tracks) -> torch.Tensor:
    if isinstance(tracks, torch.Tensor) and tracks.ndim != 3:
        raise ValueError(f"tracks must have 3 dimensions (batch, tracks, samples) with one mono track per "
                         f"row; got shape {tuple(tracks.shape)}. One song of N tracks is tracks.view(1, N, -1).")
    return check_audio(tracks, "tracks")


def _check_mask(mask, batch: int, n_tracks: int, like: torch.Tensor) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch, n_tracks):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        kind = f", dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else ""
        raise ValueError(f"mask must be a bool tensor of shape (batch={batch}, tracks={n_tracks}), True for real "
                         f"tracks and False for padding; got {got}{kind}.")
    return mask.to(device=like.device, dtype=like.dtype).view(batch, n_tracks, 1, 1)


@functools.lru_cache(maxsize=8)
def _fixed_ir(sr: float, t60: tuple, seed: int, dtype, device) -> torch.Tensor:
    return reverb_impulse_response(sr, torch.tensor(t60, dtype=dtype, device=device), seed=seed, channels=2)


def _reverb_bus(send: torch.Tensor, sr: float, t60: torch.Tensor, seed: int) -> torch.Tensor:
    """Stereo send sum (B, 2, T) -> 100 % wet stereo reverb (B, 2, T): a decorrelated two-channel IR
    (``reverb.reverb_impulse_response`` with ``channels=2``, fixed ``seed``), one channel per side.
    IRs of decay times that need no gradient are cached (hand mixing re-uses the same few)."""
    return fft_convolve(send, _bus_ir(sr, t60, seed, send))


def _bus_ir(sr: float, t60: torch.Tensor, seed: int, like: torch.Tensor) -> torch.Tensor:
    """The reverb bus's stereo IR ``(1 or B, 2, N)`` on ``like``'s dtype and device (cached without gradient)."""
    if t60.requires_grad:
        return reverb_impulse_response(sr, t60, seed=seed, channels=2, dtype=like.dtype, device=like.device)
    return _fixed_ir(sr, tuple(t60.tolist()), seed, like.dtype, like.device)


def _mix_inputs(tracks, sample_rate, params: Mapping, mask, pan_law: str):
    """The checks shared by :func:`mix` and :func:`mix_blocks`: ``(tracks, sample rate, mask weights or None,
    validated parameters)``."""
    tracks = _check_tracks(tracks)
    sr = check_sample_rate(sample_rate)
    _check_law(pan_law)
    _check_keys(params, ALL_NAMES, "mix")
    b, n, _ = tracks.shape
    w = _check_mask(mask, b, n, tracks)
    shapes = _shapes(b, n, _n_peaks_of(params, 2, DEFAULT_N_PEAKS))
    dims = {"track": ("batch", "tracks"), "peak": ("batch", "tracks", "bands"), "bus": ("batch",), "master": ("batch",)}
    return tracks, sr, w, _validated(params, ALL_NAMES, shapes, dims, tracks)


def mix(tracks: torch.Tensor, sample_rate, params: Mapping, mask: Optional[torch.Tensor] = None,
        pan_law: str = DEFAULT_PAN_LAW, reverb: bool = True, reverb_seed: int = REVERB_SEED) -> torch.Tensor:
    """Mix mono ``tracks`` (B, N, T) into a stereo master (B, 2, T).

    ``params`` holds every ``SPECS`` name: track-level ``(B, N)``, peak-level ``(B, N, P)``, bus-level
    ``(B,)`` tensors (numbers broadcast; a batch size of 1 broadcasts); see ``default_params``.
    ``mask`` (B, N) bool marks real tracks (False = padding, which contributes nothing; its
    parameters must still lie in range). All B * N strips run at once as a (B * N, 1, T) batch.
    ``reverb=False`` skips the reverb bus (its parameters are then unused); ``reverb_seed`` picks its
    impulse response. Differentiable in ``tracks`` and every parameter.
    """
    tracks, sr, w, p = _mix_inputs(tracks, sample_rate, params, mask, pan_law)
    b, n, t = tracks.shape
    flat = {k: p[k].reshape(b * n, *p[k].shape[2:]) for k in STRIP_NAMES}
    out, send = (v.view(b, n, 2, t) for v in _strip(tracks.reshape(b * n, 1, t), sr, flat, pan_law))
    if w is not None:
        out, send = out * w, send * w
    master = out.sum(1)
    if reverb:
        ret = db_to_gain(p["reverb_return_db"]).view(b, 1, 1)
        master = master + ret * _reverb_bus(send.sum(1), sr, p["reverb_t60_s"], reverb_seed)
    return master * db_to_gain(p["master_gain_db"]).view(b, 1, 1)


def wet_stems(tracks: torch.Tensor, sample_rate, params: Mapping, mask: Optional[torch.Tensor] = None,
              pan_law: str = DEFAULT_PAN_LAW, reverb: bool = True, reverb_seed: int = REVERB_SEED) -> torch.Tensor:
    """Each track as it reaches the master: ``(B, N, 2, T)`` stereo "wet stems" (chapter 5.3).

    Track ``k``'s stem is its channel strip's output plus its own share of the reverb bus (the bus is
    linear, so its return is the sum over tracks of each send convolved with the bus IR times the return),
    times the master gain; masked tracks are zero. ``wet_stems(...).sum(1)`` equals :func:`mix` with the
    same arguments (to float rounding). Arguments as for :func:`mix`.
    """
    tracks, sr, w, p = _mix_inputs(tracks, sample_rate, params, mask, pan_law)
    b, n, t = tracks.shape
    flat = {k: p[k].reshape(b * n, *p[k].shape[2:]) for k in STRIP_NAMES}
    out, send = (v.view(b, n, 2, t) for v in _strip(tracks.reshape(b * n, 1, t), sr, flat, pan_law))
    if reverb:
        ir = _bus_ir(sr, p["reverb_t60_s"], reverb_seed, tracks)  # (1 or B, 2, L)
        ir = ir if ir.shape[0] == 1 else ir.repeat_interleave(n, 0)
        wet = fft_convolve(send.reshape(b * n, 2, t), ir).view(b, n, 2, t)
        out = out + db_to_gain(p["reverb_return_db"]).view(b, 1, 1, 1) * wet
    if w is not None:
        out = out * w
    return out * db_to_gain(p["master_gain_db"]).view(b, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# Long songs: the console block by block
# --------------------------------------------------------------------------------------------

BLOCK_SAMPLES = 1 << 19
"""Default block of :func:`mix_blocks`, in samples times tracks (8 tracks: 65,536 samples, 1.5 s at 44.1 kHz;
a block's signals then take about 30 MB). Longer blocks are no faster on two cores."""

SETTLE = 1e-12
"""The fraction to which :func:`mix_blocks` lets the state it does not copy decay: the EQ's start state
(over its warm-up) and the gap between the compressor's start and the gain reduction it resumes (over
its prefix)."""

_AUDIBLE = 1e-15  # |x| below this reads as -100 dB in the compressor's detector: no gain reduction asked for


def _decay_samples(a: float, fraction: float = SETTLE) -> int:
    """The fewest samples ``n`` with ``a ** n <= fraction`` for a decay factor ``0 <= a < 1`` per sample."""
    if a <= 0.0:
        return 0
    if a >= 1.0:
        raise ValueError(f"a decay factor of {a} per sample never decays.")
    return math.ceil(math.log(fraction) / math.log(a))


def eq_warmup_samples(sos: torch.Tensor) -> int:
    """Samples of warm-up after which the cascades ``sos (..., S, 6)`` (a0 = 1) have forgotten their start state.

    Twice the time in which the slowest pole's free response decays by :data:`SETTLE` (the factor two covers
    the slower decay of coinciding poles in a cascade): about 0.5 s for the settings the bundled DMC predicts,
    35 s for the slowest the console allows (a +24 dB, Q 10 peak at 20 Hz).
    """
    a1, a2 = sos[..., 4].detach().double(), sos[..., 5].detach().double()
    disc = (a1 * a1 - 4 * a2).to(torch.complex128).sqrt()
    radius = float((torch.maximum((-a1 + disc).abs(), (-a1 - disc).abs()) / 2).max())
    return 2 * _decay_samples(radius)


def _compressor_prefix(state: torch.Tensor, s: torch.Tensor, thr: torch.Tensor, knee: torch.Tensor,
                       n: int, like: torch.Tensor) -> torch.Tensor:
    """``(M, 1, n)``: a constant input whose static gain reduction is ``state`` (dB, float64 ``(M,)``).

    The compressor starts at y_L = 0 and rises towards it with its attack coefficient; ``n`` samples bring it
    within ``SETTLE`` of ``state``. Inverts ``x_L = s h(x_G - T)`` (the soft knee ``h``) and
    ``x_G = 10 log10(v^2 + eps)``; rows with ``state == 0`` or ratio 1 (``s == 0``) get silence.
    """
    on = (state > 0) & (s > 0)
    h = torch.where(on, state / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(state))
    half = knee / 2
    u = torch.where(h >= half, h, torch.sqrt(2 * knee * h) - half)
    power = torch.pow(10.0, (thr + u) / 10) - _DETECTOR_EPS
    v = torch.where(on, power.clamp_min(0).sqrt(), torch.zeros_like(power))
    return v.to(like.dtype).view(-1, 1, 1).expand(-1, 1, n)


def _gain_reduction_at_end(x: torch.Tensor, y: torch.Tensor, makeup: torch.Tensor, a_release: torch.Tensor,
                           start: torch.Tensor) -> torch.Tensor:
    """The compressor's state y_L (dB, float64 ``(M,)``) after the last sample of its input ``x`` and output ``y``.

    At the last sample ``j`` with ``|x| >= _AUDIBLE`` it is ``makeup - 20 log10(|y_j / x_j|)`` (float32 rounding
    of ``y`` costs about 5e-7 dB); after it the detector reads -100 dB, below every threshold, so y_L only
    decays, by the release coefficient per sample. A row without such a sample decays from ``start``.
    """
    x, y = x[:, 0], y[:, 0]
    length = x.shape[-1]
    audible = x.abs() >= _AUDIBLE
    heard = audible.any(-1)
    last = length - 1 - audible.flip(-1).to(torch.uint8).argmax(-1)
    rows = torch.arange(x.shape[0], device=x.device)
    xj, yj = x[rows, last].double().abs(), y[rows, last].double().abs()
    at_last = makeup - 20 * torch.log10(torch.where(heard, yj / torch.where(heard, xj, torch.ones_like(xj)),
                                                    torch.ones_like(xj)))
    end = torch.where(heard, at_last * a_release ** (length - 1 - last).double(), start * a_release ** length)
    return end.clamp_min(0.0)


def mix_blocks(tracks: torch.Tensor, sample_rate, params: Mapping, mask: Optional[torch.Tensor] = None,
               pan_law: str = DEFAULT_PAN_LAW, reverb: bool = True, reverb_seed: int = REVERB_SEED,
               block: Optional[int] = None, warmup: Optional[int] = None) -> torch.Tensor:
    """:func:`mix` rendered block by block: the same master ``(B, 2, T)``, with working memory set by ``block``.

    For songs too long to hold every strip's signals at once (``automix mix`` of a full DMC). Arguments as
    for :func:`mix`; ``block`` is the block length in samples (default :data:`BLOCK_SAMPLES` divided by the
    number of strips, at least one second). Every effect with memory continues from one block into the next:

    - reverb bus: overlap-add, exact; each block's send is convolved in full, and the tail that rings past
      the block is added to the blocks that follow;
    - compressor: its one state, the smoothed gain reduction y_L, is read at the end of each block (from
      the block's input and output, :func:`_gain_reduction_at_end`) and restored at the start of the next by
      a constant prefix whose static gain reduction equals it (:func:`_compressor_prefix`), which the attack
      ballistics reach within :data:`SETTLE` (28 attack times: 1,200 samples for a 1 ms attack);
    - EQ (high-pass, shelves, peaks): each block is filtered from ``warmup`` samples earlier, by default
      :func:`eq_warmup_samples` of the settings.

    The result equals :func:`mix` to float32 rounding (about 1e-7 of full scale; not bit for bit: the
    restored gain reduction is good to about 1e-6 dB, and the FFTs differ in length). Meant for rendering
    (under ``torch.no_grad``); train with :func:`mix`.
    """
    tracks, sr, w, p = _mix_inputs(tracks, sample_rate, params, mask, pan_law)
    b, n, t = tracks.shape
    m = b * n
    f = {k: p[k].reshape(m, *p[k].shape[2:]) for k in STRIP_NAMES}
    if block is None:
        block = max(int(sr), BLOCK_SAMPLES // m)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive number of samples; got {block!r}.")
    x = tracks.reshape(m, 1, t)
    sos = _eq_sos(sr, f, m, x).unsqueeze(1)
    warmup = eq_warmup_samples(sos) if warmup is None else max(0, int(warmup))
    fader = db_to_gain(f["gain_db"]).view(m, 1, 1)
    comp = [f[k] for k in ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")]
    thr, ratio, attack, release, knee, makeup = (v.detach().double() for v in comp)  # as dynamics._prepare
    s = 1.0 - 1.0 / ratio
    a_attack, a_release = torch.exp(-1000.0 / (attack * sr)), torch.exp(-1000.0 / (release * sr))
    pressing = s > 0
    prefix = _decay_samples(float(a_attack[pressing].max())) + 1 if bool(pressing.any()) else 0
    send_gain = db_to_gain(f["reverb_send_db"]).view(m, 1, 1)
    ret = db_to_gain(p["reverb_return_db"]).view(b, 1, 1)
    master_gain = db_to_gain(p["master_gain_db"]).view(b, 1, 1)
    ir = _bus_ir(sr, p["reverb_t60_s"], reverb_seed, tracks) if reverb else None
    state = torch.zeros(m, dtype=torch.float64, device=tracks.device)  # y_L after the previous block
    tail = None
    out = tracks.new_zeros(b, 2, t)
    for lo in range(0, t, block):
        hi = min(t, lo + block)
        size = hi - lo
        a = max(0, lo - warmup)
        y = sosfilt(sos, x[..., a:hi] * fader)[..., lo - a:]
        lead = _compressor_prefix(state, s, thr, knee, prefix, y) if lo > 0 and prefix else None
        y_in = y if lead is None else torch.cat([lead, y], -1)
        y_c = compressor(y_in, sr, *comp)[..., y_in.shape[-1] - size:]
        state = torch.where(pressing, _gain_reduction_at_end(y, y_c, makeup, a_release, state), torch.zeros_like(state))
        del y, y_in, lead
        o = pan(y_c, f["pan"], pan_law)
        send = o * send_gain
        o, send = o.view(b, n, 2, size), send.view(b, n, 2, size)
        if w is not None:
            o, send = o * w, send * w
        master = o.sum(1)
        del o
        if reverb:
            wet = fft_convolve(send.sum(1), ir, mode="full")
            if tail is not None:
                wet[..., :tail.shape[-1]] += tail
            master = master + ret * wet[..., :size]
            tail = wet[..., size:].clone()
            del wet
        out[..., lo:hi] = master * master_gain
    return out


# --------------------------------------------------------------------------------------------
# Tables for people
# --------------------------------------------------------------------------------------------


def _pan_text(p: float) -> str:
    k = round(200 * (p - 0.5))
    return "C" if k == 0 else (f"L{-k}" if k < 0 else f"R{k}")


def param_rows(params: Mapping, item: int = 0, names: Optional[Sequence[str]] = None) -> list:
    """Per-track settings of batch item ``item`` as a list of dicts (floats; peaks as lists)."""
    _check_keys(params, ALL_NAMES, "param_rows")
    n = params["gain_db"].shape[1]
    names = list(names) if names is not None else [f"track {k}" for k in range(n)]
    if len(names) != n:
        raise ValueError(f"names has {len(names)} entries for {n} tracks; give one name per track.")
    rows = []
    for k in range(n):
        row = {"track": names[k]}
        for s in SPECS:
            if s.per_track:
                row[s.name] = params[s.name].detach()[item, k].cpu().tolist()
        rows.append(row)
    return rows


def describe(params: Mapping, item: int = 0, names: Optional[Sequence[str]] = None) -> str:
    """A readable text table of the console settings of batch item ``item`` (one line per track, then the buses)."""
    rows = param_rows(params, item, names)
    header = ["track", "gain", "HPF", "low shelf", "peaks (dB@Hz/Q)", "high shelf", "compressor (thr ratio att/rel)",
              "pan", "send"]
    lines = []
    for r in rows:
        bands = zip(r["peak_gain_db"], r["peak_cutoff_hz"], r["peak_q"])
        peaks = " ".join(f"{g:+.0f}@{f:.0f}/{q:.1f}" for g, f, q in bands)
        comp = ("off" if r["ratio"] <= 1.0 + 1e-6 else
                f"{r['threshold_db']:.0f}dB {r['ratio']:.1f}:1 {r['attack_ms']:.3g}/{r['release_ms']:.3g}ms")
        if r["makeup_db"] > 0:
            comp += f" +{r['makeup_db']:.1f}"
        send = "off" if r["reverb_send_db"] <= -80.0 + 1e-6 else f"{r['reverb_send_db']:+.1f} dB"
        lines.append([r["track"], f"{r['gain_db']:+.1f} dB", f"{r['highpass_cutoff_hz']:.0f} Hz",
                      f"{r['low_shelf_gain_db']:+.1f}@{r['low_shelf_cutoff_hz']:.0f}", peaks or "-",
                      f"{r['high_shelf_gain_db']:+.1f}@{r['high_shelf_cutoff_hz']:.0f}", comp,
                      _pan_text(r["pan"]), send])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    bus = {k: float(params[k].detach()[item]) for k in BUS_NAMES}
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines] + [
        f"reverb bus: T60 {bus['reverb_t60_s']:.2f} s, return {bus['reverb_return_db']:+.1f} dB;  "
        f"master {bus['master_gain_db']:+.1f} dB"])


# --------------------------------------------------------------------------------------------
# nn.Module wrappers
# --------------------------------------------------------------------------------------------


class ChannelStrip(nn.Module):
    """``channel_strip`` as a module: ``forward(x (B, 1, T), params) -> (out, send)``, stereo (B, 2, T)."""

    specs = tuple(s for s in SPECS if s.per_track)

    def __init__(self, sample_rate, n_peaks: int = DEFAULT_N_PEAKS, pan_law: str = DEFAULT_PAN_LAW):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        self.n_peaks = _check_n_peaks(n_peaks)
        self.pan_law = _check_law(pan_law)

    def forward(self, x: torch.Tensor, params: Mapping):
        _check_bands(params, self.n_peaks, 1)
        return channel_strip(x, self.sample_rate, params, self.pan_law)

    def default_params(self, batch: int = 1, **kwargs) -> dict:
        """Neutral strip settings: (batch,) tensors, peaks (batch, n_peaks)."""
        p = default_params(batch, 1, self.n_peaks, **kwargs)
        return {k: p[k][:, 0] for k in STRIP_NAMES}

    params_to_normalized = staticmethod(params_to_normalized)
    params_from_normalized = staticmethod(params_from_normalized)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate:g}, n_peaks={self.n_peaks}, pan_law={self.pan_law!r}"


def _check_bands(params, n_peaks: int, lead: int):
    if isinstance(params, Mapping):
        got = _n_peaks_of(params, lead, n_peaks)
        if got != n_peaks:
            raise ValueError(f"the peak parameters have {got} bands but this module has n_peaks={n_peaks}; "
                             "build the params with its default_params / random_params.")


class MixingConsole(nn.Module):
    """``mix`` as a module: ``forward(tracks (B, N, T), params, mask=None) -> (B, 2, T)``.

    Holds the sample rate, the number of peaking bands, the pan law and whether the reverb bus is on.
    ``specs`` is the parameter table; ``params_to_normalized`` / ``params_from_normalized`` map to
    and from [0, 1]; ``default_params`` / ``random_params`` build parameter sets; ``describe`` prints them.
    """

    specs = SPECS

    def __init__(self, sample_rate, n_peaks: int = DEFAULT_N_PEAKS, pan_law: str = DEFAULT_PAN_LAW,
                 reverb: bool = True, reverb_seed: int = REVERB_SEED):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        self.n_peaks = _check_n_peaks(n_peaks)
        self.pan_law = _check_law(pan_law)
        self.reverb = bool(reverb)
        self.reverb_seed = int(reverb_seed)

    def forward(self, tracks: torch.Tensor, params: Mapping, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_bands(params, self.n_peaks, 2)
        return mix(tracks, self.sample_rate, params, mask, self.pan_law, self.reverb, self.reverb_seed)

    def default_params(self, batch: int = 1, n_tracks: int = 1, **kwargs) -> dict:
        """``default_params`` with this console's number of peaking bands."""
        return default_params(batch, n_tracks, self.n_peaks, **kwargs)

    def random_params(self, batch: int = 1, n_tracks: int = 1, generator=None, **kwargs) -> dict:
        """``random_params`` with this console's number of peaking bands."""
        return random_params(batch, n_tracks, generator, self.n_peaks, **kwargs)

    params_to_normalized = staticmethod(params_to_normalized)
    params_from_normalized = staticmethod(params_from_normalized)
    describe = staticmethod(describe)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate:g}, n_peaks={self.n_peaks}, pan_law={self.pan_law!r}, "
                f"reverb={self.reverb}")
