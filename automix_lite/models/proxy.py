"""A neural proxy of the channel chain EQ -> compressor -> reverb (taught in ``notebooks/09_neural_proxies.ipynb``).

After Steinmetz (2020): the channel chain of sec. 4.2.5 (fig. 8), modelled by the FiLM-conditioned TCN
of sec. 4.3.1 (``automix_lite.models.TCN``) that receives the chain's parameters normalised to [-1, 1]
(sec. 4.3.3), trained on online-generated data (sec. 4.4) with Adam at 3e-4, the L1 loss (eq. 4.17)
and a plateau schedule (sec. 4.5), evaluated with MAE, ESR, MCD and MR-STFT (sec. 4.6) in the four
cases of Table 6 (each processor alone, then combined).

- ``SPECS``: the chain's 22 parameters (``ProxySpec``: name, low, high, unit, scale, processor) in chain
  order; ``normalize`` / ``denormalize`` map real units <-> [-1, 1]; ``sample_params`` draws them
  uniformly in the normalised domain, with the processors not in ``active`` set to bypass
  (EQ gains 0 dB; compressor ratio 1 and make-up 0 dB; reverb wet 0).
- ``channel_chain``: the differentiable DSP reference (``dsp.parametric_eq``, ``dsp.compressor``,
  ``dsp.reverb`` with the fixed noise seed ``REVERB_SEED``); deterministic.
- ``build_model`` / ``save_checkpoint`` / ``load_checkpoint`` / ``load_proxy``: the TCN proxy and its files, in
  the checkpoint format of every model of the package (``automix_lite.train``, ``automix-lite-model/1``);
  ``upgrade_checkpoint`` converts a file of the proxy's first loop (``LEGACY_FORMAT``), which
  ``load_checkpoint`` also reads.
- ``training_stems`` / ``make_batch``: random patches of the bundled stems with the augmentations of
  sec. 4.4 and optional mixup (eqs. 4.15-4.16); ``DEFAULT_CONFIG`` / ``load_config``: a training config
  (``"model": "proxy"``); ``TrainingPart``: the proxy's data, loss, schedule and validation in the steps of
  the one training loop ``automix_lite.train.train``; ``train``: that loop for a proxy config; ``evaluate`` /
  ``format_table``: the Table-6 evaluation on held-out TEST stems; ``gradient_agreement``: cosine
  similarity of the proxy's and the DSP's gradients with respect to the parameters.

The reverb's decay (T60 0.3-1.5 s) is longer than the receptive field of any TCN here (TCN-10: 325 ms,
TCN-20: 650 ms at 44.1 kHz): the proxy can only learn the part of the tail that fits in its window,
which is why the T60 range is kept modest.

Command line: ``automix train CONFIG.json --out DIR`` (e.g. ``configs/proxy_cpu.json``; the same as
``python -m automix_lite.models.proxy train CONFIG.json --out DIR``, kept as an alias) and
``python -m automix_lite.models.proxy evaluate CHECKPOINT.pt``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .._checks import check_audio, check_sample_rate
from ..dsp import compressor, parametric_eq, reverb
from ..losses import MRSTFTLoss, esr, l1
from .tcn import PRESETS, TCN, center_crop

PROCESSORS = ("eq", "compressor", "reverb")
CASES = (("equalizer", ("eq",)), ("compressor", ("compressor",)), ("reverb", ("reverb",)),
         ("combined", PROCESSORS))
"""The four test cases of Table 6: each processor alone (the others bypassed), then all three."""
METRICS = ("MAE", "ESR", "MCD", "MR-STFT")
REVERB_SEED = 0
SAMPLE_RATE = 44100
CHECKPOINT_FORMAT = "automix-lite-model/1"  # automix_lite.train.CHECKPOINT_FORMAT: one format for every model
BUNDLED_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "checkpoints", "proxy_channel.pt")

# Steinmetz (2020), Table 6, TCN-20 (528k parameters, receptive field 649.5 ms): MAE, ESR, MCD, MR-STFT.
THESIS_TCN20 = {
    "equalizer": (0.017, 0.189, 597.3, 2.608),
    "compressor": (0.006, 0.140, 618.1, 2.123),
    "reverb": (0.011, 0.038, 309.2, 1.340),
    "combined": (0.027, 0.292, 495.6, 2.315),
}

MCD_K = 25
MCD_ALPHA = 10.0 * math.sqrt(2.0) / math.log(10.0)  # eq. 4.21, about 6.14185


@dataclass(frozen=True)
class ProxySpec:
    """One chain parameter: range ``[low, high]`` in ``unit``; ``scale`` ``"linear"`` or ``"log"``; ``processor``."""

    name: str
    low: float
    high: float
    unit: str
    scale: str
    processor: str


def _spec(name, low, high, unit, scale, processor):
    return ProxySpec(name, float(low), float(high), unit, scale, processor)


# Ranges lie inside automix_lite.dsp.console.SPECS; gains, Q and the make-up are narrower and each
# peaking band gets its own decade so that the bands keep their order.
SPECS: tuple = (
    _spec("low_shelf_gain_db", -12, 12, "dB", "linear", "eq"),
    _spec("low_shelf_cutoff_hz", 30, 400, "Hz", "log", "eq"),
    _spec("peak1_gain_db", -12, 12, "dB", "linear", "eq"),
    _spec("peak1_cutoff_hz", 80, 800, "Hz", "log", "eq"),
    _spec("peak1_q", 0.5, 4, "", "log", "eq"),
    _spec("peak2_gain_db", -12, 12, "dB", "linear", "eq"),
    _spec("peak2_cutoff_hz", 300, 3000, "Hz", "log", "eq"),
    _spec("peak2_q", 0.5, 4, "", "log", "eq"),
    _spec("peak3_gain_db", -12, 12, "dB", "linear", "eq"),
    _spec("peak3_cutoff_hz", 1000, 10000, "Hz", "log", "eq"),
    _spec("peak3_q", 0.5, 4, "", "log", "eq"),
    _spec("high_shelf_gain_db", -12, 12, "dB", "linear", "eq"),
    _spec("high_shelf_cutoff_hz", 2000, 16000, "Hz", "log", "eq"),
    _spec("threshold_db", -60, 0, "dB", "linear", "compressor"),
    _spec("ratio", 1, 20, "", "log", "compressor"),
    _spec("attack_ms", 0.1, 100, "ms", "log", "compressor"),
    _spec("release_ms", 10, 1000, "ms", "log", "compressor"),
    _spec("knee_db", 0, 12, "dB", "linear", "compressor"),
    _spec("makeup_db", 0, 12, "dB", "linear", "compressor"),
    _spec("t60_s", 0.3, 1.5, "s", "log", "reverb"),
    _spec("damping", 0, 1, "", "linear", "reverb"),
    _spec("wet", 0, 0.5, "", "linear", "reverb"),
)
NAMES = tuple(s.name for s in SPECS)
N_PARAMS = len(SPECS)
GROUPS = {p: [i for i, s in enumerate(SPECS) if s.processor == p] for p in PROCESSORS}
BYPASS = {"eq": {n: 0.0 for n in NAMES if n.endswith("gain_db")},
          "compressor": {"ratio": 1.0, "makeup_db": 0.0},
          "reverb": {"wet": 0.0}}
"""Real-unit settings that switch each processor off (the other parameters then do not matter)."""

_LOW = torch.tensor([s.low for s in SPECS], dtype=torch.float64)
_HIGH = torch.tensor([s.high for s in SPECS], dtype=torch.float64)
_LOG = torch.tensor([s.scale == "log" for s in SPECS])


def _check_params(p: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(p, torch.Tensor) or p.ndim != 2 or p.shape[1] != N_PARAMS:
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        raise ValueError(f"{name} must be a tensor of shape (batch, {N_PARAMS}) in the order of proxy.NAMES; got {shape}.")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return p


def normalize(values: torch.Tensor) -> torch.Tensor:
    """Real units ``(B, P)`` -> [-1, 1] ``(B, P)`` (sec. 4.3.3); log-scaled parameters map geometrically."""
    v = _check_params(values, "values")
    low, high, log = _LOW.to(v), _HIGH.to(v), _LOG.to(v.device)
    lin = (v - low) / (high - low)
    safe_low = torch.where(log, low, torch.ones_like(low))  # keeps log() finite (and its gradient) off the log rows
    geo = torch.log(torch.where(log, v, safe_low).clamp_min(1e-12) / safe_low) / torch.log(_log_span(log, low, high))
    return 2.0 * torch.where(log, geo, lin) - 1.0


def denormalize(norm: torch.Tensor) -> torch.Tensor:
    """[-1, 1] ``(B, P)`` -> real units ``(B, P)``; values are clamped to [-1, 1] first. Differentiable."""
    u = (_check_params(norm, "params_norm").clamp(-1.0, 1.0) + 1.0) / 2.0
    low, high, log = _LOW.to(u), _HIGH.to(u), _LOG.to(u.device)
    lin = low + (high - low) * u
    geo = low * torch.exp(u * torch.log(_log_span(log, low, high)))
    return torch.where(log, geo, lin)


def _log_span(log: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``high / low`` on log-scaled rows, e on the others (whose low may be 0), so no NaN reaches a gradient."""
    return torch.where(log, high / torch.where(log, low, torch.ones_like(low)), torch.full_like(low, math.e))


