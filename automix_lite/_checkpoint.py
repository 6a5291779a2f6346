"""Checksummed checkpoint files, shared by the proxy (``models.proxy``) and the mixing models (``train``).

A file holds ``{"format", "sha256", "payload"}``: ``payload`` is a ``torch.save``-serialised dict and
``sha256`` its checksum, so a damaged or edited file is refused with a message instead of loading wrong weights.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle

import torch


def float32_state(model: torch.nn.Module, skip: str = "") -> dict:
    """The model's ``state_dict`` on the CPU, floating tensors in float32; keys starting with ``skip`` left out."""
    return {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def write(path: str, payload: dict, fmt: str) -> str:
    """Serialise ``payload`` into ``path`` (written to a temporary file, then renamed); returns its sha256."""
    from ._checks import atomic_outputs

    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_outputs([path], overwrite=True) as (tmp,):  # never a half-written checkpoint under its name
        torch.save({"format": fmt, "sha256": digest, "payload": data}, tmp)
    return digest


def _load(source, path: str, what: str):
    """``torch.load(weights_only=True)`` with one clear error for anything that is not plain weights."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # an object weights_only forbids: never suggest turning that check off
        raise ValueError(f"{path} is not a valid {what}: it holds Python objects that a checkpoint never contains "
                         "(or it is damaged), and automix loads plain weights only. Use a file written by "
                         "`automix train` or a bundled model (`automix models`).") from None
    except Exception as err:  # noqa: BLE001 - any other failure means a damaged file or another kind of file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable {what} ({first}); it is damaged or of another kind. Use a "
                         "file written by `automix train` or a bundled model (`automix models`).") from None


def read(path: str, fmt: str, what: str, missing_hint: str = "") -> tuple:
    """``(payload dict, sha256)`` of a file written by :func:`write` with format ``fmt``, checksum verified.

    ``what`` names the kind of checkpoint in messages; ``missing_hint`` is appended when the file is absent.
    Anything else (another format, a missing field, a forbidden pickle, a damaged file) is a ``ValueError``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}{'; ' + missing_hint if missing_hint else ''}.")
    outer = _load(path, path, what)
    if not isinstance(outer, dict) or outer.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} (format {fmt!r} expected).")
    if not isinstance(outer.get("payload"), bytes) or not isinstance(outer.get("sha256"), str):
        raise ValueError(f"{path} is not a valid {what}: its payload or checksum is missing. Restore or retrain it.")
    if hashlib.sha256(outer["payload"]).hexdigest() != outer["sha256"]:
        raise ValueError(f"checksum mismatch in {path}: the stored sha256 {outer['sha256'][:12]}... does not match its "
                         "contents; the file is corrupt or was modified. Restore or retrain it.")
    payload = _load(io.BytesIO(outer["payload"]), path, what)
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a valid {what}: its payload is a {type(payload).__name__}, not a dict.")
    return payload, outer["sha256"]
