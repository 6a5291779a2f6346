"""Train and package the contrastive effects encoder (chapter 5.3).

    python tools/train_fx_encoder.py --train     # automix train configs/fx_encoder.json --out runs/fx_encoder
    python tools/train_fx_encoder.py --package   # runs/fx_encoder/best.pt -> automix_lite/checkpoints/fx_encoder.pt,
                                                 # registry.json
    python tools/train_fx_encoder.py --card      # the model card fx_encoder.md (with benchmarks/fx_encoder_results.json)
    python tools/train_fx_encoder.py             # train, package, python benchmarks/fx_encoder.py, card

The run goes through the one training loop (``automix_lite.train.train``) with the config's seed and one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from benchmarks.harness import cpu_model  # noqa: E402
from train_style_track import train_run  # noqa: E402  (the one loop, overwrite, no progress bar)

CONFIG, RUN = "configs/fx_encoder.json", "runs/fx_encoder"
TARGET = "automix_lite/checkpoints/fx_encoder.pt"


def _path(p: str) -> str:
    return os.path.join(ROOT, p)


def package() -> None:
    """best.pt with the whole run's history -> the bundled checkpoint and the registry (the config's steps set to the
    steps run when ``max_seconds`` ended the run)."""
    import torch

    from automix_lite import pretrained, train

    torch.set_num_threads(1)
    best = train.load_checkpoint(os.path.join(_path(RUN), "best.pt"))
    history = train.load_checkpoint(os.path.join(_path(RUN), "last.pt"))["history"]
    cfg = dict(best["config"])
    if history["steps_done"] < cfg["steps"]:
        cfg["steps"] = history["steps_done"]
        with open(_path(CONFIG)) as f:
            text = json.load(f)
        text["steps"] = history["steps_done"]
        with open(_path(CONFIG), "w") as f:
            json.dump(text, f, indent=1)
            f.write("\n")
    metrics = {"best_step": best["history"].get("steps_done"), "best_val": best["history"].get("best_val")}
    train.save_checkpoint(_path(TARGET), best["model"], cfg, history, metrics, extra=best["extra"],
                          version=best["code_version"])
    pretrained.write_registry()


def write_card() -> None:
    import torch

    from automix_lite import pretrained
    from automix_lite.models import fx_encoder as fx

    ck = pretrained.load_checkpoint("fx_encoder")
    cfg, h, model = ck["config"], ck["history"], ck["model"]
    res = fx.read_results()
    val = dict(zip(h["val_step"], h["val_loss"]))
    best_step = min(val, key=val.get)
    lines = []
    if res is not None:
        enc = res["encoders"]
        lines += ["| encoder | top-1 | recall@5 | chance | mean probe R² |", "|---|---|---|---|---|"]
        for k, v in enc.items():
            t = v["retrieval"]
            lines.append(f"| {k} | {t['top1']:.1%} | {t['recall@5']:.1%} | {t['chance']:.1%} | "
                         f"{sum(v['probe'].values()) / len(v['probe']):.2f} |")
        lines += ["", "| parameter | " + " | ".join(enc) + " |", "|---|" + "---|" * len(enc)]
        lines += [f"| {n} | " + " | ".join(f"{enc[k]['probe'][n]:.2f}" for k in enc) + " |" for n in fx.CHAIN_NAMES]
        held = res.get("retrieval_held", {})
        if held:
            lines += ["", "Retrieval (top-1) with cues held fixed in every chain: " + "; ".join(
                f"{label}: " + ", ".join(f"{k} {t['top1']:.1%}" for k, t in by.items()) for label, by in held.items())
                + f" (chance {next(iter(next(iter(held.values())).values()))['chance']:.1%})."]
        if "frechet" in res:
            lines += ["", "As the Part 4 Fréchet embedding (every mixer against the natural engineer, TEST, 8 s): Spearman's "
                      "rho between the mixer rankings on log-mel and on fx_encoder: " + ", ".join(
                          f"{t} {f['spearman']['logmel vs fx_encoder']:+.2f}" for t, f in res["frechet"].items())
                      + " (see the benchmark for the tables)."]
        if "style" in res:
            st = res["style"]
            lines += ["", f"Style (nearest mix of another song in the same style, {len(st['styles'])} styles, chance "
                      f"{st['chance']:.1%}): " + ", ".join(f"{k} {v:.1%}" for k, v in st["accuracy"].items())
                      + "; the style_mix model was not retrained with this encoder."]
        results = "\n".join(lines)
    else:
        results = "(not measured yet: run `python benchmarks/fx_encoder.py`)"
    level = ("; a pan-blind tone-and-dynamics path (`level_path`): the log-mel of the power sum L² + R² (unchanged by "
             "the console's constant-power pan), per band its mean, spread and peak-over-mean, and of the frames' total "
             "level its mean, spread and 5-95 % range") if cfg.get("level_path") else ""
    hard = cfg.get("hard_fraction", 0.0)
    hard_text = (f" {round(cfg['batch_size'] * hard)} of the {cfg['batch_size']} chains of every batch (`hard_fraction` "
                 f"{hard:g}) share one pan, reverb send and decay drawn once for the batch, so only their EQ and "
                 "compressor tell them apart (the validation batches are made the same way).") if hard else ""
    hears = ("read the retrieval with pan centred and with pan centred and the send at -40 dB (above): what is left "
             "when the chains differ only in EQ and compression.")
    if res is not None and res.get("retrieval_held"):
        both = [v for k, v in res["retrieval_held"].items() if "send" in k]
        eqc = [n for n in fx.CHAIN_NAMES if n not in ("pan", "reverb_send_db", "reverb_t60_s")]
        r2 = sum(res["encoders"]["fx_encoder"]["probe"][n] for n in eqc) / len(eqc)
        if both:
            t = both[0]["fx_encoder"]
            old = [v for k, v in res.get("previous", {}).get("retrieval_held", {}).items() if "send" in k]
            prev = (f"; the previous bundled version, trained without hard chains or the level path: "
                    f"{old[0]['top1']:.1%}") if old else ""
            hears = (f"with pan centred and the send at -40 dB in every chain (only EQ and compression differ) its "
                     f"retrieval top-1 is {t['top1']:.1%} (chance {t['chance']:.1%}{prev}); the "
                     f"mean linear-probe R² of the seven EQ and compressor parameters is {r2:.2f}: pan and reverb "
                     "remain its strongest cues. A short CPU run; the GPU config has not been run.")
            if res.get("tried"):
                hears += (" Batches with half the chains sharing pan and reverb plus a pan-blind level path "
                          "(`configs/fx_encoder_hard_level.json`) were tried and did not help (the benchmark's "
                          "section 'Tried').")
    ranges = ", ".join(f"{n} {lo:g}-{hi:g}" + (" (log)" if s == "log" else "") for n, (lo, hi, s) in fx.CHAIN_RANGES.items())
    text = f"""# Model card: `fx_encoder.pt` (contrastive audio-effects encoder)

