"""The seeded mix engineer behind the bundled target mixes (taught in ``notebooks/11_datasets.ipynb``).

An engineer is a set of conventions, one row per track role in ``ROLES``, applied with
:class:`automix_lite.dsp.MixingConsole`: a loudness target per role (the lead about 3 dB above the
loudest accompaniment), a pan position (kick, snare, bass and lead centred; keys, guitars, pads,
toms and overheads spread), a high-pass on everything but kick and bass, corrective EQ (cut the
"mud" at 250-500 Hz, add presence), compression on drums, bass and lead, and reverb sends on pads,
lead, snare and toms. Every song gets its own variation of these values, drawn from a seed.

``ENGINEERS`` holds two styles:

- ``"natural"``: gentle EQ, light compression, a hall-like reverb (T60 about 1.3-2.2 s, longer at
  slow tempos), moderate stereo width, drums panned from the drummer's perspective, master at
  -20 LUFS (about 14 dB of headroom between loudness and peak, like an unmastered mix).
- ``"punchy"``: stronger EQ (scooped mids, brighter top), heavier and faster compression, a short room
  (T60 about 0.5-1.0 s) with lower sends, a wider image, drums from the audience's perspective,
  master at -17 LUFS (drum mixes with strong transients stop short of it at the peak ceiling).

The gain of a track depends on how loud its stem is (``gain = target - stem loudness``), as a real
engineer's fader does; compressor thresholds sit relative to that target level. The master gain is
set last, from the loudness of the rendered mix, and lowered if the mix would peak above -1 dBFS.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..audio import _measure
from ..dsp.console import SPEC_BY_NAME, STRIP_NAMES, mix
from ..parameters import MixParams

__all__ = ["ENGINEERS", "ROLES", "engineer_params", "engineer_mix", "EngineerMixer", "engineer_style", "random_style",
           "engineer_styles", "style_params", "style_master_lufs", "styled_mix"]

SAMPLE_RATE = 44100
PEAK_CEILING_DB = -1.0

ENGINEERS = {
    "natural": dict(eq_scale=1.0, width=1.0, send_offset=0.0, t60=(1.3, 2.2), master_lufs=-20.0, perspective="drummer",
                    comp={"heavy": (3.0, 1.0), "medium": (2.2, 4.0), "light": (1.6, 7.0)}, knee=6.0,
                    attack_scale=1.0, makeup=0.4),
    "punchy": dict(eq_scale=1.7, width=1.35, send_offset=-6.0, t60=(0.5, 1.0), master_lufs=-17.0, perspective="audience",
                   comp={"heavy": (5.0, -3.0), "medium": (3.5, 0.0), "light": (2.5, 3.0)}, knee=3.0,
                   attack_scale=0.3, makeup=0.6),
}
"""Style -> EQ gain scale, stereo width, reverb send offset (dB), T60 range (s), master loudness (LUFS),
drum perspective, compression (ratio, threshold above the track's target level in dB) per amount,
knee (dB), attack scale and the fraction of the static gain reduction given back as make-up."""

# role -> level (LUFS after gain), pan (drummer/natural perspective), high-pass (Hz), low shelf (Hz, dB),
# three peaks (Hz, dB, Q), high shelf (Hz, dB), compression amount, attack (ms), release (ms), send (dB)
ROLES = {
    # songs task
    "drums": dict(level=-21, pan=0.5, hp=30, ls=(100, 1.5), peaks=((400, -2.5, 1.2), (2500, 1.0, 1.0), (6000, 1.5, 0.8)),
                  hs=(10000, 1.5), comp="medium", attack=20, release=120, send=-22),
    "bass": dict(level=-22, pan=0.5, hp=30, ls=(90, 2.0), peaks=((250, -3.0, 1.4), (800, 1.5, 1.2), (2000, 1.0, 1.0)),
                 hs=(8000, -2.0), comp="heavy", attack=10, release=150, send=-80),
    "keys": dict(level=-26, pan=0.30, hp=90, ls=(200, -1.0), peaks=((350, -2.0, 1.0), (1500, 1.0, 1.0), (5000, 1.5, 0.8)),
                 hs=(9000, 1.0), comp="light", attack=15, release=200, send=-18),
    "guitar": dict(level=-26, pan=0.72, hp=100, ls=(150, -1.5), peaks=((300, -2.0, 1.2), (2500, 2.0, 1.0), (6000, 1.0, 1.0)),
                   hs=(10000, 1.0), comp="medium", attack=10, release=150, send=-20),
    "pad": dict(level=-29, pan=0.62, hp=150, ls=(250, -2.0), peaks=((500, -2.0, 0.8), (2000, -1.0, 1.0), (7000, 1.0, 0.8)),
                hs=(10000, 2.0), comp=None, attack=30, release=300, send=-12),
    "arp": dict(level=-28, pan=0.36, hp=200, ls=(300, -1.0), peaks=((400, -2.0, 1.0), (3000, 1.5, 1.0), (8000, 1.0, 1.0)),
                hs=(11000, 1.0), comp="light", attack=10, release=120, send=-14),
    "counter": dict(level=-28, pan=0.30, hp=150, ls=(250, -1.0), peaks=((400, -2.0, 1.0), (2500, 1.5, 1.0), (7000, 1.0, 1.0)),
                    hs=(10000, 1.0), comp="light", attack=10, release=150, send=-16),
    "brass": dict(level=-26, pan=0.66, hp=120, ls=(200, -1.0), peaks=((300, -1.5, 1.0), (1200, 1.0, 1.0), (4000, 2.0, 1.0)),
                  hs=(10000, 1.0), comp="medium", attack=8, release=120, send=-16),
    "lead": dict(level=-18, pan=0.5, hp=150, ls=(200, -1.0), peaks=((400, -1.5, 1.0), (3000, 2.0, 1.0), (7000, 1.0, 1.0)),
                 hs=(11000, 1.5), comp="medium", attack=5, release=100, send=-14),
    # drums task (ENST-like microphones)
    "kick": dict(level=-22, pan=0.5, hp=25, ls=(60, 3.0), peaks=((70, 2.0, 1.4), (350, -5.0, 1.5), (4000, 3.0, 1.2)),
                 hs=(10000, 0.0), comp="medium", attack=20, release=100, send=-80),
    "snare": dict(level=-22, pan=0.5, hp=70, ls=(120, 0.0), peaks=((200, 2.0, 1.2), (900, -2.0, 1.5), (5000, 3.0, 1.0)),
                  hs=(10000, 2.0), comp="medium", attack=15, release=120, send=-16),
    "hihat": dict(level=-29, pan=0.32, hp=300, ls=(500, -2.0), peaks=((600, -2.0, 1.0), (3000, -1.0, 1.0), (9000, 1.5, 1.0)),
                  hs=(12000, 1.0), comp=None, attack=10, release=100, send=-28),
    "tom_1": dict(level=-25, pan=0.38, hp=60, ls=(120, 1.0), peaks=((150, 2.0, 1.2), (500, -3.0, 1.4), (4000, 2.0, 1.0)),
                  hs=(10000, 0.0), comp="light", attack=15, release=150, send=-18),
    "tom_2": dict(level=-25, pan=0.56, hp=50, ls=(100, 1.0), peaks=((120, 2.0, 1.2), (450, -3.0, 1.4), (4000, 2.0, 1.0)),
                  hs=(10000, 0.0), comp="light", attack=15, release=150, send=-18),
    "tom_3": dict(level=-24, pan=0.72, hp=40, ls=(80, 1.5), peaks=((90, 2.0, 1.2), (400, -3.0, 1.4), (3500, 2.0, 1.0)),
                  hs=(10000, 0.0), comp="light", attack=15, release=150, send=-18),
    "overhead_l": dict(level=-24, pan=0.12, hp=180, ls=(300, -2.0), peaks=((500, -2.0, 0.8), (3000, 0.0, 1.0), (10000, 2.0, 0.8)),
                       hs=(12000, 1.5), comp=None, attack=20, release=200, send=-20),
    "overhead_r": dict(level=-24, pan=0.88, hp=180, ls=(300, -2.0), peaks=((500, -2.0, 0.8), (3000, 0.0, 1.0), (10000, 2.0, 0.8)),
                       hs=(12000, 1.5), comp=None, attack=20, release=200, send=-20),
}
_DRUM_MICS = ("hihat", "tom_1", "tom_2", "tom_3", "overhead_l", "overhead_r")


def _clip(name: str, v: float) -> float:
    s = SPEC_BY_NAME[name]
    return float(min(max(v, s.low), s.high))


def engineer_params(roles: Sequence[str], stem_lufs: Sequence[float], style: str, seed: int,
                    tempo: Optional[float] = None) -> dict:
    """Console parameters (real units) an engineer of ``style`` chooses for one song.

    ``roles`` (N names from ``ROLES``) and ``stem_lufs`` (N integrated loudnesses of the dry stems)
    describe the tracks; ``seed`` draws this song's variation; ``tempo`` (bpm) lengthens the reverb at
    slow tempos. Returns a dict of float64 tensors: track-level ``(1, N)``, peak-level ``(1, N, 3)``,
    bus-level ``(1,)``, with ``master_gain_db`` = 0 (set it with :func:`engineer_mix`).
    """
    if style not in ENGINEERS:
        raise ValueError(f"unknown engineer {style!r}; choose one of {', '.join(ENGINEERS)}.")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown track role(s) {unknown}; the engineer knows {', '.join(ROLES)}.")
    if len(stem_lufs) != len(roles):
        raise ValueError(f"got {len(roles)} roles but {len(stem_lufs)} stem loudness values.")
    bad = [(r, v) for r, v in zip(roles, stem_lufs) if not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"stem loudness must be finite; got {bad} (a silent stem cannot be mixed by level).")
    rng = np.random.default_rng([int(seed), 101, list(ENGINEERS).index(style)])
    boost = {role: 1.0 for role in ("kick", "snare", "drums", "bass")} if style == "punchy" else {}
    return _style_rows(roles, stem_lufs, ENGINEERS[style], ROLES, boost, rng, tempo)


def _style_rows(roles, stem_lufs, e: dict, table: dict, boost: dict, rng, tempo) -> dict:
    """The engineer's rule book: console parameters of ``roles`` from the conventions ``e`` (an ``ENGINEERS``
    entry), the role table ``table`` (``ROLES`` or a variant), per-role level offsets ``boost`` (dB) and the
    song's variation drawn from ``rng`` (numpy), in a fixed order of draws."""
    song_level = rng.normal(0.0, 0.5)  # a song-wide trim

    def u(lo, hi):
        return float(rng.uniform(lo, hi))

    rows = []
    for role, lufs in zip(roles, stem_lufs):
        c = table[role]
        level = c["level"] + u(-1.5, 1.5) + song_level + boost.get(role, 0.0)
        pan = c["pan"]
        if e["perspective"] == "audience" and role in _DRUM_MICS:
            pan = 1.0 - pan
        pan = 0.5 + (pan - 0.5) * e["width"] + (u(-0.04, 0.04) if abs(pan - 0.5) > 0.01 else u(-0.01, 0.01))
        row = {
            "gain_db": level - float(lufs),
            "highpass_cutoff_hz": c["hp"] * 2 ** u(-0.3, 0.3),
            "low_shelf_gain_db": c["ls"][1] * e["eq_scale"] + u(-0.75, 0.75),
            "low_shelf_cutoff_hz": c["ls"][0] * 2 ** u(-0.25, 0.25),
            "peak_gain_db": [g * e["eq_scale"] + u(-1.0, 1.0) for _, g, _ in c["peaks"]],
            "peak_cutoff_hz": [f * 2 ** u(-0.3, 0.3) for f, _, _ in c["peaks"]],
            "peak_q": [q * 2 ** u(-0.3, 0.3) for _, _, q in c["peaks"]],
            "high_shelf_gain_db": c["hs"][1] * e["eq_scale"] + u(-0.75, 0.75),
            "high_shelf_cutoff_hz": c["hs"][0] * 2 ** u(-0.2, 0.2),
            "pan": pan,
            "reverb_send_db": -80.0 if c["send"] <= -80 else c["send"] + e["send_offset"] + u(-3.0, 3.0),
        }
        if c["comp"] is None:
            row.update(threshold_db=0.0, ratio=1.0, attack_ms=10.0, release_ms=100.0, knee_db=e["knee"], makeup_db=0.0)
        else:
            ratio, above = e["comp"][c["comp"]]
            ratio *= 2 ** u(-0.25, 0.25)
            threshold = level + above + u(-2.0, 2.0)
            # static gain reduction of a peak about 12 dB above the target level
            over = max(level + 12.0 - threshold, 0.0)
            row.update(threshold_db=threshold, ratio=ratio, attack_ms=c["attack"] * e["attack_scale"] * 2 ** u(-0.4, 0.4),
                       release_ms=c["release"] * 2 ** u(-0.4, 0.4), knee_db=e["knee"],
                       makeup_db=e["makeup"] * over * (1 - 1 / ratio) * 0.5)
        rows.append(row)
    t_lo, t_hi = e["t60"]
    t60 = u(t_lo, t_hi) * (math.sqrt(100.0 / tempo) if tempo else 1.0)
    params = {}
    for name in STRIP_NAMES:
        vals = [[_clip(name, v) for v in r[name]] if isinstance(r[name], list) else _clip(name, r[name]) for r in rows]
        params[name] = torch.tensor([vals], dtype=torch.float64)
    params["reverb_t60_s"] = torch.tensor([_clip("reverb_t60_s", t60)], dtype=torch.float64)
    params["reverb_return_db"] = torch.tensor([_clip("reverb_return_db", u(-1.0, 1.0))], dtype=torch.float64)
    params["master_gain_db"] = torch.tensor([0.0], dtype=torch.float64)
    return params


