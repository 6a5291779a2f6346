"""Procedural composition (MIDI) and the seeded engineer of the bundled set."""

import math
import struct

import numpy as np
import pytest
import torch

from automix_lite.audio import loudness_lufs
from automix_lite.data import compose as C
from automix_lite import parameters as param_files
from automix_lite.data.engineer import ENGINEERS, ROLES, engineer_mix, engineer_params


def _notes(song):
    return [(p.role, n.start, n.dur, n.pitch, n.vel) for p in song.parts for n in p.notes]


@pytest.mark.parametrize("style", list(C.STYLES))
def test_songs_are_seeded_and_have_the_documented_structure(style):
    a, b, c = (C.compose_song("x", style, s) for s in (1, 1, 2))
    assert _notes(a) == _notes(b) and _notes(a) != _notes(c)
    for song in (a, c):
        roles = [p.role for p in song.parts]
        assert 4 <= len(roles) <= 8 and len(set(roles)) == len(roles)
        assert roles[0] == "drums" and roles[1] == "bass" and roles[-1] == "lead"
        assert set(roles) <= set(ROLES)
        assert 8.0 <= song.seconds <= 12.0
        lo, hi = C.STYLES[style]["tempo"]
        assert lo <= song.tempo <= hi
        end = song.bars * 4
        for p in song.parts:
            assert p.notes, p.role
            assert all(0 <= n.start < end and n.dur > 0 and 0 <= n.pitch <= 127 and 1 <= n.vel <= 127 for n in p.notes)
            assert (p.bank == 128) == (p.role == "drums")
        # every bar has a bass note and a lead phrase that starts in the first bar
        bass = next(p for p in song.parts if p.role == "bass")
        assert {int(n.start // 4) for n in bass.notes} >= set(range(song.bars))
        assert min(n.start for n in song.parts[-1].notes) < 4


def test_bass_follows_the_chord_roots_in_the_key():
    song = C.compose_song("x", "pop", 5)
    tonic = C.KEY_NAMES.index(song.key.split()[0])
    scale = {(tonic + s) % 12 for s in C.SCALES[song.key.split()[1]]}
    bass = next(p for p in song.parts if p.role == "bass")
    assert {n.pitch % 12 for n in bass.notes} <= scale
    assert all(28 <= n.pitch <= 60 for n in bass.notes)


@pytest.mark.parametrize("groove", list(C.DRUM_GROOVES))
def test_drum_passages_feed_every_close_microphone(groove):
    song = C.compose_drums("d", groove, 3)
    assert song.task == "drums" and 8.0 <= song.seconds <= 10.5 and len(song.parts) == 1
    pitches = {n.pitch for n in song.parts[0].notes}
    for mic, notes in C.DRUM_MICS.items():
        if notes is not None:
            assert pitches & set(notes), f"{groove}: the {mic} microphone would record silence"
    assert pitches & set(C.CYMBALS)
    assert _notes(song) == _notes(C.compose_drums("d", groove, 3))


def _read_midi(data: bytes):
    """A minimal Standard MIDI File reader: (ppq, tempo us/beat, [(tick, status, a, b)])."""
    assert data[:4] == b"MThd"
    _, fmt, ntrk, ppq = struct.unpack(">IHHH", data[4:14])
    assert (fmt, ntrk) == (0, 1) and data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    body, pos, tick, events, tempo = data[22:22 + length], 0, 0, [], None
    assert len(body) == length
    while pos < len(body):
        delta = 0
        while True:
            byte = body[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        tick += delta
        status = body[pos]
        if status == 0xFF:
            kind, size = body[pos + 1], body[pos + 2]
            if kind == 0x51:
                tempo = int.from_bytes(body[pos + 3:pos + 6], "big")
            pos += 3 + size
            if kind == 0x2F:
                break
        elif status >> 4 == 0xC:
            events.append((tick, status, body[pos + 1], None))
            pos += 2
        else:
            events.append((tick, status, body[pos + 1], body[pos + 2]))
            pos += 3
    assert pos == len(body)
    return ppq, tempo, events


def test_midi_files_hold_every_note_on_the_right_channel():
    song = C.compose_song("x", "funk", 4)
    for part in song.parts:
        ppq, tempo, events = _read_midi(C.midi_bytes(part, song.tempo, song.bars * 4 + 4))
        assert tempo == round(60e6 / song.tempo)
        ch = 9 if part.is_drums else 0
        ons = [e for e in events if e[1] == 0x90 | ch]
        offs = [e for e in events if e[1] == 0x80 | ch]
        assert len(ons) == len(offs) == len(part.notes)
        assert [e[2] for e in events if e[1] == 0xC0 | ch] == [part.program]
        assert sorted((e[2], e[3]) for e in ons) == sorted((n.pitch, n.vel) for n in part.notes)
        assert {(e[2], e[3]) for e in events if e[1] == 0xB0 | ch} >= {(91, 0), (93, 0)}  # dry: no reverb/chorus send
        first = min(part.notes, key=lambda n: n.start)
        assert min(e[0] for e in ons) == round(first.start * ppq)


SONG_ROLES = ["drums", "bass", "keys", "guitar", "pad", "lead"]
DRUM_ROLES = ["kick", "snare", "hihat", "tom_1", "tom_2", "tom_3", "overhead_l", "overhead_r"]


def test_engineer_conventions():
    lufs = [-25.0] * len(SONG_ROLES)
    for style in ENGINEERS:
        p = engineer_params(SONG_ROLES, lufs, style, seed=7, tempo=100)
        pan = dict(zip(SONG_ROLES, p["pan"][0].tolist()))
        gain = dict(zip(SONG_ROLES, p["gain_db"][0].tolist()))
        hp = dict(zip(SONG_ROLES, p["highpass_cutoff_hz"][0].tolist()))
        for r in ("drums", "bass", "lead"):
            assert abs(pan[r] - 0.5) <= 0.02
        assert pan["keys"] < 0.4 and pan["guitar"] > 0.6  # spread to opposite sides
        assert gain["lead"] > max(v for r, v in gain.items() if r != "lead") + 0.5  # the lead on top
        assert hp["bass"] < 45 and hp["drums"] < 45 and min(hp[r] for r in ("keys", "guitar", "pad", "lead")) >= 60
        assert float(p["reverb_send_db"][0, SONG_ROLES.index("bass")]) == -80.0
        assert float(p["ratio"][0, SONG_ROLES.index("pad")]) == 1.0
    nat = engineer_params(SONG_ROLES, lufs, "natural", 7, 100)
    pun = engineer_params(SONG_ROLES, lufs, "punchy", 7, 100)
    assert float(pun["ratio"][0].mean()) > float(nat["ratio"][0].mean())
    assert float(pun["reverb_t60_s"][0]) < float(nat["reverb_t60_s"][0])
    assert float(pun["pan"][0].sub(0.5).abs().mean()) > float(nat["pan"][0].sub(0.5).abs().mean())
    # drums: the hi-hat moves across when the perspective changes; the kick stays centred
    d_nat = engineer_params(DRUM_ROLES, [-25.0] * 8, "natural", 3, 120)["pan"][0]
    d_pun = engineer_params(DRUM_ROLES, [-25.0] * 8, "punchy", 3, 120)["pan"][0]
    assert d_nat[2] < 0.5 < d_pun[2] and abs(float(d_nat[0]) - 0.5) < 0.02 and d_nat[6] < 0.5 < d_nat[7]


def test_engineer_gain_follows_the_stem_level_and_is_seeded():
    a = engineer_params(SONG_ROLES, [-25.0] * 6, "natural", seed=1)
    b = engineer_params(SONG_ROLES, [-31.0] * 6, "natural", seed=1)
    c = engineer_params(SONG_ROLES, [-25.0] * 6, "natural", seed=2)
    assert torch.allclose(b["gain_db"] - a["gain_db"], torch.full_like(a["gain_db"], 6.0))
    assert torch.allclose(a["pan"], engineer_params(SONG_ROLES, [-25.0] * 6, "natural", seed=1)["pan"])
    assert not torch.allclose(a["pan"], c["pan"])


def test_engineer_mix_reaches_its_loudness_without_clipping():
    rng = np.random.default_rng(0)
    t = np.arange(4 * 44100) / 44100
    tracks = torch.tensor(np.stack([np.sin(2 * np.pi * f * t) * (0.05 + 0.05 * (np.sin(2 * np.pi * 2 * t) > 0))
                                    + 0.01 * rng.standard_normal(t.size) for f in (60, 110, 440, 660, 880, 1320)]),
                          dtype=torch.float32)
    for style, eng in ENGINEERS.items():
        y, p = engineer_mix(tracks, SONG_ROLES, style, seed=0, tempo=110)
        peak_db = 20 * math.log10(float(y.abs().max()))
        lufs = float(loudness_lufs(y.unsqueeze(0), 44100)[0])
        assert peak_db <= -0.99
        assert abs(lufs - eng["master_lufs"]) <= 0.6 or peak_db > -1.01  # on target unless peak-limited
        back = param_files.from_json(param_files.to_json(p, SONG_ROLES), dtype=torch.float64).params
        assert all(torch.allclose(back[k], v, atol=1e-5) for k, v in p.items())


def test_engineer_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown engineer"):
        engineer_params(["bass"], [-20.0], "loud", 0)
    with pytest.raises(ValueError, match="unknown track role"):
        engineer_params(["vocals"], [-20.0], "natural", 0)
    with pytest.raises(ValueError, match="must be finite"):
        engineer_params(["bass"], [-math.inf], "natural", 0)
    with pytest.raises(ValueError, match="2 roles but 1"):
        engineer_params(["bass", "lead"], [-20.0], "natural", 0)
    with pytest.raises(ValueError, match="missing"):
        param_files.from_json({"format": "automix-lite-params", "version": 2, "console": "full",
                               "tracks": [{"name": "a", "gain_db": 0.0}, {"name": "b"}]})
    with pytest.raises(ValueError, match="unknown style"):
        C.compose_song("x", "polka", 0)
    with pytest.raises(ValueError, match="unknown groove"):
        C.compose_drums("x", "polka", 0)


def test_ogg_files_are_made_byte_reproducible(tmp_path):
    import soundfile as sf

    from automix_lite.data.render import fix_ogg_serial

    x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)
    paths = [tmp_path / "a.ogg", tmp_path / "b.ogg"]
    for p in paths:
        sf.write(p, x, 44100, format="OGG", subtype="VORBIS")
        fix_ogg_serial(str(p))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    y = sf.read(paths[0])[0]  # libogg drops pages whose CRC is wrong: the length would change
    assert y.shape == x.shape and np.abs(y - x).max() < 0.01


def test_render_says_how_to_install_fluidsynth(monkeypatch):
    from automix_lite.data import render

    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install fluidsynth fluid-soundfont-gm"):
        render.check_tools(None)
    monkeypatch.setattr(render.shutil, "which", lambda name: "/usr/bin/fluidsynth")
    with pytest.raises(SystemExit, match="no General MIDI SoundFont found"):
        render.check_tools("/nonexistent/font.sf2")
