"""Training the mixing models (taught in ``notebooks/13_training.ipynb``).

One readable loop for the DMC and Mix-Wave-U-Net, driven by a JSON config (``DEFAULT_CONFIG`` lists every
key; ``configs/*.json`` are the recorded ones). Run one with ``automix train CONFIG --out DIR``.

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
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import time
from typing import Optional

import torch

from . import __version__, _checkpoint
from ._checks import read_json
from .losses import StereoLoss

__all__ = ["DEFAULT_CONFIG", "load_config", "build_model", "train", "save_checkpoint", "load_checkpoint",
           "pretrain_encoder", "plot_history", "code_version"]

CHECKPOINT_FORMAT = "automix-lite-model/1"

DEFAULT_CONFIG = {
    "model": "dmc",  # "dmc" or "wave_u_net"
    "model_args": {},  # keyword arguments of DMC(...) or MixWaveUNet(...)
    "task": "songs",  # "songs" or "drums"
    "engineer": "natural",
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


_CHOICES = {"model": ("dmc", "wave_u_net"), "task": ("songs", "drums"), "optimizer": ("adam", "adamw"),
            "schedule": ("cosine", "constant")}
_WHOLE = {"max_tracks": 1, "batch_size": 1, "steps": 1, "warmup_steps": 0, "encoder_pretrain_steps": 0,
          "val_every": 1, "val_items": 1, "log_every": 1, "seed": 0}  # key: smallest value
_REAL = {"segment_seconds": (0, None, False), "gain_augment_db": (0, 12, True), "lr": (0, None, False),
         "weight_decay": (0, None, True), "final_lr_fraction": (0, 1, True), "grad_clip": (0, None, False),
         "param_weight": (0, None, True)}  # key: (low, high, low allowed)


def _config_problems(cfg: dict) -> list:
    """One message per bad value of a full config (each names its key)."""
    import inspect
    import re

    problems = []
    for key, options in _CHOICES.items():
        if cfg[key] not in options:
            problems.append(f"{key} must be one of {', '.join(map(repr, options))}; got {cfg[key]!r}")
    for key, low in _WHOLE.items():
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            problems.append(f"{key} must be a whole number >= {low}; got {v!r}")
    for key, (low, high, closed) in _REAL.items():
        v = cfg[key]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if not ok or (v < low if closed else v <= low) or (high is not None and v > high):
            where = f"{'[' if closed else '('}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
            problems.append(f"{key} must be a finite number in {where}; got {v!r}")
    if not isinstance(cfg["engineer"], str) or not cfg["engineer"]:
        problems.append(f"engineer must be the name of an engineer of the bundled set (e.g. 'natural'); got "
                        f"{cfg['engineer']!r}")
    if not isinstance(cfg["amp"], bool):
        problems.append(f"amp must be true or false; got {cfg['amp']!r}")
    if cfg["threads"] is not None and (isinstance(cfg["threads"], bool) or not isinstance(cfg["threads"], int)
                                       or cfg["threads"] < 1):
        problems.append(f"threads must be null (torch's default) or a whole number >= 1; got {cfg['threads']!r}")
    if not isinstance(cfg["device"], str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", cfg["device"]):
        problems.append(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {cfg['device']!r}")
    args = cfg["model_args"]
    if not isinstance(args, dict):
        problems.append(f"model_args must be an object of keyword arguments; got {args!r}")
    elif cfg["model"] in _CHOICES["model"]:
        from .models.dmc import DMC
        from .models.wave_u_net import MixWaveUNet

        cls, own = (DMC, "max_tracks") if cfg["model"] == "dmc" else (MixWaveUNet, "n_tracks")
        accepted = set(inspect.signature(cls).parameters) - {own, "self"}
        unknown = sorted(set(args) - accepted)
        if unknown:
            problems.append(f"model_args {unknown} are not arguments of {cls.__name__} (it takes "
                            f"{', '.join(sorted(accepted))}; the number of tracks comes from max_tracks)")
    return problems


def load_config(path_or_dict) -> dict:
    """``DEFAULT_CONFIG`` updated with a JSON file or dict, every value checked.

    Unknown keys and bad values raise one ``ValueError`` that lists every problem, each naming its key
    (types, ranges, ``steps`` and ``val_every`` >= 1, device names, model arguments)."""
    if isinstance(path_or_dict, dict):
        given = dict(path_or_dict)
    else:
        given = read_json(path_or_dict, "see configs/ for examples")
        if not isinstance(given, dict):
            raise ValueError(f"{path_or_dict} must hold a JSON object of config keys (see configs/ for examples).")
    unknown = sorted(set(given) - set(DEFAULT_CONFIG) - {"comment"})
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; the keys are {sorted(DEFAULT_CONFIG)}.")
    cfg = {**copy.deepcopy(DEFAULT_CONFIG), **given}
    problems = _config_problems(cfg)
    if problems:
        where = "" if isinstance(path_or_dict, dict) else f"{path_or_dict}: "
        raise ValueError(f"{where}{'; '.join(problems)}.")
    return cfg


def build_model(cfg: dict) -> torch.nn.Module:
    """The network a config describes (``DMC`` with ``max_tracks``, or ``MixWaveUNet`` with ``n_tracks``), with
    ``segment_seconds`` (the training segment length) as an attribute."""
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

    Returns ``{"model" (in eval mode), "config", "history", "metrics", "code_version", "extra", "sha256"}``.
    """
    what = "automix-lite model checkpoint"
    data, digest = _checkpoint.read(path, CHECKPOINT_FORMAT, what)
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


