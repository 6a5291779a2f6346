"""Chapter 5.3's evaluation of the contrastive effects encoder on held-out stems, and two uses of it.

    python benchmarks/fx_encoder.py [--chains 48] [--views 4] [--no-frechet] [--no-style]

1. Retrieval and linear probes (``automix_lite.models.fx_encoder.evaluate``) of three encoders: the bundled
   ``fx_encoder``, the same architecture untrained (``torch.manual_seed(0)``) and the DMC's track encoder
   (``dmc_basic_songs``, fed the mono mid), on TEST stems through fixed random chains; the probe is fit on TRAIN
   stems and chains.
2. The Part 4 Fréchet distance (``evaluation.frechet_by_mixer``, diagonal covariances) of every mixer's mixes of
   the TEST songs and drum passages (first 8 s) to the natural engineer's, on the log-mel embedding and on the
   fx_encoder embedding: does the ranking of the mixers change?
3. Style: mixes of the TEST songs in the two bundled engineers' styles and six generated ones
   (``data.engineer.engineer_styles``); leave-one-song-out nearest-neighbour style accuracy of the fx_encoder
   embedding against the bundled style_mix model's reference encoder (its shared encoder on mid and side).

Writes ``benchmarks/FX_ENCODER_RESULTS.md`` and ``benchmarks/fx_encoder_results.json``
(``fx_encoder.read_results()``), with the machine it ran on.
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


def encoders() -> dict:
    """``name -> f(audio (B, 2, T)) -> (B, D)`` of the three encoders compared."""
    import torch

    from automix_lite import pretrained
    from automix_lite.models import fx_encoder as fx

    ck = pretrained.load_checkpoint("fx_encoder")
    torch.manual_seed(0)
    untrained = fx.build_model(ck["config"]).eval()
    dmc = pretrained.load("dmc_basic_songs").encoder.eval()
    return {"fx_encoder": ck["model"].embed, "untrained": untrained.embed,
            "dmc encoder (mid)": lambda a: dmc(a.mean(1))}


def _ranks(values: dict) -> dict:
    order = sorted(values, key=values.get)
    return {k: order.index(k) + 1 for k in values}


def frechet_comparison(seconds: float = 8.0) -> dict:
    """Fréchet distances per task and mixer on both embeddings, their ranks and Spearman's rho between them."""
    import numpy as np
    from scipy import stats

    from automix_lite import data, evaluation, features

    sr = data.SAMPLE_RATE

    def embed(y):
        x = y[0].numpy()
        return np.concatenate([features.embed_mixes([x], sr)[0], features.embed_mixes([x], sr, "fx_encoder")[0]])

    out = {}
    for task in ("songs", "drums"):
        rows = evaluation.evaluate(evaluation.every_mixer(task), task, "test", seconds, embed=embed)
        d_log = 4 * 32
        res = {}
        for name, sl in (("logmel", slice(0, d_log)), ("fx_encoder", slice(d_log, None))):
            part = [{**r, "embedding": r["embedding"][sl], "target_embedding": r["target_embedding"][sl]} for r in rows]
            fr = evaluation.frechet_by_mixer(part, lambda a, b: features.frechet_distance(a, b, diagonal=True))
            res[name] = {m: v for (t, m), v in fr.items()}
        stereo = {}
        for r in rows:
            stereo.setdefault(r["mixer"], []).append(r["stereo"])
        res["stereo"] = {m: float(np.mean(v)) for m, v in stereo.items()}
        mixers = list(res["logmel"])
        rho = {f"{a} vs {b}": float(stats.spearmanr([res[a][m] for m in mixers], [res[b][m] for m in mixers])[0])
               for a, b in (("logmel", "fx_encoder"), ("logmel", "stereo"), ("fx_encoder", "stereo"))}
        out[task] = {"distances": res, "ranks": {k: _ranks(v) for k, v in res.items()}, "spearman": rho,
                     "songs": len({r["song"] for r in rows})}
    return out


