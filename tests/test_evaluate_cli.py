"""``automix evaluate``: the feature table of a mix against a reference, folders matched by name, ``--json``
written once (``--overwrite`` to replace), and one ``automix: error:`` line with exit status 2 for every bad
input. Run as a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import SR, one_error, run_cli, write_wav
from automix_lite import features


def automix(*args, timeout=300):
    done = subprocess.run([sys.executable, "-m", "automix_lite.cli", "evaluate", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return done.returncode, done.stdout, done.stderr


def mix(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    a = 0.3 * np.sin(2 * np.pi * 220 * t)
    b = 0.2 * rng.standard_normal(t.size)
    return np.stack([a + 0.3 * b, 0.5 * a + b])


def test_files_table_and_json(tmp_path):
    ref = write_wav(tmp_path / "ref.wav", mix())
    out = write_wav(tmp_path / "out.wav", 0.5 * mix())
    js = tmp_path / "scores.json"
    status, stdout, stderr = automix(out, "--reference", ref, "--json", js)
    assert status == 0, stderr
    for name in features.FEATURES:
        assert name in stdout
    assert "loudness MAPE" in stdout and f"wrote {js}" in stdout
    data = json.loads(js.read_text())
    groups = data["mixes"]["out"]["groups"]
    assert data["unit"] == "percent" and data["compat"] is False
    assert groups["loudness"] > 10 and groups["spectral"] < 0.05  # a gain change (24-bit files: rounding only)
    before = js.read_text()
    status, stdout, stderr = automix(out, "--reference", ref, "--json", js)  # never overwritten without --overwrite
    assert status == 2 and "already exists" in one_error(stderr) and js.read_text() == before
    status, _, stderr = automix(out, "--reference", ref, "--json", js, "--overwrite")
    assert status == 0, stderr


def test_folders_matched_by_name(tmp_path):
    outs, refs = tmp_path / "outs", tmp_path / "refs"
    outs.mkdir()
    refs.mkdir()
    for k in range(2):
        write_wav(refs / f"song{k}.wav", mix(seed=k))
        write_wav(outs / f"song{k}.flac", 0.8 * mix(seed=k)[::-1])
    write_wav(outs / "extra.wav", mix())
    write_wav(refs / "lonely.wav", mix())
    status, stdout, stderr = automix(outs, "--reference", refs)
    assert status == 0, stderr
    assert "automix: warning: unmatched names" in stderr and "extra" in stderr and "lonely" in stderr
    assert stdout.count("spectral MAPE") == 2 and "mean over 2 mix(es)" in stdout


def test_bad_inputs_one_error_line_each(tmp_path, capsys):
    """Two as a subprocess (the exit status and stderr a shell sees), the rest in-process (the same
    ``automix_lite.cli.main``, without paying for a new interpreter each time)."""
    ref = write_wav(tmp_path / "ref.wav", mix())
    status, _, stderr = automix(write_wav(tmp_path / "short.wav", mix(0.8)), "--reference", ref)
    assert status == 2 and "equally long" in one_error(stderr) and "--trim" in stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    status, _, stderr = automix(junk, "--reference", ref)
    assert status == 2 and "cannot read" in one_error(stderr)
    cases = {
        "48000 Hz": (write_wav(tmp_path / "rate.wav", mix(), sr=48000), "resample"),
        "mono": (write_wav(tmp_path / "mono.wav", mix()[0]), "stereo"),
        "silent": (write_wav(tmp_path / "silent.wav", np.zeros((2, SR))), "silent"),
        "missing": (str(tmp_path / "nowhere.wav"), "no file or folder"),
    }
    for what, (path, needle) in cases.items():
        status, stdout, stderr = run_cli(capsys, "evaluate", path, "--reference", ref)
        assert status == 2, (what, stdout, stderr)
        assert needle in one_error(stderr), (what, stderr)
    status, _, stderr = run_cli(capsys, "evaluate", tmp_path, "--reference", ref)  # a folder against a file
    assert status == 2 and "both" in one_error(stderr)
    status, _, stderr = run_cli(capsys, "evaluate", ref, "--reference", ref, "--json", ref, "--overwrite")
    assert status == 2 and "input" in one_error(stderr)  # an input as the output
    status, stdout, stderr = run_cli(capsys, "evaluate", ref, "--reference", ref, "--compat")
    assert status == 2 and "40 frames" in one_error(stderr)  # 1 s: too short for the toolkit's running means