def _lr_factor(cfg: dict, step: int) -> float:
    """Multiplier of ``lr`` at ``step`` (1-based): linear warm-up, then cosine to ``final_lr_fraction``."""
    if cfg["warmup_steps"] and step <= cfg["warmup_steps"]:
        return step / cfg["warmup_steps"]
    if cfg["schedule"] == "constant":
        return 1.0
    span = max(cfg["steps"] - cfg["warmup_steps"], 1)
    progress = min((step - cfg["warmup_steps"]) / span, 1.0)
    low = cfg["final_lr_fraction"]
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


def _batch(ds, indices) -> dict:
    items = [ds[i] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in ("tracks", "mask", "mix", "params")}


def _datasets(cfg: dict):
    from .data import BundledDataset

    common = dict(task=cfg["task"], engineer=cfg["engineer"], segment_seconds=cfg["segment_seconds"],
                  max_tracks=cfg["max_tracks"])
    train_ds = BundledDataset(split="train", seed=cfg["seed"], length=10 ** 9,
                              gain_augment_db=cfg["gain_augment_db"], **common)
    val_ds = BundledDataset(split="val", seed=cfg["seed"] + 1, length=cfg["val_items"], **common)
    return train_ds, val_ds


def _basic_columns() -> tuple:
    from .dsp.console import param_names

    names = param_names()[0]
    return names.index("gain_db"), names.index("pan")