A small FXencoder-like encoder (`automix_lite.models.fx_encoder.FxEncoder`; after Koo et al., ICASSP 2023, and
Yeh et al. 2025, Fx-Encoder++) that maps audio `(batch, channels, samples)` at 44.1 kHz (mono or stereo) to
`(batch, {cfg['dim']})` unit vectors describing its *processing* (EQ, compression, pan, reverb), not its content.
Taught in `notebooks/19_fx_representations.ipynb` (chapter 5.3); `pretrained.load("fx_encoder").embed(audio)`;
`features.embed_mixes(..., embedding="fx_encoder")`.

**CPU-trained; the GPU config (`configs/fx_encoder_gpu.json`) has not been run.**

## Model

- Log-mel (n_fft 1024, hop 512, {cfg['n_mels']} bands, dB / 20) of the left, right, mid and side channels; a CNN of
  {len(cfg['widths'])} blocks ({', '.join(map(str, cfg['widths']))} channels; 3x3 convolution, ReLU, 2x2
  max-pooling); mean and std over time of the CNN's maps and of every log-mel band{level}; LayerNorm; MLP
  ({cfg['hidden']} hidden) to {cfg['dim']}; L2 normalisation. {model.n_params:,} parameters,
  {os.path.getsize(_path(TARGET)) / 1024:.0f} KiB.

