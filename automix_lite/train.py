"""Training the mixing models and the channel-chain proxy (taught in ``notebooks/13_training.ipynb``).

One readable loop for the DMC, the Mix-Wave-U-Net and the neural proxy of the channel chain, driven by a JSON
config (``DEFAULT_CONFIG`` lists every key of the mixing models, :data:`PROXY_DEFAULT_CONFIG` those of
``"model": "proxy"``; ``configs/*.json`` are the recorded ones). Run one with
``automix train CONFIG --out DIR``. The loop is a sequence of named steps (:func:`_setup`, :func:`_optimise`,
:func:`_validate`, :func:`_save`, :func:`_summary`, :func:`_finish`); what differs between the model families
(data, loss, schedule, validation) is a *part* they call (:class:`_MixingPart` for the mixing models,
:class:`_ProxyPart` for the proxy). Every run writes the same files (``best.pt``,
``last.pt`` in the checkpoint format ``automix-lite-model/1``, ``history.json``, ``loss_curve.png``) with the
same history keys.

The mixing models (DMC, Mix-Wave-U-Net):

- Data: :class:`automix_lite.data.BundledDataset` segments of the TRAIN split (``task`` songs or drums),
  the engineer's stored mix as the target, gain augmentation (``gain_augment_db``: each stem is scaled by
  a random gain and the target stays the same, so the model must listen to levels). Item ``i`` of step
  ``s`` is always the same (seeded), so a resumed run sees the data a straight run would have seen.
- Loss: ``losses.StereoLoss`` (sum/difference MR-STFT, thesis eq. 5.3) of the mix against the target;
  ``param_weight`` > 0 adds an L1 loss on the normalised gain and pan against the engineer's (DMC only).
- Optimiser: Adam or AdamW; schedule: linear warm-up then cosine decay to ``lr * final_lr_fraction``,
  stepped every step (``"constant"`` turns it off); gradient-norm clipping; mixed precision (bfloat16
  autocast for the networks, the console in float32) on CUDA when ``amp`` is true.
- Validation every ``val_every`` steps on fixed VAL segments; the best and the last model are saved
  (``best.pt``, ``last.pt``) with the config, the history, the package version and git commit, and a
  sha256 of the payload that :func:`load_checkpoint` verifies. ``resume=True`` continues ``last.pt``
  (weights, optimiser, schedule, history). ``history.json`` and ``loss_curve.png`` are written too.
- One machine or many: ``automix train CONFIG --out DIR --nproc N`` starts N processes (one per GPU with
  CUDA, NCCL; gloo on CPU) and ``torchrun ... -m automix_lite.train CONFIG --out DIR`` runs under PyTorch's
  launcher. The model is wrapped in ``DistributedDataParallel``; ``batch_size`` stays the *global* batch, of
  which every rank takes its slice ``batch_size / N`` of the same items, and BatchNorm statistics, dropout
  masks and the loss are those of the global batch, so N processes train the weights one process would
  (see :func:`train`). Only rank 0 validates, logs and writes files.

The proxy (``"model": "proxy"``, e.g. ``configs/proxy_cpu.json``; the model, its checkpoints and its Table-6
evaluation are :mod:`automix_lite.models.proxy`, its training is all here): random patches of the bundled stems
(:func:`proxy_stems`) drawn on the fly by :func:`proxy_batch` from one seeded generator, the target rendered by the
DSP chain; loss L1 (+ ``stft_weight`` x MR-STFT); Adam with a plateau schedule (``lr_factor``, ``lr_patience``)
stepped by the validation L1 on fixed VAL patches every ``val_every`` steps; ``init`` continues the weights and
history of another proxy checkpoint for ``steps`` more steps; ``max_seconds`` ends a session early. It trains in
one process. With the same global random state its weights equal, bit for bit, those of the proxy's first,
separate loop (``tests/test_train_proxy.py``).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import numbers
import os
import subprocess
import sys
import time
from typing import Optional

import torch

from . import __version__, _checkpoint
from ._checks import read_json
from .losses import MRSTFTLoss, StereoLoss

__all__ = ["DEFAULT_CONFIG", "PROXY_DEFAULT_CONFIG", "load_config", "build_model", "train", "save_checkpoint",
           "load_checkpoint", "proxy_stems", "proxy_batch", "pretrain_encoder", "plot_history", "code_version",
           "lr_schedule", "main"]

CHECKPOINT_FORMAT = "automix-lite-model/1"

DEFAULT_CONFIG = {
    "model": "dmc",  # "dmc" or "wave_u_net" ("proxy": the keys of PROXY_DEFAULT_CONFIG instead)
    "model_args": {},  # keyword arguments of DMC(...) or MixWaveUNet(...)
    "task": "songs",  # "songs" or "drums"
    "engineer": "natural",
    "stems": "dry",  # the mixer's input: "dry" stems, "wet" (after the engineer's strips) or "fxnorm" (wet, FX-normalised)
    "segment_seconds": 4.0,
    "max_tracks": 8,
    "gain_augment_db": 6.0,
    "batch_size": 4,
    "steps": 1000,
    "optimizer": "adamw",  # "adam" or "adamw"
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "schedule": "cosine",  # "cosine" (after warm-up) or "constant"
    "warmup_steps": 50,
    "final_lr_fraction": 0.05,
    "grad_clip": 1.0,
    "param_weight": 0.0,
    "encoder_pretrain_steps": 0,  # > 0: first pretrain the DMC's encoder on role classification (pretrain_encoder)
    "val_every": 100,
    "val_items": 8,
    "log_every": 10,
    "amp": True,  # bfloat16 autocast on CUDA only
    "seed": 0,
    "device": "auto",
    "threads": None,
}


SAMPLED_FAMILIES = {"style_track": "automix_lite.models.style", "style_mix": "automix_lite.models.style_mix",
                    "fx_encoder": "automix_lite.models.fx_encoder"}
"""Model families trained, like the proxy, on examples drawn afresh every step in one process (Adam, the plateau
schedule ``lr_factor`` / ``lr_patience`` stepped by the validation loss every ``val_every`` steps, ``max_seconds``):
``model name -> module``. The module's ``FAMILIES[name]`` is a :class:`Family`; the loop, checkpoints, resuming
and ``automix train`` are the same as the proxy's."""


_CHOICES = {"model": ("dmc", "wave_u_net", "proxy", *SAMPLED_FAMILIES), "task": ("songs", "drums"),
            "stems": ("dry", "wet", "fxnorm"), "optimizer": ("adam", "adamw"),
            "schedule": ("cosine", "constant")}
_WHOLE = {"max_tracks": 1, "batch_size": 1, "steps": 1, "warmup_steps": 0, "encoder_pretrain_steps": 0,
          "val_every": 1, "val_items": 1, "log_every": 1, "seed": 0}  # key: smallest value
_REAL = {"segment_seconds": (0, None, False), "gain_augment_db": (0, 12, True), "lr": (0, None, False),
         "weight_decay": (0, None, True), "final_lr_fraction": (0, 1, True), "grad_clip": (0, None, False),
         "param_weight": (0, None, True)}  # key: (low, high, low allowed)


def _value_problems(cfg: dict, choices: dict, whole: dict, real: dict) -> list:
    """One message per value of ``cfg`` outside its table: ``choices`` (key: options), ``whole`` (key: smallest
    whole number), ``real`` (key: (low, high or None, low allowed))."""
    problems = []
    for key, options in choices.items():
        if cfg[key] not in options:
            problems.append(f"{key} must be one of {', '.join(map(repr, options))}; got {cfg[key]!r}")
    for key, low in whole.items():
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            problems.append(f"{key} must be a whole number >= {low}; got {v!r}")
    for key, (low, high, closed) in real.items():
        v = cfg[key]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if not ok or (v < low if closed else v <= low) or (high is not None and v > high):
            where = f"{'[' if closed else '('}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
            problems.append(f"{key} must be a finite number in {where}; got {v!r}")
    return problems


