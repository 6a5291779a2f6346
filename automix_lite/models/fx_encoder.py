"""A contrastive audio-effects encoder (taught in ``notebooks/19_fx_representations.ipynb``, chapter 5.3).

An embedding of *how a sound was processed* rather than of what is playing, learned as Koo et al. (ICASSP 2023,
FXencoder) and Yeh et al. (2025, Fx-Encoder++) learn theirs: by contrastive learning (SimCLR's NT-Xent, Chen et al.
2020) on pairs of *different* recordings processed by the *same* effect chain. Made small enough for a CPU, on the
bundled stems, with the console's own DSP (:mod:`automix_lite.dsp`) as the effects:

    chain c_k  ~ CHAIN_RANGES         K random chains per batch: high-pass, low shelf, one peak, high shelf,
                                      compressor, pan, reverb send and decay (the console's strip and reverb bus)
    x_{k,v}    = segment of a random TRAIN stem (another stem for every view v), level -20 dBFS RMS +- 3 dB
    y_{k,v}    = c_k(x_{k,v})          stereo (2, T) at 44.1 kHz
    z_{k,v}    = FxEncoder(y_{k,v})    a unit vector (dim,)
    loss       = contrastive_loss(z, chain ids, temperature): for each anchor the other views of its chain are
                 positives, every other item of the batch a negative

The network (:class:`FxEncoder`, about 0.15 M parameters): log-mel spectrograms of the left, right, mid
``(L + R) / 2`` and side ``(L - R) / 2`` channels (the side carries width and reverb; left against right carries
the pan's direction, which the side's magnitude alone does not), a small 2-D CNN, mean and standard deviation over
time, plus the mean and standard deviation of every log-mel band (a direct path for EQ and dynamics), LayerNorm, an
MLP to ``dim`` and L2 normalisation. No batch statistics: an item's embedding does not depend on its batch.

Evaluation (:func:`retrieval`, :func:`linear_probe`, :func:`projection`, :func:`evaluate`): TEST stems processed
by fixed random chains; ``benchmarks/fx_encoder.py`` writes the results (:func:`read_results`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import train as _train
from .dmc import LogMel

__all__ = ["SAMPLE_RATE", "CHAIN_RANGES", "CHAIN_NAMES", "T60_GRID", "DEFAULT_CONFIG", "FxEncoder", "draw_chains",
           "render_chains", "normalized_chains", "ChainData", "contrastive_loss", "build_model", "FAMILIES",
           "retrieval", "linear_probe", "ALPHAS", "projection", "examples", "evaluate", "read_results", "RESULTS_FILE",
           "retrieval_table", "probe_table", "frechet_table"]

SAMPLE_RATE = 44100
"""The encoder's sample rate (Hz); resample other audio first (``automix_lite.audio.resample``)."""
MIN_SAMPLES = 2048
"""The shortest audio :meth:`FxEncoder.embed` takes (about 46 ms)."""

