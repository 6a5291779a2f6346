"""Checksummed checkpoint files, shared by the proxy (``models.proxy``) and the mixing models (``train``).

A file holds ``{"format", "sha256", "payload"}``: ``payload`` is a ``torch.save``-serialised dict and
``sha256`` its checksum, so a damaged or edited file is refused with a message instead of loading wrong weights.
"""

from __future__ import annotations

import hashlib
import io
import os

import torch


def float32_state(model: torch.nn.Module, skip: str = "") -> dict:
    """The model's ``state_dict`` on the CPU, floating tensors in float32; keys starting with ``skip`` left out."""
    return {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def write(path: str, payload: dict, fmt: str) -> str:
    """Serialise ``payload`` into ``path`` (written to a temporary file, then renamed); returns its sha256."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"format": fmt, "sha256": digest, "payload": data}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return digest


def read(path: str, fmt: str, what: str, missing_hint: str = "") -> tuple:
    """``(payload dict, sha256)`` of a file written by :func:`write` with format ``fmt``, checksum verified.

    ``what`` names the kind of checkpoint in messages; ``missing_hint`` is appended when the file is absent.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}{'; ' + missing_hint if missing_hint else ''}.")
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise ValueError(f"{path} is not a readable {what} ({err}); it is damaged or of another kind.") from None
    if not isinstance(outer, dict) or outer.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} (format {fmt!r} expected).")
    if hashlib.sha256(outer["payload"]).hexdigest() != outer["sha256"]:
        raise ValueError(f"checksum mismatch in {path}: the stored sha256 {outer['sha256'][:12]}... does not match its "
                         "contents; the file is corrupt or was modified. Restore or retrain it.")
    return torch.load(io.BytesIO(outer["payload"]), map_location="cpu", weights_only=True), outer["sha256"]
