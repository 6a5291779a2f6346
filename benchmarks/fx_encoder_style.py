"""The fx_encoder as the reference encoder of chapter 5.1's single-track style-transfer model: does it change the results?

    python benchmarks/fx_encoder_style.py [--steps 300] [--max-seconds 480] [--variant learned|fx_encoder]

Trains ``configs/style_track.json`` twice from scratch with the same seed, data and step budget through the one
loop (``automix_lite.train.train``, one thread): ``reference_encoder`` ``"learned"`` (the model's own spectrogram
encoder, trained with it, as the bundled ``style_track``) and ``"fx_encoder"`` (the frozen bundled chapter 5.3
encoder embeds input and reference; only the controller learns). Both are scored by
``style.evaluate_track`` on the same 48 TEST examples (seed 1234). The bundled ``style_track.pt`` is not touched.
The result goes into ``benchmarks/fx_encoder_results.json`` (key ``style_reference_encoder``) and
``benchmarks/FX_ENCODER_RESULTS.md`` (rewritten from the JSON). ``--variant``: train only that one (runs/ kept), the
evaluation then uses both runs' ``best.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

VARIANTS = ("learned", "fx_encoder")


def config(variant: str, steps: int, max_seconds: float) -> dict:
    cfg = json.loads((ROOT / "configs" / "style_track.json").read_text())
    cfg.pop("comment", None)
    cfg.update({"reference_encoder": variant, "steps": steps, "max_seconds": max_seconds, "val_every": 50,
                "val_examples": 16, "log_every": 50, "threads": 1, "device": "cpu", "seed": 0})
    return cfg


def run_dir(variant: str) -> Path:
    return ROOT / "runs" / f"style_ref_{variant}"


def train_variant(variant: str, steps: int, max_seconds: float) -> None:
    import torch

    from automix_lite import train

    torch.set_num_threads(1)
    train.train(config(variant, steps, max_seconds), out=str(run_dir(variant)), progress=False, overwrite=True)


def evaluate(steps: int, max_seconds: float) -> dict:
    import torch

    from automix_lite import pretrained, train
    from automix_lite.models import style

    torch.set_num_threads(1)
    models, runs = {}, {}
    for v in VARIANTS:
        best = train.load_checkpoint(str(run_dir(v) / "best.pt"))
        h = train.load_checkpoint(str(run_dir(v) / "last.pt"))["history"]
        models[f"style_track, reference encoder: {v}"] = best["model"].eval()
        runs[v] = {"steps_done": h["steps_done"], "wall_seconds": h["wall_seconds"], "best_val": h.get("best_val"),
                   "best_step": best["history"].get("steps_done"),
                   "trained_parameters": sum(p.numel() for p in best["model"].parameters() if p.requires_grad)}
    t0 = time.time()
    rows = style.evaluate_track(models, n=48, seed=1234)
    return {"steps": steps, "max_seconds": max_seconds, "config": config("learned", steps, max_seconds), "runs": runs,
            "rows": rows, "eval_seconds": time.time() - t0,
            "fx_encoder_sha256": pretrained.REGISTRY["fx_encoder"]["sha256"]}


def markdown(s: dict) -> str:
    from automix_lite.models import style

    r = s["runs"]
    lines = ["## As the reference encoder of chapter 5.1's model", "",
             "`configs/style_track.json` trained twice from scratch, same seed, data and caps "
             f"(at most {s['steps']} steps and {s['max_seconds']:g} s of one CPU thread, whichever comes first; batch "
             f"{s['config']['batch_size']}), by `benchmarks/fx_encoder_style.py`: `reference_encoder` "
             "`\"learned\"` (the model's own spectrogram encoder trained with it, as the bundled style_track) and "
             "`\"fx_encoder\"` (the frozen bundled fx_encoder embeds input and reference; only the controller "
             "learns). Scored by `style.evaluate_track` on the same 48 TEST examples (seed 1234); the bundled "
             "style_track.pt is not this short run and was not retrained. " + "; ".join(
                 f"{v}: {x['steps_done']} steps in {x['wall_seconds']:.0f} s, {x['trained_parameters']:,} trained "
                 f"parameters, best validation {x['best_val']:.3f} (step {x['best_step']})" for v, x in r.items()) + ".",
             "", style.results_table(s["rows"])]
    if s.get("note"):
        lines += ["", s["note"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--max-seconds", type=float, default=480)
    p.add_argument("--variant", choices=VARIANTS)
    p.add_argument("--eval-only", action="store_true")
    a = p.parse_args(argv)
    if a.variant:
        train_variant(a.variant, a.steps, a.max_seconds)
        return 0
    if not a.eval_only:
        for v in VARIANTS:
            train_variant(v, a.steps, a.max_seconds)
    from fx_encoder import markdown as bench_markdown

    from automix_lite.models import fx_encoder as fx

    res = fx.read_results()
    res["style_reference_encoder"] = evaluate(a.steps, a.max_seconds)
    (HERE / "fx_encoder_results.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "FX_ENCODER_RESULTS.md").write_text(bench_markdown(res) + "\n")
    print(markdown(res["style_reference_encoder"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