def _runtime_problems(cfg: dict) -> list:
    """Messages for bad ``threads`` and ``device`` values (every model family has both keys)."""
    import re

    problems = []
    if cfg["threads"] is not None and (isinstance(cfg["threads"], bool) or not isinstance(cfg["threads"], int)
                                       or cfg["threads"] < 1):
        problems.append(f"threads must be null (torch's default) or a whole number >= 1; got {cfg['threads']!r}")
    if not isinstance(cfg["device"], str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", cfg["device"]):
        problems.append(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {cfg['device']!r}")
    return problems


def _config_problems(cfg: dict) -> list:
    """One message per bad value of a full config of a mixing model (each names its key)."""
    import inspect

    problems = _value_problems(cfg, _CHOICES, _WHOLE, _REAL)
    if not isinstance(cfg["engineer"], str) or not cfg["engineer"]:
        problems.append(f"engineer must be the name of an engineer of the bundled set (e.g. 'natural'); got "
                        f"{cfg['engineer']!r}")
    if not isinstance(cfg["amp"], bool):
        problems.append(f"amp must be true or false; got {cfg['amp']!r}")
    problems += _runtime_problems(cfg)
    args = cfg["model_args"]
    if not isinstance(args, dict):
        problems.append(f"model_args must be an object of keyword arguments; got {args!r}")
    elif cfg["model"] in ("dmc", "wave_u_net"):
        from .models.dmc import DMC
        from .models.wave_u_net import MixWaveUNet

        cls, own = (DMC, "max_tracks") if cfg["model"] == "dmc" else (MixWaveUNet, "n_tracks")
        accepted = set(inspect.signature(cls).parameters) - {own, "self"}
        unknown = sorted(set(args) - accepted)
        if unknown:
            problems.append(f"model_args {unknown} are not arguments of {cls.__name__} (it takes "
                            f"{', '.join(sorted(accepted))}; the number of tracks comes from max_tracks)")
    return problems


PROXY_DEFAULT_CONFIG = {
    "model": "proxy",
    "preset": "tcn10", "channels": 16, "n_blocks": None, "kernel_size": None,
    "steps": 1000, "batch_size": 8, "patch_seconds": 0.5, "sample_rate": 44100,
    "lr": 3e-4, "lr_factor": 0.5, "lr_patience": 3, "grad_clip": 1.0, "mixup_alpha": 0.0,
    "augment": True, "log_every": 25, "val_every": 100, "val_examples": 8, "max_seconds": None,
    "seed": 0, "device": "auto", "threads": None, "init": None, "direct": False,
    "stft_weight": 0.0,
}
"""The keys of a config of the channel-chain proxy (``"model": "proxy"``, :mod:`automix_lite.models.proxy`) and
their defaults; a JSON config overrides any of them (:func:`load_config`, which checks every value). ``preset``,
``channels``, ``n_blocks``, ``kernel_size``: the TCN (``TCN.preset``). ``init``: a proxy checkpoint to continue
from (its weights and history; ``steps`` more steps, the optimiser and schedule start afresh). ``direct``: add the
input to the TCN's output and start at the identity (``TCN(direct=True)``; the thesis' network has no such path).
``stft_weight``: add that multiple of ``losses.MRSTFTLoss`` (Table 5 resolutions) to the L1 loss. ``lr_factor`` /
``lr_patience``: the plateau schedule. ``max_seconds``: end a session after the step that passes it (``null``: no
limit)."""

_PROXY_WHOLE = {"steps": 1, "batch_size": 1, "lr_patience": 0, "log_every": 1, "val_every": 1, "val_examples": 1,
                "seed": 0}
_PROXY_REAL = {"patch_seconds": (0, None, False), "sample_rate": (0, None, False), "lr": (0, None, False),
               "lr_factor": (0, 1, False), "grad_clip": (0, None, False), "mixup_alpha": (0, None, True),
               "stft_weight": (0, None, True)}  # key: (low, high, low allowed)


def _proxy_config_problems(cfg: dict) -> list:
    """One message per bad value of a full proxy config (each names its key)."""
    from .models.tcn import PRESETS

    problems = _value_problems(cfg, {"model": ("proxy",), "preset": tuple(PRESETS)}, _PROXY_WHOLE, _PROXY_REAL)
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
    return problems + _runtime_problems(cfg)


class Family:
    """What a sampled model family (:data:`SAMPLED_FAMILIES`) gives the training loop.

    ``defaults``: its config keys and defaults (``"model"`` its name; it must have ``steps``, ``lr``,
    ``lr_factor``, ``lr_patience``, ``grad_clip``, ``log_every``, ``val_every``, ``max_seconds``, ``seed``,
    ``device`` and ``threads``); ``problems(cfg)``: one message per bad value of a full config; ``build(cfg)``: the
    network; ``part(cfg, model, device, done)``: the loop's part (the methods of :class:`_MixingPart` plus
    ``describe(model, device, start, end)``; its random generator seeded from ``seed + done``; subclass
    :class:`SampledPart` for the schedule and the generator's state); ``state_keys``: the
    keys of ``part.state()``; ``loaded(data, path)`` (optional): checks of a loaded checkpoint's payload."""

    def __init__(self, defaults: dict, problems, build, part, state_keys=(), loaded=None):
        self.defaults, self.problems, self.build, self.part = defaults, problems, build, part
        self.state_keys, self.loaded = tuple(state_keys), loaded


def _sampled(model) -> Optional[Family]:
    """The :class:`Family` of a sampled model name (``None`` for the proxy and the mixing models)."""
    if not isinstance(model, str) or model not in SAMPLED_FAMILIES:
        return None
    import importlib

    return importlib.import_module(SAMPLED_FAMILIES[model]).FAMILIES[model]


def _family(model) -> tuple:
    """``(defaults, checks)`` of a config naming ``model``: the proxy's, a sampled family's
    (:data:`SAMPLED_FAMILIES`), or the mixing models' (any other value, which :func:`_config_problems` then refuses
    unless it is ``"dmc"`` or ``"wave_u_net"``)."""
    if model == "proxy":
        return PROXY_DEFAULT_CONFIG, _proxy_config_problems
    fam = _sampled(model)
    if fam is not None:
        return fam.defaults, lambda cfg: fam.problems(cfg) + _runtime_problems(cfg)
    return DEFAULT_CONFIG, _config_problems


def load_config(path_or_dict, default_model: str = "dmc") -> dict:
    """The defaults of the config's ``model`` updated with a JSON file or dict, every value checked.

    ``"model": "proxy"`` takes the keys of :data:`PROXY_DEFAULT_CONFIG`, any other model
    those of :data:`DEFAULT_CONFIG`; ``default_model`` is the model of a config that names none. Unknown keys
    and bad values raise one ``ValueError`` that lists every problem, each naming its key (types, ranges,
    ``steps`` and ``val_every`` >= 1, device names, model arguments)."""
    if isinstance(path_or_dict, dict):
        given = dict(path_or_dict)
    else:
        given = read_json(path_or_dict, "see configs/ for examples")
        if not isinstance(given, dict):
            raise ValueError(f"{path_or_dict} must hold a JSON object of config keys (see configs/ for examples).")
    model = given.setdefault("model", default_model)
    defaults, checks = _family(model)
    unknown = sorted(set(given) - set(defaults) - {"comment"})
    if unknown:
        where = "" if isinstance(path_or_dict, dict) else f"{path_or_dict}: "
        other = DEFAULT_CONFIG if defaults is not DEFAULT_CONFIG else _family("proxy")[0]
        hint = ""
        if not set(unknown) - set(other):
            hint = (" (they are keys of the channel-chain proxy: add \"model\": \"proxy\")"
                    if defaults is DEFAULT_CONFIG else " (they are keys of the DMC and the Mix-Wave-U-Net)")
        raise ValueError(f"{where}unknown config key(s) {unknown}{hint}; the keys of a {model!r} config are "
                         f"{sorted(defaults)}.")
    cfg = {**copy.deepcopy(defaults), **given}
    problems = checks(cfg)
    if problems:
        where = "" if isinstance(path_or_dict, dict) else f"{path_or_dict}: "
        raise ValueError(f"{where}{'; '.join(problems)}.")
    return cfg


def build_model(cfg: dict) -> torch.nn.Module:
    """The network a config describes (``DMC`` with ``max_tracks``, or ``MixWaveUNet`` with ``n_tracks``), with
    ``segment_seconds`` (the training segment length) as an attribute; for ``"model": "proxy"`` the proxy's TCN
    (:func:`automix_lite.models.proxy.build_model`)."""
    if cfg["model"] == "proxy":
        from .models import proxy

        return proxy.build_model(cfg)
    fam = _sampled(cfg["model"])
    if fam is not None:
        return fam.build(cfg)
    from .models.dmc import DMC
    from .models.wave_u_net import MixWaveUNet

    args = dict(cfg["model_args"])
    try:
        model = DMC(max_tracks=cfg["max_tracks"], **args) if cfg["model"] == "dmc" else MixWaveUNet(n_tracks=cfg["max_tracks"], **args)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"model_args {args} do not build a {cfg['model']} model: {err}") from None
    model.segment_seconds = cfg["segment_seconds"]  # the input length it was trained on (inference.estimate_params)
    return model


def code_version() -> str:
    """Package version and, inside a git checkout, the commit (``0.1.0+git.abc1234``, ``-dirty`` if modified)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{__version__}+git.{commit}{'-dirty' if dirty else ''}" if commit else __version__


def save_checkpoint(path: str, model: torch.nn.Module, cfg: dict, history: Optional[dict] = None,
                    metrics: Optional[dict] = None, extra: Optional[dict] = None, version: Optional[str] = None) -> str:
    """Write weights (float32, frozen proxy weights left out), config, history and metrics; returns the sha256.

    A checksummed file (``automix_lite._checkpoint``) that :func:`load_checkpoint` verifies. ``extra`` (e.g.
    optimiser state for resuming) is stored alongside; ``version`` (default :func:`code_version` now) records
    the code that trained the weights.
    """
    payload = {"state_dict": _checkpoint.float32_state(model, skip="console.proxy."), "config": cfg,
               "history": history or {}, "metrics": metrics or {}, "code_version": version or code_version(),
               "extra": extra or {}}
    return _checkpoint.write(path, payload, CHECKPOINT_FORMAT)


def load_checkpoint(path: str, device: str = "cpu") -> dict:
    """Read a checkpoint of :func:`save_checkpoint`, verifying its checksum.

    Returns ``{"model" (in eval mode), "config", "history", "metrics", "code_version", "extra", "sha256"}``. A
    proxy's checkpoint (``"model": "proxy"``) gives its TCN; its ``extra["names"]`` must be ``proxy.NAMES``.
    """
    data, digest = _checkpoint.read(path, CHECKPOINT_FORMAT, _WHAT)
    return _from_payload(data, digest, path, device)


_WHAT = "automix-lite model checkpoint"


def _from_payload(data: dict, digest: str, path: str, device: str = "cpu") -> dict:
    """:func:`load_checkpoint` of a payload already read (and its checksum verified) from ``path``."""
    what = _WHAT
    missing = [k for k in ("state_dict", "config", "history", "metrics", "code_version", "extra") if k not in data]
    if missing or not isinstance(data["state_dict"], dict) or not isinstance(data["config"], dict):
        lack = f"it lacks {', '.join(missing)}" if missing else "its weights or config are not objects"
        raise ValueError(f"{path} is not a valid {what}: {lack}. Use a file written by `automix train` or a bundled "
                         "model (`automix models`).")
    try:
        cfg = load_config(data["config"])
        model = build_model(cfg)
    except ValueError as err:
        raise ValueError(f"{path} is not a valid {what}: its training config is bad ({err})") from None
    try:
        missing, unexpected = model.load_state_dict(data["state_dict"], strict=False)
    except (RuntimeError, TypeError, AttributeError) as err:  # a tensor of the wrong shape or not a tensor
        first = str(err).strip().splitlines()
        raise ValueError(f"{path} is not a valid {what}: its weights do not fit the model its config describes "
                         f"({first[-1].strip() if first else type(err).__name__}). Retrain it or restore the file.") from None
    missing = [k for k in missing if not k.startswith("console.proxy.")]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit the model its config describes (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); it is not a valid {what}. Retrain it or restore the file.")
    if cfg["model"] == "proxy":
        from .models import proxy

        from .parameters import renamed_proxy_names

        names = data["extra"].get("names") if isinstance(data["extra"], dict) else None
        if not isinstance(names, (list, tuple)) or renamed_proxy_names(names) != list(proxy.NAMES):
            raise ValueError(f"{path} is a proxy trained with the parameters {names}, not proxy.NAMES; it is not a "
                             f"valid {what} of this version. Retrain it.")
        data["extra"]["names"] = list(proxy.NAMES)  # a first-version file's names (peak2_gain_db, wet) as today's
    fam = _sampled(cfg["model"])
    if fam is not None and fam.loaded is not None:
        fam.loaded(data, path)
    model.to(device).eval()
    return {"model": model, "config": cfg, "history": data["history"], "metrics": data["metrics"],
            "code_version": data["code_version"], "extra": data["extra"], "sha256": digest}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {name!r} is not available here ({torch.cuda.device_count()} CUDA device(s)); set "
                         "\"device\": \"auto\" or \"cpu\" in the config.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' is not available here; set \"device\": \"auto\" or \"cpu\" in the config.")
    return dev


def _set_threads(n: Optional[int]) -> None:
    """``n`` threads for torch and numba's kernels. numba's OpenMP layer sets the OpenMP thread count, which
    torch shares, to its own when it starts (at the first parallel DSP call: a cold mix cache), so torch's count
    and with it the floating-point sums changed mid-run: the same seed gave other losses. Starting numba's
    threads first and then setting torch's keeps ``n``."""
    if not n:
        return
    import numba
    from numba.np.ufunc import parallel

    parallel._launch_threads()  # once per process; later calls return at once
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


RUN_FILES = ("last.pt", "best.pt", "history.json", "loss_curve.png")
"""The files a training run writes into its ``out`` folder."""

RUNNING = ".automix-train-running"
"""Created (exclusively) in ``out`` when a new run starts and removed when it ends: two runs started at once
into the same new folder cannot both go on."""


def _check_out(out: str, config, resume: bool, overwrite: bool) -> None:
    """Before any work: ``out`` is (or can become) a writable folder that holds no other run unless asked."""
    from ._checks import check_output

    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a folder for {', '.join(RUN_FILES)}.")
    held = [f for f in RUN_FILES if os.path.lexists(os.path.join(out, f))]
    if held and not (resume or overwrite):
        raise FileExistsError(f"{out} already holds a training run ({', '.join(held)}); pass --overwrite to replace "
                              "it, --resume to continue it, or choose another --out folder.")
    if isinstance(config, (str, os.PathLike)) and any(
            os.path.realpath(config) == os.path.realpath(os.path.join(out, f)) for f in RUN_FILES):
        raise ValueError(f"the config {config} is one of the files training writes into {out}; move it elsewhere.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        from ._checks import os_error_message

        raise ValueError(os_error_message(err, out)) from None
    for f in RUN_FILES:
        check_output(os.path.join(out, f), overwrite=True, flag="--out")
    try:
        flags = os.O_CREAT | os.O_WRONLY | (0 if resume or overwrite else os.O_EXCL)
        os.close(os.open(os.path.join(out, RUNNING), flags))
    except FileExistsError:
        raise FileExistsError(f"{out} is in use by another training run (or a stopped run left {RUNNING} there); pass "
                              "--overwrite to replace it, --resume to continue it, or choose another --out folder.") from None


def _json_safe(value):
    """``value`` with every non-finite float replaced by ``None`` (JSON has no Infinity or NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def lr_schedule(cfg: dict, step: int) -> float:
    """The learning-rate schedule: the multiplier of ``cfg["lr"]`` at optimiser step ``step`` (1-based).

    Linear warm-up over ``cfg["warmup_steps"]`` (``step / warmup_steps``), then, with ``cfg["schedule"] ==
    "cosine"``, a half cosine from 1 down to ``cfg["final_lr_fraction"]`` at ``cfg["steps"]`` (and that
    fraction after it); ``"constant"`` stays at 1 after the warm-up. :func:`train` steps a
    ``torch.optim.lr_scheduler.LambdaLR`` with ``lambda s: lr_schedule(cfg, s + 1)``. Taught in chapter 3.3
    (``notebooks/13_training.ipynb``, eq. lr-schedule). ``cfg`` needs the keys named above (any config of
    :func:`load_config` has them); ``step`` must be a whole number >= 1. (Not the proxy's ``lr_factor`` key,
    the factor of its plateau schedule.)
    """
    missing = [k for k in ("warmup_steps", "schedule", "steps", "final_lr_fraction") if k not in cfg]
    if missing:
        raise KeyError(f"lr_schedule needs the config keys {', '.join(missing)} (see train.DEFAULT_CONFIG).")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be a whole number >= 1 (steps count from 1); got {step!r}.")
    if cfg["warmup_steps"] and step <= cfg["warmup_steps"]:
        return step / cfg["warmup_steps"]
    if cfg["schedule"] == "constant":
        return 1.0
    span = max(cfg["steps"] - cfg["warmup_steps"], 1)
    progress = min((step - cfg["warmup_steps"]) / span, 1.0)
    low = cfg["final_lr_fraction"]
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


_lr_factor = lr_schedule  # the former private name


def _batch(ds, indices) -> dict:
    items = [ds[i] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in ("tracks", "mask", "mix", "params")}


def _datasets(cfg: dict):
    from .data import BundledDataset

    common = dict(task=cfg["task"], engineer=cfg["engineer"], segment_seconds=cfg["segment_seconds"],
                  max_tracks=cfg["max_tracks"])
    if cfg["stems"] != "dry":  # chapter 5.3: the same targets, the engineer's wet (or FX-normalised wet) stems as input
        common["stems"] = cfg["stems"]
    train_ds = BundledDataset(split="train", seed=cfg["seed"], length=10 ** 9,
                              gain_augment_db=cfg["gain_augment_db"], **common)
    val_ds = BundledDataset(split="val", seed=cfg["seed"] + 1, length=cfg["val_items"], **common)
    return train_ds, val_ds


def _basic_columns() -> tuple:
    from .dsp.console import param_names

    names = param_names()[0]
    return names.index("gain_db"), names.index("pan")


class _Net(torch.nn.Module):
    """The model as training calls it: ``(tracks, mask) -> (mix, predicted gain and pan or None)``, the network
    under bfloat16 autocast when ``amp``, a DMC's console in float32. One module, so that
    ``DistributedDataParallel`` wraps the whole forward pass (a DMC's ``estimate`` and ``render`` included)."""

    def __init__(self, model: torch.nn.Module, cfg: dict, amp: bool):
        super().__init__()
        self.model, self.amp, self.dmc = model, amp, cfg["model"] == "dmc"
        self.param_loss = self.dmc and bool(cfg["param_weight"])

    def forward(self, tracks, mask):
        with torch.autocast(device_type=tracks.device.type, dtype=torch.bfloat16, enabled=self.amp):
            if self.dmc:
                params = self.model.estimate(tracks, mask)
            else:
                y = self.model(tracks, mask)
        if not self.dmc:
            return y.float(), None
        controls = params.controls  # the network's [0, 1] outputs, which the parameter loss compares (a plain dict
        params = {k: v.float() for k, v in params.items()}  # of the values has none)
        y = self.model.render(tracks, params, mask)
        names = self.model.track_names
        pred = controls[0].float()[..., [names.index("gain_db"), names.index("pan")]] if self.param_loss else None
        return y.float(), pred


def _loss(run, batch: dict, net, shard: bool = False) -> torch.Tensor:
    """The loss of ``batch`` through ``net``. ``shard`` (several processes): ``batch`` is this rank's slice and the
    loss is that of the global batch (:meth:`automix_lite.losses.StereoLoss.global_loss` with the ranks' sums
    added up by :class:`_SumOverRanks`; the parameter loss's sums too), the same value on every rank."""
    device, cfg = run.device, run.cfg
    tracks, mask, target = batch["tracks"].to(device), batch["mask"].to(device), batch["mix"].to(device)
    y, pred = net(tracks, mask)
    if shard and run.dist is not None:
        def total(t):
            return _SumOverRanks.apply(t, run.dist)

        loss = run.loss_fn.global_loss(y, target, total)
    else:
        def total(t):
            return t

        loss = run.loss_fn(y, target)
    if pred is not None:
        gi, pi = _basic_columns()
        ref = batch["params"].to(device)[..., [gi, pi]]
        w = mask.unsqueeze(-1).to(pred.dtype)
        loss = loss + cfg["param_weight"] * total(((pred - ref).abs() * w).sum()) / (2 * total(w.sum()))
    return loss


# ------------------------------------------------------------------ several processes (data parallel)


class _Dist:
    """This process's place in a data-parallel run: ``rank`` of ``world`` (``local_rank`` on its machine), the
    ``group`` for the collectives inside the model and the loss, a gloo ``control`` group for Python objects,
    and whether this module started the process group (``owns``: it also ends it)."""

    def __init__(self, rank: int, world: int, local_rank: int, owns: bool):
        import torch.distributed as dist

        self.rank, self.world, self.local_rank, self.owns = rank, world, local_rank, owns
        self.group = dist.new_group()
        self.control = dist.new_group(backend="gloo")

    def close(self, finished: bool) -> None:
        import torch.distributed as dist

        if finished:
            dist.barrier(group=self.control)  # every rank returns once rank 0 has written the run's files
        if self.owns:
            dist.destroy_process_group()


def _launched_world() -> int:
    """The number of processes this one belongs to: an initialised process group's, else torchrun's
    ``WORLD_SIZE`` (1 when neither)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return max(int(text), 1)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={text!r} (set by the launcher) is not a whole number.") from None


def _per_rank_batch(cfg: dict, world: int) -> int:
    """Items per rank and step: ``batch_size`` is the global batch, split evenly."""
    if cfg["batch_size"] % world:
        raise ValueError(f"batch_size {cfg['batch_size']} (the global batch of a step) does not divide among {world} "
                         f"processes; give a batch_size that is a multiple of {world} (each process takes batch_size / "
                         f"{world} items of every step) or another number of processes.")
    return cfg["batch_size"] // world


def _rank_device(cfg: dict, world: int, local_rank: int) -> torch.device:
    """The device of this rank: the config's (:func:`_device`); with several processes on CUDA,
    ``cuda:LOCAL_RANK``."""
    dev = _device(cfg["device"])
    if world == 1 or dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device {dev.type!r} cannot train in several processes (PyTorch's distributed engine runs on "
                         "CPU, gloo, or CUDA, NCCL); set \"device\" to \"cpu\", \"cuda\" or \"auto\".")
    if cfg["device"].startswith("cuda:"):
        raise ValueError(f"device {cfg['device']!r} names one GPU, but each of the {world} processes takes its own "
                         "(cuda:LOCAL_RANK); set \"device\": \"cuda\" or \"auto\" in the config.")
    have = torch.cuda.device_count()
    if local_rank >= have:
        raise ValueError(f"process {local_rank} on this machine needs CUDA device cuda:{local_rank}, but there are "
                         f"{have}; start at most {have} processes per machine (--nproc / --nproc-per-node).")
    return torch.device("cuda", local_rank)


def _join(cfg: dict, rank: int, world: int, local_rank: int, init_method: str):
    """Check the batch and the device, then join (or start) the process group: ``(_Dist, device)``."""
    import torch.distributed as dist

    _per_rank_batch(cfg, world)
    device = _rank_device(cfg, world, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=init_method, rank=rank,
                                world_size=world)
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns), device


def _on_rank0(dist, fn):
    """``fn()`` on rank 0 (the rank that touches the out folder), its result or its error shared with every
    rank, so that all of them go on or all stop with the same error. Without ``dist``: ``fn()``."""
    if dist is None:
        return fn()
    import torch.distributed

    result = error = None
    if dist.rank == 0:
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - passed on to every rank and raised there
            error = err
    box = [(result, error)]
    torch.distributed.broadcast_object_list(box, src=0, group=dist.control)
    result, error = box[0]
    if error is not None:
        raise error
    return result


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) that gradients flow through: the gradient of every rank's input is the sum of the ranks'
    gradients of the result."""

    @staticmethod
    def forward(ctx, x, dist):
        import torch.distributed

        ctx.dist = dist
        y = x.clone()
        torch.distributed.all_reduce(y, group=dist.group)
        return y

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed

        g = grad.contiguous().clone()
        torch.distributed.all_reduce(g, group=ctx.dist.group)
        return g, None


class _GlobalBatchNorm(torch.nn.Module):
    """A BatchNorm layer (sharing its parameters and running statistics) whose training statistics are those of
    the global batch: sums over the ranks (two all-reduces: count and sum, then squared deviations), as
    ``torch.nn.SyncBatchNorm``, which needs a GPU. Normalisation, gradients and running statistics then equal
    one process's with the whole batch; in eval mode it is the plain layer."""

    def __init__(self, bn, dist):
        super().__init__()
        self.dist, self.eps, self.momentum = dist, bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        self.train(bn.training)

    def forward(self, x):
        import torch.nn.functional as F

        if not self.training:  # as BatchNorm in eval mode, on this rank alone (rank 0 validates by itself)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.running_mean is None, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local = torch.cat([xf.sum(dims), xf.new_full((1,), x.numel() // x.shape[1])])
        total = _SumOverRanks.apply(local, self.dist)
        count, mean = total[-1], total[:-1] / total[-1]
        dev = xf - mean.view(shape)
        var = _SumOverRanks.apply(dev.square().sum(dims), self.dist) / count
        y = dev * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(var.detach() * (count / (count - 1).clamp_min(1)), alpha=f)
        return y.to(x.dtype)


class _GlobalDropout(torch.nn.Module):
    """A dropout layer drawing the mask of the global batch (the same random numbers on every rank, whose random
    state is the same) and keeping this rank's rows: the masks of one process with the whole batch. The first
    dimension of the input must be the batch (as in the DMC's MLPs)."""

    def __init__(self, drop, dist):
        super().__init__()
        self.drop, self.dist = [drop], dist  # a list: not a submodule; always in training mode, used only then
        self.train(drop.training)
        drop.train(True)

    def forward(self, x):
        if not self.training:
            return x
        n, r = x.shape[0], self.dist.rank
        noise = self.drop[0](x.new_ones((n * self.dist.world, *x.shape[1:])))  # mask / (1 - p), as dropout's own
        return x * noise[r * n:(r + 1) * n]


def _globalise(model: torch.nn.Module, dist):
    """Swap the model's BatchNorm and dropout layers for their global-batch versions (:class:`_GlobalBatchNorm`,
    :class:`_GlobalDropout`; same parameters, same state_dict keys); returns a function that swaps them back."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                new = _GlobalBatchNorm(child, dist)
            elif isinstance(child, (torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)):
                raise ValueError(f"{type(child).__name__} cannot yet be trained in several processes; use one.")
            elif isinstance(child, _DropoutNd):
                new = _GlobalDropout(child, dist)
            else:
                continue
            setattr(parent, name, new)
            swapped.append((parent, name, child, new))

    def restore():
        for parent, name, child, new in swapped:
            child.train(new.training)
            setattr(parent, name, child)

    return restore


def pretrain_encoder(encoder: torch.nn.Module, task: str = "songs", steps: int = 300, batch_size: int = 16,
                     seconds: float = 1.0, lr: float = 1e-3, seed: int = 0, val_crops: int = 256) -> dict:
    """Pretrain a DMC ``TrackEncoder`` in place by instrument-role classification (chapter 3.2).

    Random ``seconds``-long crops of the ``task``'s TRAIN stems, labelled with their role (``"kick"``,
    ``"overhead_l"``, ``"bass"`` ...), a linear head on the embedding, cross-entropy, AdamW; the head is
    discarded afterwards. Stands in for the AudioSet-pretrained VGGish of the thesis, which cannot be
    downloaded here. Returns ``{"roles", "loss" (per step), "val_accuracy", "chance"}``; the accuracy is
    measured on ``val_crops`` fixed crops of the VAL stems.
    """
    from .data import load_song, songs

    def stems(split):
        out = []
        for entry in songs(task, split):
            s = load_song(entry["id"])
            out += list(zip(s["tracks"], s["roles"]))
        return out

    train_stems, val_stems = stems("train"), stems("val")
    roles = sorted({r for _, r in train_stems})
    n = round(seconds * 44100)
    g = torch.Generator().manual_seed(seed)

    def crops(pool, count, gen):
        idx = torch.randint(0, len(pool), (count,), generator=gen)
        starts = [int(torch.randint(0, pool[i][0].shape[-1] - n + 1, (1,), generator=gen)) for i in idx.tolist()]
        x = torch.stack([pool[i][0][s:s + n] for i, s in zip(idx.tolist(), starts)])
        return x, torch.tensor([roles.index(pool[i][1]) for i in idx.tolist()])

    device = next(encoder.parameters()).device
    head = torch.nn.Linear(encoder.dim, len(roles)).to(device)
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    losses = []
    encoder.train()
    for _ in range(steps):
        x, y = crops(train_stems, batch_size, g)
        loss = torch.nn.functional.cross_entropy(head(encoder(x.to(device))), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    encoder.eval()
    vx, vy = crops([s for s in val_stems if s[1] in roles], val_crops, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        pred = torch.cat([head(encoder(chunk.to(device))).argmax(1).cpu() for chunk in vx.split(64)])
    counts = torch.bincount(vy, minlength=len(roles))
    return {"roles": roles, "loss": losses, "val_accuracy": float((pred == vy).float().mean()),
            "chance": float(counts.max()) / len(vy)}


def plot_history(history: dict, ax=None, ylabel: str = "stereo MR-STFT loss"):
    """Training loss (mean per logging interval) and validation loss against steps; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(history["step"], history["loss"], label="training (mean over the log interval)", alpha=0.8)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


# ------------------------------------------------------------------ the training loop, in named steps


_HISTORY_LISTS = ("step", "loss", "lr", "val_step", "val_loss", "seconds")


class _Run:
    """What one training run holds, built by :func:`_setup` and used by the steps :func:`_optimise`,
    :func:`_validate`, :func:`_save`, :func:`_summary` and :func:`_finish` (the same on one process or many).

    ``cfg``, ``device``, ``amp``, ``dist`` (``None`` on one process), ``rank``, ``world``, ``per_rank``
    (items per rank and step), ``model`` (the network, saved), ``local`` (:class:`_Net` of it), ``net`` (what an
    optimisation step calls: ``local``, or it wrapped in ``DistributedDataParallel``), ``restore`` (puts the
    model's own BatchNorm and dropout layers back, :func:`_globalise`; ``None`` on one process), ``params``, ``opt``,
    ``sched``, ``loss_fn``, ``train_ds``, ``val_batches`` and ``n_val`` (rank 0), ``history``, ``start_step``,
    ``step``, ``end_step`` (the last step: ``steps``, or a proxy's ``init`` steps plus ``steps``), ``spent``
    (seconds of earlier sessions), ``best``, ``t0``, ``out``, ``steps_override``, ``max_seconds`` (``None``: no
    limit) and ``part``: the model family's pieces of the steps (:class:`_MixingPart` or
    :class:`_ProxyPart`)."""

    def __init__(self, **state):
        self.__dict__.update(state)


class _MixingPart:
    """The DMC's and the Mix-Wave-U-Net's pieces of the loop's steps; :class:`_ProxyPart` has the same methods for
    the proxy.

    ``batch``: this rank's slice of step ``step``'s seeded items of the TRAIN ``BundledDataset``; ``loss``: the stereo
    MR-STFT loss (plus the parameter loss) of the global batch; ``stepped``: the warm-up and cosine schedule, after
    every optimisation step; ``validate``: the loss on the fixed VAL batches; ``validated``: nothing (the schedule
    does not depend on validation); ``state`` / ``set_state``: nothing beyond the global random state;
    ``extra``: nothing stored in every checkpoint; ``loss_name``: the loss curve's label."""

    loss_name = "stereo MR-STFT loss"
    extra: dict = {}

    def batch(self, run, step: int) -> dict:
        first = (step - 1) * run.cfg["batch_size"] + run.rank * run.per_rank
        return _batch(run.train_ds, range(first, first + run.per_rank))

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        return _loss(run, batch, net, shard=True)

    def stepped(self, run) -> None:
        run.sched.step()

    def validate(self, run) -> float:
        with torch.no_grad():
            v = sum(float(_loss(run, b, run.local)) * len(b["mix"]) for b in run.val_batches)
        return v / run.n_val

    def validated(self, run, step: int, value: float) -> None:
        pass

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


# ------------------------------------------------------------------ the channel-chain proxy's data and part


@functools.lru_cache(maxsize=4)
def _stems_of(split: str) -> tuple:
    from . import data

    stems = []
    for task in ("songs", "drums"):
        for entry in data.songs(task, split):
            stems.extend(data.load_song(entry["id"])["tracks"])
    return tuple(stems)


def proxy_stems(split: str = "train") -> list:
    """Every mono stem ``(T,)`` of the bundled songs and drum passages of ``split`` (decoded once, cached): what
    the proxy's patches are drawn from (:func:`proxy_batch`; TRAIN for training, VAL for validation, TEST for
    ``automix_lite.models.proxy.evaluate``)."""
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


def proxy_batch(stems, batch_size: int, n_samples: int, generator: torch.Generator,
                sample_rate: Optional[float] = None, active=None, augment: bool = True, mixup_alpha: float = 0.0,
                silence_db: float = -50.0) -> dict:
    """A batch of the proxy's data (sec. 4.4): ``{"x": (B, 1, T), "params": (B, P), "y": (B, 1, T)}`` with
    ``y = proxy.channel_chain(x, sample_rate, params)`` (``automix_lite.models.proxy``).

    Random patches of ``n_samples`` from ``stems`` (a list of ``(T,)`` tensors, e.g. :func:`proxy_stems`),
    skipping those quieter than ``silence_db`` (RMS, dBFS), with the augmentations of sec. 4.4 when ``augment``;
    fresh parameters (``proxy.sample_params``, the processors ``active``, default all of ``proxy.PROCESSORS``)
    every call; ``sample_rate`` defaults to ``proxy.SAMPLE_RATE``. With ``mixup_alpha > 0`` each item is ``lambda
    (x_i, y_i) + (1 - lambda) (x_j, y_j)`` (eqs. 4.15-4.16, ``lambda ~ Beta(alpha, alpha)``) where ``x_j`` is a
    second patch processed with the same parameters. Deterministic given the generator. Training draws its
    batches with it; with ``augment=False`` and a fixed seed it gives the fixed patches of validation and of the
    Table-6 evaluation.
    """
    import numpy as np

    from .models import proxy

    if not stems:
        raise ValueError("stems is empty: pass a list of (T,) tensors, e.g. train.proxy_stems('train').")
    sample_rate = proxy.SAMPLE_RATE if sample_rate is None else sample_rate
    active = proxy.PROCESSORS if active is None else active

    def patches():
        xs = [_patch(stems, n_samples, generator, silence_db) for _ in range(batch_size)]
        if augment:
            xs = [_augment(x, stems, generator, silence_db) for x in xs]
        return torch.stack(xs).unsqueeze(1).float()

    x = patches()
    params = proxy.sample_params(batch_size, generator, active)
    with torch.no_grad():
        y = proxy.channel_chain(x, sample_rate, params)
        if mixup_alpha > 0:
            x2 = patches()
            y2 = proxy.channel_chain(x2, sample_rate, params)
            seed = int(torch.randint(2 ** 31, (1,), generator=generator))
            lam = torch.from_numpy(np.random.default_rng(seed).beta(mixup_alpha, mixup_alpha, batch_size)).float()
            lam = lam.view(-1, 1, 1)
            x, y = lam * x + (1 - lam) * x2, lam * y + (1 - lam) * y2
    return {"x": x, "params": params, "y": y.float()}


def _proxy_optimiser(cfg: dict, params) -> tuple:
    """``(Adam at lr, ReduceLROnPlateau(lr_factor, lr_patience))``: the proxy's optimiser and schedule (sec. 4.5)."""
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg["lr_factor"], patience=cfg["lr_patience"])


def _continue_proxy(path: str, model: torch.nn.Module) -> tuple:
    """``init``: load the weights of the proxy checkpoint ``path`` into ``model``; returns ``(history lists,
    steps done, seconds spent)`` of that checkpoint, which the run goes on from."""
    from .models import proxy

    previous = proxy.load_checkpoint(path)
    try:
        model.load_state_dict(previous["model"].state_dict())
    except RuntimeError as err:
        raise ValueError(f"init {path} does not fit the model of this config ({str(err).splitlines()[0]}); give the "
                         "preset, channels and kernel_size it was trained with.") from None
    h = previous["history"]
    try:
        return ({k: list(h[k]) for k in _HISTORY_LISTS}, int(h["steps_done"]), float(h["wall_seconds"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"init {path} has no complete training history ({type(err).__name__}: {err}); continue "
                         "from a checkpoint that automix train wrote.") from None


class SampledPart:
    """What the parts of the proxy and the sampled families (:data:`SAMPLED_FAMILIES`) share: examples drawn from
    ``self.generator`` (a ``torch.Generator``, carried through ``last.pt`` as ``data_rng``), no per-step schedule,
    the plateau schedule stepped by the validation loss at every ``val_every``-th step (``self.cfg``; not at a run's
    early end, so a stopped and resumed run trains what a straight run does). A family's part subclasses it and adds
    ``__init__``, ``describe``, ``batch``, ``loss``, ``validate``, ``extra`` and ``loss_name``."""

    def stepped(self, run) -> None:
        pass

    def validated(self, run, step: int, value: float) -> None:
        if step % self.cfg["val_every"] == 0:
            run.sched.step(value)

    def state(self) -> dict:
        return {"data_rng": self.generator.get_state()}

    def set_state(self, state: dict) -> None:
        self.generator.set_state(state["data_rng"])


class _ProxyPart(SampledPart):
    """The channel-chain proxy's pieces of the loop's steps (``"model": "proxy"``), built by :func:`_setup` after the
    model, with the methods of :class:`_MixingPart`.

    Data (sec. 4.4): ``batch`` draws ``batch_size`` fresh random patches of ``patch_seconds`` output plus the
    receptive field from ``stems`` (default: every TRAIN stem, :func:`proxy_stems`) with :func:`proxy_batch` (its
    augmentations and mixup), all from one generator seeded ``seed + done``; ``state`` / ``set_state`` carry that
    generator through ``last.pt``. ``loss``: L1 (eq. 4.17) on the valid output samples plus ``stft_weight`` x
    ``MRSTFTLoss``. ``stepped``: nothing (no per-step schedule). ``validate``: the L1 on ``val_examples`` fixed
    patches of ``val_stems`` (default: the VAL stems; seed ``seed + 1``, no augmentation, all processors);
    ``validated``: the plateau schedule steps on it at every ``val_every``-th step (not at a run's early end, so a
    stopped and resumed run trains what a straight run does). ``extra``: the parameter names, in every checkpoint.
    """

    loss_name = "L1 (+ stft_weight x MR-STFT)"

    def __init__(self, cfg: dict, model: torch.nn.Module, device, done: int = 0, data=None):
        from .models import proxy
        from .models.tcn import center_crop

        if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
            raise ValueError("data must be (train_stems, val_stems): two lists of mono (T,) tensors (or None for "
                             "the bundled split).")
        train_stems, val_stems = (None, None) if data is None else data
        self.cfg, self.device, self.sr = cfg, device, cfg["sample_rate"]
        self.stems = proxy_stems("train") if train_stems is None else list(train_stems)
        val_stems = proxy_stems("val") if val_stems is None else list(val_stems)
        self.n_out = round(cfg["patch_seconds"] * self.sr)
        self.n_in = self.n_out + model.receptive_field - 1
        self.generator = torch.Generator().manual_seed(cfg["seed"] + done)  # a continued run draws new batches
        self.val = proxy_batch(val_stems, cfg["val_examples"], self.n_in, torch.Generator().manual_seed(cfg["seed"] + 1),
                               self.sr, augment=False)
        self.val_y = center_crop(self.val["y"], self.n_out)
        self.mrstft = MRSTFTLoss().to(device)
        self.extra = {"names": list(proxy.NAMES)}

    def describe(self, model, device, start: int, end: int) -> str:
        c, rf = self.cfg, model.receptive_field
        return (f"proxy: {c['preset']} channels={c['channels']} rf={rf} ({1000 * rf / self.sr:.1f} ms) "
                f"params={_n_trainable(model)} device={device} in={self.n_in} out={self.n_out} samples, steps "
                f"{start + 1}-{end}")

    def batch(self, run, step: int) -> dict:
        c = self.cfg
        return proxy_batch(self.stems, c["batch_size"], self.n_in, self.generator, self.sr, augment=c["augment"],
                           mixup_alpha=c["mixup_alpha"])

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        from .models.tcn import center_crop

        pred = net(batch["x"].to(self.device), batch["params"].to(self.device))
        target = center_crop(batch["y"].to(self.device), self.n_out)
        loss = (pred - target).abs().mean()
        if self.cfg["stft_weight"]:
            loss = loss + self.cfg["stft_weight"] * self.mrstft(pred, target)
        return loss

    def validate(self, run) -> float:
        from .models import proxy

        return float((proxy.predict(run.model, self.val["x"], self.val["params"]) - self.val_y).abs().mean())


def _n_trainable(model: torch.nn.Module) -> int:
    """The number of trainable parameters of ``model`` (those that require a gradient: a DMC's frozen proxy does not
    count), as every training run reports it."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _resume_state(out: Optional[str], cfg: dict) -> dict:
    """What ``out/last.pt`` holds to continue a run (read on rank 0, on the CPU)."""
    last = os.path.join(out or ".", "last.pt")
    if not out or not os.path.isfile(last):
        raise FileNotFoundError(f"resume=True but there is no {last} to continue.")
    ck = load_checkpoint(last)
    if ck["config"] != cfg:
        was = ck["config"].get("steps")
        if {**ck["config"], "steps": cfg["steps"]} == cfg:
            raise ValueError(f"{last} was trained with steps={was} (the schedule depends on it), not {cfg['steps']}; "
                             f"resume with --steps {was} (or the config it was trained with).")
        raise ValueError(f"{last} was trained with another config; use a new --out folder (or its config).")
    try:
        extra, h = ck["extra"], ck["history"]
        best = h["best_val"]
        state = {"model": ck["model"].state_dict(), "optimizer": extra["optimizer"], "scheduler": extra["scheduler"],
                 "history": {k: list(v) for k, v in h.items() if k in _HISTORY_LISTS},
                 "encoder_pretrain": h.get("encoder_pretrain"), "step": int(extra["step"]),
                 "spent": float(h["wall_seconds"]), "best": math.inf if best is None else float(best),
                 "rng": extra["rng"], "cuda_rng": extra.get("cuda_rng"),
                 "end_step": int(extra.get("end_step", cfg["steps"])),
                 "part": {k: extra[k] for k in _part_state(cfg["model"])}}
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise _damaged(last, err) from None
    if state["step"] >= state["end_step"]:
        raise ValueError(f"{last} has already finished all {state['end_step']} steps.")
    return state


_PART_STATE = {"proxy": ("data_rng",)}
"""The keys of ``last.pt``'s ``extra`` that a model family's part needs to resume (``part.state()``)."""


def _part_state(model: str) -> tuple:
    fam = _sampled(model)
    return fam.state_keys if fam is not None else _PART_STATE.get(model, ())


def _damaged(last: str, err: Exception) -> ValueError:
    return ValueError(f"{last} cannot be resumed: its optimiser, schedule or history is missing or damaged "
                      f"({type(err).__name__}: {err}). Start a new run with --overwrite or another --out.")


_ONE_PROCESS = ("the channel-chain proxy trains in one process (its batches are drawn one after another from one "
                "random generator); leave --nproc out and run it without torchrun.")


def _one_process(model: str) -> str:
    if model == "proxy":
        return _ONE_PROCESS
    return (f"a {model} model trains in one process (its examples are drawn one after another from one random "
            "generator); leave --nproc out and run it without torchrun.")


def _setup(cfg: dict, config, out, resume: bool, overwrite: bool, log, dist, device, reserved: bool = False,
           steps_override: Optional[int] = None, data=None) -> _Run:
    """Set-up: the out folder (rank 0), the model (the same initial weights on every rank: one seed), optimiser,
    schedule, the resumed state (read by rank 0, shared), encoder pretraining, data; with ``dist`` the global-
    batch layers (:func:`_globalise`) and ``DistributedDataParallel``.

    The proxy (``"model": "proxy"``, one process): Adam and the plateau schedule, ``init`` (another proxy
    checkpoint's weights and history, the step count going on from its ``steps_done``), then, as its first loop
    did, the global random state seeded again with ``seed + steps done`` and its data part
    (:class:`_ProxyPart`, ``data`` = its stems) with a generator seeded the same."""
    rank, world = (0, 1) if dist is None else (dist.rank, dist.world)
    fam = _sampled(cfg["model"])
    is_proxy = cfg["model"] == "proxy" or fam is not None  # examples drawn afresh, one process
    if is_proxy and dist is not None:
        raise ValueError(_one_process(cfg["model"]))
    per_rank = _per_rank_batch(cfg, world)
    if out and not reserved:
        _on_rank0(dist, lambda: _check_out(out, config, resume, overwrite))
    _set_threads(cfg["threads"])
    amp = bool(cfg.get("amp")) and device.type == "cuda"
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if is_proxy:
        opt, sched = _proxy_optimiser(cfg, params)
    else:
        opt_cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"] if cfg["optimizer"] == "adamw" else 0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_schedule(cfg, s + 1))
    history = {k: [] for k in _HISTORY_LISTS}
    start_step, spent, best, end_step = 0, 0.0, math.inf, cfg["steps"]
    state = None
    if resume:
        state = _on_rank0(dist, lambda: _resume_state(out, cfg))
        model.load_state_dict(state["model"], strict=False)
        try:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] is not None and device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise _damaged(os.path.join(out, "last.pt"), err) from None
        history = state["history"]
        if state["encoder_pretrain"] is not None:
            history["encoder_pretrain"] = state["encoder_pretrain"]
        start_step, spent, best, end_step = state["step"], state["spent"], state["best"], state["end_step"]
    elif fam is None and is_proxy and cfg["init"]:
        history, start_step, spent = _continue_proxy(cfg["init"], model)
        end_step = start_step + cfg["steps"]
    if is_proxy:
        if not resume:
            torch.manual_seed(cfg["seed"] + start_step)  # a continued run draws new batches
        if fam is not None and data is not None:
            raise ValueError(f"data (the stems to draw patches from) applies to the proxy only; a {cfg['model']} "
                             "draws its own examples.")
        part = _ProxyPart(cfg, model, device, start_step, data) if fam is None else fam.part(cfg, model, device,
                                                                                               start_step)
        if state is not None:
            try:
                part.set_state(state["part"])
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                raise _damaged(os.path.join(out, "last.pt"), err) from None
        log(part.describe(model, device, start_step, end_step))
        return _Run(cfg=cfg, device=device, amp=False, dist=None, rank=0, world=1, per_rank=per_rank, model=model,
                    local=model, net=model, restore=None, params=params, opt=opt, sched=sched,
                    loss_fn=None,
                    train_ds=None, val_batches=None, n_val=cfg["val_examples"], history=history,
                    start_step=start_step, step=start_step, end_step=end_step, spent=spent, best=best, t0=time.time(),
                    out=out, steps_override=steps_override, max_seconds=cfg["max_seconds"], part=part)
    if data is not None:
        raise ValueError("data (the stems to draw patches from) applies to the proxy (\"model\": \"proxy\") only; "
                         f"a {cfg['model']} trains on the bundled dataset of its task.")
    if cfg["encoder_pretrain_steps"] and not resume:
        if cfg["model"] != "dmc":
            raise ValueError("encoder_pretrain_steps applies to the DMC's encoder; the Mix-Wave-U-Net has none.")
        report = pretrain_encoder(model.encoder, cfg["task"], cfg["encoder_pretrain_steps"], seed=cfg["seed"])
        history["encoder_pretrain"] = {"val_accuracy": report["val_accuracy"], "chance": report["chance"],
                                       "roles": report["roles"], "final_loss": report["loss"][-1]}
        log(f"encoder pretrained on role classification ({cfg['encoder_pretrain_steps']} steps): VAL accuracy "
            f"{report['val_accuracy']:.0%} (most common role {report['chance']:.0%})")
    train_ds, val_ds = _datasets(cfg)
    val_batches = [] if rank else [_batch(val_ds, range(i, min(i + cfg["batch_size"], len(val_ds))))
                                   for i in range(0, len(val_ds), cfg["batch_size"])]
    loss_fn = StereoLoss().to(device)
    local = _Net(model, cfg, amp)
    net, restore = local, None
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        restore = _globalise(model, dist)
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(local, device_ids=ids, output_device=device.index if ids else None)
    ranks = f", {world} processes x {per_rank} items" if world > 1 else ""
    log(f"{cfg['model']} {cfg['model_args']} on {cfg['task']}: {_n_trainable(model):,} trainable parameters, "
        f"device {device}{' (bfloat16 autocast)' if amp else ''}{ranks}, steps {start_step + 1}-{cfg['steps']}")
    return _Run(cfg=cfg, device=device, amp=amp, dist=dist, rank=rank, world=world, per_rank=per_rank, model=model,
                local=local, net=net, restore=restore, params=params, opt=opt, sched=sched, loss_fn=loss_fn,
                train_ds=train_ds, val_batches=val_batches, n_val=len(val_ds), history=history,
                start_step=start_step, step=start_step, end_step=end_step, spent=spent, best=best, t0=time.time(),
                out=out, steps_override=steps_override, max_seconds=None, part=_MixingPart())


def _optimise(run: _Run, step: int) -> float:
    """One optimisation step (1-based ``step``): the part's batch (mixing models: this rank's slice of the step's
    global batch, items ``(step - 1) * batch_size`` onwards, the same on every rank; the proxy: fresh patches),
    loss, gradients (averaged over the ranks), clipping, optimiser and the part's per-step schedule. Returns the
    loss of the global batch."""
    run.net.train()
    batch = run.part.batch(run, step)
    _set_threads(run.cfg["threads"])  # held through the run, whatever rendering a target did (see _set_threads)
    loss = run.part.loss(run, batch, run.net)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.params, run.cfg["grad_clip"])
    run.opt.step()
    run.part.stepped(run)
    return loss.item()


def _validate(run: _Run) -> float:
    """Validation loss (rank 0, the plain model in eval mode): the mixing models' on the fixed VAL batches (batches
    of ``batch_size``), the proxy's L1 on its fixed VAL patches."""
    run.model.eval()
    return run.part.validate(run)


def _summary(run: _Run) -> dict:
    h = dict(run.history)
    now = time.time()
    h.update(wall_seconds=run.spent + now - run.t0, steps_done=run.step, device=str(run.device),
             device_name=torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
             threads=torch.get_num_threads(), best_val=run.best,
             steps_per_second=(run.step - run.start_step) / max(now - run.t0, 1e-9), world_size=run.world,
             steps_override=run.steps_override)
    return h


def _save(run: _Run, name: str, history: dict) -> None:
    """Saving (rank 0): ``best.pt``, or ``last.pt`` with what resuming needs (optimiser, schedule, step, last step,
    random state, the part's state); both with the part's ``extra`` (the proxy's parameter names)."""
    extra = dict(run.part.extra)
    if name == "last.pt":
        extra.update({"optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(), "step": run.step,
                      "end_step": run.end_step, "rng": torch.get_rng_state(), **run.part.state()})
        if run.device.type == "cuda":
            extra["cuda_rng"] = torch.cuda.get_rng_state(run.device)
    save_checkpoint(os.path.join(run.out, name), run.model, run.cfg, history, extra=extra)


def _finish(run: _Run, history: dict) -> None:
    """The run's last files (rank 0): ``last.pt``, ``history.json``, ``loss_curve.png``; the folder is released."""
    from ._checks import atomic_outputs

    _save(run, "last.pt", history)
    text = json.dumps(_json_safe(history), indent=1, allow_nan=False)
    with atomic_outputs([os.path.join(run.out, "history.json")], overwrite=True) as (tmp,):
        with open(tmp, "w") as f:
            f.write(text + "\n")
    try:
        from matplotlib.figure import Figure  # no pyplot: leaves a notebook's backend alone

        fig = Figure(figsize=(7, 3.2))
        plot_history(history, fig.subplots(), ylabel=run.part.loss_name)
        fig.tight_layout()
        with atomic_outputs([os.path.join(run.out, "loss_curve.png")], overwrite=True) as (tmp,):
            fig.savefig(tmp, dpi=100, format="png")
    except ImportError:
        pass
    os.unlink(os.path.join(run.out, RUNNING))


def _quiet(*_args, **_kwargs) -> None:
    pass


def _run_training(cfg: dict, config, out, resume: bool, progress: bool, stop_at, log, overwrite: bool, dist, device,
                  reserved: bool = False, steps_override: Optional[int] = None, data=None):
    """The loop: set-up, then optimisation steps with logging, validation and saving on rank 0. It ends after
    ``run.end_step`` (or ``stop_at``), or after the step that passes ``max_seconds`` (the proxy's)."""
    main_rank = dist is None or dist.rank == 0
    log = log if main_rank else _quiet
    run = _setup(cfg, config, out, resume, overwrite, log, dist, device, reserved, steps_override, data)
    try:
        history = run.history
        bar = _progress(run.end_step, run.start_step, progress and main_rank)
        running = []
        last_step = run.end_step if stop_at is None else min(int(stop_at), run.end_step)
        for step in range(run.start_step + 1, last_step + 1):
            run.step = step
            loss = _optimise(run, step)
            running.append(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at step {step}; lower lr or check the data.")
            if run.max_seconds and time.time() - run.t0 > run.max_seconds:
                last_step = step  # out of time: log, validate and save as at the end
            if step % cfg["log_every"] == 0 or step == last_step:
                history["step"].append(step)
                history["loss"].append(sum(running) / len(running))
                history["lr"].append(run.opt.param_groups[0]["lr"])
                history["seconds"].append(run.spent + time.time() - run.t0)
                running = []
                if bar is None:
                    log(f"step {step:6d}  loss {history['loss'][-1]:.4f}  lr {history['lr'][-1]:.2e}")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{run.opt.param_groups[0]['lr']:.1e}")
            if main_rank and (step % cfg["val_every"] == 0 or step == last_step):
                v = _validate(run)
                run.part.validated(run, step, v)
                history["val_step"].append(step)
                history["val_loss"].append(v)
                if bar is None:
                    log(f"step {step:6d}  validation {v:.4f}")
                if out:
                    if v < run.best:
                        run.best = v
                        _save(run, "best.pt", _summary(run))
                    _save(run, "last.pt", _summary(run))
                run.best = min(run.best, v)
            if step == last_step:
                break
        if bar is not None:
            bar.close()
        history = _summary(run)
        log(f"done: {run.step} steps in {history['wall_seconds']:.0f} s ({history['steps_per_second']:.2f} steps/s on "
            f"{history['device_name']}{f' x {run.world}' if run.world > 1 else ''}), best validation loss "
            f"{run.best:.4f}")
        if out and main_rank:
            _finish(run, history)
    finally:
        if run.restore is not None:
            run.restore()
    run.model.eval()
    return run.model, history


def _with_steps(cfg: dict, steps: Optional[int]) -> dict:
    """``cfg`` with ``steps`` replaced (``--steps``), checked as every config value is."""
    if steps is None:
        return cfg
    try:
        return load_config({**cfg, "steps": steps})
    except ValueError as err:
        raise ValueError(f"the steps override (--steps): {err}") from None


def train(config, out: Optional[str] = None, resume: bool = False, progress: bool = True, stop_at: Optional[int] = None,
          log=print, overwrite: bool = False, steps: Optional[int] = None, nproc: Optional[int] = None, data=None):
    """Train the model of ``config`` (dict or JSON path): a DMC, a Mix-Wave-U-Net or, with ``"model": "proxy"``,
    the channel-chain proxy; returns ``(model, history)``.

    ``out``: folder for ``last.pt``, ``best.pt``, ``history.json`` and ``loss_curve.png``; with
    ``resume=True`` training continues from ``out/last.pt`` (weights, optimiser, schedule, random state:
    a run stopped early with ``stop_at=STEP`` and resumed ends where an uninterrupted run ends). ``history`` has ``step``, ``loss``, ``lr``,
    ``val_step``, ``val_loss``, ``steps_per_second``, ``wall_seconds``, ``device``, ``best_val``, ``world_size``
    and ``steps_override``.
    An ``out`` folder that already holds a run (:data:`RUN_FILES`) is refused unless ``resume`` or ``overwrite``
    (each file is then replaced when its new version is complete). Every file is written to a temporary name
    and renamed into place; ``history.json`` is strict JSON (``null`` for a non-finite value).

    ``steps``: train this many steps instead of the config's (a quick run); the stored config says so, and a
    resumed run must give the same.

    ``data`` (the proxy only): ``(train_stems, val_stems)``, lists of mono ``(T,)`` tensors to draw patches from
    instead of the bundled TRAIN and VAL stems (either may be ``None``: the bundled split). The proxy trains in
    one process (no ``nproc`` > 1, no torchrun).

    **Several processes.** ``nproc=N`` (``--nproc N``) starts N processes on this machine
    (``torch.multiprocessing``, one per GPU with CUDA, NCCL; gloo on CPU); under ``torchrun`` (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK`` set) every process calls ``train`` itself. The model is wrapped in
    ``DistributedDataParallel``. ``batch_size`` is the global batch: it must divide by N, and at step ``s`` every
    rank ``r`` takes items ``(s - 1) * batch_size + r * batch_size / N`` onwards of the same seeded data. The
    loss is that of the global batch (its sums added over the ranks), BatchNorm uses the global batch's statistics and
    dropout the global batch's masks (all ranks share one random state), so N processes train, within float
    rounding, the weights one process does with the whole batch; resuming works the same way. Only rank 0
    validates, logs, shows progress and writes files (and reads ``last.pt``, sharing it with the others). With
    ``nproc`` the return value is read back from ``out/last.pt``, so ``out`` is needed, and ``log`` must be
    picklable (else ``print`` is used); with ``threads`` null each process takes ``cpu_count / N`` threads.
    """
    cfg = _with_steps(load_config(config), steps)
    many = isinstance(nproc, int) and not isinstance(nproc, bool) and nproc > 1
    if (cfg["model"] == "proxy" or _sampled(cfg["model"])) and (many or _launched_world() > 1):
        raise ValueError(_one_process(cfg["model"]))
    if nproc is not None:
        if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
            raise ValueError(f"nproc (--nproc) must be a whole number >= 1, the number of processes to train in; "
                             f"got {nproc!r}.")
        if _launched_world() > 1:
            raise ValueError("nproc (--nproc) starts its own processes; this one is already one of several (torchrun): "
                             "leave --nproc out.")
        if nproc > 1:
            return _spawn(cfg, config, out, resume, progress, stop_at, log, overwrite, steps, nproc)
    world = _launched_world()
    if world == 1:
        return _run_training(cfg, config, out, resume, progress, stop_at, log, overwrite, None, _device(cfg["device"]),
                             steps_override=steps, data=data)
    rank = int(os.environ.get("RANK", "0"))
    dist, device = _join(cfg, rank, world, int(os.environ.get("LOCAL_RANK", rank)), "env://")
    finished = False
    try:
        result = _run_training(cfg, config, out, resume, progress, stop_at, log, overwrite, dist, device,
                               steps_override=steps, data=data)
        finished = True
        return result
    finally:
        dist.close(finished)


def _spawn(cfg, config, out, resume, progress, stop_at, log, overwrite, steps, nproc):
    """``nproc`` processes on this machine (``torch.multiprocessing``, spawned), rendezvous through a file."""
    import pickle
    import shutil
    import tempfile

    import logging

    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    if not out:
        raise ValueError("training in several processes (nproc > 1) needs an out folder: the model comes back "
                         "through out/last.pt.")
    _per_rank_batch(cfg, nproc)
    _rank_device(cfg, nproc, nproc - 1)  # every process has its device
    _check_out(out, config, resume, overwrite)  # reserved here; rank 0 releases it at the end
    if resume:
        _resume_state(out, cfg)  # its errors now, not after starting the processes (rank 0 reads it again)
    try:
        pickle.dumps(log)
    except Exception:  # noqa: BLE001 - e.g. a lambda
        log = print
    tmp = tempfile.mkdtemp(prefix="automix-train-")
    job = dict(cfg=cfg, out=out, resume=resume, overwrite=overwrite, progress=progress, stop_at=stop_at, log=log,
               steps=steps)
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # not "Terminating process ... via signal SIGTERM": the error says why
    try:
        mp.start_processes(_worker, args=(nproc, tmp, job), nprocs=nproc, join=True, start_method="spawn")
    except ProcessException as err:
        raise _worker_error(tmp, nproc, err) from None
    finally:
        spawn_log.setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)
    ck = load_checkpoint(os.path.join(out, "last.pt"))
    return ck["model"], ck["history"]


def _worker(rank: int, nproc: int, tmp: str, job: dict) -> None:
    """One spawned process of :func:`_spawn`; its error, if any, is left in ``tmp`` for the parent."""
    import pickle

    try:
        cfg = job["cfg"]
        if cfg["threads"] is None:  # torch's default, all cores, in every process would oversubscribe them
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
        dist, device = _join(cfg, rank, nproc, rank, "file://" + os.path.join(tmp, "rendezvous"))
        finished = False
        try:
            _run_training(cfg, cfg, job["out"], job["resume"], job["progress"], job["stop_at"], job["log"],
                          job["overwrite"], dist, device, reserved=True, steps_override=job["steps"])
            finished = True
        finally:
            dist.close(finished)
    except BaseException as err:
        try:
            data = pickle.dumps(err)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"))
        with open(os.path.join(tmp, f"error.{rank}"), "wb") as f:
            f.write(data)
        raise


def _worker_error(tmp: str, nproc: int, err: Exception) -> BaseException:
    """The error of the lowest rank that left one (rank 0's is the cause when the others lost their peer)."""
    import pickle

    for rank in range(nproc):
        path = os.path.join(tmp, f"error.{rank}")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return pickle.load(f)
    return ChildProcessError(f"a training process ended without an error message: {err}")


def main(argv=None) -> int:
    """``python -m automix_lite.train CONFIG --out DIR [options]``: ``automix train`` (e.g. under
    ``torchrun --nproc-per-node 4 -m automix_lite.train CONFIG --out DIR``)."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