CHAIN_RANGES = {
    "highpass_cutoff_hz": (20.0, 600.0, "log"),
    "low_shelf_gain_db": (-12.0, 12.0, "linear"),
    "peak_gain_db": (-12.0, 12.0, "linear"),
    "peak_cutoff_hz": (300.0, 5000.0, "log"),
    "high_shelf_gain_db": (-12.0, 12.0, "linear"),
    "threshold_db": (-40.0, 0.0, "linear"),
    "ratio": (1.0, 10.0, "log"),
    "pan": (0.0, 1.0, "linear"),
    "reverb_send_db": (-40.0, 0.0, "linear"),
    "reverb_t60_s": (0.4, 3.2, "log"),
}
"""The effect parameters of a random chain, ``name: (low, high, scale)`` in the console's units
(:data:`automix_lite.parameters.SPECS`, narrowed to audible, musical ranges). Drawn uniformly on the scale (log:
uniform in log); the decay time is snapped to :data:`T60_GRID`. The rest of the strip is fixed: input gain 0 dB,
low shelf at 120 Hz, high shelf at 6 kHz, peak Q 1, the other two peaks flat, attack 10 ms, release 150 ms, knee
6 dB, no make-up gain, reverb return 0 dB."""
CHAIN_NAMES = tuple(CHAIN_RANGES)
T60_GRID = (0.4, 0.8, 1.6, 3.2)
"""Reverb decay times (s) of the chains (impulse responses made once, :func:`automix_lite.dsp.reverb.reverb_impulse_response`
with the console's seed)."""
INPUT_RMS_DB, INPUT_JITTER_DB = -20.0, 3.0
SILENCE_DB = -45.0


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class FxEncoder(nn.Module):
    """Stereo (or mono) audio at 44.1 kHz -> ``(batch, dim)`` unit vectors that describe its processing.

    ``dim``: embedding size; ``hidden``: the MLP's width; ``widths``: channels of the CNN's blocks (3x3
    convolution, ReLU, 2x2 max-pooling); ``n_mels``, ``n_fft``, ``hop``: the log-mel front end (power in dB / 20,
    :class:`~automix_lite.models.dmc.LogMel`). See the module docstring for the picture. :meth:`embed` is the
    checked entry point; ``forward`` takes a ``(batch, 2, samples)`` float tensor as it is."""

    sample_rate = SAMPLE_RATE

    def __init__(self, dim: int = 64, hidden: int = 128, widths: Sequence[int] = (16, 32, 48), n_mels: int = 48,
                 n_fft: int = 1024, hop: int = 512, level_path: bool = False):
        super().__init__()
        self.dim, self.n_mels, self.level_path = int(dim), int(n_mels), bool(level_path)
        self.frontend = LogMel(SAMPLE_RATE, n_fft, hop, n_mels)
        layers, w_in = [], 4
        for w in widths:
            layers += [nn.Conv2d(w_in, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            w_in = w
        self.cnn = nn.Sequential(*layers)
        bands = n_mels
        for _ in widths:
            bands = math.ceil(bands / 2)
        n_in = 2 * w_in * bands + 2 * 4 * n_mels + (3 * n_mels + 3 if self.level_path else 0)
        self.norm = nn.LayerNorm(n_in)
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 2, T)`` -> ``(B, dim)`` unit vectors (differentiable)."""
        b, _, t = x.shape
        left, right = x[:, 0], x[:, 1]
        chans = torch.stack([left, right, (left + right) / 2, (left - right) / 2], 1)  # (B, 4, T)
        mel = self.frontend(chans.reshape(b * 4, t)).view(b, 4, self.n_mels, -1) + 2.5  # dB / 20, centred
        h = self.cnn(mel)  # (B, w, bands, frames)
        h = torch.cat([h.mean(-1), h.std(-1, unbiased=False)], 1).flatten(1)
        stats = torch.cat([mel.mean(-1), mel.std(-1, unbiased=False)], 1).flatten(1)
        parts = [h, 2 * stats]
        if self.level_path:
            parts.append(2 * self._level_stats(mel))
        z = self.head(self.norm(torch.cat(parts, 1)))
        return nn.functional.normalize(z, dim=-1)

    @staticmethod
    def _level_stats(mel: torch.Tensor) -> torch.Tensor:
        """The pan-blind tone-and-dynamics path: the log-mel of the power sum ``|L|^2 + |R|^2`` (unchanged by a
        constant-power pan, so the tone and level a chain's EQ and compressor leave are not hidden behind the
        stereo placement); per band its mean, spread and peak-over-mean (a crest factor) over time, and of the
        frames' total level its mean, spread and 95th - 5th percentile range (a loudness range: what a compressor
        narrows). ``mel (B, 4, bands, frames)`` centred dB / 20 -> ``(B, 3 * bands + 3)``."""
        k = 2 * math.log(10.0)  # dB / 20 -> natural log of power
        total = torch.logaddexp(k * mel[:, 0], k * mel[:, 1]) / k  # (B, bands, frames), dB / 20
        mean = total.mean(-1)
        band = torch.cat([mean, total.std(-1, unbiased=False), total.amax(-1) - mean], 1)
        frame = torch.logsumexp(k * total, 1) / k  # (B, frames): each frame's total level
        q = torch.quantile(frame, torch.tensor([0.05, 0.95], device=mel.device), dim=-1)  # (2, B)
        return torch.cat([band, torch.stack([frame.mean(-1), frame.std(-1, unbiased=False), q[1] - q[0]], 1)], 1)

    @torch.no_grad()
    def embed(self, audio) -> torch.Tensor:
        """``audio (batch, channels, samples)`` at 44.1 kHz (tensor or numpy array; 1 channel: mono, duplicated to
        both sides; 2: stereo) -> ``(batch, dim)`` float32 unit vectors on the model's device (no gradient, the
        model left in its mode). Any length of at least :data:`MIN_SAMPLES` samples (the embedding pools over
        time). Bad input raises ``ValueError``."""
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(np.ascontiguousarray(audio))
        if not isinstance(audio, torch.Tensor):
            raise ValueError(f"audio must be a torch tensor or numpy array; got {type(audio).__name__}.")
        if audio.ndim != 3 or audio.shape[1] not in (1, 2):
            raise ValueError(f"audio must be (batch, channels, samples) with 1 or 2 channels; got shape "
                             f"{tuple(audio.shape)}.")
        if audio.shape[0] < 1 or audio.shape[-1] < MIN_SAMPLES:
            raise ValueError(f"audio must hold at least one item of at least {MIN_SAMPLES} samples at 44.1 kHz; got "
                             f"shape {tuple(audio.shape)}.")
        if not audio.is_floating_point() or not bool(torch.isfinite(audio).all()):
            raise ValueError("audio must hold finite floating-point samples (no NaN or inf).")
        device = next(self.parameters()).device
        x = audio.detach().to(device=device, dtype=torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 2, -1)
        return self(x)


def build_model(cfg: dict) -> FxEncoder:
    """The network of a ``fx_encoder`` config (its ``segment_seconds`` kept as an attribute)."""
    model = FxEncoder(dim=cfg["dim"], hidden=cfg["hidden"], widths=tuple(cfg["widths"]), n_mels=cfg["n_mels"],
                      level_path=bool(cfg.get("level_path", False)))
    model.segment_seconds = cfg["segment_seconds"]
    return model


# --------------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------------


def contrastive_loss(z: torch.Tensor, chain_ids, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent / InfoNCE with any number of positives per anchor (SimCLR's loss; with two views per chain it is
    exactly SimCLR's). ``z (N, D)``: embeddings (normalised here); ``chain_ids (N,)``: equal ids = same chain =
    positives. For anchor ``i`` with positives ``P(i)``::

        loss_i = - 1/|P(i)| sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) ),   s = cosine

    averaged over the anchors that have a positive. A scalar tensor; permuting the items (with their ids) does not
    change it. At least one pair must share an id."""
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be (N >= 2, D) embeddings; got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}.")
    ids = torch.as_tensor(chain_ids, device=z.device).reshape(-1)
    if ids.shape[0] != z.shape[0]:
        raise ValueError(f"chain_ids must have one id per embedding ({z.shape[0]}); got {ids.shape[0]}.")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number; got {temperature!r}.")
    z = nn.functional.normalize(z.float(), dim=-1)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (ids[:, None] == ids[None, :]) & ~eye
    n_pos = pos.sum(1)
    if not bool((n_pos > 0).any()):
        raise ValueError("no two items share a chain id: the contrastive loss needs positives.")
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / n_pos.clamp_min(1)
    return per_anchor[n_pos > 0].mean()


