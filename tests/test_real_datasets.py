"""Loaders for real multitrack dataset layouts (automix_lite.data.real), on tiny fixture folders."""

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from automix_lite.data import DSD100, MUSDB18HQ, ENSTDrums, MedleyDB


def write(path, sr=22050, seconds=0.5, freq=None, channels=1, seed=0):
    """A sine (freq given) or noise WAV; returns the written (frames, channels) array."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(sr * seconds)
    if freq is not None:
        t = np.arange(n) / sr
        a = 0.5 * np.sin(2 * np.pi * freq * t)
        a = np.stack([a * (c + 1) / channels for c in range(channels)], axis=1)
    else:
        a = 0.3 * np.random.default_rng(seed).standard_normal((n, channels))
    sf.write(path, a, sr, subtype="FLOAT")
    return a


def make_enst(root, sr=22050, seconds=0.5, drummers=("drummer_1", "drummer_2"), takes=("001_hits", "002_groove")):
    mics = ["overhead_R", "kick", "snare", "hi-hat", "overhead_L", "tom_1"]
    for d in drummers:
        for i, take in enumerate(takes):
            for k, mic in enumerate(mics):
                write(f"{root}/{d}/audio/{mic}/{take}.wav", sr, seconds, seed=k + 10 * i)
            write(f"{root}/{d}/audio/wet_mix/{take}.wav", sr, seconds, channels=2)
            write(f"{root}/{d}/audio/dry_mix/{take}.wav", sr, seconds, channels=1)
        write(f"{root}/{d}/audio/accompaniment/{takes[0]}.wav", sr, seconds, channels=2)
    return root


def make_medley(root, songs=("SongA", "SongB"), n_stems=3, sr=22050, seconds=0.5, stereo=True, metadata=True):
    for song in songs:
        for k in range(1, n_stems + 1):
            write(f"{root}/{song}/{song}_STEMS/{song}_STEM_{k:02d}.wav", sr, seconds, channels=2 if stereo else 1, seed=k)
        write(f"{root}/{song}/{song}_MIX.wav", sr, seconds, channels=2)
        if metadata:
            with open(f"{root}/{song}/{song}_METADATA.yaml", "w") as fh:
                fh.write("title: x\nstems:\n")
                for k in range(1, n_stems + 1):
                    fh.write(f"  S{k:02d}:\n    filename: {song}_STEM_{k:02d}.wav\n    instrument: inst{k}\n")
    return root


def make_musdb(root, sr=22050, seconds=0.5, counts=(("train", 2), ("test", 1))):
    for split, n in counts:
        for i in range(n):
            d = f"{root}/{split}/Track {i}"
            for k, s in enumerate(["mixture", "drums", "bass", "other", "vocals"]):
                write(f"{d}/{s}.wav", sr, seconds, channels=2, seed=k)
    return root


def make_dsd(root, sr=22050, seconds=0.5):
    for split, n in (("Dev", 2), ("Test", 3)):
        for i in range(n):
            write(f"{root}/Mixtures/{split}/{i:03d} - Song/mixture.wav", sr, seconds, channels=2)
            for k, s in enumerate(["bass", "drums", "other", "vocals"]):
                write(f"{root}/Sources/{split}/{i:03d} - Song/{s}.wav", sr, seconds, channels=2, seed=k)
    return root


def peak_hz(x, sr):
    a = x.double().numpy()
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a))))
    return np.argmax(spec) * sr / len(a)


# discovery, counts, shapes -------------------------------------------------------------------


def test_enst_discovery_shapes_and_order(tmp_path):
    root = make_enst(str(tmp_path / "enst"))
    ds = ENSTDrums(root, sample_rate=22050)
    assert len(ds) == 4
    assert ds.songs[0] == "drummer_1/001_hits"
    item = ds[0]
    assert item["tracks"].shape == (8, 11025) and item["tracks"].dtype == torch.float32
    assert item["mask"].tolist() == [True] * 6 + [False] * 2
    assert item["names"] == ["kick", "snare", "hi-hat", "tom_1", "overhead_L", "overhead_R"]  # no accompaniment
    assert item["mix"].shape == (2, 11025) and item["mix"].dtype == torch.float32
    assert torch.all(item["tracks"][6:] == 0)
    assert len(ENSTDrums(root, split="drummer_2")) == 2
    dry = ENSTDrums(root, mix="dry", sample_rate=22050)[0]["mix"]
    assert torch.equal(dry[0], dry[1])  # mono mix duplicated
    with pytest.raises(ValueError, match="drummer_9"):
        ENSTDrums(root, split="drummer_9")


def test_medleydb_discovery_metadata_and_stereo_downmix(tmp_path):
    root = make_medley(str(tmp_path / "medley"))
    ds = MedleyDB(root, sample_rate=22050, max_tracks=5)
    assert len(ds) == 2 and ds.songs == ["SongA", "SongB"]
    item = ds[1]
    assert item["song"] == "SongB"
    assert item["names"] == ["inst1", "inst2", "inst3"]
    assert item["tracks"].shape == (5, 11025)
    assert item["mask"].tolist() == [True, True, True, False, False]
    stem, _ = sf.read(f"{root}/SongB/SongB_STEMS/SongB_STEM_02.wav", dtype="float32")
    assert torch.allclose(item["tracks"][1], torch.from_numpy(stem.mean(axis=1)), atol=1e-6)
    assert len(MedleyDB(root, split=["SongA"])) == 1


def test_medleydb_without_metadata_names_stems(tmp_path):
    root = make_medley(str(tmp_path / "m"), songs=("S",), n_stems=2, stereo=False, metadata=False)
    assert MedleyDB(root, sample_rate=22050)[0]["names"] == ["STEM_01", "STEM_02"]


def test_musdb_and_dsd100_splits(tmp_path):
    root = make_musdb(str(tmp_path / "musdb"))
    assert len(MUSDB18HQ(root, split="train")) == 2
    assert len(MUSDB18HQ(root, split="test")) == 1
    both = MUSDB18HQ(root, sample_rate=22050)
    assert len(both) == 3 and both.songs[0] == "train/Track 0"
    item = both[0]
    assert item["names"] == ["drums", "bass", "other", "vocals"]
    assert item["tracks"].shape == (4, 11025) and item["mask"].all()
    dsd = make_dsd(str(tmp_path / "DSD100"))
    assert len(DSD100(dsd, split="train")) == 2 and len(DSD100(dsd, split="test")) == 3
    assert DSD100(dsd, split="test", sample_rate=22050)[0]["mix"].shape == (2, 11025)
    with pytest.raises(ValueError, match="split"):
        MUSDB18HQ(root, split="valid")


# sample rate and segments -------------------------------------------------------------------


def test_resampling_is_honoured(tmp_path):
    root = str(tmp_path / "m")
    write(f"{root}/S/S_STEMS/S_STEM_01.wav", 48000, 0.5, freq=1000.0)
    write(f"{root}/S/S_STEMS/S_STEM_02.wav", 48000, 0.5)  # noise: a segment matches at one start only
    write(f"{root}/S/S_MIX.wav", 48000, 0.5, freq=1000.0, channels=2)
    item = MedleyDB(root, sample_rate=44100)[0]
    assert item["tracks"].shape[-1] == item["mix"].shape[-1] == math.ceil(24000 * 44100 / 48000)
    assert abs(peak_hz(item["tracks"][0], 44100) - 1000.0) < 5.0
    assert abs(peak_hz(item["mix"][1], 44100) - 1000.0) < 5.0
    # segments read only a span of the file, yet match the fully resampled signal
    seg = MedleyDB(root, sample_rate=44100, segment_seconds=0.1, seed=3)[0]
    assert seg["tracks"].shape == (24, 4410)
    full = item["tracks"][1]
    starts = [s for s in range(full.shape[-1] - 4410 + 1) if torch.allclose(full[s : s + 4410], seg["tracks"][1], atol=1e-5)]
    assert len(starts) == 1
    assert abs(peak_hz(seg["tracks"][0], 44100) - 1000.0) < 15.0


def test_segments_are_deterministic(tmp_path):
    root = make_musdb(str(tmp_path / "musdb"), seconds=1.0)
    a = MUSDB18HQ(root, split="train", sample_rate=22050, segment_seconds=0.2, seed=1)
    b = MUSDB18HQ(root, split="train", sample_rate=22050, segment_seconds=0.2, seed=1)
    c = MUSDB18HQ(root, split="train", sample_rate=22050, segment_seconds=0.2, seed=2)
    x, y, z = a[0], b[0], c[0]
    assert x["tracks"].shape == (4, 4410) and x["mix"].shape == (2, 4410)
    assert torch.equal(x["tracks"], y["tracks"]) and torch.equal(x["mix"], y["mix"])
    assert not torch.equal(x["tracks"], z["tracks"])
    assert not torch.equal(a[0]["tracks"], a[1]["tracks"])  # index enters the seed too


def test_segment_longer_than_song_is_zero_padded(tmp_path):
    root = make_musdb(str(tmp_path / "musdb"), seconds=0.1, counts=(("test", 1),))
    item = MUSDB18HQ(root, split="test", sample_rate=22050, segment_seconds=0.2)[0]
    assert item["tracks"].shape == (4, 4410)
    assert torch.all(item["tracks"][:, 2205:] == 0) and item["tracks"][:, :2205].abs().sum() > 0


# errors -------------------------------------------------------------------------------------


def test_missing_root_and_wrong_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MedleyDB(tmp_path / "nowhere")
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"<root>/<Song>/<Song>_MIX.wav"):
        MedleyDB(tmp_path / "empty")
    with pytest.raises(ValueError, match="drummer_N/audio"):
        ENSTDrums(tmp_path / "empty")
    with pytest.raises(ValueError, match="mixture"):
        MUSDB18HQ(tmp_path / "empty")
    with pytest.raises(ValueError, match="Mixtures/Dev"):
        DSD100(tmp_path / "empty")


def test_mismatched_lengths_and_rates_name_the_file(tmp_path):
    root = make_medley(str(tmp_path / "m"), songs=("S",), n_stems=2)
    write(f"{root}/S/S_STEMS/S_STEM_02.wav", 22050, 0.4)
    with pytest.raises(ValueError, match=r"S_STEM_02\.wav.*same length"):
        MedleyDB(root)[0]
    write(f"{root}/S/S_STEMS/S_STEM_02.wav", 48000, 0.5)
    with pytest.raises(ValueError, match=r"S_STEM_02\.wav.*48000 Hz"):
        MedleyDB(root)[0]


def test_too_many_tracks(tmp_path):
    root = make_medley(str(tmp_path / "m"), songs=("S",), n_stems=4)
    with pytest.raises(ValueError, match=r"4 tracks but max_tracks=3.*max_tracks=4"):
        MedleyDB(root, max_tracks=3)


def test_corrupt_file_is_named(tmp_path):
    root = make_musdb(str(tmp_path / "musdb"), counts=(("test", 1),))
    with open(f"{root}/test/Track 0/bass.wav", "wb") as fh:
        fh.write(b"RIFF this is not audio")
    ds = MUSDB18HQ(root, split="test")
    with pytest.raises(ValueError, match=r"bass\.wav"):
        ds[0]
