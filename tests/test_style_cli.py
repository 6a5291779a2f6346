"""`automix style-track` and `automix style`: the training-free route (--optimise), the parameter files, and the
same guarantees as `automix mix` (no overwrite without --overwrite, no output over an input, clear errors).

Run in-process (``run_cli``) so that torch and the numba kernels load once; the optimisations are short (1-1.2 s of
audio, a few steps): this file takes about 9 s on the shared 2-core CPU (15 s with the start-up)."""

import json
import os
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, one_error, run_cli, write_stems, write_wav
from scipy.signal import lfilter, resample_poly

from automix_lite import style_optimise



def _recording(seconds=1.2, seed=1, scale=0.2):
    """A gated noise burst: a plain input with dynamics."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 3 * t) > 0)


def _reference(seconds=1.2, seed=2, stereo=False):
    """Dark (one-pole low-passed), steady noise: a style far from the input's."""
    rng = np.random.default_rng(seed)
    left = lfilter([1.0], [1.0, -0.9], 0.03 * rng.standard_normal(int(seconds * SR)))
    if not stereo:
        return left
    return np.stack([left, 0.8 * left + 0.01 * rng.standard_normal(left.size)])


@pytest.fixture
def files(tmp_path):
    """IN (mono), a mono and a stereo reference, a stems folder."""
    return {"in": write_wav(tmp_path / "in.wav", _recording()),
            "ref": write_wav(tmp_path / "ref.wav", _reference()),
            "ref2": write_wav(tmp_path / "ref_mix.wav", _reference(stereo=True)),
            "stems": write_stems(tmp_path / "stems", n=3, seconds=1.0), "dir": tmp_path}


def _distance(path_a, path_b):
    a, sr = sf.read(path_a, dtype="float64", always_2d=True)
    b, _ = sf.read(path_b, dtype="float64", always_2d=True)
    fa = style_optimise.style_features(torch.from_numpy(a.T[None].copy()), sr)
    fb = style_optimise.style_features(torch.from_numpy(b.T[None].copy()), sr)
    return float(style_optimise.style_distance(fa, fb)[0])


def test_style_track_moves_toward_the_reference_and_writes_its_settings(capsys, files):
    d = files["dir"]
    ref22 = write_wav(d / "ref22.wav", resample_poly(_reference(), 1, 2), sr=22050)  # resampled with a notice
    out, pj = d / "out.wav", d / "chain.json"
    status, stdout, err = run_cli(capsys, "style-track", files["in"], "--reference", ref22, "--out", out,
                                  "--params-out", pj, "--optimise", "--steps", 12)
    assert status == 0, err
    assert re.search(r"automix: warning: --reference .*ref22\.wav is at 22050 Hz; resampling it to 44100 Hz", err)
    start, final = map(float, re.search(r"style objective ([\d.]+) -> ([\d.]+)", stdout).groups())
    assert final < start - 1.0, stdout
    y, sr = sf.read(out, always_2d=True)
    assert sr == SR and y.shape == (int(1.2 * SR), 1)  # mono in, mono out, same length
    assert _distance(out, files["ref"]) < _distance(files["in"], files["ref"]) - 1.0
    data = json.loads(pj.read_text())
    assert {k: data[k] for k in ("format", "version", "sample_rate", "method", "objective")} == {
        "format": "automix-lite-track-chain", "version": 1, "sample_rate": SR, "method": "gradient",
        "objective": "style"}
    assert sorted(data["params"]) == sorted(style_optimise.TRACK_NAMES)
    # the file renders the output: process_track with its settings (before the peak limit, not needed here)
    x, _ = sf.read(files["in"], dtype="float32")
    again = style_optimise.process_track(torch.from_numpy(x), SR, data["params"])[0, 0].double().numpy()
    assert np.abs(again - y[:, 0]).max() < 1e-4
    assert not [f for f in os.listdir(d) if f.startswith(".")]  # no temporary files left