# --------------------------------------------------------------------------------------------
# Random effect chains on bundled stems
# --------------------------------------------------------------------------------------------


def draw_chains(k: int, g: torch.Generator) -> dict:
    """``k`` random chains: ``{name: (k,) float64 tensor}`` in real units (:data:`CHAIN_RANGES`; the decay time
    snapped to :data:`T60_GRID`)."""
    out = {}
    for name, (lo, hi, scale) in CHAIN_RANGES.items():
        u = torch.rand(k, generator=g, dtype=torch.float64)
        out[name] = lo * torch.exp(u * math.log(hi / lo)) if scale == "log" else lo + (hi - lo) * u
    grid = torch.tensor(T60_GRID, dtype=torch.float64)
    out["reverb_t60_s"] = grid[(out["reverb_t60_s"].log()[:, None] - grid.log()).abs().argmin(1)]
    return out


def normalized_chains(chains: Mapping) -> np.ndarray:
    """``(k, len(CHAIN_NAMES))`` chain parameters mapped to [0, 1] on their scale (the linear probe's targets)."""
    cols = []
    for name, (lo, hi, scale) in CHAIN_RANGES.items():
        v = torch.as_tensor(chains[name], dtype=torch.float64)
        cols.append((v.log() - math.log(lo)) / math.log(hi / lo) if scale == "log" else (v - lo) / (hi - lo))
    return torch.stack(cols, 1).numpy()


_IRS: dict = {}


def _ir(t60: float, n: int) -> torch.Tensor:
    from ..dsp.console import REVERB_SEED
    from ..dsp.reverb import reverb_impulse_response

    if t60 not in _IRS:
        _IRS[t60] = reverb_impulse_response(SAMPLE_RATE, torch.tensor([t60]), seed=REVERB_SEED, channels=2).float()
    ir = _IRS[t60][..., :n]
    return nn.functional.pad(ir, (0, n - ir.shape[-1])) if ir.shape[-1] < n else ir


