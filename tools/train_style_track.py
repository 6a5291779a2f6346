"""Train and package the single-track style-transfer model (chapter 5.1), and train the gradient-route comparison.

    python tools/train_style_track.py --bundled   # automix train configs/style_track.json --out runs/style_track
    python tools/train_style_track.py --routes    # the three routes, configs/style_track_{routes_autodiff,proxy,spsa}.json
    python tools/train_style_track.py --package   # runs/style_track/best.pt -> automix_lite/checkpoints/style_track.pt
                                                  # (+ test metrics), its model card style_track.md, registry.json
    python tools/train_style_track.py             # all three, in that order

Every run goes through the one training loop (``automix_lite.train.train``) with the config's seed and one
thread, so running it again gives the same weights. ``benchmarks/style_track.py`` then scores everything on the
TEST split and writes ``benchmarks/STYLE_TRACK_RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.harness import cpu_model  # noqa: E402  (the machine's CPU, as every benchmark names it)

BUNDLED = ("configs/style_track.json", "runs/style_track")
ROUTES = {"autodiff": "configs/style_track_routes_autodiff.json", "proxy": "configs/style_track_proxy.json",
          "spsa": "configs/style_track_spsa.json"}
ROUTE_RUN = "runs/style_track_routes/{}"
TEST = {"n": 64, "seed": 1234, "seconds": 1.5}


def _path(p: str) -> str:
    return os.path.join(ROOT, p)


def train_run(config: str, out: str) -> None:
    from automix_lite import train

    train.train(_path(config), out=_path(out), progress=False, overwrite=True)


def package() -> None:
    """best.pt with the whole run's history and the TEST scores -> the bundled checkpoint, card, registry."""
    import torch

    from automix_lite import pretrained, train
    from automix_lite.models import style

    torch.set_num_threads(1)
    run = _path(BUNDLED[1])
    best = train.load_checkpoint(os.path.join(run, "best.pt"))
    history = train.load_checkpoint(os.path.join(run, "last.pt"))["history"]
    rows = style.evaluate_track({"style_track": best["model"]}, n=TEST["n"], seed=TEST["seed"],
                                seconds=TEST["seconds"])
    metrics = {"test": rows, **TEST, "split": "test", "best_step": best["history"].get("steps_done")}
    cfg = dict(best["config"])
    if history["steps_done"] < cfg["steps"]:
        # A run stopped early (for time) is the same as a run of that many steps: the plateau schedule does not
        # depend on the total. The bundled config then says the steps that were run.
        cfg["steps"] = history["steps_done"]
        set_config_steps(history["steps_done"])
        best["config"] = cfg
    target = _path("automix_lite/checkpoints/style_track.pt")
    digest = train.save_checkpoint(target, best["model"], cfg, history, metrics, extra=best["extra"],
                                   version=best["code_version"])
    pretrained.write_registry()
    write_card(best, history, rows, digest, os.path.getsize(target))
    print(style.results_table(rows))


def set_config_steps(steps: int) -> None:
    path = _path(BUNDLED[0])
    with open(path) as f:
        cfg = json.load(f)
    cfg["steps"] = steps
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")