def _forward(model, cfg, batch, device, loss_fn, amp: bool):
    tracks, mask, target = batch["tracks"].to(device), batch["mask"].to(device), batch["mix"].to(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        if cfg["model"] == "dmc":
            params = model.estimate(tracks, mask)
        else:
            y = model(tracks, mask)
    if cfg["model"] == "dmc":
        params = {k: v.float() for k, v in params.items()}
        y = model.render(tracks, params, mask)
    loss = loss_fn(y.float(), target)
    if cfg["model"] == "dmc" and cfg["param_weight"]:
        gi, pi = _basic_columns()
        ref = batch["params"].to(device)[..., [gi, pi]]
        pred = params["_track"][..., [model.track_names.index("gain_db"), model.track_names.index("pan")]]
        w = mask.unsqueeze(-1).to(pred.dtype)
        loss = loss + cfg["param_weight"] * ((pred - ref).abs() * w).sum() / (2 * w.sum())
    return loss


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


def plot_history(history: dict, ax=None):
    """Training loss (mean per logging interval) and validation loss against steps; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(history["step"], history["loss"], label="training (mean over the log interval)", alpha=0.8)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("stereo MR-STFT loss")
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


def train(config, out: Optional[str] = None, resume: bool = False, progress: bool = True, stop_at: Optional[int] = None,
          log=print, overwrite: bool = False):
    """Train the model of ``config`` (dict or JSON path); returns ``(model, history)``.

    ``out``: folder for ``last.pt``, ``best.pt``, ``history.json`` and ``loss_curve.png``; with
    ``resume=True`` training continues from ``out/last.pt`` (weights, optimiser, schedule, random state:
    a run stopped early with ``stop_at=STEP`` and resumed ends where an uninterrupted run ends). ``history`` has ``step``, ``loss``, ``lr``,
    ``val_step``, ``val_loss``, ``steps_per_second``, ``wall_seconds``, ``device`` and ``best_val``.
    An ``out`` folder that already holds a run (:data:`RUN_FILES`) is refused unless ``resume`` or ``overwrite``
    (each file is then replaced when its new version is complete). Every file is written to a temporary name
    and renamed into place; ``history.json`` is strict JSON (``null`` for a non-finite value).
    """
    cfg = load_config(config)
    device = _device(cfg["device"])
    if out:
        _check_out(out, config, resume, overwrite)
    _set_threads(cfg["threads"])
    amp = bool(cfg["amp"]) and device.type == "cuda"
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"] if cfg["optimizer"] == "adamw" else 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(cfg, s + 1))
    history = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": [], "seconds": []}
    start_step, spent, best = 0, 0.0, math.inf
    if resume:
        if not out or not os.path.isfile(os.path.join(out, "last.pt")):
            raise FileNotFoundError(f"resume=True but there is no {os.path.join(out or '.', 'last.pt')} to continue.")
        last = os.path.join(out, "last.pt")
        ck = load_checkpoint(last, device=str(device))
        if ck["config"] != cfg:
            raise ValueError(f"{last} was trained with another config; use a new --out folder (or its config).")
        model.load_state_dict(ck["model"].state_dict(), strict=False)
        try:
            opt.load_state_dict(ck["extra"]["optimizer"])
            sched.load_state_dict(ck["extra"]["scheduler"])
            history = {k: list(v) for k, v in ck["history"].items() if k in history}
            if "encoder_pretrain" in ck["history"]:
                history["encoder_pretrain"] = ck["history"]["encoder_pretrain"]
            start_step, spent = int(ck["extra"]["step"]), float(ck["history"]["wall_seconds"])
            best = ck["history"]["best_val"]
            best = math.inf if best is None else float(best)
            torch.set_rng_state(ck["extra"]["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{last} cannot be resumed: its optimiser, schedule or history is missing or damaged "
                             f"({type(err).__name__}: {err}). Start a new run with --overwrite or another --out.") from None
        if start_step >= cfg["steps"]:
            raise ValueError(f"{os.path.join(out, 'last.pt')} has already finished all {cfg['steps']} steps.")
    if cfg["encoder_pretrain_steps"] and not resume:
        if cfg["model"] != "dmc":
            raise ValueError("encoder_pretrain_steps applies to the DMC's encoder; the Mix-Wave-U-Net has none.")
        report = pretrain_encoder(model.encoder, cfg["task"], cfg["encoder_pretrain_steps"], seed=cfg["seed"])
        history["encoder_pretrain"] = {"val_accuracy": report["val_accuracy"], "chance": report["chance"],
                                       "roles": report["roles"], "final_loss": report["loss"][-1]}
        log(f"encoder pretrained on role classification ({cfg['encoder_pretrain_steps']} steps): VAL accuracy "
            f"{report['val_accuracy']:.0%} (most common role {report['chance']:.0%})")
    train_ds, val_ds = _datasets(cfg)
    val_batches = [_batch(val_ds, range(i, min(i + cfg["batch_size"], len(val_ds))))
                   for i in range(0, len(val_ds), cfg["batch_size"])]
    loss_fn = StereoLoss().to(device)
    log(f"{cfg['model']} {cfg['model_args']} on {cfg['task']}: {getattr(model, 'n_params', 0):,} trainable parameters, "
        f"device {device}{' (bfloat16 autocast)' if amp else ''}, steps {start_step + 1}-{cfg['steps']}")
    bar = _progress(cfg["steps"], start_step, progress)
    t0, running, step = time.time(), [], start_step

    def summary(final: bool) -> dict:
        h = dict(history)
        h.update(wall_seconds=spent + time.time() - t0, steps_done=step, device=str(device),
                 device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 threads=torch.get_num_threads(), best_val=best,
                 steps_per_second=(step - start_step) / max(time.time() - t0, 1e-9))
        return h

    def save(name: str, h: dict):
        extra = ({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                  "rng": torch.get_rng_state()} if name == "last.pt" else {})
        save_checkpoint(os.path.join(out, name), model, cfg, h, extra=extra)

    last_step = cfg["steps"] if stop_at is None else min(int(stop_at), cfg["steps"])
    for step in range(start_step + 1, last_step + 1):
        model.train()
        idx = range((step - 1) * cfg["batch_size"], step * cfg["batch_size"])
        batch = _batch(train_ds, idx)
        _set_threads(cfg["threads"])  # held through the run, whatever rendering a target did (see _set_threads)
        loss = _forward(model, cfg, batch, device, loss_fn, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        opt.step()
        sched.step()
        running.append(loss.item())
        if not math.isfinite(running[-1]):
            raise FloatingPointError(f"the loss became {running[-1]} at step {step}; lower lr or check the data.")
        if step % cfg["log_every"] == 0 or step == last_step:
            history["step"].append(step)
            history["loss"].append(sum(running) / len(running))
            history["lr"].append(opt.param_groups[0]["lr"])
            history["seconds"].append(spent + time.time() - t0)
            running = []
            if bar is None:
                log(f"step {step:6d}  loss {history['loss'][-1]:.4f}  lr {history['lr'][-1]:.2e}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running[-1]:.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        if step % cfg["val_every"] == 0 or step == last_step:
            model.eval()
            with torch.no_grad():
                v = sum(float(_forward(model, cfg, b, device, loss_fn, amp)) * len(b["mix"]) for b in val_batches)
            v /= len(val_ds)
            history["val_step"].append(step)
            history["val_loss"].append(v)
            if bar is None:
                log(f"step {step:6d}  validation {v:.4f}")
            if out:
                if v < best:
                    best = v
                    save("best.pt", summary(False))
                save("last.pt", summary(False))
            best = min(best, v)
    if bar is not None:
        bar.close()
    history = summary(True)
    log(f"done: {step} steps in {history['wall_seconds']:.0f} s ({history['steps_per_second']:.2f} steps/s on "
        f"{history['device_name']}), best validation loss {best:.4f}")
    if out:
        from ._checks import atomic_outputs

        save("last.pt", history)
        text = json.dumps(_json_safe(history), indent=1, allow_nan=False)
        with atomic_outputs([os.path.join(out, "history.json")], overwrite=True) as (tmp,):
            with open(tmp, "w") as f:
                f.write(text + "\n")
        try:
            from matplotlib.figure import Figure  # no pyplot: leaves a notebook's backend alone

            fig = Figure(figsize=(7, 3.2))
            plot_history(history, fig.subplots())
            fig.tight_layout()
            with atomic_outputs([os.path.join(out, "loss_curve.png")], overwrite=True) as (tmp,):
                fig.savefig(tmp, dpi=100, format="png")
        except ImportError:
            pass
        os.unlink(os.path.join(out, RUNNING))
    model.eval()
    return model, history
