"""Bundled, pretrained mixing models (used in ``notebooks/14_inference.ipynb`` and by ``automix mix``).

The checkpoints live in ``automix_lite/checkpoints/`` next to a model card each (``<name>.md``):

=====================  ==========================================================  =======
name                   model                                                       task
=====================  ==========================================================  =======
``dmc_basic_songs``    Differentiable Mixing Console, basic console (gain, pan)    songs
``dmc_basic_drums``    Differentiable Mixing Console, basic console (gain, pan)    drums
``dmc_full_songs``     Differentiable Mixing Console, full DSP console             songs
``wave_u_net_drums``   Mix-Wave-U-Net (direct transformation, no parameters)       drums
=====================  ==========================================================  =======

and the style-transfer models ``style_track`` and ``style_mix`` (kind ``"style"``) and the contrastive effects
encoder ``fx_encoder`` (kind ``"encoder"``, task ``"stems"``).

Every file is checked twice before use: its sha256 must equal the one recorded in
``checkpoints/registry.json`` (written by :func:`write_registry` whenever the files change), and the
payload checksum inside the file is verified by :func:`automix_lite.train.load_checkpoint`.

- :func:`available` names the checkpoints that are installed, :data:`REGISTRY` describes all of them.
- :func:`load` returns a model in eval mode, from a registry name or from the path of any ``.pt`` file
  written by ``automix train`` (then only the payload checksum applies).
- :func:`card` returns a model card's markdown text.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Optional

from ._checks import atomic_outputs, read_json
from .data.bundled import file_sha256

__all__ = ["CHECKPOINT_DIR", "REGISTRY", "REGISTRY_FILE", "available", "load", "load_checkpoint", "card",
           "checkpoint_path", "file_sha256", "write_registry", "read_registry", "describe", "model_file"]

CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
"""Folder of the bundled checkpoints, their model cards and ``registry.json``."""

REGISTRY_FILE = "registry.json"
REGISTRY_FORMAT = "automix-lite-registry/1"

_ENTRIES = {
    "dmc_basic_songs": {
        "file": "dmc_basic_songs.pt", "kind": "mixer", "task": "songs",
        "description": "DMC, basic console (gain and pan per track), trained on the bundled songs",
    },
    "dmc_basic_drums": {
        "file": "dmc_basic_drums.pt", "kind": "mixer", "task": "drums",
        "description": "DMC, basic console (gain and pan per track), trained on the bundled drum kits",
    },
    "dmc_full_songs": {
        "file": "dmc_full_songs.pt", "kind": "mixer", "task": "songs",
        "description": "DMC, full DSP console (gain, EQ, compressor, pan, reverb), trained on the bundled songs",
    },
    "wave_u_net_drums": {
        "file": "wave_u_net_drums.pt", "kind": "mixer", "task": "drums",
        "description": "Mix-Wave-U-Net (writes the mix directly, no editable parameters), trained on drum kits",
    },
    "style_track": {
        "file": "style_track.pt", "kind": "style", "task": "track",
        "description": "single-track style transfer (DeepAFx-ST-like): EQ -> compressor settings from an input and a reference",
    },
    "style_mix": {
        "file": "style_mix.pt", "kind": "style", "task": "songs",
        "description": "multitrack style transfer (Diff-MST-like): every track's console settings from stems and a reference mix",
    },
    "fx_encoder": {
        "file": "fx_encoder.pt", "kind": "encoder", "task": "stems",
        "description": "contrastive effects encoder (FXencoder-like): audio -> unit vector of its processing (EQ, compression, pan, reverb)",
    },
}


def _folder(folder: Optional[str]) -> str:
    return CHECKPOINT_DIR if folder is None else os.fspath(folder)


def read_registry(folder: Optional[str] = None) -> dict:
    """The recorded file checksums: ``{name: {"file", "sha256", "bytes"}}`` from ``registry.json`` ({} if absent)."""
    path = os.path.join(_folder(folder), REGISTRY_FILE)
    if not os.path.isfile(path):
        return {}
    data = read_json(path, "regenerate it with automix_lite.pretrained.write_registry()")
    if not isinstance(data, dict) or data.get("format") != REGISTRY_FORMAT:
        raise ValueError(f"{path} is not a checkpoint registry (format {REGISTRY_FORMAT!r} expected); regenerate it "
                         "with automix_lite.pretrained.write_registry().")
    return dict(data.get("checkpoints", {}))


def _merged(folder: Optional[str] = None) -> dict:
    recorded = read_registry(folder)
    out = copy.deepcopy(_ENTRIES)
    for name, entry in out.items():
        entry["sha256"] = recorded.get(name, {}).get("sha256")
    return out


REGISTRY = _merged()
"""``{name: {"file", "sha256", "kind", "task", "description"}}``; ``sha256`` is the file's, from ``registry.json``
(``None`` until :func:`write_registry` has recorded it). :func:`load` re-reads the JSON on every call."""


def write_registry(folder: Optional[str] = None) -> dict:
    """Hash the registry's ``.pt`` files present in ``folder`` and write ``registry.json``; returns its entries.

    Run it after adding or retraining a bundled checkpoint. Names whose file is absent are left out.
    """
    folder = _folder(folder)
    entries = {}
    for name, entry in _ENTRIES.items():
        path = os.path.join(folder, entry["file"])
        if os.path.isfile(path):
            entries[name] = {"file": entry["file"], "sha256": file_sha256(path), "bytes": os.path.getsize(path)}
    os.makedirs(folder, exist_ok=True)
    with atomic_outputs([os.path.join(folder, REGISTRY_FILE)], overwrite=True) as (tmp,):
        with open(tmp, "w") as f:
            json.dump({"format": REGISTRY_FORMAT, "checkpoints": entries}, f, indent=1, sort_keys=True)
            f.write("\n")
    if folder == CHECKPOINT_DIR:
        REGISTRY.clear()
        REGISTRY.update(_merged())
    return entries


KINDS = ("mixer", "style", "encoder")
"""What a bundled model is: a ``"mixer"`` (stems in, a mix out: the DMCs and the Mix-Wave-U-Net, the mixer interface
of :mod:`automix_lite.mixer`), a ``"style"`` model (it also needs a reference: ``style_track``, ``style_mix``) or an
``"encoder"`` (audio in, an embedding out: ``fx_encoder``, :meth:`automix_lite.models.fx_encoder.FxEncoder.embed`)."""


def available(folder: Optional[str] = None, kind: Optional[str] = None, task: Optional[str] = None) -> list:
    """Registry names whose checkpoint file is installed in ``folder`` (default :data:`CHECKPOINT_DIR`); ``kind``
    (one of :data:`KINDS`) and ``task`` (``"songs"``, ``"drums"``, ``"track"``, ``"stems"``) keep only those entries."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (or None for every model); got {kind!r}.")
    folder = _folder(folder)
    return [name for name, e in _ENTRIES.items() if os.path.isfile(os.path.join(folder, e["file"]))
            and kind in (None, e["kind"]) and task in (None, e["task"])]


