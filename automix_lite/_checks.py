"""Input checks shared by every effect: one place for clear, actionable error messages.

All effects take audio shaped ``(batch, channels, samples)`` and parameters as Python floats or
tensors of shape ``(batch,)`` in real units. These helpers validate both and turn parameters into
tensors on the audio's device and dtype. :func:`check_output` and :func:`atomic_outputs` are the one way
the package writes files: checked before the work, written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
from typing import Optional

import torch

Number = float | int


def check_multitrack(tracks: torch.Tensor, max_tracks: int, mask=None, who: str = "this model"):
    """Check mono stems ``tracks (batch, tracks, samples)`` for a model of at most ``max_tracks`` tracks and its
    optional ``mask (batch, tracks)``; returns the mask as bool on the tracks' device (``None`` if not given)."""
    if not isinstance(tracks, torch.Tensor) or tracks.ndim != 3:
        got = tuple(tracks.shape) if isinstance(tracks, torch.Tensor) else type(tracks).__name__
        raise ValueError(f"tracks must be (batch, tracks, samples) mono stems; got {got}.")
    check_audio(tracks, "tracks")
    b, n, _ = tracks.shape
    if n > max_tracks:
        raise ValueError(f"got {n} tracks but {who} takes at most {max_tracks}.")
    if mask is None:
        return None
    if tuple(mask.shape) != (b, n):
        raise ValueError(f"mask must be (batch, tracks) = ({b}, {n}); got {tuple(mask.shape)}.")
    return mask.to(device=tracks.device, dtype=torch.bool)


def read_json(path, hint: str = ""):
    """The object in the JSON file ``path``; a missing file raises ``FileNotFoundError`` and a file that is not
    valid JSON a ``ValueError``, both naming the file (``hint`` says how to fix it)."""
    import json
    import os

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no file at {path!r}{'; ' + hint if hint else ''}.")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path!r} is not valid JSON ({err}){'; ' + hint if hint else ''}.") from None