def test_style_mix_re_renders_from_its_parameter_file(capsys, files):
    d = files["dir"]
    out, pj, again = d / "mix.wav", d / "mix.json", d / "again.wav"
    status, stdout, err = run_cli(capsys, "style", files["stems"], "--reference", files["ref2"], "--out", out,
                                  "--params-out", pj, "--optimise", "--steps", 6)
    assert status == 0, err
    start, final = map(float, re.search(r"style objective ([\d.]+) -> ([\d.]+)", stdout).groups())
    assert final < start, stdout
    data = json.loads(pj.read_text())
    assert data["console"] == "full" and [t["name"] for t in data["tracks"]] == ["00_track", "01_track", "02_track"]
    status, _, err = run_cli(capsys, "render", files["stems"], "--params", pj, "--out", again)
    assert status == 0, err
    a, sra = sf.read(out, always_2d=True)
    b, srb = sf.read(again, always_2d=True)
    assert sra == srb == SR and a.shape == b.shape == (SR, 2)
    assert np.abs(a - b).max() <= 2 ** -22  # the same mix (24-bit PCM)
    assert not [f for f in os.listdir(d) if f.startswith(".")]


def test_style_track_with_the_bundled_model_and_render_of_its_chain_file(capsys, files):
    d = files["dir"]
    out, pj, again = d / "out.wav", d / "chain.json", d / "again.wav"
    status, stdout, err = run_cli(capsys, "style-track", files["in"], "--reference", files["ref"], "--out", out,
                                  "--params-out", pj)
    assert status == 0, err
    assert "with style_track (one pass)" in stdout
    data = json.loads(pj.read_text())
    assert data["method"] == "model" and data["model"] == "style_track"
    assert sorted(data["params"]) == sorted(style_optimise.TRACK_NAMES)
    for spec in style_optimise.TRACK_SPECS:  # predicted settings lie in the chain's ranges
        assert spec.low - 1e-6 <= data["params"][spec.name] <= spec.high + 1e-6, spec.name
    # the output is the package's transfer() with the bundled model (quality: tests/test_style_track.py)
    from automix_lite import pretrained
    from automix_lite.models import style

    x, _ = sf.read(files["in"], dtype="float32", always_2d=True)
    r, _ = sf.read(files["ref"], dtype="float32", always_2d=True)
    y, params = style.transfer(pretrained.load("style_track"), torch.from_numpy(x.T.copy()), torch.from_numpy(r.T.copy()), SR)
    assert params == pytest.approx(data["params"], abs=1e-5)
    written, _ = sf.read(out, always_2d=True)
    assert np.abs(written[:, 0] - y[0].double().numpy()).max() < 1e-4 and np.abs(written - x).max() > 1e-3
    status, _, err = run_cli(capsys, "render", files["in"], "--params", pj, "--out", again)
    assert status == 0, err
    a, _ = sf.read(out, always_2d=True)
    b, _ = sf.read(again, always_2d=True)
    assert a.shape == b.shape == (int(1.2 * SR), 1) and np.abs(a - b).max() <= 2 ** -22  # the file renders it


def test_style_with_the_bundled_model_re_renders_from_its_parameter_file(capsys, files):
    d = files["dir"]
    out, pj, again = d / "mix.wav", d / "mix.json", d / "again.wav"
    status, stdout, err = run_cli(capsys, "style", files["stems"], "--reference", files["ref2"], "--out", out,
                                  "--params-out", pj)
    assert status == 0, err
    assert "with style_mix (one pass)" in stdout
    data = json.loads(pj.read_text())
    assert data["console"] == "full" and data["model"] == "style_mix"
    status, _, err = run_cli(capsys, "render", files["stems"], "--params", pj, "--out", again)
    assert status == 0, err
    a, _ = sf.read(out, always_2d=True)
    b, _ = sf.read(again, always_2d=True)
    assert a.shape == b.shape == (SR, 2) and np.abs(a - b).max() <= 2 ** -22


@pytest.mark.parametrize("command", ["style-track", "style"])
def test_a_model_of_another_kind_is_refused(capsys, files, command):
    src = files["in"] if command == "style-track" else files["stems"]
    out = files["dir"] / "out.wav"
    other, kind = "dmc_basic_songs", "dmc"
    want = "style-track model" if command == "style-track" else "multitrack style model"
    status, _, err = run_cli(capsys, command, src, "--reference", files["ref2"], "--out", out, "--model", other)
    assert status == 2 and f"--model {other} is a {kind} model, not a {want}" in one_error(err), err
    assert not out.exists()


def test_render_of_a_chain_file_refuses_a_mix_parameter_file_and_keeps_inputs(capsys, files):
    d = files["dir"]
    pj = d / "mix.json"
    status, _, err = run_cli(capsys, "style", files["stems"], "--reference", files["ref2"], "--out", d / "m.wav",
                             "--params-out", pj, "--optimise", "--steps", 2)
    assert status == 0, err
    status, _, err = run_cli(capsys, "render", files["in"], "--params", pj, "--out", d / "o.wav")
    assert status == 2 and "not a track-chain file" in one_error(err), err
    status, _, err = run_cli(capsys, "render", files["in"], "--params", pj, "--out", files["in"])
    assert status == 2 and "input" in one_error(err), err
    assert not (d / "o.wav").exists()


