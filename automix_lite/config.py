"""Run modes, device choice and seeding.

One environment variable, ``AUTOMIX_MODE``, sizes every notebook and training run:

- ``fast``: CI and ``make test``; every notebook in under a minute on 2 CPU cores;
- ``standard`` (default): ``make book`` on a laptop or Colab CPU;
- ``full``: GPU runs that produce bundled checkpoints and reported results.

Notebooks never hard-code sizes; they ask, e.g. ``config.steps(fast=20, standard=400, full=20000)``.
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

MODES = ("fast", "standard", "full")
T = TypeVar("T")


def mode() -> str:
    """The current run mode, read from ``AUTOMIX_MODE`` (default ``"standard"``)."""
    value = os.environ.get("AUTOMIX_MODE", "standard").strip().lower() or "standard"
    if value not in MODES:
        raise ValueError(
            f"AUTOMIX_MODE={value!r} is not a run mode; use one of {', '.join(MODES)} "
            "(e.g. `export AUTOMIX_MODE=fast`)."
        )
    return value


def pick(*, fast: T, standard: T, full: T | None = None) -> T:
    """Choose a value by run mode; ``full`` falls back to ``standard`` when not given."""
    m = mode()
    if m == "fast":
        return fast
    if m == "full" and full is not None:
        return full
    return standard


def steps(fast: int = 20, standard: int = 400, full: int = 20000) -> int:
    """Number of optimisation steps (or iterations) for the current run mode."""
    return pick(fast=fast, standard=standard, full=full)


def seconds(fast: float = 2.0, standard: float = 6.0, full: float | None = None) -> float:
    """Length of example audio, in seconds, for the current run mode."""
    return pick(fast=fast, standard=standard, full=full)


def device(prefer: str | None = None):
    """The torch device to use: CUDA when available (or ``prefer`` when given), else CPU."""
    import torch

    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository, for an editable install


def find_configs(required: bool = False) -> str | None:
    """The repository's ``configs/`` folder of training configurations (chapters 3.3 and 5.2 read them): beside the
    notebooks (``../configs``), under the working directory, in a Colab clone (``automix-lite/configs``), or in the
    checkout of an editable install. ``None`` when none is found (an installed wheel ships no configs), or, with
    ``required``, a ``FileNotFoundError`` that says where to run from."""
    candidates = ["../configs", "configs", "automix-lite/configs"]
    if os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")):
        candidates.append(os.path.join(_CHECKOUT, "configs"))
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "dmc_basic_songs.json")):
            return os.path.abspath(folder)
    if required:
        raise FileNotFoundError("the repository's configs/ folder was not found: run from a clone of automix-lite "
                                "(its notebooks/ folder or its root), or in Colab after the chapter's first cell")
    return None


def seed_everything(seed: int = 0):
    """Seed Python, NumPy and torch; returns a ``torch.Generator`` seeded with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
