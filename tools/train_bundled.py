"""Train, evaluate and package the bundled mixing checkpoints (one script for all of them).

    python tools/train_bundled.py                 # train every run in MODELS and COMPARE, evaluate, package
    python tools/train_bundled.py --skip-train    # evaluate and package the existing runs
    python tools/train_bundled.py --check         # re-score the baselines and the bundled checkpoints and
                                                  # compare with benchmarks/MIXING_RESULTS.md (no training)

Each run is ``automix train configs/RUN.json --out runs/RUN``. Then every run is scored on the TEST split
(stereo loss, gain and pan error; baselines in the same run), the bundled ones are written to
``automix_lite/checkpoints/NAME.pt`` (weights of the best validation step, history of the whole run, test
scores) with a model card ``NAME.md``, and ``automix_lite/checkpoints/registry.json`` and
``benchmarks/MIXING_RESULTS.md`` (included in RESULTS.md) are regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = {  # bundled name -> (training run = configs/RUN.json -> runs/RUN, description)
    "dmc_basic_songs": ("dmc_basic_songs", "DMC, basic console (gain, pan), songs, stereo + parameter loss"),
    "dmc_basic_drums": ("dmc_basic_drums", "DMC, basic console (gain, pan), drums"),
    "dmc_full_songs": ("dmc_full_songs", "DMC, full DSP console (gain, EQ, compressor, pan, reverb send), songs"),
    "wave_u_net_drums": ("wave_u_net_drums", "Mix-Wave-U-Net, drums"),
}
COMPARE = {  # runs reported in the table but not bundled: label -> run
    "dmc_basic_drums + parameter loss": "dmc_basic_drums_param",
    "dmc_basic_drums + pretrained encoder": "dmc_basic_drums_pretrained",
    "dmc_basic_songs, stereo loss only": "dmc_basic_songs_stereo_only",
}
SECONDS = 8.0  # evaluation excerpt, as chapter 2.2 in standard mode


def notes(summary: dict) -> str:
    """The reading of the table below the targets; every number is taken from the runs and the summary."""
    from automix_lite import train

    def stereo(task, mixer, key="stereo"):
        return summary[(task, mixer)][key][0]

    def val_at(run, step):
        h = train.load_checkpoint(os.path.join(ROOT, "runs", run, "last.pt"))["history"]
        return dict(zip(h["val_step"], h["val_loss"]))[step], h

    (scratch100, _), (pre100, h) = val_at("dmc_basic_drums", 100), val_at("dmc_basic_drums_pretrained", 100)
    (scratch200, _), (pre200, _) = val_at("dmc_basic_drums", 200), val_at("dmc_basic_drums_pretrained", 200)
    enc = h["encoder_pretrain"]
    full = train.load_checkpoint(os.path.join(ROOT, "runs", "dmc_full_songs", "last.pt"))["history"]["steps_done"]
    return f"""Reading the misses. The knowledge-based mixer is given every track's role (it knows which microphone is the
left overhead) and uses a full console (EQ, compression, reverb); DMC-basic hears mono audio only and sets gains
and pans. On drums it puts both overheads near the centre (it cannot tell the left overhead from the right one
from their mono signals) and places the hi-hat on the audience's side, which is most of its pan error; even the
knowledge mixer restricted to gain and pan is closer ({stereo("drums", "knowledge (gain, pan)"):.2f}). A parameter
loss (rows "+ parameter loss") did not change that for drums; for songs it took the pan error from
{stereo("songs", "dmc_basic_songs, stereo loss only", "pan"):.3f} to {stereo("songs", "dmc_basic_songs", "pan"):.3f} at a
similar stereo loss, and is the bundled songs model. Pretraining the encoder on role classification first (row
"+ pretrained encoder", {enc["val_accuracy"]:.0%} VAL role accuracy against {enc["chance"]:.0%} for the most common
role) sped up the start (validation loss {pre100:.2f} against {scratch100:.2f} after 100 steps, {pre200:.2f} and
{scratch200:.2f} after 200) and put the hi-hat on the engineer's side, but the overheads stayed near the centre, so it
is not bundled. One seed per variant: differences inside the confidence intervals are not evidence. What would
close the drums gap: telling the model the track names (as the knowledge mixer is told), an encoder that compares
the overheads with the close microphones, and the longer GPU training of `configs/dmc_basic_songs_gpu.json` adapted
to drums; none of these was run here. DMC-full, whose console can reproduce the engineer's EQ, compression and
reverb, reaches {stereo("songs", "dmc_full_songs"):.2f} on songs after {full} CPU steps.

