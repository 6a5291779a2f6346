"""Timing, machine description and Markdown output for the speed benchmarks (see README.md)."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Optional

import torch

PACKAGES = ("automix-lite", "torch", "numpy", "scipy", "numba", "dasp-pytorch", "torchcomp", "torchlpc", "pedalboard",
            "auraloss")


@dataclass
class Settings:
    """Sizes and repeat counts of one run (``--quick`` shrinks them for a smoke check)."""

    quick: bool
    batch: int = 8
    seconds: float = 10.0
    sample_rate: int = 44100
    warmup: int = 2
    repeats: int = 7
    budget_s: float = 40.0  # stop repeating a slow case after this much timed work (at least 3 repeats)

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(quick=True, seconds=1.0, warmup=1, repeats=3, budget_s=5.0)
        return cls(quick=False)

    @property
    def samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))


@dataclass
class Timing:
    median_s: float
    runs: list


def measure(fn: Callable[[], object], settings: Settings, repeats: Optional[int] = None) -> Timing:
    """Run ``fn`` ``settings.warmup`` times untimed (compilation, caches), then time it.

    Repeats ``repeats`` (default ``settings.repeats``) times, or fewer (never under 3) once the timed
    work passes ``settings.budget_s``; returns the median and every run.
    """
    repeats = settings.repeats if repeats is None else repeats
    for _ in range(settings.warmup):
        fn()
    runs = []
    gc.collect()
    while len(runs) < repeats:
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        if len(runs) >= 3 and sum(runs) > settings.budget_s:
            break
    return Timing(statistics.median(runs), runs)


@dataclass
class Row:
    """One line of a result table."""

    implementation: str
    passes: str  # "fwd+bwd" or "fwd"
    seconds: Optional[float]  # wall time for the whole batch (extrapolated to full length where noted)
    rtf: Optional[float]  # real-time factor
    target: Optional[float] = None  # required real-time factor (ours only)
    note: str = ""
    runs: list = field(default_factory=list)

    def verdict(self) -> str:
        if self.target is None or self.rtf is None:
            return "-"
        if self.rtf >= self.target:
            return f"yes ({self.rtf / self.target:.2f}x the target)"
        return f"**no**: {self.rtf / self.target:.2f}x the target ({self.target / self.rtf:.2f}x too slow)"


def fmt_rtf(rtf: Optional[float]) -> str:
    if rtf is None:
        return "n/a"
    return f"{rtf:,.0f}x" if rtf >= 10 else f"{rtf:.2f}x"


def fmt_s(s: Optional[float]) -> str:
    if s is None:
        return "n/a"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(rows: list) -> str:
    lines = [
        "| implementation | pass | time (median) | real-time factor | fastest run (its factor) | target | met? | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = f">= {r.target:g}x" if r.target else "-"
        best = f"{fmt_s(min(r.runs))} ({fmt_rtf(r.rtf * r.seconds / min(r.runs))})" if r.runs else "-"
        lines.append(
            f"| {r.implementation} | {r.passes} | {fmt_s(r.seconds)} | {fmt_rtf(r.rtf)} | {best} | {target} | "
            f"{r.verdict()} | {r.note} |"
        )
    return "\n".join(lines)


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        return f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        return "unknown"


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, threads, load, library versions, date."""
    import numba

    info = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "CPU": cpu_model(),
        "logical cores": os.cpu_count(),
        "memory": memory(),
        "torch threads": torch.get_num_threads(),
        "numba threads": numba.get_num_threads(),
        "load average (1, 5, 15 min) at start": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "python": platform.python_version(),
    }
    for p in PACKAGES:
        info[p] = version(p)
    try:
        import torchlpc

        info["torchlpc C++ extension loaded"] = bool(torchlpc.EXTENSION_LOADED)
    except ImportError:
        pass
    return info
