"""Synthesised test instruments for Part 1, before the bundled multitrack set is used.

Small, seeded, musical: a drum kit (kick, snare, hi-hat as separate tracks), a bass line, plucked
chords (Karplus-Strong), a pad and a lead over a I-V-vi-IV progression. Every function returns a
mono ``torch.float32`` tensor shaped ``(1, 1, samples)`` with peaks below 0 dBFS. Used by
``notebooks/02``-``06``; the bundled set of sampled instruments (``data/``) replaces them later.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import butter, lfilter, sosfilt

PROGRESSION = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))  # I  V  vi  IV, semitones above the key


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def _out(a: np.ndarray, peak_db: float) -> torch.Tensor:
    a = a / max(np.max(np.abs(a)), 1e-9) * 10 ** (peak_db / 20)
    return torch.from_numpy(a.astype(np.float32)).view(1, 1, -1)


def _place(total: int, hit: np.ndarray, onsets, gains=None) -> np.ndarray:
    out = np.zeros(total + len(hit))
    for i, n in enumerate(onsets):
        g = 1.0 if gains is None else gains[i]
        out[n : n + len(hit)] += g * hit
    return out[:total]


def kick(sample_rate: int, seconds: float = 0.5) -> np.ndarray:
    """One kick drum hit: a sine sweeping from 150 Hz to 45 Hz with an exponential decay and a click."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f = 45 + 105 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    click = np.exp(-t / 0.002) * 0.3
    return np.sin(phase) * np.exp(-t / 0.18) + click


def snare(sample_rate: int, seconds: float = 0.35, seed: int = 0) -> np.ndarray:
    """One snare hit: a 190 Hz body plus band-passed noise (the wires)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    body = np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
    noise = sosfilt(butter(2, [1500, 9000], "bandpass", fs=sample_rate, output="sos"), rng.standard_normal(len(t)))
    return 0.6 * body + 1.2 * noise * np.exp(-t / 0.09)


def hihat(sample_rate: int, seconds: float = 0.12, seed: int = 1) -> np.ndarray:
    """One closed hi-hat: high-passed noise with a fast decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = sosfilt(butter(4, 7000, "highpass", fs=sample_rate, output="sos"), rng.standard_normal(len(t)))
    return noise * np.exp(-t / 0.03)


def drum_tracks(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, seed: int = 0) -> dict:
    """A rock groove on separate tracks: ``{"kick", "snare", "hihat"}``, each ``(1, 1, samples)``."""
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    eighth = 60.0 / bpm / 2 * sample_rate
    n8 = int(total / eighth)
    k_on = [int(i * eighth) for i in range(n8) if i % 8 in (0, 3, 4)]
    s_on = [int(i * eighth) for i in range(n8) if i % 8 in (2, 6)]
    h_on = [int(i * eighth) for i in range(n8)]
    h_gain = np.where(np.arange(n8) % 2 == 0, 1.0, 0.55) * rng.uniform(0.85, 1.0, n8)
    return {
        "kick": _out(_place(total, kick(sample_rate), k_on), -3.0),
        "snare": _out(_place(total, snare(sample_rate, seed=seed), s_on, rng.uniform(0.8, 1.0, len(s_on))), -4.0),
        "hihat": _out(_place(total, hihat(sample_rate, seed=seed + 1), h_on, h_gain), -12.0),
    }


