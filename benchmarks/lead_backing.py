"""Chapter 5.5: the lead-and-backing task on the bundled TEST songs (rules, direct and intermediate models, EQ).

    python benchmarks/lead_backing.py [--crops 8] [--steps 1500] [--eq-steps 1500] [--songs N] [--alteration 10]

One CPU thread. Measures the engineers on TRAIN and TEST (:func:`automix_lite.lead_backing.engineer_stats`), trains
the intermediate-feature and the direct model (:func:`~automix_lite.lead_backing.train_model`, ``--crops`` random
6 s crops per TRAIN song and engineer, validated on VAL crops) and the self-supervised EQ
(:func:`~automix_lite.lead_backing.train_eq_model`), scores the EQ on random EQs of the TEST wet leads
(:func:`~automix_lite.lead_backing.evaluate_eq`), then every method on the TEST pairs of both engineers
(:func:`~automix_lite.lead_backing.evaluate`), and the rules and the two models again with every raw lead
``--alteration`` dB quieter and louder (natural engineer). Writes ``benchmarks/LEAD_BACKING_RESULTS.md`` and
``benchmarks/lead_backing_results.json`` (read by ``lead_backing.read_results``; it holds the training histories
that chapter 5.5 plots).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _write(path: Path, obj) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def _stats(st: dict) -> dict:
    return {"rows": st["rows"], "summary": st["summary"], "t60_fit": st["t60_fit"], "split": st["split"]}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from automix_lite import lead_backing as lb
    from harness import cpu_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--eq-steps", type=int, default=1500)
    ap.add_argument("--songs", type=int, default=None)
    ap.add_argument("--alteration", type=float, default=10.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    out = {"machine": cpu_model(), "threads": 1, "config": vars(args), "partial": True}
    out["engineer_stats"] = {split: _stats(lb.engineer_stats(split)) for split in ("train", "test")}
    print(f"engineer stats: {time.time() - t0:.0f} s", flush=True)

    t = time.time()
    train, val = lb.training_set("train", args.crops), lb.training_set("val", max(2, args.crops // 2), seed=1)
    out["sets"] = {"train": len(train["x"]), "val": len(val["x"]), "seconds": time.time() - t}
    models, out["histories"], out["train_s"] = {}, {}, {}
    for kind in ("intermediate", "direct"):
        t = time.time()
        models[kind], out["histories"][kind] = lb.train_model(kind, train, val, steps=args.steps)
        out["train_s"][kind] = time.time() - t
        print(f"{kind}: best val {out['histories'][kind]['best_val']:.3f} in {out['train_s'][kind]:.0f} s", flush=True)
    t = time.time()
    models["eq"], out["histories"]["eq"] = lb.train_eq_model(steps=args.eq_steps)
    out["train_s"]["eq"] = time.time() - t
    zero = lb.eq_batch(lb.lead_spectra("val"), 256, np.random.default_rng(1))
    out["eq_val_zero"] = float(lb.peak_response_db(lb.LOSS_FREQS, zero["centre_hz"], zero["gain_db"]).pow(2).mean())
    print(f"eq: best val {out['histories']['eq']['best_val']:.2f} dB² (no correction {out['eq_val_zero']:.2f}) "
          f"in {out['train_s']['eq']:.0f} s", flush=True)
    ev = lb.evaluate_eq(models["eq"])
    out["eq_evaluation"] = {k: v for k, v in ev.items() if k != "values"}
    _write(HERE / "lead_backing_results.json", out)

    t = time.time()
    out["evaluation"] = lb.evaluate("test", models=models, songs=args.songs)
    out["evaluate_s"] = time.time() - t
    _write(HERE / "lead_backing_results.json", out)
    print(f"evaluation: {out['evaluate_s']:.0f} s", flush=True)
    out["altered"] = {}
    for a in (-args.alteration, args.alteration):
        out["altered"][f"{a:+g}"] = lb.evaluate("test", ("natural",), models, songs=args.songs, alteration_db=a,
                                                methods=("rules", "direct", "intermediate"))
        _write(HERE / "lead_backing_results.json", out)
    out["wall_s"] = time.time() - t0
    out["partial"] = False
    _write(HERE / "lead_backing_results.json", out)

    st = out["engineer_stats"]["train"]["summary"]
    keys = ("lead_to_mix_lu", "lead_to_backing_lu", "raw_lra_db", "wet_lra_db", "t60_s", "send_db")
    eng_rows = ["| engineer | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    eng_rows += [f"| {e} | " + " | ".join(f"{s[k][0]:.2f} ± {s[k][1]:.2f}" for k in keys) + " |" for e, s in st.items()]
    fit = out["engineer_stats"]["train"]["t60_fit"]
    e = out["eq_evaluation"]
    md = ["# The lead-and-backing task on the bundled TEST songs (chapter 5.5)", "",
          f"Produced by `python benchmarks/lead_backing.py` (`{' '.join(sys.argv[1:]) or 'defaults'}`) on {out['machine']}, "
          f"one thread, in {out['wall_s']:.0f} s. Config: {json.dumps(vars(args))}; {out['sets']['train']} TRAIN and "
          f"{out['sets']['val']} VAL crops of 6 s; models trained in "
          + ", ".join(f"{k} {v:.0f} s" for k, v in out["train_s"].items()) + " (one seeded AdamW/Adam loop in "
          "`automix_lite.lead_backing`).", "",
          "## What the engineers do to the lead (TRAIN, mean ± sd over 21 songs)", "", *eng_rows, "",
          "T60 = a + b · tempo (least squares, TRAIN): " + ", ".join(f"{k}: a = {v[0]:.3f} s, b = {v[1] * 100:.3f} s per "
                                                                    "100 bpm" for k, v in fit.items()) + ".", "",
          "## Self-supervised EQ (random peaks on the TEST wet leads)", "",
          f"Spectral error (dB, audible bands), {e['n']} random EQs: none {e['none'][0]:.2f} ± {e['none'][1]:.2f}, "
          f"model {e['model'][0]:.2f} ± {e['model'][1]:.2f}, rule (TRAIN average shape) {e['rule'][0]:.2f} ± "
          f"{e['rule'][1]:.2f}. Validation loss: best {out['histories']['eq']['best_val']:.2f} dB² against "
          f"{out['eq_val_zero']:.2f} dB² for no correction.", "",
          "## Every method against the engineer's mix (TEST)", "", lb.results_table(out["evaluation"]), "",
          f"## With the raw lead {args.alteration:g} dB quieter / louder (natural engineer)", "", lb.altered_table(out), ""]
    (HERE / "LEAD_BACKING_RESULTS.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
