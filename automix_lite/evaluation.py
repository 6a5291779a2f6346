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
import os
from typing import Callable, Mapping, Optional, Sequence

import torch

from . import baselines, data, metrics
from .dsp.console import default_params, mix
from .inference import active_mask

__all__ = ["MIXERS", "excerpt", "baseline_mixer", "model_mixer", "evaluate", "frechet_by_mixer", "summarize",
           "markdown_table", "metrics_table", "engineer_mixer", "every_mixer", "feature_metrics", "PERTURBATIONS", "BLIND_RELATIVE", "perturb", "meta_evaluate", "meta_summary", "meta_table", "check_targets",
           "ROLE_OF_NAME", "item_example", "evaluate_items", "table_rows", "MIXING_RESULTS_FILE"]

MIXERS = ("mono", "random", "knowledge", "knowledge (gain, pan)", "engineer (gain, pan)")
"""Reference mixers of :func:`baseline_mixer`. The last copies the engineer's own gains and pans with everything else
neutral. It is not a bound for gain-and-pan mixers: the engineer's faders were set for its whole chain (EQ, compression
with make-up gain, reverb), so a model that sets its own gains can beat it (chapter 3.3)."""


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


def engineer_mixer(engineer: str = "punchy") -> Callable:
    """A mixer ``f(ex)`` that returns another engineer's stored mix of the same excerpt and its parameters (chapter
    4.1 scores the *punchy* engineer against the *natural* one)."""
    def run(ex):
        song = ex["entry"]["id"]
        return data.reproduce_mix(song, engineer)[None, :, : ex["target"].shape[-1]], data.mix_params(song, engineer)

    return run


def every_mixer(task: str, random_draws: int = 5, engineers: Sequence[str] = ("punchy",)) -> dict:
    """Every mixer of the book for a task: the baselines (mono, random with ``random_draws`` seeds, knowledge),
    the other engineers' stored mixes and every bundled mixing model (DMC, Mix-Wave-U-Net) trained on ``task``
    (``automix_lite.pretrained``; the style-transfer models need a reference and are not mixers).
    Taught in ``notebooks/15_objective_evaluation.ipynb``."""
    from . import pretrained

    mixers = {"mono": baseline_mixer("mono"), "random": baseline_mixer("random", random_draws),
              "knowledge": baseline_mixer("knowledge")}
    mixers.update({f"engineer: {e}": engineer_mixer(e) for e in engineers})
    for name in pretrained.available(kind="mixer", task=task):  # not the style models (they need a reference)
        mixers[name] = model_mixer(pretrained.load(name))
    return mixers


def feature_metrics(sample_rate: int = data.SAMPLE_RATE, stereo: bool = False) -> dict:
    """The metrics of chapter 4.1 for :func:`evaluate` and :func:`meta_evaluate`: the MAPE of the four feature
    groups (``"spectral MAPE"`` ..., one feature computation per mix, :func:`automix_lite.features.feature_mape`)
    and ``"MR-STFT"`` (:class:`automix_lite.losses.MRSTFTLoss` over both channels); with ``stereo``, also the
    ``"stereo loss"`` after loudness matching (:func:`automix_lite.metrics.matched_stereo_loss`)."""
    from . import features
    from .losses import MRSTFTLoss

    mrstft = MRSTFTLoss()
    fns = {"features": lambda y, r: {f"{g} MAPE": v for g, v in features.feature_mape(y, r, sample_rate)["groups"].items()},
           "MR-STFT": lambda y, r: float(mrstft(y, r))}
    if stereo:
        fns["stereo loss"] = lambda y, r: metrics.matched_stereo_loss(y, r, sample_rate)
    return fns


def _metric_values(fns, y, target) -> dict:
    """``{name: float}`` of metric functions; a function that returns a mapping gives several named values."""
    out = {}
    for name, fn in (fns or {}).items():
        value = fn(y, target)
        if isinstance(value, Mapping):
            out.update({str(k): float(v) for k, v in value.items()})
        else:
            out[name] = float(value)
    return out


def _score(y, params, ex, loss, extra=None) -> dict:
    row = {"stereo": metrics.matched_stereo_loss(y, ex["target"], data.SAMPLE_RATE, loss)}
    row.update(_metric_values(extra, y, ex["target"]))
    if params is not None and ex["params"] is not None and "gain_db" in params and "pan" in params:
        m = ex["mask"][0]
        sub = lambda p: {k: p[k][:, m] for k in ("gain_db", "pan")}  # noqa: E731 - audible tracks only
        row["gain_db"] = metrics.gain_error_db(sub(params), sub(ex["params"]))
        row["pan"] = metrics.pan_error(sub(params), sub(ex["params"]))
    return row