def pluck(sample_rate: int, freq_hz: float, seconds: float, decay: float = 0.996, seed: int = 0) -> np.ndarray:
    """Karplus-Strong plucked string: a noise burst through a delay line with an averaging loop filter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    period = max(int(round(sample_rate / freq_hz)), 2)
    excitation = np.zeros(n)
    burst = rng.uniform(-1, 1, period)
    excitation[:period] = burst - burst.mean()
    a = np.zeros(period + 2)
    a[0] = 1.0
    a[period] = -0.5 * decay
    a[period + 1] = -0.5 * decay
    return lfilter([1.0], a, excitation)


def _chord_roots(key_midi: int, n_bars: int):
    return [PROGRESSION[i % len(PROGRESSION)] for i in range(n_bars)]


def bass_line(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, key_midi: int = 40, seed: int = 0):
    """Root-note eighth-note bass: a band-limited sawtooth through a decaying low-pass, ``(1, 1, samples)``."""
    total = int(seconds * sample_rate)
    bar = 4 * 60.0 / bpm
    eighth = bar / 8
    t_note = np.arange(int(eighth * sample_rate)) / sample_rate
    out = np.zeros(total + len(t_note))
    n_bars = int(np.ceil(seconds / bar))
    for b, chord in enumerate(_chord_roots(key_midi, n_bars)):
        for k in range(8):
            start = int((b * bar + k * eighth) * sample_rate)
            if start >= total:
                break
            f0 = _midi_hz(key_midi + chord[0] + (12 if k == 7 else 0))
            saw = sum(np.sin(2 * np.pi * h * f0 * t_note) / h for h in range(1, 12) if h * f0 < 4000)
            env = np.exp(-t_note / 0.25) * np.minimum(1, t_note / 0.004) * np.minimum(1, (t_note[-1] - t_note) / 0.01)
            out[start : start + len(t_note)] += saw * env
    out = sosfilt(butter(2, 900, fs=sample_rate, output="sos"), out[:total])
    return _out(out, -4.0)


def chords(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, key_midi: int = 52, seed: int = 0):
    """Strummed plucked chords (a guitar-like part), one strum per beat, ``(1, 1, samples)``."""
    total = int(seconds * sample_rate)
    bar = 4 * 60.0 / bpm
    beat = bar / 4
    out = np.zeros(total)
    rng = np.random.default_rng(seed)
    for b, chord in enumerate(_chord_roots(key_midi, int(np.ceil(seconds / bar)))):
        for k in range(4):
            start = int((b * bar + k * beat) * sample_rate)
            for j, semis in enumerate(chord + (chord[0] + 12,)):
                s = start + int(j * 0.012 * sample_rate)
                if s >= total:
                    continue
                note = pluck(sample_rate, float(_midi_hz(key_midi + semis)), beat * 1.5, seed=int(rng.integers(1 << 30)))
                end = min(total, s + len(note))
                out[s:end] += note[: end - s] * (0.9 if k % 2 == 0 else 0.6)
    return _out(out, -5.0)


def pad(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, key_midi: int = 64, seed: int = 0):
    """A sustained pad: detuned sawtooth chords with slow attack, low-passed, ``(1, 1, samples)``."""
    total = int(seconds * sample_rate)
    bar = 4 * 60.0 / bpm
    t = np.arange(int(bar * sample_rate)) / sample_rate
    out = np.zeros(total + len(t))
    env = np.minimum(1, t / 0.4) * np.minimum(1, (t[-1] - t) / 0.3)
    for b, chord in enumerate(_chord_roots(key_midi, int(np.ceil(seconds / bar)))):
        start = int(b * bar * sample_rate)
        if start >= total:
            break
        tone = np.zeros(len(t))
        for semis in chord:
            f0 = float(_midi_hz(key_midi + semis))
            for detune in (-0.08, 0.0, 0.08):
                f = f0 * 2 ** (detune / 12)
                tone += sum(np.sin(2 * np.pi * h * f * t + h) / h for h in range(1, 8) if h * f < 6000)
        out[start : start + len(t)] += tone * env
    out = sosfilt(butter(2, 2500, fs=sample_rate, output="sos"), out[:total])
    return _out(out, -8.0)


def lead(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, key_midi: int = 76, seed: int = 0):
    """A seeded lead melody on chord tones: a bright tone with vibrato and note envelopes, ``(1, 1, samples)``."""
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    bar = 4 * 60.0 / bpm
    beat = bar / 4
    out = np.zeros(total)
    for b, chord in enumerate(_chord_roots(key_midi, int(np.ceil(seconds / bar)))):
        k = 0.0
        while k < 4:
            length = float(rng.choice([0.5, 1.0, 1.0, 1.5]))
            length = min(length, 4 - k)
            start = int((b * bar + k * beat) * sample_rate)
            n = int(length * beat * sample_rate)
            if start >= total:
                break
            semis = int(rng.choice(chord + (chord[0] + 12, chord[1] - 12 + 12)))
            f0 = float(_midi_hz(key_midi + semis - 12))
            t = np.arange(n) / sample_rate
            f = f0 * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t) * np.minimum(1, t / 0.3))
            ph = 2 * np.pi * np.cumsum(f) / sample_rate
            tone = np.sin(ph) + 0.5 * np.sin(2 * ph) + 0.25 * np.sin(3 * ph) + 0.12 * np.sin(4 * ph)
            env = np.minimum(1, t / 0.02) * np.exp(-t / 1.2) * np.minimum(1, (t[-1] - t + 1e-9) / 0.03)
            end = min(total, start + n)
            out[start:end] += (tone * env)[: end - start]
            k += length
    return _out(out, -4.0)


def test_song(sample_rate: int = 44100, seconds: float = 8.0, bpm: float = 100.0, seed: int = 0) -> dict:
    """A short song on separate mono tracks: kick, snare, hihat, bass, chords, pad, lead (each ``(1, 1, samples)``)."""
    tracks = drum_tracks(sample_rate, seconds, bpm, seed)
    tracks["bass"] = bass_line(sample_rate, seconds, bpm, seed=seed)
    tracks["chords"] = chords(sample_rate, seconds, bpm, seed=seed)
    tracks["pad"] = pad(sample_rate, seconds, bpm, seed=seed)
    tracks["lead"] = lead(sample_rate, seconds, bpm, seed=seed)
    return tracks