def check_audio(
    x: torch.Tensor,
    name: str = "x",
    channels: Optional[int] = None,
    finite: bool = True,
    full_precision: str = "",
) -> torch.Tensor:
    """Check that ``x`` is a floating tensor ``(batch, channels, samples)`` with finite samples.

    ``channels`` (1 for mono, 2 for stereo) is enforced when given; ``full_precision`` (the name of the
    code that needs it, e.g. ``"the reverb's FFT"``) refuses float16/bfloat16. Returns ``x`` unchanged.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor shaped (batch, channels, samples); got {type(x).__name__}. "
            "Convert with torch.as_tensor(array, dtype=torch.float32)."
        )
    if x.ndim != 3:
        hint = {
            1: f"add batch and channel dimensions with {name}.view(1, 1, -1)",
            2: f"add a batch dimension with {name}.unsqueeze(0) (if it is (channels, samples))",
        }.get(x.ndim, "reshape it")
        raise ValueError(
            f"{name} must have 3 dimensions (batch, channels, samples); got shape {tuple(x.shape)}: {hint}."
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be float32 or float64 audio; got dtype {x.dtype}. Use {name}.float().")
    if full_precision and x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64 for {full_precision}; got {x.dtype}. Use {name}.float().")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least one batch item and one channel.")
    if channels is not None and x.shape[1] != channels:
        kind = {1: "mono (1 channel)", 2: "stereo (2 channels)"}.get(channels, f"{channels} channels")
        got = {1: "mono (1 channel)", 2: "stereo (2 channels)"}.get(x.shape[1], f"{x.shape[1]} channels")
        fix = ""
        if channels == 1 and x.shape[1] > 1:
            fix = f" Downmix first with {name}.mean(dim=1, keepdim=True), or process each channel as its own batch item."
        elif channels == 2 and x.shape[1] == 1:
            fix = f" Pan it to stereo first (automix_lite.dsp.pan) or duplicate it with {name}.expand(-1, 2, -1)."
        raise ValueError(f"{name} must be {kind}; got {got}, shape {tuple(x.shape)}.{fix}")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} has no samples (shape {tuple(x.shape)}).")
    # One reduction is much cheaper than an elementwise mask; any NaN/inf makes the sum non-finite
    # (a finite sum can overflow too, so the mask below decides).
    if finite and not bool(torch.isfinite(x.detach().sum())):
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            b, c, n = (int(i) for i in bad.nonzero()[0])
            count = int(bad.sum())
            raise ValueError(
                f"{name} contains {count} NaN or infinite sample(s) (first at batch {b}, channel {c}, "
                f"sample {n}). Find where they come from, or replace them with torch.nan_to_num({name})."
            )
    return x


def check_sample_rate(sample_rate: Number, name: str = "sample_rate") -> float:
    """Return ``sample_rate`` as a float after checking it is a finite positive number (Hz)."""
    if isinstance(sample_rate, torch.Tensor):
        if sample_rate.numel() != 1:
            raise ValueError(f"{name} must be a single number in Hz; got a tensor of shape {tuple(sample_rate.shape)}.")
        sample_rate = float(sample_rate)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise TypeError(f"{name} must be a number in Hz (e.g. 44100); got {type(sample_rate).__name__}.")
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"{name} must be a positive number of samples per second (e.g. 44100); got {sample_rate}.")
    return float(sample_rate)


def as_param(
    value,
    name: str,
    batch: int,
    like: torch.Tensor,
    low: Optional[float] = None,
    high: Optional[float] = None,
    unit: str = "",
    clamp: bool = False,
) -> torch.Tensor:
    """Turn a parameter (float, 0-d tensor or ``(batch,)`` tensor) into a ``(batch,)`` tensor.

    The result has ``like``'s dtype and device and keeps the autograd graph. Values outside
    ``[low, high]`` raise a ``ValueError`` naming the parameter, its value, its range and unit, or are
    clamped into range when ``clamp=True`` (the effect's documentation then says so).
    """
    u = f" {unit}" if unit else ""
    if isinstance(value, torch.Tensor):
        t = value.to(device=like.device, dtype=like.dtype)
        if t.ndim == 0:
            t = t.expand(batch)
        elif t.ndim == 1 and t.shape[0] in (1, batch):
            t = t.expand(batch)
        else:
            raise ValueError(
                f"{name} must be a number or a tensor of shape ({batch},) (one value per batch item); "
                f"got shape {tuple(t.shape)}."
            )
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.full((batch,), float(value), dtype=like.dtype, device=like.device)
    else:
        raise TypeError(f"{name} must be a number or a tensor; got {type(value).__name__}.")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; got {t.detach().cpu().tolist()}{u}.")
    if low is not None or high is not None:
        lo = -math.inf if low is None else low
        hi = math.inf if high is None else high
        if clamp:
            t = t.clamp(lo, hi)
        else:
            out = (t < lo) | (t > hi)
            if bool(out.any()):
                bad = list(dict.fromkeys(t.detach()[out].cpu().tolist()))  # each bad value once
                shown = bad[0] if len(bad) == 1 else bad[:4]
                raise ValueError(
                    f"{name}={shown}{u} is outside its range [{lo:g}, {hi:g}]{u}. "
                    f"Choose a value inside the range."
                )
    return t


def bcast(p: torch.Tensor) -> torch.Tensor:
    """View a ``(batch,)`` parameter as ``(batch, 1, 1)`` to broadcast against ``(batch, channels, samples)``."""
    return p.view(-1, 1, 1)


# --------------------------------------------------------------------------------------------
# Writing files: checked first, then written to a temporary file and renamed into place
# --------------------------------------------------------------------------------------------

_OS_PROBLEMS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device",
                errno.EDQUOT: "the disk quota is exceeded", errno.ENOENT: "the folder does not exist"}


def os_error_message(err: OSError, path=None) -> str:
    """One line for an ``OSError`` met while writing: what happened, where, and what to do."""
    where = path or err.filename or "the output"
    why = _OS_PROBLEMS.get(err.errno, err.strerror or str(err))
    return f"cannot write {where}: {why}; choose a location you can write to (with enough free space)."


def check_output(path, overwrite: bool = False, flag: str = "") -> str:
    """Check, before any work, that ``path`` can be written; returns its absolute path.

    Refused (``ValueError``/``FileExistsError``/``FileNotFoundError`` naming ``flag``, e.g. ``"--out"``): a
    folder, an existing file that is not a regular file (a pipe, a device), an existing file without
    ``overwrite``, a folder that does not exist, and one that does not accept a new file (read-only, no
    permission, full: a test file is created and removed there).
    """
    path = os.path.abspath(os.fspath(path))
    what = f"{flag} {path}" if flag else path
    if os.path.isdir(path):
        raise ValueError(f"{what} is a folder; give a file name.")
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise ValueError(f"{what} exists and is not a regular file (a pipe, device or broken link); "
                             "choose another name.")
        if not overwrite:
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it, or choose another name.")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {what} does not exist; create it first or choose another location.")
    probe = os.path.join(folder, f".automix-probe-{secrets.token_hex(4)}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise ValueError(os_error_message(err, f"{what} (in {folder})")) from None
    return path


def _temporary(path: str) -> str:
    """A new, empty hidden file next to ``path`` with the same ending (formats are told by it)."""
    folder, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    while True:
        tmp = os.path.join(folder, f".{stem}.{secrets.token_hex(4)}.tmp{ext}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
            return tmp
        except FileExistsError:
            continue


def _place(tmp: str, path: str, overwrite: bool) -> None:
    """Rename ``tmp`` to ``path``; without ``overwrite`` only if ``path`` does not exist (create-exclusive)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists, even if it appeared a moment ago
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: reserve the name, then rename over the reservation
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_outputs(paths, overwrite: bool = False):
    """Write several files all or nothing: yields one temporary path per target (a hidden file next to it,
    same ending); when the block ends without an error they are renamed into place, else removed.

    A killed run, a full disk or a failure leaves no truncated file under a target name, and with
    ``overwrite`` the previous file stays until the new one is complete. Without ``overwrite`` a target
    that exists when the files are placed (e.g. written by a concurrent run) raises ``FileExistsError`` and
    none of the targets is written. An ``OSError`` (read-only, permission, full) becomes a ``ValueError``
    that says so.
    """
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    temps = []
    try:
        for p in paths:
            temps.append(_temporary(p))
        yield list(temps)
        placed = []
        try:
            for tmp, p in zip(temps, paths):
                _place(tmp, p, overwrite)
                placed.append(p)
        except FileExistsError:
            for p in placed:  # all or nothing: take back what this run created
                os.unlink(p)
            raise FileExistsError(f"{p} appeared while this run was working (another run writing there?); nothing "
                                  "was written. Pass --overwrite to replace it, or choose another name.") from None
    except OSError as err:
        if isinstance(err, FileExistsError):
            raise
        raise ValueError(os_error_message(err, err.filename or paths[len(temps) - 1 if temps else 0])) from None
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