@pytest.mark.parametrize("command", ["style-track", "style"])
def test_no_overwrite_without_overwrite(capsys, files, command):
    d = files["dir"]
    src = files["in"] if command == "style-track" else files["stems"]
    old = d / "old.wav"
    old.write_bytes(b"keep me")
    for flags in (["--out", old], ["--out", d / "new.wav", "--params-out", old]):
        status, stdout, err = run_cli(capsys, command, src, "--reference", files["ref2"], *flags, "--optimise")
        assert status == 2 and "already exists; pass --overwrite" in one_error(err), err
        assert "optimised" not in stdout  # refused before any work
        assert old.read_bytes() == b"keep me" and not (d / "new.wav").exists()


@pytest.mark.parametrize("command, out, params_out, expect", [
    ("style-track", "IN", None, "is the input IN"),
    ("style-track", "REF", None, "is the --reference"),
    ("style-track", "new.wav", "IN", "is the input IN"),
    ("style", "REF", None, "is the --reference mix"),
    ("style", "STEM", None, "is one of the input stems"),
    ("style", "new.wav", "INSIDE", "lies in the stems folder"),
])
def test_an_output_that_is_an_input_is_refused(capsys, files, command, out, params_out, expect):
    paths = {"IN": files["in"], "REF": files["ref2"], "STEM": os.path.join(files["stems"], "00_track.wav"),
             "INSIDE": os.path.join(files["stems"], "p.json"), "new.wav": str(files["dir"] / "new.wav")}
    before = {p: open(paths[p], "rb").read() for p in ("IN", "REF", "STEM")}
    src = files["in"] if command == "style-track" else files["stems"]
    extra = ["--params-out", paths[params_out]] if params_out else []
    status, stdout, err = run_cli(capsys, command, src, "--reference", files["ref2"], "--out", paths[out], *extra,
                                  "--optimise", "--overwrite")
    assert status == 2 and expect in one_error(err), err
    assert "optimised" not in stdout
    assert {p: open(paths[p], "rb").read() for p in before} == before
    assert not os.path.exists(paths["new.wav"]) and not os.path.exists(paths["INSIDE"])


def _bad_reference(kind, d):
    if kind == "silent":
        return write_wav(d / "silent.wav", np.zeros((2, SR)))
    if kind == "short":
        return write_wav(d / "short.wav", _reference(seconds=0.3, stereo=True))
    if kind == "mono":
        return write_wav(d / "mono.wav", _reference())
    if kind == "unreadable":
        (d / "broken.wav").write_bytes(b"RIFF....WAVEfmt this is not audio")
        return str(d / "broken.wav")
    return str(d / "missing.wav")


@pytest.mark.parametrize("kind, expect", [("silent", "is silent"), ("short", "is too short"),
                                          ("mono", "1 channel (mono); give a stereo reference mix"),
                                          ("unreadable", "cannot read"), ("missing", "no audio file at")])
def test_bad_reference_for_style(capsys, files, kind, expect):
    ref, out = _bad_reference(kind, files["dir"]), files["dir"] / "out.wav"
    status, stdout, err = run_cli(capsys, "style", files["stems"], "--reference", ref, "--out", out, "--optimise")
    assert status == 2 and expect in one_error(err), err
    assert "optimised" not in stdout and not out.exists()


@pytest.mark.parametrize("kind, expect", [("silent", "is silent"), ("short", "is too short"),
                                          ("unreadable", "cannot read")])
def test_bad_reference_for_style_track(capsys, files, kind, expect):
    ref, out = _bad_reference(kind, files["dir"]), files["dir"] / "out.wav"
    status, _, err = run_cli(capsys, "style-track", files["in"], "--reference", ref, "--out", out, "--optimise")
    assert status == 2 and expect in one_error(err) and "--reference" in err, err
    assert not out.exists()


def test_steps_must_be_positive(capsys, files):
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "style-track", files["in"], "--reference", files["ref"], "--out", files["dir"] / "o.wav",
                "--optimise", "--steps", 0)
    assert stop.value.code == 2
    assert "must be a positive whole number of steps" in one_error(capsys.readouterr().err)