def evaluate(mixers: Mapping[str, Callable], task: str = "songs", split: str = "test", seconds: Optional[float] = 8.0,
             engineer: str = "natural", songs: Optional[int] = None, extra: Optional[Mapping[str, Callable]] = None,
             embed: Optional[Callable] = None) -> list:
    """Rows ``{"mixer", "task", "song", "stereo", ["gain_db", "pan"], ...}``, one per song and mixer.

    ``mixers``: name -> ``f(ex)`` (see :func:`baseline_mixer`, :func:`model_mixer`); ``songs`` limits the
    number of songs (first ones in manifest order). ``extra``: more metrics, name -> ``f(mix (1, 2, T), target
    (1, 2, T)) -> float``, or a mapping of several named values (chapter 4.1 adds the feature MAPE groups from
    one feature computation, and MR-STFT). ``embed(mix) -> vector``: each
    row also holds ``"embedding"`` of the mix and ``"target_embedding"`` of the engineer's, for
    :func:`frechet_by_mixer`. A mixer that returns several mixes (``"random"``) is scored by their mean (its
    embedding is the first draw's).
    """
    from .losses import StereoLoss

    loss = StereoLoss()
    entries = data.songs(task, split)[:songs]
    rows = []
    for entry in entries:
        ex = excerpt(entry["id"], seconds, engineer)
        target_embedding = embed(ex["target"]) if embed is not None else None
        for name, fn in mixers.items():
            row = _run_and_score(fn, ex, loss, extra, embed)
            if embed is not None:
                row["target_embedding"] = target_embedding
            rows.append({"mixer": name, "task": task, "song": entry["id"], **row})
    return rows


def _run_and_score(fn, ex, loss, extra=None, embed=None) -> dict:
    """One mixer on one example: its scores (the mean over the draws of a mixer that returns several mixes) and,
    with ``embed``, the ``"embedding"`` of its (first) mix."""
    with torch.no_grad():
        y, params = fn(ex)
    if isinstance(y, list):
        scores = [_score(a, b, ex, loss, extra) for a, b in zip(y, params)]
        row = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
    else:
        row = _score(y, params, ex, loss, extra)
    if embed is not None:
        row["embedding"] = embed(y[0] if isinstance(y, list) else y)
    return row


ROLE_OF_NAME = {"hi-hat": "hihat", "vocals": "lead", "other": "keys", "drum set": "drums", "electric bass": "bass",
                "double bass": "bass", "male singer": "lead", "female singer": "lead", "vocalists": "lead",
                "piano": "keys", "electric piano": "keys", "synthesizer": "pad", "acoustic guitar": "guitar",
                "clean electric guitar": "guitar", "distorted electric guitar": "guitar"}
"""Track names of the real sets (ENST-drums microphones, MUSDB18-HQ / DSD100 sources, common MedleyDB instruments)
-> the bundled roles the knowledge-based mixer knows; a name not here is used lower-cased as it is."""


def item_example(item: Mapping) -> dict:
    """The example dict of this module's mixers for one item of a real-set loader (``automix_lite.data``:
    ``ENSTDrums``, ``MedleyDB``, ``MUSDB18HQ``, ``DSD100``; taught in ``notebooks/23_real_data_lab.ipynb``):
    ``tracks (1, K, T)`` the item's K real tracks, ``mask`` the audible ones (-60 dBFS, chapter 2.2), ``target
    (1, 2, T)`` the item's own mix, ``roles`` from :data:`ROLE_OF_NAME`, no ``params`` and no tempo (a real set
    has neither, so only audio metrics apply and the knowledge-based mixer uses its default reverb timing)."""
    missing = [k for k in ("tracks", "mask", "mix", "names", "song") if k not in item]
    if missing:
        raise ValueError(f"a loader item needs the keys tracks, mask, mix, names and song; {missing} missing "
                         "(items of automix_lite.data.ENSTDrums, MedleyDB, MUSDB18HQ and DSD100 have them).")
    tracks, mix_ = torch.as_tensor(item["tracks"]), torch.as_tensor(item["mix"])
    k = int(torch.as_tensor(item["mask"]).sum())
    if tracks.dim() != 2 or not 1 <= k <= tracks.shape[0] or len(item["names"]) != k:
        raise ValueError(f"item {item['song']!r}: tracks must be (max_tracks, T) with mask.sum() real rows, one name "
                         f"each; got tracks {tuple(tracks.shape)}, {k} real rows and {len(item['names'])} names.")
    if mix_.shape != (2, tracks.shape[-1]):
        raise ValueError(f"item {item['song']!r}: the mix must be stereo (2, T) with the tracks' T = "
                         f"{tracks.shape[-1]}; got {tuple(mix_.shape)}.")
    x = tracks[None, :k].float()
    roles = [ROLE_OF_NAME.get(str(n).lower(), str(n).lower()) for n in item["names"]]
    return {"tracks": x, "mask": active_mask(x), "target": mix_[None].float(), "params": None, "roles": roles,
            "entry": {"id": item["song"], "tempo": None}}