def engineer_mix(tracks: torch.Tensor, roles: Sequence[str], style: str, seed: int, tempo: Optional[float] = None,
                 sample_rate: int = SAMPLE_RATE, stem_lufs: Optional[Sequence[float]] = None):
    """Mix mono ``tracks`` ``(N, T)`` the way engineer ``style`` would: returns ``(mix (2, T), params)``.

    ``stem_lufs`` (N values) defaults to measuring each track. The master gain brings the mix to the
    style's loudness, lowered where needed so that no sample exceeds ``PEAK_CEILING_DB``.
    """
    if tracks.ndim != 2:
        raise ValueError(f"tracks must be (tracks, samples); got shape {tuple(tracks.shape)}.")
    if stem_lufs is None:
        stem_lufs = _measure(tracks.unsqueeze(1), sample_rate)[0].tolist()
    params = engineer_params(roles, stem_lufs, style, seed, tempo)
    x = tracks.unsqueeze(0).float()
    pre = mix(x, sample_rate, {k: v.float() for k, v in params.items()})[0]
    lufs = float(_measure(pre.unsqueeze(0), sample_rate)[0][0])
    target = ENGINEERS[style]["master_lufs"] + float(np.random.default_rng([int(seed), 103]).uniform(-0.5, 0.5))
    master = target - lufs if math.isfinite(lufs) else 0.0
    peak_db = 20 * math.log10(max(float(pre.abs().max()), 1e-12))
    master = min(master, PEAK_CEILING_DB - peak_db)
    params["master_gain_db"] = torch.tensor([_clip("master_gain_db", master)], dtype=torch.float64)
    return pre * 10 ** (float(params["master_gain_db"][0]) / 20), params



