"""Held-out evaluation of mixers on the bundled set (taught in ``notebooks/13_training.ipynb`` and
``14_inference.ipynb``; the table of ``benchmarks/RESULTS.md``).

Protocol (the one of chapter 2.2): the first ``seconds`` of every song of a split; a track is *audible* if
its RMS over the excerpt is above -60 dBFS (others are masked, as in training); the reference is the
engineer's stored mix of the same excerpt. Per song and mixer:

- ``stereo``: :func:`automix_lite.metrics.matched_stereo_loss` (StereoLoss after loudness matching);
Models mix through :func:`automix_lite.inference.mix_stems`, exactly as ``automix mix`` does.

- ``gain_db``: :func:`~automix_lite.metrics.gain_error_db` over the audible tracks (mean offset removed);
- ``pan``: :func:`~automix_lite.metrics.pan_error` over the audible tracks (mirror image allowed).

``summarize`` gives the mean and the half-width of a 95 % confidence interval (Student t over songs);
``markdown_table`` lays the tasks side by side as in Table 12 of Steinmetz (2020).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import torch

from . import baselines, data, metrics
from .dsp.console import default_params, mix
from .inference import active_mask

__all__ = ["MIXERS", "excerpt", "baseline_mixer", "model_mixer", "evaluate", "summarize",
           "markdown_table"]

MIXERS = ("mono", "random", "knowledge", "knowledge (gain, pan)", "engineer (gain, pan)")
"""Reference mixers of :func:`baseline_mixer`. The last is an oracle: the engineer's own gains and pans with
everything else neutral, the best a gain-and-pan console can do by copying the engineer."""


def excerpt(song_id: str, seconds: Optional[float] = 8.0, engineer: str = "natural") -> dict:
    """``{"tracks" (1, N, T), "mask" (1, N), "target" (1, 2, T), "params", "roles", "entry"}`` for one song."""
    s = data.load_song(song_id)
    n = s["tracks"].shape[-1] if seconds is None else round(seconds * data.SAMPLE_RATE)
    tracks = s["tracks"][None, :, :n]
    return {"tracks": tracks, "mask": active_mask(tracks), "target": data.reproduce_mix(song_id, engineer)[None, :, :n],
            "params": data.mix_params(song_id, engineer), "roles": s["roles"], "entry": s["entry"]}


def _neutral_with(params: Mapping, n: int) -> dict:
    p = default_params(1, n)
    p["gain_db"], p["pan"] = params["gain_db"].float(), params["pan"].float()
    return p


def baseline_mixer(name: str, seeds: int = 5) -> Callable:
    """A mixer ``f(ex) -> (mix (1, 2, T) or list of mixes, params or list)`` for a name in ``MIXERS``.

    The baselines run as :class:`automix_lite.mixer.Mixer` objects (:class:`~automix_lite.baselines.MonoMixer`,
    :class:`~automix_lite.baselines.RandomMixer`, :class:`~automix_lite.baselines.KnowledgeMixer` built with the
    song's roles and tempo), through ``estimate`` and ``render`` only. ``"random"`` returns ``seeds`` draws (the
    song's score is their mean). The ``(gain, pan)`` rows keep only the gains and pans of the knowledge mixer's
    or the engineer's stored parameters and render them with everything else neutral and no reverb.
    """
    if name not in MIXERS:
        raise ValueError(f"unknown baseline {name!r}; choose one of {MIXERS}.")
    from .mixer import mix_with

    sr = data.SAMPLE_RATE

    def run(ex):
        x, m = ex["tracks"], ex["mask"]
        if name == "mono":
            return mix_with(baselines.MonoMixer(sr), x, m)
        if name == "random":
            draws = [mix_with(baselines.RandomMixer(s, sr), x, m) for s in range(seeds)]
            return [d[0] for d in draws], [d[1] for d in draws]
        if name == "engineer (gain, pan)":
            p = _neutral_with(ex["params"], x.shape[1])
            return mix(x, sr, p, mask=m, reverb=False), p
        knowledge = baselines.KnowledgeMixer(roles=ex["roles"], tempo=ex["entry"]["tempo"], sample_rate=sr)
        if name == "knowledge":
            return mix_with(knowledge, x, m)
        p = _neutral_with(knowledge.estimate(x, m), x.shape[1])
        return mix(x, sr, p, mask=m, reverb=False), p

    return run


def model_mixer(model) -> Callable:
    """A mixer ``f(ex)`` from any :class:`automix_lite.mixer.Mixer` (a DMC, a Mix-Wave-U-Net, a baseline, your
    own), run through :func:`automix_lite.inference.mix_stems` as ``automix mix`` runs it. Its parameters are
    scored too when it has them (``has_params``); a mixer without them is scored on the audio only."""
    from .inference import mix_stems
    from .mixer import check_mixer

    model = check_mixer(model)

    def run(ex):
        y, params = mix_stems(model, ex["tracks"][0])
        if not model.has_params:
            return y[None], None
        return y[None], params.to("cpu")

    return run


def _score(y, params, ex, loss) -> dict:
    row = {"stereo": metrics.matched_stereo_loss(y, ex["target"], data.SAMPLE_RATE, loss)}
    if params is not None and "gain_db" in params and "pan" in params:
        m = ex["mask"][0]
        sub = lambda p: {k: p[k][:, m] for k in ("gain_db", "pan")}  # noqa: E731 - audible tracks only
        row["gain_db"] = metrics.gain_error_db(sub(params), sub(ex["params"]))
        row["pan"] = metrics.pan_error(sub(params), sub(ex["params"]))
    return row


def evaluate(mixers: Mapping[str, Callable], task: str = "songs", split: str = "test", seconds: Optional[float] = 8.0,
             engineer: str = "natural", songs: Optional[int] = None) -> list:
    """Rows ``{"mixer", "task", "song", "stereo", ["gain_db", "pan"]}``, one per song and mixer.

    ``mixers``: name -> ``f(ex)`` (see :func:`baseline_mixer`, :func:`model_mixer`); ``songs`` limits the
    number of songs (first ones in manifest order).
    """
    from .losses import StereoLoss

    loss = StereoLoss()
    entries = data.songs(task, split)[:songs]
    rows = []
    for entry in entries:
        ex = excerpt(entry["id"], seconds, engineer)
        for name, fn in mixers.items():
            with torch.no_grad():
                y, params = fn(ex)
            if isinstance(y, list):
                scores = [_score(a, b, ex, loss) for a, b in zip(y, params)]
                row = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
            else:
                row = _score(y, params, ex, loss)
            rows.append({"mixer": name, "task": task, "song": entry["id"], **row})
    return rows


def summarize(rows: list) -> dict:
    """``{(task, mixer): {metric: (mean, ci95 half-width, n)}}`` over songs (Student t; 0 for a single song)."""
    from scipy import stats

    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["mixer"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {}
        for metric in ("stereo", "gain_db", "pan"):
            v = torch.tensor([r[metric] for r in rs if metric in r], dtype=torch.float64)
            if len(v) == 0:
                continue
            half = float(stats.t.ppf(0.975, len(v) - 1) * v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0
            out[key][metric] = (float(v.mean()), half, len(v))
    return out


def markdown_table(summary: dict, tasks=("songs", "drums")) -> str:
    """Table 12 layout: one row per mixer, per task the stereo loss, gain error (dB) and pan error, ``mean ± ci``."""
    mixers = list(dict.fromkeys(m for _, m in summary))
    tasks = [t for t in tasks if any(k[0] == t for k in summary)]
    head = "| Mixer | " + " | ".join(f"{t}: stereo loss | {t}: gain err. (dB) | {t}: pan err." for t in tasks) + " |"
    lines = [head, "|---|" + "---|---|---|" * len(tasks)]
    for m in mixers:
        cells = []
        for t in tasks:
            s = summary.get((t, m), {})
            cells += [f"{s[k][0]:.2f} ± {s[k][1]:.2f}" if k in s and k != "pan" else
                      (f"{s[k][0]:.3f} ± {s[k][1]:.3f}" if k in s else "–") for k in ("stereo", "gain_db", "pan")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
