"""Chapter 5.4: reverse engineering the bundled TEST mixes (songs and drums) against the engineer's known settings.

    python benchmarks/reverse.py [--seconds 3] [--steps 150] [--tolerance 0.05] [--songs N] [--sparsity 0.667]
                                 [--sparse-songs N] [--resume]

For every TEST song of both tasks: :func:`automix_lite.reverse.evaluate_song` (fit the full console to the first
``--seconds`` of the natural engineer's mix, prune it within ``--tolerance``), then the same against a *sparse*
engineer (``--sparsity`` of the processors set neutral, so the true graph is sparse), then writes
``benchmarks/REVERSE_RESULTS.md`` and ``benchmarks/reverse_results.json`` (read by ``reverse.read_results``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _write(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def main(argv=None) -> int:
    import torch

    from automix_lite import data, reverse
    from harness import cpu_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--songs", type=int, default=None)
    ap.add_argument("--sparsity", type=float, default=2 / 3, help="share of processors neutral in the sparse engineer")
    ap.add_argument("--sparse-songs", type=int, default=None, help="songs per task of the sparse engineer (default all)")
    ap.add_argument("--resume", action="store_true", help="keep the songs a partial reverse_results.json already has")
    ap.add_argument("--note", default="", help="a sentence about the run (e.g. what else shared the machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    path = HERE / "reverse_results.json"
    if args.resume and path.is_file():
        old = json.loads(path.read_text())
        rows = [r for r in old["rows"] if r["seconds"] == args.seconds] if old.get("partial") else []
    done = {(r["song"], r.get("sparsity")) for r in rows}
    for sparsity in (None, args.sparsity):
        for task in ("songs", "drums"):
            for k, entry in enumerate(data.songs(task, "test")[:args.songs if sparsity is None else args.sparse_songs]):
                if (entry["id"], sparsity) in done:
                    continue
                r = reverse.evaluate_song(entry["id"], seconds=args.seconds, steps=args.steps, tolerance=args.tolerance,
                                          sparsity=sparsity, seed=k)
                r["task"] = task
                rows.append(r)
                _write(HERE / "reverse_results.json", {"rows": rows, "partial": True})  # a crash keeps what ran
                print(f"{entry['id']} (sparsity {sparsity}): loss {r['start_loss']:.2f} -> {r['fit_loss']:.3f} -> pruned "
                      f"{r['pruned_loss']:.3f}, removed {r['removed']:.0%} ({r['removed_neutral']:.0%} of them neutral), "
                      f"{r['fit_s'] + r['prune_s']:.0f} s", flush=True)
    out = {"rows": rows, "seconds": args.seconds, "steps": args.steps, "tolerance": args.tolerance, "sparsity": args.sparsity,
           "machine": cpu_model(), "threads": 1,
           "note": args.note, "wall_s": sum(r["fit_s"] + r["prune_s"] for r in rows)}  # the searches' own time (a resumed run keeps it)
    _write(HERE / "reverse_results.json", out)
    md = ["# Reverse engineering the bundled TEST mixes (chapter 5.4)", "",
          f"Produced by `python benchmarks/reverse.py` on {cpu_model()}, one thread, {out['wall_s']:.0f} s of search in all: the "
          f"full console fitted to the first {args.seconds:g} s of the natural engineer's mix of every TEST song "
          f"({args.steps} Adam steps from the least-squares start), then pruned within {args.tolerance:.0%} of the "
          f"fitted loss; then the same against a sparse engineer ({args.sparsity:.0%} of the processors set neutral, drawn per "
          "song). Errors against the known parameters (`reverse.processor_error`)." + (f" {args.note}" if args.note else ""), "",
          reverse.results_table(out)]
    (HERE / "REVERSE_RESULTS.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
