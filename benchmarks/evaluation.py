"""Chapter 4.1's tables on every held-out song: every mixer scored with every metric, and the meta-evaluation.

    python benchmarks/evaluation.py [--seconds 8] [--meta-seconds 6] [--out benchmarks/EVALUATION_RESULTS.md]

The same functions as ``notebooks/15_objective_evaluation.ipynb`` in standard mode (``automix_lite.evaluation``:
``every_mixer``, ``feature_metrics``, ``evaluate``, ``frechet_by_mixer``, ``meta_evaluate``, ``meta_summary``),
on every TEST song and drum passage, written as markdown with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="excerpt of every song (chapter 2.2's protocol)")
    parser.add_argument("--meta-seconds", type=float, default=6.0, help="excerpt for the meta-evaluation")
    parser.add_argument("--out", default=str(HERE / "EVALUATION_RESULTS.md"))
    args = parser.parse_args(argv)

    from harness import machine

    from automix_lite import data, evaluation, features

    sr = data.SAMPLE_RATE
    info = machine()
    t0 = time.time()

    def embed(y):
        return features.embed_mixes([y[0].numpy()], sr)[0]

    rows = []
    for task in ("songs", "drums"):
        rows += evaluation.evaluate(evaluation.every_mixer(task), task, "test", args.seconds,
                                    extra=evaluation.feature_metrics(sr), embed=embed)
    summary = evaluation.summarize(rows)
    frechet = evaluation.frechet_by_mixer(rows, lambda a, b: features.frechet_distance(a, b, diagonal=True))
    t1 = time.time()
    meta = evaluation.meta_evaluate(evaluation.feature_metrics(sr, stereo=True), seconds=args.meta_seconds,
                                    embed=embed)
    meta_sum = evaluation.meta_summary(meta, frechet=lambda a, b: features.frechet_distance(a, b, diagonal=True),
                                       n_boot=500)
    t2 = time.time()

    columns = ["spectral MAPE", "panning MAPE", "dynamics MAPE", "loudness MAPE", "MR-STFT", "stereo", "gain_db", "pan"]
    n_meta = len({r["song"] for r in meta["rows"]})
    lines = ["# Objective evaluation on the held-out songs (chapter 4.1)", "",
             f"Written by `benchmarks/evaluation.py` in {t2 - t0:.0f} s; the tables of "
             "`notebooks/15_objective_evaluation.ipynb` in standard mode.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
             "## Every mixer against the natural engineer's mix", "",
             f"TEST split, first {args.seconds:g} s of each song; mean ± 95 % CI over songs (Student t). Feature MAPE "
             "per group (`automix_lite.features`, default definitions, percent), MR-STFT over both channels, stereo "
             "loss after loudness matching, gain (dB) and pan errors where the mixer has parameters; Fréchet distance "
             "between the sets of mixes on the offline log-mel embedding (`features.embed_mixes`, not VGGish; diagonal "
             f"covariances). Scoring took {t1 - t0:.0f} s.", ""]
    for task in ("songs", "drums"):
        n = summary[(task, "mono")]["stereo"][2]
        lines += [f"### {task} ({n} {'song' if n == 1 else 'songs'})", "",
                  evaluation.metrics_table(summary, task, columns, frechet), ""]
    lines += ["## Meta-evaluation", "",
              f"Controlled changes of the engineer's settings (`evaluation.PERTURBATIONS`) on {n_meta} held-out songs "
              f"and drum passages, first {args.meta_seconds:g} s: per metric and kind of change, Spearman's rho between "
              "the amount and the metric [95 % interval over songs; Fréchet: bootstrap over songs], and the response "
              "at the largest amount relative to the metric's largest response; *blind*: relative response below "
              f"{100 * evaluation.BLIND_RELATIVE:.0f} % or an interval containing 0. Took {t2 - t1:.0f} s.", "",
              evaluation.meta_table(meta_sum), ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