# --------------------------------------------------------------------------------------------
# More engineers: styles generated from the same conventions (chapter 5.2's training data)
# --------------------------------------------------------------------------------------------

_AMOUNTS = ("heavy", "medium", "light")
_DRUMS_AND_BASS = ("kick", "snare", "drums", "bass")


def _style_rng(seed: int, kind: int):
    return np.random.default_rng([int(seed), 211, kind])


def engineer_style(seed: int) -> dict:
    """One more engineer, generated from the conventions of ``ENGINEERS`` by ``seed`` (deterministic).

    The rule book stays the bundled engineers' (lead loudest, kick and bass centred, high-pass on everything but
    kick and bass, corrective EQ, compression on drums, bass and lead, reverb on pads and lead); what changes is
    the taste, each drawn between and a little beyond "natural" and "punchy": EQ intensity (``eq_scale``), a
    low and a high tilt added to the shelves (dB), stereo width, reverb send offset and T60 range, master
    loudness (-23 to -14 LUFS), drum perspective, compression amount (ratios times 0.6-2, thresholds moved),
    knee, attack, make-up, and the loudness balance (dB offsets of the drums and bass, of the lead, of the
    accompaniment). Returns ``{"conventions", "roles", "boost", "seed", "kind": "engineer"}`` for
    :func:`style_params`."""
    rng = _style_rng(seed, 0)

    def u(lo, hi):
        return float(rng.uniform(lo, hi))

    amount, shift = 2 ** u(-0.75, 1.0), u(-3.0, 3.0)
    base = ENGINEERS["natural"]["comp"]
    t_lo = u(0.4, 2.0)
    conv = dict(eq_scale=u(0.5, 2.0), width=u(0.6, 1.45), send_offset=u(-10.0, 3.0), t60=(t_lo, t_lo * u(1.3, 1.8)),
                master_lufs=u(-23.0, -14.0), perspective="drummer" if rng.uniform() < 0.5 else "audience",
                comp={k: (max(1.2, r * amount), above + shift) for k, (r, above) in base.items()}, knee=u(1.0, 9.0),
                attack_scale=2 ** u(-1.8, 0.5), makeup=u(0.3, 0.7))
    low_tilt, high_tilt = u(-2.5, 2.5), u(-2.5, 3.5)
    rhythm, lead, accomp = u(-2.0, 3.0), u(-2.5, 2.0), u(-2.0, 2.0)
    table = {}
    for role, c in ROLES.items():
        c = dict(c)
        c["ls"] = (c["ls"][0], c["ls"][1] + low_tilt / conv["eq_scale"])
        c["hs"] = (c["hs"][0], c["hs"][1] + high_tilt / conv["eq_scale"])
        table[role] = c
    boost = {r: (rhythm if r in _DRUMS_AND_BASS else lead if r == "lead" else accomp) for r in ROLES}
    return {"conventions": conv, "roles": table, "boost": boost, "seed": int(seed), "kind": "engineer"}


