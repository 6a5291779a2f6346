"""Procedural composition of the bundled multitrack set (taught in ``notebooks/11_datasets.ipynb``).

Every song is a list of :class:`Part` s (one per track to render), written as notes on a beat grid and
rendered later, instrument by instrument, by FluidSynth with a General MIDI SoundFont
(:mod:`automix_lite.data.render`). Nothing here needs FluidSynth: a song is pure, seeded Python data.

- **Songs task** (:func:`compose_song`): a style (pop, rock, funk, ballad, electronic, jazz, bossa)
  fixes the tempo range, mode, chord progressions, drum groove, bass pattern, comping rhythm and the
  General MIDI programs to choose from. Every song has drums, bass, one chord instrument and a lead
  line (4 tracks) plus a seeded choice of up to four extras (second chord instrument, pad, arpeggio or
  counter line, brass), so 4-8 tracks, each role at most once.
- **Drums task** (:func:`compose_drums`): one drum kit recorded ENST-style with eight microphones:
  kick, snare, hi-hat, three toms, overheads left and right. Every passage has a groove, a crash on
  the downbeat and tom fills that use all three toms.

Times are in beats (quarter notes); pitches are MIDI note numbers; velocities 1-127.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Note", "Part", "Song", "STYLES", "DRUM_GROOVES", "DRUM_MICS", "compose_song", "compose_drums",
           "midi_bytes", "song_seconds"]

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# General MIDI percussion notes (channel 10)
KICK, SIDESTICK, SNARE, CLAP, SNARE2 = 36, 37, 38, 39, 40
TOM_FLOOR, HH_CLOSED, TOM_FLOOR_HI, HH_PEDAL, TOM_LOW, HH_OPEN, TOM_MID, TOM_HI = 41, 42, 43, 44, 45, 46, 47, 48
CRASH, TOM_HIGH2, RIDE, RIDE_BELL, CRASH2 = 49, 50, 51, 53, 57

DRUM_MICS = {  # microphone -> the General MIDI notes it picks up directly (overheads take the whole kit)
    "kick": (35, KICK),
    "snare": (SIDESTICK, SNARE, CLAP, SNARE2),
    "hihat": (HH_CLOSED, HH_PEDAL, HH_OPEN),
    "tom_1": (TOM_HI, TOM_HIGH2),
    "tom_2": (TOM_LOW, TOM_MID),
    "tom_3": (TOM_FLOOR, TOM_FLOOR_HI),
    "overhead_l": None,
    "overhead_r": None,
}
CYMBALS = (CRASH, RIDE, 52, RIDE_BELL, 55, CRASH2, 59)


@dataclass
class Note:
    start: float  # beats
    dur: float  # beats
    pitch: int
    vel: int


@dataclass
class Part:
    """One track to render: ``role`` (what the engineer sees), GM ``program`` (``bank`` 128 = drum kit)."""

    role: str
    instrument: str
    program: int
    bank: int = 0
    notes: list = field(default_factory=list)

    @property
    def is_drums(self) -> bool:
        return self.bank == 128


@dataclass
class Song:
    id: str
    task: str  # "songs" or "drums"
    style: str
    tempo: float  # beats per minute
    key: str  # e.g. "A minor"
    bars: int
    parts: list

    @property
    def seconds(self) -> float:
        return song_seconds(self.tempo, self.bars)


def song_seconds(tempo: float, bars: int) -> float:
    return bars * 4 * 60.0 / tempo


def _bars_for(tempo: float, rng, lo: float = 8.0, hi: float = 12.0) -> int:
    """Bar count with a duration in [lo, hi] s, preferring even counts near the middle."""
    ok = [n for n in range(1, 17) if lo <= song_seconds(tempo, n) <= hi]
    if not ok:
        raise ValueError(f"no bar count fits {lo}-{hi} s at {tempo} bpm")
    even = [n for n in ok if n % 2 == 0] or ok
    mid = (lo + hi) / 2
    return min(even, key=lambda n: abs(song_seconds(tempo, n) - mid))


# ----------------------------------------------------------------------------------------------
# Styles
# ----------------------------------------------------------------------------------------------

# instrument name -> GM program (0-based)
PROGRAMS = {
    "acoustic grand piano": 0, "bright piano": 1, "electric piano": 4, "fm electric piano": 5,
    "clavinet": 7, "vibraphone": 11, "marimba": 12, "drawbar organ": 16, "percussive organ": 17,
    "rock organ": 18, "nylon guitar": 24, "steel guitar": 25, "jazz guitar": 26, "clean guitar": 27,
    "muted guitar": 28, "overdriven guitar": 29, "distortion guitar": 30, "acoustic bass": 32,
    "finger bass": 33, "pick bass": 34, "fretless bass": 35, "slap bass": 36, "synth bass 1": 38,
    "synth bass 2": 39, "violin": 40, "harp": 46, "string ensemble": 48, "slow strings": 49,
    "synth strings": 50, "choir aahs": 52, "trumpet": 56, "trombone": 57, "brass section": 61,
    "synth brass": 62, "alto sax": 65, "tenor sax": 66, "oboe": 68, "clarinet": 71, "flute": 73,
    "square lead": 80, "saw lead": 81, "calliope lead": 82, "warm pad": 89, "polysynth pad": 90,
    "choir pad": 91, "new age pad": 88,
}
KITS = {"standard kit": 0, "room kit": 8, "power kit": 16, "electronic kit": 24, "tr-808 kit": 25,
        "jazz kit": 32, "brush kit": 40}

STYLES = {
    "pop": dict(tempo=(92, 118), modes=("major",), swing=0.0, groove="pop", bass="eighths", comp="pop",
                progressions=((1, 5, 6, 4), (6, 4, 1, 5), (1, 6, 4, 5), (4, 1, 5, 6)), sevenths=False,
                kits=("standard kit", "room kit"),
                bass_inst=("finger bass", "pick bass"),
                chords={"keys": ("acoustic grand piano", "bright piano", "electric piano"),
                        "guitar": ("steel guitar", "clean guitar")},
                extras={"pad": ("string ensemble", "warm pad", "synth strings"), "arp": ("marimba", "harp", "vibraphone"),
                        "brass": ("brass section", "synth brass")},
                lead=("square lead", "flute", "calliope lead", "clarinet"), lead_range=(67, 86)),
    "rock": dict(tempo=(112, 140), modes=("mixolydian", "major"), swing=0.0, groove="rock", bass="eighths", comp="power",
                 progressions=((1, 7, 4, 1), (1, 4, 5, 4), (6, 4, 1, 5), (1, 5, 7, 4)), sevenths=False,
                 kits=("power kit", "standard kit", "room kit"),
                 bass_inst=("pick bass", "finger bass"),
                 chords={"guitar": ("overdriven guitar", "distortion guitar")},
                 extras={"keys": ("rock organ", "drawbar organ", "acoustic grand piano"), "pad": ("string ensemble",),
                         "counter": ("clean guitar",), "brass": ("brass section",)},
                 lead=("distortion guitar", "saw lead", "overdriven guitar"), lead_range=(64, 84)),
    "funk": dict(tempo=(94, 110), modes=("dorian",), swing=0.0, groove="funk", bass="funk", comp="stabs",
                 progressions=((1, 1, 4, 4), (1, 4, 1, 5), (1, 1, 1, 4)), sevenths=True,
                 kits=("standard kit", "room kit"),
                 bass_inst=("slap bass", "finger bass"),
                 chords={"keys": ("clavinet", "electric piano"), "guitar": ("muted guitar", "clean guitar")},
                 extras={"brass": ("brass section", "synth brass"), "pad": ("drawbar organ", "polysynth pad"),
                         "counter": ("clean guitar", "vibraphone")},
                 lead=("alto sax", "tenor sax", "trumpet"), lead_range=(62, 82)),
    "ballad": dict(tempo=(66, 80), modes=("major",), swing=0.0, groove="ballad", bass="long", comp="arpeggio",
                   progressions=((1, 6, 4, 5), (1, 5, 6, 4), (4, 5, 3, 6), (1, 3, 4, 5)), sevenths=False,
                   kits=("brush kit", "room kit", "standard kit"),
                   bass_inst=("fretless bass", "acoustic bass"),
                   chords={"keys": ("acoustic grand piano", "electric piano")},
                   extras={"pad": ("slow strings", "string ensemble", "choir aahs", "new age pad"),
                           "guitar": ("nylon guitar", "steel guitar"), "arp": ("harp",)},
                   lead=("violin", "flute", "oboe", "clarinet"), lead_range=(64, 86)),
    "electronic": dict(tempo=(118, 128), modes=("minor",), swing=0.0, groove="four", bass="offbeat", comp="stabs",
                       progressions=((1, 6, 3, 7), (1, 7, 6, 7), (6, 7, 1, 1), (1, 4, 6, 5)), sevenths=False,
                       kits=("electronic kit", "tr-808 kit"),
                       bass_inst=("synth bass 1", "synth bass 2"),
                       chords={"keys": ("fm electric piano", "polysynth pad")},
                       extras={"pad": ("warm pad", "choir pad", "synth strings"), "arp": ("saw lead", "square lead"),
                               "brass": ("synth brass",)},
                       lead=("saw lead", "square lead", "calliope lead"), lead_range=(67, 88)),
    "jazz": dict(tempo=(120, 160), modes=("major",), swing=0.62, groove="swing", bass="walking", comp="charleston",
                 progressions=((2, 5, 1, 6), (1, 6, 2, 5), (3, 6, 2, 5), (4, 7, 3, 6)), sevenths=True,
                 kits=("jazz kit", "brush kit"),
                 bass_inst=("acoustic bass",),
                 chords={"keys": ("acoustic grand piano", "electric piano"), "guitar": ("jazz guitar",)},
                 extras={"arp": ("vibraphone",), "brass": ("trombone",), "pad": ("slow strings",)},
                 lead=("tenor sax", "trumpet", "alto sax", "clarinet"), lead_range=(60, 82)),
    "bossa": dict(tempo=(126, 144), modes=("major", "minor"), swing=0.0, groove="bossa", bass="bossa", comp="bossa",
                  progressions=((2, 5, 1, 1), (1, 4, 2, 5), (1, 6, 2, 5)), sevenths=True,
                  kits=("brush kit", "jazz kit"),
                  bass_inst=("acoustic bass", "fretless bass"),
                  chords={"guitar": ("nylon guitar",), "keys": ("electric piano", "acoustic grand piano")},
                  extras={"pad": ("slow strings", "string ensemble"), "arp": ("vibraphone", "marimba"), "brass": ("trombone",)},
                  lead=("flute", "alto sax", "tenor sax", "trumpet"), lead_range=(64, 86)),
}

# drum grooves: per bar, (16th step, GM note, velocity); swing shifts off-beat 8ths (steps 2, 6, 10, 14)
GROOVES = {
    "pop": [(0, KICK, 110), (8, KICK, 100), (10, KICK, 80), (4, SNARE, 110), (12, SNARE, 112)]
           + [(s, HH_CLOSED, 90 if s % 4 == 0 else 65) for s in range(0, 16, 2)],
    "rock": [(0, KICK, 115), (6, KICK, 95), (8, KICK, 110), (4, SNARE, 120), (12, SNARE, 122)]
            + [(s, HH_CLOSED, 100 if s % 4 == 0 else 80) for s in range(0, 16, 2)],
    "funk": [(0, KICK, 115), (3, KICK, 90), (10, KICK, 105), (4, SNARE, 118), (12, SNARE, 118),
             (7, SNARE, 34), (9, SNARE, 30), (14, SNARE, 38)]
            + [(s, HH_CLOSED, 95 if s % 4 == 0 else (70 if s % 2 == 0 else 48)) for s in range(16)],
    "ballad": [(0, KICK, 95), (10, KICK, 70), (4, SIDESTICK, 85), (12, SIDESTICK, 88)]
              + [(s, HH_CLOSED, 70 if s % 4 == 0 else 50) for s in range(0, 16, 2)],
    "four": [(s, KICK, 118) for s in (0, 4, 8, 12)] + [(4, CLAP, 105), (12, CLAP, 108)]
            + [(s, HH_OPEN, 80) for s in (2, 6, 10, 14)] + [(s, HH_CLOSED, 55) for s in range(1, 16, 2)],
    "swing": [(s, RIDE, 95 if s % 4 == 0 else 80) for s in (0, 4, 6, 8, 12, 14)]
             + [(4, HH_PEDAL, 80), (12, HH_PEDAL, 80)] + [(s, KICK, 45) for s in (0, 4, 8, 12)]
             + [(14, SNARE, 45)],
    "bossa": [(s, KICK, 85 if s % 4 == 0 else 70) for s in (0, 3, 4, 7, 8, 11, 12, 15)]
             + [(s, SIDESTICK, 85) for s in (0, 3, 6, 10, 12)] + [(s, HH_CLOSED, 60) for s in range(0, 16, 2)],
    # drum-task only
    "halftime": [(0, KICK, 115), (7, KICK, 85), (10, KICK, 100), (8, SNARE, 122)]
                + [(s, HH_CLOSED, 95 if s % 4 == 0 else 70) for s in range(0, 16, 2)] + [(14, HH_OPEN, 85)],
    "disco": [(s, KICK, 115) for s in (0, 4, 8, 12)] + [(4, SNARE, 112), (12, SNARE, 115)]
             + [(s, HH_OPEN, 88) for s in (2, 6, 10, 14)] + [(s, HH_CLOSED, 75) for s in (0, 4, 8, 12)],
    "shuffle": [(0, KICK, 110), (8, KICK, 105), (4, SNARE, 115), (12, SNARE, 118)]
               + [(s, HH_CLOSED, 95 if s % 4 == 0 else 70) for s in range(0, 16, 2)],
    "sixteenths": [(0, KICK, 115), (6, KICK, 90), (8, KICK, 110), (11, KICK, 85), (4, SNARE, 120), (12, SNARE, 120)]
                  + [(s, HH_CLOSED, 100 if s % 4 == 0 else 62) for s in range(16)],
    "ride_rock": [(0, KICK, 115), (8, KICK, 110), (10, KICK, 90), (4, SNARE, 120), (12, SNARE, 120)]
                 + [(s, RIDE, 95 if s % 4 == 0 else 78) for s in range(0, 16, 2)] + [(4, HH_PEDAL, 70), (12, HH_PEDAL, 70)],
    "toms": [(0, KICK, 110), (8, KICK, 105), (4, SNARE, 100), (12, SNARE, 105)]
            + [(s, TOM_FLOOR, 100 if s % 4 == 0 else 80) for s in range(0, 16, 2)]
            + [(s, HH_PEDAL, 70) for s in (4, 12)] + [(6, TOM_LOW, 85), (14, TOM_LOW, 85)],
    "punk": [(s, KICK, 110) for s in (0, 4, 8, 12)] + [(s, SNARE, 112) for s in (2, 6, 10, 14)]
            + [(s, HH_CLOSED, 90) for s in range(0, 16, 2)],
}

DRUM_GROOVES = {  # drums task: groove -> (tempo range, swing, kits)
    "rock": ((96, 132), 0.0, ("standard kit", "room kit", "power kit")),
    "pop": ((88, 118), 0.0, ("standard kit", "room kit")),
    "funk": ((92, 108), 0.0, ("standard kit", "room kit")),
    "halftime": ((120, 150), 0.0, ("power kit", "standard kit")),
    "disco": ((112, 124), 0.0, ("standard kit", "room kit")),
    "shuffle": ((96, 124), 0.66, ("standard kit", "room kit")),
    "sixteenths": ((84, 100), 0.0, ("standard kit", "power kit")),
    "ride_rock": ((100, 130), 0.0, ("room kit", "power kit")),
    "toms": ((100, 124), 0.0, ("standard kit", "room kit")),
    "swing": ((120, 170), 0.62, ("jazz kit", "brush kit")),
    "bossa": ((126, 144), 0.0, ("jazz kit", "brush kit")),
    "punk": ((150, 176), 0.0, ("power kit", "standard kit")),
}

FILLS = (  # tom fills over the last two beats: (16th step within the bar, note)
    [(8, TOM_HI), (9, TOM_HI), (10, TOM_MID), (11, TOM_MID), (12, TOM_LOW), (13, TOM_LOW), (14, TOM_FLOOR), (15, TOM_FLOOR)],
    [(8, SNARE), (9, TOM_HI), (10, TOM_HI), (11, TOM_MID), (12, TOM_MID), (13, TOM_FLOOR), (14, TOM_FLOOR), (15, KICK)],
    [(8, TOM_HI), (10, TOM_MID), (11, TOM_MID), (12, TOM_FLOOR), (14, TOM_FLOOR), (15, TOM_FLOOR)],
    [(4, SNARE), (6, TOM_HI), (8, TOM_HI), (10, TOM_MID), (12, TOM_LOW), (14, TOM_FLOOR)],
)


# ----------------------------------------------------------------------------------------------
# Harmony helpers
# ----------------------------------------------------------------------------------------------


def _degree_pitch(tonic: int, scale, degree: int) -> int:
    """Pitch of a scale degree (0-based, may exceed 6 or be negative) above ``tonic``."""
    octave, idx = divmod(degree, 7)
    return tonic + 12 * octave + scale[idx]


def _chord(tonic: int, scale, degree1: int, sevenths: bool) -> list:
    """Pitch classes (as pitches in the tonic's octave and up) of the diatonic chord on 1-based ``degree1``."""
    d = degree1 - 1
    steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
    return [_degree_pitch(tonic, scale, d + s) for s in steps]


def _voice(chord: list, around: int, prev: Optional[list]) -> list:
    """Close voicing of ``chord`` near ``around``, moving as little as possible from ``prev``."""
    pcs = [p % 12 for p in chord]
    options = []
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        base = around - 6 + ((order[0] - (around - 6)) % 12)
        v = [base]
        for pc in order[1:]:
            v.append(v[-1] + ((pc - v[-1]) % 12 or 12))
        options.append(v)
    if prev is None:
        return min(options, key=lambda v: abs(np.mean(v) - around))
    return min(options, key=lambda v: sum(abs(a - b) for a, b in zip(sorted(v), sorted(prev))) + abs(np.mean(v) - around) * 0.3)


class _Writer:
    """Collects notes with swing, timing and velocity humanisation (seeded)."""

    def __init__(self, rng, swing: float, tempo: float, jitter_ms: float = 6.0):
        self.rng, self.swing, self.notes = rng, swing, []
        self.jitter = jitter_ms / 1000.0 * tempo / 60.0  # in beats

    def add(self, bar: int, step: float, dur_steps: float, pitch: int, vel: float, jitter: bool = True):
        if self.swing and float(step) % 4 == 2:  # off-beat 8th -> swung
            step = step - 2 + 4 * self.swing
        t = bar * 4 + step / 4.0
        if jitter and self.jitter:
            t += float(self.rng.normal(0, self.jitter / 2))
        v = int(np.clip(round(vel + self.rng.normal(0, 5)), 1, 127))
        self.notes.append(Note(max(t, 0.0), dur_steps / 4.0, int(pitch), v))


# ----------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------


def _drum_bars(w: _Writer, groove: str, bars: int, rng, fill_bars=(), crash_bars=(0,)):
    for bar in range(bars):
        hits = list(GROOVES[groove])
        if bar in fill_bars:
            fill = FILLS[int(rng.integers(len(FILLS)))]
            start = min(s for s, _ in fill)
            hits = [h for h in hits if h[0] < start or h[1] in (HH_PEDAL,)]
            hits += [(s, n, 100 + 8 * (i % 2 == 0)) for i, (s, n) in enumerate(fill)]
        if bar in crash_bars:
            hits = [h for h in hits if not (h[0] == 0 and h[1] in (HH_CLOSED, HH_OPEN, RIDE))] + [(0, CRASH, 112)]
        for step, note, vel in hits:
            w.add(bar, step, 1, note, vel)


def _bass(w: _Writer, pattern: str, roots: list, bars: int, tonic_bass: int, scale, rng, chords: list):
    for bar in range(bars):
        r = roots[bar]
        nxt = roots[(bar + 1) % len(roots)] if bar + 1 < bars else roots[0]
        fifth = r + 7
        if pattern == "eighths":
            for s in range(0, 16, 2):
                p = fifth if s == 14 and rng.random() < 0.5 else (r + 12 if s == 10 and rng.random() < 0.3 else r)
                w.add(bar, s, 1.7, p, 100 if s % 4 == 0 else 85)
        elif pattern == "funk":
            for s, p, d in ((0, r, 2), (3, r + 12, 1), (6, r, 1), (7, r + 10, 1), (10, r, 2), (13, r + 7, 1), (14, r + 12, 1)):
                w.add(bar, s, d * 0.8, p, 105 if s in (0, 10) else 85)
        elif pattern == "long":
            w.add(bar, 0, 7.5, r, 90)
            w.add(bar, 8, 7.5, fifth if rng.random() < 0.5 else r, 80)
        elif pattern == "offbeat":
            for s in range(2, 16, 4):
                w.add(bar, s, 1.6, r, 105, jitter=False)
            w.add(bar, 0, 1, r - 12 if r - 12 >= 28 else r, 90, jitter=False)
        elif pattern == "walking":
            tones = sorted(chords[bar])
            line = [r, tones[1] - 12 if tones[1] - 12 > r else tones[1], fifth]
            approach = nxt - 1 if rng.random() < 0.5 else nxt + 1
            for k, p in enumerate(line + [approach]):
                w.add(bar, 4 * k, 3.5, p, 95 if k == 0 else 82)
        elif pattern == "bossa":
            for s, p in ((0, r), (6, fifth - 12 if fifth - 12 >= 28 else fifth), (8, r), (14, fifth - 12 if fifth - 12 >= 28 else fifth)):
                w.add(bar, s, 2 if s in (6, 14) else 5.5, p, 90)


def _comp(w: _Writer, pattern: str, voicings: list, bars: int, rng, strum: bool):
    for bar in range(bars):
        v = voicings[bar]
        if pattern == "pop":
            rhythm = ((0, 5.5), (6, 3.5), (10, 5.5)) if rng.random() < 0.5 else ((0, 3.5), (4, 3.5), (8, 3.5), (12, 3.5))
        elif pattern == "power":
            root = min(v)
            v = [root, root + 7, root + 12]
            rhythm = tuple((s, 1.6) for s in range(0, 16, 2))
        elif pattern == "stabs":
            rhythm = ((2, 0.8), (6, 0.8), (7, 0.8), (10, 0.8), (14, 0.8)) if rng.random() < 0.5 else ((0, 1), (3, 1), (6, 1), (10, 1), (12, 1))
        elif pattern == "charleston":
            rhythm = ((0, 2.5), (6, 2.0), (10, 1.5)) if rng.random() < 0.5 else ((2, 2.5), (8, 3), (14, 1.5))
        elif pattern == "bossa":
            rhythm = ((0, 2), (3, 2), (6, 2), (10, 2), (12, 3))
        elif pattern == "arpeggio":
            order = sorted(v) + [max(v) + 12 - 12 * (max(v) + 12 > 84)]
            for k, s in enumerate(range(0, 16, 2)):
                p = order[[0, 1, 2, 3, 2, 1, 2, 3][k] % len(order)]
                w.add(bar, s, 3.5, p, 78 if k else 88)
            w.add(bar, 0, 15, min(v) - 12, 70)  # left-hand root
            continue
        else:
            raise ValueError(pattern)
        for s, d in rhythm:
            for i, p in enumerate(sorted(v)):
                w.add(bar, s + (0.12 * i if strum else 0), d, p, 88 if s % 4 == 0 else 76)


def _pad(w: _Writer, voicings: list, bars: int):
    for bar in range(bars):
        for p in voicings[bar]:
            w.add(bar, 0, 15.6, p, 72, jitter=False)


def _arp(w: _Writer, voicings: list, bars: int, rng, sixteenths: bool):
    step = 2 if not sixteenths else 1
    shape = rng.permutation(4)
    for bar in range(bars):
        tones = sorted(voicings[bar]) + [sorted(voicings[bar])[0] + 12]
        for k, s in enumerate(range(0, 16, step)):
            w.add(bar, s, step * 0.9, tones[shape[k % 4] % len(tones)], 82 if s % 4 == 0 else 68)


def _brass(w: _Writer, voicings: list, bars: int, rng):
    for bar in range(bars):
        hits = ((0, 1.5),) if bar % 2 == 0 else ((10, 1), (14, 1.5))
        if rng.random() < 0.3:
            hits = hits + ((6, 1),)
        for s, d in hits:
            for p in sorted(voicings[bar]):
                w.add(bar, s, d, p, 100)


def _lead(w: _Writer, tonic: int, scale, chords: list, bars: int, rng, lo: int, hi: int, swing: bool):
    """A phrase of two-bar motifs: chord tones on strong beats, scale steps between, repeated with variation."""
    pool = sorted({_degree_pitch(tonic, scale, d) for d in range(-14, 28)})
    pool = [p for p in pool if lo <= p <= hi]
    cells = [(0, 2, 4, 6, 8, 12), (0, 3, 6, 8, 10), (2, 4, 6, 10, 12, 14), (0, 4, 6, 7, 8, 12), (0, 2, 3, 4, 8, 10, 12)]
    motif = [cells[int(rng.integers(len(cells)))] for _ in range(2)]
    contour = rng.integers(-2, 3, size=8)
    cur = pool[len(pool) // 2]
    for bar in range(bars):
        rhythm = motif[bar % 2]
        if bar == bars - 1:
            rhythm = rhythm[:3]
        tones = {p % 12 for p in chords[bar]}
        for k, s in enumerate(rhythm):
            nxt_s = rhythm[k + 1] if k + 1 < len(rhythm) else 16
            i = pool.index(min(pool, key=lambda p: abs(p - cur)))
            i = int(np.clip(i + contour[k % len(contour)] + (bar // 2) * (1 if rng.random() < 0.5 else -1), 0, len(pool) - 1))
            cand = pool[i]
            if s % 4 == 0:  # strong beat: nearest chord tone
                near = [p for p in pool if p % 12 in tones]
                cand = min(near, key=lambda p: abs(p - cand))
            cur = cand
            dur = min(nxt_s - s, 6) * (0.9 if nxt_s - s <= 2 else 0.95)
            if bar == bars - 1 and k == len(rhythm) - 1:
                dur = 16 - s - 0.5
            w.add(bar, s, dur, cur, 96 if s % 4 == 0 else 86)
        contour = np.where(rng.random(8) < 0.3, rng.integers(-2, 3, size=8), contour)


def _choose(rng, options):
    return options[int(rng.integers(len(options)))]


def compose_song(song_id: str, style: str, seed: int) -> Song:
    """A seeded song of ``style`` (a key of ``STYLES``) with 4-8 parts; see the module docstring."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}.")
    st = STYLES[style]
    rng = np.random.default_rng([seed, 7])
    tempo = float(rng.integers(st["tempo"][0], st["tempo"][1] + 1))
    mode = _choose(rng, st["modes"])
    scale = SCALES[mode]
    key_pc = int(rng.integers(12))
    bars = _bars_for(tempo, rng)
    prog = list(_choose(rng, st["progressions"]))
    degrees = [prog[b % len(prog)] for b in range(bars)]
    tonic_bass = 36 + ((key_pc - 0) % 12)  # C2..B2
    if tonic_bass > 43:
        tonic_bass -= 12 if tonic_bass - 12 >= 28 else 0
    chords = [_chord(60 + key_pc, scale, d, st["sevenths"]) for d in degrees]
    roots = [_degree_pitch(tonic_bass, scale, d - 1) for d in degrees]
    roots = [r - 12 if r > 47 else r for r in roots]

    def voicings(around):
        out, prev = [], None
        for c in chords:
            prev = _voice(c, around, prev)
            out.append(prev)
        return out

    swing = st["swing"]
    parts = []

    def writer():
        return _Writer(np.random.default_rng([seed, 11, len(parts)]), swing, tempo, 0.0 if style == "electronic" else 6.0)

    # drums
    kit = _choose(rng, st["kits"])
    w = writer()
    _drum_bars(w, st["groove"], bars, rng, fill_bars=(bars - 1,), crash_bars=(0,))
    parts.append(Part("drums", kit, KITS[kit], 128, w.notes))
    # bass
    inst = _choose(rng, st["bass_inst"])
    w = writer()
    _bass(w, st["bass"], roots, bars, tonic_bass, scale, rng, chords)
    parts.append(Part("bass", inst, PROGRAMS[inst], 0, w.notes))
    # chord instrument(s)
    chord_roles = list(st["chords"])
    main = _choose(rng, chord_roles)
    extras = [r for r in chord_roles if r != main] + list(st["extras"])
    n_extra = int(rng.integers(0, min(4, len(extras)) + 1))
    chosen = [extras[i] for i in sorted(rng.choice(len(extras), size=n_extra, replace=False))]
    for role in [main] + chosen:
        table = st["chords"].get(role) or st["extras"][role]
        inst = _choose(rng, table)
        w = writer()
        if role in st["chords"]:
            strum = role == "guitar"
            _comp(w, st["comp"] if not (role == "keys" and st["comp"] == "power") else "pop",
                  voicings(62 if role == "keys" else 58), bars, rng, strum)
        elif role == "pad":
            _pad(w, voicings(67), bars)
        elif role in ("arp", "counter"):
            _arp(w, voicings(74), bars, rng, sixteenths=style in ("electronic", "pop") and role == "arp")
        elif role == "brass":
            _brass(w, voicings(66), bars, rng)
        elif role == "keys":  # keys as an extra (rock organ)
            _pad(w, voicings(62), bars) if "organ" in inst else _comp(w, "pop", voicings(62), bars, rng, False)
        elif role == "guitar":  # guitar as an extra (ballad)
            _comp(w, "arpeggio", voicings(57), bars, rng, False)
        else:
            raise AssertionError(role)
        parts.append(Part(role, inst, PROGRAMS[inst], 0, w.notes))
    # lead
    inst = _choose(rng, st["lead"])
    w = writer()
    lo, hi = st["lead_range"]
    _lead(w, 60 + key_pc, scale, chords, bars, rng, lo, hi, bool(swing))
    parts.append(Part("lead", inst, PROGRAMS[inst], 0, w.notes))
    key = f"{KEY_NAMES[key_pc]} {mode}"
    return Song(song_id, "songs", style, tempo, key, bars, parts)


def compose_drums(song_id: str, groove: str, seed: int) -> Song:
    """A seeded drum passage (one ``Part`` holding the whole kit; the renderer splits it into mics)."""
    if groove not in DRUM_GROOVES:
        raise ValueError(f"unknown groove {groove!r}; choose one of {', '.join(DRUM_GROOVES)}.")
    (t0, t1), swing, kits = DRUM_GROOVES[groove]
    rng = np.random.default_rng([seed, 13])
    tempo = float(rng.integers(t0, t1 + 1))
    bars = _bars_for(tempo, rng, 8.0, 10.5)
    kit = _choose(rng, kits)
    w = _Writer(np.random.default_rng([seed, 17]), swing, tempo)
    fills = tuple(sorted({bars // 2 - 1, bars - 1}))
    crashes = tuple(sorted({0, bars // 2}))
    _drum_bars(w, groove, bars, rng, fill_bars=fills, crash_bars=crashes)
    part = Part("drums", kit, KITS[kit], 128, w.notes)
    return Song(song_id, "drums", groove, tempo, "", bars, [part])


# ----------------------------------------------------------------------------------------------
# Standard MIDI file
# ----------------------------------------------------------------------------------------------


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def midi_bytes(part: Part, tempo: float, end_beats: float, notes=None, ppq: int = 480) -> bytes:
    """A format-0 Standard MIDI File playing ``notes`` (default: all of ``part``) on one channel.

    Drum parts (``bank`` 128) use channel 10 and select the kit by program number; others channel 1.
    Reverb and chorus sends (CC 91, 93) are set to 0: the stems must be dry. The file lasts
    ``end_beats`` beats so that releases ring out before the end-of-track event.
    """
    ch = 9 if part.is_drums else 0
    events = []  # (tick, order, bytes)
    events.append((0, 0, b"\xff\x51\x03" + struct.pack(">I", round(60e6 / tempo))[1:]))
    events.append((0, 1, bytes([0xB0 | ch, 91, 0])))
    events.append((0, 1, bytes([0xB0 | ch, 93, 0])))
    events.append((0, 1, bytes([0xB0 | ch, 7, 100])))
    events.append((0, 1, bytes([0xB0 | ch, 10, 64])))
    events.append((0, 2, bytes([0xC0 | ch, part.program])))
    for n in (part.notes if notes is None else notes):
        on = round(n.start * ppq)
        off = max(on + 1, round((n.start + n.dur) * ppq))
        events.append((on, 4, bytes([0x90 | ch, n.pitch, n.vel])))
        events.append((off, 3, bytes([0x80 | ch, n.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    body, last = bytearray(), 0
    for tick, _, data in events:
        body += _vlq(tick - last) + data
        last = tick
    body += _vlq(max(round(end_beats * ppq) - last, 0)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ppq)
    return header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)
