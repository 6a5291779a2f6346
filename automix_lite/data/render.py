"""Regenerate the bundled multitrack set under ``data/`` (run by ``make data``; taught in
``notebooks/11_datasets.ipynb``).

    python -m automix_lite.data.render [--out data] [--soundfont PATH] [--jobs N] [--quality Q]

1. Compose every song and drum passage (``automix_lite.data.compose``, seeded) and write one MIDI
   file per track.
2. Render each track on its own with FluidSynth and a General MIDI SoundFont (reverb and chorus
   off), 44.1 kHz. Drum passages are rendered per microphone (kick, snare, hi-hat, three toms: the
   notes each close microphone hears, plus a little bleed from its neighbours) and as a stereo kit
   for the overheads (cymbals at full level, drums at -6 dB, 3 ms later than the close microphones).
3. Trim to the song length, fade the ends (5 ms / 50 ms), take mono, set each stem to a seeded
   recording level (-30 to -20 LUFS, peaks at most -3 dBFS) and write it as Ogg Vorbis.
4. Mix every song with every engineer (``automix_lite.data.engineer``) from the decoded stems and
   store the console parameters as JSON.
5. Write ``manifest.json``: songs, splits, tracks, mixes and a SHA-256 checksum per file.

The output is deterministic for a given FluidSynth, SoundFont and libvorbis; other versions give
slightly different audio (and checksums), so the committed set is the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf

from .bundled import file_sha256
from .compose import CYMBALS, DRUM_GROOVES, DRUM_MICS, STYLES, compose_drums, compose_song, midi_bytes

REPO_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")

SR = 44100
SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                        "/usr/local/share/soundfonts/FluidR3_GM.sf2", "/opt/homebrew/share/soundfonts/FluidR3_GM.sf2")
INSTALL_HINT = ("Install them with\n"
                "    sudo apt-get install fluidsynth fluid-soundfont-gm      (Debian, Ubuntu)\n"
                "    sudo dnf install fluidsynth fluid-soundfont-gm          (Fedora)\n"
                "    brew install fluid-synth                                (macOS; then download FluidR3_GM.sf2\n"
                "                                                             and pass --soundfont PATH)")
SONGS_PER_STYLE = 5
PASSAGES_PER_GROOVE = 2
OVERHEAD_DELAY_S = 0.003
BLEED = {  # mic -> [(source mic, gain, delay s)]: what a close microphone also hears
    "kick": [("snare", 0.03, 0.0015)],
    "snare": [("hihat", 0.10, 0.001), ("kick", 0.04, 0.0015)],
    "hihat": [("snare", 0.16, 0.001)],
    "tom_1": [("snare", 0.06, 0.001), ("tom_2", 0.10, 0.001)],
    "tom_2": [("snare", 0.05, 0.001), ("tom_1", 0.10, 0.001)],
    "tom_3": [("snare", 0.04, 0.0015), ("kick", 0.05, 0.0015)],
}


def check_tools(soundfont: str | None) -> tuple[str, str]:
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        sys.exit("make data needs FluidSynth (the `fluidsynth` program) and a General MIDI SoundFont.\n" + INSTALL_HINT)
    candidates = [soundfont] if soundfont else [os.environ.get("AUTOMIX_SOUNDFONT")] + list(SOUNDFONT_CANDIDATES)
    for path in candidates:
        if path and os.path.isfile(path):
            return fluidsynth, path
    sys.exit(f"no General MIDI SoundFont found (looked for {', '.join(c for c in candidates if c)}).\n" + INSTALL_HINT)


def render(fluidsynth: str, soundfont: str, midi: bytes, seconds: float) -> np.ndarray:
    """MIDI bytes -> stereo float array (2, n) at 44.1 kHz, exactly ``seconds`` long."""
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        with open(mid, "wb") as f:
            f.write(midi)
        cmd = [fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SR), "-O", "float",
               "-T", "wav", "-F", wav, soundfont, mid]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        audio, sr = sf.read(wav, dtype="float64", always_2d=True)
    assert sr == SR, sr
    n = round(seconds * SR)
    out = np.zeros((2, n))
    m = min(n, audio.shape[0])
    out[:, :m] = audio[:m].T
    return out


def _delay(x: np.ndarray, seconds: float) -> np.ndarray:
    d = round(seconds * SR)
    return np.concatenate([np.zeros(x.shape[:-1] + (d,)), x[..., : x.shape[-1] - d]], -1) if d else x


def _fade(x: np.ndarray) -> np.ndarray:
    a, b = round(0.005 * SR), round(0.05 * SR)
    x = x.copy()
    x[..., :a] *= np.linspace(0, 1, a)
    x[..., -b:] *= np.linspace(1, 0, b) ** 2
    return x


def _lufs(x: np.ndarray) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(SR).integrated_loudness(x))


def render_song(job) -> dict:
    """Render one song's tracks: returns {name: mono float64 array} before level setting."""
    fluidsynth, soundfont, song = job
    seconds = song.seconds
    end = song.bars * 4 + 4  # beats: one bar of ring-out before the file ends
    out = {}
    if song.task == "songs":
        for part in song.parts:
            out[part.role] = render(fluidsynth, soundfont, midi_bytes(part, song.tempo, end), seconds).mean(0)
        return out
    kit = song.parts[0]
    close = {}
    for mic, notes in DRUM_MICS.items():
        if notes is None:
            continue
        sub = [n for n in kit.notes if n.pitch in notes]
        close[mic] = render(fluidsynth, soundfont, midi_bytes(kit, song.tempo, end, sub), seconds).mean(0)
    cym = render(fluidsynth, soundfont, midi_bytes(kit, song.tempo, end, [n for n in kit.notes if n.pitch in CYMBALS]), seconds)
    drums = render(fluidsynth, soundfont, midi_bytes(kit, song.tempo, end, [n for n in kit.notes if n.pitch not in CYMBALS]), seconds)
    over = _delay(cym + 0.5 * drums, OVERHEAD_DELAY_S)
    for mic, x in close.items():
        out[mic] = x + sum(g * _delay(close[src], d) for src, g, d in BLEED.get(mic, []))
    out["overhead_l"], out["overhead_r"] = over[0], over[1]
    return out