def evaluate_items(mixers: Mapping[str, Callable], items: Sequence[Mapping], task: str = "real",
                   extra: Optional[Mapping[str, Callable]] = None) -> list:
    """Rows like :func:`evaluate`'s, for items of a real-set loader (:func:`item_example`) scored against each
    item's own mix: ``{"mixer", "task", "song", "stereo", ...}`` (no ``gain_db`` / ``pan``: a real set stores
    no console settings), ready for :func:`summarize`. ``mixers`` as for :func:`evaluate`, except those that
    need the stored parameters (``"engineer (gain, pan)"``, :func:`engineer_mixer`)."""
    from .losses import StereoLoss

    loss = StereoLoss()
    rows = []
    for item in items:
        ex = item_example(item)
        rows += [{"mixer": name, "task": task, "song": item["song"], **_run_and_score(fn, ex, loss, extra)}
                 for name, fn in mixers.items()]
    return rows


def frechet_by_mixer(rows: list, frechet: Callable) -> dict:
    """``{(task, mixer): distance}``: ``frechet(a (N, D), b (N, D))`` between the embeddings of a mixer's mixes of
    the N songs of a task and those of the engineer's mixes of the same songs (rows of :func:`evaluate` with
    ``embed``). A distance between two *sets*: one number per mixer and task, no interval."""
    import numpy as np

    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["mixer"]), []).append(r)
    return {key: float(frechet(np.stack([np.asarray(r["embedding"]) for r in rs]),
                               np.stack([np.asarray(r["target_embedding"]) for r in rs])))
            for key, rs in groups.items()}


_ROW_KEYS = ("mixer", "task", "song", "embedding", "target_embedding")


def summarize(rows: list) -> dict:
    """``{(task, mixer): {metric: (mean, ci95 half-width, n)}}`` over songs (Student t; 0 for a single song), for
    every metric of the rows (``stereo``, ``gain_db``, ``pan`` and any ``extra`` ones of :func:`evaluate`)."""
    from scipy import stats

    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["mixer"]), []).append(r)
    names = list(dict.fromkeys(k for r in rows for k in r if k not in _ROW_KEYS))
    out = {}
    for key, rs in groups.items():
        out[key] = {}
        for metric in names:
            v = torch.tensor([r[metric] for r in rs if metric in r], dtype=torch.float64)
            if len(v) == 0:
                continue
            half = float(stats.t.ppf(0.975, len(v) - 1) * v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0
            out[key][metric] = (float(v.mean()), half, len(v))
    return out


def check_targets(scores: Mapping[str, Mapping], mixer: str) -> list:
    """The bar chapter 2.2 (``notebooks/07_baselines.ipynb``) sets for a learned mixer, checked on one task's
    scores ``{mixer: {metric: (mean, ...)}}`` (``{m: summary[(task, m)]}`` of :func:`summarize`, or a bundled
    checkpoint's ``metrics["test"]``): a stereo loss at least 30 % below the mono sum and the random mix and below
    the knowledge mixer; where the mixer has parameters, a gain error within 2 dB and a pan error within 0.1.
    Returns one ``{"target", "metric", "base", "value", "limit", "unit", "met"}`` per target: ``metric`` the score
    checked, ``base`` the baseline a stereo-loss target is measured against (``None`` for the parameter targets),
    ``value`` and ``limit`` in ``unit`` (``"dB"`` for the gain error, ``""`` otherwise)."""
    if mixer not in scores:
        raise ValueError(f"no scores for {mixer!r}; scored mixers: {sorted(scores)}")
    mine = scores[mixer]
    out = []
    for base, factor, words in (("mono", 0.7, "at least 30 % below the mono sum"),
                                ("random", 0.7, "at least 30 % below the random mix"),
                                ("knowledge", 1.0, "below the knowledge mixer")):
        if base in scores:
            limit = factor * scores[base]["stereo"][0]
            out.append({"target": f"stereo loss {words}", "metric": "stereo", "base": base, "value": mine["stereo"][0],
                        "limit": limit, "unit": "", "met": mine["stereo"][0] < limit})
    for metric, limit, unit, words in (("gain_db", 2.0, "dB", "gain error within 2 dB"),
                                       ("pan", 0.1, "", "pan error within 0.1")):
        if metric in mine:
            out.append({"target": words, "metric": metric, "base": None, "value": mine[metric][0], "limit": limit,
                        "unit": unit, "met": mine[metric][0] <= limit})
    return out


def metrics_table(summary: dict, task: str, columns: Sequence[str], frechet: Optional[Mapping] = None,
                  digits: int = 2) -> str:
    """A markdown table of one task: one row per mixer, a column per metric (``mean ± ci``; ``–`` where a mixer
    has none), and, with ``frechet`` (:func:`frechet_by_mixer`), a last column of Fréchet distances."""
    mixers = [m for t, m in summary if t == task]
    head = ["mixer", *columns] + (["Fréchet"] if frechet else [])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in mixers:
        s = summary[(task, m)]
        cells = [f"{s[c][0]:.{digits}f} ± {s[c][1]:.{digits}f}" if c in s else "–" for c in columns]
        if frechet:
            cells.append(f"{frechet[(task, m)]:.{digits}f}" if (task, m) in frechet else "–")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


MIXING_RESULTS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                                   "MIXING_RESULTS.md")
"""The committed table of :func:`markdown_table` for the bundled models (``tools/train_bundled.py`` writes it; an
installed wheel ships no benchmarks)."""


