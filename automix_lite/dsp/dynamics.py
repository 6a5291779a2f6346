"""Dynamic range processors: compressor, limiter, expander, gate (taught in ``notebooks/04_dynamics.ipynb``).

Feed-forward design after Giannoulis, Massberg & Reiss (JAES 2012), as in Steinmetz (2020, sec. 4.2.3),
with a soft knee and gain smoothing in the log domain. Per batch item and sample ``n``:

    x_G[n] = 10 log10(mean_c d_c[n]^2 + eps)            level (dB) of the detector signal d (x, or a sidechain)
    x_L[n] = min(s * h(u[n]), range)                   gain reduction asked for by the static curve (dB, >= 0)
    y_L[n] = a y_L[n-1] + (1 - a) x_L[n],  y_L[-1] = 0 smoothed gain reduction (dB)
    y_c[n] = x_c[n] * 10^((makeup - y_L[n]) / 20)      the same gain on every channel

- ``u = x_G - T`` for compressor and limiter (reduce above the threshold ``T``), ``u = T - x_G`` for
  expander and gate (reduce below it); ``s = 1 - 1/R`` for compressor and limiter, ``s = R - 1`` for
  expander and gate (ratio ``R``).
- Knee of width ``W`` dB: ``h(u) = 0`` for ``u <= -W/2``, ``(u + W/2)^2 / (2W)`` for ``|u| < W/2``,
  ``u`` above; ``W = 0`` is the hard knee. For the compressor this is Giannoulis' quadratic knee.
- Linked detection: the level is the mean power over the detector's channels, so every channel gets
  the same gain (no image shift) and a centred stereo source is compressed like its mono version.
  ``eps = 1e-10`` puts digital silence at -100 dB, below every threshold, with finite gradients.
- Ballistics: ``a = exp(-1 / (tau * sample_rate))`` with ``tau = attack_ms / 1000`` or
  ``release_ms / 1000`` seconds: after ``tau`` a step in ``x_L`` is followed by 1 - 1/e (63.2 %)
  of its size. Attack answers a rising input level: for compressor and limiter the attack coefficient
  is used while the gain reduction grows (``x_L[n] > y_L[n-1]``, the thesis' branch), for expander and
  gate while it shrinks (the gate opening); release otherwise.

Gradients are exact with respect to the audio, the sidechain and every parameter (threshold, ratio,
knee, makeup, range, attack and release): the recursion runs in a numba kernel wrapped in a
``torch.autograd.Function`` whose backward kernel runs the adjoint recursion backwards in time. The
attack/release branch is held fixed in backward, which is exact wherever the branch does not change
under a small perturbation (almost everywhere). CUDA tensors are copied to the CPU for the kernels and
the results copied back; the kernels run on all CPU cores, one batch item per thread.
"""

from __future__ import annotations

import inspect
import math

import numba
import numpy as np
import torch

from .._checks import as_param, check_audio, check_sample_rate

COMPRESSOR_RANGES = {
    "threshold_db": (-80.0, 0.0, "dB"),
    "ratio": (1.0, 100.0, ""),
    # 0.01 ms (under half a sample at 44.1 kHz) lets a limiter or gate react within a sample or two.
    "attack_ms": (0.01, 1000.0, "ms"),
    "release_ms": (1.0, 5000.0, "ms"),
    "knee_db": (0.0, 24.0, "dB"),
    "makeup_db": (-24.0, 24.0, "dB"),
    "range_db": (0.0, 120.0, "dB"),  # expander and gate: largest gain reduction
}
LIMITER_RATIO = 1000.0  # internal ratio of `limiter`
GATE_RATIO = 100.0  # internal ratio of `gate`
EPS = 1e-10  # power floor: silence reads as -100 dB

_DB_PER_NEPER = 10.0 / math.log(10.0)  # 10 log10(p) = _DB_PER_NEPER * ln(p)
_NEPER_PER_DB20 = math.log(10.0) / 20.0  # 10^(g/20) = exp(_NEPER_PER_DB20 * g)
_TINY = 1e-30  # smallest |y_L[n-1] - x_L[n]| stored for an attack sample, so its sign survives float32
_BLOCK = 256  # samples per block: level and gain are computed a block at a time in SIMD loops

