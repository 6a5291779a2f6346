"""Single-track effect style transfer (chapter 5.1, ``notebooks/17_style_transfer_track.ipynb``): a small
DeepAFx-ST-like model (Steinmetz et al. 2022) that listens to an input recording and a reference recording and
predicts the settings of an EQ -> compressor -> output-gain chain that make the input sound processed like the
reference; its self-supervised training data, its training family for the one training loop
(``automix train configs/style_track.json``), the three routes to gradients through the chain, and the
evaluation against baselines on held-out stems.

**The model** (:class:`StyleTransfer`). One *shared* encoder embeds both signals: a log-mel spectrogram
(:data:`N_FFT` 2048, hop 512, ``n_mels`` bands 30 Hz - 16 kHz at 44.1 kHz, in dB and scaled by 1/20), four 1-D
convolutions over time (kernel 3, ReLU, strides 1, 2, 2, 2) and temporal mean and standard-deviation pooling, then
a linear layer to an embedding ``e`` of ``embed_dim``, to which the mean and standard deviation over time of every log-mel band are appended
(a skip path: the long-term spectrum, which an EQ changes, and its spread). No level normalisation: the level is part of a style. A
controller MLP maps ``[e_x, e_r, e_r - e_x]`` to the 18 controls of the chain in [0, 1] (sigmoid), mapped to real
units by the ranges of :data:`automix_lite.style_optimise.TRACK_SPECS` (linear or logarithmic). Its last layer
starts at zero weights with the bias of the neutral chain (:data:`automix_lite.style_optimise.TRACK_START`), so
an untrained model leaves the input (almost) unchanged. Stereo signals are averaged to mono for the encoder (the
chain then processes both channels with the same settings). The encoder sees at most :data:`ENCODER_SECONDS` of
each signal (the central excerpt), resampled to 44.1 kHz; the chain runs at the input's own rate on all of it.

**The chain** (:func:`automix_lite.style_optimise.process_track`): ``dsp.parametric_eq`` (low shelf, three
peaking bands, high shelf) -> ``dsp.compressor`` (knee 6 dB) -> output gain. Rendered in training by one of
three routes (``route`` in the config; chapter 2.3):

- ``"autodiff"``: the differentiable DSP itself; exact gradients.
- ``"proxy"``: the bundled neural proxy (``proxy_channel``, a FiLM TCN of the EQ -> compressor -> reverb chain,
  frozen, its reverb bypassed, knee 6 dB, make-up 0; the input zero-padded by its receptive field) followed by
  the output gain; gradients through the network. Like DeepAFx-ST's proxy route, validation and inference use
  the real DSP with the predicted settings.
- ``"spsa"``: the chain as a black box (numpy in, numpy out, no autograd) with SPSA gradient estimates
  (:func:`automix_lite.gradients.spsa`, Spall 1992) on the [0, 1] controls: two extra renders per backward pass
  whatever the number of parameters (DeepAFx, Martinez Ramirez et al. 2021).

**Self-supervised data** (:func:`style_batch`). From one mono stem take two different (non-overlapping)
segments ``a`` and ``b`` of ``segment_seconds``, neither quieter than :data:`SILENCE_DB`; draw a random *style*
(:func:`sample_style`, fresh every item and every step) and process both with it: the reference is
``style(b)``, the target ``style(a)``. The input is ``a`` itself or, with probability ``corrupt_prob``,
``a`` through a random *corruption* (:func:`sample_corruption`: EQ gains within +-6 dB and a gain within +-6 dB,
compressor off), which the predicted chain must undo as well. The style distribution (:data:`STYLE_RANGES`) is
audible but sane: EQ gains within +-9 dB, peaking Q 0.5-2.4, threshold -36 to -6 dB, ratio 1-8, attack 1-50 ms,
release 30-500 ms, output gain +-6 dB. All draws come from one seeded ``torch.Generator``: training from
``seed + steps done``, validation from ``seed + 1`` on VAL stems, the results from ``seed`` 1234 on TEST stems.

**Loss**: the MR-STFT loss (:class:`automix_lite.losses.MRSTFTLoss` with FFT sizes 512, 1024, 2048, hops a
quarter of each, :func:`train_loss`) of the rendered output against the target (an audio loss), plus
``param_weight`` times the mean absolute error of the [0, 1] controls against the known style on the uncorrupted
items (0 by default and in the route comparison; the bundled model uses 0.5 to learn faster on a CPU budget). The same loss on the fixed VAL examples, always rendered by the real DSP, is the validation loss that steps
the plateau schedule.

**Evaluation** (:func:`evaluate_track`): on fixed TEST examples, the outputs of the unprocessed input
("corrupt"), the matching EQ (:func:`automix_lite.style_optimise.matching_eq`), training-free optimisation
(:func:`automix_lite.style_optimise.optimise_track`, gradient and CMA-ES) and trained models, scored against the
target in the layout of DeepAFx-ST's table (MR-STFT, loudness, spectral-centroid, crest-factor and RMS errors)
plus the parameter error against the known style (on the uncorrupted items, where the style *is* the answer).
"""

from __future__ import annotations

import math
import os
import time
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import style_optimise as so
from .. import train
from ..losses import MRSTFTLoss

__all__ = ["StyleTransfer", "SAMPLE_RATE", "ENCODER_SECONDS", "ROUTES", "STYLE_RANGES", "CORRUPTION_RANGES",
           "DEFAULT_CONFIG", "GROUPS", "sample_style", "sample_corruption", "style_batch", "train_loss",
           "render", "transfer", "build_model", "test_examples", "evaluate_track", "results_table", "METRICS",
           "FAMILIES", "read_results", "predict_controls", "route_gradients", "routes_table", "plot_architecture",
           "REFERENCE_ENCODERS"]

