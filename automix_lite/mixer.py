"""One mixer interface (project issue 12): what every mixer of the package offers, and all that
:mod:`automix_lite.inference`, :mod:`automix_lite.evaluation` and ``automix mix`` ask of one.

A mixer is anything with these six members (:class:`Mixer`, a ``runtime_checkable`` protocol, so
``isinstance(obj, Mixer)`` tells; no base class to inherit):

- ``sample_rate`` (int, Hz): the rate its tracks must be at;
- ``max_tracks`` (int or ``None`` = any number): the most tracks one call takes;
- ``segment_seconds`` (float or ``None`` = the whole input): the length of audio its ``estimate`` was made
  for (a DMC: its training segments); :func:`automix_lite.inference.estimate_params` analyses a long song in
  windows of that length;
- ``has_params`` (bool): whether it mixes through console parameters a person can read and edit. The one
  answer to that question: ``automix mix --params-out``, the parameter table and the parameter scores of
  the evaluation all go by it;
- ``estimate(tracks, mask) -> params``: the parameters for ``tracks (B, N, T)`` (``mask (B, N)`` bool, ``True``
  = a real track, or ``None`` = all), a :class:`automix_lite.parameters.MixParams` (real units: per track
  ``(B, N)``, peaking bands ``(B, N, P)``, bus and master ``(B,)``; ``console`` says which console renders
  them; a DMC adds its normalised outputs as ``controls``); ``None`` for a mixer without parameters. A mixer
  of your own may return a dict of the console's names: the package wraps it with
  :func:`automix_lite.parameters.as_params`;
- ``render(tracks, params, mask) -> mix (B, 2, T)``: the stereo mix with ``params`` from ``estimate`` (or edited
  ones); a direct-transformation model (the Mix-Wave-U-Net) takes ``params=None``.

``mixer.render(tracks, mixer.estimate(tracks, mask), mask)`` is the mixer's mix (:func:`mix_with`).

Implemented by :class:`automix_lite.models.DMC` (basic and full consoles), :class:`automix_lite.models.MixWaveUNet`,
:class:`automix_lite.baselines.MonoMixer`, :class:`~automix_lite.baselines.RandomMixer`,
:class:`~automix_lite.baselines.KnowledgeMixer` and :class:`automix_lite.data.engineer.EngineerMixer`.

Song metadata the protocol does not carry (track roles, tempo, the engineer's seed) is given to the
mixer when it is built, one mixer per song: ``KnowledgeMixer(roles=..., tempo=...)``,
``EngineerMixer(style, roles, seed, tempo)`` or ``EngineerMixer.for_song(song_id, style)``.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch

from .parameters import MixParams

__all__ = ["Mixer", "mix_with", "check_mixer", "device_of"]


@runtime_checkable
class Mixer(Protocol):
    """A mixer: ``estimate(tracks (B, N, T), mask (B, N)) -> params or None``, ``render(tracks, params, mask) -> (B, 2, T)``."""

    sample_rate: int
    """Hz; the tracks must be at this rate."""
    max_tracks: Optional[int]
    """The most tracks one call takes (``None``: any number)."""
    segment_seconds: Optional[float]
    """The input length ``estimate`` analyses at once (``None``: the whole input)."""
    has_params: bool
    """``True``: ``estimate`` returns console parameters; ``False``: it returns ``None`` and ``render`` needs none."""

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[MixParams]:
        """Parameters (real units, batch first) for ``tracks (B, N, T)``; ``None`` if ``has_params`` is false."""
        ...

    def render(self, tracks: torch.Tensor, params: Optional[MixParams], mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The stereo mix ``(B, 2, T)`` of ``tracks (B, N, T)`` with ``params`` (``None`` without parameters)."""
        ...


def check_mixer(mixer) -> Mixer:
    """``mixer`` if it implements :class:`Mixer`, else a ``TypeError`` naming the members it lacks."""
    if not isinstance(mixer, Mixer):
        members = ("sample_rate", "max_tracks", "segment_seconds", "has_params", "estimate", "render")
        missing = [k for k in members if k not in dir(mixer)]
        raise TypeError(f"{type(mixer).__name__} is not a mixer: it lacks {', '.join(missing)} "
                        "(see automix_lite.mixer.Mixer).")
    return mixer


def mix_with(mixer: Mixer, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None):
    """``(mix (B, 2, T), params or None)``: ``mixer.render(tracks, mixer.estimate(tracks, mask), mask)``."""
    params = mixer.estimate(tracks, mask)
    return mixer.render(tracks, params, mask), params


def device_of(mixer) -> torch.device:
    """Where a mixer computes: the device of a ``torch.nn.Module``'s first parameter or buffer, else the CPU."""
    if isinstance(mixer, torch.nn.Module):
        for t in mixer.parameters():
            return t.device
        for t in mixer.buffers():
            return t.device
    return torch.device("cpu")
