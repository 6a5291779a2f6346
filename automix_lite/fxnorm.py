"""FX normalization of wet stems (chapter 5.3, taught in ``notebooks/19_fx_representations.ipynb``).

After Martinez-Ramirez et al. (ISMIR 2022, ``martinez2022fxnorm``): processed ("wet") stems are common, dry
multitracks with mixes are rare. Measure the average effect-related features of every instrument role on the
training stems, move any stem's features towards its role's averages, and a mixer can learn from wet stems.
On the bundled set the wet stems are the engineer's (:func:`automix_lite.data.wet_stems_of`), so the processing
to undo is known exactly.

Features of a stereo stem ``(2, T)`` (:func:`stem_features`, computed on the whole stem):

- ``spectrum``: the average power spectrum of the mid ``(L + R) / 2`` in :data:`N_BANDS` log-spaced bands from
  40 Hz to 16 kHz, dB relative to its mean over the bands (the shape of the spectrum; the level is below);
- ``loudness``: integrated loudness (LUFS, ITU-R BS.1770 via :func:`automix_lite.audio.loudness_lufs`);
- ``crest_db``: crest factor of the mid (peak over RMS, dB); ``lra_db``: its loudness range
  (:func:`automix_lite.audio.level_range_db` over 400 ms frames, 10th to 95th percentile);
- ``pan``: stereo position from the L/R energies, ``atan2(rms_R, rms_L) / (pi / 2)`` (0 left, 0.5 centre, 1 right);
- ``decorrelation``: ``1 - corr(L, R)`` at lag 0. A panned mono source has correlation 1 whatever its pan; the
  console's reverb bus has two decorrelated IRs, so this measures the *share of reverb* in a stem (not its decay
  time, which cannot be told apart from the source's own decay on stems this short).

:func:`normalize` applies, in order: centring (the mono mid, so pan 0.5 and decorrelation 0), EQ matching towards
the role's average spectrum (a smoothed, zero-phase gain curve limited to +-:data:`MAX_EQ_DB`), the compressor or
expander (from a small grid, one batched pass) that brings crest factor and loudness range closest to the role's,
and loudness to the role's average. Reverb is *not* removed: it stays in the mid.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from typing import Mapping, Optional

import numpy as np
import torch

from . import audio
from .dsp.dynamics import compressor, expander

__all__ = ["N_BANDS", "FEATURES", "stem_features", "role_averages", "normalize", "distances",
           "evaluate_three_way", "results_table", "read_results", "RESULTS_JSON"]

VERSION = 1  # bump when normalize changes, to invalidate cached FX-normalised stems
N_BANDS = 24
BAND_EDGES = np.geomspace(40.0, 16000.0, N_BANDS + 1)
MAX_EQ_DB = 12.0
FEATURES = ("spectrum", "loudness", "crest_db", "lra_db", "pan", "decorrelation")
SILENCE_DB = -70.0  # a stem whose RMS is below this (dBFS) is returned unchanged by normalize
RESULTS_JSON = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "fxnorm_results.json")
_DYNAMICS = [("none", 1.0), ("compressor", 2.0), ("compressor", 4.0), ("expander", 1.5)]


def _stereo(stem, name: str = "stem") -> torch.Tensor:
    if not isinstance(stem, torch.Tensor):
        stem = torch.as_tensor(np.asarray(stem, dtype=np.float32))
    if stem.ndim != 2 or stem.shape[0] not in (1, 2):
        raise ValueError(f"{name} must be (1, samples) or (2, samples); got shape {tuple(stem.shape)}.")
    if not bool(torch.isfinite(stem).all()):
        raise ValueError(f"{name} contains NaN or inf samples.")
    return stem.float().expand(2, -1) if stem.shape[0] == 1 else stem.float()


def _bands(mid: torch.Tensor, sr: float) -> np.ndarray:
    spec = torch.stft(mid, 4096, 1024, window=torch.hann_window(4096), return_complex=True).abs().pow(2).mean(-1)
    freqs = np.fft.rfftfreq(4096, 1.0 / sr)
    power = spec.double().numpy()
    out = np.array([power[(freqs >= lo) & (freqs < hi)].mean() if ((freqs >= lo) & (freqs < hi)).any() else 0.0
                    for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])])
    db = 10 * np.log10(out + 1e-20)
    return db - db.mean()


def stem_features(stem, sample_rate) -> dict:
    """The features of the module docstring of one stem ``(2, T)`` (or mono ``(1, T)``), at least 0.4 s long."""
    x = _stereo(stem).double()
    mid = (x[0] + x[1]) / 2
    rms = float(mid.pow(2).mean().sqrt())
    el, er = float(x[0].pow(2).mean().sqrt()), float(x[1].pow(2).mean().sqrt())
    cross = float((x[0] * x[1]).mean())
    return {"spectrum": _bands(mid.float(), sample_rate),
            "loudness": float(audio.loudness_lufs(x[None].float(), sample_rate)[0]),
            "crest_db": 20 * math.log10(float(mid.abs().max()) / max(rms, 1e-12) + 1e-12),
            "lra_db": float(audio.level_range_db(mid[None].float(), sample_rate, 400.0, 100.0, (10.0, 95.0))),
            "pan": math.atan2(er, el) / (math.pi / 2),
            "decorrelation": 1.0 - cross / max(el * er, 1e-20)}


def _average(rows: list) -> dict:
    return {k: (np.mean([r[k] for r in rows], 0).tolist() if k == "spectrum" else float(np.mean([r[k] for r in rows])))
            for k in FEATURES}


@functools.lru_cache(maxsize=8)
def _role_averages(task: str, split: str, engineer: str) -> str:
    from . import data

    sums = data.manifest().get("checksums", {})
    key = hashlib.sha256(json.dumps([VERSION, task, split, engineer, sorted(sums.items())]).encode()).hexdigest()[:16]
    path = os.path.join(data.cache_dir(), "fxnorm", f"averages.{task}.{split}.{engineer}.{key}.json")
    if os.path.isfile(path):
        with open(path) as f:
            return f.read()
    by_role = {}
    for entry in data.songs(task, split):
        wet = data.wet_stems_of(entry["id"], engineer)
        for role, stem in zip((t["role"] for t in entry["tracks"]), wet):
            if 20 * math.log10(float(stem.pow(2).mean().sqrt()) + 1e-20) > SILENCE_DB:
                by_role.setdefault(role, []).append(stem_features(stem, data.SAMPLE_RATE))
    text = json.dumps({role: {**_average(rows), "count": len(rows)} for role, rows in sorted(by_role.items())})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.{os.getpid()}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.{os.getpid()}.tmp", path)
    return text


def role_averages(task: str = "songs", split: str = "train", engineer: str = "natural") -> dict:
    """``{role: {feature: mean, "count": stems}}`` over the wet stems (``engineer``'s) of ``task``'s ``split``.

    ``spectrum`` is a list of :data:`N_BANDS` dB values, the others floats (see :func:`stem_features`). Silent
    stems are left out. Computed once and cached as JSON under :func:`automix_lite.data.cache_dir` (a fresh copy each
    call)."""
    return json.loads(_role_averages(task, split, engineer))


def _role(role: str, averages: Mapping) -> Mapping:
    if not isinstance(averages, Mapping) or role not in averages:
        known = ", ".join(sorted(averages)) if isinstance(averages, Mapping) else "none"
        raise ValueError(f"unknown role {role!r}: the averages have {known} (see fxnorm.role_averages()).")
    return averages[role]


def _eq_match(mid: torch.Tensor, sr: float, target_db: np.ndarray) -> torch.Tensor:
    delta = np.asarray(target_db) - _bands(mid, sr)
    delta = np.convolve(np.pad(delta, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")  # smoothed over 3 bands
    delta = np.clip(delta - delta.mean(), -MAX_EQ_DB, MAX_EQ_DB)  # shape only: the level is set by loudness
    centres = np.sqrt(BAND_EDGES[:-1] * BAND_EDGES[1:])
    freqs = np.fft.rfftfreq(mid.shape[-1], 1.0 / sr)
    curve = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(centres), delta)  # flat beyond the outer bands
    gain = torch.from_numpy(10 ** (curve / 20)).to(torch.complex64)
    return torch.fft.irfft(torch.fft.rfft(mid) * gain, n=mid.shape[-1])


def _dynamics(mid: torch.Tensor, sr: float, target: Mapping) -> torch.Tensor:
    rms_db = 20 * math.log10(float(mid.pow(2).mean().sqrt()) + 1e-12)
    thr = min(0.0, max(-80.0, rms_db))
    x = mid[None, None]
    comp = [k for k, _ in enumerate(_DYNAMICS) if _DYNAMICS[k][0] == "compressor"]
    exp = [k for k, _ in enumerate(_DYNAMICS) if _DYNAMICS[k][0] == "expander"]
    outs = [x[0]]
    outs += list(compressor(x.expand(len(comp), 1, -1), sr, thr, torch.tensor([_DYNAMICS[k][1] for k in comp]), 5.0, 100.0))
    outs += list(expander(x.expand(len(exp), 1, -1), sr, thr, torch.tensor([_DYNAMICS[k][1] for k in exp]), 5.0, 100.0,
                          range_db=24.0))

    def cost(y):
        y = y[0]
        crest = 20 * math.log10(float(y.abs().max()) / max(float(y.pow(2).mean().sqrt()), 1e-12) + 1e-12)
        lra = float(audio.level_range_db(y[None], sr, 400.0, 100.0, (10.0, 95.0), reference=mid[None]))
        return abs(crest - target["crest_db"]) + abs(lra - target["lra_db"])

    return min(outs, key=cost)[0]


def normalize(stem, sample_rate, role: str, averages: Mapping) -> torch.Tensor:
    """FX-normalise one stem ``(2, T)`` or ``(1, T)`` towards ``averages[role]``; returns a centred stereo ``(2, T)``.

    Centring (mono mid), EQ matching, dynamics (compressor or expander), loudness, as in the module docstring.
    A stem quieter than :data:`SILENCE_DB` dBFS RMS is returned unchanged (as stereo). ``ValueError`` for an unknown
    role, a wrong shape, NaN/inf samples or a stem shorter than 0.4 s (loudness needs one gating block).
    """
    x = _stereo(stem)
    target = _role(role, averages)
    if x.shape[-1] < audio.MIN_LOUDNESS_SECONDS * sample_rate:
        raise ValueError(f"stem has {x.shape[-1]} samples; FX normalization needs at least "
                         f"{audio.MIN_LOUDNESS_SECONDS} s (one loudness block).")
    mid = (x[0] + x[1]) / 2
    if 20 * math.log10(float(mid.pow(2).mean().sqrt()) + 1e-20) <= SILENCE_DB:
        return x.clone()
    with torch.no_grad():
        y = _eq_match(mid, sample_rate, target["spectrum"])
        y = _dynamics(y, sample_rate, target)
        y = audio.normalize_loudness(y[None, None].expand(1, 2, -1).contiguous(), sample_rate, min(0.0, target["loudness"]))[0]
    return y


def distances(task: str = "songs", split: str = "test", engineer: str = "natural", averages: Optional[Mapping] = None,
              songs: Optional[int] = None) -> dict:
    """How far stems land from their role averages and from the dry stems, per feature, before and after.

    Over the audible stems of ``split`` (``songs`` limits the number of songs): for each feature the mean absolute
    difference (spectrum: mean over bands, dB) of the wet stem and of its FX-normalised version to the role average
    (``"wet_to_average"``, ``"norm_to_average"``) and to the dry stem (as a centred stereo stem at its stored level;
    ``"wet_to_dry"``, ``"norm_to_dry"``). ``averages`` default to :func:`role_averages` of the train split."""
    from . import data

    averages = role_averages(task, "train", engineer) if averages is None else averages
    acc = {}
    for entry in data.songs(task, split)[:songs]:
        dry = data.load_song(entry["id"])["tracks"]
        wet, norm = data.wet_stems_of(entry["id"], engineer), data.wet_stems_of(entry["id"], engineer, fxnorm=True)
        for k, t in enumerate(entry["tracks"]):
            if 20 * math.log10(float(dry[k].pow(2).mean().sqrt()) + 1e-20) <= SILENCE_DB:
                continue
            f = {name: stem_features(s, data.SAMPLE_RATE) for name, s in (("dry", dry[k:k + 1]), ("wet", wet[k]),
                                                                          ("norm", norm[k]))}
            avg = averages[t["role"]]
            for feat in FEATURES:
                d = lambda a, b: float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))  # noqa: E731
                for key, a, b in (("wet_to_average", f["wet"][feat], avg[feat]), ("norm_to_average", f["norm"][feat], avg[feat]),
                                  ("wet_to_dry", f["wet"][feat], f["dry"][feat]), ("norm_to_dry", f["norm"][feat], f["dry"][feat])):
                    acc.setdefault(feat, {}).setdefault(key, []).append(d(a, b))
    return {feat: {key: float(np.mean(v)) for key, v in d.items()} | {"stems": len(d["wet_to_dry"])} for feat, d in acc.items()}


# --------------------------------------------------------------------------------------------
# The three-way experiment
# --------------------------------------------------------------------------------------------

INPUTS = ("dry", "wet", "fxnorm")


def _with_input(fn, kind: str, engineer: str):
    from . import data
    from .inference import active_mask

    def run(ex):
        if kind == "dry":
            return fn(ex)
        n = ex["tracks"].shape[-1]
        tracks = data.wet_stems_of(ex["entry"]["id"], engineer, kind == "fxnorm")[..., :n].mean(1)[None]
        return fn({**ex, "tracks": tracks, "mask": active_mask(tracks)})

    return run


def evaluate_three_way(models: Mapping, task: str = "songs", split: str = "test", seconds: Optional[float] = 8.0,
                       engineer: str = "natural", songs: Optional[int] = None) -> dict:
    """Score each model (name -> mixer, e.g. ``{"dry": dmc, "wet": ..., "fxnorm": ...}``) on ``split`` with the dry
    stems, with the engineer's wet stems and with the FX-normalised wet stems (each as the mono mid) as input, against
    the engineer's mix.

    Returns ``{"rows": evaluation rows, "summary": {(model, input): {metric: (mean, ci95, n)}}}`` via
    :func:`automix_lite.evaluation.evaluate` / :func:`~automix_lite.evaluation.summarize` (first ``seconds`` of every
    song). Gain and pan errors are against the engineer's parameters for the *dry* stems, so they mean something
    only for dry input (for the other inputs they are dropped)."""
    from . import evaluation

    mixers = {f"{name} | {kind}": _with_input(evaluation.model_mixer(m), kind, engineer)
              for name, m in models.items() for kind in INPUTS}
    rows = evaluation.evaluate(mixers, task, split, seconds, engineer, songs)
    for r in rows:
        if not r["mixer"].endswith("| dry"):
            r.pop("gain_db", None), r.pop("pan", None)
    summary = {tuple(mixer.split(" | ")): v for (_, mixer), v in evaluation.summarize(rows).items()}
    return {"rows": rows, "summary": summary}


def results_table(summary: Mapping) -> str:
    """A markdown table of :func:`evaluate_three_way`'s ``summary`` (or :func:`read_results`'s ``"summary"``):
    one row per training stems, stereo loss on dry, wet and FX-normalised wet input, gain and pan error on dry input."""
    def cell(m, kind, metric, digits):
        v = summary.get((m, kind), {}).get(metric)
        return "-" if v is None else f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"

    models = list(dict.fromkeys(m for m, _ in summary))
    lines = ["| trained on | stereo loss, dry input | stereo loss, wet input | stereo loss, FX-normalised wet input | "
             "gain error dB, dry input | pan error, dry input |", "|---|---|---|---|---|---|"]
    for m in models:
        lines.append(f"| {m} | {cell(m, 'dry', 'stereo', 3)} | {cell(m, 'wet', 'stereo', 3)} | {cell(m, 'fxnorm', 'stereo', 3)} | "
                     f"{cell(m, 'dry', 'gain_db', 2)} | {cell(m, 'dry', 'pan', 3)} |")
    return "\n".join(lines)


def read_results(path: Optional[str] = None) -> dict:
    """The committed results of ``benchmarks/fxnorm.py`` (``benchmarks/fxnorm_results.json``): ``{"summary":
    {(model, input): {metric: (mean, ci95, n)}}, "table": markdown, "distances", "claims", "runs" (config, steps,
    wall_s per model), "config", "machine", "evaluation_s"}``."""
    with open(path or RESULTS_JSON) as f:
        data = json.load(f)
    data["summary"] = {(r["model"], r["input"]): {k: tuple(v) for k, v in r["metrics"].items()} for r in data["summary"]}
    data["table"] = results_table(data["summary"])
    return data
