"""The Differentiable Mixing Console (taught in ``notebooks/12_models.ipynb``, trained in ``13_training``).

Parameter estimation after Steinmetz et al. (ICASSP 2021; thesis ch. 5): one network looks at every
track, predicts that track's console parameters, and a differentiable console renders the mix, so the
network can be trained with a loss on the *audio* of the mix:

    e_i = Encoder(x_i)                      shared weights; log-mel CNN + the track's level (one per track)
    c   = sum_i m_i e_i / sum_i m_i         context: masked mean over the real tracks (m_i = mask)
    p_i = sigmoid(MLP([e_i, c]))            post-processor (PReLU, dropout): normalised [0, 1] parameters
    q   = sigmoid(MLP_bus(c))               bus parameters (full console only)
    y   = Console(x, p, q)                  stereo mix (B, 2, T)

Swapping two input tracks swaps their embeddings and parameters and leaves ``c``, ``q`` and the mix
unchanged (permutation equivariance; padded tracks are never encoded, so any count up to
``max_tracks`` works). The last layers start at the console's neutral settings (0 dB, centre, flat EQ,
no compression), so an untrained DMC is a plain mono-compatible sum rather than a random mix.

Consoles (``console=``, ``backend=``):

- ``"basic"``: gain and pan per track (the thesis' DMC), ``gain -> pan`` with the -4.5 dB law.
- ``"full"``, ``backend="dsp"``: the whole :func:`automix_lite.dsp.mix` console (gain, high-pass,
  parametric EQ, compressor, pan, reverb send per track; reverb T60, return and master gain on the bus),
  the console the bundled engineer mixes with.
- ``"full"``, ``backend="proxy"``: ``gain -> neural proxy of EQ -> compressor -> reverb -> pan`` per track,
  with the frozen channel-chain TCN of chapter 2.4 (``models.proxy``); the proxy's 22 parameters plus
  gain and pan per track, no bus.

The log-mel front end is computed with torch alone (:func:`mel_filterbank`, HTK mel scale). Smaller than the
thesis' model (an AudioSet-pretrained VGGish encoder and a post-processor of three 2048-unit layers, sec. 5.2.1):
a four-block CNN trained from scratch (or pretrained on role classification, ``train.pretrain_encoder``) and
two hidden layers of ``hidden`` units, so that it trains on a CPU.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .._checks import check_multitrack, check_sample_rate
from ..dsp.console import (BUS_NAMES, DEFAULT_N_PEAKS, DEFAULT_PAN_LAW, SPEC_BY_NAME, mix, param_names,
                           params_from_normalized, peak_cutoff_defaults, unpack_params)
from ..dsp.panning import db_to_gain, pan_gains
from ..parameters import MixParams

__all__ = ["mel_filterbank", "LogMel", "TrackEncoder", "BasicConsole", "DSPConsole", "ProxyConsole", "DMC"]


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, f_min: float = 30.0,
                   f_max: Optional[float] = None) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` on the HTK mel scale, peak 1 (``librosa.filters.mel(htk=True, norm=None)``)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2; got f_min={f_min}, f_max={f_max}.")

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(f_min), mel(f_max), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    return torch.from_numpy(np.maximum(0.0, np.minimum(lower, upper))).float()


class LogMel(nn.Module):
    """``(M, T)`` mono audio -> ``(M, 1, n_mels, frames)`` log-mel power in dB / 20 (floor -100 dB).

    Hann-windowed STFT (``n_fft``, ``hop``, centred). The level is kept (no per-item normalisation): how
    loud a track is matters for the gain the console must set.
    """

    def __init__(self, sample_rate: float = 44100, n_fft: int = 2048, hop: int = 1024, n_mels: int = 64):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fb", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.fb, power) / (self.n_fft / 4)  # a full-scale sine peaks near 0 dB
        return (10 * torch.log10(mel + 1e-10) / 20).unsqueeze(1)


class TrackEncoder(nn.Module):
    """One track ``(M, T)`` -> embedding ``(M, dim + 1)``: a log-mel CNN plus the track's RMS level (dBFS / 20).

    Four blocks of 3x3 convolution, BatchNorm, ReLU and 2x2 max-pooling (``widths``), global average and
    max pooling, a linear layer to ``dim``; the level is appended so that gains can be read directly.
    """

    def __init__(self, sample_rate: float = 44100, dim: int = 128, widths: Sequence[int] = (16, 32, 64, 128),
                 n_mels: int = 64, n_fft: int = 2048, hop: int = 1024):
        super().__init__()
        self.frontend = LogMel(sample_rate, n_fft, hop, n_mels)
        layers, w_in = [], 1
        for w in widths:
            layers += [nn.Conv2d(w_in, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            w_in = w
        self.cnn = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * w_in, dim)
        self.dim = dim + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn(self.frontend(x))
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        level = 10 * torch.log10(x.square().mean(-1, keepdim=True) + 1e-10) / 20
        return torch.cat([self.proj(h), level], 1)


def _logit(p: float) -> float:
    p = min(max(p, 0.02), 0.98)
    return math.log(p / (1 - p))


class BasicConsole(nn.Module):
    """Gain and pan per track: ``y = sum_i pan(10^(g_i/20) x_i)`` with ``law`` (default -4.5 dB).

    The same result as :func:`automix_lite.dsp.mix` with every other parameter neutral and no reverb.
    """

    kind = "basic"  # the console of automix_lite.parameters that renders these parameters
    track_names = ("gain_db", "pan")
    bus_names: tuple = ()

    def __init__(self, sample_rate: float = 44100, pan_law: str = DEFAULT_PAN_LAW):
        super().__init__()
        self.sample_rate, self.pan_law = check_sample_rate(sample_rate), pan_law

    def neutral(self) -> tuple:
        """Normalised neutral settings ``(track (P,), bus (Q,))``: 0 dB, centre."""
        return [SPEC_BY_NAME["gain_db"].to_normalized(torch.tensor(0.0)).item(), 0.5], []

    def to_params(self, track: torch.Tensor, bus: torch.Tensor) -> dict:
        """Normalised ``track (B, N, 2)`` -> ``{"gain_db": (B, N), "pan": (B, N)}`` in real units."""
        return params_from_normalized({"gain_db": track[..., 0], "pan": track[..., 1]})

    def forward(self, tracks: torch.Tensor, params: dict, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        left, right = pan_gains(params["pan"], self.pan_law)
        g = db_to_gain(params["gain_db"])
        if mask is not None:
            g = g * mask.to(g.dtype)
        return torch.stack([((g * left).unsqueeze(-1) * tracks).sum(1), ((g * right).unsqueeze(-1) * tracks).sum(1)], 1)


class DSPConsole(nn.Module):
    """The full mixing console of :func:`automix_lite.dsp.mix` (every ``SPECS`` parameter, ``n_peaks`` bands)."""

    kind = "full"
    bus_names = BUS_NAMES

    def __init__(self, sample_rate: float = 44100, n_peaks: int = DEFAULT_N_PEAKS, pan_law: str = DEFAULT_PAN_LAW):
        super().__init__()
        self.sample_rate, self.n_peaks, self.pan_law = check_sample_rate(sample_rate), n_peaks, pan_law
        self.track_names = param_names(n_peaks)[0]

    def neutral(self) -> tuple:
        cutoffs = peak_cutoff_defaults(self.n_peaks)
        track = []
        for col in self.track_names:
            name, _, band = col.partition("[")
            spec = SPEC_BY_NAME[name]
            value = cutoffs[int(band[:-1])] if name == "peak_cutoff_hz" else spec.default
            track.append(float(spec.to_normalized(torch.tensor(value))))
        send = SPEC_BY_NAME["reverb_send_db"]
        track[self.track_names.index("reverb_send_db")] = float(send.to_normalized(torch.tensor(-40.0)))
        bus = [float(SPEC_BY_NAME[n].to_normalized(torch.tensor(SPEC_BY_NAME[n].default))) for n in BUS_NAMES]
        return track, bus

    def to_params(self, track: torch.Tensor, bus: torch.Tensor) -> dict:
        return params_from_normalized(unpack_params(track, bus, self.n_peaks))

    def forward(self, tracks: torch.Tensor, params: dict, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return mix(tracks, self.sample_rate, params, mask=mask, pan_law=self.pan_law)


class ProxyConsole(nn.Module):
    """``gain -> proxy(EQ -> compressor -> reverb) -> pan`` per track, with a frozen channel-chain TCN.

    ``proxy``: a :class:`~automix_lite.models.TCN` from :func:`automix_lite.models.proxy.load_proxy`
    (default: the bundled checkpoint). Gradients flow through it to the audio and the parameters; its
    weights stay fixed. Parameters: ``gain_db``, ``pan`` and the proxy's 22 ``proxy.NAMES`` (normalised
    [0, 1] here, mapped to the proxy's [-1, 1]: ``MixParams.proxy_controls``).
    """

    kind = "proxy"
    bus_names: tuple = ()

    def __init__(self, sample_rate: float = 44100, proxy: Optional[nn.Module] = None, pan_law: str = DEFAULT_PAN_LAW):
        super().__init__()
        from . import proxy as proxy_module

        if check_sample_rate(sample_rate) != proxy_module.SAMPLE_RATE:
            raise ValueError(f"the neural proxy was trained at {proxy_module.SAMPLE_RATE} Hz; got sample_rate={sample_rate}.")
        self.sample_rate, self.pan_law = sample_rate, pan_law
        self.proxy = proxy_module.load_proxy() if proxy is None else proxy
        for p in self.proxy.parameters():
            p.requires_grad_(False)
        self.proxy.eval()
        self.chain_names = tuple(proxy_module.NAMES)
        self.track_names = ("gain_db", "pan") + self.chain_names
        self._bypass = proxy_module.bypass(torch.zeros(1, len(self.chain_names)))[0]
        self._denormalize = proxy_module.denormalize

    def train(self, mode: bool = True):
        super().train(mode)
        self.proxy.eval()  # BatchNorm statistics of the proxy stay frozen
        return self

    def neutral(self) -> tuple:
        basic, _ = BasicConsole.neutral(self)
        return basic + [(float(v) + 1) / 2 for v in self._bypass], []

    def to_params(self, track: torch.Tensor, bus: torch.Tensor) -> dict:
        out = BasicConsole.to_params(self, track[..., :2], bus)
        chain = track[..., 2:] * 2 - 1  # the proxy's [-1, 1] controls
        out.update(zip(self.chain_names, self._denormalize(chain.reshape(-1, len(self.chain_names)))
                       .reshape(*track.shape[:-1], -1).unbind(-1)))
        return out

    def forward(self, tracks: torch.Tensor, params, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, n, t = tracks.shape
        params = params if isinstance(params, MixParams) else MixParams(params, "proxy")
        chain = params.proxy_controls()
        x = (db_to_gain(params["gain_db"]).unsqueeze(-1) * tracks).reshape(b * n, 1, t)
        y = self.proxy(x, chain.reshape(b * n, -1).to(x.dtype), same_length=True).reshape(b, n, t)
        return BasicConsole.forward(self, y, {"gain_db": torch.zeros_like(params["gain_db"]), "pan": params["pan"]}, mask)


def _mlp(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.PReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class DMC(nn.Module):
    """Differentiable Mixing Console: ``forward(tracks (B, N, T), mask (B, N) bool)`` -> ``(mix (B, 2, T), params)``.

    ``params`` is a :class:`automix_lite.parameters.MixParams`: real-unit tensors ``(B, N)`` per track parameter (and
    ``(B,)`` per bus parameter), with ``params.controls = (track (B, N, P), bus (B, Q))``, the network's
    normalised outputs. ``console``:
    ``"basic"`` or ``"full"``; ``backend`` (full only): ``"dsp"`` or ``"proxy"`` (``proxy=`` a TCN, default
    the bundled one). ``max_tracks`` is the most tracks one call accepts (a model limit the CLI reports).

    A :class:`automix_lite.mixer.Mixer`: ``has_params`` is true, :meth:`estimate` and :meth:`render` split
    ``forward``; ``segment_seconds`` is the training segment length (set from the training config; ``None``
    for a model built by hand).
    """

    has_params = True
    segment_seconds: Optional[float] = None

    def __init__(self, console: str = "basic", backend: str = "dsp", sample_rate: int = 44100, max_tracks: int = 8,
                 dim: int = 128, widths: Sequence[int] = (16, 32, 64, 128), hidden: int = 256, dropout: float = 0.1,
                 n_mels: int = 64, proxy: Optional[nn.Module] = None):
        super().__init__()
        if console not in ("basic", "full"):
            raise ValueError(f"console must be 'basic' (gain, pan) or 'full' (gain, EQ, compressor, pan, reverb); got {console!r}.")
        if backend not in ("dsp", "proxy"):
            raise ValueError(f"backend must be 'dsp' or 'proxy'; got {backend!r}.")
        self.console_kind, self.backend, self.sample_rate, self.max_tracks = console, backend, sample_rate, int(max_tracks)
        if console == "basic":
            self.console = BasicConsole(sample_rate)
        elif backend == "dsp":
            self.console = DSPConsole(sample_rate)
        else:
            self.console = ProxyConsole(sample_rate, proxy)
        self.encoder = TrackEncoder(sample_rate, dim, widths, n_mels)
        d = self.encoder.dim
        n_track, n_bus = len(self.console.track_names), len(self.console.bus_names)
        self.post = _mlp([2 * d, hidden, hidden, n_track], dropout)
        self.bus_head = _mlp([d, hidden, n_bus], dropout) if n_bus else None
        track0, bus0 = self.console.neutral()
        with torch.no_grad():
            self.post[-1].weight.mul_(0.1)
            self.post[-1].bias.copy_(torch.tensor([_logit(v) for v in track0]))
            if self.bus_head is not None:
                self.bus_head[-1].weight.mul_(0.1)
                self.bus_head[-1].bias.copy_(torch.tensor([_logit(v) for v in bus0]))

    @property
    def track_names(self) -> tuple:
        return tuple(self.console.track_names)

    @property
    def bus_names(self) -> tuple:
        return tuple(self.console.bus_names)

    @property
    def n_params(self) -> int:
        """Trainable parameters (a frozen proxy does not count)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, tracks: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        mask = check_multitrack(tracks, self.max_tracks, mask)
        if mask is None:
            return torch.ones(tracks.shape[:2], dtype=torch.bool, device=tracks.device)
        if not bool(mask.any(1).all()):
            raise ValueError("every item needs at least one real (unmasked) track.")
        return mask

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> MixParams:
        """Predicted parameters (see the class docstring) without rendering the mix."""
        mask = self._check(tracks, mask)
        b, n, _ = tracks.shape
        emb = tracks.new_zeros(b, n, self.encoder.dim)
        emb[mask] = self.encoder(tracks[mask])  # padded tracks are never encoded
        w = mask.to(emb.dtype).unsqueeze(-1)
        context = (emb * w).sum(1) / w.sum(1)
        track = torch.sigmoid(self.post(torch.cat([emb, context.unsqueeze(1).expand_as(emb)], -1)))
        bus = torch.sigmoid(self.bus_head(context)) if self.bus_head is not None else track.new_zeros(b, 0)
        return MixParams(self.console.to_params(track, bus), self.console.kind, controls=(track, bus))

    def forward(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None):
        mask = self._check(tracks, mask)
        params = self.estimate(tracks, mask)
        return self.render(tracks, params, mask), params

    def render(self, tracks: torch.Tensor, params, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The console's mix of ``tracks`` with ``params`` (a :class:`~automix_lite.parameters.MixParams` as returned
        by ``estimate``, or a dict of the console's names in real units)."""
        return self.console(tracks, params, mask)