def random_style(seed: int) -> dict:
    """Random console settings tied to instrument roles (Diff-MST's first way of making references, by role):
    every role of ``ROLES`` gets its own random level (-34 to -16 LUFS), pan, high-pass, shelf and peak gains
    (+-6 dB at the role's frequencies), compression amount and reverb send, with no conventions kept (a bass may
    be panned hard left). The bus (T60, master loudness, width 1) is random too. Deterministic in ``seed``;
    same structure as :func:`engineer_style` (``"kind": "random"``)."""
    rng = _style_rng(seed, 1)

    def u(lo, hi):
        return float(rng.uniform(lo, hi))

    t_lo = u(0.3, 2.5)
    conv = dict(eq_scale=1.0, width=1.0, send_offset=0.0, t60=(t_lo, t_lo * 1.2), master_lufs=u(-23.0, -14.0),
                perspective="drummer", comp={"heavy": (u(3.0, 8.0), u(-6.0, 0.0)), "medium": (u(2.0, 4.0), u(-3.0, 3.0)),
                                             "light": (u(1.3, 2.5), u(0.0, 6.0))},
                knee=u(0.0, 9.0), attack_scale=2 ** u(-1.5, 0.5), makeup=u(0.3, 0.7))
    table = {}
    for role, c in ROLES.items():
        pick = int(rng.integers(0, 4))
        table[role] = dict(level=u(-34.0, -16.0), pan=u(0.05, 0.95), hp=float(20 * 2 ** u(0.0, 4.0)),
                           ls=(c["ls"][0], u(-6.0, 6.0)), peaks=tuple((f, u(-6.0, 6.0), q) for f, _, q in c["peaks"]),
                           hs=(c["hs"][0], u(-6.0, 6.0)), comp=(None, *_AMOUNTS)[pick], attack=c["attack"],
                           release=c["release"], send=-80.0 if rng.uniform() < 0.2 else u(-36.0, -8.0))
    return {"conventions": conv, "roles": table, "boost": {}, "seed": int(seed), "kind": "random"}