def _check_active(active) -> tuple:
    active = (active,) if isinstance(active, str) else tuple(active)
    bad = [a for a in active if a not in PROCESSORS]
    if bad:
        raise ValueError(f"active must name processors among {PROCESSORS}; got {bad}.")
    return active


def _normalized_value(spec: ProxySpec, value: float) -> float:
    if spec.scale == "log":
        return 2.0 * math.log(value / spec.low) / math.log(spec.high / spec.low) - 1.0
    return 2.0 * (value - spec.low) / (spec.high - spec.low) - 1.0


def bypass(params_norm: torch.Tensor, active: Sequence[str] = PROCESSORS) -> torch.Tensor:
    """A copy of ``params_norm`` ``(B, P)`` with every processor not in ``active`` set to its bypass (``BYPASS``)."""
    out = _check_params(params_norm, "params_norm").clone()
    active = _check_active(active)
    for proc in PROCESSORS:
        if proc not in active:
            for name, value in BYPASS[proc].items():
                i = NAMES.index(name)
                out[:, i] = _normalized_value(SPECS[i], value)
    return out


def sample_params(batch: int, generator: Optional[torch.Generator] = None, active: Sequence[str] = PROCESSORS,
                  dtype=torch.float32) -> torch.Tensor:
    """Normalised parameters ``(batch, P)`` drawn uniformly in [-1, 1] (sec. 4.4), inactive processors bypassed."""
    u = torch.rand(batch, N_PARAMS, generator=generator, dtype=torch.float64)
    return bypass(2.0 * u - 1.0, active).to(dtype)


