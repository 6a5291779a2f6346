"""Mix-Wave-U-Net: mixing as direct transformation (taught in ``notebooks/12_models.ipynb``).

After Martinez-Ramirez, Stoller and Moffat (2021, "A deep learning approach to intelligent drum mixing
with the Wave-U-Net", JAES), the baseline of Steinmetz et al.'s DMC paper (2021), built on Stoller et al.'s
Wave-U-Net for source separation (2018): the tracks are
stacked as input channels (a fixed number, ``n_tracks``, silent rows for absent tracks) and the network
writes the stereo mix sample by sample. No console and no parameters: the network must learn gain,
panning, EQ, dynamics and reverb itself, and its output is not editable (the contrast to the DMC).

    down block i:  conv1d(k_down) -> LeakyReLU, keep as skip, then decimate by 2
    bottleneck:    conv1d(k_down) -> LeakyReLU
    up block i:    linear upsampling x2, concatenate skip i, conv1d(k_up) -> LeakyReLU
    output:        concatenate the input tracks, 1x1 conv -> 2 channels

Channels grow by ``growth`` per level (``channels + i * growth``). Convolutions are zero-padded to keep
lengths ("same"), so any input length works: ``forward`` pads the end to a multiple of ``2 ** depth``
and cuts the output back to the input length.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_multitrack

__all__ = ["MixWaveUNet"]


class MixWaveUNet(nn.Module):
    """``forward(tracks (B, n_tracks, T), mask (B, n_tracks) or None)`` -> stereo mix ``(B, 2, T)``.

    Fewer than ``n_tracks`` tracks are zero-padded; masked tracks are zeroed. ``depth`` levels of
    decimation by two; ``channels`` at the first level, ``+ growth`` per level.

    A :class:`automix_lite.mixer.Mixer` without parameters: ``has_params`` is false, :meth:`estimate` returns
    ``None`` and :meth:`render` ignores ``params`` (it is ``forward``). ``sample_rate`` is 44.1 kHz, the rate
    of the bundled data (set it on the instance for another); ``segment_seconds`` is ``None`` (any length).
    """

    has_params = False
    sample_rate = 44100
    segment_seconds: Optional[float] = None

    def __init__(self, n_tracks: int = 8, depth: int = 6, channels: int = 24, growth: int = 24,
                 kernel_down: int = 15, kernel_up: int = 5):
        super().__init__()
        for name, v in (("n_tracks", n_tracks), ("depth", depth), ("channels", channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}.")
        if kernel_down % 2 == 0 or kernel_up % 2 == 0:
            raise ValueError("kernel sizes must be odd so that 'same' padding is symmetric.")
        self.n_tracks, self.depth = n_tracks, depth
        self.max_tracks = n_tracks
        width = [channels + i * growth for i in range(depth + 1)]
        self.down = nn.ModuleList(
            nn.Conv1d(n_tracks if i == 0 else width[i - 1], width[i], kernel_down, padding=kernel_down // 2)
            for i in range(depth)
        )
        self.bottleneck = nn.Conv1d(width[depth - 1], width[depth], kernel_down, padding=kernel_down // 2)
        self.up = nn.ModuleList(
            nn.Conv1d(width[i + 1] + width[i], width[i], kernel_up, padding=kernel_up // 2)
            for i in reversed(range(depth))
        )
        self.output = nn.Conv1d(width[0] + n_tracks, 2, 1)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> None:
        """No parameters: the network writes the mix directly (checks the input all the same)."""
        check_multitrack(tracks, self.n_tracks, mask, "this Mix-Wave-U-Net")
        return None

    def render(self, tracks: torch.Tensor, params: Optional[dict] = None, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The mix ``(B, 2, T)``: :meth:`forward` (``params`` must be ``None`` or empty: there are none to apply)."""
        if params:
            raise ValueError("a Mix-Wave-U-Net writes the mix directly and takes no parameters; pass params=None.")
        return self(tracks, mask)

    def forward(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = check_multitrack(tracks, self.n_tracks, mask, "this Mix-Wave-U-Net")
        n, t = tracks.shape[1:]
        if mask is not None:
            tracks = tracks * mask.to(tracks.dtype).unsqueeze(-1)
        step = 2 ** self.depth
        x = F.pad(tracks, (0, (-t) % step, 0, self.n_tracks - n))
        inputs, skips, h = x, [], x
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
            h = h[..., ::2]
        h = F.leaky_relu(self.bottleneck(h), 0.2)
        for conv, skip in zip(self.up, reversed(skips)):
            h = F.interpolate(h, size=skip.shape[-1], mode="linear", align_corners=False)
            h = F.leaky_relu(conv(torch.cat([h, skip], 1)), 0.2)
        return self.output(torch.cat([h, inputs], 1))[..., :t]
