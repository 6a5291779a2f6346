"""The peers' side of the benchmarks: reference designs and calls into the peer libraries.

Each function takes the same inputs as our processor in ``run.py`` (audio ``(B, 1, T)``, parameters
as ``(B,)`` or ``(B, 4)`` tensors in real units) and returns audio, so one timing loop serves all.
Peer libraries are imported lazily: a missing one skips its rows instead of stopping the run.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# RBJ cookbook biquads (Bristow-Johnson), written independently of automix_lite as the reference
# ----------------------------------------------------------------------------------------------

def rbj(kind: str, gain_db, cutoff_hz, q, sample_rate: float) -> torch.Tensor:
    """Normalised biquad rows ``(..., 6) = [b0 b1 b2 1 a1 a2]`` of an RBJ peaking filter or shelf."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * cutoff_hz / sample_rate
    cos, alpha = torch.cos(w0), torch.sin(w0) / (2 * q)
    if kind == "peaking":
        b = (1 + alpha * A, -2 * cos, 1 - alpha * A)
        a = (1 + alpha / A, -2 * cos, 1 - alpha / A)
    else:
        s = 1.0 if kind == "low_shelf" else -1.0  # s = -1 turns the low-shelf formulas into the high shelf
        k = 2 * torch.sqrt(A) * alpha
        b = (A * ((A + 1) - s * (A - 1) * cos + k), s * 2 * A * ((A - 1) - s * (A + 1) * cos),
             A * ((A + 1) - s * (A - 1) * cos - k))
        a = ((A + 1) + s * (A - 1) * cos + k, -s * 2 * ((A - 1) + s * (A + 1) * cos), (A + 1) + s * (A - 1) * cos - k)
    return torch.stack([*b, *a], dim=-1) / a[0].unsqueeze(-1)


def eq_sos(p: dict, sample_rate: float) -> torch.Tensor:
    """SOS ``(B, 6, 6)`` of the 6-band EQ (low shelf, 4 peaks, high shelf) from the parameter dict of run.py."""
    rows = [rbj("low_shelf", p["ls_gain"], p["ls_freq"], p["ls_q"], sample_rate)]
    rows += [rbj("peaking", p["pk_gain"][:, i], p["pk_freq"][:, i], p["pk_q"][:, i], sample_rate) for i in range(4)]
    rows.append(rbj("high_shelf", p["hs_gain"], p["hs_freq"], p["hs_q"], sample_rate))
    return torch.stack(rows, dim=1)