The row "engineer (gain, pan)" is not a bound on what a gain-and-pan console can do. It copies the engineer's
faders and pans into a console whose EQ, compressor and reverb are neutral, but the engineer set those faders for
its whole chain (EQ boosts and cuts, compression with make-up gain, reverb), so without the chain its balance is
off. A model that chooses its own gains for the same console can do better: on songs dmc_basic_songs scores
{stereo("songs", "dmc_basic_songs"):.2f} against {stereo("songs", "engineer (gain, pan)"):.2f}; on drums
dmc_basic_drums stays {"above" if stereo("drums", "dmc_basic_drums") > stereo("drums", "engineer (gain, pan)") else "below"} it ({stereo("drums", "dmc_basic_drums"):.2f} against
{stereo("drums", "engineer (gain, pan)"):.2f}). What the row does measure is the part of the engineer's sound
that the faders and pans alone cannot give.
"""


def _cpu_name() -> str:
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from harness import cpu_model

    return cpu_model()


def evaluate_all(runs: dict) -> tuple:
    """Score the baselines and every run (label -> run folder) on the TEST split of its task."""
    from automix_lite import evaluation, train

    rows = []
    for task in ("songs", "drums"):
        mixers = {m: evaluation.baseline_mixer(m) for m in evaluation.MIXERS}
        for label, run in runs.items():
            ck = train.load_checkpoint(os.path.join(ROOT, "runs", run, "best.pt"))
            if ck["config"]["task"] == task:
                mixers[label] = evaluation.model_mixer(ck["model"])
        rows += evaluation.evaluate(mixers, task, "test", SECONDS)
    return rows, evaluation.summarize(rows)


def card(name: str, ck: dict, summary: dict, table: str, digest: str, size: int) -> str:
    cfg, h = ck["config"], ck["history"]
    task = cfg["task"]
    from automix_lite import data

    n_train, n_val, n_test = (len(data.songs(task, s)) for s in ("train", "val", "test"))
    hw = h.get("device_name", "cpu")
    hw = (f"{_cpu_name()}, {cfg['threads'] or 'all'} thread(s), shared with other training runs" if hw == "cpu"
          else hw)
    mine = summary.get((task, name), {})
    lines = [
        f"# Model card: `{name}.pt` ({MODELS[name][1]})", "",
        "Trained by `tools/train_bundled.py` from `configs/%s.json`; taught in `notebooks/13_training.ipynb` and "
        "used in `notebooks/14_inference.ipynb` (`automix_lite.pretrained.load(%r)`, `automix mix ... --model %s`)."
        % (MODELS[name][0], name, name), "",
        "## Model", "",
        f"- `{cfg['model']}` with {json.dumps(cfg['model_args'])}, at most {cfg['max_tracks']} tracks; "
        f"{ck['model'].n_params:,} trainable parameters; file {size / 1e6:.2f} MB (float32).",
        f"- sha256 of the file: `{digest}`; code version {ck['code_version']}.", "",
        "## Data", "",
        f"- Bundled set, task `{task}`: TRAIN {n_train} songs (random {cfg['segment_seconds']:g} s segments, stems "
        f"scaled by up to ±{cfg['gain_augment_db']:g} dB with the target unchanged), VAL {n_val} (model selection: "
        f"the lowest validation loss), TEST {n_test} (below, never seen in training).",
        f"- Target: the `{cfg['engineer']}` engineer's stored mixes (its console uses EQ, compression and reverb too).", "",
        "## Training", "",
        f"- {h['steps_done']} steps of batch {cfg['batch_size']}, {cfg['optimizer']} lr {cfg['lr']:g} with "
        f"{cfg['warmup_steps']} warm-up steps and {cfg['schedule']} decay, loss: stereo MR-STFT (sum and difference)"
        + (f" + {cfg['param_weight']:g} x L1 of the normalised gain and pan against the engineer's (parameter loss)."
           if cfg.get("param_weight") else "."),
        f"- Wall time {h['wall_seconds'] / 60:.1f} min on {hw} ({h['steps_per_second']:.2f} steps/s); best "
        f"validation loss {h['best_val']:.3f}" + (" (stereo + parameter loss)" if cfg.get("param_weight") else "")
        + f" at step {h['best_step']}: this file holds the weights of that step and the history of the whole run.",
        "- The GPU-size configuration (`configs/dmc_basic_songs_gpu.json` for the DMC) has not been run.", "",
        f"## Held-out results (TEST split, first {SECONDS:g} s of each song, mean ± 95 % CI over songs)", "",
        table, "",
        "Stereo loss after loudness matching against the engineer's mix; gain error with the mean offset removed; "
        "pan error up to a mirror image. `engineer (gain, pan)` copies the engineer's own gains and pans with "
        "everything else neutral; the engineer set those faders for its whole chain (EQ, compression with make-up "
        "gain, reverb), so the row is not the best a gain-and-pan console can do (a model that sets its own gains "
        "can beat it).", "",
    ]
    if "stereo" in mine:
        lines += ["## In one line", "",
                  f"Stereo loss {mine['stereo'][0]:.2f}" + (f", gain error {mine['gain_db'][0]:.2f} dB, pan error "
                                                           f"{mine['pan'][0]:.3f}" if "gain_db" in mine else "") + ".", ""]
    return "\n".join(lines)


def target_lines(summary: dict) -> list:
    """The targets of chapter 2.2 for DMC-basic (``evaluation.check_targets``), one line each."""
    from automix_lite.evaluation import check_targets

    out = []
    for task in ("songs", "drums"):
        name = f"dmc_basic_{task}"
        if (task, name) not in summary:
            continue
        scores = {m: v for (t, m), v in summary.items() if t == task}
        for r in check_targets(scores, name):
            verdict = "met" if r["met"] else "**missed**"
            value, base = r["value"], r["base"]
            if base is None:  # a parameter target: "gain error 1.23 dB within 2 dB"
                words, rest = r["target"].split(" within ")
                number = f"{value:.3f}" if r["metric"] == "pan" else f"{value:.2f}"
                out.append(f"- {task}: {words} {number}{' ' + r['unit'] if r['unit'] else ''} within {rest}: {verdict}")
                continue
            b = scores[base]["stereo"][0]
            what = (f"below knowledge ({b:.2f})" if base == "knowledge"
                    else f"at least 30 % below {base} ({b:.2f} -> below {r['limit']:.2f})")
            side = f"{100 * (1 - value / b):.0f} % below" if value < b else f"{100 * (value / b - 1):.0f} % above"
            out.append(f"- {task}: stereo loss {value:.2f} {what}: {verdict} ({side} {base})")
    return out


def check(path: str = os.path.join(ROOT, "benchmarks", "MIXING_RESULTS.md")) -> int:
    """Re-score the baselines and the bundled checkpoints as ``main`` does and compare every cell with the committed
    table; print the rows and every cell that moved. The rows of runs that are not bundled (``COMPARE``) need
    their training runs and are left out. Returns the number of cells that moved."""
    from automix_lite import evaluation, pretrained

    rows = []
    for task in ("songs", "drums"):
        mixers = {m: evaluation.baseline_mixer(m) for m in evaluation.MIXERS}
        for name in MODELS:
            ck = pretrained.load_checkpoint(name)
            if ck["config"]["task"] == task:
                mixers[name] = evaluation.model_mixer(ck["model"])
        rows += evaluation.evaluate(mixers, task, "test", SECONDS)
    table = evaluation.markdown_table(evaluation.summarize(rows))
    print(table)
    committed, now = evaluation.table_rows(open(path).read()), evaluation.table_rows(table)
    moved = 0
    for mixer, cells in now.items():
        for k, (a, b) in enumerate(zip(committed.get(mixer, ["?"] * len(cells)), cells)):
            if a != b:
                moved += 1
                print(f"moved: {mixer}, column {k + 1}: {a} -> {b}")
    print(f"{moved} cell(s) of {sum(len(c) for c in now.values())} moved against {os.path.relpath(path, ROOT)}")
    return moved


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--check", action="store_true", help="compare the bundled rows with MIXING_RESULTS.md")
    args = parser.parse_args(argv)
    if args.check:
        sys.exit(1 if check() else 0)
    from automix_lite import evaluation, pretrained, train

    runs = {**{name: run for name, (run, _) in MODELS.items()}, **COMPARE}
    if not args.skip_train:
        for run in dict.fromkeys(runs.values()):
            train.train(os.path.join(ROOT, "configs", f"{run}.json"), out=os.path.join(ROOT, "runs", run), progress=False,
                        overwrite=True)  # a rerun replaces the previous runs/ folder on purpose
    runs = {label: run for label, run in runs.items() if os.path.isfile(os.path.join(ROOT, "runs", run, "best.pt"))}
    ready = [n for n in MODELS if n in runs]
    rows, summary = evaluate_all(runs)
    for task in ("songs", "drums"):
        print(evaluation.markdown_table({k: v for k, v in summary.items() if k[0] == task}, (task,)))
    dest = os.path.join(ROOT, "automix_lite", "checkpoints")
    from automix_lite.data.bundled import file_sha256

    for name in ready:
        # the weights of the best validation step, with the history of the whole run and the test scores
        ck = train.load_checkpoint(os.path.join(ROOT, "runs", runs[name], "best.pt"))
        history = train.load_checkpoint(os.path.join(ROOT, "runs", runs[name], "last.pt"))["history"]
        history["best_step"] = ck["history"]["val_step"][-1]
        task = ck["config"]["task"]
        test = {m: v for (t, m), v in summary.items() if t == task}
        ck["history"] = history
        target = os.path.join(dest, f"{name}.pt")
        train.save_checkpoint(target, ck["model"], ck["config"], history, {"test": test, "seconds": SECONDS},
                              version=ck["code_version"])
        table = evaluation.markdown_table({k: v for k, v in summary.items() if k[0] == task}, (task,))
        with open(os.path.join(dest, f"{name}.md"), "w") as f:
            f.write(card(name, ck, summary, table, file_sha256(target), os.path.getsize(target)))
    pretrained.write_registry()
    with open(os.path.join(ROOT, "benchmarks", "MIXING_RESULTS.md"), "w") as f:
        f.write("# Mixing models on held-out songs (Table 12 layout)\n\n")
        f.write(f"TEST split of the bundled set, first {SECONDS:g} s of each song (7 songs, 4 drum passages), "
                "against the natural engineer's mix; mean ± 95 % confidence interval over songs (Student t). "
                f"Bundled checkpoints (model cards in `automix_lite/checkpoints/`), trained on {_cpu_name()}.\n\n")
        f.write(evaluation.markdown_table(summary) + "\n\nTargets for DMC-basic (issue 5), checked on the means above:\n\n")
        f.write("\n".join(target_lines(summary)) + "\n\n" + notes(summary))
    with open(os.path.join(ROOT, "runs", "evaluation_rows.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