## Data and objective

- Every step: {cfg['batch_size']} random effect chains (`fx_encoder.CHAIN_RANGES`: {ranges}; T60 snapped to
  {fx.T60_GRID} s; the console's channel strip `dsp.console.channel_strip` and its stereo reverb IR), each applied
  to {cfg['views']} segments of {cfg['segment_seconds']:g} s of independently drawn TRAIN stems
  (`train.proxy_stems("train")`: every mono stem of the TRAIN songs and drum passages; other instrument, song and
  position as chance has it), each set to -20 dBFS RMS +- 3 dB (content augmentation). Positives: the same chain;
  negatives: the other chains. Loss: `fx_encoder.contrastive_loss` (NT-Xent, temperature {cfg['temperature']:g}).
  The level is set before the chain, so a chain's EQ and compressor (no make-up gain) change the level and tone
  the encoder hears.{hard_text}
- Validation: the loss on {cfg['val_examples']} fixed chains of VAL stems (seed + 1).

## Training

```json
{json.dumps(cfg, indent=1)}
```

- {h['steps_done']} steps in {h['wall_seconds']:.0f} s ({h['steps_done'] / h['wall_seconds']:.2f} steps/s) on
  {cpu_model()}, {h['threads']} thread(s), torch {torch.__version__}, on a 2-core machine shared with another
  training job; `max_seconds` {cfg['max_seconds']} ended the run. Validation loss {h['val_loss'][0]:.3f} at step
  {h['val_step'][0]} -> best {val[best_step]:.3f} at step {best_step} (chance level ln(2K - 1) =
  {__import__('math').log(cfg['views'] * cfg['batch_size'] - 1):.2f}); the bundled weights are those of the best step.
- Reproduce: `automix train configs/fx_encoder.json --out runs/fx_encoder`, then
  `python tools/train_fx_encoder.py --package`, `python benchmarks/fx_encoder.py`,
  `python tools/train_fx_encoder.py --card`. A run stopped by time does not repeat bit for bit on another machine.

## Results on held-out TEST stems (`benchmarks/FX_ENCODER_RESULTS.md`)

Retrieval: chains x different-content segments of TEST stems; is the nearest embedding of the same chain? Linear
probe: ridge regression per parameter (normalised to [0, 1]; penalty by cross-validation) fit on 192 TRAIN
chains x 2 segments, R² on TEST. Compared with the same
architecture untrained (seed 0) and the DMC's track encoder (`dmc_basic_songs`, the mono mid).

{results}

## Limits

- What it hears: {hears}
- Effects are those of the console only (one chain type, fixed order, fixed shelf frequencies and compressor
  times); real processing (saturation, modulation, other reverbs) is unseen. Decay times are four values.
- Mono stems through one strip; trained on {cfg['segment_seconds']:g} s segments of a small set of bundled stems.
  Mixes (many sources, each with its own chain) are out of its training distribution: its use as a Fréchet
  embedding of mixes is an experiment (see the benchmark).
- FXencoder / Fx-Encoder++ train far larger encoders on large music corpora with many more effects and, for
  Fx-Encoder++, per-instrument queries; this is a CPU-sized teaching version.

## Provenance

- sha256 of the file: `{pretrained.REGISTRY['fx_encoder']['sha256']}`; code version {ck['code_version']}.
"""
    with open(_path("automix_lite/checkpoints/fx_encoder.md"), "w") as f:
        f.write(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true")
    p.add_argument("--package", action="store_true")
    p.add_argument("--card", action="store_true")
    a = p.parse_args(argv)
    every = not (a.train or a.package or a.card)
    if a.train or every:
        train_run(CONFIG, RUN)
    if a.package or every:
        package()
    if every:
        from benchmarks import fx_encoder as bench

        bench.main([])
    if a.card or every:
        write_card()
    return 0


if __name__ == "__main__":
    sys.exit(main())
