"""Issue 11, "the command line loses nothing": atomic outputs, protected inputs, clear errors for bad inputs,
results that used to be silently wrong, and deterministic training whatever the state of the mix cache."""

import errno
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from automix_lite import _checkpoint, _checks, cli, inference, train
from automix_lite import parameters as param_files
from automix_lite.data import bundled
from conftest import one_error as _one_error, run_cli as _run

SR = 44100
TINY_DMC = {"console": "basic", "widths": [4, 8], "dim": 8, "hidden": 16}


def _stems(folder, n=2, samples=SR // 2, sr=SR):
    os.makedirs(folder, exist_ok=True)
    t = np.arange(samples) / sr
    for k in range(n):
        sf.write(os.path.join(folder, f"{k:02d}_track.wav"), 0.3 * np.sin(2 * np.pi * (110 + 50 * k) * t), sr,
                 subtype="PCM_24")
    return str(folder)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained tiny DMC checkpoint (no training needed to test the command line)."""
    torch.manual_seed(0)
    cfg = train.load_config({"model": "dmc", "model_args": TINY_DMC, "max_tracks": 4})
    path = str(tmp_path_factory.mktemp("model") / "tiny.pt")
    train.save_checkpoint(path, train.build_model(cfg), cfg)
    return path


# ------------------------------------------------------------------ 1. atomic outputs, checked first


def test_overwrite_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, model_file, capsys, monkeypatch):
    stems, out = _stems(tmp_path / "s"), tmp_path / "mix.wav"
    out.write_bytes(b"the previous good mix")
    real = sf.write

    def dies_half_way(file, data, *a, **kw):  # a killed run or a full disk in the middle of writing
        real(file, data[: len(data) // 2], *a, **kw)
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(sf, "write", dies_half_way)
    status, _, err = _run(capsys, "mix", stems, "--model", model_file, "--out", out, "--overwrite")
    assert status == 2 and "no space left" in _one_error(err)
    assert out.read_bytes() == b"the previous good mix"
    assert sorted(os.listdir(tmp_path)) == ["mix.wav", "s"]  # no temporary file left behind
    monkeypatch.setattr(sf, "write", real)
    assert _run(capsys, "mix", stems, "--model", model_file, "--out", out, "--overwrite")[0] == 0
    assert sf.info(str(out)).channels == 2


def test_outputs_are_all_or_nothing_and_create_exclusive(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.json"
    with pytest.raises(FileExistsError, match="appeared while this run was working"):
        with _checks.atomic_outputs([a, b]) as (ta, tb):
            open(ta, "w").write("mix")
            open(tb, "w").write("params")
            b.write_text("written by a concurrent run")
    assert not a.exists() and b.read_text() == "written by a concurrent run"
    assert sorted(os.listdir(tmp_path)) == ["b.json"]
    with _checks.atomic_outputs([a, b], overwrite=True) as (ta, tb):
        open(ta, "w").write("mix")
        open(tb, "w").write("params")
    assert a.read_text() == "mix" and b.read_text() == "params"


def test_every_output_is_checked_before_any_work(tmp_path, model_file, capsys, monkeypatch):
    stems = _stems(tmp_path / "s")

    def no_work(*a, **kw):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr("automix_lite.pretrained.load", no_work)
    cases = [
        (["--out", tmp_path / "no" / "such" / "folder" / "mix.wav"], "does not exist"),
        (["--out", tmp_path / "mix.xyz"], "extension"),
        (["--out", tmp_path / "mix.wav", "--params-out", tmp_path], "is a folder"),
        (["--out", tmp_path / "mix.wav", "--params-out", tmp_path / "mix.wav"], "same file"),
    ]
    for extra, message in cases:
        status, _, err = _run(capsys, "mix", stems, "--model", model_file, *extra)
        assert status == 2 and message in _one_error(err), (extra, err)
    assert sorted(os.listdir(tmp_path)) == ["s"]


def test_an_unwritable_location_is_reported_and_nothing_is_written(tmp_path, model_file, capsys, monkeypatch):
    stems, locked = _stems(tmp_path / "s"), tmp_path / "locked"
    locked.mkdir()
    real_open = os.open

    def read_only(path, flags, *a, **kw):  # the tests may run as root, where chmod does not stop writes
        if os.path.dirname(os.fspath(path)) == str(locked) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", read_only)
    status, _, err = _run(capsys, "mix", stems, "--model", model_file, "--out", tmp_path / "mix.wav",
                          "--params-out", locked / "params.json")
    assert status == 2 and "read-only" in _one_error(err) and "--params-out" in err
    assert not (tmp_path / "mix.wav").exists() and os.listdir(locked) == []


# ------------------------------------------------------------------ 2. every input is protected


def test_no_output_may_be_an_input(tmp_path, model_file, capsys):
    stems = _stems(tmp_path / "s")
    model = tmp_path / "model.pt"
    model.write_bytes(open(model_file, "rb").read())
    before = model.read_bytes()
    status, _, err = _run(capsys, "mix", stems, "--model", model, "--out", tmp_path / "mix.wav",
                          "--params-out", model, "--overwrite")
    assert status == 2 and "--model checkpoint" in _one_error(err) and model.read_bytes() == before
    status, _, err = _run(capsys, "mix", stems, "--model", model, "--out", model, "--overwrite")
    assert status == 2 and "--model checkpoint" in _one_error(err) and model.read_bytes() == before
    params = tmp_path / "params.json"
    assert _run(capsys, "mix", stems, "--model", model, "--out", tmp_path / "mix.wav", "--params-out", params)[0] == 0
    text = params.read_text()
    status, _, err = _run(capsys, "render", stems, "--params", params, "--out", params, "--overwrite")
    assert status == 2 and "--params file" in _one_error(err) and params.read_text() == text


# ------------------------------------------------------------------ 4. clear errors


def test_stems_too_short_for_a_dmc(tmp_path, model_file, capsys):
    stems = _stems(tmp_path / "s", samples=1024)
    status, _, err = _run(capsys, "mix", stems, "--model", model_file, "--out", tmp_path / "m.wav")
    assert status == 2 and "1024 samples" in _one_error(err) and "at least 1025 samples (0.023 s" in err
    assert not (tmp_path / "m.wav").exists()


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_block_seconds_must_be_positive_and_finite(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["mix", str(tmp_path), "--model", "x", "--out", "m.wav", "--block-seconds", value])
    assert exc.value.code == 2
    assert "--block-seconds: must be a positive number of seconds" in _one_error(capsys.readouterr().err)


def test_a_named_pipe_among_the_stems_is_skipped_not_opened(tmp_path, model_file):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    stems = _stems(tmp_path / "s")
    os.mkfifo(os.path.join(stems, "02_pipe.wav"))
    done = subprocess.run([sys.executable, "-m", "automix_lite.cli", "mix", stems, "--model", model_file,
                           "--out", str(tmp_path / "m.wav")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "automix: warning: skipping 02_pipe.wav: not a regular file" in done.stderr
    assert sf.info(str(tmp_path / "m.wav")).frames == SR // 2


def test_every_bad_config_value_is_named(tmp_path, capsys):
    bad = {"steps": 0, "val_every": 0, "batch_size": 2.5, "lr": -1, "amp": "yes", "device": "gpu", "threads": 0,
           "seed": True, "gain_augment_db": 40, "model_args": {"widht": 4}, "task": "jazz"}
    with pytest.raises(ValueError) as exc:
        train.load_config(bad)
    for key in bad:
        assert f"{key} " in str(exc.value), key
    with pytest.raises(ValueError, match="model_args .* do not build a dmc model"):
        train.build_model(train.load_config({"model_args": {"console": "loud"}}))
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"steps": 0}))
    status, _, err = _run(capsys, "train", config, "--out", tmp_path / "run")
    assert status == 2 and "steps must be a whole number >= 1; got 0" in _one_error(err)
    assert not (tmp_path / "run").exists()


class _NotWeights:  # pickled by torch.save, refused by torch.load(weights_only=True)
    pass


def test_malformed_checkpoints_are_refused_clearly(tmp_path, model_file, capsys):
    ck = train.load_checkpoint(model_file)
    good = {"state_dict": ck["model"].state_dict(), "config": ck["config"], "history": {}, "metrics": {},
            "code_version": "x", "extra": {}}
    cases = {}
    cases["missing"] = {k: v for k, v in good.items() if k != "config"}
    shapes = dict(good["state_dict"])
    key = next(k for k, v in shapes.items() if v.ndim == 2)
    shapes[key] = torch.zeros(3, 3)
    cases["shape"] = {**good, "state_dict": shapes}
    for name, payload in cases.items():
        _checkpoint.write(str(tmp_path / f"{name}.pt"), payload, train.CHECKPOINT_FORMAT)
    torch.save(_NotWeights(), tmp_path / "pickle.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    for name, message in (("missing", "lacks config"), ("shape", "do not fit"), ("pickle", "Python objects"),
                          ("garbage", "damaged")):
        with pytest.raises(ValueError, match=message) as exc:
            train.load_checkpoint(str(tmp_path / f"{name}.pt"))
        assert "valid automix-lite model checkpoint" in str(exc.value) or name == "garbage"
        assert "weights_only" not in str(exc.value)  # never pass on torch's advice to turn the check off
        status, _, err = _run(capsys, "mix", _stems(tmp_path / "s"), "--model", tmp_path / f"{name}.pt",
                              "--out", tmp_path / "m.wav")
        assert status == 2 and "weights_only" not in _one_error(err)


def _params_file(tmp_path, model_file, capsys, pad=False, stems=None):
    stems = stems or _stems(tmp_path / "s")
    params = tmp_path / "params.json"
    extra = ["--pad"] if pad else []
    assert _run(capsys, "mix", stems, "--model", model_file, "--out", tmp_path / "mix.wav", "--params-out", params,
                *extra)[0] == 0
    return stems, params, json.loads(params.read_text())


def test_params_files_with_wrong_types_or_values(tmp_path, model_file, capsys):
    stems, params, data = _params_file(tmp_path, model_file, capsys)
    edits = [
        (lambda d: d.update(bus=[1]), '"bus" must be an object'),
        (lambda d: d["tracks"][0].update(gain_db=True), "'gain_db' must be a finite number"),
        (lambda d: d["tracks"][1].update(pan="left"), "'pan' must be a finite number"),
        (lambda d: d.update(sample_rate=10 ** 9), '"sample_rate" must be a whole number of Hz'),
        (lambda d: d.update(format="automix-lite-params/9"), "format 'automix-lite-params/9'"),
        (lambda d: d.update(console="vintage"), '"console" must say which console'),
        (lambda d: d.pop("console"), '"console" must say which console'),
        (lambda d: d.update(pad="yes"), '"pad" must be true or false'),
        (lambda d: d["tracks"][1].update(name=d["tracks"][0]["name"]), 'its own "name"'),
        # a neutral bus key used to switch a basic file to the full console and change the mix
        (lambda d: d.update(bus={"reverb_return_db": -60.0}), 'not a parameter of the basic console'),
    ]
    for k, (edit, message) in enumerate(edits):
        d = json.loads(json.dumps(data))
        edit(d)
        path = tmp_path / f"edit{k}.json"
        path.write_text(json.dumps(d))
        with pytest.raises(ValueError, match=message):
            param_files.read(str(path))
        status, _, err = _run(capsys, "render", stems, "--params", path, "--out", tmp_path / f"r{k}.wav")
        assert status == 2 and message.split("'")[0].strip('"') in _one_error(err)
        assert not (tmp_path / f"r{k}.wav").exists()


# ------------------------------------------------------------------ 5. results that were silently wrong


def test_render_refuses_silent_stems(tmp_path, model_file, capsys):
    stems, params, _ = _params_file(tmp_path, model_file, capsys)
    silent = tmp_path / "silent"
    silent.mkdir()
    for name in os.listdir(stems):
        sf.write(str(silent / name), np.zeros(SR // 2), SR, subtype="PCM_24")
    status, _, err = _run(capsys, "render", silent, "--params", params, "--out", tmp_path / "r.wav")
    assert status == 2 and "every stem is silent" in _one_error(err) and not (tmp_path / "r.wav").exists()


def test_mix_cache_rerenders_zeroed_or_misshapen_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIX_CACHE", str(tmp_path))
    song = sorted(bundled.songs(), key=lambda s: (s["samples"], len(s["tracks"])))[0]
    engineer = song["mixes"][0]["engineer"]
    ref = bundled.reproduce_mix(song["id"], engineer)
    (cached,) = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".npy")]
    for broken in (np.zeros_like(ref.numpy()), ref.numpy()[:, :100], np.full_like(ref.numpy(), np.nan)):
        np.save(cached, broken)
        again = bundled.reproduce_mix(song["id"], engineer)
        assert again.shape == ref.shape and torch.equal(again, ref)
        assert np.load(cached).shape == tuple(ref.shape)


def test_history_json_is_strict_json():
    safe = train._json_safe({"best_val": math.inf, "val_loss": [1.0, math.nan], "step": [1, 2]})
    assert safe == {"best_val": None, "val_loss": [1.0, None], "step": [1, 2]}
    json.dumps(safe, allow_nan=False)


def test_automix_data_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIX_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="AUTOMIX_DATA=.*nowhere.*holds no manifest.json"):
        bundled.data_dir()


# ------------------------------------------------------------------ 3 and 6. train: no run replaced, determinism


def test_train_refuses_another_run_and_same_seed_gives_same_losses_cold_or_warm(tmp_path, monkeypatch, capsys):
    """numba's OpenMP start used to reset torch's thread count, so a cold mix cache (rendering the targets
    with the DSP console) changed the losses of a run with ``threads: 1``."""
    monkeypatch.setenv("AUTOMIX_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": "dmc", "model_args": TINY_DMC, "max_tracks": 8, "steps": 2,
                                  "batch_size": 1, "segment_seconds": 1.0, "val_items": 1, "val_every": 1,
                                  "log_every": 1, "threads": 1, "seed": 3}))
    out = tmp_path / "run"
    torch.set_num_threads(2)  # what a fresh process on two cores has
    assert _run(capsys, "train", config, "--out", out, "--no-progress")[0] == 0  # cold cache
    cold = json.loads((out / "history.json").read_text())
    status, _, err = _run(capsys, "train", config, "--out", out, "--no-progress")
    assert status == 2 and "already holds a training run" in _one_error(err) and "--overwrite" in err
    assert _run(capsys, "train", config, "--out", out, "--no-progress", "--overwrite")[0] == 0  # warm cache
    warm = json.loads((out / "history.json").read_text())
    assert cold["threads"] == warm["threads"] == 1
    assert cold["loss"] == warm["loss"] and cold["val_loss"] == warm["val_loss"]
    assert sorted(f for f in os.listdir(out)) == ["best.pt", "history.json", "last.pt", "loss_curve.png"]


# ------------------------------------------------------------------ 7. small things


def test_stems_a_few_samples_apart_are_padded_silently(tmp_path, recwarn):
    stems = _stems(tmp_path / "s")
    sf.write(os.path.join(stems, "02_short.wav"), 0.1 * np.ones(SR // 2 - 1), SR, subtype="PCM_24")
    tracks, _ = inference.read_stems(stems)
    assert tracks.shape == (3, SR // 2) and tracks[2, -1] == 0
    assert not [w for w in recwarn if "padding" in str(w.message)]
    sf.write(os.path.join(stems, "02_short.wav"), 0.1 * np.ones(SR // 2 - 10), SR, subtype="PCM_24")
    with pytest.raises(ValueError, match="different lengths.*Pass --pad"):
        inference.read_stems(stems)


def test_pad_is_recorded_so_render_reproduces_mix(tmp_path, model_file, capsys):
    stems = _stems(tmp_path / "s")
    sf.write(os.path.join(stems, "02_short.wav"), 0.2 * np.ones(SR // 4), SR, subtype="PCM_24")
    _, params, data = _params_file(tmp_path, model_file, capsys, pad=True, stems=stems)
    assert data["pad"] is True
    assert _run(capsys, "render", stems, "--params", params, "--out", tmp_path / "again.wav")[0] == 0  # no --pad
    mixed, rendered = sf.read(str(tmp_path / "mix.wav"))[0], sf.read(str(tmp_path / "again.wav"))[0]
    assert mixed.shape == rendered.shape and np.abs(mixed - rendered).max() < 1e-5


def test_two_new_runs_into_one_folder_cannot_both_start(tmp_path):
    cfg = {"model": "dmc", "model_args": TINY_DMC, "steps": 1}
    train._check_out(str(tmp_path / "run"), cfg, resume=False, overwrite=False)  # the first run starts
    with pytest.raises(FileExistsError, match="in use by another training run"):
        train._check_out(str(tmp_path / "run"), cfg, resume=False, overwrite=False)
    train._check_out(str(tmp_path / "run"), cfg, resume=False, overwrite=True)  # explicit: goes on
