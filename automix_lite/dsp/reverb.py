"""Reverberation (taught in ``notebooks/05_reverb.ipynb``).

Convolution reverb with a synthetic impulse response (IR), plus the classic algorithmic reverbs
for teaching. Audio is ``(batch, channels, samples)``; parameters are floats or ``(batch,)`` tensors.

- :func:`reverb_impulse_response`: exponentially decaying noise (Moorer 1979) with sparse early
  reflections and frequency-dependent damping, whose broadband energy falls 60 dB in ``t60_s``.
  Deterministic: the noise comes from a seeded ``torch.Generator`` in fixed chunks, so the same seed
  gives the same noise on every call, and IRs of different lengths share their first samples.
- :func:`reverb`: FFT convolution with that IR (or one you pass) and a wet/dry mix.
- :func:`measure_t60`: Schroeder backward integration and a T30 line fit.
- :func:`comb_filter`, :func:`allpass_filter`, :func:`schroeder_reverb` (Schroeder 1962) and
  :func:`fdn_reverb` (Jot and Chaigne 1991): impulse responses built in closed form or block by
  block, then applied with :func:`fft_convolve`. No Python loop runs over samples.

Conventions
-----------
- Reverb IRs contain only the reverberation (no direct sound) and have **unit energy**
  (``sum(h**2) == 1`` per batch item and channel), so a white input keeps its power in the wet path.
- Wet/dry law (linear crossfade): ``y = (1 - wet) * x + wet * (h * x)``; ``wet=0`` returns ``x``,
  ``wet=1`` the reverberation only.
- Energy decay: amplitude envelope ``exp(-3 ln(10) t / T60)``, i.e. -60 dB of energy after T60.
- Differentiable with respect to ``x``, ``t60_s``, ``wet`` and ``damping``; ``predelay_ms``,
  ``early_ms``, delays and ``seed`` are rounded or discrete and carry no gradient.
- Everything is torch (noise is drawn on the CPU once, then cached per dtype and device), so it runs
  on CUDA as is.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .._checks import as_param, bcast, check_audio, check_sample_rate

REVERB_RANGES = {
    "t60_s": (0.05, 10.0, "s"),
    "wet": (0.0, 1.0, ""),
    "predelay_ms": (0.0, 250.0, "ms"),
    "damping": (0.0, 1.0, ""),
    "early_ms": (0.0, 200.0, "ms"),
}
SCHROEDER_COMB_MS = (29.7, 37.1, 41.1, 43.7)  # four parallel combs (Schroeder 1962)
SCHROEDER_ALLPASS_MS = (5.0, 1.7)  # two series allpasses, g = 0.7
FDN_DELAYS_MS = (23.0, 27.9, 31.3, 35.7, 39.1, 43.9, 47.6, 53.3)
DAMPING_EDGES_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # octave bands for damping

_LN1000 = 3.0 * math.log(10.0)  # amplitude decays by exp(-_LN1000 t / T60): -60 dB at T60
_CHUNK = 1 << 15  # noise is drawn in chunks of this many samples, one generator seed per chunk
_BAND_TAPS = 2047  # zero-phase FIR band-split filters (Blackman-windowed sinc)
_DECAY_LENGTH = 1.5  # default IR length in units of T60 (energy 90 dB down at the end)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes every FFT library handles fast)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


def _float_arg(value, name: str, low: float, high: float, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in {unit or 'its unit'}; got {type(value).__name__}.")
    if not math.isfinite(value) or not low <= value <= high:
        u = f" {unit}" if unit else ""
        raise ValueError(
            f"{name}={value}{u} is outside its range [{low:g}, {high:g}]{u}. Choose a value inside the range."
        )
    return float(value)


def _int_arg(value, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}.")
    return value


def _ranged(value, name: str, batch: int, like: torch.Tensor) -> torch.Tensor:
    low, high, unit = REVERB_RANGES[name]
    return as_param(value, name, batch, like, low, high, unit)


def _param_batch(value) -> int:
    return value.numel() if isinstance(value, torch.Tensor) and value.ndim == 1 else 1


def _like(dtype, device, *params) -> torch.Tensor:
    """An empty tensor carrying the dtype/device to build on (from the first tensor parameter)."""
    for p in params:
        if isinstance(p, torch.Tensor) and p.is_floating_point():
            return torch.empty(0, dtype=dtype or p.dtype, device=device or p.device)
    return torch.empty(0, dtype=dtype or torch.get_default_dtype(), device=device)


def _unit_energy(h: torch.Tensor) -> torch.Tensor:
    return h / h.square().sum(-1, keepdim=True).sqrt().clamp_min(1e-30)


def _mix(x: torch.Tensor, wet_signal: torch.Tensor, wet) -> torch.Tensor:
    w = bcast(_ranged(wet, "wet", x.shape[0], x))
    return (1.0 - w) * x + w * wet_signal


def _decay_samples(sample_rate: float, t60: torch.Tensor, length_s, predelay: int) -> int:
    if length_s is None:
        return math.ceil(_DECAY_LENGTH * float(t60.detach().max()) * sample_rate - 0.01)  # float32-safe
    total = round(_float_arg(length_s, "length_s", 0.0, 600.0, "s") * sample_rate)
    if total <= predelay:
        raise ValueError(f"length_s={length_s} s leaves no room after the pre-delay; make it longer than predelay_ms.")
    return total - predelay


# --------------------------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------------------------


def fft_convolve(x: torch.Tensor, ir: torch.Tensor, mode: str = "same") -> torch.Tensor:
    """Linear convolution of ``x`` ``(B, C, T)`` with ``ir`` ``(1 or B, 1 or C, N)`` by one real FFT.

    ``mode="same"`` keeps the first ``T`` samples (causal, like a real-time effect; not NumPy's
    centred ``"same"``); ``mode="full"`` returns all ``T + N - 1``. The FFT size is the smallest
    2^a 3^b 5^c >= T + N - 1, so nothing wraps around. ``ir`` is cast to ``x``'s dtype and device.
    Differentiable with respect to both inputs.
    """
    check_audio(x, "x", full_precision="the FFT convolution")
    check_audio(ir, "ir")
    if mode not in ("same", "full"):
        raise ValueError(f"mode={mode!r} is not a convolution mode; use 'same' (first len(x) samples) or 'full'.")
    (b, c, t), (bi, ci, n) = x.shape, ir.shape
    if bi not in (1, b) or ci not in (1, c):
        raise ValueError(
            f"ir of shape {tuple(ir.shape)} does not fit x of shape {tuple(x.shape)}: its batch must be 1 or {b} "
            f"and its channels 1 or {c}."
        )
    ir = ir.to(dtype=x.dtype, device=x.device)
    n_full = t + n - 1
    n_fft = _fast_len(n_full)
    y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(ir, n=n_fft), n=n_fft)
    return y[..., : (t if mode == "same" else n_full)]


# --------------------------------------------------------------------------------------------
# noise-shaped impulse response
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _noise_chunk(seed: int, channel: int, k: int):
    """Chunk ``k`` of the Gaussian noise and of the uniforms for the early-reflection mask (float64)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + channel * 7919 + k * 104_729 + 12345) % (1 << 63))
    return torch.randn(_CHUNK, generator=g, dtype=torch.float64), torch.rand(_CHUNK, generator=g, dtype=torch.float64)


