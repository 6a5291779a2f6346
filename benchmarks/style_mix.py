"""Chapter 5.2's evaluation of the bundled multitrack style-transfer model on the TEST songs.

    python benchmarks/style_mix.py [--seconds 6] [--references N] [--out benchmarks/STYLE_MIX_RESULTS.md]
                                   [--songs N] [--model style_mix] [--card]

For every TEST song and every other TEST song as the reference (the first N others with ``--references``), with
the reference mixed by engineer E (natural, punchy), the output is compared with E's own mix of the song
(``automix_lite.models.style_mix.evaluate_mix``, the function the notebook calls), next to the reference-agnostic
baselines. Writes the markdown with the machine it ran on. ``--card`` also stores the summary as the bundled
checkpoint's ``metrics`` (re-saved with its weights, config, history and code version unchanged), regenerates
``registry.json`` and writes the model card ``automix_lite/checkpoints/style_mix.md`` from the checkpoint's history
and these results (no number typed by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

TARGET_DISCRIMINATION = 0.9
TARGET_BEATS_SUM = 0.3


def targets(summary: dict) -> list:
    """``(target, measured, met)`` lines of the issue's targets."""
    out = [(f"style discrimination >= {TARGET_DISCRIMINATION:.0%}", f"{summary['discrimination']:.0%}",
            summary["discrimination"] >= TARGET_DISCRIMINATION),
           (f"stereo loss >= {TARGET_BEATS_SUM:.0%} below the equal-loudness sum", f"{summary['beats_sum']:.0%} below",
            summary["beats_sum"] >= TARGET_BEATS_SUM)]
    for e, v in summary.get("beats_dmc", {}).items():
        if e != "natural":  # the DMC was trained on the natural engineer
            out.append((f"beats the DMC (trained on natural) on every {e} reference", f"in {v:.0%} of the cases", v == 1.0))
    return out