def _is_path(name_or_path: str) -> bool:
    s = os.fspath(name_or_path)
    return s.endswith(".pt") or os.sep in s or (os.altsep is not None and os.altsep in s) or os.path.isfile(s)


def _unknown(name: str, folder: Optional[str]) -> ValueError:
    have = available(folder)
    return ValueError(f"unknown model {name!r}; installed: {', '.join(have) if have else 'none'} "
                      f"(registry names: {', '.join(_ENTRIES)}), or give the path of a .pt file from `automix train`.")


def checkpoint_path(name: str, folder: Optional[str] = None) -> str:
    """The file of registry name ``name`` after checking that it exists and that its sha256 matches the registry."""
    if name not in _ENTRIES:
        raise _unknown(name, folder)
    folder = _folder(folder)
    path = os.path.join(folder, _ENTRIES[name]["file"])
    if not os.path.isfile(path):
        have = available(folder)
        raise FileNotFoundError(f"the checkpoint of {name!r} is not installed (no {path}); installed: "
                                f"{', '.join(have) if have else 'none'}.")
    expected = read_registry(folder).get(name, {}).get("sha256")
    if not expected:
        raise ValueError(f"{REGISTRY_FILE} in {folder} records no checksum for {name!r}; after adding the file run "
                         "automix_lite.pretrained.write_registry().")
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(f"checksum mismatch for {name!r}: {path} has sha256 {actual[:16]}..., the registry expects "
                         f"{expected[:16]}...; the file is damaged or was replaced (restore it, or run "
                         "write_registry() if you replaced it on purpose).")
    return path


def model_file(name_or_path: str, folder: Optional[str] = None) -> Optional[str]:
    """The file ``name_or_path`` refers to (a registry name's checkpoint or the path itself), without checks;
    ``None`` for an unknown name."""
    s = os.fspath(name_or_path)
    if s in _ENTRIES:
        return os.path.join(_folder(folder), _ENTRIES[s]["file"])
    return s if _is_path(s) else None


def load_checkpoint(name_or_path: str, device: str = "cpu", folder: Optional[str] = None) -> dict:
    """Like :func:`load` but returns the whole checkpoint dict of :func:`automix_lite.train.load_checkpoint`
    (``model``, ``config``, ``history``, ``metrics``, ``code_version``, ``sha256``)."""
    from .train import load_checkpoint as _load

    s = os.fspath(name_or_path)
    path = s if (s not in _ENTRIES and _is_path(s)) else checkpoint_path(s, folder)
    return _load(path, device=device)


def load(name_or_path: str, device: str = "cpu", folder: Optional[str] = None):
    """A bundled model by registry name (file sha256 verified) or a model from a ``.pt`` path, in eval mode."""
    return load_checkpoint(name_or_path, device=device, folder=folder)["model"]


def card(name_or_path: str, folder: Optional[str] = None) -> Optional[str]:
    """The model card (markdown) stored next to the checkpoint as ``<file stem>.md``, or ``None`` if there is none."""
    s = os.fspath(name_or_path)
    if s in _ENTRIES:
        path = os.path.join(_folder(folder), _ENTRIES[s]["file"])
    elif _is_path(s):
        path = s
    else:
        raise _unknown(s, folder)
    md = os.path.splitext(path)[0] + ".md"
    if not os.path.isfile(md):
        return None
    with open(md, encoding="utf-8") as f:
        return f.read()


def describe(folder: Optional[str] = None) -> str:
    """A text list of the registry: name, task, installed or not, description."""
    have = set(available(folder))
    width = max(len(n) for n in _ENTRIES)
    lines = []
    for name, e in _ENTRIES.items():
        state = "installed" if name in have else "not installed"
        lines.append(f"{name:<{width}}  {e['task']:<5}  {state:<13}  {e['description']}")
    return "\n".join(lines)