# Constants of the SIMD-friendly ln and exp below (libm's scalar calls are 3-5x slower and cannot be
# vectorised). Both are accurate to about 2 ulp in float64 over the range used here.
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # ln 2 = hi + lo
_SQRT_HALF_BITS = int(np.float64(math.sqrt(0.5)).view(np.int64))
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2^52: adding it rounds a double to an integer
_ROUND_MAGIC_BITS = int(np.float64(_ROUND_MAGIC).view(np.int64))
_LN_SERIES = tuple(2.0 / (2 * j + 1) for j in range(9, -1, -1))  # 2/19, 2/17, ..., 2/3, 2
_EXP_SERIES = tuple(1.0 / math.factorial(j) for j in range(13, -1, -1))  # 1/13!, ..., 1/1!, 1/0!


@numba.njit(inline="always", error_model="numpy")
def _ln(v):
    """ln(v) for positive normal ``v``: v = 2^k m with m in [sqrt(1/2), sqrt(2)), then
    ln m = 2 atanh(s) = 2 (s + s^3/3 + ... + s^19/19) with s = (m - 1)/(m + 1), |s| < 0.172."""
    i = np.float64(v).view(np.int64)
    k = (i - _SQRT_HALF_BITS) >> 52
    f = np.int64(i - (k << 52)).view(np.float64) - 1.0
    s = f / (2.0 + f)
    z = s * s
    r = 0.0
    for coef in _LN_SERIES:
        r = r * z + coef
    kf = np.float64(k)
    return kf * _LN2_HI + (kf * _LN2_LO + s * r)


@numba.njit(inline="always", error_model="numpy")
def _exp(a):
    """exp(a) for a <= 700 (a below -700 is treated as -700, i.e. ~1e-304): 2^k exp(r) with
    k = round(a / ln 2), |r| <= ln(2)/2, exp(r) by its Taylor series to r^13. The rounding trick
    needs strict evaluation order: never call it from a kernel compiled with ``reassoc``."""
    a = max(a, -700.0)
    t = a * (1.0 / math.log(2.0)) + _ROUND_MAGIC
    kf = t - _ROUND_MAGIC
    k = np.float64(t).view(np.int64) - _ROUND_MAGIC_BITS
    r = (a - kf * _LN2_HI) - kf * _LN2_LO
    p = 0.0
    for coef in _EXP_SERIES:
        p = p * r + coef
    return p * np.int64((k + 1023) << 52).view(np.float64)