def markdown(summary: dict, info: dict, args, seconds_taken: float, n_songs: int) -> str:
    from automix_lite.models.style_mix import mix_table

    refs = "every other TEST song" if args.references is None else f"the first {args.references} other TEST songs"
    lines = ["# Multitrack mixing style transfer on the held-out songs (chapter 5.2)", "",
             f"Written by `benchmarks/style_mix.py` in {seconds_taken:.0f} s with `{args.model}`; the function is "
             "`automix_lite.models.style_mix.evaluate_mix`, the one `notebooks/18_style_transfer_mix.ipynb` runs.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
             "## Protocol", "",
             f"{n_songs} TEST songs (never seen in training), first {args.seconds:g} s of each. For every song, "
             f"{refs} as the reference, mixed by engineer E (natural or punchy): the output is scored against E's own "
             "mix of the song. Stereo loss: sum-and-difference MR-STFT after loudness matching; `vs other engineer`: "
             "the same against the other engineer's mix of the song; `closer to E`: how often the first is the "
             "smaller (the style discrimination); feature MAPE: mean of the four Part 4 feature groups; parameter "
             "errors against E's parameters (gain with the mean offset removed, pan up to a mirror image, control: "
             "mean |difference| of all 23 normalised track controls).", "",
             "Baselines ignore the reference: `equal loudness` (every stem at -23 LUFS, centred, unprocessed), "
             "`dmc_full_songs` (the bundled DMC, trained on the natural engineer) and `average engineer` (the mean of "
             "the two engineers' own parameters for this song: an oracle that knows both engineers' settings but not "
             "which one the reference asks for). Their output does not depend on the reference, so whatever their `closer to E` is for one engineer, it is "
             "one minus that for the other: 50 % over both by construction.", "",
             "## Results", "", mix_table(summary), "",
             "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in targets(summary)]
    return "\n".join(lines) + "\n"


def card(ck: dict, summary: dict, info: dict, args, sha: str, size: int) -> str:
    h, cfg = ck["history"], ck["config"]
    m = summary["mixers"]
    sm_all, eq_all = m["style_mix"]["all"], m["equal loudness"]["all"]
    best_step = h["val_step"][min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)]
    kinds = ", ".join(f"{int(100 * f / sum(cfg['fractions']))} % {k}" for k, f in zip(("random", "engineer", "bundled"),
                                                                                 cfg["fractions"]))
    lines = [
        "# Model card: `style_mix.pt` (multitrack mixing style transfer, Diff-MST-like, songs)", "",
        "Trained by `automix train configs/style_mix.json --out runs/style_mix` (the one training loop, "
        "`automix_lite.train`, family `style_mix` of `automix_lite.models.style_mix`); its metrics and this card are "
        "written by `python benchmarks/style_mix.py --card`. Taught in `notebooks/18_style_transfer_mix.ipynb`; used "
        "by `automix style STEMS_DIR --reference REF.wav --out MIX.wav` and "
        "`automix_lite.models.style_mix.transfer(automix_lite.pretrained.load('style_mix'), stems, reference, sr)`.", "",
        "## Model", "",
        f"- `MixStyleTransfer`: tokens of width {cfg['dim']} (one per stem, two for the reference: mid and side), a "
        f"shared log-mel CNN encoder (widths {cfg['widths']}, {cfg['n_mels']} mel bands), a {cfg['layers']}-layer "
        f"transformer encoder with {cfg['heads']} heads and no positional encoding (any number of stems up to "
        f"{cfg['max_tracks']}, in any order), heads for the 23 controls of every track and the reverb bus; the full "
        "DSP console renders the mix; the master gain is set from the reference's loudness. The encoder adds a linear "
        "path from each mel band's mean and spread over time to the pooled CNN features.",
        f"- {ck['model'].n_params:,} trainable parameters; file {size / 1e6:.2f} MB (float32); sha256 `{sha}`; code "
        f"version {ck['code_version']}.", "",
        "## Data", "",
        f"- Made on the fly from the TRAIN songs (21), a fresh batch every step from one seeded generator: a style "
        f"({kinds}), two different songs A and B, random {cfg['segment_seconds']:g} s segments; the reference is A "
        "mixed in the style, the target B mixed in the same style. `random`: random console settings tied to "
        "instrument roles; `engineer`: a new engineer generated from the bundled engineer's conventions "
        "(`automix_lite.data.engineer.engineer_style`); `bundled`: natural or punchy. VAL songs (7) for "
        f"validation ({cfg['val_examples']} fixed examples), TEST songs (7) only below.", "",
        "## Training", "",
        f"- {h['steps_done']} steps of batch {cfg['batch_size']}, Adam lr {cfg['lr']:g} with the plateau schedule "
        f"(factor {cfg['lr_factor']:g}, patience {cfg['lr_patience']} validations of every {cfg['val_every']} steps), "
        f"gradient clipping {cfg['grad_clip']:g}; loss: {cfg['param_weight']:g} x L1 of the normalised controls + "
        "stereo loss after RMS matching.",
        f"- Wall time {h['wall_seconds'] / 60:.1f} min on {info.get('CPU', 'a CPU')}, {h['threads']} thread(s), "
        f"shared with other training runs ({h['steps_per_second']:.2f} steps/s)"
        + (f"; the run ended at max_seconds = {cfg['max_seconds']:g} s before its {cfg['steps']} steps"
           if cfg.get("max_seconds") and h["steps_done"] < cfg["steps"] else "") + ".",
        f"- Best validation stereo loss {min(h['val_loss']):.3f} at step {best_step} (first validation "
        f"{h['val_loss'][0]:.3f}); this file holds the weights of that step and the history of the whole run. "
        "Seeded: the same config on the same machine type gives the same model"
        + (" (a run ended by max_seconds may stop at another step on a faster or slower machine)"
           if cfg.get("max_seconds") and h["steps_done"] < cfg["steps"] else "") + ".",
        "- The GPU-size configuration `configs/style_mix_gpu.json` has not been run.", "",
        f"## Held-out results (TEST split, first {args.seconds:g} s, every song with other songs as the reference)", "",
        "See `benchmarks/STYLE_MIX_RESULTS.md` for the protocol and the table of every mixer.", "",
        "| mixer | stereo loss | closer to E | feature MAPE (%) | gain err (dB) | pan err |", "|---|---|---|---|---|---|"]
    for name, groups in m.items():
        v = groups["all"]
        lines.append(f"| {name} | {v['stereo']:.3f} | {v['closer']:.0%} | {v['mape']:.1f} | {v.get('gain_db', 0):.2f} | "
                     f"{v.get('pan', 0):.3f} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {mm} | {'yes' if ok else 'no'} |" for t, mm, ok in targets(summary)]
    lines += ["", "## Limitations", "",
              "A style discrimination near 50 % means that the model mixes a song the same way whatever the reference: "
              "it has learned each instrument role's settings (an average engineer), not yet to read the engineer from "
              "the reference. Batches that hold the same target song in two styles with their references (`paired: true`, "
              "so that only the reference can lower the loss) did not change that within a few hundred CPU steps: two "
              "trial runs (one also feeding the reference's tokens to every track's head) still mixed every punchy "
              "reference the natural way at steps 225 and 300; they were stopped for time and are not bundled. What "
              "remains to try: those batches for many more steps (`configs/style_mix_gpu.json`), an auxiliary loss "
              "that makes the reference encoder tell styles apart, and a pretrained encoder. The encoder looks at the central "
              "`ENCODER_SECONDS` of the stems and the reference; the console renders the whole song with those "
              "settings."]
    lines += ["", "## In one line", "",
              f"Stereo loss {sm_all['stereo']:.3f} against {eq_all['stereo']:.3f} for the equal-loudness sum, style "
              f"discrimination {summary['discrimination']:.0%}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="excerpt of every song")
    parser.add_argument("--references", type=int, default=None, help="other songs used as references (default: all)")
    parser.add_argument("--songs", type=int, default=None, help="the first N TEST songs only (default: all)")
    parser.add_argument("--model", default="style_mix", help="bundled name or .pt path")
    parser.add_argument("--out", default=str(HERE / "STYLE_MIX_RESULTS.md"))
    parser.add_argument("--card", action="store_true", help="store the metrics in the bundled checkpoint, write its card")
    args = parser.parse_args(argv)

    import torch

    from harness import machine

    from automix_lite import data, pretrained, train
    from automix_lite.models import style_mix

    torch.set_num_threads(1)
    info = machine()
    ck = pretrained.load_checkpoint(args.model)
    t0 = time.time()
    songs = [s["id"] for s in data.songs("songs", "test")][:args.songs]
    rows = style_mix.evaluate_mix(ck["model"], songs, args.references, seconds=args.seconds, log=print)
    summary = style_mix.summarize_mix(rows)
    text = markdown(summary, info, args, time.time() - t0, len(songs))
    Path(args.out).write_text(text)
    print(text)
    if args.card:
        path = pretrained.checkpoint_path("style_mix")
        metrics = {"protocol": {"seconds": args.seconds, "references": args.references, "songs": songs},
                   "summary": summary}
        metrics = json.loads(json.dumps(metrics))  # plain types
        train.save_checkpoint(path, ck["model"], ck["config"], ck["history"], metrics=metrics, extra=ck["extra"],
                              version=ck["code_version"])
        pretrained.write_registry()
        sha = pretrained.REGISTRY["style_mix"]["sha256"]
        md = Path(path).with_suffix(".md")
        md.write_text(card(ck, summary, info, args, sha, Path(path).stat().st_size))
        print(f"wrote {path} (metrics), registry.json and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