@torch.no_grad()
def render_chains(x: torch.Tensor, chains: Mapping) -> torch.Tensor:
    """Mono segments ``x (M, T)`` at 44.1 kHz through chain ``m`` each (``chains``: ``{name: (M,)}``, as
    :func:`draw_chains`) -> stereo ``(M, 2, T)``: the console's channel strip
    (:func:`automix_lite.dsp.console.channel_strip`: gain, high-pass + EQ, compressor, pan) plus its post-pan
    send through the stereo reverb of the chain's decay, returned at 0 dB."""
    from ..dsp.console import channel_strip
    from ..dsp.reverb import fft_convolve

    m, t = x.shape
    c = {k: torch.as_tensor(v, dtype=torch.float32).reshape(m) for k, v in chains.items()}
    full = lambda v: torch.full((m,), float(v))  # noqa: E731
    peaks = torch.zeros(m, 3)
    peaks[:, 0] = c["peak_gain_db"]
    cut = torch.tensor([[250.0, 1000.0, 4000.0]]).repeat(m, 1)
    cut[:, 0] = c["peak_cutoff_hz"]
    params = {"gain_db": full(0), "highpass_cutoff_hz": c["highpass_cutoff_hz"], "low_shelf_gain_db": c["low_shelf_gain_db"],
              "low_shelf_cutoff_hz": full(120), "peak_gain_db": peaks, "peak_cutoff_hz": cut,
              "peak_q": torch.ones(m, 3), "high_shelf_gain_db": c["high_shelf_gain_db"],
              "high_shelf_cutoff_hz": full(6000), "threshold_db": c["threshold_db"], "ratio": c["ratio"],
              "attack_ms": full(10), "release_ms": full(150), "knee_db": full(6), "makeup_db": full(0),
              "pan": c["pan"], "reverb_send_db": c["reverb_send_db"]}
    out, send = channel_strip(x.float()[:, None], SAMPLE_RATE, params)
    ir = torch.cat([_ir(float(v), t) for v in c["reverb_t60_s"]])
    return out + fft_convolve(send, ir)


class ChainData:
    """Segments of bundled stems of ``split`` (:func:`automix_lite.train.proxy_stems`: every mono stem of its songs
    and drum passages) drawn from a ``torch.Generator``, set to -20 dBFS RMS +- 3 dB (a content augmentation: the
    level the chain meets varies a little), then processed by random chains. ``seconds``: segment length; segments
    quieter than -45 dBFS RMS are drawn again."""

    def __init__(self, split: str = "train", seconds: float = 1.5, stems: Optional[Sequence[torch.Tensor]] = None):
        self.stems = [s for s in (_train.proxy_stems(split) if stems is None else stems)
                      if s.shape[-1] >= round(seconds * SAMPLE_RATE)]
        if not self.stems:
            raise ValueError(f"no stem of {split!r} is at least {seconds:g} s long.")
        self.n = round(seconds * SAMPLE_RATE)

    def segment(self, g: torch.Generator, tries: int = 50) -> torch.Tensor:
        for _ in range(tries):
            s = self.stems[int(torch.randint(len(self.stems), (1,), generator=g))]
            start = int(torch.randint(s.shape[-1] - self.n + 1, (1,), generator=g))
            x = s[start:start + self.n].double()
            rms_db = 10 * math.log10(float(x.square().mean()) + 1e-20)
            if rms_db > SILENCE_DB:
                jitter = INPUT_JITTER_DB * (2 * float(torch.rand((), generator=g, dtype=torch.float64)) - 1)
                return (x * 10 ** ((INPUT_RMS_DB + jitter - rms_db) / 20)).float()
        raise ValueError(f"found no segment louder than {SILENCE_DB:g} dBFS in {tries} tries.")

    def batch(self, chains: int, views: int, g: torch.Generator, fixed: Optional[Mapping[str, float]] = None) -> dict:
        """``chains`` random chains, each applied to ``views`` segments of different draws (another stem, song or
        instrument as chance has it): ``{"audio": (chains * views, 2, T), "chain": (chains * views,) ids,
        "params": {name: (chains * views,)}}``, items in chain-major order. ``fixed``: parameters set to one value
        in every chain (e.g. ``{"pan": 0.5}``: only the other effects tell the chains apart)."""
        c = draw_chains(chains, g)
        for name, value in (fixed or {}).items():
            if name not in c:
                raise ValueError(f"fixed names {name!r}, which is not a chain parameter ({', '.join(CHAIN_NAMES)}).")
            c[name] = torch.full_like(c[name], float(value))
        x = torch.stack([self.segment(g) for _ in range(chains * views)])
        ids = torch.arange(chains).repeat_interleave(views)
        params = {k: v[ids] for k, v in c.items()}
        return {"audio": render_chains(x, params), "chain": ids, "params": params}

    def mixed_batch(self, chains: int, views: int, g: torch.Generator, hard_fraction: float = 0.0) -> dict:
        """A training batch with "hard" chains: ``round(chains * hard_fraction)`` of the ``chains`` share one pan,
        reverb send and decay (drawn once per batch, :func:`draw_chains`), so only their EQ and compressor tell them
        apart; the rest are ordinary random chains (:meth:`batch`). Items in chain-major order, the hard chains
        last, ids ``0 .. chains - 1``. ``hard_fraction`` 0: exactly :meth:`batch`."""
        n_hard = int(round(chains * float(hard_fraction)))
        if n_hard <= 0:
            return self.batch(chains, views, g)
        shared = draw_chains(1, g)
        hard = self.batch(n_hard, views, g, {k: float(shared[k][0]) for k in ("pan", "reverb_send_db", "reverb_t60_s")})
        if n_hard >= chains:
            return hard
        easy = self.batch(chains - n_hard, views, g)
        return {"audio": torch.cat([easy["audio"], hard["audio"]]),
                "chain": torch.cat([easy["chain"], hard["chain"] + chains - n_hard]),
                "params": {k: torch.cat([easy["params"][k], hard["params"][k]]) for k in CHAIN_NAMES}}