@numba.njit(inline="always")
def _knee(u, half, w, inv2w):
    """h(u) of the module docstring with min/max instead of branches (the data decide the piece, so
    branches would be mispredicted): t = max(u + W/2, 0), k = min(t, W), h = k^2/(2W) + (t - k).
    ``inv2w = 1/(2W)``, or 0 for the hard knee, where h = max(u, 0)."""
    t = max(u + half, 0.0)
    k = min(t, w)
    return k * k * inv2w + (t - k)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _forward_row(x, det, prm, direction, y, gbuf, dbuf, xgbuf, save, gr_only, b):
    """Detector, gain computer, smoother and gain for batch row ``b``, a block at a time: level (SIMD
    loops), gain computer and smoother (serial), gain (SIMD). ``prm`` (B, 7) float64 rows hold
    [threshold, s, knee, range, makeup, a_up, a_down]. Writes ``y`` (B, C, T), or the smoothed gain
    reduction y_L (B, 1, T) when ``gr_only``; when ``save``, also what backward needs, each (B, T):
    the gain, d = y_L[n-1] - x_L[n] (its sign is the branch taken) and x_G."""
    n_ch, n_samp = x.shape[1], x.shape[2]
    n_det = det.shape[1]
    inv_n = 1.0 / n_det
    thr, s, w, rng, mk = prm[b, 0], prm[b, 1], prm[b, 2], prm[b, 3], prm[b, 4]
    a_up, a_dn = prm[b, 5], prm[b, 6]
    c_up, c_dn = 1.0 - a_up, 1.0 - a_dn
    half = 0.5 * w
    inv2w = 0.5 / w if w > 0.0 else 0.0
    # Of the two candidate updates, the branch's choice is the larger one when a_up <= a_down (the
    # gain reduction rises faster than it falls; the usual case) and the smaller one otherwise, so a
    # max or min replaces the data-dependent branch.
    up_faster = c_up >= c_dn
    buf = np.empty(_BLOCK)  # x_G, then y_L, then the gain
    yl = 0.0
    for n0 in range(0, n_samp, _BLOCK):
        m = min(_BLOCK, n_samp - n0)
        for i in range(m):
            buf[i] = 0.0
        for c in range(n_det):
            for i in range(m):
                v = np.float64(det[b, c, n0 + i])
                buf[i] += v * v
        for i in range(m):
            buf[i] = _DB_PER_NEPER * _ln(buf[i] * inv_n + EPS)
        for i in range(m):
            xg = buf[i]
            xl = min(s * _knee(direction * (xg - thr), half, w, inv2w), rng)
            d = yl - xl
            y_up = a_up * yl + c_up * xl
            y_dn = a_dn * yl + c_dn * xl
            yl = max(y_up, y_dn) if up_faster else min(y_up, y_dn)
            buf[i] = yl
            if save:
                dbuf[b, n0 + i] = d - _TINY * (d < 0.0)
                xgbuf[b, n0 + i] = xg
        if gr_only:
            for i in range(m):
                y[b, 0, n0 + i] = buf[i]
            continue
        for i in range(m):
            buf[i] = _exp(_NEPER_PER_DB20 * (mk - buf[i]))
        if save:
            for i in range(m):
                gbuf[b, n0 + i] = buf[i]
        for c in range(n_ch):
            for i in range(m):
                y[b, c, n0 + i] = x[b, c, n0 + i] * buf[i]


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _backward_row(x, det, prm, direction, gy, gbuf, dbuf, xgbuf, gx, gdet, gprm, b):
    """Adjoint of ``_forward_row`` for batch row ``b``, a block at a time from the end. Writes ``gx``,
    adds the detector gradient to ``gdet`` (which is ``gx`` itself when x is its own detector) and
    writes the parameter gradients to ``gprm`` (B, 7). ``lam`` is dLoss/dy_L[n] through all later
    samples. Sums may be reordered (``reassoc``) so that the loops vectorise."""
    n_ch, n_samp = x.shape[1], x.shape[2]
    n_det = det.shape[1]
    thr, s, w, rng = prm[b, 0], prm[b, 1], prm[b, 2], prm[b, 3]
    a_up, a_dn = prm[b, 5], prm[b, 6]
    half = 0.5 * w
    inv2w = 0.5 / w if w > 0.0 else 0.0
    inv_w = 1.0 / w if w > 0.0 else 1e300  # h'(u) = min(t / W, 1): a step at u = 0 for the hard knee
    k_det = direction * s * 2.0 * _DB_PER_NEPER  # dx_G/d(det_c) = 2 det_c / (sum_c det_c^2 + C eps) in nepers
    g_thr = g_s = g_w = g_rng = g_mk = g_up = g_dn = 0.0
    lam = 0.0
    a_next = 0.0
    buf = np.empty(_BLOCK)
    pw = np.empty(_BLOCK)
    for n0 in range(((n_samp - 1) // _BLOCK) * _BLOCK, -1, -_BLOCK):
        m = min(_BLOCK, n_samp - n0)
        # 1. through y = x g: gx = gy g, and buf = (sum_c gy x) g ln(10)/20 = -(direct dLoss/dy_L)
        for i in range(m):
            buf[i] = 0.0
        for c in range(n_ch):
            for i in range(m):
                gyc = np.float64(gy[b, c, n0 + i])
                buf[i] += gyc * x[b, c, n0 + i]
                gx[b, c, n0 + i] = gyc * gbuf[b, n0 + i]
        for i in range(m):
            buf[i] *= np.float64(gbuf[b, n0 + i]) * _NEPER_PER_DB20
        # 2. the smoother, backwards in time; buf becomes dLoss/dx_L
        for i in range(m - 1, -1, -1):
            t = buf[i]
            g_mk += t
            lam = a_next * lam - t
            d = np.float64(dbuf[b, n0 + i])
            a_next = a_up if d < 0.0 else a_dn
            g_up += lam * min(d, 0.0)
            g_dn += lam * max(d, 0.0)
            buf[i] = (1.0 - a_next) * lam
        # 3. the gain computer x_L = min(s h(u), range): dh/du = q, dh/dW = q (1 - q) / 2
        for i in range(m):
            u = direction * (np.float64(xgbuf[b, n0 + i]) - thr)
            h = _knee(u, half, w, inv2w)
            q = min(max(u + half, 0.0) * inv_w, 1.0)
            gxl = buf[i]
            clamped = s * h > rng
            g_rng += gxl if clamped else 0.0
            gxl = 0.0 if clamped else gxl
            g_s += gxl * h
            g_w += gxl * q * (1.0 - q)
            g_thr += gxl * q
            buf[i] = gxl * q
        # 4. the detector, x_G = 10 log10(mean_c det_c^2 + eps)
        for i in range(m):
            pw[i] = n_det * EPS
        for c in range(n_det):
            for i in range(m):
                v = np.float64(det[b, c, n0 + i])
                pw[i] += v * v
        for i in range(m):
            buf[i] *= k_det / pw[i]
        for c in range(n_det):
            for i in range(m):
                gdet[b, c, n0 + i] += buf[i] * det[b, c, n0 + i]
    gprm[b, 0] = -direction * s * g_thr
    gprm[b, 1] = g_s
    gprm[b, 2] = 0.5 * s * g_w
    gprm[b, 3] = g_rng
    gprm[b, 4] = g_mk
    gprm[b, 5] = g_up
    gprm[b, 6] = g_dn


# Drivers: one thread per batch row, or a plain loop for small jobs, where waking threads costs more
# than it saves (and on a busy machine can stall for milliseconds).
@numba.njit(parallel=True, cache=True)
def _forward_parallel(x, det, prm, direction, y, gbuf, dbuf, xgbuf, save, gr_only):
    for b in numba.prange(x.shape[0]):
        _forward_row(x, det, prm, direction, y, gbuf, dbuf, xgbuf, save, gr_only, b)


@numba.njit(cache=True)
def _forward_serial(x, det, prm, direction, y, gbuf, dbuf, xgbuf, save, gr_only):
    for b in range(x.shape[0]):
        _forward_row(x, det, prm, direction, y, gbuf, dbuf, xgbuf, save, gr_only, b)


@numba.njit(parallel=True, cache=True)
def _backward_parallel(x, det, prm, direction, gy, gbuf, dbuf, xgbuf, gx, gdet, gprm):
    for b in numba.prange(x.shape[0]):
        _backward_row(x, det, prm, direction, gy, gbuf, dbuf, xgbuf, gx, gdet, gprm, b)


@numba.njit(cache=True)
def _backward_serial(x, det, prm, direction, gy, gbuf, dbuf, xgbuf, gx, gdet, gprm):
    for b in range(x.shape[0]):
        _backward_row(x, det, prm, direction, gy, gbuf, dbuf, xgbuf, gx, gdet, gprm, b)


_PARALLEL_MIN = 1 << 15  # samples x channels over the batch from which the threaded drivers are used


def _run(parallel, serial, x, *args):
    (parallel if x.shape[0] > 1 and x.size >= _PARALLEL_MIN else serial)(x, *args)


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


class _Dynamics(torch.autograd.Function):
    """y = dynamics(x, det, prm): the kernels above with exact gradients for x, det and prm (B, 7)."""

    @staticmethod
    def forward(ctx, x, det, prm, direction):
        save = any(ctx.needs_input_grad)
        xc = _cpu(x)
        dc = xc if det is None else _cpu(det)
        p64 = _cpu(prm)
        shape = (x.shape[0], x.shape[-1]) if save else (0, 0)
        gbuf, dbuf, xgbuf = (torch.empty(shape, dtype=x.dtype) for _ in range(3))
        y = torch.empty_like(xc)
        _run(_forward_parallel, _forward_serial, xc.numpy(), dc.numpy(), p64.numpy(), direction, y.numpy(),
             gbuf.numpy(), dbuf.numpy(), xgbuf.numpy(), save, False)
        if save:
            ctx.save_for_backward(xc, dc, p64, gbuf, dbuf, xgbuf)
            ctx.direction, ctx.own_detector = direction, det is None
        return y.to(x.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        xc, dc, p64, gbuf, dbuf, xgbuf = ctx.saved_tensors
        gyc = _cpu(gy).to(xc.dtype)
        gx = torch.empty_like(xc)
        gdet = gx if ctx.own_detector else torch.zeros_like(dc)
        gprm = torch.zeros_like(p64)
        _run(_backward_parallel, _backward_serial, xc.numpy(), dc.numpy(), p64.numpy(), ctx.direction,
             gyc.numpy(), gbuf.numpy(), dbuf.numpy(), xgbuf.numpy(), gx.numpy(), gdet.numpy(), gprm.numpy())
        dev = gy.device
        g_det = None if ctx.own_detector else gdet.to(dev)
        return gx.to(dev), g_det, gprm.to(dev), None


def _param(value, name, x):
    """A validated (B,) float64 parameter (float64 keeps 1 - a accurate for long time constants)."""
    low, high, unit = COMPRESSOR_RANGES[name]
    return as_param(value, name, x.shape[0], x, low, high, unit).double()


def _full(value, x):
    return torch.full((x.shape[0],), value, dtype=torch.float64, device=x.device)


def _check_signal(t, name):
    check_audio(t, name)
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64 for the dynamics kernels; got {t.dtype}. Use {name}.float().")


def _check_sidechain(sidechain, x):
    if sidechain is None:
        return None
    _check_signal(sidechain, "sidechain")
    if sidechain.shape[0] != x.shape[0] or sidechain.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"sidechain must have the same batch size and length as x, shape ({x.shape[0]}, channels, "
            f"{x.shape[-1]}); got {tuple(sidechain.shape)}. Trim or pad it to x's length."
        )
    return sidechain.to(device=x.device, dtype=x.dtype)


def _prepare(kind, x, sample_rate, threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db,
             range_db, sidechain):
    """Validate everything; return (x, detector or None, prm (B, 7) float64, direction)."""
    _check_signal(x, "x")
    sr = check_sample_rate(sample_rate)
    det = _check_sidechain(sidechain, x)
    direction = 1 if kind in ("compressor", "limiter") else -1
    if kind == "limiter":
        s = _full(1.0 - 1.0 / LIMITER_RATIO, x)
    elif kind == "gate":
        s = _full(GATE_RATIO - 1.0, x)
    else:
        r = _param(ratio, "ratio", x)
        s = 1.0 - 1.0 / r if direction > 0 else r - 1.0
    a_att = torch.exp(-1000.0 / (_param(attack_ms, "attack_ms", x) * sr))
    a_rel = torch.exp(-1000.0 / (_param(release_ms, "release_ms", x) * sr))
    a_up, a_dn = (a_att, a_rel) if direction > 0 else (a_rel, a_att)
    rng = _full(math.inf, x) if range_db is None else _param(range_db, "range_db", x)
    prm = torch.stack([_param(threshold_db, "threshold_db", x), s, _param(knee_db, "knee_db", x), rng,
                       _param(makeup_db, "makeup_db", x), a_up, a_dn], dim=1)
    return x, det, prm, direction


def compressor(x, sample_rate, threshold_db, ratio, attack_ms, release_ms, knee_db=0.0, makeup_db=0.0,
               sidechain=None):
    """Feed-forward compressor on ``x`` (B, C, T); returns the same shape.

    Parameters are floats or (B,) tensors within ``COMPRESSOR_RANGES``: ``threshold_db``, ``ratio``
    (1 = no compression), ``attack_ms``, ``release_ms``, ``knee_db`` (0 = hard knee), ``makeup_db``.
    ``sidechain`` (B, Cs, T), when given, drives the detector instead of ``x`` (e.g. a kick ducking a
    bass). Differentiable in ``x``, ``sidechain`` and every parameter.
    """
    return _Dynamics.apply(*_prepare("compressor", x, sample_rate, threshold_db, ratio, attack_ms, release_ms,
                                     knee_db, makeup_db, None, sidechain))


def limiter(x, sample_rate, threshold_db, attack_ms=0.01, release_ms=50.0, knee_db=0.0, makeup_db=0.0,
            sidechain=None):
    """Limiter: a compressor with ratio ``LIMITER_RATIO`` (1000:1) and a fast default attack.

    Without look-ahead, peaks overshoot the threshold for about the attack time, then sit on it.
    Arguments as for :func:`compressor`.
    """
    return _Dynamics.apply(*_prepare("limiter", x, sample_rate, threshold_db, None, attack_ms, release_ms,
                                     knee_db, makeup_db, None, sidechain))


def expander(x, sample_rate, threshold_db, ratio, attack_ms, release_ms, knee_db=0.0, makeup_db=0.0,
             range_db=None, sidechain=None):
    """Downward expander: below the threshold the output level falls ``ratio`` dB per dB of input.

    ``range_db`` (0 to 120 dB, default unlimited) caps the gain reduction. Attack sets how fast the
    gain recovers when the input rises, release how fast it falls. Other arguments as for
    :func:`compressor`.
    """
    return _Dynamics.apply(*_prepare("expander", x, sample_rate, threshold_db, ratio, attack_ms, release_ms,
                                     knee_db, makeup_db, range_db, sidechain))


def gate(x, sample_rate, threshold_db, attack_ms=1.0, release_ms=100.0, range_db=60.0, knee_db=0.0,
         makeup_db=0.0, sidechain=None):
    """Noise gate: an expander with ratio ``GATE_RATIO`` (100:1) that attenuates by up to ``range_db``.

    Attack is the opening time, release the closing time. Arguments as for :func:`expander`.
    """
    return _Dynamics.apply(*_prepare("gate", x, sample_rate, threshold_db, None, attack_ms, release_ms,
                                     knee_db, makeup_db, range_db, sidechain))


_PROCESSORS = {"compressor": compressor, "limiter": limiter, "expander": expander, "gate": gate}


def compressor_gain(x, sample_rate, *args, kind="compressor", **kwargs) -> torch.Tensor:
    """Smoothed gain reduction ``y_L`` in dB (>= 0, makeup not included), shape (B, 1, T), for plots.

    Takes the arguments of the processor named by ``kind`` (``"compressor"``, ``"limiter"``,
    ``"expander"`` or ``"gate"``), e.g. ``compressor_gain(x, sr, -20.0, 4.0, 5.0, 100.0)`` or
    ``compressor_gain(x, sr, threshold_db=-6.0, kind="limiter")``. The processor's output is
    ``x * 10^((makeup_db - y_L) / 20)``. Not differentiable (the result is detached).
    """
    if kind not in _PROCESSORS:
        raise ValueError(f"kind={kind!r} is not a dynamics processor; use one of {', '.join(map(repr, _PROCESSORS))}.")
    bound = inspect.signature(_PROCESSORS[kind]).bind(x, sample_rate, *args, **kwargs)
    bound.apply_defaults()
    a = {"ratio": None, "range_db": None, **bound.arguments}
    x, det, prm, direction = _prepare(kind, a["x"], a["sample_rate"], a["threshold_db"], a["ratio"],
                                      a["attack_ms"], a["release_ms"], a["knee_db"], a["makeup_db"],
                                      a["range_db"], a["sidechain"])
    xc = _cpu(x)
    dc = xc if det is None else _cpu(det)
    gr = torch.empty((x.shape[0], 1, x.shape[-1]), dtype=x.dtype)
    empty = torch.empty((0, 0), dtype=x.dtype).numpy()
    _run(_forward_parallel, _forward_serial, xc.numpy(), dc.numpy(), _cpu(prm).numpy(), direction,
         gr.numpy(), empty, empty, empty, False, True)
    return gr.to(x.device)


def static_curve(level_db, threshold_db, ratio, knee_db=0.0, kind="compressor", range_db=None):
    """Output level (dB) of the static curve for input level(s) ``level_db`` (float, array or tensor).

    ``kind="compressor"`` reduces above the threshold (a limiter is ``ratio=LIMITER_RATIO``);
    ``kind="expander"`` reduces below it (a gate is ``ratio=GATE_RATIO`` with a ``range_db``). Other
    arguments are floats or tensors broadcasting against ``level_db``; returns a tensor (float64
    unless ``level_db`` is a tensor), differentiable, with finite gradients at ``knee_db = 0``.
    """
    if kind not in ("compressor", "expander"):
        raise ValueError(f"kind={kind!r} must be 'compressor' or 'expander' (a limiter is a compressor with "
                         f"ratio=LIMITER_RATIO, a gate an expander with ratio=GATE_RATIO).")
    xg = level_db if isinstance(level_db, torch.Tensor) else torch.as_tensor(level_db, dtype=torch.float64)
    t, r, w = (torch.as_tensor(v, dtype=xg.dtype, device=xg.device) for v in (threshold_db, ratio, knee_db))
    if bool((r < 1).any()) or bool((w < 0).any()):
        raise ValueError(f"ratio must be >= 1 and knee_db >= 0; got ratio={r.tolist()}, knee_db={w.tolist()}.")
    direction = 1.0 if kind == "compressor" else -1.0
    s = 1.0 - 1.0 / r if direction > 0 else r - 1.0
    u = direction * (xg - t)
    inside = (u > -w / 2) & (u < w / 2)
    w_safe = torch.where(inside, w, torch.ones_like(w))  # the unused branch never divides by zero
    h = torch.where(u >= w / 2, u, torch.where(inside, (u + w / 2) ** 2 / (2 * w_safe), torch.zeros_like(u)))
    gr = s * h
    if range_db is not None:
        gr = torch.clamp(gr, max=torch.as_tensor(range_db, dtype=xg.dtype, device=xg.device))
    return xg - gr