def table_rows(text: str) -> dict:
    """The rows of a :func:`markdown_table` in ``text``: mixer -> its cells (strings such as ``"2.35 ± 0.59"`` or
    ``"–"``), header and rule left out. Used by ``tools/train_bundled.py --check`` and
    ``notebooks/12_models.ipynb``."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("Mixer",) and not set(cells[0]) <= set("-"):
            rows[cells[0]] = cells[1:]
    return rows


# ------------------------------------------------------------------------------------------------
# Meta-evaluation: how each metric tracks a controlled change of the engineer's settings (chapter 4.1)
# ------------------------------------------------------------------------------------------------

PERTURBATIONS = {
    "gain": ((0.0, 1.0, 2.0, 4.0, 8.0), "dB", "every track's fader moved up or down by the amount (random signs)"),
    "pan": ((0.0, 0.05, 0.1, 0.2, 0.4), "", "every track's pan moved left or right by the amount (clipped to 0-1)"),
    "eq": ((0.0, 3.0, 6.0, 9.0, 12.0), "dB", "every peaking band's gain raised or cut by the amount (random signs)"),
    "compressor": ((0.0, 6.0, 12.0, 18.0, 24.0), "dB",
                   "every compressor's threshold lowered by the amount (tracks the engineer compresses)"),
    "reverb": ((0.0, 3.0, 6.0, 12.0, 18.0), "dB", "every reverb send raised by the amount (sends that are on)"),
}
"""Controlled changes of an engineer's console settings: kind -> (amounts, unit, what changes). Amount 0 is the
engineer's own mix."""


