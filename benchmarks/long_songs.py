"""Peak memory and wall time of ``inference.mix_stems`` against song length and track count (issue 11).

    python benchmarks/long_songs.py [--minutes 1,2,4,6] [--tracks 4,8] [--models all] [--out benchmarks/LONG_SONGS.md]
    python benchmarks/long_songs.py --before /tmp/automix_before --before-label "commit abc1234"  # and an older package
    python benchmarks/long_songs.py --quick --out /tmp/long.md        # smoke check: 0.25 and 0.5 minutes

Every case runs in a fresh Python process (so one case's memory cannot leak into the next): it loads a
bundled model (``automix_lite.pretrained``), builds synthetic stems by tiling a bundled song
(``automix_lite.data.bundled``; 8-track songs: ``song_funk_03`` for the song models, ``drums_rock_01`` for
the drum models; 4 tracks = the first 4 of them) to the length asked for, and times one ``mix_stems`` call.
Memory is the process's resident set from ``/proc/self/status``: ``VmRSS`` just before mixing (Python,
torch, the model and the input stems), and ``VmHWM`` over the call, after resetting it with
``/proc/self/clear_refs`` (so the load phase does not count); the parent also reads the child's whole-life
peak (``ru_maxrss`` from ``os.wait4``). ``--before PATH`` runs the same cases with ``PYTHONPATH=PATH``,
e.g. ``git archive <commit> automix_lite | tar -x -C PATH``, for a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("dmc_basic_songs", "dmc_full_songs", "dmc_basic_drums", "wave_u_net_drums")
SONG = {"songs": "song_funk_03", "drums": "drums_rock_01"}  # 8-track songs of each task
MiB = 2 ** 20


def _status(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def stems(task: str, n_tracks: int, seconds: float, sample_rate: int = 44100):
    """``(n_tracks, T)`` float32: a bundled song of ``task`` tiled to ``seconds`` (the song loops)."""
    import torch

    from automix_lite.data import bundled

    src = bundled.load_song(SONG[task], sample_rate)["tracks"][:n_tracks]
    if src.shape[0] < n_tracks:
        raise ValueError(f"{SONG[task]} has only {src.shape[0]} tracks")
    t, t0 = int(round(seconds * sample_rate)), src.shape[-1]
    x = torch.empty(n_tracks, t)
    for s in range(0, t, t0):
        x[:, s:s + t0] = src[:, :min(t0, t - s)]
    return x


def run_case(model_name: str, minutes: float, n_tracks: int, threads: int) -> dict:
    """One measurement in this process (called in a child by :func:`spawn`)."""
    import gc

    import numba
    import torch

    import automix_lite
    from automix_lite import inference, pretrained

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    model = pretrained.load(model_name)
    task = "drums" if model_name.endswith("_drums") else "songs"
    x = stems(task, n_tracks, 60.0 * minutes, getattr(model, "sample_rate", 44100))
    # compile the numba kernels and fill caches on a short song first, so that the timed call is the song's
    inference.mix_stems(model, x[:, :44100].clone())
    gc.collect()
    peak_setup = _status("VmHWM")
    rss0, anon0 = _status("VmRSS"), _status("RssAnon")
    sampler = _AnonSampler()
    reset = _reset_peak()
    sampler.start()
    t0 = time.perf_counter()
    mix, _ = inference.mix_stems(model, x)
    wall = time.perf_counter() - t0
    peak = _status("VmHWM")
    sampler.halt.set()
    sampler.join()
    return {"model": model_name, "minutes": minutes, "tracks": n_tracks, "wall_s": wall,
            "audio_s": x.shape[-1] / getattr(model, "sample_rate", 44100),
            "rss_before_mib": rss0 / MiB, "peak_mix_mib": peak / MiB, "peak_setup_mib": peak_setup / MiB,
            "anon_before_mib": anon0 / MiB, "peak_anon_mib": max(sampler.peak, _status("RssAnon")) / MiB,
            "peak_reset": reset, "input_mib": x.numel() * 4 / MiB, "output_mib": mix.numel() * 4 / MiB,
            "package": os.path.dirname(automix_lite.__file__)}


class _AnonSampler(threading.Thread):
    """Samples ``RssAnon`` (the process's own memory, without the pages of shared libraries such as torch's
    CUDA libraries) every ``every`` seconds; the kernel keeps no peak of it, so ``peak`` is a lower bound."""

    def __init__(self, every: float = 0.002):
        super().__init__(daemon=True)
        self.every, self.peak, self.halt = every, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, _status("RssAnon"))
            self.halt.wait(self.every)


def spawn(model_name: str, minutes: float, n_tracks: int, threads: int, pythonpath=None) -> dict:
    """:func:`run_case` in a fresh interpreter, waited for with ``os.wait4`` to read its whole-life peak (``ru_maxrss``)."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads))
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("AUTOMIX_DATA", str(ROOT / "data"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", model_name, str(minutes), str(n_tracks),
           "--threads", str(threads)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        proc = subprocess.Popen(cmd, stdout=fout, stderr=ferr, env=env, cwd=str(ROOT), text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    row = {"model": model_name, "minutes": minutes, "tracks": n_tracks, "process_s": time.perf_counter() - t0,
           "maxrss_mib": usage.ru_maxrss * 1024 / MiB}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        row["error"] = (err.strip().splitlines() or [f"exit status {code}, no output"])[-1][:300]
        return row
    row.update(json.loads(lines[-1]))
    return row


def _machine(threads: int) -> dict:
    import datetime
    import platform

    sys.path.insert(0, str(HERE))
    from harness import cpu_model, memory, version  # noqa: E402

    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "CPU": cpu_model(),
            "logical cores": os.cpu_count(), "memory": memory(), "torch / numba threads per case": threads,
            "python": platform.python_version(), "torch": version("torch"), "numba": version("numba"),
            "load average (1, 5, 15 min) at start": ", ".join(f"{v:.2f}" for v in os.getloadavg())}


def _fmt_row(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | {r['tracks']} | {r['minutes']:g} | failed: {r['error']} |" + " |" * 8
    rtf = r["audio_s"] / r["wall_s"]
    extra = r["peak_mix_mib"] - r["rss_before_mib"]
    anon = (f"{r['peak_anon_mib']:,.0f} | {r['anon_before_mib']:,.0f}" if "peak_anon_mib" in r else "n/a | n/a")
    return (f"| {r['model']} | {r['tracks']} | {r['minutes']:g} | {r['wall_s']:.1f} | {rtf:.1f}x | "
            f"{max(r['peak_mix_mib'], r['peak_setup_mib']):,.0f} | {r['rss_before_mib']:,.0f} | {extra:,.0f} | "
            f"{anon} | {r['input_mib'] + r['output_mib']:,.0f} |")


HEADER = ("| model | tracks | minutes | mix time (s) | real-time factor | peak RSS (MiB) | RSS before mixing (MiB) | "
          "mixing adds (MiB) | peak private memory (MiB) | private before mixing (MiB) | input + output tensors (MiB) |"
          "\n|---|---|---|---|---|---|---|---|---|---|---|")


def _growth(rows: list) -> list:
    """Per model and track count: least-squares slope of time and of the mixing working set per minute."""
    out = []
    keys = sorted({(r["model"], r["tracks"]) for r in rows if "error" not in r}, key=lambda k: (MODELS.index(k[0])
                                                                                                 if k[0] in MODELS else 99, k[1]))
    for model, n in keys:
        rs = sorted((r for r in rows if "error" not in r and r["model"] == model and r["tracks"] == n),
                    key=lambda r: r["minutes"])
        if len(rs) < 2:
            continue
        xs = [r["minutes"] for r in rs]

        def slope(ys):
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

        work = [r["peak_mix_mib"] - r["rss_before_mib"] - r["output_mib"] for r in rs]
        out.append(f"| {model} | {n} | {slope([r['wall_s'] for r in rs]):.1f} | "
                   f"{slope([r['peak_mix_mib'] for r in rs]):,.0f} | {slope(work):,.0f} | "
                   f"{min(work):,.0f} - {max(work):,.0f} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", nargs=3, metavar=("MODEL", "MINUTES", "TRACKS"), help=argparse.SUPPRESS)
    ap.add_argument("--minutes", default="1,2,4,6")
    ap.add_argument("--tracks", default="4,8")
    ap.add_argument("--models", default="all", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before", default=None, help="a folder holding an older automix_lite package to compare with")
    ap.add_argument("--before-cases", default="6x8", help="MINUTESxTRACKS cases run with --before (default 6x8)")
    ap.add_argument("--before-label", default=None, help="what --before holds, for the table (e.g. a commit)")
    ap.add_argument("--quick", action="store_true", help="0.25 and 0.5 minutes, 4 tracks, no --before")
    ap.add_argument("--out", default=str(HERE / "LONG_SONGS.md"))
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], float(args.case[1]), int(args.case[2]), args.threads)), flush=True)
        return 0
    models = MODELS if args.models == "all" else tuple(args.models.split(","))
    minutes = [0.25, 0.5] if args.quick else [float(m) for m in args.minutes.split(",")]
    tracks = [4] if args.quick else [int(n) for n in args.tracks.split(",")]
    machine = _machine(args.threads)
    rows, before = [], []
    for model in models:
        for n in tracks:
            for m in minutes:
                r = spawn(model, m, n, args.threads)
                print(_fmt_row(r), flush=True)
                rows.append(r)
    if args.before and not args.quick:
        for model in models:
            for case in args.before_cases.split(","):
                m, n = case.split("x")
                r = spawn(model, float(m), int(n), args.threads, pythonpath=args.before)
                print("before", _fmt_row(r), flush=True)
                before.append(r)
    machine["load average (1, 5, 15 min) at end"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    write(args.out, machine, rows, before, args.before_label or args.before)
    print(f"wrote {args.out}")
    return 0


def write(path, machine: dict, rows: list, before: list, before_label=None) -> None:
    lines = ["# Long songs: peak memory and time of `automix mix` against song length (issue 11)", "",
             "Written by `python benchmarks/long_songs.py` (see its docstring). Each case is a fresh process that mixes",
             "synthetic stems (a bundled 8-track song tiled to the length; 4 tracks = its first 4) with one bundled",
             "model through `automix_lite.inference.mix_stems`, the function behind `automix mix`, with its default",
             "settings, after a 1 s warm-up mix (numba kernels, caches). Columns:", "",
             "- **peak RSS**: the process's resident-set peak (`VmHWM`, the larger of the load phase and the mix), what",
             "  `/usr/bin/time -v` or a task manager shows. It counts the pages of shared libraries that were touched:",
             "  torch's CUDA build alone is about 670 MiB resident after `import torch`, even on a machine without a GPU;",
             "- **RSS before mixing**: Python, torch, numba, the model and the input stems; **mixing adds** = peak RSS",
             "  during the call minus that (it includes the output mix);",
             "- **peak private memory**: the largest `RssAnon` (memory of the process itself, no library pages) sampled",
             "  every 2 ms during the call (a lower bound of the true peak), and the same before the call;",
             "- **input + output tensors**: the stems (float32) and the stereo mix, which any caller holds.", "",
             "Times are one run each on a shared machine with two cores, so they are noisy (other jobs ran at the same",
             "time; compare the load averages below).", "",
             "One minute of 8 mono tracks at 44.1 kHz is 81 MiB of float32 stems and 20 MiB of stereo mix, and",
             "`mix_stems` holds both (its input and its result), so the peak still grows by about 100 MiB per minute of",
             "an 8-track song; what mixing needs besides them (the working set below) does not grow.", "",
             "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    lines += ["", "## Results", "", HEADER] + [_fmt_row(r) for r in rows]
    growth = _growth(rows)
    if growth:
        lines += ["", "## Growth with length", "",
                  "Least-squares slopes over the song lengths measured. The working set is what mixing adds minus the",
                  "output mix (the one tensor that must grow with the song).", "",
                  "| model | tracks | time per minute of song (s) | peak RSS per minute (MiB) | working set per minute (MiB) "
                  "| working set, range (MiB) |", "|---|---|---|---|---|---|"] + growth
    if before:
        lines += ["", "## Before and after", "",
                  f"The same cases with the package before the block-wise rendering ({before_label or before[0].get('package', '?')}).",
                  "", HEADER] + [_fmt_row(r).replace("| ", "| before: ", 1) for r in before]
        for b in before:
            a = next((r for r in rows if r["model"] == b["model"] and r["minutes"] == b["minutes"]
                      and r["tracks"] == b["tracks"] and "error" not in r), None)
            if a is not None:
                lines.append(_fmt_row(a).replace("| ", "| after: ", 1))
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