def channel_chain(x: torch.Tensor, sample_rate: float, params_norm: torch.Tensor) -> torch.Tensor:
    """The DSP reference: parametric EQ -> compressor -> convolution reverb (fig. 8) on mono ``x`` ``(B, 1, T)``.

    ``params_norm``: ``(B, P)`` in [-1, 1] (order ``NAMES``); returns ``(B, 1, T)``. Differentiable in ``x``
    and ``params_norm``; deterministic (the reverb's noise uses ``REVERB_SEED``).
    """
    check_audio(x, channels=1)
    sr = check_sample_rate(sample_rate)
    p = _check_params(params_norm, "params_norm")
    if p.shape[0] != x.shape[0]:
        raise ValueError(f"params_norm has {p.shape[0]} rows but x has batch size {x.shape[0]}; give one row per item.")
    v = dict(zip(NAMES, denormalize(p.to(x.dtype)).unbind(1)))
    peaks = [1, 2, 3]
    y = parametric_eq(
        x, sr,
        low_shelf_gain_db=v["low_shelf_gain_db"], low_shelf_cutoff_hz=v["low_shelf_cutoff_hz"],
        peak_gains_db=torch.stack([v[f"peak{k}_gain_db"] for k in peaks], 1),
        peak_cutoffs_hz=torch.stack([v[f"peak{k}_cutoff_hz"] for k in peaks], 1),
        peak_qs=torch.stack([v[f"peak{k}_q"] for k in peaks], 1),
        high_shelf_gain_db=v["high_shelf_gain_db"], high_shelf_cutoff_hz=v["high_shelf_cutoff_hz"],
    )
    # A processor bypassed in every row is skipped when no gradient is needed (same output, less work).
    grad = torch.is_grad_enabled() and (p.requires_grad or x.requires_grad)
    if grad or not bool(((v["ratio"] == 1) & (v["makeup_db"] == 0)).all()):
        y = compressor(y, sr, v["threshold_db"], v["ratio"], v["attack_ms"], v["release_ms"], v["knee_db"],
                       v["makeup_db"])
    if grad or bool((v["wet"] != 0).any()):
        y = reverb(y, sr, t60_s=v["t60_s"], wet=v["wet"], damping=v["damping"], seed=REVERB_SEED)
    return y


# --------------------------------------------------------------------------------------------
# model and checkpoints
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "model": "proxy",
    "preset": "tcn10", "channels": 16, "n_blocks": None, "kernel_size": None,
    "steps": 1000, "batch_size": 8, "patch_seconds": 0.5, "sample_rate": SAMPLE_RATE,
    "lr": 3e-4, "lr_factor": 0.5, "lr_patience": 3, "grad_clip": 1.0, "mixup_alpha": 0.0,
    "augment": True, "log_every": 25, "val_every": 100, "val_examples": 8, "max_seconds": None,
    "seed": 0, "device": "auto", "threads": None, "init": None, "direct": False,
    "stft_weight": 0.0,
}
"""The keys of a proxy's training config (``"model": "proxy"``) and their defaults; a JSON config overrides
any of them (``automix_lite.train.load_config``, which checks every value). ``init``: a proxy checkpoint to
continue from (its weights and history; ``steps`` more steps, the optimiser and schedule start afresh).
``direct``: add the input to the TCN's output and start at the identity (``TCN(direct=True)``; the thesis'
network has no such path). ``stft_weight``: add that multiple of ``losses.MRSTFTLoss`` (Table 5 resolutions) to
the L1 loss. ``lr_factor`` / ``lr_patience``: the plateau schedule. ``max_seconds``: end a session after the
step that passes it (``null``: no limit)."""

_CHOICES = {"model": ("proxy",), "preset": tuple(PRESETS)}
_WHOLE = {"steps": 1, "batch_size": 1, "lr_patience": 0, "log_every": 1, "val_every": 1, "val_examples": 1, "seed": 0}
_REAL = {"patch_seconds": (0, None, False), "sample_rate": (0, None, False), "lr": (0, None, False),
         "lr_factor": (0, 1, False), "grad_clip": (0, None, False), "mixup_alpha": (0, None, True),
         "stft_weight": (0, None, True)}  # key: (low, high, low allowed)


