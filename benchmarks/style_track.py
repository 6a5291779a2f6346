"""Single-track style transfer (chapter 5.1): results on held-out TEST stems and the gradient-route comparison.

    python benchmarks/style_track.py              # writes benchmarks/STYLE_TRACK_RESULTS.md
    python benchmarks/style_track.py --n 16 --optimise-cases 2 --out /tmp/r.md   # a quick look

Needs the bundled checkpoint (``automix_lite/checkpoints/style_track.pt``) and the route runs of
``python tools/train_style_track.py --routes`` (``runs/style_track_routes/{autodiff,proxy,spsa}``); a missing route
run is left out of the table with a note. Every number of the results file comes from this script
(``automix_lite.models.style.evaluate_track`` for the scores); the file ends with a JSON copy that the chapter
reads (``style.read_results``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

ROUTES = ("autodiff", "proxy", "spsa")
RUN = os.path.join(ROOT, "runs", "style_track_routes", "{}")


def step_time(route: str, cfg: dict, repeats: int = 4) -> float:
    """Seconds per training step (batch, forward, loss, backward, Adam) of ``route`` with ``cfg``'s sizes, measured
    here after one warm-up step."""
    import torch

    from automix_lite import train
    from automix_lite.models import style

    model = style.build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    part = style.FAMILIES["style_track"].part({**cfg, "route": route}, model, torch.device("cpu"))

    class _R:  # what part.batch / part.loss use of the loop's run
        pass

    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        batch = part.batch(_R, i + 1)
        loss = part.loss(_R, batch, model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    del train
    return sum(times[1:]) / repeats


def route_rows(test_rows: list) -> list:
    import numpy as np

    from automix_lite import train

    by = {r["method"]: r for r in test_rows}
    rows = []
    for route in ROUTES:
        path = os.path.join(RUN.format(route), "last.pt")
        if not os.path.exists(path):
            continue
        ck = train.load_checkpoint(path)
        h, cfg = ck["history"], ck["config"]
        loss = np.array([v if v is not None else np.nan for v in h["loss"]], dtype=float)
        tail = loss[len(loss) * 2 // 3:]
        val = [v for v in h["val_loss"] if v is not None]
        rows.append({"route": route, "steps": h["steps_done"], "batch_size": cfg["batch_size"],
                     "segment_seconds": cfg["segment_seconds"], "train_wall_s": h["wall_seconds"],
                     "train_steps_per_s": h["steps_done"] / h["wall_seconds"],
                     "step_s": step_time(route, cfg), "non_finite": int((~np.isfinite(loss)).sum()),
                     "loss_first": float(np.nanmean(loss[:25])), "loss_last_third": float(np.nanmean(tail)),
                     "loss_spread": float(np.nanstd(tail) / np.nanmean(tail)),
                     "val_first": val[0], "val_best": min(val), "val_last": val[-1],
                     "test_mrstft": by[f"route: {route}"]["mrstft"], "test_param_eq": by[f"route: {route}"]["param_eq"],
                     "test_param_comp": by[f"route: {route}"]["param_comp"],
                     "val_step": list(h["val_step"]), "val_loss": list(h["val_loss"]),
                     "loss_step": list(h["step"]), "loss_curve": list(h["loss"])})
    return rows


def route_reading(routes: list) -> str:
    """One paragraph read off the route rows (every number from them)."""
    if not routes:
        return ""
    best = min(routes, key=lambda r: r["test_mrstft"])
    fast = min(routes, key=lambda r: r["step_s"])
    slow = max(routes, key=lambda r: r["step_s"])
    par = min(routes, key=lambda r: r["test_param_eq"])
    return (f"Reading: with this budget the lowest test MR-STFT came from {best['route']} ({best['test_mrstft']:.3f}), "
            f"the cheapest step from {fast['route']} ({fast['step_s']:.3f} s; {slow['route']} {slow['step_s']:.3f} s, "
            f"{slow['step_s'] / fast['step_s']:.0f} times more), the lowest EQ parameter error from {par['route']} "
            f"({par['test_param_eq']:.3f}). No route produced a non-finite loss: "
            f"{', '.join(str(r['non_finite']) for r in routes)}. 300 steps are a short run and the validation curves "
            "still move by several hundredths from one validation to the next, so differences of that size between "
            "single runs are not conclusive.")


def main(argv=None) -> int:
    import torch

    from automix_lite import pretrained, train
    from automix_lite.models import style
    from train_style_track import cpu_name

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--optimise-cases", type=int, default=8)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "STYLE_TRACK_RESULTS.md"))
    a = p.parse_args(argv)
    train._set_threads(1)  # numba's threads first, then torch's (else the compressor's first call resets torch's)
    t_start = time.time()
    bundled = pretrained.load_checkpoint("style_track")
    models = {"style_track (bundled)": bundled["model"]}
    missing = []
    for route in ROUTES:
        path = os.path.join(RUN.format(route), "best.pt")
        if os.path.exists(path):
            models[f"route: {route}"] = train.load_checkpoint(path)["model"]
        else:
            missing.append(route)
    rows = style.evaluate_track(models, n=a.n, seed=a.seed, seconds=a.seconds, optimise_cases=a.optimise_cases)
    corrupt = rows[0]["mrstft"]
    routes = route_rows(rows)
    by = {r["method"]: r for r in rows}
    m, eq = by["style_track (bundled)"], by["matching EQ"]
    reduction = 100 * (1 - m["mrstft"] / corrupt)
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "python": platform.python_version(),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "benchmark_seconds": None}
    h = bundled["history"]
    summary = {"rows": rows, "routes": routes, "machine": machine, "n": a.n, "seed": a.seed, "seconds": a.seconds,
               "optimise_cases": a.optimise_cases, "reduction_percent": reduction,
               "beats_matching_eq": m["mrstft"] < eq["mrstft"],
               "bundled": {"steps": h["steps_done"], "wall_seconds": h["wall_seconds"],
                           "steps_per_second": h["steps_done"] / h["wall_seconds"]}}
    machine["benchmark_seconds"] = time.time() - t_start
    met = reduction >= 40 and summary["beats_matching_eq"]
    opt_rows = [r for r in rows if r["method"].startswith("optimise")]
    text = f"""# Single-track style transfer: results (chapter 5.1)

