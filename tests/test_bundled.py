"""The bundled multitrack set: manifest, files, splits, reproduce_mix and BundledDataset."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from automix_lite import data as D
from automix_lite import parameters as param_files
from automix_lite.data import bundled
from automix_lite.dsp import mix, param_names
from automix_lite.dsp.console import SPEC_BY_NAME
from automix_lite.data.compose import DRUM_MICS, STYLES

ROOT = D.data_dir()
MAN = D.manifest()
SONGS = MAN["songs"]
ENST_MICS = list(DRUM_MICS)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIX_CACHE", str(tmp_path / "cache"))


def test_manifest_describes_enough_songs_and_drum_passages():
    ids = [s["id"] for s in SONGS]
    assert len(ids) == len(set(ids))
    assert MAN["sample_rate"] == 44100 and set(MAN["engineers"]) >= {"natural", "punchy"}
    songs, drums = D.songs("songs"), D.songs("drums")
    assert len(songs) >= 24 and len(drums) >= 24
    assert {s["style"] for s in songs} == set(STYLES)
    counts = {len(s["tracks"]) for s in songs}
    assert min(counts) == 4 and max(counts) == 8 and len(counts) >= 4
    for s in songs:
        roles = [t["role"] for t in s["tracks"]]
        assert len(set(roles)) == len(roles) and {"drums", "bass", "lead"} <= set(roles), s["id"]
        assert set(roles) <= set(D.ROLES)
    for s in drums:
        assert [t["role"] for t in s["tracks"]] == ENST_MICS, s["id"]
    for s in SONGS:
        assert 8.0 <= s["seconds"] <= 12.0 and abs(s["samples"] / 44100 - s["seconds"]) < 1e-3
        assert s["split"] in D.SPLITS and s["task"] in D.TASKS and s["tempo"] > 0
        assert {m["engineer"] for m in s["mixes"]} == set(MAN["engineers"])


def test_every_file_is_listed_with_a_matching_checksum_and_the_set_fits_the_budget():
    assert D.verify() == []
    on_disk = {os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs
               if not f.startswith(".") and f not in ("manifest.json", "README.md")}
    assert on_disk == set(MAN["checksums"])  # nothing unlisted, nothing missing
    referenced = {t["file"] for s in SONGS for t in s["tracks"]} | {m["params"] for s in SONGS for m in s["mixes"]}
    assert referenced <= on_disk
    total = sum(os.path.getsize(os.path.join(ROOT, f)) for f in on_disk | {"manifest.json", "README.md"})
    assert total <= 40e6


def test_stems_are_mono_44k1_equal_length_not_silent_and_not_clipped():
    for s in SONGS:
        for t in s["tracks"]:
            info = sf.info(os.path.join(ROOT, t["file"]))
            assert (info.samplerate, info.channels) == (44100, 1), t["file"]
            assert info.frames >= s["samples"], t["file"]
        x = D.load_song(s["id"])["tracks"]
        assert x.shape == (len(s["tracks"]), s["samples"])
        peak = x.abs().amax(1)
        rms = x.pow(2).mean(1).sqrt()
        assert float(peak.max()) < 10 ** (-1 / 20), s["id"]  # at most -1 dBFS after decoding
        assert float(rms.min()) > 10 ** (-50 / 20), s["id"]  # no silent track
        lufs = torch.tensor([t["lufs"] for t in s["tracks"]])
        assert bool(((lufs > -34) & (lufs < -16)).all()), s["id"]


def test_splits_are_by_song_stratified_and_never_overlap():
    for task in D.TASKS:
        parts = {sp: {s["id"] for s in D.songs(task, sp)} for sp in D.SPLITS}
        assert all(parts.values())
        assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])
        assert sum(map(len, parts.values())) == len(D.songs(task))
    assert {s["style"] for s in D.songs("songs", "test")} == set(STYLES)


def test_reproduce_mix_is_the_console_applied_to_the_stems_and_is_deterministic(tmp_path):
    sid = D.songs("songs", "test")[0]["id"]
    expected = mix(D.load_song(sid)["tracks"].unsqueeze(0), 44100, D.mix_params(sid, "punchy"))[0]
    first = D.reproduce_mix(sid, "punchy", cache=False)
    assert torch.equal(first, D.reproduce_mix(sid, "punchy", cache=False))
    assert torch.allclose(first, expected, atol=1e-6)
    cached = D.reproduce_mix(sid, "punchy")
    files = os.listdir(tmp_path / "cache" / "mixes")
    assert len(files) == 1 and torch.equal(cached, first)
    assert torch.equal(D.reproduce_mix(sid, "punchy"), first)  # read back from the cache
    (tmp_path / "cache" / "mixes" / files[0]).write_bytes(b"damaged")
    assert torch.equal(D.reproduce_mix(sid, "punchy"), first)  # a damaged cache is rendered again
    assert not any(".npy" in f for _, _, fs in os.walk(ROOT) for f in fs)  # never inside data/
    half = D.reproduce_mix(sid, "punchy", sample_rate=22050)
    assert half.shape == (2, math.ceil(first.shape[-1] / 2))


@pytest.mark.parametrize("engineer", ["natural", "punchy"])
def test_stored_parameters_are_what_the_engineer_chooses_and_mixes_do_not_clip(engineer):
    for s in (D.songs("songs", "test")[0], D.songs("drums", "test")[0]):
        with open(os.path.join(ROOT, next(m["params"] for m in s["mixes"] if m["engineer"] == engineer))) as f:
            stored = json.load(f)
        y, params = D.engineer_mix(D.load_song(s["id"])["tracks"], [t["role"] for t in s["tracks"]], engineer,
                                   stored["seed"], s["tempo"], stem_lufs=[t["lufs"] for t in s["tracks"]])
        again = param_files.from_json(stored, dtype=torch.float64).params
        for k, v in again.items():
            assert torch.allclose(params[k], v, atol=1e-5), (s["id"], k)
        peak_db = 20 * math.log10(float(D.reproduce_mix(s["id"], engineer).abs().max()))
        recorded = next(m["peak_db"] for m in s["mixes"] if m["engineer"] == engineer)
        assert peak_db <= -0.9 and abs(peak_db - recorded) < 0.05


def test_dataset_items_have_the_documented_shapes_and_are_deterministic():
    ds = D.BundledDataset("songs", "val", "natural", segment_seconds=1.5, seed=3, length=10)
    assert len(ds) == 10
    item = ds[2]
    n = len(item["names"])
    assert item["tracks"].shape == (8, 66150) and item["mix"].shape == (2, 66150)
    assert item["params"].shape == (8, len(param_names()[0])) and item["bus"].shape == (3,)
    assert item["mask"].dtype == torch.bool and not item["mask"][n:].any()
    assert bool((item["tracks"][n:] == 0).all())
    assert 0 <= float(item["params"].min()) and float(item["params"].max()) <= 1
    again = D.BundledDataset("songs", "val", "natural", segment_seconds=1.5, seed=3, length=10)[2]
    assert torch.equal(item["tracks"], again["tracks"]) and torch.equal(item["mix"], again["mix"])
    other = D.BundledDataset("songs", "val", "natural", segment_seconds=1.5, seed=4, length=10)[2]
    assert other["start"] != item["start"]
    assert item["song"] == ds.song_ids[2] and ds[2 + len(ds.song_ids)]["song"] == item["song"]
    # the target is the stored mix cut at the same place
    full = D.reproduce_mix(item["song"], "natural")
    assert torch.equal(item["mix"], full[:, item["start"]:item["start"] + 66150])
    # normalised parameters map back to the stored real values
    real = D.mix_params(item["song"], "natural")
    col = param_names()[0].index("gain_db")
    assert torch.allclose(SPEC_BY_NAME["gain_db"].from_normalized(item["params"][:n, col]), real["gain_db"][0], atol=1e-3)


def test_collate_stacks_tensors_and_keeps_lists():
    ds = D.BundledDataset("songs", "val", "natural", segment_seconds=0.5, seed=1, length=6)
    items = [ds[i] for i in range(3)]
    batch = D.collate(items)
    assert set(batch) == set(items[0])
    for k in ("tracks", "mask", "mix", "params", "bus"):
        assert torch.equal(batch[k], torch.stack([it[k] for it in items])), k
    assert batch["tracks"].shape == (3, 8, 22050) and batch["mask"].dtype == torch.bool
    assert batch["names"] == [it["names"] for it in items]  # lists of different lengths stay lists
    assert batch["song"] == [it["song"] for it in items] and batch["start"] == [it["start"] for it in items]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=D.collate)
    assert [b["tracks"].shape[0] for b in loader] == [4, 2]
    with pytest.raises(ValueError, match="at least one item"):
        D.collate([])
    with pytest.raises(ValueError, match=r"cannot stack 'mix'"):
        D.collate([items[0], {**items[1], "mix": items[1]["mix"][:, :100]}])
    with pytest.raises(ValueError, match="keys"):
        D.collate([items[0], {k: v for k, v in items[1].items() if k != "bus"}])


def test_whole_songs_and_resampling():
    ds = D.BundledDataset("drums", "test", "punchy", segment_seconds=None, sample_rate=22050)
    assert len(ds) == len(D.songs("drums", "test"))
    item = ds[0]
    entry = D.song(item["song"])
    assert item["tracks"].shape[-1] == item["mix"].shape[-1] == math.ceil(entry["samples"] / 2)
    assert item["names"] == ENST_MICS


def test_gain_augmentation_keeps_the_target_and_moves_the_gain_parameter():
    kw = dict(task="drums", split="val", engineer="natural", segment_seconds=2.0, seed=1, target="render")
    plain, aug = D.BundledDataset(**kw)[1], D.BundledDataset(**kw, gain_augment_db=6.0)[1]
    ratio = (aug["tracks"].pow(2).mean(1) / plain["tracks"].pow(2).mean(1)).log10() * 10  # per-track dB change
    col = param_names()[0].index("gain_db")
    moved = (aug["params"][:, col] - plain["params"][:, col]) * 72.0  # gain_db spans 72 dB
    assert torch.allclose(ratio, -moved, atol=1e-3)
    assert float(ratio.abs().max()) > 1.0
    assert torch.allclose(aug["mix"], plain["mix"], atol=2e-5)
    stored = D.BundledDataset(**{**kw, "target": "stored"}, gain_augment_db=6.0)[1]
    assert torch.equal(stored["mix"], D.BundledDataset(**{**kw, "target": "stored"})[1]["mix"])


def test_fresh_targets_follow_the_engineer_but_vary():
    kw = dict(task="songs", split="train", engineer="natural", segment_seconds=2.0, target="fresh", length=3)
    a, b = D.BundledDataset(**kw, seed=0)[0], D.BundledDataset(**kw, seed=0)[0]
    assert torch.equal(a["mix"], b["mix"])
    stored = D.BundledDataset(**{**kw, "target": "render"}, seed=0)[0]
    assert not torch.allclose(a["params"], stored["params"])
    col = param_names()[0].index("pan")
    n = len(a["names"])
    assert torch.allclose(a["params"][:n, col], stored["params"][:n, col], atol=0.1)  # same conventions
    assert float(a["mix"].abs().max()) < 1.0


def test_silent_tracks_are_masked_and_left_out_of_rendered_targets():
    entry = next(s for s in D.songs("songs", "train") if any(t["role"] == "brass" for t in s["tracks"]))
    k = [t["role"] for t in entry["tracks"]].index("brass")  # brass plays short stabs: often silent
    ds = D.BundledDataset("songs", "train", "natural", segment_seconds=0.25, target="render", length=200)
    ds.entries = [entry]
    item = next((it for it in map(ds.__getitem__, range(len(ds))) if not it["mask"][k]), None)
    assert item is not None, "no segment with silent brass found"
    assert bool((item["tracks"][k] == 0).all()) and int(item["mask"].sum()) == len(entry["tracks"]) - 1
    stems = D.load_song(entry["id"])["tracks"][:, item["start"]:item["start"] + item["mix"].shape[-1]]
    assert float(stems[k].pow(2).mean().log10() * 10) <= -60
    keep = torch.ones(1, len(entry["tracks"]), dtype=torch.bool)
    keep[0, k] = False
    expected = mix(stems.unsqueeze(0), 44100, D.mix_params(entry["id"], "natural"), mask=keep)[0]
    assert torch.allclose(item["mix"], expected, atol=1e-6)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown engineer"):
        D.BundledDataset(engineer="loud")
    with pytest.raises(ValueError, match="task must be one of"):
        D.BundledDataset(task="vocals")
    with pytest.raises(ValueError, match="split must be one of"):
        D.BundledDataset(split="training")
    with pytest.raises(ValueError, match="segment_seconds"):
        D.BundledDataset(segment_seconds=60.0)
    with pytest.raises(ValueError, match="max_tracks"):
        D.BundledDataset(max_tracks=4)
    with pytest.raises(ValueError, match="target must be"):
        D.BundledDataset(target="live")
    with pytest.raises(ValueError, match="gain_augment_db"):
        D.BundledDataset(gain_augment_db=30)
    with pytest.raises(KeyError, match="no song 'nope'"):
        D.load_song("nope")
    with pytest.raises(ValueError, match="no mix by engineer"):
        D.mix_params(SONGS[0]["id"], "loud")
    with pytest.raises(IndexError):
        D.BundledDataset("drums", "test")[99]


def _copy_song(tmp_path, entry):
    """A data folder holding one song (files and a one-song manifest) that a test may damage."""
    root = tmp_path / "data"
    for rel in [f for f in MAN["checksums"] if f"/{entry['id']}/" in f]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), root / rel)
    man = {**MAN, "songs": [entry], "checksums": {k: v for k, v in MAN["checksums"].items() if f"/{entry['id']}/" in k}}
    (root / "manifest.json").write_text(json.dumps(man))
    return str(root)


def test_damaged_files_are_named_in_the_error(tmp_path):
    entry = D.songs("drums", "test")[0]
    root = _copy_song(tmp_path / "a", entry)
    assert D.verify(root) == [] and D.load_song(entry["id"], root=root)["tracks"].shape[0] == 8
    snare = os.path.join(root, entry["tracks"][1]["file"])

    root = _copy_song(tmp_path / "missing", entry)
    os.remove(os.path.join(root, entry["tracks"][1]["file"]))
    with pytest.raises(FileNotFoundError, match="snare.ogg.*points to no file"):
        D.load_song(entry["id"], root=root)
    assert any("snare.ogg: missing" in p for p in D.verify(root))

    root = _copy_song(tmp_path / "corrupt", entry)
    with open(os.path.join(root, entry["tracks"][1]["file"]), "wb") as f:
        f.write(b"not audio at all" * 100)
    with pytest.raises(ValueError, match="cannot decode .*snare.ogg"):
        D.load_song(entry["id"], root=root)
    assert any("snare.ogg: checksum differs" in p for p in D.verify(root))

    root = _copy_song(tmp_path / "short", entry)
    x = sf.read(snare)[0]
    sf.write(os.path.join(root, entry["tracks"][1]["file"]), x[:1000], 44100, format="OGG", subtype="VORBIS")
    with pytest.raises(ValueError, match="snare.ogg has 1000 samples .* same length"):
        D.load_song(entry["id"], root=root)

    root = _copy_song(tmp_path / "rate", entry)
    sf.write(os.path.join(root, entry["tracks"][1]["file"]), x, 22050, format="OGG", subtype="VORBIS")
    with pytest.raises(ValueError, match="snare.ogg is at 22050 Hz"):
        D.load_song(entry["id"], root=root)

    root = _copy_song(tmp_path / "params", entry)
    os.remove(os.path.join(root, entry["mixes"][0]["params"]))
    with pytest.raises(FileNotFoundError, match="points to no file"):
        D.mix_params(entry["id"], entry["mixes"][0]["engineer"], root=root)


def test_a_missing_data_folder_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIX_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="AUTOMIX_DATA"):
        bundled.data_dir(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        D.manifest(str(tmp_path))