def song_plan() -> list:
    plan = []
    for si, style in enumerate(STYLES):
        for k in range(SONGS_PER_STYLE):
            plan.append(compose_song(f"song_{style}_{k + 1:02d}", style, seed=1000 + 100 * si + k))
    for gi, groove in enumerate(DRUM_GROOVES):
        for k in range(PASSAGES_PER_GROOVE):
            plan.append(compose_drums(f"drums_{groove}_{k + 1:02d}", groove, seed=5000 + 100 * gi + k))
    return plan


def assign_splits(plan: list) -> dict:
    """Song-level splits, stratified by style (songs) and balanced over grooves (drums); seeded."""
    rng = np.random.default_rng(2024)
    split = {}
    for style in STYLES:
        ids = [s.id for s in plan if s.task == "songs" and s.style == style]
        order = list(rng.permutation(ids))
        split[order[0]], split[order[1]] = "test", "val"
        split.update({i: "train" for i in order[2:]})
    drums = [s for s in plan if s.task == "drums"]
    grooves = list(rng.permutation(list(DRUM_GROOVES)))
    for g in grooves[:4]:  # one passage of four grooves each to test and to val
        ids = [s.id for s in drums if s.style == g]
        split[ids[0]] = "test"
    for g in grooves[4:8]:
        ids = [s.id for s in drums if s.style == g]
        split[ids[0]] = "val"
    split.update({s.id: "train" for s in drums if s.id not in split})
    return split


