"""Scoring a mix against a target mix (taught in ``notebooks/07_baselines.ipynb``; Part 3 scores its models
the same way).

- ``side_to_mid_db``: stereo width, the energy of the side signal ``L - R`` relative to the mid ``L + R``.
- ``matched_stereo_loss``: ``losses.StereoLoss`` of a mix against a target after bringing the mix to the
  target's integrated loudness (ITU-R BS.1770), so that the loss measures balance, panning and tone,
  not the master level.
- ``gain_error_db``: mean absolute fader error in dB after removing the mean offset (a common offset only
  changes the master level, which the master gain sets anyway).
- ``pan_error``: mean absolute pan error; with ``mirror=True`` the smaller of the error and the error of
  the mirror image (``1 - pan``), since the stereo loss cannot tell a mix from its mirror either.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch

from . import audio
from ._checks import check_audio
from .losses import StereoLoss

__all__ = ["side_to_mid_db", "matched_stereo_loss", "gain_error_db", "pan_error", "pan_sides"]


def side_to_mid_db(mix: torch.Tensor) -> float:
    """Side-to-mid energy ratio in dB of a stereo mix ``(2, T)`` or ``(1, 2, T)``; ``-inf`` for a mono mix."""
    y = mix[None] if mix.dim() == 2 else mix
    check_audio(y, "mix", channels=2)
    mid, side = (y[:, 0] + y[:, 1]).square().sum(), (y[:, 0] - y[:, 1]).square().sum()
    if float(mid) == 0.0:
        raise ValueError("the mix's mid signal (L + R) is silent: the side-to-mid ratio is undefined.")
    return 10 * math.log10(float(side) / float(mid)) if float(side) > 0 else -math.inf


def matched_stereo_loss(mix: torch.Tensor, target: torch.Tensor, sample_rate: float,
                        loss: Optional[StereoLoss] = None) -> float:
    """``StereoLoss`` of ``mix`` (scaled to the integrated loudness of ``target``) against ``target``.

    Both ``(1, 2, T)`` stereo, same length; ``loss`` defaults to ``StereoLoss()`` (thesis eq. 5.3).
    """
    check_audio(target, "target", channels=2)
    matched = audio.normalize_loudness(mix, sample_rate, float(audio.loudness_lufs(target, sample_rate)))
    with torch.no_grad():
        return float((loss or StereoLoss())(matched, target))


def _track_param(params: Mapping, ref: Mapping, name: str) -> tuple:
    a, b = params[name], ref[name]
    if a.shape != b.shape:
        raise ValueError(f"{name} has shape {tuple(a.shape)} in params but {tuple(b.shape)} in ref: compare mixes "
                         "of the same song (same tracks, in the same order).")
    return a.double(), b.double()


def gain_error_db(params: Mapping, ref: Mapping) -> float:
    """Mean absolute ``gain_db`` error (dB) over the tracks of console parameters ``(1, N)``, mean offset removed."""
    a, b = _track_param(params, ref, "gain_db")
    d = a - b
    return float((d - d.mean(-1, keepdim=True)).abs().mean())


def pan_error(params: Mapping, ref: Mapping, mirror: bool = True) -> float:
    """Mean absolute ``pan`` error (pan in [0, 1]); ``mirror``: the smaller of it and the mirror image's."""
    a, b = _track_param(params, ref, "pan")
    err = float((a - b).abs().mean())
    return min(err, float((1 - a - b).abs().mean())) if mirror else err


def pan_sides(params: Mapping, ref: Mapping, centre: float = 0.05) -> list:
    """Where each track of ``params`` sits against ``ref`` (pans ``(1, N)`` in [0, 1]), one word per track:
    ``"centre"`` (both within ``centre`` of 0.5), ``"same side"``, ``"mirrored"`` (the other side),
    ``"centred"`` (the reference is off-centre, ``params`` is not) or ``"off-centre"`` (the reverse). Read with
    :func:`pan_error` in chapter 3.4 (``notebooks/14_inference.ipynb``): the error forgives a mirror image of the
    whole mix, not one track on the wrong side."""
    a, b = _track_param(params, ref, "pan")
    out = []
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()):
        ax, by = abs(x - 0.5) <= centre, abs(y - 0.5) <= centre
        out.append("centre" if ax and by else "centred" if ax else "off-centre" if by else
                   "same side" if (x - 0.5) * (y - 0.5) > 0 else "mirrored")
    return out