def scipy_eq(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt`` per batch item: x ``(B, 1, T)``, sos ``(B, S, 6)``."""
    from scipy.signal import sosfilt

    return np.stack([sosfilt(sos[i], x[i], axis=-1) for i in range(x.shape[0])])


# ----------------------------------------------------------------------------------------------
# Exact SOS with torchlpc: FIR numerator, then the all-pole part by sample_wise_lpc
# ----------------------------------------------------------------------------------------------

def torchlpc_sosfilt(sos: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cascade of biquads ``sos (B, S, 6)`` on mono ``x (B, 1, T)``, differentiable through torchlpc."""
    from torchlpc import sample_wise_lpc

    B, _, T = x.shape
    y = x[:, 0]
    for s in range(sos.shape[1]):
        b, a = sos[:, s, :3], sos[:, s, 4:]
        yp = F.pad(y, (2, 0))
        y = b[:, 0:1] * yp[:, 2:] + b[:, 1:2] * yp[:, 1:-1] + b[:, 2:3] * yp[:, :-2]
        y = sample_wise_lpc(y, a.unsqueeze(1).expand(B, T, 2))
    return y.unsqueeze(1)


def torchlpc_eq(x, sample_rate, p):
    return torchlpc_sosfilt(eq_sos(p, sample_rate), x)


# ----------------------------------------------------------------------------------------------
# dasp-pytorch
# ----------------------------------------------------------------------------------------------

def dasp_eq(x, sample_rate, p):
    """dasp_pytorch.functional.parametric_eq (frequency sampling of the 6 biquads)."""
    from dasp_pytorch.functional import parametric_eq

    kw = dict(low_shelf_gain_db=p["ls_gain"], low_shelf_cutoff_freq=p["ls_freq"], low_shelf_q_factor=p["ls_q"],
              high_shelf_gain_db=p["hs_gain"], high_shelf_cutoff_freq=p["hs_freq"], high_shelf_q_factor=p["hs_q"])
    for i in range(4):
        kw[f"band{i}_gain_db"] = p["pk_gain"][:, i]
        kw[f"band{i}_cutoff_freq"] = p["pk_freq"][:, i]
        kw[f"band{i}_q_factor"] = p["pk_q"][:, i]
    return parametric_eq(x, sample_rate, **kw)


def dasp_eq_sos(p, sample_rate) -> torch.Tensor:
    """The SOS that dasp's parametric_eq builds (its own RBJ code), for its accuracy check."""
    from dasp_pytorch.signal import biquad

    rows = [biquad(p["ls_gain"], p["ls_freq"], p["ls_q"], sample_rate, "low_shelf")]
    rows += [biquad(p["pk_gain"][:, i], p["pk_freq"][:, i], p["pk_q"][:, i], sample_rate, "peaking") for i in range(4)]
    rows.append(biquad(p["hs_gain"], p["hs_freq"], p["hs_q"], sample_rate, "high_shelf"))
    return torch.stack([torch.cat(r, dim=-1) for r in rows], dim=1)


def dasp_compressor(x, sample_rate, p):
    """dasp_pytorch.functional.compressor (one-pole smoothing with the attack time only; release is ignored)."""
    from dasp_pytorch.functional import compressor

    return compressor(x, sample_rate, p["threshold_db"], p["ratio"], p["attack_ms"], p["release_ms"],
                      p["knee_db"], torch.zeros_like(p["ratio"]))


def dasp_reverb(x, sample_rate, p):
    """dasp_pytorch.functional.noise_shaped_reverberation: synthesises a 65536-sample IR per item and
    convolves it directly (conv1d); mono input comes back as stereo (2 channels)."""
    from dasp_pytorch.functional import noise_shaped_reverberation

    kw = {f"band{i}_gain": p["band_gain"][:, i] for i in range(12)}
    kw.update({f"band{i}_decay": p["band_decay"][:, i] for i in range(12)})
    return noise_shaped_reverberation(x, sample_rate, **kw, mix=p["mix"], num_samples=65536)


def dasp_direct_convolve(x, ir):
    """The convolution step of dasp's reverb (vmapped conv1d with the flipped IR), with our fixed IR
    ``(1, 1, N)`` shared by all items; output truncated to the input length like dasp's."""
    n = ir.shape[-1]
    x_pad = F.pad(x, (n - 1, 0))
    w = torch.flip(ir, dims=[-1]).expand(x.shape[0], 1, 1, n)
    return torch.vmap(partial(F.conv1d, groups=1), in_dims=0)(x_pad, w)


# ----------------------------------------------------------------------------------------------
# torchcomp (Chin-Yun Yu): compressor gain with true attack and release
# ----------------------------------------------------------------------------------------------

def torchcomp_compressor(x, sample_rate, p, rms_ms=None):
    """y = x * compexp_gain(level): level = sqrt(avg(x^2)) with an ``rms_ms`` averager (torchcomp's
    ``avg``), or ``|x|`` when ``rms_ms`` is None. Expander disabled (threshold -1000 dB); no knee."""
    from torchcomp import avg, compexp_gain, ms2coef

    x2 = x[:, 0]
    if rms_ms is None:
        level = x2.abs()
    else:
        level = avg(x2.square(), ms2coef(torch.full_like(p["ratio"], rms_ms), sample_rate)).sqrt()
    g = compexp_gain(level.clamp_min(1e-5), p["threshold_db"], p["ratio"], -1000.0, 0.5,
                     ms2coef(p["attack_ms"], sample_rate), ms2coef(p["release_ms"], sample_rate))
    return (x2 * g).unsqueeze(1)


# ----------------------------------------------------------------------------------------------
# pedalboard (Spotify; JUCE compressor), forward only
# ----------------------------------------------------------------------------------------------

def pedalboard_compressor(x: np.ndarray, sample_rate, p: dict) -> list:
    """Process each item of ``x (B, 1, T)`` (float32 numpy) with pedalboard.Compressor."""
    import pedalboard

    comp = pedalboard.Compressor(threshold_db=p["threshold_db"], ratio=p["ratio"],
                                 attack_ms=p["attack_ms"], release_ms=p["release_ms"])
    return [comp(x[i], sample_rate) for i in range(x.shape[0])]


# ----------------------------------------------------------------------------------------------
# auraloss (Steinmetz & Reiss): the reference STFT losses
# ----------------------------------------------------------------------------------------------

def auraloss_mrstft(dtype=torch.float32):
    """auraloss.freq.MultiResolutionSTFTLoss() with its defaults; in float64 its float32 Hann windows
    are replaced by float64 ones so that it computes in float64 throughout."""
    import auraloss

    return _windows(auraloss.freq.MultiResolutionSTFTLoss(), dtype)


def auraloss_sum_and_difference(resolutions, dtype=torch.float32):
    """auraloss.freq.SumAndDifferenceSTFTLoss on the same resolutions (it has no default resolutions)."""
    import auraloss

    n, h, w = (list(v) for v in zip(*resolutions))
    return _windows(auraloss.freq.SumAndDifferenceSTFTLoss(n, h, w), dtype)


def _windows(module, dtype):
    import auraloss

    for m in module.modules():
        if isinstance(m, auraloss.freq.STFTLoss):
            m.window = torch.hann_window(m.win_length, dtype=dtype)
    return module