# --------------------------------------------------------------------------------------------
# The training family (automix_lite.train's one loop)
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "model": "fx_encoder",
    "steps": 1000, "batch_size": 16, "views": 2, "segment_seconds": 1.5, "temperature": 0.1,
    "lr": 1e-3, "lr_factor": 0.5, "lr_patience": 3, "grad_clip": 1.0,
    "log_every": 25, "val_every": 100, "val_examples": 64, "max_seconds": None,
    "seed": 0, "device": "auto", "threads": None,
    "dim": 64, "hidden": 128, "widths": [16, 32, 48], "n_mels": 48,
    "hard_fraction": 0.0, "level_path": False,
}
"""The keys of a ``"model": "fx_encoder"`` config and their defaults (:func:`automix_lite.train.load_config`).
``batch_size`` x ``views``: the batch (``batch_size`` random chains, each on ``views`` different-content segments); ``temperature``: of
:func:`contrastive_loss`; ``val_examples``: fixed VAL chains (seed + 1; in batches of ``batch_size`` chains x ``views``) whose mean loss is the
validation loss;
``dim``, ``hidden``, ``widths``, ``n_mels``, ``level_path`` (the pan-blind tone-and-dynamics features):
:class:`FxEncoder`; ``hard_fraction``: the share of each batch's chains (training and validation) that share
one pan and reverb, so that only EQ and compression separate them (:meth:`ChainData.mixed_batch`). The rest is the loop's (Adam, the plateau schedule
``lr_factor`` / ``lr_patience`` stepped by the validation loss every ``val_every`` steps, ``max_seconds``)."""