def _noise(seed: int, channels: int, n: int, which: int) -> torch.Tensor:
    """First ``n`` samples of the noise (which=0) or uniforms (which=1): ``(channels, n)`` float64."""
    rows = [torch.cat([_noise_chunk(seed, c, k)[which] for k in range(-(-n // _CHUNK))])[:n] for c in range(channels)]
    return torch.stack(rows)


@functools.lru_cache(maxsize=8)
def _band_filters(sample_rate: float):
    """Complementary zero-phase octave-band filters ``(K, taps)`` (they sum to a unit impulse) and the
    polynomial ``P`` with ``sum_m P[m] r^m = E[(sum_k r^k n_k)^2]`` for white noise split into bands ``n_k``."""
    n = torch.arange(_BAND_TAPS, dtype=torch.float64) - _BAND_TAPS // 2
    window = torch.signal.windows.blackman(_BAND_TAPS, sym=True, dtype=torch.float64)
    cuts = [2 * f / sample_rate for f in DAMPING_EDGES_HZ if f < 0.45 * sample_rate]
    lows = [c * torch.sinc(c * n) * window for c in cuts]
    delta = (n == 0).double()
    edges = [torch.zeros_like(delta)] + lows + [delta]
    bands = torch.stack([hi - lo for lo, hi in zip(edges[:-1], edges[1:])])
    gram = bands @ bands.T
    k = bands.shape[0]
    poly = torch.stack([torch.diagonal(gram.flip(0), offset=m - (k - 1)).sum() for m in range(2 * k - 1)])
    return bands, poly


@functools.lru_cache(maxsize=4)
def _band_noise(seed: int, channels: int, n_chunks: int, sample_rate: float, dtype, device) -> torch.Tensor:
    """The noise split into octave bands: ``(channels, K, n_chunks * CHUNK)`` (prefix-consistent)."""
    bands, _ = _band_filters(sample_rate)
    n = n_chunks * _CHUNK
    noise = _noise(seed, channels, n + _CHUNK, 0).unsqueeze(1)  # one extra chunk of look-ahead
    full = fft_convolve(noise.expand(-1, bands.shape[0], -1), bands.unsqueeze(0), mode="full")
    return full[..., _BAND_TAPS // 2 : _BAND_TAPS // 2 + n].to(dtype=dtype, device=device)


def _early_mask(seed: int, channels: int, n: int, sample_rate: float, early_ms: float, like) -> torch.Tensor:
    """Energy-preserving sparse mask: keep a sample with probability p(t) = (t / t_mix)^2 (at least one
    per 10 ms, all after t_mix) and scale it by 1/sqrt(p): discrete early reflections growing into
    dense late reverberation, with the expected energy envelope unchanged."""
    m = min(n, math.ceil(early_ms * 1e-3 * sample_rate))
    t = torch.arange(m, dtype=torch.float64) / sample_rate
    p = ((t / (early_ms * 1e-3)) ** 2).clamp(1.0 / (0.01 * sample_rate), 1.0)
    keep = (_noise(seed, channels, m, 1) < p) / p.sqrt()
    return F.pad(keep, (0, n - m), value=1.0).to(dtype=like.dtype, device=like.device)


def reverb_impulse_response(
    sample_rate: float,
    t60_s,
    length_s: Optional[float] = None,
    predelay_ms: float = 0.0,
    seed: int = 0,
    damping=0.5,
    early_ms: float = 50.0,
    channels: int = 1,
    dtype: Optional[torch.dtype] = None,
    device=None,
) -> torch.Tensor:
    """A deterministic noise-shaped reverb IR ``(1 or B, channels, N)`` with unit energy per channel.

    ``t60_s``: broadband decay time in s, float or ``(B,)`` tensor in [0.05, 10] (differentiable).
    The IR is ``predelay`` zeros, then Gaussian noise times ``exp(-3 ln(10) t / T60)`` (energy -60 dB
    at T60), with two refinements that keep the expected broadband energy envelope exactly that:

    - ``damping`` in [0, 1] (float or ``(B,)``, differentiable): the noise is split into octave bands
      (edges 250 Hz ... 8 kHz); band k (k = 0 below 250 Hz, ..., 6 above 8 kHz) loses
      ``10 * k * damping`` dB per T60 relative to band 0, so highs die first, and the bands are
      renormalised so the total energy still follows the broadband envelope.
    - ``early_ms`` in [0, 200] (0 disables): sparse, strong early reflections that grow into dense
      noise by this time (their expected energy follows the same envelope).

    ``length_s`` (total, including the pre-delay) defaults to ``predelay + 1.5 * max(T60)``; the tail
    is then 90 dB down. ``predelay_ms`` in [0, 250] is rounded to whole samples. ``seed`` (int >= 0)
    picks the noise; channels use independent noise (a decorrelated stereo IR for ``channels=2``).
    dtype/device default to ``t60_s``'s when it is a tensor, else the torch default dtype and CPU.
    :func:`measure_t60` of the result is within about 3 % of ``t60_s`` (0.2-4 s) at the default damping;
    damping near 1 with short T60 spreads that to about 6 % (the slow low band has few degrees of freedom).
    """
    sr = check_sample_rate(sample_rate)
    seed = _int_arg(seed, "seed")
    channels = _int_arg(channels, "channels", 1)
    like = _like(dtype, device, t60_s, damping)
    batch = max(_param_batch(t60_s), _param_batch(damping))
    t60 = _ranged(t60_s, "t60_s", batch, like)
    damp = _ranged(damping, "damping", batch, like)
    early = _float_arg(early_ms, "early_ms", *REVERB_RANGES["early_ms"][:2], "ms")
    pre = round(_float_arg(predelay_ms, "predelay_ms", *REVERB_RANGES["predelay_ms"][:2], "ms") * 1e-3 * sr)
    n = _decay_samples(sr, t60, length_s, pre)

    t = torch.arange(n, dtype=like.dtype, device=like.device) / sr
    tau = t / bcast(t60)  # (B, 1, n), time in units of T60
    if isinstance(damping, (int, float)) and damping == 0:
        shaped = _noise(seed, channels, n, 0).to(like)
    else:  # Horner in r = 10^(-damping t / (2 T60)): sum_k r^k band_k, normalised by sqrt(E[...^2])
        bands = _band_noise(seed, channels, -(-n // _CHUNK), sr, like.dtype, like.device)[..., :n]
        poly = _band_filters(sr)[1].to(like)
        r = torch.pow(10.0, -0.5 * bcast(damp) * tau)
        shaped = bands[:, -1]
        for k in range(bands.shape[1] - 2, -1, -1):
            shaped = bands[:, k] + r * shaped
        power = poly[-1]
        for c in poly.flip(0)[1:]:
            power = c + r * power
        shaped = shaped / power.sqrt()
    if early > 0:
        shaped = shaped * _early_mask(seed, channels, n, sr, early, like)
    h = torch.exp(-_LN1000 * tau) * shaped
    return _unit_energy(F.pad(h, (pre, 0)))


def reverb(
    x: torch.Tensor,
    sample_rate: float,
    t60_s=None,
    wet=0.25,
    predelay_ms: float = 0.0,
    seed: int = 0,
    ir: Optional[torch.Tensor] = None,
    damping=0.5,
    early_ms: float = 50.0,
    length_s: Optional[float] = None,
) -> torch.Tensor:
    """Convolution reverb: ``(1 - wet) * x + wet * (h * x)``, same shape as ``x`` ``(B, C, T)``.

    ``h`` is ``ir`` when given (``(1 or B, 1 or C, N)``, used as is; ``t60_s``, ``predelay_ms``,
    ``seed``, ``damping``, ``early_ms`` and ``length_s`` are then ignored), else
    :func:`reverb_impulse_response` with independent noise per channel of ``x`` (stereo ``x`` gets a
    decorrelated, wide reverb).
    ``t60_s`` (s, [0.05, 10]), ``wet`` ([0, 1]) and ``damping`` are floats or ``(B,)`` tensors;
    the output is differentiable with respect to ``x``, ``t60_s``, ``wet``, ``damping`` and ``ir``.
    """
    check_audio(x, "x", full_precision="the FFT convolution")
    sr = check_sample_rate(sample_rate)
    if ir is None:
        if t60_s is None:
            raise ValueError("reverb needs a decay time t60_s (in seconds, e.g. 1.2) or an impulse response ir.")
        ir = reverb_impulse_response(sr, t60_s, length_s, predelay_ms, seed, damping, early_ms,
                                     channels=x.shape[1], dtype=x.dtype, device=x.device)
    return _mix(x, fft_convolve(x, ir), wet)


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


def energy_decay_curve(ir) -> torch.Tensor:
    """Schroeder's energy decay curve in dB: ``10 log10(sum_{k>=n} h[k]^2 / sum_k h[k]^2)``, same
    shape as ``ir`` (tensor or array, time on the last axis), float64, 0 dB at the start."""
    h = torch.as_tensor(ir).detach().to(torch.float64)
    if h.ndim == 0 or h.shape[-1] < 2:
        raise ValueError(f"ir must have samples on its last axis; got shape {tuple(h.shape)}.")
    if not bool(torch.isfinite(h).all()):
        raise ValueError("ir contains NaN or infinite samples.")
    energy = h.square().flip(-1).cumsum(-1).flip(-1)
    total = energy[..., :1]
    if bool((total <= 0).any()):
        raise ValueError("ir is silent (all zeros), so it has no decay to measure.")
    return 10.0 * torch.log10((energy / total).clamp_min(1e-30))


def measure_t60(ir, sample_rate: float, fit_db: Sequence[float] = (-5.0, -35.0)) -> torch.Tensor:
    """Reverberation time in s of ``ir`` (time on the last axis), shape ``ir.shape[:-1]``.

    Schroeder backward integration gives the energy decay curve (EDC); a least-squares line through
    its ``fit_db`` range (default -5 to -35 dB: T30; use ``(-5, -25)`` for T20) is extrapolated to
    -60 dB: ``T60 = -60 / slope``. No noise-floor compensation (meant for synthetic, noise-free IRs).
    The IR must decay about 10 dB past the fit range (else a truncated tail bends the curve): a
    ``ValueError`` says so when the end of the fit range lies in its last 20 %.
    """
    sr = check_sample_rate(sample_rate)
    hi, lo = (float(v) for v in fit_db)
    if not 0 >= hi > lo:
        raise ValueError(f"fit_db must be (start, end) with 0 >= start > end, e.g. (-5, -35); got {tuple(fit_db)}.")
    edc = energy_decay_curve(ir)
    reached = float((edc >= lo).sum(-1).max()) / edc.shape[-1]  # fraction of the IR before the fit's end
    if reached > 0.8:
        raise ValueError(
            f"the energy decay curve reaches {lo:g} dB only in the last {100 * (1 - reached):.0f}% of the impulse "
            f"response, where truncation bends it: pass a longer impulse response (about 10 dB more decay), or "
            f"fit a shorter range, e.g. fit_db=(-5, -25)."
        )
    t = torch.arange(edc.shape[-1], dtype=torch.float64, device=edc.device) / sr
    m = ((edc <= hi) & (edc >= lo)).double()
    count = m.sum(-1, keepdim=True)
    t_mean = (m * t).sum(-1, keepdim=True) / count
    e_mean = (m * edc).sum(-1, keepdim=True) / count
    slope = (m * (t - t_mean) * (edc - e_mean)).sum(-1) / (m * (t - t_mean) ** 2).sum(-1)
    return -60.0 / slope


# --------------------------------------------------------------------------------------------
# algorithmic reverbs
# --------------------------------------------------------------------------------------------


def _sparse_ir(x: torch.Tensor, g, name: str, positions, values) -> torch.Tensor:
    """Place ``values(g)`` ``(B, K)`` at integer ``positions`` ``(K,)`` of a zero IR ``(B, 1, L)``."""
    b = _param_batch(g)
    if b not in (1, x.shape[0]):
        raise ValueError(f"{name} must be a number or a tensor of shape ({x.shape[0]},); got shape {tuple(g.shape)}.")
    gain = as_param(g, name, b, x)
    if bool((gain.detach().abs() >= 1).any()):
        raise ValueError(
            f"{name}={gain.detach().cpu().tolist()} must lie strictly between -1 and 1 (|g| < 1 keeps the filter stable)."
        )
    h = torch.zeros(b, 1, int(positions[-1]) + 1, dtype=x.dtype, device=x.device)
    h[:, 0, positions] = values(gain.unsqueeze(1))
    return h


def comb_filter(x: torch.Tensor, delay_samples: int, g, input_delay_samples: Optional[int] = None) -> torch.Tensor:
    """Feedback comb filter ``y[n] = x[n - M] + g y[n - N]`` of the tutorial slides, same shape as ``x``.

    ``N = delay_samples`` (>= 1), ``M = input_delay_samples`` (default ``N``: Schroeder's comb
    ``H(z) = z^-N / (1 - g z^-N)``; ``M = 0`` gives the textbook ``1 / (1 - g z^-N)``). ``g`` in (-1, 1),
    float or ``(B,)`` tensor. Its impulse response is exact in closed form, ``h[M + kN] = g^k``,
    applied by :func:`fft_convolve`; differentiable with respect to ``x`` and ``g``.
    """
    check_audio(x, "x")
    n = _int_arg(delay_samples, "delay_samples", 1)
    m = n if input_delay_samples is None else _int_arg(input_delay_samples, "input_delay_samples", 0)
    k = torch.arange(max((x.shape[-1] - 1 - m) // n + 1, 1), device=x.device)
    return fft_convolve(x, _sparse_ir(x, g, "g", m + k * n, lambda gg: gg ** k.to(x.dtype)))


def allpass_filter(x: torch.Tensor, delay_samples: int, g) -> torch.Tensor:
    """Schroeder allpass ``y[n] = -g x[n] + x[n - M] + g y[n - M]``, ``H(z) = (-g + z^-M) / (1 - g z^-M)``.

    ``|H| = 1`` at every frequency; impulse response ``h[0] = -g``, ``h[kM] = (1 - g^2) g^(k-1)`` for
    k >= 1 (closed form, applied by :func:`fft_convolve`). ``M = delay_samples`` >= 1, ``g`` in (-1, 1),
    float or ``(B,)`` tensor; same shape as ``x``, differentiable with respect to ``x`` and ``g``.
    """
    check_audio(x, "x")
    m = _int_arg(delay_samples, "delay_samples", 1)
    k = torch.arange((x.shape[-1] - 1) // m + 1, device=x.device)
    kf = k.to(x.dtype)

    def values(gg):
        return torch.where(k == 0, -gg, (1 - gg**2) * gg ** (kf - 1).clamp_min(0))

    return fft_convolve(x, _sparse_ir(x, g, "g", k * m, values))


def _loop_gains(t60: torch.Tensor, delays: torch.Tensor, sr: float) -> torch.Tensor:
    """Per-loop gains ``g_i = 10^(-3 d_i / (T60 fs))`` (``(B, n)``): every loop loses 60 dB per T60."""
    return torch.pow(10.0, -3.0 * delays / (t60.unsqueeze(1) * sr))


def _delays(delays_ms: Sequence[float], sr: float, prime: bool) -> list:
    out = []
    for d in delays_ms:
        n = max(1, round(_float_arg(d, "delay", 0.01, 1000.0, "ms") * 1e-3 * sr))
        if prime:  # nearest prime not used yet, so the delays share no common factor
            cand = sorted(range(max(2, n - 200), n + 201), key=lambda c: (abs(c - n), c))
            n = next(c for c in cand if c not in out and all(c % p for p in range(2, math.isqrt(c) + 1)))
        out.append(n)
    return out


def schroeder_impulse_response(
    sample_rate: float,
    t60_s=1.5,
    length_s: Optional[float] = None,
    comb_delays_ms: Sequence[float] = SCHROEDER_COMB_MS,
    allpass_delays_ms: Sequence[float] = SCHROEDER_ALLPASS_MS,
    allpass_g: float = 0.7,
    dtype: Optional[torch.dtype] = None,
    device=None,
) -> torch.Tensor:
    """Unit-energy IR ``(1 or B, 1, N)`` of Schroeder's reverberator: parallel combs ``z^-d/(1 - g z^-d)``
    with ``g = 10^(-3 d / (T60 fs))`` (averaged), then series allpasses with gain ``allpass_g``.
    ``length_s`` defaults to 1.5 T60. Differentiable with respect to ``t60_s`` (float or ``(B,)``)."""
    sr = check_sample_rate(sample_rate)
    like = _like(dtype, device, t60_s)
    t60 = _ranged(t60_s, "t60_s", _param_batch(t60_s), like)
    n = _decay_samples(sr, t60, length_s, 0)
    impulse = F.pad(torch.ones(t60.shape[0], 1, 1, dtype=like.dtype, device=like.device), (0, n - 1))
    delays = _delays(comb_delays_ms, sr, prime=False)
    gains = _loop_gains(t60, torch.tensor(delays, dtype=like.dtype, device=like.device), sr)
    h = sum(comb_filter(impulse, d, gains[:, i]) for i, d in enumerate(delays)) / len(delays)
    for d in _delays(allpass_delays_ms, sr, prime=False):
        h = allpass_filter(h, d, allpass_g)
    return _unit_energy(h)


def schroeder_reverb(x: torch.Tensor, sample_rate: float, t60_s=1.5, wet=0.25, **kwargs) -> torch.Tensor:
    """Schroeder's reverberator applied to ``x`` ``(B, C, T)`` with the wet/dry law of :func:`reverb`.
    ``kwargs`` go to :func:`schroeder_impulse_response`. Differentiable in ``x``, ``t60_s`` and ``wet``."""
    check_audio(x, "x")
    h = schroeder_impulse_response(sample_rate, t60_s, dtype=x.dtype, device=x.device, **kwargs)
    return _mix(x, fft_convolve(x, h), wet)


def _feedback_matrix(kind: str, n: int, like: torch.Tensor) -> torch.Tensor:
    if kind == "householder":
        return torch.eye(n, dtype=like.dtype, device=like.device) - 2.0 / n
    if kind == "hadamard":
        if n & (n - 1):
            raise ValueError(
                f"a Hadamard matrix needs a power-of-two number of delay lines; got {n}. "
                "Use 4 or 8, or matrix='householder'."
            )
        a = torch.ones(1, 1, dtype=like.dtype, device=like.device)
        while a.shape[0] < n:
            a = torch.cat([torch.cat([a, a], 1), torch.cat([a, -a], 1)], 0)
        return a / math.sqrt(n)
    raise ValueError(f"matrix={kind!r} is not a feedback matrix; use 'hadamard' or 'householder'.")


def fdn_impulse_response(
    sample_rate: float,
    t60_s=1.5,
    length_s: Optional[float] = None,
    delays_ms: Sequence[float] = FDN_DELAYS_MS,
    matrix: str = "hadamard",
    channels: int = 1,
    dtype: Optional[torch.dtype] = None,
    device=None,
) -> torch.Tensor:
    """Unit-energy IR ``(1 or B, channels, N)`` of a feedback delay network (Jot and Chaigne 1991).

    ``n = len(delays_ms)`` delay lines (delays rounded to distinct primes in samples), an orthogonal
    feedback matrix ``A`` (``"hadamard"``, n a power of two, or ``"householder"`` ``I - 2/n 11^T``) and
    loop gains ``g_i = 10^(-3 d_i / (T60 fs))``: ``q[n] = b delta[n] + A (g * s[n])``, ``s_i[n] = q_i[n - d_i]``,
    output ``c^T s[n]`` (``b = 1``; ``c = 1`` for channel 0, alternating signs for channel 1).
    Since no sample depends on anything fewer than ``min(d)`` samples back, whole blocks of ``min(d)``
    samples are computed at once. ``length_s`` defaults to 1.5 T60. Differentiable in ``t60_s``.
    """
    sr = check_sample_rate(sample_rate)
    channels = _int_arg(channels, "channels", 1)
    if channels > 2:
        raise ValueError(f"fdn_impulse_response makes 1 or 2 output channels; got channels={channels}.")
    like = _like(dtype, device, t60_s)
    t60 = _ranged(t60_s, "t60_s", _param_batch(t60_s), like)
    n = _decay_samples(sr, t60, length_s, 0)
    d = _delays(delays_ms, sr, prime=True)
    lines = len(d)
    if lines < 2:
        raise ValueError(f"a feedback delay network needs at least 2 delay lines; got {lines}.")
    a = _feedback_matrix(matrix, lines, like)
    gains = _loop_gains(t60, torch.tensor(d, dtype=like.dtype, device=like.device), sr).unsqueeze(-1)  # (B, n, 1)
    c = torch.tensor([[1.0] * lines, [(-1.0) ** i for i in range(lines)]])[:channels].to(like)
    block, longest = min(d), max(d)
    keep = -(-longest // block) + 1
    history = [torch.zeros(gains.shape[0], lines, longest, dtype=like.dtype, device=like.device)]
    impulse = F.pad(torch.ones(1, lines, 1, dtype=like.dtype, device=like.device), (0, block - 1))
    out = []
    for j in range(-(-n // block)):
        past = torch.cat(history[-keep:], -1)
        end = past.shape[-1]
        s = torch.stack([past[:, i, end - d[i] : end - d[i] + block] for i in range(lines)], 1)
        q = torch.einsum("ij,bjl->bil", a, gains * s)
        history.append(q + impulse if j == 0 else q)
        out.append(torch.einsum("ci,bil->bcl", c, s))
    return _unit_energy(torch.cat(out, -1)[..., :n])


def fdn_reverb(x: torch.Tensor, sample_rate: float, t60_s=1.5, wet=0.25, **kwargs) -> torch.Tensor:
    """A feedback delay network reverb on ``x`` ``(B, C, T)`` with the wet/dry law of :func:`reverb`
    (stereo ``x`` gets the two decorrelated outputs). ``kwargs`` go to :func:`fdn_impulse_response`.
    Differentiable in ``x``, ``t60_s`` and ``wet``."""
    check_audio(x, "x")
    h = fdn_impulse_response(sample_rate, t60_s, channels=min(x.shape[1], 2), dtype=x.dtype, device=x.device, **kwargs)
    return _mix(x, fft_convolve(x, h), wet)