def write_card(best: dict, history: dict, rows: list, digest: str, size: int) -> None:
    import torch

    from automix_lite.models import style

    cfg = best["config"]
    model = best["model"]
    n_params = sum(p.numel() for p in model.parameters())
    by = {r["method"]: r for r in rows}
    m, c, eq = by["style_track"], by["corrupt"], by["matching EQ"]
    reduction = 100 * (1 - m["mrstft"] / c["mrstft"])
    val = dict(zip(history["val_step"], history["val_loss"]))
    best_step = min(val, key=val.get)
    cfg_text = json.dumps({k: v for k, v in cfg.items()}, indent=1)
    met = "met" if reduction >= 40 and m["mrstft"] < eq["mrstft"] else "not met"
    text = f"""# Model card: `style_track.pt` (single-track effect style transfer)

A small DeepAFx-ST-like model (`automix_lite.models.style.StyleTransfer`; Steinmetz et al. 2022) that hears an
input recording and a reference recording and predicts the 18 settings of the chain EQ -> compressor -> output
gain (`automix_lite.style_optimise.TRACK_SPECS`) that make the input sound processed like the reference. Taught in
`notebooks/17_style_transfer_track.ipynb` (chapter 5.1); used by `automix style-track IN --reference REF --out OUT`
and `automix_lite.models.style.transfer(model, x, reference, sample_rate)`.

**Trained for {history['wall_seconds'] / 60:.1f} minutes on one CPU thread.** On {m['n']} held-out TEST examples it
reduces the MR-STFT distance to the target by {reduction:.0f} % against the unprocessed input
({c['mrstft']:.3f} -> {m['mrstft']:.3f}; matching-EQ baseline {eq['mrstft']:.3f}). Target of issue 14 (>= 40 % and
better than the matching EQ): **{met}**.

## Model

- Shared encoder: log-mel spectrogram ({cfg['n_mels']} bands, FFT 2048, hop 512 at 44.1 kHz, dB), four 1-D
  convolutions of {cfg['channels']} channels (strides 1, 2, 2, 2), temporal mean + std pooling, a linear layer to
  {cfg['embed_dim']}, plus the mean and std of every log-mel band (skip path). Controller: MLP on
  `[e_x, e_r, e_r - e_x]` with {cfg['hidden']} hidden units, sigmoid -> 18 controls in [0, 1] -> real units.
- Trainable parameters: {n_params}. File size: {size / 1024:.0f} KiB (float32).
- Chain rendered in training by the route `{cfg['route']}` (exact gradients through `automix_lite.dsp`).

## Data

- Training: every stem of the bundled TRAIN split (mono, 44.1 kHz); per item two non-overlapping segments of
  {cfg['segment_seconds']:g} s of one stem (both above {style.SILENCE_DB:g} dBFS RMS), one random style
  (`style.STYLE_RANGES`: EQ gains +-9 dB, threshold -36..-6 dB, ratio 1-8, attack 1-50 ms, release 30-500 ms,
  output gain +-6 dB) applied to both; reference = style(segment b), target = style(segment a), input = segment a,
  corrupted with probability {cfg['corrupt_prob']:g} by a random EQ (+-6 dB) and gain (+-6 dB). Fresh examples
  every step from one generator seeded `seed + steps done`.
- Validation (plateau schedule, best checkpoint): {cfg['val_examples']} fixed examples of VAL stems (seed
  `seed + 1`), rendered by the DSP.
- Test (below): {TEST['n']} fixed examples of TEST stems, {TEST['seconds']:g} s, seed {TEST['seed']}
  (`style.test_examples`); no TEST stem was seen in training or validation.

## Training

```json
{cfg_text}
```

- {history['steps_done']} steps of batch {cfg['batch_size']} in {history['wall_seconds']:.0f} s
  ({history['steps_done'] / history['wall_seconds']:.2f} steps/s overall) on {cpu_model()}, {history['threads']}
  thread(s), torch {torch.__version__}, shared with other jobs. Best validation MR-STFT {val[best_step]:.4f} at step
  {best_step} (first validation {history['val_loss'][0]:.4f} at step {history['val_step'][0]}); the bundled weights
  are those of that step, the history is the whole run's.
- Reproduce: `automix train configs/style_track.json --out runs/style_track` (seeded, one thread: the loop is
  deterministic given the machine and thread count; a rerun of the first 100 steps with `--steps 100`
  reproduced this run's training and validation losses exactly; the full run has not been repeated), then `python tools/train_style_track.py --package`; or
  `python tools/train_style_track.py --bundled --package`. A bigger set-up for a GPU, not run:
  `configs/style_track_gpu.json`.

## Test results ({TEST['n']} held-out examples; lower is better)

{style.results_table(rows)}

MR-STFT: `style.train_loss()` (FFT 512/1024/2048, hop 1/4) per example; loudness in LU (BS.1770); spectral
centroid in Hz; crest factor and RMS in dB; parameter error: mean absolute error of the [0, 1] controls against
the known style, on the uncorrupted examples only (there the style is the answer). More rows (training-free
optimisation, the three gradient routes): `benchmarks/STYLE_TRACK_RESULTS.md`.

## Limits

- The predicted settings track the output gain, and partly the high-shelf gain, the highest peaking band and the
  threshold; most other controls (band frequencies and Q, ratio, attack, release) stay near the middle of their
  ranges whatever the style (the parameter plots of chapter 5.1). The MR-STFT gain comes mostly from the level
  and the broad spectral tilt.
- One fixed chain (EQ -> compressor -> gain), mono training stems of the small bundled set; styles drawn from a
  box of settings, not from engineers' habits. Stereo inputs get the same settings on both channels.
- The encoder hears at most {style.ENCODER_SECONDS:g} s (the central excerpt) of each signal; it was trained on
  {cfg['segment_seconds']:g} s segments.
- DeepAFx-ST trains a larger encoder on speech and music for days on GPUs and adds a reference-content
  augmentation; this model is a CPU-sized teaching version.

## Provenance

- sha256 of the file: `{digest}`; code version {best['code_version']}.
"""
    with open(_path("automix_lite/checkpoints/style_track.md"), "w") as f:
        f.write(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundled", action="store_true")
    p.add_argument("--routes", action="store_true")
    p.add_argument("--package", action="store_true")
    a = p.parse_args(argv)
    every = not (a.bundled or a.routes or a.package)
    if a.bundled or every:
        train_run(*BUNDLED)
    if a.routes or every:
        for route, config in ROUTES.items():
            train_run(config, ROUTE_RUN.format(route))
    if a.package or every:
        package()
    return 0


if __name__ == "__main__":
    sys.exit(main())