def engineer_styles(n: int, seed: int = 0) -> dict:
    """``n`` generated engineers (:func:`engineer_style`), named ``"engineer_<seed>_<i>"``; deterministic."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number >= 0; got {n!r}.")
    return {f"engineer_{seed}_{i}": engineer_style(int(seed) * 100003 + i) for i in range(n)}


def _check_style(style):
    if isinstance(style, str):
        if style not in ENGINEERS:
            raise ValueError(f"unknown engineer {style!r}; choose one of {', '.join(ENGINEERS)} or give a style of "
                             "engineer_style / random_style.")
        return style
    if not isinstance(style, dict) or not {"conventions", "roles", "boost"} <= set(style):
        raise ValueError("style must be a bundled engineer's name or a dict of engineer_style / random_style.")
    return style


def style_params(roles: Sequence[str], stem_lufs: Sequence[float], style, seed: int,
                 tempo: Optional[float] = None) -> dict:
    """:func:`engineer_params` for any style: a bundled engineer's name (then exactly :func:`engineer_params`) or
    a dict of :func:`engineer_style` / :func:`random_style`; ``seed`` draws the song's variation. Every value lies
    in the console's ranges (``parameters.SPECS``)."""
    style = _check_style(style)
    if isinstance(style, str):
        return engineer_params(roles, stem_lufs, style, seed, tempo)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown track role(s) {unknown}; the engineer knows {', '.join(ROLES)}.")
    if len(stem_lufs) != len(roles):
        raise ValueError(f"got {len(roles)} roles but {len(stem_lufs)} stem loudness values.")
    if not all(math.isfinite(float(v)) for v in stem_lufs):
        raise ValueError("stem loudness must be finite (a silent stem cannot be mixed by level).")
    rng = np.random.default_rng([int(seed), 101, 7, style.get("seed", 0), 0 if style.get("kind") == "engineer" else 1])
    return _style_rows(roles, stem_lufs, style["conventions"], style["roles"], style["boost"], rng, tempo)