def config_problems(cfg: dict) -> list:
    """One message per bad value of a full proxy config, each naming its key (``train.load_config`` raises them)."""
    from .. import train

    problems = train._value_problems(cfg, _CHOICES, _WHOLE, _REAL)
    if cfg["lr_factor"] == 1:
        problems.append("lr_factor must be below 1 (the plateau schedule multiplies the learning rate by it); got 1")
    for key in ("channels", "n_blocks", "kernel_size"):
        v = cfg[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            problems.append(f"{key} must be null (the preset's) or a whole number >= 1; got {v!r}")
    v = cfg["max_seconds"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
        problems.append(f"max_seconds must be null (no limit) or a positive number of seconds; got {v!r}")
    for key in ("augment", "direct"):
        if not isinstance(cfg[key], bool):
            problems.append(f"{key} must be true or false; got {cfg[key]!r}")
    if cfg["init"] is not None and (not isinstance(cfg["init"], str) or not cfg["init"]):
        problems.append(f"init must be null or the path of a proxy checkpoint; got {cfg['init']!r}")
    return problems + train._runtime_problems(cfg)


def load_config(path_or_dict) -> dict:
    """``DEFAULT_CONFIG`` updated with a JSON file or a dict (``"model"`` may be left out), every value checked by
    ``automix_lite.train.load_config``; unknown keys and bad values raise a ``ValueError`` naming them."""
    from .. import train

    cfg = train.load_config(path_or_dict, default_model="proxy")
    if cfg["model"] != "proxy":
        raise ValueError(f"the config describes a {cfg['model']!r} model, not the channel-chain proxy "
                         "(\"model\": \"proxy\"); train it with `automix train CONFIG --out DIR`.")
    return cfg


def build_model(config: dict) -> TCN:
    """The TCN of ``config`` (preset with optional ``channels`` / ``n_blocks`` / ``kernel_size``), ``cond_dim = P``."""
    overrides = {k: config[k] for k in ("channels", "n_blocks", "kernel_size") if config.get(k) is not None}
    return TCN.preset(config["preset"], cond_dim=N_PARAMS, direct=bool(config.get("direct", False)), **overrides)


def save_checkpoint(path: str, model: TCN, config: dict, metrics: Optional[dict] = None,
                    history: Optional[dict] = None, extra: Optional[dict] = None,
                    version: Optional[str] = None) -> str:
    """Write model weights (float32), config, metrics and history to ``path``; returns the payload's sha256.

    The checkpoint of every model of the package (``automix_lite.train.save_checkpoint``, format
    ``automix-lite-model/1``, checksummed), with ``extra["names"] = NAMES``; ``version`` (default: the code
    now) records the code that trained the weights.
    """
    from .. import train

    return train.save_checkpoint(path, model, load_config(config), history, metrics,
                                 extra={**(extra or {}), "names": list(NAMES)}, version=version)


LEGACY_FORMAT = "automix-lite-proxy-1"
"""The format of the checkpoints of the proxy's first training loop (before issue 12); read and converted by
``load_checkpoint`` and ``upgrade_checkpoint``."""

_HINT = "train one with `automix train configs/proxy_cpu.json --out DIR`"


def _format_of(path: str):
    from .._checkpoint import _load

    outer = _load(path, path, "proxy checkpoint")
    return outer.get("format") if isinstance(outer, dict) else None


def _upgraded(data: dict, digest: str, code_version: Optional[str] = None, history: Optional[dict] = None) -> dict:
    """The payload of a checkpoint of the first loop in the format of ``automix_lite.train``: the same state-dict
    tensors, the config with ``"model": "proxy"``, the history with the keys the one loop writes (what the old
    history cannot tell, such as the ``device``, is taken from ``history`` or ``None``), ``extra`` with the names
    and the old file's payload sha256 (``converted_from``)."""
    from .. import train

    if not isinstance(data.get("state_dict"), dict) or not isinstance(data.get("config"), dict):
        raise ValueError(f"a {LEGACY_FORMAT} checkpoint holds its weights and config as objects; this one does not.")
    cfg = train.load_config({k: v for k, v in data["config"].items() if k != "model"}, default_model="proxy")
    h = dict(data.get("history") or {})
    vals = [v for v in h.get("val_loss", []) if isinstance(v, float) and math.isfinite(v)]
    done, wall = h.get("steps_done"), h.get("wall_seconds")
    h.update(history or {})
    for key, value in (("device", None), ("device_name", None), ("threads", cfg["threads"]),
                       ("best_val", min(vals) if vals else None),
                       ("steps_per_second", done / wall if done and wall else None), ("world_size", 1),
                       ("steps_override", None)):
        h.setdefault(key, value)
    return {"state_dict": data["state_dict"], "config": cfg, "history": h, "metrics": data.get("metrics") or {},
            "code_version": code_version or f"unknown (the proxy's first training loop, {LEGACY_FORMAT})",
            "extra": {"names": list(data.get("names") or []),
                      "converted_from": {"format": LEGACY_FORMAT, "sha256": digest}}}


def upgrade_checkpoint(src: str, dst: Optional[str] = None, code_version: Optional[str] = None,
                       history: Optional[dict] = None) -> str:
    """Convert a checkpoint of the proxy's first loop (``LEGACY_FORMAT``) into the format of every model of the
    package, in ``dst`` (default: in place); returns the new payload's sha256. The state-dict tensors are stored
    as they were, bit for bit; ``code_version`` and ``history`` (e.g. ``{"device": "cpu"}``) record what the old
    file does not."""
    from .. import _checkpoint, train

    data, digest = _checkpoint.read(src, LEGACY_FORMAT, "proxy checkpoint of the first training loop")
    return _checkpoint.write(dst or src, _upgraded(data, digest, code_version, history), train.CHECKPOINT_FORMAT)


def load_checkpoint(path: str = BUNDLED_CHECKPOINT, device: str = "cpu") -> dict:
    """Read a proxy checkpoint (``automix train`` with ``"model": "proxy"``, or the first loop's format, converted
    on reading); the payload's sha256 is verified.

    Returns ``automix_lite.train.load_checkpoint``'s dict: ``{"model" (TCN in eval mode), "config", "metrics",
    "history", "code_version", "extra", "sha256"}``; a modified or truncated file, or one of another model,
    raises a ``ValueError`` saying so.
    """
    from .. import _checkpoint, train

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}; {_HINT}.")
    if _format_of(path) == LEGACY_FORMAT:
        data, digest = _checkpoint.read(path, LEGACY_FORMAT, "proxy checkpoint", _HINT)
        ck = train._from_payload(_upgraded(data, digest), digest, path, device)
    else:
        ck = train.load_checkpoint(path, device)
    if ck["config"]["model"] != "proxy":
        raise ValueError(f"{path} holds a {ck['config']['model']} model, not a channel-chain proxy; {_HINT}.")
    return ck


def load_proxy(path: str = BUNDLED_CHECKPOINT) -> TCN:
    """The proxy TCN of a checkpoint (default: the bundled one), in eval mode."""
    return load_checkpoint(path)["model"]


# --------------------------------------------------------------------------------------------
# data (sec. 4.4)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _stems_of(split: str) -> tuple:
    from .. import data

    stems = []
    for task in ("songs", "drums"):
        for entry in data.songs(task, split):
            stems.extend(data.load_song(entry["id"])["tracks"])
    return tuple(stems)


def training_stems(split: str = "train") -> list:
    """Every mono stem ``(T,)`` of the bundled songs and drum passages of ``split`` (decoded once, cached)."""
    return list(_stems_of(split))


def _patch(stems, n: int, g: torch.Generator, silence_db: float, tries: int = 50) -> torch.Tensor:
    for _ in range(tries):
        s = stems[int(torch.randint(len(stems), (1,), generator=g))]
        if s.shape[-1] < n:
            continue
        start = int(torch.randint(s.shape[-1] - n + 1, (1,), generator=g))
        x = s[start:start + n]
        if 10 * math.log10(float(x.square().mean()) + 1e-20) > silence_db:
            return x
    raise ValueError(f"found no patch of {n} samples louder than {silence_db} dBFS RMS in {tries} tries; "
                     "give longer or louder stems, or lower silence_db.")


def _augment(x: torch.Tensor, stems, g: torch.Generator, silence_db: float) -> torch.Tensor:
    """Sec. 4.4: amplitude scaling, polarity inversion, mixing two samples, white noise, zeroed samples / block."""
    def chance(p):
        return float(torch.rand((), generator=g)) < p

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    n = x.shape[-1]
    if chance(0.25):
        x = x + _patch(stems, n, g, silence_db)
    x = x * 10 ** (uniform(-12.0, 6.0) / 20)
    if chance(0.5):
        x = -x
    if chance(0.1):
        x = x + 10 ** (uniform(-80.0, -50.0) / 20) * torch.randn(n, generator=g)
    if chance(0.05):
        x = x * (torch.rand(n, generator=g) > 0.01)
    if chance(0.05):
        length = int(uniform(0.0, 0.25) * n)
        start = int(torch.randint(n - length + 1, (1,), generator=g))
        x = x.clone()
        x[start:start + length] = 0.0
    return x / max(1.0, float(x.abs().max()))


def make_batch(stems, batch_size: int, n_samples: int, generator: torch.Generator,
               sample_rate: float = SAMPLE_RATE, active: Sequence[str] = PROCESSORS, augment: bool = True,
               mixup_alpha: float = 0.0, silence_db: float = -50.0) -> dict:
    """A training batch: ``{"x": (B, 1, T), "params": (B, P), "y": (B, 1, T)}`` with ``y = channel_chain(x, params)``.

    Random patches of ``n_samples`` from ``stems`` (a list of ``(T,)`` tensors), skipping those quieter
    than ``silence_db`` (RMS, dBFS), with the augmentations of sec. 4.4 when ``augment``; fresh
    parameters (``sample_params``, ``active``) every call. With ``mixup_alpha > 0`` each item is
    ``lambda (x_i, y_i) + (1 - lambda) (x_j, y_j)`` (eqs. 4.15-4.16, ``lambda ~ Beta(alpha, alpha)``)
    where ``x_j`` is a second patch processed with the same parameters. Deterministic given the generator.
    """
    if not stems:
        raise ValueError("stems is empty: pass a list of (T,) tensors, e.g. proxy.training_stems('train').")

    def patches():
        xs = [_patch(stems, n_samples, generator, silence_db) for _ in range(batch_size)]
        if augment:
            xs = [_augment(x, stems, generator, silence_db) for x in xs]
        return torch.stack(xs).unsqueeze(1).float()

    x = patches()
    params = sample_params(batch_size, generator, active)
    with torch.no_grad():
        y = channel_chain(x, sample_rate, params)
        if mixup_alpha > 0:
            x2 = patches()
            y2 = channel_chain(x2, sample_rate, params)
            seed = int(torch.randint(2 ** 31, (1,), generator=generator))
            lam = torch.from_numpy(np.random.default_rng(seed).beta(mixup_alpha, mixup_alpha, batch_size)).float()
            lam = lam.view(-1, 1, 1)
            x, y = lam * x + (1 - lam) * x2, lam * y + (1 - lam) * y2
    return {"x": x, "params": params, "y": y.float()}


# --------------------------------------------------------------------------------------------
# metrics (sec. 4.6)
# --------------------------------------------------------------------------------------------


def mfcc(x: torch.Tensor, sample_rate: float, k: int = MCD_K) -> np.ndarray:
    """MFCCs ``(B, k, frames)`` of mono ``x`` ``(B, 1, T)``: ``librosa.feature.mfcc(n_mfcc=k)`` with its defaults.

    Those are: power STFT with n_fft 2048, hop 512, Hann window, centred; 128 Slaney mel bands
    (0 Hz to Nyquist); ``power_to_db`` (10 log10, amin 1e-10, ref 1, top_db 80); DCT-II, orthonormal;
    c0 included.
    """
    import librosa

    return librosa.feature.mfcc(y=x[:, 0].detach().cpu().double().numpy(), sr=sample_rate, n_mfcc=k)


def mcd(pred: torch.Tensor, target: torch.Tensor, sample_rate: float, k: int = MCD_K) -> torch.Tensor:
    """Mel cepstral distortion per item ``(B,)``, eqs. 4.20-4.21: ``alpha * mean_frames ||C_hat - C||_2``.

    ``C`` are the first ``k`` (25) MFCCs of ``mfcc`` (c0 included), ``alpha = 10 sqrt(2) / ln 10``.
    Because the MFCCs are on a dB scale the values are of the order of hundreds, as in Table 6.
    """
    d = mfcc(pred, sample_rate, k) - mfcc(target, sample_rate, k)
    return torch.from_numpy(MCD_ALPHA * np.sqrt((d ** 2).sum(1)).mean(-1))


def metrics(pred: torch.Tensor, target: torch.Tensor, sample_rate: float, mrstft: Optional[MRSTFTLoss] = None) -> dict:
    """``{"MAE", "ESR", "MCD", "MR-STFT"}`` -> per-item values ``(B,)`` for mono ``pred``, ``target`` ``(B, 1, T)``.

    MAE (eq. 4.17) and ESR (eq. 4.19 without its 1/(n-1)) are ``losses.l1`` and ``losses.esr`` per item;
    MR-STFT is ``losses.MRSTFTLoss`` with the resolutions of Table 5, computed item by item.
    """
    mrstft = mrstft or MRSTFTLoss()
    with torch.no_grad():
        stft = torch.stack([mrstft(p[None], t[None]) for p, t in zip(pred, target)])
        return {"MAE": l1(pred, target, reduction="none"), "ESR": esr(pred, target, reduction="none"),
                "MCD": mcd(pred, target, sample_rate),
                "MR-STFT": stft}


def _examples(stems, n: int, n_samples: int, seed: int, active, sample_rate) -> dict:
    g = torch.Generator().manual_seed(seed)
    return make_batch(stems, n, n_samples, g, sample_rate, active, augment=False)


def predict(model: TCN, x: torch.Tensor, params_norm: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """The proxy's output for ``x`` ``(B, 1, T)``: ``(B, 1, T - rf + 1)`` (valid convolutions), in eval mode, chunked."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk].to(device), params_norm[i:i + chunk].to(device)).cpu()
                          for i in range(0, x.shape[0], chunk)])


def evaluate(model: TCN, n_examples: int = 20, seconds: float = 2.0, seed: int = 1234, split: str = "test",
             cases=CASES, sample_rate: float = SAMPLE_RATE, stems=None, dry: bool = False) -> dict:
    """Table 6 on held-out stems: ``{case: {metric: (mean, std)}}`` for the four ``CASES``.

    For each case, ``n_examples`` fixed patches (seeded by ``seed``, no augmentation) of the ``split``
    stems, ``seconds`` of output plus the receptive field as context, fresh parameters with the other
    processors bypassed; the target is the centre of ``channel_chain`` over the whole patch.
    ``dry=True`` scores the unprocessed input on the same patches instead of the model (the floor a
    useful proxy must beat).
    """
    stems = training_stems(split) if stems is None else stems
    rf = model.receptive_field
    n_out = round(seconds * sample_rate)
    out, mrstft = {}, MRSTFTLoss()
    for i, (case, active) in enumerate(cases):
        ex = _examples(stems, n_examples, n_out + rf - 1, seed + i, active, sample_rate)
        pred = center_crop(ex["x"], n_out) if dry else predict(model, ex["x"], ex["params"])
        values = metrics(pred, center_crop(ex["y"], n_out), sample_rate, mrstft)
        out[case] = {m: (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0) for m, v in values.items()}
    return out


def format_table(results: dict, reference: Optional[dict] = THESIS_TCN20) -> str:
    """Markdown table in the layout of Table 6: one row per case, ``mean (std)`` per metric, thesis TCN-20 alongside."""
    head = "| Case | " + " | ".join(METRICS)
    rule = "|---|" + "---|" * len(METRICS)
    if reference:
        head += " | " + " | ".join(f"{m} (thesis TCN-20)" for m in METRICS)
        rule += "---|" * len(METRICS)
    lines = [head + " |", rule]
    for case, cell in results.items():
        row = [f"{cell[m][0]:.4g} ({cell[m][1]:.3g})" for m in METRICS]
        if reference:
            row += [f"{v:g}" for v in reference.get(case, ("",) * len(METRICS))]
        lines.append(f"| {case} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def gradient_agreement(model: TCN, x: torch.Tensor, params_norm: torch.Tensor, target: torch.Tensor,
                       sample_rate: float = SAMPLE_RATE) -> dict:
    """Cosine similarity, per processor group, of ``d L / d params`` through the proxy and through the DSP.

    ``L = mean |f(x, params) - target|`` on the proxy's output samples (``target`` ``(B, 1, T)`` aligned
    with ``x``, e.g. ``channel_chain(x, other_params)``); the cosine is taken over the batch and the
    group's parameters. Returns ``{"eq", "compressor", "reverb", "all"}`` -> float.
    """
    model.eval()
    n_out = model.output_length(x.shape[-1])
    tgt = center_crop(target, n_out)
    grads = []
    for fn in (lambda p: model(x, p), lambda p: center_crop(channel_chain(x, sample_rate, p), n_out)):
        p = params_norm.detach().clone().requires_grad_(True)
        (fn(p) - tgt).abs().mean().backward()
        grads.append(p.grad.detach())

    def cos(a, b):
        return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    out = {g: cos(grads[0][:, idx], grads[1][:, idx]) for g, idx in GROUPS.items()}
    out["all"] = cos(grads[0], grads[1])
    return out


# --------------------------------------------------------------------------------------------
# training (sec. 4.5): the proxy's part of automix_lite.train's loop
# --------------------------------------------------------------------------------------------


def optimiser(cfg: dict, params) -> tuple:
    """``(Adam at lr, ReduceLROnPlateau(lr_factor, lr_patience))``: the proxy's optimiser and schedule (sec. 4.5)."""
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg["lr_factor"], patience=cfg["lr_patience"])