def _problems(cfg: dict) -> list:
    problems = _train._value_problems(
        cfg, {"model": ("fx_encoder",)},
        {"steps": 1, "batch_size": 2, "views": 2, "lr_patience": 0, "log_every": 1, "val_every": 1, "val_examples": 2,
         "seed": 0, "dim": 2, "hidden": 1, "n_mels": 8},
        {"segment_seconds": (0.1, 30, True), "temperature": (0, None, False), "lr": (0, None, False),
         "hard_fraction": (0, 1, True),
         "lr_factor": (0, 1, False), "grad_clip": (0, None, False)})
    if cfg["lr_factor"] == 1:
        problems.append("lr_factor must be below 1; got 1")
    if not isinstance(cfg["level_path"], bool):
        problems.append(f"level_path must be true or false; got {cfg['level_path']!r}")
    w = cfg["widths"]
    if not isinstance(w, (list, tuple)) or not w or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w):
        problems.append(f"widths must be a non-empty list of whole numbers >= 1; got {w!r}")
    v = cfg["max_seconds"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
        problems.append(f"max_seconds must be null (no limit) or a positive number of seconds; got {v!r}")
    return problems


class _FxPart(_train.SampledPart):
    """The loop's part for ``fx_encoder`` (see :class:`automix_lite.train.Family`): a fresh TRAIN batch every step
    from one generator seeded ``seed + steps done``; validation: the mean loss on ``val_examples`` fixed VAL
    chains."""

    loss_name = "contrastive loss (NT-Xent)"

    def __init__(self, cfg: dict, model: FxEncoder, device, done: int = 0):
        self.cfg, self.device = cfg, device
        self.data = ChainData("train", cfg["segment_seconds"])
        self.generator = torch.Generator().manual_seed(cfg["seed"] + done)
        val = ChainData("val", cfg["segment_seconds"])
        g = torch.Generator().manual_seed(cfg["seed"] + 1)
        k, n = cfg["batch_size"], cfg["val_examples"]
        f = cfg.get("hard_fraction", 0.0)
        self.val = [val.mixed_batch(min(k, n - i), cfg["views"], g, f) for i in range(0, n, k)]
        self.extra = {"chain_names": list(CHAIN_NAMES)}

    def describe(self, model, device, start: int, end: int) -> str:
        c = self.cfg
        return (f"fx_encoder: dim={c['dim']} params={model.n_params:,} device={device} batch={c['batch_size']} chains x "
                f"{c['views']} views x {c['segment_seconds']:g} s, temperature {c['temperature']:g}, steps {start + 1}-{end}")

    def batch(self, run, step: int) -> dict:
        return self.data.mixed_batch(self.cfg["batch_size"], self.cfg["views"], self.generator,
                                     self.cfg.get("hard_fraction", 0.0))

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        z = net(batch["audio"].to(self.device))
        return contrastive_loss(z, batch["chain"].to(self.device), self.cfg["temperature"])

    def validate(self, run) -> float:
        with torch.no_grad():
            return float(np.mean([self.loss(run, b, run.model).item() for b in self.val]))


def _loaded(data: dict, path: str) -> None:
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    if extra.get("chain_names", list(CHAIN_NAMES)) != list(CHAIN_NAMES):
        raise ValueError(f"{path} is an fx_encoder trained on other chain parameters; it is not valid for this "
                         "version. Retrain it.")


FAMILIES = {"fx_encoder": _train.Family(DEFAULT_CONFIG, _problems, build_model, _FxPart, ("data_rng",), _loaded)}
"""The ``fx_encoder`` family of :data:`automix_lite.train.SAMPLED_FAMILIES` (config, checks, network, loop part)."""


# --------------------------------------------------------------------------------------------
# Evaluation: retrieval, linear probe, projection
# --------------------------------------------------------------------------------------------


def _matrix(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (N >= 2, D) embeddings; got shape {a.shape}.")
    return a


def retrieval(embeddings, chain_ids, ks: Sequence[int] = (1, 5)) -> dict:
    """Does the nearest embedding share the chain? ``embeddings (N, D)`` (cosine similarity; the query itself left
    out), ``chain_ids (N,)``. Returns ``{"top1": fraction of items whose nearest neighbour has their chain,
    "recall@k": fraction with at least one same-chain item among the k nearest (for k in ``ks``), "chance": the
    top-1 of a random ranking, "n": N}``. Items whose chain has no other item are left out of the scores."""
    e = _matrix(embeddings, "embeddings")
    ids = np.asarray(chain_ids).reshape(-1)
    if ids.shape[0] != e.shape[0]:
        raise ValueError(f"chain_ids must have one id per embedding ({e.shape[0]}); got {ids.shape[0]}.")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    same = ids[:, None] == ids[None, :]
    np.fill_diagonal(same, False)
    keep = same.any(1)
    if not keep.any():
        raise ValueError("no two items share a chain id: retrieval needs at least one pair.")
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = np.take_along_axis(same, order, axis=1)[keep]
    out = {"top1": float(hits[:, 0].mean())}
    for k in ks:
        out[f"recall@{k}"] = float(hits[:, :k].any(1).mean())
    out["chance"] = float((same.sum(1)[keep] / (e.shape[0] - 1)).mean())
    out["n"] = int(keep.sum())
    return out


def _ridge(fa: np.ndarray, ya: np.ndarray, alpha: float) -> tuple:
    ym = ya.mean(0)
    return np.linalg.solve(fa.T @ fa + alpha * np.eye(fa.shape[1]), fa.T @ (ya - ym)), ym


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return np.where(ss_tot > 0, 1 - ((y - pred) ** 2).sum(0) / np.where(ss_tot > 0, ss_tot, 1), np.nan)


ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""The ridge penalties :func:`linear_probe` chooses from by cross-validation."""


def linear_probe(train_x, train_y, test_x, test_y, names: Optional[Sequence[str]] = None, alpha=ALPHAS,
                 groups=None, folds: int = 5) -> dict:
    """Ridge regression of each target on the embeddings, fit on ``(train_x (N, D), train_y (N, P))`` and scored on
    ``(test_x, test_y)``: ``{name: R^2}`` (1 - residual / total sum of squares on the test set, the test mean as the
    baseline; negative when worse than that mean). The features are standardised with the training mean and std.
    ``alpha``: the ridge penalty on the standardised weights (closed form, numpy), or a sequence of them (default
    :data:`ALPHAS`) from which each target's is chosen by ``folds``-fold cross-validation on the training set, the
    folds made of whole ``groups`` (e.g. chain ids: items of one chain share their targets, so they must not be
    split between fitting and checking). ``names``: of the P targets (default ``"y0"``, ...)."""
    xa, xb = _matrix(train_x, "train_x"), _matrix(test_x, "test_x")
    ya, yb = np.asarray(train_y, np.float64), np.asarray(test_y, np.float64)
    ya, yb = (ya[:, None] if ya.ndim == 1 else ya), (yb[:, None] if yb.ndim == 1 else yb)
    if ya.shape[0] != xa.shape[0] or yb.shape[0] != xb.shape[0] or ya.shape[1] != yb.shape[1] or xa.shape[1] != xb.shape[1]:
        raise ValueError(f"shapes do not fit: train {xa.shape} / {ya.shape}, test {xb.shape} / {yb.shape}.")
    names = [f"y{i}" for i in range(ya.shape[1])] if names is None else list(names)
    if len(names) != ya.shape[1]:
        raise ValueError(f"names must name the {ya.shape[1]} targets; got {len(names)}.")
    mu, sd = xa.mean(0), xa.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    fa, fb = (xa - mu) / sd, (xb - mu) / sd
    alphas = [float(alpha)] if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    if len(alphas) == 1:
        best = np.full(ya.shape[1], alphas[0])
    else:
        g = np.arange(len(fa)) if groups is None else np.asarray(groups).reshape(-1)
        uniq = np.unique(g)
        fold_of = {u: i % folds for i, u in enumerate(np.random.default_rng(0).permutation(uniq))}
        f = np.array([fold_of[v] for v in g])
        score = np.zeros((len(alphas), ya.shape[1]))
        for k, a in enumerate(alphas):
            pred = np.zeros_like(ya)
            for i in range(folds):
                if (f == i).any() and (f != i).any():
                    w, ym = _ridge(fa[f != i], ya[f != i], a)
                    pred[f == i] = fa[f == i] @ w + ym
            score[k] = ((ya - pred) ** 2).sum(0)
        best = np.array(alphas)[score.argmin(0)]
    pred = np.zeros_like(yb)
    for a in np.unique(best):
        cols = best == a
        w, ym = _ridge(fa, ya[:, cols], a)
        pred[:, cols] = fb @ w + ym
    return {n: float(v) for n, v in zip(names, _r2(yb, pred))}


def projection(embeddings, method: str = "pca", seed: int = 0) -> np.ndarray:
    """A 2-D map ``(N, 2)`` of ``embeddings (N, D)`` for a scatter plot: ``"pca"`` (the first two principal
    components, numpy) or ``"tsne"`` (scikit-learn's t-SNE, perplexity min(30, (N - 1) / 3), seeded)."""
    e = _matrix(embeddings, "embeddings")
    if method == "pca":
        c = e - e.mean(0)
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        return c @ vt[:2].T if vt.shape[0] >= 2 else np.pad(c @ vt[:1].T, ((0, 0), (0, 1)))
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, perplexity=min(30.0, (e.shape[0] - 1) / 3), random_state=seed, init="pca").fit_transform(e)
    raise ValueError(f"method must be 'pca' or 'tsne'; got {method!r}.")


def examples(split: str = "test", chains: int = 48, views: int = 4, seconds: float = 1.5, seed: int = 1234,
             fixed: Optional[Mapping[str, float]] = None) -> dict:
    """A fixed evaluation set: ``chains`` random chains, each on ``views`` different-content segments of
    ``split``'s stems (:meth:`ChainData.batch`, seeded, ``fixed`` parameters held), rendered in batches of 8
    chains."""
    data, g = ChainData(split, seconds), torch.Generator().manual_seed(seed)
    parts, done = [], 0
    while done < chains:
        k = min(8, chains - done)
        b = data.batch(k, views, g, fixed)
        b["chain"] = b["chain"] + done
        parts.append(b)
        done += k
    return {"audio": torch.cat([p["audio"] for p in parts]), "chain": torch.cat([p["chain"] for p in parts]),
            "params": {n: torch.cat([p["params"][n] for p in parts]) for n in CHAIN_NAMES}}


def _embed_all(fn: Callable, audio: torch.Tensor, size: int = 32) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([np.asarray(torch.as_tensor(fn(audio[i:i + size])).double().cpu())
                               for i in range(0, audio.shape[0], size)])


def evaluate(encoders: Mapping[str, Callable], train_set: Optional[dict] = None, test_set: Optional[dict] = None,
             alpha=ALPHAS) -> dict:
    """Retrieval and linear probes of every encoder (``name -> f(audio (B, 2, T)) -> (B, D)``): retrieval on
    ``test_set`` (default :func:`examples` of TEST), the probe (:func:`linear_probe`, penalty chosen by
    cross-validation over chains) fit on ``train_set`` (default 192 chains x 2 views of TRAIN stems, seed 99) and
    scored on ``test_set``. Returns ``{name: {"retrieval": ..., "probe": {parameter:
    R^2}, "embeddings": test embeddings}}``."""
    train_set = examples("train", 192, 2, seed=99) if train_set is None else train_set
    test_set = examples("test") if test_set is None else test_set
    ya, yb = normalized_chains(train_set["params"]), normalized_chains(test_set["params"])
    out = {}
    for name, fn in encoders.items():
        ea, eb = _embed_all(fn, train_set["audio"]), _embed_all(fn, test_set["audio"])
        out[name] = {"retrieval": retrieval(eb, test_set["chain"].numpy()),
                     "probe": linear_probe(ea, ya, eb, yb, CHAIN_NAMES, alpha, train_set["chain"].numpy()),
                     "embeddings": eb}
    return out


RESULTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "benchmarks", "fx_encoder_results.json")


def read_results(path: Optional[str] = None) -> Optional[dict]:
    """The results ``benchmarks/fx_encoder.py`` wrote (``benchmarks/fx_encoder_results.json``: machine, retrieval,
    probes, the Fréchet comparison, ...); ``None`` when the file is absent (an installed package without the
    repository)."""
    path = RESULTS_FILE if path is None else path
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def retrieval_table(results: Mapping) -> str:
    """Markdown: top-1 and recall@5 of every encoder in :func:`read_results`'s ``results``, plus top-1 on the test sets
    with cues held fixed (``retrieval_held``: pan centred, pan centred and the send at -40 dB)."""
    held = results.get("retrieval_held", {})
    lines = ["| encoder | top-1 | recall@5 | " + " | ".join(f"top-1, {label}" for label in held) + " | chance (top-1) |",
             "|---|---|---|" + "---|" * len(held) + "---|"]
    for name, v in results["encoders"].items():
        t = v["retrieval"]
        lines.append(f"| {name} | {t['top1']:.1%} | {t['recall@5']:.1%} | "
                     + " | ".join(f"{by[name]['top1']:.1%}" for by in held.values()) + f" | {t['chance']:.1%} |")
    return "\n".join(lines)


def probe_table(results: Mapping) -> str:
    """Markdown: the linear probe's test R² per chain parameter (rows) and encoder (columns), with the mean."""
    enc = results["encoders"]
    lines = ["| parameter | " + " | ".join(enc) + " |", "|---|" + "---|" * len(enc)]
    lines += [f"| {n} | " + " | ".join(f"{enc[k]['probe'][n]:.2f}" for k in enc) + " |" for n in CHAIN_NAMES]
    lines.append("| **mean** | " + " | ".join(f"{sum(enc[k]['probe'][n] for n in CHAIN_NAMES) / len(CHAIN_NAMES):.2f}"
                                           for k in enc) + " |")
    return "\n".join(lines)


def frechet_table(results: Mapping, task: str) -> str:
    """Markdown: every mixer's Fréchet distance to the engineer's mixes on the log-mel and the fx_encoder embeddings
    (``results["frechet"][task]``), their ranks (1 = closest) and the stereo loss's, with Spearman's rho."""
    f = results["frechet"][task]
    d, rk = f["distances"], f["ranks"]
    lines = ["| mixer | Fréchet (log-mel) | rank | Fréchet (fx_encoder) | rank | stereo loss | rank |",
             "|---|---|---|---|---|---|---|"]
    for m in sorted(d["logmel"], key=d["logmel"].get):
        lines.append(f"| {m} | {d['logmel'][m]:.1f} | {rk['logmel'][m]} | {d['fx_encoder'][m]:.4f} | "
                     f"{rk['fx_encoder'][m]} | {d['stereo'][m]:.2f} | {rk['stereo'][m]} |")
    moved = [f"{m} {rk['logmel'][m]} -> {rk['fx_encoder'][m]}" for m in d["logmel"] if rk["logmel"][m] != rk["fx_encoder"][m]]
    return "\n".join(lines) + ("\n\nSpearman's rho between the rankings: " + ", ".join(
        f"{k} {v:+.2f}" for k, v in f["spearman"].items()) + ". Ranks that change from log-mel to fx_encoder: "
        + (", ".join(moved) or "none") + ".")