SAMPLE_RATE = 44100
"""The rate the encoder works at (inputs at other rates are resampled for it)."""
ENCODER_SECONDS = 10.0
"""At most this much of each signal (its central excerpt) is embedded by :func:`transfer`."""
N_FFT, HOP = 2048, 512
SILENCE_DB = -45.0
"""Training and test segments quieter than this (RMS, dBFS) are skipped."""
ROUTES = ("autodiff", "proxy", "spsa")
NAMES = so.TRACK_NAMES
N_CONTROLS = len(NAMES)

STYLE_RANGES = {
    # name: (low, high) of the [0, 1] control a style is drawn from, uniformly (log-scaled parameters
    # therefore log-uniformly); every name of TRACK_NAMES.
    "low_shelf_gain_db": (0.125, 0.875), "low_shelf_cutoff_hz": (0.0, 1.0),
    "peak_gain_db[0]": (0.125, 0.875), "peak_cutoff_hz[0]": (0.0, 1.0), "peak_q[0]": (0.0, 0.755),
    "peak_gain_db[1]": (0.125, 0.875), "peak_cutoff_hz[1]": (0.0, 1.0), "peak_q[1]": (0.0, 0.755),
    "peak_gain_db[2]": (0.125, 0.875), "peak_cutoff_hz[2]": (0.0, 1.0), "peak_q[2]": (0.0, 0.755),
    "high_shelf_gain_db": (0.125, 0.875), "high_shelf_cutoff_hz": (0.0, 1.0),
    "threshold_db": (0.4, 0.9), "ratio": (0.0, 0.6941), "attack_ms": (1 / 3, 0.8967), "release_ms": (0.2386, 0.8495),
    "output_gain_db": (0.375, 0.625),
}
"""Where random styles are drawn, as [0, 1] controls: EQ gains +-9 dB, peaking Q 0.5-2.4, threshold -36..-6 dB,
ratio 1-8, attack 1-50 ms, release 30-500 ms, output gain +-6 dB (cutoffs over their whole ranges)."""

CORRUPTION_RANGES = {**{n: (0.25, 0.75) for n in NAMES if "gain_db" in n and n != "output_gain_db"},
                     **{n: STYLE_RANGES[n] for n in NAMES if "cutoff" in n or "_q[" in n},
                     "threshold_db": (1.0, 1.0), "ratio": (0.0, 0.0), "attack_ms": (0.5, 0.5),
                     "release_ms": (0.5, 0.5), "output_gain_db": (0.375, 0.625)}
"""The random corruption of an input: EQ gains +-6 dB at random cutoffs and Q, compressor off (ratio 1),
a gain of +-6 dB."""

GROUPS = {"eq": [i for i, n in enumerate(NAMES) if not n.startswith(("threshold", "ratio", "attack", "release",
                                                                        "output"))],
          "compressor": [NAMES.index(n) for n in ("threshold_db", "ratio", "attack_ms", "release_ms")],
          "gain": [NAMES.index("output_gain_db")]}
"""Column indices of the chain's parameter groups (for the parameter error)."""


REFERENCE_ENCODERS = ("learned", "fx_encoder")
"""What embeds input and reference for the controller: the model's own spectrogram encoder, trained with it
(``"learned"``, the bundled model), or the frozen bundled ``fx_encoder`` (chapter 5.3)."""