def _ogg_crc_table() -> list:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def fix_ogg_serial(path: str, serial: int = 0x616D6C74) -> None:
    """Give every page of an Ogg file the same stream serial number and recompute its CRC.

    libsndfile picks a random serial per file, so the same audio would give different bytes (and
    checksums) on every run; with a fixed serial the output is byte-for-byte reproducible.
    """
    data = bytearray(open(path, "rb").read())
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"{path}: not an Ogg page at byte {pos}")
        n_seg = data[pos + 26]
        size = 27 + n_seg + sum(data[pos + 27:pos + 27 + n_seg])
        data[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        data[pos + 22:pos + 26] = b"\0\0\0\0"
        crc = 0
        for byte in data[pos:pos + size]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
        data[pos + 22:pos + 26] = crc.to_bytes(4, "little")
        pos += size
    with open(path, "wb") as f:
        f.write(bytes(data))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=REPO_DATA)
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quality", type=float, default=0.4, help="Vorbis quality, 0 (small) to 1 (best)")
    ap.add_argument("--only", default=None, help="render only song ids containing this text (for trying things out)")
    args = ap.parse_args(argv)
    if args.only and os.path.realpath(args.out) == os.path.realpath(REPO_DATA):
        sys.exit("--only renders a subset: pass --out to another folder so the committed set stays complete.")
    fluidsynth, soundfont = check_tools(args.soundfont)
    version = subprocess.run([fluidsynth, "--version"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    print(f"{version}; SoundFont {soundfont}")

    import torch

    from .. import parameters as param_files
    from .engineer import ENGINEERS, engineer_mix

    plan = song_plan()
    if args.only:
        plan = [s for s in plan if args.only in s.id]
    splits = assign_splits(song_plan())
    out = os.path.abspath(args.out)
    t0 = time.time()
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        rendered = list(pool.map(render_song, [(fluidsynth, soundfont, s) for s in plan]))
    print(f"rendered {sum(len(r) for r in rendered)} tracks of {len(plan)} songs in {time.time() - t0:.0f} s")

    songs = []
    for song, tracks in zip(plan, rendered):
        folder = os.path.join(out, song.task, song.id)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        rng = np.random.default_rng([int(hashlib.sha256(song.id.encode()).hexdigest()[:8], 16), 3])
        entries, decoded = [], []
        parts = {p.role: p for p in song.parts}
        for name, x in tracks.items():
            x = _fade(x)
            rms = np.sqrt(np.mean(x ** 2))
            if not rms > 1e-4:
                raise RuntimeError(f"{song.id}/{name} rendered silent (RMS {rms:.2e}); check the SoundFont.")
            x = x * 10 ** ((rng.uniform(-30.0, -20.0) - _lufs(x)) / 20)
            x = x * min(1.0, 10 ** (-3 / 20) / np.abs(x).max())
            path = os.path.join(folder, f"{name}.ogg")
            sf.write(path, x.astype(np.float32), SR, format="OGG", subtype="VORBIS", compression_level=1 - args.quality)
            fix_ogg_serial(path)
            y = sf.read(path, dtype="float32")[0]
            decoded.append(y)
            part = parts.get(name, song.parts[0])
            if song.task == "songs":
                with open(os.path.join(folder, f"{name}.mid"), "wb") as f:
                    f.write(midi_bytes(part, song.tempo, song.bars * 4 + 4))
            entries.append({"file": f"{song.task}/{song.id}/{name}.ogg", "role": name, "instrument": part.instrument,
                            "program": part.program, "bank": part.bank, "lufs": round(_lufs(y.astype(np.float64)), 3),
                            "peak_db": round(float(20 * np.log10(np.abs(y).max())), 3)})
        if song.task == "drums":
            with open(os.path.join(folder, "kit.mid"), "wb") as f:
                f.write(midi_bytes(song.parts[0], song.tempo, song.bars * 4 + 4))
        n = min(len(y) for y in decoded)
        stems = torch.from_numpy(np.stack([y[:n] for y in decoded]))
        mixes = []
        for ei, engineer in enumerate(ENGINEERS):
            seed = int(hashlib.sha256(f"{song.id}/{engineer}".encode()).hexdigest()[:8], 16)
            mixed, params = engineer_mix(stems, [e["role"] for e in entries], engineer, seed, song.tempo,
                                         stem_lufs=[e["lufs"] for e in entries])
            files = [e["file"] for e in entries]
            data = param_files.to_json(params, [os.path.splitext(os.path.basename(f))[0] for f in files], SR,
                                       roles=[e["role"] for e in entries], files=files, song_id=song.id,
                                       engineer=engineer, seed=seed)
            rel = f"mixes/{song.id}/{engineer}.json"
            os.makedirs(os.path.join(out, "mixes", song.id), exist_ok=True)
            with open(os.path.join(out, rel), "w") as f:
                f.write(param_files.json_text(data))
            mixes.append({"engineer": engineer, "params": rel,
                          "peak_db": round(20 * math.log10(float(mixed.abs().max())), 3)})
        songs.append({"id": song.id, "task": song.task, "split": splits[song.id], "style": song.style,
                      "tempo": song.tempo, "key": song.key, "bars": song.bars, "seconds": round(n / SR, 4),
                      "samples": n, "tracks": entries, "mixes": mixes})
        print(f"  {song.id:26s} {splits[song.id]:5s} {len(entries)} tracks  {n / SR:5.2f} s")

    files = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs
                   if not f.startswith(".") and f not in ("manifest.json", "README.md"))
    files = [f for f in files if not f.startswith(".cache")]
    manifest = {
        "name": "automix-lite bundled multitrack set",
        "version": 1,
        "sample_rate": SR,
        "format": "mono Ogg Vorbis (quality %.2f), 16-bit-equivalent float decode" % args.quality,
        "renderer": f"{version}; {os.path.basename(soundfont)} (Fluid R3 GM, MIT licence)",
        "engineers": list(ENGINEERS),
        "songs": songs,
        "checksums": {f: file_sha256(os.path.join(out, f)) for f in files},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, f)) for f in files)
    print(f"{len(songs)} songs, {len(files)} files, {total / 1e6:.1f} MB in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