def continue_from(path: str, model: TCN) -> tuple:
    """``init``: load the weights of the proxy checkpoint ``path`` into ``model``; returns ``(history lists,
    steps done, seconds spent)`` of that checkpoint, which the run goes on from."""
    from .. import train

    previous = load_checkpoint(path)
    try:
        model.load_state_dict(previous["model"].state_dict())
    except RuntimeError as err:
        raise ValueError(f"init {path} does not fit the model of this config ({str(err).splitlines()[0]}); give the "
                         "preset, channels and kernel_size it was trained with.") from None
    h = previous["history"]
    try:
        return ({k: list(h[k]) for k in train._HISTORY_LISTS}, int(h["steps_done"]), float(h["wall_seconds"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"init {path} has no complete training history ({type(err).__name__}: {err}); continue "
                         "from a checkpoint that automix train wrote.") from None


class TrainingPart:
    """The proxy's pieces of the steps of ``automix_lite.train``'s loop (``"model": "proxy"``), built by its
    ``_setup`` after the model, with the methods of ``train._MixingPart``.

    Data (sec. 4.4): ``batch`` draws ``batch_size`` fresh random patches of ``patch_seconds`` output plus the
    receptive field from ``stems`` (default: every TRAIN stem, ``training_stems``) with ``make_batch`` (its
    augmentations and mixup), all from one generator seeded ``seed + done``; ``state`` / ``set_state`` carry that
    generator through ``last.pt``. ``loss``: L1 (eq. 4.17) on the valid output samples plus ``stft_weight`` x
    ``MRSTFTLoss``. ``stepped``: nothing (no per-step schedule). ``validate``: the L1 on ``val_examples`` fixed
    patches of ``val_stems`` (default: the VAL stems; seed ``seed + 1``, no augmentation, all processors);
    ``validated``: the plateau schedule steps on it at every ``val_every``-th step (not at a run's early end, so a
    stopped and resumed run trains what a straight run does). ``extra``: the parameter names, in every checkpoint.
    """

    loss_name = "L1 (+ stft_weight x MR-STFT)"

    def __init__(self, cfg: dict, model: TCN, device, done: int = 0, data=None):
        if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
            raise ValueError("data must be (train_stems, val_stems): two lists of mono (T,) tensors (or None for "
                             "the bundled split).")
        train_stems, val_stems = (None, None) if data is None else data
        self.cfg, self.device, self.sr = cfg, device, cfg["sample_rate"]
        self.stems = training_stems("train") if train_stems is None else list(train_stems)
        val_stems = training_stems("val") if val_stems is None else list(val_stems)
        self.n_out = round(cfg["patch_seconds"] * self.sr)
        self.n_in = self.n_out + model.receptive_field - 1
        self.generator = torch.Generator().manual_seed(cfg["seed"] + done)  # a continued run draws new batches
        self.val = _examples(val_stems, cfg["val_examples"], self.n_in, cfg["seed"] + 1, PROCESSORS, self.sr)
        self.val_y = center_crop(self.val["y"], self.n_out)
        self.mrstft = MRSTFTLoss().to(device)
        self.extra = {"names": list(NAMES)}

    def describe(self, model: TCN, device, start: int, end: int) -> str:
        c, rf = self.cfg, model.receptive_field
        return (f"proxy: {c['preset']} channels={c['channels']} rf={rf} ({1000 * rf / self.sr:.1f} ms) "
                f"params={model.n_params} device={device} in={self.n_in} out={self.n_out} samples, steps "
                f"{start + 1}-{end}")

    def batch(self, run, step: int) -> dict:
        c = self.cfg
        return make_batch(self.stems, c["batch_size"], self.n_in, self.generator, self.sr, PROCESSORS, c["augment"],
                          c["mixup_alpha"])

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        pred = net(batch["x"].to(self.device), batch["params"].to(self.device))
        target = center_crop(batch["y"].to(self.device), self.n_out)
        loss = (pred - target).abs().mean()
        if self.cfg["stft_weight"]:
            loss = loss + self.cfg["stft_weight"] * self.mrstft(pred, target)
        return loss

    def stepped(self, run) -> None:
        pass

    def validate(self, run) -> float:
        return float((predict(run.model, self.val["x"], self.val["params"]) - self.val_y).abs().mean())

    def validated(self, run, step: int, value: float) -> None:
        if step % self.cfg["val_every"] == 0:
            run.sched.step(value)

    def state(self) -> dict:
        return {"data_rng": self.generator.get_state()}

    def set_state(self, state: dict) -> None:
        self.generator.set_state(state["data_rng"])


def train(config, out: Optional[str] = None, stems=None, val_stems=None, log=print, resume: bool = False,
          overwrite: bool = False, steps: Optional[int] = None, progress: bool = False):
    """Train a proxy with ``config`` (dict or JSON path, see ``DEFAULT_CONFIG``; ``"model"`` may be left out);
    returns ``(model, history)``. The loop is ``automix_lite.train.train`` (the one of every model; this is
    ``automix train CONFIG --out DIR``): Adam (``lr``, 3e-4 in the thesis), L1 loss (eq. 4.17; plus
    ``stft_weight`` x MR-STFT) on the valid output samples, gradient-norm clipping, and ``ReduceLROnPlateau``
    (``lr_factor`` after ``lr_patience`` validations without improvement) stepped on a fixed validation batch
    (VAL stems) every ``val_every`` steps. Stops after ``steps`` or ``max_seconds``.

    ``stems`` / ``val_stems``: lists of mono ``(T,)`` tensors instead of the bundled TRAIN / VAL stems. With
    ``out`` the run's files go there (``last.pt``, ``best.pt``, ``history.json``, ``loss_curve.png``); ``resume``,
    ``overwrite`` and ``steps`` as in ``automix_lite.train.train``.
    """
    from .. import train as loop

    data = None if stems is None and val_stems is None else (stems, val_stems)
    return loop.train(load_config(config), out=out, resume=resume, progress=progress, log=log, overwrite=overwrite,
                      steps=steps, data=data)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m automix_lite.models.proxy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a proxy from a JSON config (the same as `automix train CONFIG --out DIR`)")
    t.add_argument("config")
    t.add_argument("--out", required=True, help="folder for last.pt, best.pt, history.json and loss_curve.png")
    t.add_argument("--steps", type=int, help="train N steps instead of the config's")
    t.add_argument("--resume", action="store_true", help="continue DIR/last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in DIR")
    e = sub.add_parser("evaluate", help="Table 6 metrics of a checkpoint on the TEST stems")
    e.add_argument("checkpoint", nargs="?", default=BUNDLED_CHECKPOINT)
    e.add_argument("--examples", type=int, default=20)
    e.add_argument("--seconds", type=float, default=2.0)
    e.add_argument("--save", action="store_true", help="store the metrics (and the dry reference) in the checkpoint")
    args = parser.parse_args(argv)
    if args.command == "train":
        try:
            train(args.config, out=args.out, resume=args.resume, overwrite=args.overwrite, steps=args.steps)
        except (ValueError, OSError) as err:
            raise SystemExit(f"{parser.prog} train: error: {err}") from None
        return
    ck = load_checkpoint(args.checkpoint)
    results = evaluate(ck["model"], args.examples, args.seconds)
    dry = evaluate(ck["model"], args.examples, args.seconds, dry=True)
    print(format_table(results))
    print("\nThe same examples with the dry input passed through unchanged:\n")
    print(format_table(dry, reference=None))
    if args.save:  # the weights, history, extra and code version stay; only the metrics change
        save_checkpoint(args.checkpoint, ck["model"], ck["config"],
                        {"table6": results, "dry": dry, "examples": args.examples, "seconds": args.seconds},
                        ck["history"], extra=ck["extra"], version=ck["code_version"])


if __name__ == "__main__":
    main()
