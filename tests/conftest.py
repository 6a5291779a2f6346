"""Helpers shared by the tests: the sample rate, seeded noise, and folders of synthetic stems.

Test modules import the plain names (``from conftest import SR, noise, write_stems``; pytest puts this
folder on ``sys.path``) or take the fixture ``stems_dir`` as an argument.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

SR = 44100
"""The sample rate of the bundled set and of most tests (Hz)."""

ROOT = Path(__file__).resolve().parents[1]
BOOK_OUT = ROOT / "_build" / "test"
"""Where the ``book`` fixture builds the book (its HTML: ``BOOK_OUT / "_build" / "html"``)."""
BOOK_CONFIG = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
NOTEBOOK_BUDGET_S = 60  # per notebook in fast mode on 2 CPU cores (CURRICULUM.md)
CELL_TIMEOUT_S = NOTEBOOK_BUDGET_S  # no fast-mode cell may take a whole notebook's budget: a stall fails the build


def noise(*shape, seed: int = 0, scale: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    """Gaussian noise of ``shape`` with standard deviation ``scale``, the same for the same ``seed``."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def write_wav(path, x, sr: int = SR, subtype: str = "PCM_24") -> str:
    """Write samples ``(samples,)`` or ``(channels, samples)`` to ``path`` with soundfile; returns the path."""
    a = np.asarray(x, dtype=np.float64)
    sf.write(str(path), a.T if a.ndim == 2 else a, sr, subtype=subtype)
    return str(path)


def write_stems(folder, n: int = 3, seconds: float = 1.0, sr: int = SR) -> str:
    """``n`` short synthetic mono stems in ``folder`` (created): a decaying 110 Hz sine, a gated noise burst
    and an A major chord, in turn, named ``00_track.wav``, ``01_track.wav``, ...; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    sources = [0.5 * np.sin(2 * np.pi * 110 * t) * np.exp(-2 * t),
               0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 4 * t) > 0),
               0.2 * sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659))]
    for k in range(n):
        write_wav(os.path.join(folder, f"{k:02d}_track.wav"), sources[k % 3] * (1 + 0.1 * k), sr)
    return str(folder)


@pytest.fixture
def stems_dir(tmp_path) -> str:
    """A folder of three one-second synthetic stems at :data:`SR` (see :func:`write_stems`)."""
    return write_stems(tmp_path / "stems")


def run_cli(capsys, *args):
    """``(exit status, stdout, stderr)`` of ``automix ARGS`` run in-process (``automix_lite.cli.main``)."""
    from automix_lite import cli

    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error(err: str) -> str:
    """``err`` after checking it is one ``automix: error:`` line and no traceback."""
    assert err.startswith("automix: error:") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="session")
def book():
    """Build the book once per test session in fast mode, forcing execution; returns the build's log text.

    Defined here, not in a test module: a session fixture imported into a second module is a second fixture,
    and built the whole book a second time (about nine minutes of CI)."""
    shutil.rmtree(BOOK_OUT, ignore_errors=True)
    env = dict(os.environ, AUTOMIX_MODE="fast")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", "book/_config.yml", "--toc", "book/_toc.yml",
           "--path-output", str(BOOK_OUT), "--keep-going", "--warningiserror"]
    # Force execution into this build; the cache of `make book` stays untouched.
    cfg = dict(BOOK_CONFIG)
    cfg["execute"] = dict(BOOK_CONFIG["execute"], execute_notebooks="force", timeout=CELL_TIMEOUT_S)
    cfg["sphinx"] = dict(BOOK_CONFIG["sphinx"], local_extensions={"automix_book": str(ROOT / "book" / "_ext")})
    BOOK_OUT.mkdir(parents=True, exist_ok=True)
    (BOOK_OUT / "_config.yml").write_text(yaml.safe_dump(cfg))
    cmd[cmd.index("book/_config.yml")] = str(BOOK_OUT / "_config.yml")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (BOOK_OUT / "build.log").write_text(log)
    print(f"book built in {time.perf_counter() - start:.0f} s")
    if proc.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}); last lines:\n{log[-6000:]}")
    return log
