"""Chapter 5.3's three-way experiment (FX normalization, Martinez-Ramirez et al. 2022) on the bundled set.

    python benchmarks/fxnorm.py [--seconds 8] [--songs N] [--retrain]

Trains the DMC with the one training loop on (a) dry stems, (b) the engineer's wet stems, (c) the FX-normalised
wet stems (``configs/fxnorm_dry.json``, ``fxnorm_wet.json``, ``fxnorm_norm.json``: the same budget), or loads
``runs/fxnorm_*/last.pt`` (the model after the whole budget) if present; scores each on the TEST songs with
dry, wet and FX-normalised wet stems as input
(:func:`automix_lite.fxnorm.evaluate_three_way`), measures how far normalised stems land from the role averages
and from the dry stems (:func:`automix_lite.fxnorm.distances`), and writes ``benchmarks/FXNORM_RESULTS.md`` and
``benchmarks/fxnorm_results.json`` (read by :func:`automix_lite.fxnorm.read_results`, the notebook's source).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

RUNS = {"dry": "fxnorm_dry", "wet": "fxnorm_wet", "fxnorm": "fxnorm_norm"}


def _model(name: str, run: str, retrain: bool) -> tuple:
    from automix_lite import train

    out = ROOT / "runs" / run
    wall_file = out / "wall.json"
    if retrain or not (out / "last.pt").is_file():
        t = time.time()
        train.train(json.loads((ROOT / "configs" / f"{run}.json").read_text()), out=str(out), progress=False,
                    overwrite=True)
        wall_file.write_text(json.dumps({"wall_s": time.time() - t}))
    wall = json.loads(wall_file.read_text())["wall_s"] if wall_file.is_file() else None
    ck = train.load_checkpoint(str(out / "last.pt"))  # the end of the budget (best.pt may be an earlier step)
    return ck["model"], ck["config"], ck["history"], wall


def main(argv=None) -> None:
    import torch

    from automix_lite import fxnorm
    from harness import cpu_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--songs", type=int, default=None)
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    models, runs = {}, {}
    for name, run in RUNS.items():
        model, cfg, hist, wall = _model(name, run, args.retrain)
        models[name] = model
        runs[name] = {"config": f"configs/{run}.json", "steps": hist.get("steps_done"), "wall_s": wall,
                      "best_val_loss": min(hist["val_loss"]) if hist.get("val_loss") else None}
    t = time.time()
    res = fxnorm.evaluate_three_way(models, seconds=args.seconds, songs=args.songs)
    eval_s = time.time() - t
    dist = fxnorm.distances(songs=args.songs)
    cfg = json.loads((ROOT / "configs" / "fxnorm_dry.json").read_text())
    claim_text, claim_data = claims(res["rows"])
    summary = [{"model": m, "input": i, "metrics": {k: list(v) for k, v in s.items()}}
               for (m, i), s in res["summary"].items()]
    out = {"summary": summary, "distances": dist, "runs": runs, "claims": claim_data, "evaluation_s": eval_s, "seconds": args.seconds,
           "machine": cpu_model(), "threads": 1,
           "config": {k: cfg[k] for k in ("model", "model_args", "task", "engineer", "segment_seconds", "batch_size",
                                          "steps", "lr", "param_weight", "gain_augment_db", "threads")}}
    out["listening"] = listening(models)
    (HERE / "fxnorm_results.json").write_text(json.dumps(out, indent=1) + "\n")
    table = fxnorm.results_table(res["summary"])
    dist_lines = ["| feature | wet → role average | normalised → role average | wet → dry | normalised → dry |",
                  "|---|---|---|---|---|"]
    for feat, d in dist.items():
        dist_lines.append(f"| {feat} | {d['wet_to_average']:.3f} | {d['norm_to_average']:.3f} | {d['wet_to_dry']:.3f} | "
                          f"{d['norm_to_dry']:.3f} |")
    run_lines = "\n".join(f"- trained on **{n}** stems: `{r['config']}`, {r['steps']} steps, "
                          f"{'%.0f s' % r['wall_s'] if r['wall_s'] else 'wall time not recorded'}, best validation loss "
                          f"{r['best_val_loss']:.3f}" for n, r in runs.items())
    md = f"""# FX normalization: the three-way experiment (chapter 5.3)