Written by `python benchmarks/style_track.py` on {machine['date']}: {machine['cpu']}, {machine['cores']} cores
shared with other jobs, torch {machine['torch']}, {machine['threads']} thread; the whole script took
{machine['benchmark_seconds']:.0f} s. Do not edit by hand: run the script again.

## Results on held-out TEST stems

{a.n} fixed examples of {a.seconds:g} s (`automix_lite.models.style.test_examples`, seed {a.seed}; TEST stems only,
half of the inputs corrupted by a random EQ and gain), each scored against its target (the input segment
processed by the known style). Layout of DeepAFx-ST's table (MR-STFT, loudness, spectral centroid, crest factor,
RMS errors; lower is better) plus the parameter error against the known style (mean absolute error of the [0, 1]
controls, EQ group and compressor group, on the uncorrupted examples). Training-free optimisation
(`style_optimise.optimise_track`, style objective) on the first {a.optimise_cases} examples only (their rows say
n; their "vs corrupt" compares with the unprocessed input on the same examples).

{style.results_table(rows)}

Target (issue 14): the trained autodiff model reduces MR-STFT to the target by at least 40 % against the
unprocessed input and beats the matching-EQ baseline. Measured: {reduction:.1f} % reduction
({corrupt:.3f} -> {m['mrstft']:.3f}), matching EQ {eq['mrstft']:.3f}: **{'met' if met else 'not met'}**.
The bundled model: {h['steps_done']} steps in {h['wall_seconds'] / 60:.1f} min
({summary['bundled']['steps_per_second']:.2f} steps/s, one thread, shared machine).
{"" if not opt_rows else "Time per case of the optimisers: " + "; ".join(f"{r['method']}: {r['seconds']:.1f} s" for r in opt_rows) + f"; the trained model: {m['seconds']:.3f} s."}

## Gradient routes (same network, same budget)

Each route trains the bundled model's network from the same seed with the same budget
(`configs/style_track_routes_autodiff.json`, `configs/style_track_proxy.json`, `configs/style_track_spsa.json`:
300 steps of batch 4, two 0.75 s segments per item, one thread; the three runs trained at the same time as other
jobs, so their wall times are indicative; "s / step" is measured by this script, one route after another). Every
route's validation and test outputs are rendered by the real DSP with the predicted settings.
{"" if not missing else "Missing route runs (train them with tools/train_style_track.py --routes): " + ", ".join(missing) + "."}

{style.routes_table(routes, corrupt)}

- autodiff: exact gradients through `automix_lite.dsp` (the chain of the loss *is* the chain of the output).
- proxy: the bundled neural proxy `proxy_channel` (frozen, reverb bypassed) stands in for the chain in training
  (its card: an imperfect imitation, worse than the unprocessed input on the equalizer case); the real chain
  renders the predicted settings in validation and test.
- spsa: the chain as a black box, one simultaneous perturbation per step (two extra renders).

{route_reading(routes)}

## Machine-readable copy

```json
{json.dumps(summary, indent=1)}
```
"""
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
