"""FiLM-conditioned temporal convolutional network (taught in ``notebooks/09_neural_proxies.ipynb``).

The neural audio effect of Steinmetz (2020, sec. 4.3.1, figs. 9-10, Table 3), used as a proxy of the
channel strip. Blocks are stacked with dilations ``growth ** (i % stack_size)`` (1, 2, ..., 512 for
stacks of ten); TCN-10, -20 and -30 repeat that stack one, two and three times. Each block:

    h   = PReLU(FiLM(BatchNorm(conv_d(x)), e))        dilated, non-causal, no padding ("valid")
    out = h + g * crop(res(x))                         g: learned residual gain, clamped to [0, 1]

- ``conv_d``: kernel ``k`` (15 in the thesis), dilation ``d``, stride 1, no padding, so every block
  shortens the signal by ``d (k - 1)`` samples, half on each side (``k`` must be odd).
- BatchNorm without its own affine transform (eq. 4.10); the scale and shift come from FiLM (eqs.
  4.12-4.13, Perez et al. 2018): ``gamma, beta = e W_n^T + b_n`` per block, where ``e`` is the output of
  a FiLM generator (an MLP with ReLUs, ``cond_dim -> cond_hidden``, default 16, 32, 32) applied to the
  effect's parameter vector (normalised controls; the thesis maps each to [-1, 1]). One linear adaptor
  per block produces both ``gamma`` and ``beta`` (eq. 4.13's two adaptors are the special case with a
  block-diagonal weight). The ``gamma`` bias starts at 1 so that a fresh network is not scaled to zero.
  Without conditioning (``cond_dim=0``) ``gamma`` and ``beta`` are learned constants per channel.
- PReLU with one slope per channel (He et al. 2015).
- Residual: ``res`` is a 1x1 convolution where the channel count changes (the first block), else the
  identity; it is centre-cropped to the block's output length (the thesis' "center crop"). The
  residual gain ``g`` starts at 1.0 and is clamped to [0, 1] where it is used (Table 3), so the
  network always uses a gain in range; as with any clamp, its gradient is zero while the stored value
  lies outside [0, 1].
- Skips: every block's output ``out`` is centre-cropped to the final length and summed; a 1x1
  convolution maps the sum to ``n_outputs`` channels. Since ``out`` carries the residual path, the
  input reaches the output linearly (a near-identity effect is easy to learn).
- ``direct=True`` (not in the thesis; ``n_inputs == n_outputs``) adds the centre-cropped input to the
  output and starts the output convolution at zero, so a fresh network is exactly the identity and
  learns only the change the effect makes. The bundled channel-strip proxy uses it: trained from the
  thesis' random start on a CPU budget, the network stayed worse than the unprocessed input.

The receptive field follows eq. 4.14 (``receptive_field``); the output has ``T - receptive_field + 1``
samples, and output sample ``j`` is centred on input sample ``j + (receptive_field - 1) // 2``.
``same_length=True`` (or ``pad_input``) zero-pads the input by that amount on each side, so the output
lines up sample for sample with the input; targets for the unpadded output are ``center_crop``-ped.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_audio

# Table 3 / sec. 4.3.1: kernel 15, stacks of 10 blocks with dilations 1..512; "small" and "tiny"
# shorten the stack and narrow the channels for CPU training.
PRESETS = {
    "tcn10": dict(n_blocks=10, kernel_size=15, dilation_growth=2, stack_size=10, channels=32),
    "tcn20": dict(n_blocks=20, kernel_size=15, dilation_growth=2, stack_size=10, channels=32),
    "tcn30": dict(n_blocks=30, kernel_size=15, dilation_growth=2, stack_size=10, channels=32),
    "small": dict(n_blocks=8, kernel_size=15, dilation_growth=2, stack_size=10, channels=16),
    "tiny": dict(n_blocks=4, kernel_size=15, dilation_growth=2, stack_size=10, channels=8),
}


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return value


def receptive_field(kernel_sizes: Sequence[int], dilations: Sequence[int], strides: Optional[Sequence[int]] = None) -> int:
    """Receptive field in samples of a stack of convolutions, Steinmetz (2020, sec. 4.3.4, eq. 4.14).

    ``r_1 = k_1`` and ``r_i = r_{i-1} + d_i * (s_i * (k_i - 1))`` for the following layers (kernel
    size ``k_i``, dilation ``d_i``, stride ``s_i``; ``strides`` defaults to all 1), exactly as the thesis
    writes it. For stride-1 stacks whose first layer is undilated (every TCN here) this is the exact
    count of input samples that one output sample depends on. TCN-10 (k = 15, d = 1, 2, ..., 512)
    gives 14323 samples (324.8 ms at 44.1 kHz); TCN-20 28645, TCN-30 42967.
    """
    kernel_sizes, dilations = list(kernel_sizes), list(dilations)
    strides = [1] * len(kernel_sizes) if strides is None else list(strides)
    if not kernel_sizes:
        raise ValueError("kernel_sizes is empty: give one kernel size per convolutional layer.")
    if not len(kernel_sizes) == len(dilations) == len(strides):
        raise ValueError(
            f"kernel_sizes, dilations and strides need one entry per layer; got lengths "
            f"{len(kernel_sizes)}, {len(dilations)} and {len(strides)}."
        )
    for name, values in (("kernel_sizes", kernel_sizes), ("dilations", dilations), ("strides", strides)):
        for i, v in enumerate(values):
            _positive_int(v, f"{name}[{i}]")
    r = kernel_sizes[0]
    for k, d, s in zip(kernel_sizes[1:], dilations[1:], strides[1:]):
        r += d * (s * (k - 1))
    return r


def center_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    """The middle ``length`` samples of ``x`` (``(..., T)``); an odd surplus drops one more sample at the end."""
    surplus = x.shape[-1] - length
    if surplus < 0:
        raise ValueError(f"cannot crop {x.shape[-1]} samples to {length}: the signal is too short.")
    start = surplus // 2
    return x[..., start:start + length]


class FiLM(nn.Module):
    """Feature-wise affine transform ``gamma * z + beta`` with ``(gamma, beta) = e W^T + b`` (eq. 4.13).

    ``z``: ``(B, channels, T)``; ``e``: ``(B, cond_features)`` (may be ``(B, 0)``: then gamma and beta are
    the learned bias alone). Initialised with gamma = 1 + small, beta = small.
    """

    def __init__(self, channels: int, cond_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(2 * channels, cond_features))
        if cond_features:
            bound = cond_features ** -0.5
            nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        gamma, beta = (self.bias + e @ self.weight.t()).unsqueeze(-1).chunk(2, dim=1)
        return gamma * z + beta


class TCNBlock(nn.Module):
    """One convolutional block (fig. 10): conv -> BatchNorm (no affine) -> FiLM -> PReLU, plus residual.

    ``forward(x (B, in_channels, T), e (B, cond_features))`` returns ``(B, out_channels, T - dilation*(k-1))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, cond_features: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.norm = nn.BatchNorm1d(out_channels, affine=False)
        self.film = FiLM(out_channels, cond_features)
        self.act = nn.PReLU(out_channels)
        self.res = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.gain_raw = nn.Parameter(torch.tensor(1.0))

    @property
    def gain(self) -> torch.Tensor:
        """The residual gain used in ``forward``: the learned value clamped to [0, 1]."""
        return self.gain_raw.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.act(self.film(self.norm(self.conv(x)), e))
        return h + self.gain * center_crop(self.res(x), h.shape[-1])