Martínez-Ramírez et al. (ISMIR 2022) train a mixer on FX-normalised wet stems. Here the DMC (basic console:
gain and pan) is trained on the bundled set's (a) dry stems, (b) the *natural* engineer's wet stems as they are,
(c) the same wet stems FX-normalised (`automix_lite.fxnorm`), with the same budget, and each is tested on the
TEST songs (first {args.seconds:g} s) with dry, wet and FX-normalised wet stems (mono mid) as input, against the engineer's mix.
Mean ± 95 % CI (Student t over {len(res['rows']) // (len(models) * 3)} songs). Stereo loss: the loudness-matched
stereo MR-STFT loss (`metrics.matched_stereo_loss`); gain/pan errors against the engineer's parameters for the dry
stems (so only for dry input).

Produced by `python benchmarks/fxnorm.py` on {cpu_model()}, one thread (the CPU shared with other jobs, so wall
times are upper bounds); evaluation {eval_s:.0f} s.

{run_lines}

Config (all three): {json.dumps(out['config'])}

{table}

## How far the normalised stems land (TEST stems, mean absolute difference)

Spectrum: dB per band (24 log bands, level removed); loudness: LU; crest factor and loudness range: dB; pan: [0, 1];
decorrelation: 1 − corr(L, R), the share of the reverb bus in a stem. Role averages over the TRAIN wet stems.

{chr(10).join(dist_lines)}

## Which of the paper's claims the bundled set reproduces

Paired over the TEST songs (mixer names: *trained on* | *input*; positive = the first is worse).\n\n{claim_text}\n\n{{NOTES}}
"""
    notes = HERE / "fxnorm_notes.md"  # hand-written reading of the numbers, kept across reruns
    md = md.replace("{NOTES}", notes.read_text() if notes.is_file() else "")
    (HERE / "FXNORM_RESULTS.md").write_text(md)
    print(claim_text)
    print(table)
    print("\n".join(dist_lines))


def listening(models: dict, seconds: float = 8.0) -> dict:
    """The settings each model predicts for the dry stems of the first TEST song (its first ``seconds``), so that the
    notebook can render and play the three mixes without the models (they are not bundled): ``{"song", "seconds",
    "console", "params": {model: {name: [values]}}}``."""
    import torch

    from automix_lite import data
    from automix_lite.inference import active_mask

    song = data.songs("songs", "test")[0]["id"]
    x = data.load_song(song)["tracks"][:, :round(seconds * data.SAMPLE_RATE)]
    out = {}
    with torch.no_grad():
        for name, m in models.items():
            p = m.estimate(x[None], active_mask(x)[None])
            out[name] = {k: v[0].tolist() for k, v in p.items()}
            console = p.console
    return {"song": song, "seconds": seconds, "console": console, "params": out}


def _paired(rows: list, a: str, b: str) -> tuple:
    """Mean and 95 % CI half-width (Student t over songs) of stereo(a) - stereo(b), mixers named 'model | input'."""
    import math

    from scipy import stats

    by = {}
    for r in rows:
        by.setdefault(r["song"], {})[r["mixer"]] = r["stereo"]
    d = [v[a] - v[b] for v in by.values() if a in v and b in v]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1)) if len(d) > 1 else 0.0
    return mean, float(stats.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d))) if len(d) > 1 else 0.0


def _verdict(mean: float, half: float, want_positive: bool) -> str:
    if abs(mean) <= half:
        return "not resolved (the paired 95 % CI contains 0)"
    return "holds" if (mean > 0) == want_positive else "does not hold (the opposite is measured)"


def claims(rows: list) -> tuple:
    """The paper's claims, tested with paired per-song differences of the stereo loss (lower is better)."""
    tests = [("A mixer trained on wet stems as they are does worse on dry input than one trained on dry stems",
              "wet | dry", "dry | dry", True),
             ("A mixer trained on FX-normalised wet stems does better on dry input than one trained on wet stems as they are",
              "wet | dry", "fxnorm | dry", True),
             ("A mixer trained on FX-normalised wet stems comes close to one trained on dry stems, on dry input "
              "(measured: fxnorm minus dry; the claim is that it is small)", "fxnorm | dry", "dry | dry", None),
             ("On wet input, normalising it first helps the mixer trained on FX-normalised stems (the paper's pipeline "
              "normalises the input at inference too)", "fxnorm | wet", "fxnorm | fxnorm", True),
             ("On wet input, a mixer trained on wet stems does better than one trained on dry stems (the domain shift "
              "the other way)", "dry | wet", "wet | wet", True)]
    lines, data = [], []
    for text, a, b, want in tests:
        mean, half = _paired(rows, a, b)
        verdict = (f"difference {mean:+.3f} ± {half:.3f}" if want is None else
                   f"{_verdict(mean, half, want)}: stereo loss ({a}) − ({b}) = {mean:+.3f} ± {half:.3f}")
        lines.append(f"- {text}: {verdict}.")
        data.append({"claim": text, "a": a, "b": b, "difference": [mean, half]})
    return "\n".join(lines), data

if __name__ == "__main__":
    main()
