"""Gain and panning laws (taught in ``notebooks/02_gain_loudness_panning.ipynb``).

A pan position ``p`` in [0, 1] (0 = hard left, 0.5 = centre, 1 = hard right) maps to the angle
``theta = p * pi / 2`` of the tutorial slides (Steinmetz et al., ISMIR 2022). The laws:

- ``"linear"``:          L = 1 - p,                 R = p                  (centre -6.02 dB, sum of gains 1)
- ``"constant_power"``:  L = cos(theta),            R = sin(theta)         (centre -3.01 dB, L^2 + R^2 = 1)
- ``"-4.5dB"``:          L = sqrt((1 - p) cos theta), R = sqrt(p sin theta) (centre -4.52 dB)

The -4.5 dB law is evaluated as ``R = p * sqrt(pi/2 * sinc(p/2))`` (and mirrored for L), which is
the same function but has finite gradients at hard left/right, where the naive ``sqrt`` of 0 gives NaN.
"""

from __future__ import annotations

import math

import torch

from .._checks import as_param, bcast, check_audio

LAWS = ("linear", "constant_power", "-4.5dB")


def _check_law(law: str) -> str:
    if law not in LAWS:
        raise ValueError(f"law={law!r} is not a panning law; use one of {', '.join(repr(l) for l in LAWS)}.")
    return law


def _root_side(p: torch.Tensor) -> torch.Tensor:
    # sqrt(p * sin(pi p / 2)) written without a sqrt at zero: sin(pi p/2) = (pi p / 2) sinc(p / 2).
    return p * torch.sqrt(0.5 * math.pi * torch.sinc(0.5 * p))


def pan_gains(pan, law: str = "constant_power"):
    """Left and right gains for pan position(s) ``pan`` in [0, 1] (0 = hard left, 1 = hard right).

    ``pan`` is a float or a tensor of any shape; returns ``(left, right)`` with the same shape
    (tensors). Values outside [0, 1] raise a ``ValueError``.
    """
    _check_law(law)
    p = pan if isinstance(pan, torch.Tensor) else torch.tensor(float(pan), dtype=torch.get_default_dtype())
    if not p.is_floating_point():
        p = p.to(torch.get_default_dtype())
    if not bool(torch.isfinite(p).all()) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(
            f"pan must lie in [0, 1] (0 = hard left, 0.5 = centre, 1 = hard right); got "
            f"{p.detach().flatten()[:4].tolist()}."
        )
    if law == "linear":
        return 1.0 - p, p
    if law == "constant_power":
        # cos(theta) written as sin(pi/2 - theta): exactly 0 at hard right and exactly mirror-symmetric.
        return torch.sin(0.5 * math.pi * (1.0 - p)), torch.sin(0.5 * math.pi * p)
    return _root_side(1.0 - p), _root_side(p)


def pan(x: torch.Tensor, pan, law: str = "constant_power") -> torch.Tensor:
    """Pan mono ``x`` ``(batch, 1, samples)`` to stereo ``(batch, 2, samples)``.

    ``pan`` is a float or a ``(batch,)`` tensor in [0, 1].
    """
    check_audio(x, channels=1)
    p = as_param(pan, "pan", x.shape[0], x, 0.0, 1.0)
    left, right = pan_gains(p, law)
    return torch.cat([bcast(left) * x, bcast(right) * x], dim=1)


def db_to_gain(db):
    """Decibels to linear amplitude, ``10 ** (db / 20)`` (thesis eq. 4.2)."""
    if isinstance(db, torch.Tensor):
        return torch.pow(10.0, db / 20.0)
    return 10.0 ** (float(db) / 20.0)


def gain_to_db(gain, eps: float = 1e-12):
    """Linear amplitude to decibels, ``20 log10(max(|gain|, eps))``."""
    if isinstance(gain, torch.Tensor):
        return 20.0 * torch.log10(gain.abs().clamp_min(eps))
    return 20.0 * math.log10(max(abs(float(gain)), eps))


def gain(x: torch.Tensor, gain_db) -> torch.Tensor:
    """Apply a gain in dB (float or ``(batch,)`` tensor, range [-96, 48] dB) to ``x`` ``(batch, channels, samples)``."""
    check_audio(x)
    g = as_param(gain_db, "gain_db", x.shape[0], x, -96.0, 48.0, "dB")
    return bcast(db_to_gain(g)) * x