def style_comparison(n_generated: int = 6, seconds: float = 4.0, seed: int = 7) -> dict:
    """Leave-one-song-out nearest-neighbour style accuracy (a mix's nearest mix of *another* song has its style)."""
    import numpy as np
    import torch

    from automix_lite import data, pretrained
    from automix_lite.data import engineer
    from automix_lite.models import style_mix

    styles = {e: e for e in engineer.ENGINEERS}
    styles.update(engineer.engineer_styles(n_generated, seed))
    songs = [s["id"] for s in data.songs("songs", "test")]
    gen = style_mix.StyleMixData("test", seconds, songs=songs)
    g = torch.Generator().manual_seed(seed)
    mixes, labels, song_of = [], [], []
    for sid in songs:
        for k, (name, st) in enumerate(styles.items()):
            ex = gen.example(g, style=st, pair=(sid, sid))
            mixes.append(ex["reference"].float())
            labels.append(k)
            song_of.append(sid)
    audio = torch.stack(mixes)
    fx = pretrained.load("fx_encoder")
    sm = pretrained.load("style_mix")
    with torch.no_grad():
        e_fx = fx.embed(audio).double().numpy()
        mid, side = audio.mean(1), (audio[:, 0] - audio[:, 1]) / 2
        e_sm = torch.cat([sm.encoder(mid), sm.encoder(side)], 1).double().numpy()
    labels, song_of = np.array(labels), np.array(song_of)

    def accuracy(e, cosine):
        if cosine:
            e = e / np.linalg.norm(e, axis=1, keepdims=True)
            d = -e @ e.T
        else:
            z = (e - e.mean(0)) / np.maximum(e.std(0), 1e-12)
            d = ((z[:, None] - z[None]) ** 2).sum(-1)
        d[song_of[:, None] == song_of[None, :]] = np.inf  # other songs only
        return float((labels[d.argmin(1)] == labels).mean())

    return {"styles": list(styles), "songs": len(songs), "mixes": len(labels), "seconds": seconds,
            "chance": 1 / len(styles),
            "accuracy": {"fx_encoder (cosine)": accuracy(e_fx, True),
                         "style_mix reference encoder (standardised, euclidean)": accuracy(e_sm, False),
                         "style_mix reference encoder (cosine)": accuracy(e_sm, True)}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=48)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--no-frechet", action="store_true")
    parser.add_argument("--no-style", action="store_true")
    parser.add_argument("--out", default=str(HERE / "FX_ENCODER_RESULTS.md"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from harness import machine

    from automix_lite import pretrained
    from automix_lite.models import fx_encoder as fx

    torch.set_num_threads(1)
    old = fx.read_results() or {}
    info = machine()
    t0 = time.time()
    test_set = fx.examples("test", args.chains, args.views)
    train_set = fx.examples("train", 192, 2, seed=99)
    encs = encoders()
    res = fx.evaluate(encs, train_set, test_set)
    ablations = {}
    for label, fixed in (("pan centred", {"pan": 0.5}), ("pan centred, send -40 dB", {"pan": 0.5, "reverb_send_db": -40.0})):
        held = fx.examples("test", args.chains, args.views, fixed=fixed)
        ablations[label] = {k: fx.retrieval(fx._embed_all(f, held["audio"]), held["chain"].numpy()) for k, f in encs.items()}
    pca = fx.projection(res["fx_encoder"]["embeddings"], "pca")
    results = {"machine": info, "chains": args.chains, "views": args.views, "seconds": 1.5,
               "probe_train": {"chains": 192, "views": 2, "split": "train", "alphas": list(fx.ALPHAS)},
               "checkpoint_sha256": pretrained.REGISTRY["fx_encoder"]["sha256"],
               "encoders": {k: {"retrieval": v["retrieval"], "probe": v["probe"]} for k, v in res.items()},
               "retrieval_held": ablations,
               "projection": {"method": "pca", "xy": np.round(pca, 4).tolist(),
                              "chain": test_set["chain"].tolist(),
                              "params": {n: [round(float(x), 4) for x in test_set["params"][n]] for n in fx.CHAIN_NAMES}}}
    t1 = time.time()
    results["eval_seconds"] = t1 - t0
    if not args.no_frechet:
        results["frechet"] = frechet_comparison()
        results["frechet_seconds"] = time.time() - t1
    if not args.no_style:
        results["style"] = style_comparison()
    results["seconds_total"] = time.time() - t0
    for key in ("tried", "style_reference_encoder"):  # measured once (a variant not bundled; fx_encoder_style.py): kept
        if key in old:
            results[key] = old[key]
    (HERE / "fx_encoder_results.json").write_text(json.dumps(results, indent=1) + "\n")
    Path(args.out).write_text(markdown(results) + "\n")  # rewrite it from the JSON alone: markdown(read_results())
    print(markdown(results))
    return 0


def markdown(r: dict) -> str:
    from automix_lite.models import fx_encoder as fx

    enc = r["encoders"]
    lines = ["# The contrastive effects encoder on held-out stems (chapter 5.3)", "",
             f"Written by `benchmarks/fx_encoder.py` in {r['seconds_total']:.0f} s. Machine: "
             + ", ".join(f"{k} {v}" for k, v in r["machine"].items()) + ".", "",
             "## Retrieval", "",
             f"{r['chains']} random chains (`fx_encoder.CHAIN_RANGES`) x {r['views']} segments of different TEST stems "
             f"({r['seconds']:g} s, seed 1234); for each item, are its nearest neighbours (cosine) of the same chain? "
             "The held columns use new TEST sets (same seed) with that cue the same in every chain: what is left "
             "without it.", "", fx.retrieval_table(r),
             "", "## Linear probe (R² per effect parameter, TEST)", "",
             "Ridge regression (standardised embeddings; penalty per parameter chosen from `fx_encoder.ALPHAS` by 5-fold "
             "cross-validation over chains) of each parameter, normalised to [0, 1] on its scale, fit on 192 chains x 2 "
             "segments of TRAIN stems and scored on the TEST set above (R² < 0: worse than the TEST mean).", "",
             fx.probe_table(r)]
    if r.get("tried"):
        t, now = r["tried"], enc["fx_encoder"]
        mean = lambda pr: sum(pr.values()) / len(pr)  # noqa: E731
        eqc = [n for n in fx.CHAIN_NAMES if n not in ("pan", "reverb_send_db", "reverb_t60_s")]
        lines += ["", "## Tried: hard chains and a pan-blind level path (not bundled)", "",
                  t["description"], "", "| measure | bundled fx_encoder | tried |", "|---|---|---|",
                  f"| retrieval top-1 | {now['retrieval']['top1']:.1%} | {t['encoder']['retrieval']['top1']:.1%} |"]
        for label, v in t.get("retrieval_held", {}).items():
            lines.append(f"| retrieval top-1, {label} | {r['retrieval_held'][label]['fx_encoder']['top1']:.1%} | "
                         f"{v['top1']:.1%} |")
        lines += [f"| probe R², mean of EQ and compressor ({len(eqc)}) | {sum(now['probe'][n] for n in eqc) / len(eqc):.2f} | "
                  f"{sum(t['encoder']['probe'][n] for n in eqc) / len(eqc):.2f} |",
                  f"| probe R², mean of all | {mean(now['probe']):.2f} | {mean(t['encoder']['probe']):.2f} |"]
        lines += [f"| probe R², {n} | {now['probe'][n]:.2f} | {t['encoder']['probe'][n]:.2f} |" for n in fx.CHAIN_NAMES]
        if t.get("untrained"):
            lines += ["", "Its untrained copy (the wider input, seed 0): retrieval top-1 " + ", ".join(
                [f"{t['untrained']['retrieval']['top1']:.1%}"] + [f"{label} {v['top1']:.1%}" for label, v in
                                                                   t.get("untrained_held", {}).items()])
                      + f"; mean probe R² {mean(t['untrained']['probe']):.2f}."]
    if "frechet" in r:
        lines += ["", "## The Part 4 Fréchet distance on the fx_encoder embedding", "",
                  "Every mixer of `evaluation.every_mixer` on the TEST split (first 8 s), Fréchet distance to the "
                  "natural engineer's mixes (diagonal covariances) on the offline log-mel embedding and on the "
                  "fx_encoder embedding; rank 1 = closest; the mean stereo loss for reference. One distance per mixer over a "
                  "handful of songs, no interval: read rank changes as indications. The fx_encoder was trained on single "
                  "stems set to -20 dBFS, so nothing taught it the balance of levels between a mix's sources.", ""]
        for task, f in r["frechet"].items():
            lines += [f"### {task} ({f['songs']} songs)", "", fx.frechet_table(r, task), ""]
    if "style" in r:
        s = r["style"]
        lines += ["## Style: nearest-neighbour accuracy across songs", "",
                  f"{s['mixes']} mixes ({s['songs']} TEST songs x {len(s['styles'])} styles: the bundled engineers and "
                  f"generated ones, {s['seconds']:g} s segments); a mix's nearest mix of another song, is it in the same "
                  f"style? Chance {s['chance']:.1%}. This measures the embeddings only; the style_mix model was not "
                  "retrained with the fx_encoder as its reference encoder.", "", "| embedding | accuracy |", "|---|---|"]
        lines += [f"| {k} | {v:.1%} |" for k, v in s["accuracy"].items()]
    if "style_reference_encoder" in r:
        from fx_encoder_style import markdown as style_markdown

        lines += ["", style_markdown(r["style_reference_encoder"])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