class TCN(nn.Module):
    """FiLM-conditioned TCN: ``forward(x (B, n_inputs, T), cond (B, cond_dim))`` -> ``(B, n_outputs, T - rf + 1)``.

    ``rf = self.receptive_field`` (eq. 4.14). Block ``i`` has dilation ``dilation_growth ** (i % stack_size)``;
    ``kernel_size`` must be odd (every layer then stays centred). ``direct=True`` adds the centre-cropped
    input to the output (identity at initialisation, see the module notes). ``cond_dim=0`` builds an unconditioned
    network (call it without ``cond``); ``cond_hidden`` are the FiLM generator's layer widths (``()``
    feeds ``cond`` to the adaptors directly). ``same_length=True`` pads the input (``pad_input``) so the
    output has ``T`` samples aligned with the input. Presets: ``TCN.preset(name)`` for the names in
    ``PRESETS``, with ``TCN.tcn10()``, ``tcn20()``, ``tcn30()`` for the thesis' models.
    """

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        n_blocks: int = 10,
        kernel_size: int = 15,
        dilation_growth: int = 2,
        stack_size: int = 10,
        channels: int = 32,
        cond_dim: int = 0,
        cond_hidden: Sequence[int] = (16, 32, 32),
        direct: bool = False,
    ):
        super().__init__()
        for name, value in (("n_inputs", n_inputs), ("n_outputs", n_outputs), ("n_blocks", n_blocks),
                            ("kernel_size", kernel_size), ("dilation_growth", dilation_growth),
                            ("stack_size", stack_size), ("channels", channels)):
            _positive_int(value, name)
        _positive_int(cond_dim, "cond_dim", minimum=0)
        cond_hidden = tuple(_positive_int(w, "cond_hidden entries") for w in cond_hidden)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so that each layer stays centred (the thesis uses 15); got {kernel_size}.")
        if direct and n_inputs != n_outputs:
            raise ValueError(f"direct=True adds the input to the output, so n_inputs must equal n_outputs; "
                             f"got {n_inputs} and {n_outputs}.")
        self.n_inputs, self.n_outputs, self.cond_dim, self.direct = n_inputs, n_outputs, cond_dim, bool(direct)

        widths = (cond_dim,) + cond_hidden if cond_dim else ()
        layers = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        self.generator = nn.Sequential(*layers)
        cond_features = widths[-1] if widths else 0

        self.blocks = nn.ModuleList(
            TCNBlock(n_inputs if i == 0 else channels, channels, kernel_size,
                     dilation_growth ** (i % stack_size), cond_features)
            for i in range(n_blocks)
        )
        self.output = nn.Conv1d(channels, n_outputs, 1)
        if self.direct:
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)

    @classmethod
    def preset(cls, name: str, **overrides) -> "TCN":
        """A model from ``PRESETS`` (``"tcn10"``, ``"tcn20"``, ``"tcn30"``, ``"small"``, ``"tiny"``), e.g. with ``cond_dim=25``."""
        if name not in PRESETS:
            raise ValueError(f"unknown TCN preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def tcn10(cls, **overrides) -> "TCN":
        """TCN-10: one stack of ten blocks, receptive field 14323 samples (324.8 ms at 44.1 kHz)."""
        return cls.preset("tcn10", **overrides)

    @classmethod
    def tcn20(cls, **overrides) -> "TCN":
        """TCN-20: two stacks, receptive field 28645 samples (649.5 ms at 44.1 kHz)."""
        return cls.preset("tcn20", **overrides)

    @classmethod
    def tcn30(cls, **overrides) -> "TCN":
        """TCN-30: three stacks, receptive field 42967 samples (974.3 ms at 44.1 kHz)."""
        return cls.preset("tcn30", **overrides)

    @property
    def receptive_field(self) -> int:
        """Input samples behind one output sample (eq. 4.14 over the dilated convolutions)."""
        convs = [b.conv for b in self.blocks]
        return receptive_field([c.kernel_size[0] for c in convs], [c.dilation[0] for c in convs])

    @property
    def residual_gains(self) -> torch.Tensor:
        """The residual gains in use, one per block, each in [0, 1]."""
        return torch.stack([b.gain for b in self.blocks])

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def output_length(self, n_samples: int) -> int:
        """Output length for an unpadded input of ``n_samples`` samples (``n_samples - rf + 1``)."""
        return n_samples - self.receptive_field + 1

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``x`` ``(B, C, T)`` by ``(rf - 1) // 2`` samples on each side: the output then has ``T`` samples."""
        half = (self.receptive_field - 1) // 2
        return F.pad(x, (half, half))

    def _embed(self, cond: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if self.cond_dim == 0:
            if cond is not None and cond.numel() != 0:
                raise ValueError(
                    f"this TCN is unconditioned (cond_dim=0) but got cond of shape {tuple(cond.shape)}; "
                    "call it without cond, or build it with TCN(cond_dim=...)."
                )
            return x.new_zeros(batch, 0)
        want = f"(batch, cond_dim) = ({batch}, {self.cond_dim})"
        if cond is None:
            raise ValueError(f"this TCN is conditioned (cond_dim={self.cond_dim}): pass cond shaped {want}.")
        if not isinstance(cond, torch.Tensor):
            raise TypeError(f"cond must be a torch.Tensor shaped {want}; got {type(cond).__name__}.")
        if tuple(cond.shape) != (batch, self.cond_dim):
            hint = " Add the batch dimension with cond.unsqueeze(0)." if cond.ndim == 1 else ""
            raise ValueError(f"cond must have shape {want}; got {tuple(cond.shape)}.{hint}")
        cond = cond.to(device=x.device, dtype=x.dtype)
        if not bool(torch.isfinite(cond).all()):
            raise ValueError("cond contains NaN or infinite values.")
        return self.generator(cond)

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None, same_length: bool = False) -> torch.Tensor:
        check_audio(x, channels=self.n_inputs)
        e = self._embed(cond, x)
        if same_length:
            x = self.pad_input(x)
        rf = self.receptive_field
        if x.shape[-1] < rf:
            raise ValueError(
                f"x has {x.shape[-1]} samples but the TCN's receptive field is {rf}: pass at least {rf} "
                "samples, or use same_length=True to zero-pad the input."
            )
        n_out = x.shape[-1] - rf + 1
        skips, h = 0, x
        for block in self.blocks:
            h = block(h, e)
            skips = skips + center_crop(h, n_out)
        y = self.output(skips)
        return y + center_crop(x, n_out) if self.direct else y
