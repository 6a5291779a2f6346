"""Run time of every chapter notebook in one run mode, as the instructor guide quotes it.

    python benchmarks/chapter_times.py --mode standard          # every notebook of the toc
    python benchmarks/chapter_times.py --mode fast 06 13        # only those (file name prefixes)

Each notebook is executed from a clean kernel the way the book executes it (nbclient, the book's kernel patch,
``AUTOMIX_MODE`` set, one thread), and its wall time, its slowest cell and the time of its exercise solutions
are written to ``benchmarks/CHAPTER_TIMES.md`` (a table that ``book/instructors.md`` includes) and
``benchmarks/chapter_times.json``. A run for a subset updates those rows and keeps the others; a notebook
that fails is recorded as failed, with its error. The machine and the date are in the header.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
JSON = ROOT / "benchmarks" / "chapter_times.json"
MARKDOWN = ROOT / "benchmarks" / "CHAPTER_TIMES.md"
TARGET_MIN = 30  # whole book, standard mode, 2 CPU cores (CURRICULUM.md, run modes)


def chapters() -> list:
    """``[(number, title, notebook path)]`` of the toc's notebook chapters, "3.3" style numbers."""
    import re

    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    out = []
    for part in toc["parts"]:
        m = re.match(r"Part (\d)", part.get("caption", ""))
        for k, ch in enumerate(part["chapters"], start=1):
            path = ROOT / f"{ch['file']}.ipynb"
            if path.exists():
                nb = json.loads(path.read_text())
                title = next(line[2:] for c in nb["cells"] for line in "".join(c["source"]).splitlines()
                             if line.startswith("# "))
                out.append((f"{m.group(1)}.{k}" if m else "A", title, path))
    return out


def run_one(path: Path, mode: str, timeout: int) -> dict:
    import automix_book
    import nbformat
    from nbclient import NotebookClient

    automix_book.patch_kernel_channels()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # recorded, not raised: one failing chapter must not stop the table
        error = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
    wall = time.perf_counter() - start
    cells, solutions = [], 0.0
    for c in nb.cells:
        t = c.get("metadata", {}).get("execution", {})
        if c.cell_type == "code" and "shell.execute_reply" in t and "iopub.execute_input" in t:
            d = (datetime.datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
                 - datetime.datetime.fromisoformat(t["iopub.execute_input"].replace("Z", "+00:00"))).total_seconds()
            cells.append(d)
            if "-sol" in c.get("id", ""):
                solutions += d
    return {"mode": mode, "seconds": round(wall, 1), "slowest_cell": round(max(cells, default=0.0), 1),
            "solutions": round(solutions, 1), "error": error}


def write(results: dict, machine: str, note: str = "", out: Path = MARKDOWN) -> None:
    rows = ["| chapter | notebook | mode | run time | slowest cell | of which exercise solutions |",
            "|---|---|---|---|---|---|"]
    toc = chapters()
    number = {p.stem: n for n, _, p in toc}
    listed = [s for s in number if results.get(s)]
    for n, title, path in toc:
        r = results.get(path.stem)
        if not r:
            continue
        t = "failed: " + r["error"] if r["error"] else f"{r['seconds'] / 60:.1f} min"
        rows.append(f"| {n} {title.split(' ', 1)[1] if title[:1].isdigit() else title} | `{path.name}` | "
                    f"{r['mode']} | {t} | {r['slowest_cell']:.0f} s | {r['solutions']:.0f} s |")
    total = sum(results[s]["seconds"] for s in listed)  # rows of notebooks that left the toc are not counted
    dates = sorted({results[s].get("date", "?") for s in listed}) or ["?"]
    complete = len(listed) == len(number) and not any(results[s]["error"] for s in listed)
    modes = {results[s]["mode"] for s in listed}
    if complete and modes == {"standard"}:
        verdict = (f" The target for the whole book in standard mode is {TARGET_MIN} min (CURRICULUM.md): "
                   + (f"met, {TARGET_MIN - total / 60:.1f} min to spare." if total <= 60 * TARGET_MIN else
                      f"missed by {total / 60 - TARGET_MIN:.1f} min; the slowest chapters are "
                      + ", ".join(number[s] for s in sorted(listed, key=lambda s: -results[s]["seconds"])[:3]) + "."))
    elif len(listed) < len(number):
        verdict = " A chapter not listed has not been measured yet."
    else:
        verdict = (" Not every chapter was measured in standard mode (see the mode column), so this total is not the"
                   " standard-mode time the target is about.")
    text = (f"Measured by `python benchmarks/chapter_times.py` on {machine}, one thread per kernel, "
            f"{dates[0] if len(dates) == 1 else dates[0] + ' to ' + dates[-1]}: each chapter listed executed from a fresh kernel, one after "
            f"the other ({total / 60:.1f} min in all).{verdict}" + (f" {note}" if note else "") + "\n\n"
            + "\n".join(rows) + "\n")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook file-name prefixes (default: every chapter)")
    parser.add_argument("--mode", choices=("fast", "standard", "full"), default="standard")
    parser.add_argument("--timeout", type=int, default=900, help="per cell, seconds")
    parser.add_argument("--note", default="", help="a sentence for the header (e.g. what else ran on the machine)")
    args = parser.parse_args(argv)
    os.environ["AUTOMIX_MODE"] = args.mode
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from harness import cpu_model

    results = json.loads(JSON.read_text()) if JSON.exists() else {}
    for number, title, path in chapters():
        if args.only and not any(path.stem.startswith(p) for p in args.only):
            continue
        print(f"{number} {path.name} ({args.mode}) ...", flush=True)
        results[path.stem] = dict(run_one(path, args.mode, args.timeout), date=datetime.date.today().isoformat())
        print(f"   {results[path.stem]}", flush=True)
        with tempfile.NamedTemporaryFile("w", dir=JSON.parent, delete=False, suffix=".tmp") as f:
            json.dump(results, f, indent=1)
        os.replace(f.name, JSON)
        write(results, cpu_model(), args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