def style_master_lufs(style) -> float:
    """The master loudness (LUFS) a style aims at."""
    style = _check_style(style)
    return float(ENGINEERS[style]["master_lufs"] if isinstance(style, str) else style["conventions"]["master_lufs"])


def styled_mix(tracks: torch.Tensor, roles: Sequence[str], style, seed: int, tempo: Optional[float] = None,
               sample_rate: int = SAMPLE_RATE, stem_lufs: Optional[Sequence[float]] = None, mask=None):
    """:func:`engineer_mix` for any style of :func:`style_params`: mono ``tracks`` ``(N, T)`` -> ``(mix (2, T),
    params)``, the master gain bringing the mix to the style's loudness (peak at most ``PEAK_CEILING_DB``). For a
    bundled engineer's name it is :func:`engineer_mix`."""
    if isinstance(_check_style(style), str):
        return engineer_mix(tracks, roles, style, seed, tempo, sample_rate, stem_lufs)
    if tracks.ndim != 2:
        raise ValueError(f"tracks must be (tracks, samples); got shape {tuple(tracks.shape)}.")
    if stem_lufs is None:
        stem_lufs = _measure(tracks.unsqueeze(1), sample_rate)[0].tolist()
    params = style_params(roles, stem_lufs, style, seed, tempo)
    pre = mix(tracks.unsqueeze(0).float(), sample_rate, {k: v.float() for k, v in params.items()})[0]
    lufs = float(_measure(pre.unsqueeze(0), sample_rate)[0][0])
    target = style_master_lufs(style) + float(np.random.default_rng([int(seed), 103]).uniform(-0.5, 0.5))
    master = target - lufs if math.isfinite(lufs) else 0.0
    peak_db = 20 * math.log10(max(float(pre.abs().max()), 1e-12))
    master = min(master, PEAK_CEILING_DB - peak_db)
    params["master_gain_db"] = torch.tensor([_clip("master_gain_db", master)], dtype=torch.float64)
    return pre * 10 ** (float(params["master_gain_db"][0]) / 20), params