def _fail(message: str):
    raise ValueError(message)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class StyleTransfer(nn.Module):
    """Shared spectrogram encoder + controller (see the module docstring).

    ``embed(x)``: ``(B, C, T)`` at 44.1 kHz -> ``(B, embed_dim + 2 n_mels)``; ``controls(x, reference)`` -> ``(B, 18)`` in
    [0, 1] in the order of ``style_optimise.TRACK_NAMES``; ``params(controls)`` -> real units ``(B, 18)``;
    ``forward(x, reference)`` -> ``(output, controls)`` with the output rendered by the differentiable DSP at
    44.1 kHz (``x``'s shape)."""

    def __init__(self, n_mels: int = 64, channels: int = 96, embed_dim: int = 128, hidden: int = 256,
                 reference_encoder: str = "learned"):
        super().__init__()
        import librosa

        if reference_encoder not in REFERENCE_ENCODERS:
            _fail(f"reference_encoder must be one of {', '.join(map(repr, REFERENCE_ENCODERS))}; got {reference_encoder!r}.")
        self.reference_encoder = reference_encoder

        for name, v in (("n_mels", n_mels), ("channels", channels), ("embed_dim", embed_dim), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                _fail(f"{name} must be a whole number >= 1; got {v!r}.")
        self.n_mels, self.channels, self.embed_dim, self.hidden = n_mels, channels, embed_dim, hidden
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, fmin=30.0, fmax=16000.0)
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        layers, c_in = [], n_mels
        for stride in (1, 2, 2, 2):
            layers += [nn.Conv1d(c_in, channels, 3, stride=stride, padding=1), nn.ReLU()]
            c_in = channels
        self.conv = nn.Sequential(*layers)
        self.project = nn.Linear(2 * channels, embed_dim)
        width = embed_dim + 2 * n_mels
        if reference_encoder == "fx_encoder":  # chapter 5.3's contrastive encoder, frozen, in place of the learned one
            from .. import pretrained

            self.fx = pretrained.load("fx_encoder").eval()
            for p in self.fx.parameters():
                p.requires_grad_(False)
            del self.conv, self.project
            width = self.fx.dim
        self.controller = nn.Sequential(nn.Linear(3 * width, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                        nn.ReLU(), nn.Linear(hidden, N_CONTROLS))
        start = so._norm(so.TRACK_SPECS, [so.TRACK_START[n] for n in NAMES]).float().clamp(1e-3, 1 - 1e-3)
        last = self.controller[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.log(start / (1 - start)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel frames ``(B, n_mels, frames)`` of ``x`` ``(B, C, T)`` (channels averaged), dB / 20."""
        m = x.mean(1)
        spec = torch.stft(m, N_FFT, HOP, window=self.window.to(m.dtype), return_complex=True).abs().square()
        mel = torch.matmul(self.mel.to(m.dtype), spec)
        return (10 * torch.log10(mel + 1e-8) + 40.0) / 20.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, embed_dim + 2 n_mels)``: the learned embedding and, as a skip path, the mean and
        standard deviation over time of each log-mel band (the long-term spectrum and its spread). With
        ``reference_encoder="fx_encoder"``: the frozen bundled fx_encoder's ``(B, 64)`` unit vectors instead (no
        gradient reaches it; mono input duplicated to both sides)."""
        if self.reference_encoder == "fx_encoder":
            self.fx.eval()
            with torch.no_grad():
                x2 = x.float().expand(-1, 2, -1) if x.shape[1] == 1 else x.float()
                return self.fx(x2).to(x.dtype)
        f = self.features(x)
        h = self.conv(f)
        pooled = torch.cat([h.mean(-1), h.std(-1, unbiased=False)], -1)
        return torch.cat([self.project(pooled), f.mean(-1), f.std(-1, unbiased=False)], -1)

    def controls(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        both = self.embed(torch.cat([x, reference])) if x.shape == reference.shape else None
        ex, er = (both.chunk(2) if both is not None else (self.embed(x), self.embed(reference)))
        return torch.sigmoid(self.controller(torch.cat([ex, er, er - ex], -1)))

    @staticmethod
    def params(controls: torch.Tensor) -> torch.Tensor:
        """[0, 1] controls ``(B, 18)`` -> real units (``style_optimise.TRACK_SPECS`` ranges)."""
        return so._real(so.TRACK_SPECS, controls)

    def forward(self, x: torch.Tensor, reference: torch.Tensor):
        c = self.controls(x, reference)
        return so._chain(x, SAMPLE_RATE, self.params(c)), c


def build_model(cfg: dict) -> StyleTransfer:
    """The :class:`StyleTransfer` of a ``style_track`` config (``n_mels``, ``channels``, ``embed_dim``,
    ``hidden``, ``reference_encoder``)."""
    return StyleTransfer(cfg["n_mels"], cfg["channels"], cfg["embed_dim"], cfg["hidden"],
                         cfg.get("reference_encoder", "learned"))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _draw(ranges: Mapping, batch: int, g: torch.Generator) -> torch.Tensor:
    low = torch.tensor([ranges[n][0] for n in NAMES], dtype=torch.float64)
    high = torch.tensor([ranges[n][1] for n in NAMES], dtype=torch.float64)
    return low + (high - low) * torch.rand(batch, N_CONTROLS, generator=g, dtype=torch.float64)


def sample_style(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Random styles as [0, 1] controls ``(batch, 18)`` (float64), uniform within :data:`STYLE_RANGES`."""
    return _draw(STYLE_RANGES, batch, generator)


def sample_corruption(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Random corruptions as [0, 1] controls ``(batch, 18)`` (float64), within :data:`CORRUPTION_RANGES`."""
    return _draw(CORRUPTION_RANGES, batch, generator)


def _segments(stems, n: int, g: torch.Generator, tries: int = 100) -> tuple:
    """Two non-overlapping segments of ``n`` samples of one stem, both louder than :data:`SILENCE_DB`."""
    for _ in range(tries):
        s = stems[int(torch.randint(len(stems), (1,), generator=g))]
        if s.shape[-1] < 2 * n:
            continue
        a = int(torch.randint(s.shape[-1] - 2 * n + 1, (1,), generator=g))
        b = a + n + int(torch.randint(s.shape[-1] - a - 2 * n + 1, (1,), generator=g))
        if bool(torch.rand((), generator=g) < 0.5):  # the reference before or after the input
            a, b = b, a
        xa, xb = s[a:a + n], s[b:b + n]
        if min(float(xa.square().mean()), float(xb.square().mean())) > 10 ** (SILENCE_DB / 10):
            return xa, xb
    _fail(f"found no two segments of {n} samples louder than {SILENCE_DB} dBFS in one stem in {tries} tries; "
          "give longer or louder stems.")


def style_batch(stems, batch_size: int, n_samples: int, generator: torch.Generator,
                corrupt_prob: float = 0.5, sample_rate: float = SAMPLE_RATE) -> dict:
    """A batch of self-supervised examples (see the module docstring), deterministic given ``generator``.

    ``stems``: mono ``(T,)`` tensors (e.g. ``train.proxy_stems("train")``). Returns ``{"x": input, "reference",
    "target", "clean": the unprocessed segment a}`` (each ``(B, 1, n_samples)`` float32), ``"style"`` and
    ``"corruption"`` (``(B, 18)`` [0, 1] controls, float64) and ``"corrupted"`` (``(B,)`` bool). ``target`` is
    exactly ``style_optimise._chain(clean, sample_rate, real(style))``; ``reference`` the same chain on segment
    b."""
    if not stems:
        _fail("stems is empty: pass a list of mono (T,) tensors, e.g. train.proxy_stems('train').")
    pairs = [_segments(stems, n_samples, generator) for _ in range(batch_size)]
    a = torch.stack([p[0] for p in pairs]).unsqueeze(1).float()
    b = torch.stack([p[1] for p in pairs]).unsqueeze(1).float()
    style = sample_style(batch_size, generator)
    corruption = sample_corruption(batch_size, generator)
    corrupted = torch.rand(batch_size, generator=generator) < corrupt_prob
    with torch.no_grad():
        real = so._real(so.TRACK_SPECS, style.float())
        target = so._chain(a, sample_rate, real)
        reference = so._chain(b, sample_rate, real)
        x = a.clone()
        if bool(corrupted.any()):
            idx = corrupted.nonzero()[:, 0]
            x[idx] = so._chain(a[idx], sample_rate, so._real(so.TRACK_SPECS, corruption[idx].float()))
    return {"x": x, "reference": reference, "target": target, "clean": a, "style": style,
            "corruption": corruption, "corrupted": corrupted}


def train_loss() -> MRSTFTLoss:
    """The training and evaluation MR-STFT loss: FFT sizes 512, 1024, 2048 with Hann windows of the same length
    and hops of a quarter (:class:`automix_lite.losses.MRSTFTLoss`)."""
    return MRSTFTLoss(fft_sizes=(512, 1024, 2048), hop_sizes=(128, 256, 512), win_lengths=(512, 1024, 2048))


# --------------------------------------------------------------------------------------------
# The three routes
# --------------------------------------------------------------------------------------------


def _proxy_values(real: torch.Tensor) -> torch.Tensor:
    """The proxy's 22 real-unit parameters (``proxy.NAMES``) for the chain settings ``real`` (B, 18): knee 6 dB,
    make-up 0, reverb off (wet 0; its T60 and damping at mid-range values)."""
    from . import proxy

    col = {n: real[:, i] for i, n in enumerate(NAMES)}
    fixed = {"knee_db": so.KNEE_DB, "makeup_db": 0.0, "reverb_wet": 0.0}
    out = []
    for s in proxy.SPECS:
        if s.name in col:
            out.append(col[s.name])
        else:
            v = fixed.get(s.name, math.sqrt(s.low * s.high) if s.scale == "log" else 0.5 * (s.low + s.high))
            out.append(torch.full_like(real[:, 0], float(v)))
    return torch.stack(out, -1)


class _ProxyRoute:
    """The chain through the frozen neural proxy (eval mode, no gradients to its weights) + the output gain."""

    def __init__(self, device):
        from . import proxy

        self.net = proxy.load_proxy().to(device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.rf = self.net.receptive_field

    def __call__(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        from . import proxy

        real = so._real(so.TRACK_SPECS, controls)
        p = proxy.normalize(_proxy_values(real)).to(x.dtype)
        left = (self.rf - 1) // 2
        xp = torch.nn.functional.pad(x, (left, self.rf - 1 - left))
        self.net.eval()
        y = self.net(xp, p)
        from ..dsp import db_to_gain

        return y * db_to_gain(real[:, NAMES.index("output_gain_db")]).view(-1, 1, 1)


def _black_box_chain(sample_rate: float):
    def chain(x: np.ndarray, controls: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(np.clip(controls, 0.0, 1.0))
        with torch.no_grad():
            return so._chain(torch.from_numpy(x), sample_rate, so._real(so.TRACK_SPECS, c)).numpy()

    chain.__name__ = "eq_compressor_chain"
    return chain


def render(x: torch.Tensor, controls: torch.Tensor, route: str = "autodiff", sample_rate: float = SAMPLE_RATE,
           proxy_route=None, spsa_effect=None) -> torch.Tensor:
    """``x`` ``(B, 1, T)`` through the chain at the [0, 1] ``controls`` ``(B, 18)`` by ``route`` (:data:`ROUTES`;
    ``proxy_route`` / ``spsa_effect``: the prepared routes of a training part, built on first use otherwise)."""
    if route == "autodiff":
        return so._chain(x, sample_rate, so._real(so.TRACK_SPECS, controls))
    if route == "proxy":
        return (proxy_route or _ProxyRoute(x.device))(x, controls)
    if route == "spsa":
        from ..gradients import spsa

        effect = spsa_effect or spsa(_black_box_chain(sample_rate), eps=0.01, seed=0)
        return effect(x.detach(), controls)
    _fail(f"route must be one of {', '.join(map(repr, ROUTES))}; got {route!r}.")


# --------------------------------------------------------------------------------------------
# Training family
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "model": "style_track", "route": "autodiff",
    "n_mels": 64, "channels": 96, "embed_dim": 128, "hidden": 256, "reference_encoder": "learned",
    "steps": 2000, "batch_size": 8, "segment_seconds": 1.5, "corrupt_prob": 0.5,
    "lr": 1e-3, "lr_factor": 0.5, "lr_patience": 3, "grad_clip": 1.0,
    "param_weight": 0.0, "spsa_eps": 0.01, "spsa_samples": 1,
    "log_every": 25, "val_every": 100, "val_examples": 16, "max_seconds": None,
    "seed": 0, "device": "auto", "threads": None,
}
"""The keys of a ``"model": "style_track"`` config and their defaults. ``route``: :data:`ROUTES`;
``n_mels``/``channels``/``embed_dim``/``hidden``: the network; ``reference_encoder``: :data:`REFERENCE_ENCODERS`
(``"fx_encoder"``: the frozen bundled chapter 5.3 encoder embeds input and reference, only the controller is
trained); ``segment_seconds``: each of the two segments;
``corrupt_prob``: the share of corrupted inputs; ``param_weight``: add that multiple of the mean absolute
error of the [0, 1] controls against the known style, on the uncorrupted items of a batch (where the style is the
answer; 0: audio loss only); ``spsa_eps``/``spsa_samples``: the SPSA step on the [0, 1]
controls and the perturbations averaged per step (route ``"spsa"``); the rest as the proxy's (Adam, plateau
schedule on the validation loss every ``val_every`` steps, ``max_seconds`` per session)."""


def _problems(cfg: dict) -> list:
    problems = train._value_problems(
        cfg, {"model": ("style_track",), "route": ROUTES, "reference_encoder": REFERENCE_ENCODERS},
        {"n_mels": 8, "channels": 1, "embed_dim": 1, "hidden": 1, "steps": 1, "batch_size": 1, "lr_patience": 0,
         "log_every": 1, "val_every": 1, "val_examples": 1, "seed": 0, "spsa_samples": 1},
        {"segment_seconds": (0.25, 10, True), "corrupt_prob": (0, 1, True), "lr": (0, None, False),
         "lr_factor": (0, 1, False), "grad_clip": (0, None, False), "spsa_eps": (0, 0.25, False),
         "param_weight": (0, None, True)})
    if cfg["lr_factor"] == 1:
        problems.append("lr_factor must be below 1 (the plateau schedule multiplies the learning rate by it); got 1")
    v = cfg["max_seconds"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
        problems.append(f"max_seconds must be null (no limit) or a positive number of seconds; got {v!r}")
    return problems


class _StylePart(train.SampledPart):
    """The style model's pieces of the training loop (the methods of ``train._ProxyPart``): fresh
    :func:`style_batch` examples of TRAIN stems every step from one generator (seed ``seed + done``; carried
    through ``last.pt``), the MR-STFT loss of the output rendered by ``route``, the same loss on fixed VAL examples
    (seed ``seed + 1``) rendered by the DSP, the plateau schedule stepped on it every ``val_every`` steps."""

    loss_name = "MR-STFT loss (output vs target)"

    def __init__(self, cfg: dict, model: nn.Module, device, done: int = 0):
        self.cfg, self.device = cfg, device
        self.n = round(cfg["segment_seconds"] * SAMPLE_RATE)
        self.stems = train.proxy_stems("train")
        self.generator = torch.Generator().manual_seed(cfg["seed"] + done)
        self.val = style_batch(train.proxy_stems("val"), cfg["val_examples"], self.n,
                               torch.Generator().manual_seed(cfg["seed"] + 1), cfg["corrupt_prob"])
        self.loss_fn = train_loss().to(device)
        self.route = cfg["route"]
        self.proxy = _ProxyRoute(device) if self.route == "proxy" else None
        self.spsa = None
        if self.route == "spsa":
            from ..gradients import spsa

            self.spsa = spsa(_black_box_chain(SAMPLE_RATE), eps=cfg["spsa_eps"], n_samples=cfg["spsa_samples"],
                             seed=cfg["seed"] + done)
        self.extra = {"names": list(NAMES)}

    def describe(self, model, device, start: int, end: int) -> str:
        c = self.cfg
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return (f"style_track: route={c['route']} params={n_params} device={device} batch={c['batch_size']} x 2 "
                f"segments of {c['segment_seconds']:g} s, steps {start + 1}-{end}")

    def batch(self, run, step: int) -> dict:
        return style_batch(self.stems, self.cfg["batch_size"], self.n, self.generator, self.cfg["corrupt_prob"])

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        x, r = batch["x"].to(self.device), batch["reference"].to(self.device)
        c = net.controls(x, r)
        y = render(x, c, self.route, SAMPLE_RATE, self.proxy, self.spsa)
        loss = self.loss_fn(y, batch["target"].to(self.device))
        keep = ~batch["corrupted"].to(self.device)
        if self.cfg["param_weight"] and bool(keep.any()):
            style = batch["style"].to(device=self.device, dtype=c.dtype)
            loss = loss + self.cfg["param_weight"] * (c[keep] - style[keep]).abs().mean()
        return loss

    def validate(self, run) -> float:
        model = run.model
        model.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(0, self.cfg["val_examples"], 8):
                sl = slice(i, i + 8)
                x, r = self.val["x"][sl].to(self.device), self.val["reference"][sl].to(self.device)
                y = render(x, model.controls(x, r))
                total += float(self.loss_fn(y, self.val["target"][sl].to(self.device))) * x.shape[0]
        return total / self.cfg["val_examples"]

    def state(self) -> dict:
        return {**super().state(), "spsa_rng": None if self.spsa is None else self.spsa.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self.spsa is not None and state.get("spsa_rng") is not None:
            self.spsa.rng.bit_generator.state = state["spsa_rng"]


def _loaded(data: dict, path: str) -> None:
    names = data["extra"].get("names") if isinstance(data["extra"], dict) else None
    if names is not None and list(names) != list(NAMES):
        _fail(f"{path} is a style_track model of the chain parameters {names}, not style_optimise.TRACK_NAMES; "
              "retrain it with this version.")


FAMILIES = {"style_track": train.Family(DEFAULT_CONFIG, _problems, build_model, _StylePart,
                                       state_keys=("data_rng", "spsa_rng"), loaded=_loaded)}
"""This module's training family for ``automix_lite.train`` (``SAMPLED_FAMILIES["style_track"]``)."""


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


def _excerpt(a: torch.Tensor, sr: float) -> torch.Tensor:
    """``a`` (1, C, T) at ``sr`` -> its central :data:`ENCODER_SECONDS` at 44.1 kHz, float32."""
    from ..audio import resample

    n = int(ENCODER_SECONDS * sr)
    if a.shape[-1] > n:
        start = (a.shape[-1] - n) // 2
        a = a[..., start:start + n]
    a = a.float()
    if round(sr) != SAMPLE_RATE:
        a = resample(a, round(sr), SAMPLE_RATE)
    return a


def transfer(model: StyleTransfer, x, reference, sample_rate) -> tuple:
    """Process ``x`` so that it sounds processed like ``reference``: one pass of the trained ``model``.

    ``x``, ``reference``: ``(samples,)`` or ``(channels, samples)`` (mono or stereo; also ``(1, C, T)``), float
    tensors or numpy arrays, both at ``sample_rate`` Hz (at least 8000), at least
    ``style_optimise.MIN_SECONDS`` long, finite and not silent (each refused with a ``ValueError`` that says
    why). The encoder sees the central :data:`ENCODER_SECONDS` of each (channels averaged), resampled to
    44.1 kHz; the chain processes all of ``x`` at its own rate. Returns ``(y, params)``: ``y`` with ``x``'s shape
    and type (tensor or array; float64 stays float64) and ``params``, the predicted settings in real units
    (``style_optimise.TRACK_NAMES`` -> float), which ``style_optimise.process_track(x, sample_rate, params)``
    renders to ``y``."""
    if not isinstance(model, StyleTransfer):
        _fail(f"model must be a StyleTransfer (e.g. pretrained.load('style_track')); got {type(model).__name__}.")
    sr = so._rate(sample_rate)
    is_numpy = isinstance(x, np.ndarray)
    shape = tuple(x.shape) if isinstance(x, (torch.Tensor, np.ndarray)) else None
    xt = so._audio(x, "x", sr)
    rt = so._audio(reference, "reference", sr)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        c = model.controls(_excerpt(xt, sr).to(device), _excerpt(rt, sr).to(device)).double().cpu()
    real = so._real(so.TRACK_SPECS, c)[0]
    params = {n: float(v) for n, v in zip(NAMES, real)}
    with torch.no_grad():
        y = so.process_track(xt, sr, params).to(xt.dtype)
    y = y.reshape(shape)
    return (y.numpy() if is_numpy else y), params


def predict_controls(model: StyleTransfer, x: torch.Tensor, reference: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """The model's [0, 1] controls ``(B, 18)`` (float64) for batches ``x``, ``reference`` ``(B, C, T)`` at
    44.1 kHz, in eval mode, chunked."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            out.append(model.controls(x[i:i + chunk].float().to(device),
                                      reference[i:i + chunk].float().to(device)).double().cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

METRICS = ("mrstft", "loudness_lu", "centroid_hz", "crest_db", "rms_db", "param_eq", "param_comp", "seconds")
"""The columns of :func:`evaluate_track`'s rows: MR-STFT (:func:`train_loss`, per example) to the target;
absolute errors of integrated loudness (LU, BS.1770), mean spectral centroid (Hz), crest factor (dB, peak over
RMS) and RMS level (dB); mean absolute error of the [0, 1] controls against the known style for the EQ (13) and
the compressor (4) groups, on the uncorrupted examples; seconds per example."""


def test_examples(n: int = 48, seconds: float = 1.5, seed: int = 1234, split: str = "test",
                  corrupt_prob: float = 0.5) -> dict:
    """``n`` fixed examples (:func:`style_batch`) of ``split``'s stems (TEST by default: held out from training
    and validation), seeded."""
    if split not in ("train", "val", "test"):
        _fail(f"split must be 'train', 'val' or 'test'; got {split!r}.")
    return style_batch(train.proxy_stems(split), n, round(seconds * SAMPLE_RATE), torch.Generator().manual_seed(seed),
                       corrupt_prob)


def _centroid(x: np.ndarray, sr: float) -> float:
    """Mean spectral centroid (Hz) of 2048-sample Hann frames (hop 512) of ``x`` (T,), non-silent frames."""
    from numpy.lib.stride_tricks import sliding_window_view

    frames = sliding_window_view(x, N_FFT)[::HOP] * np.hanning(N_FFT)
    mag = np.abs(np.fft.rfft(frames, axis=-1))
    f = np.fft.rfftfreq(N_FFT, 1 / sr)
    w = mag.sum(-1)
    keep = w > 1e-6 * max(w.max(), 1e-12)
    return float(((mag[keep] * f).sum(-1) / w[keep]).mean()) if keep.any() else 0.0


def _signal_stats(y: torch.Tensor, sr: float) -> dict:
    """Per item of ``y`` (B, 1, T): loudness (LUFS), spectral centroid (Hz), crest (dB), RMS (dB)."""
    import warnings

    from ..audio import loudness_lufs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lufs = loudness_lufs(y.double(), sr).numpy()
    a = y.double().numpy()[:, 0]
    rms = np.sqrt((a ** 2).mean(-1)) + 1e-12
    peak = np.abs(a).max(-1) + 1e-12
    return {"lufs": np.maximum(lufs, -70.0), "centroid": np.array([_centroid(s, sr) for s in a]),
            "crest": 20 * np.log10(peak / rms), "rms": 20 * np.log10(rms)}


def _score(y: torch.Tensor, target: torch.Tensor, loss_fn, ts: dict) -> dict:
    mr = np.array([float(loss_fn(y[i:i + 1].float(), target[i:i + 1].float())) for i in range(y.shape[0])])
    s = _signal_stats(y, SAMPLE_RATE)
    return {"mrstft": mr, "loudness_lu": np.abs(s["lufs"] - ts["lufs"]),
            "centroid_hz": np.abs(s["centroid"] - ts["centroid"]), "crest_db": np.abs(s["crest"] - ts["crest"]),
            "rms_db": np.abs(s["rms"] - ts["rms"])}


def evaluate_track(models: Optional[Mapping] = None, n: int = 48, seed: int = 1234, seconds: float = 1.5,
                   split: str = "test", optimise_cases: int = 0, gradient_steps: int = 80, cma_evaluations: int = 240,
                   matching_eq: bool = True, examples: Optional[dict] = None, return_outputs: bool = False):
    """Score the baselines and ``models`` (``{label: StyleTransfer}``) on ``n`` fixed examples of ``split``
    (:func:`test_examples`, ``seed``, ``seconds``) against the targets.

    Methods, one row each: ``"corrupt"`` (the input unprocessed), ``"matching EQ"`` (when ``matching_eq``),
    every model (its settings rendered by the DSP), and with ``optimise_cases > 0`` the training-free searches
    of :func:`automix_lite.style_optimise.optimise_track` (style objective; ``"optimise: gradient"`` with
    ``gradient_steps`` Adam steps, ``"optimise: CMA-ES"`` with ``cma_evaluations``) on the first
    ``optimise_cases`` examples (their rows say ``n``), followed by every model's row on those examples.
    Returns a list of rows ``{"method", "n", **METRICS}``
    (means over the examples; ``param_*`` ``None`` for methods without chain settings), or ``(rows, outputs)``
    with ``return_outputs`` (``{method: (B, 1, T) outputs}``, and ``"params:" + method`` the [0, 1] controls).
    """
    ex = examples if examples is not None else test_examples(n, seconds, seed, split)
    n = ex["x"].shape[0]
    loss_fn = train_loss()
    ts = _signal_stats(ex["target"], SAMPLE_RATE)
    clean = ~ex["corrupted"].numpy()
    rows, outputs, corrupt_mr = [], {}, None

    def add(method, y, seconds_each, controls=None, count=None):
        count = y.shape[0] if count is None else count
        tsub = {k: v[:count] for k, v in ts.items()}
        sc = _score(y, ex["target"][:count], loss_fn, tsub)
        row = {"method": method, "n": count, **{k: float(np.mean(v)) for k, v in sc.items()},
               "param_eq": None, "param_comp": None, "seconds": seconds_each,
               "corrupt_mrstft": float(np.mean(sc["mrstft"] if corrupt_mr is None else corrupt_mr[:count]))}
        if controls is not None:
            err = (controls - ex["style"][:count]).abs().numpy()
            ok = clean[:count]
            if ok.any():
                row["param_eq"] = float(err[ok][:, GROUPS["eq"]].mean())
                row["param_comp"] = float(err[ok][:, GROUPS["compressor"]].mean())
            outputs["params:" + method] = controls
        rows.append(row)
        outputs[method] = y

    add("corrupt", ex["x"], 0.0)
    corrupt_mr = _score(ex["x"], ex["target"], loss_fn, ts)["mrstft"]
    if matching_eq:
        t0 = time.time()
        y = torch.cat([so.matching_eq(ex["x"][i], ex["reference"][i], SAMPLE_RATE).unsqueeze(0) for i in range(n)])
        add("matching EQ", y, (time.time() - t0) / n)
    for label, model in (models or {}).items():
        t0 = time.time()
        c = predict_controls(model, ex["x"], ex["reference"])
        with torch.no_grad():
            y = so._chain(ex["x"].double(), SAMPLE_RATE, so._real(so.TRACK_SPECS, c)).float()
        add(label, y, (time.time() - t0) / n, c)
    k = min(int(optimise_cases), n)
    for method, steps in (("gradient", gradient_steps), ("cma", cma_evaluations)) if k else ():
        ys, cs, t0 = [], [], time.time()
        for i in range(k):
            y, params, _ = so.optimise_track(ex["x"][i], ex["reference"][i], SAMPLE_RATE, method=method, steps=steps)
            ys.append(y.float())
            cs.append(so._norm(so.TRACK_SPECS, [params[nm] for nm in NAMES]).view(1, -1))
        label = f"optimise: {'gradient' if method == 'gradient' else 'CMA-ES'} ({steps} {'steps' if method == 'gradient' else 'evaluations'})"
        add(label, torch.cat(ys), (time.time() - t0) / k, torch.cat(cs).clamp(0, 1), count=k)
    if k:  # the models on the same examples as the searches
        for label in list(models or {}):
            row = next(r for r in rows if r["method"] == label)
            add(f"{label} (first {k})", outputs[label][:k], row["seconds"], outputs["params:" + label][:k], count=k)
    return (rows, outputs) if return_outputs else rows


def results_table(rows: Sequence[Mapping], baseline: str = "corrupt") -> str:
    """A markdown table of :func:`evaluate_track`'s rows, with each row's MR-STFT change against the unprocessed
    input on the same examples (``corrupt_mrstft``; a row of fewer examples is compared on those)."""
    head = ("| method | n | MR-STFT | vs corrupt | loudness err (LU) | centroid err (Hz) | crest err (dB) | "
            "RMS err (dB) | param err EQ | param err comp | s / example |")
    lines = [head, "|" + "---|" * 11]

    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    for r in rows:
        change = "" if r["method"] == baseline else f"{100 * (r['mrstft'] / r['corrupt_mrstft'] - 1):+.0f} %"
        lines.append(f"| {r['method']} | {r['n']} | {r['mrstft']:.3f} | {change} | {r['loudness_lu']:.2f} | "
                     f"{r['centroid_hz']:.0f} | {r['crest_db']:.2f} | {r['rms_db']:.2f} | {f(r['param_eq'], '.3f')} | "
                     f"{f(r['param_comp'], '.3f')} | {r['seconds']:.3f} |")
    return "\n".join(lines)


RESULTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "benchmarks", "STYLE_TRACK_RESULTS.md")
"""Where ``benchmarks/style_track.py`` writes the results (a checkout's ``benchmarks/``)."""


def read_results(path: Optional[str] = None) -> Optional[dict]:
    """The machine-readable copy (the last JSON block) of ``benchmarks/STYLE_TRACK_RESULTS.md``, as written by
    ``benchmarks/style_track.py`` (``rows``, ``routes``, ``machine``, ...); ``None`` when the file is absent (an
    installed package without the repository)."""
    import json

    path = RESULTS_FILE if path is None else path
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        text = f.read()
    start = text.rfind("```json")
    if start < 0:
        _fail(f"{path} has no JSON block; write it again with `python benchmarks/style_track.py`.")
    end = text.index("```", start + 7)
    return json.loads(text[start + 7:end])


def route_gradients(x: torch.Tensor, target: torch.Tensor, controls: torch.Tensor, routes: Sequence[str] = ROUTES,
                    seed: int = 0) -> dict:
    """The gradient of the MR-STFT loss (:func:`train_loss`) of ``render(x, controls, route)`` against ``target``
    with respect to the [0, 1] ``controls`` ``(B, 18)``, by each route: ``{route: (gradient (B, 18), seconds,
    loss)}`` (SPSA: one perturbation, seeded). What the three routes of chapter 2.3 hand the optimiser."""
    from ..gradients import spsa

    loss_fn = train_loss()
    out = {}
    for route in routes:
        c = controls.detach().clone().float().requires_grad_(True)
        effect = spsa(_black_box_chain(SAMPLE_RATE), eps=0.01, seed=seed) if route == "spsa" else None
        t0 = time.perf_counter()
        loss = loss_fn(render(x.float(), c, route, SAMPLE_RATE, spsa_effect=effect), target.float())
        (g,) = torch.autograd.grad(loss, c)
        out[route] = (g, time.perf_counter() - t0, float(loss.detach()))
    return out


def routes_table(routes: Sequence[Mapping], corrupt: float) -> str:
    """A markdown table of the route comparison rows of ``benchmarks/style_track.py`` (:func:`read_results`'s
    ``routes``), ``corrupt`` the unprocessed input's test MR-STFT."""
    lines = ["| route | steps x batch | train wall (s) | train steps/s | s / step (measured alone) | non-finite losses | "
             "loss spread (last third, std/mean) | val first -> best | test MR-STFT | vs corrupt | param err EQ / comp |",
             "|" + "---|" * 11]
    for r in routes:
        lines.append(f"| {r['route']} | {r['steps']} x {r['batch_size']} | {r['train_wall_s']:.0f} | "
                     f"{r['train_steps_per_s']:.2f} | {r['step_s']:.3f} | {r['non_finite']} | {r['loss_spread']:.3f} | "
                     f"{r['val_first']:.3f} -> {r['val_best']:.3f} | {r['test_mrstft']:.3f} | "
                     f"{100 * (r['test_mrstft'] / corrupt - 1):+.0f} % | {r['test_param_eq']:.3f} / "
                     f"{r['test_param_comp']:.3f} |")
    return "\n".join(lines)


def plot_architecture(ax=None):
    """Draw the model (shared encoder, controller, chain) on ``ax`` (a new figure by default); returns ``ax``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 4.4)
    ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="black", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(a, b, **kw):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1.2, color="black", **kw))

    box(0.1, 3.2, 1.3, 0.7, "input x", "#dde8f5")
    box(0.1, 0.5, 1.3, 0.7, "reference r", "#f5e3dd")
    box(2.0, 1.6, 2.4, 1.3, "shared encoder\nlog-mel -> 4 x Conv1d\nmean + std pooling\n(+ band means, stds)", "#eeeeee")
    box(5.0, 1.6, 1.9, 1.3, "controller MLP\n[e_x, e_r, e_r - e_x]\n-> 18 sigmoids", "#eeeeee")
    box(7.5, 3.1, 3.3, 0.9, "EQ -> compressor -> gain\n(autodiff DSP | neural proxy | SPSA)", "#e3f5dd")
    box(9.3, 1.75, 1.5, 0.7, "output y", "#dde8f5")
    box(9.3, 0.35, 1.5, 0.7, "target\n(style of r on x)", "#fff3c4")
    arrow((1.4, 3.55), (2.4, 2.9))
    arrow((1.4, 0.85), (2.4, 1.6))
    arrow((4.4, 2.25), (5.0, 2.25))
    arrow((6.9, 2.6), (7.9, 3.1))
    ax.text(7.0, 2.45, "18 settings (real units)", fontsize=8)
    arrow((1.4, 3.65), (7.5, 3.65), connectionstyle="arc3,rad=-0.15")
    arrow((10.05, 3.1), (10.05, 2.45))
    arrow((10.05, 1.75), (10.05, 1.05), linestyle="--")
    ax.text(10.15, 1.35, "MR-STFT loss", fontsize=8)
    ax.set_title("Single-track style transfer: one encoder hears both signals, a controller sets the chain")
    return ax