def perturb(params: Mapping, kind: str, amount: float, generator: Optional[torch.Generator] = None):
    """The engineer's settings ``params`` (a batch-1 :class:`automix_lite.parameters.MixParams` of the full console)
    changed by ``amount`` of one :data:`PERTURBATIONS` ``kind``; values stay inside the parameter table's ranges.
    The random signs (gain, pan, EQ) come from ``generator``, so the same generator state gives the same change
    at every amount: the amounts of one song differ only in size. Taught in ``notebooks/15_objective_evaluation.ipynb``.
    """
    from .parameters import SPEC_BY_NAME, as_params

    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}.")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not math.isfinite(amount) or amount < 0:
        raise ValueError(f"amount must be a finite number >= 0; got {amount!r}.")
    p = as_params(params)
    if p.console != "full" or set(p) != set(SPEC_BY_NAME):
        raise ValueError(f"perturb needs every parameter of the full console (an engineer's mix, data.mix_params); "
                         f"these are {p.console} parameters {sorted(p)}.")

    def clip(name, v):
        spec = SPEC_BY_NAME[name]
        return v.clamp(spec.low, spec.high)

    def signs(shape):
        return torch.randint(0, 2, shape, generator=generator).to(p["gain_db"].dtype) * 2 - 1

    if kind == "gain":
        return p.replace(gain_db=clip("gain_db", p["gain_db"] + amount * signs(p["gain_db"].shape)))
    if kind == "pan":
        return p.replace(pan=clip("pan", p["pan"] + amount * signs(p["pan"].shape)))
    if kind == "eq":
        return p.replace(peak_gain_db=clip("peak_gain_db", p["peak_gain_db"] + amount * signs(p["peak_gain_db"].shape)))
    if kind == "compressor":
        on = (p["ratio"] > 1.0 + 1e-6).to(p["threshold_db"].dtype)
        return p.replace(threshold_db=clip("threshold_db", p["threshold_db"] - amount * on))
    on = (p["reverb_send_db"] > SPEC_BY_NAME["reverb_send_db"].low + 1e-6).to(p["reverb_send_db"].dtype)
    return p.replace(reverb_send_db=clip("reverb_send_db", p["reverb_send_db"] + amount * on))


def meta_evaluate(metrics_fns: Mapping[str, Callable], songs: Optional[Sequence[str]] = None,
                  kinds: Sequence[str] = tuple(PERTURBATIONS), seconds: float = 8.0, engineer: str = "natural",
                  seed: int = 0, embed: Optional[Callable] = None, repeats: int = 1,
                  amounts: Optional[Mapping[str, Sequence[float]]] = None) -> dict:
    """Score controlled changes of the engineer's mixes with every metric (chapter 4.1's meta-evaluation).

    For each song (default: every TEST song and drum passage), kind and amount of :data:`PERTURBATIONS`, the
    perturbed settings are rendered with the console (:func:`automix_lite.dsp.mix`, the first ``seconds``) and
    each metric ``metrics_fns[name](mix, reference) -> float`` (both ``(1, 2, T)``; or a mapping of several named
    values) compares the result with the engineer's own mix. ``embed(mix) -> (D,)`` (optional) embeds every mix for the set-level Fréchet distance.
    ``repeats``: draws of the random signs per amount (each a row; with more than one, a metric must track the
    size of the change whatever its direction). ``amounts``: kind -> amounts, to use fewer (e.g. in fast mode).
    Returns ``{"rows": [{"song", "kind", "amount", "draw", metric: value, ...}], "embeddings": {(kind, amount):
    {song: vector}}, "references": {song: vector}}`` (embeddings of the first draw).
    """
    from .parameters import as_params

    if songs is None:
        songs = [e["id"] for task in ("songs", "drums") for e in data.songs(task, "test")]
    bad = [k for k in kinds if k not in PERTURBATIONS]
    if bad:
        raise ValueError(f"unknown perturbation(s) {bad}; choose among {', '.join(PERTURBATIONS)}.")
    rows, embeddings, references = [], {}, {}
    for i, song_id in enumerate(songs):
        ex = excerpt(song_id, seconds, engineer)
        x, m = ex["tracks"], ex["mask"]
        params = as_params(ex["params"], "full")
        with torch.no_grad():
            ref = mix(x, data.SAMPLE_RATE, params, mask=m)
        if embed is not None:
            references[song_id] = embed(ref)
        for k, kind in enumerate(kinds):
            for amount in (amounts or {}).get(kind, PERTURBATIONS[kind][0]):
                for draw in range(repeats):
                    # the same signs at every amount of a draw: the amounts differ only in size
                    g = torch.Generator().manual_seed(seed * 1_000_003 + i * 1009 + k * 31 + draw)
                    with torch.no_grad():
                        y = mix(x, data.SAMPLE_RATE, perturb(params, kind, float(amount), g), mask=m)
                    rows.append({"song": song_id, "kind": kind, "amount": float(amount), "draw": draw,
                                 **_metric_values(metrics_fns, y, ref)})
                    if embed is not None and draw == 0:
                        embeddings.setdefault((kind, float(amount)), {})[song_id] = embed(y)
    return {"rows": rows, "embeddings": embeddings, "references": references}


BLIND_RELATIVE = 0.1
"""A metric is *blind* to a kind of change when its response to the largest amount is below this share of its
response to the change it sees most (or when its rank correlation's interval contains 0)."""