class EngineerMixer:
    """The engineer of ``style`` as an :class:`automix_lite.mixer.Mixer`: ``estimate`` returns the parameters
    :func:`engineer_mix` chooses (master gain included), ``render`` is the console (:func:`automix_lite.dsp.mix`).

    What the protocol does not carry is given when it is built, one mixer per song: the tracks' ``roles``
    (names from ``ROLES``), the song's ``seed`` (its variation of the style), ``tempo`` (bpm) and, optionally,
    the dry stems' loudness ``stem_lufs`` (default: measured from the tracks ``estimate`` gets).
    :meth:`for_song` reads all of them for a bundled song, so that ``estimate`` gives the song's stored
    parameters (to the rounding of the stored file). The engineer mixes every track it is given: ``mask`` is
    applied by ``render`` only. Every batch item gets the same song's conventions.
    """

    max_tracks: Optional[int] = None
    segment_seconds: Optional[float] = None
    has_params = True

    def __init__(self, style: str, roles: Sequence[str], seed: int, tempo: Optional[float] = None,
                 sample_rate: int = SAMPLE_RATE, stem_lufs: Optional[Sequence[float]] = None):
        if style not in ENGINEERS:
            raise ValueError(f"unknown engineer {style!r}; choose one of {', '.join(ENGINEERS)}.")
        self.style, self.roles, self.seed, self.tempo = style, list(roles), int(seed), tempo
        self.sample_rate = int(sample_rate)
        self.stem_lufs = None if stem_lufs is None else [float(v) for v in stem_lufs]

    @classmethod
    def for_song(cls, song_id: str, style: str = "natural", root=None) -> "EngineerMixer":
        """The engineer of a bundled song: its roles, tempo, stem loudness and the seed its stored mix was drawn with."""
        import hashlib

        from .bundled import song

        entry = song(song_id, root)
        seed = int(hashlib.sha256(f"{song_id}/{style}".encode()).hexdigest()[:8], 16)  # as data/render.py draws it
        return cls(style, [t["role"] for t in entry["tracks"]], seed, entry.get("tempo"),
                   stem_lufs=[t["lufs"] for t in entry["tracks"]])

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> MixParams:
        if tracks.ndim != 3 or tracks.shape[1] != len(self.roles):
            raise ValueError(f"tracks must be (batch, {len(self.roles)} tracks, samples), one per role; "
                             f"got shape {tuple(tracks.shape)}.")
        items = [engineer_mix(x, self.roles, self.style, self.seed, self.tempo, self.sample_rate, self.stem_lufs)[1]
                 for x in tracks.detach().cpu()]
        return MixParams({k: torch.cat([p[k] for p in items]).to(tracks.dtype).to(tracks.device) for k in items[0]},
                         "full")

    def render(self, tracks: torch.Tensor, params: dict, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return mix(tracks, self.sample_rate, params, mask)

    def __repr__(self) -> str:
        return f"EngineerMixer({self.style!r}, {len(self.roles)} tracks, seed={self.seed})"