def meta_summary(result: dict, frechet: Optional[Callable] = None, n_boot: int = 200, seed: int = 0) -> dict:
    """What each metric sees of each kind of change: ``{(metric, kind): {"rho", "low", "high", "n", "response",
    "relative", "blind"}}``.

    - ``rho``: Spearman's rank correlation between the amount and the metric's value, per song over the amounts
      (and draws), averaged over the ``n`` songs; ``low``/``high``: its 95 % interval (Student t over songs). Does
      the metric grow with the change at all?
    - ``response``: the metric's mean value at the largest amount of the kind; ``relative``: that response divided
      by the metric's largest response over the kinds. How much does it move, compared with the change it sees
      most? (A metric's own scale cancels, so metrics can be compared.)
    - ``blind``: ``relative`` below :data:`BLIND_RELATIVE`, or an interval of ``rho`` that contains 0.

    With ``frechet(a (N, D), b (N, D)) -> float`` and the embeddings of :func:`meta_evaluate`, the set-level Fréchet
    distance between the perturbed mixes and the references is computed per amount over all songs; its rho over
    the amounts has an interval from ``n_boot`` bootstrap resamples of the songs. Taught in
    ``notebooks/15_objective_evaluation.ipynb``.
    """
    import numpy as np
    from scipy import stats

    rows = result["rows"]
    metric_names = [k for k in rows[0] if k not in ("song", "kind", "amount", "draw")] if rows else []
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    out = {}
    for kind in kinds:
        top = max(r["amount"] for r in rows if r["kind"] == kind)
        for name in metric_names:
            rhos = []
            for song in dict.fromkeys(r["song"] for r in rows):
                a, v = zip(*[(r["amount"], r[name]) for r in rows if r["kind"] == kind and r["song"] == song])
                rhos.append(0.0 if np.ptp(v) == 0 else float(stats.spearmanr(a, v)[0]))  # a flat metric: no order
            r = np.asarray(rhos)
            half = float(stats.t.ppf(0.975, len(r) - 1) * r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0.0
            response = float(np.mean([x[name] for x in rows if x["kind"] == kind and x["amount"] == top]))
            out[(name, kind)] = {"rho": float(r.mean()), "low": float(r.mean() - half), "high": float(r.mean() + half),
                                 "n": len(r), "response": response}
    if frechet is not None and result.get("embeddings"):
        songs = list(result["references"])
        ref = np.stack([np.asarray(result["references"][s]) for s in songs])
        rng = np.random.default_rng(seed)
        for kind in dict.fromkeys(k for k, _ in result["embeddings"]):
            amounts = sorted(a for k, a in result["embeddings"] if k == kind)
            sets = [np.stack([np.asarray(result["embeddings"][(kind, a)][s]) for s in songs]) for a in amounts]

            def distances(idx):
                return [frechet(sset[idx], ref[idx]) for sset in sets]

            def rho(d):
                return 0.0 if np.ptp(d) == 0 else float(stats.spearmanr(amounts, d)[0])

            d = distances(np.arange(len(songs)))
            boot = [rho(distances(rng.integers(0, len(songs), len(songs)))) for _ in range(n_boot)]
            lo, hi = np.percentile(boot, [2.5, 97.5]) if boot else (rho(d), rho(d))
            out[("Fréchet", kind)] = {"rho": rho(d), "low": float(lo), "high": float(hi), "n": len(songs),
                                      "response": float(d[-1])}
    for name in dict.fromkeys(m for m, _ in out):
        most = max(abs(v["response"]) for (m, _), v in out.items() if m == name)
        for (m, k), v in out.items():
            if m == name:
                v["relative"] = abs(v["response"]) / most if most > 0 else 0.0
                v["blind"] = v["relative"] < BLIND_RELATIVE or v["low"] <= 0 <= v["high"]
    return out


def meta_table(summary: dict) -> str:
    """A markdown table: one row per metric, one column per kind of change: ``rho [low, high]`` and the relative
    response in percent; a *blind* metric is marked so (:func:`meta_summary`)."""
    metric_names = list(dict.fromkeys(m for m, _ in summary))
    kinds = list(dict.fromkeys(k for _, k in summary))
    lines = ["| metric | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name in metric_names:
        cells = []
        for kind in kinds:
            v = summary.get((name, kind))
            if v is None:
                cells.append("–")
                continue
            cells.append(f"{v['rho']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}], {100 * v['relative']:.0f} %"
                         + (" *blind*" if v["blind"] else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
