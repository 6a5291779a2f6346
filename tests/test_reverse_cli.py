"""`automix reverse STEMS_DIR --mix MIX.wav --out PARAMS.json` (chapter 5.4): it recovers the settings of a mix
made by `automix render` from a parameter file, the file it writes renders a mix close to the original, and it
refuses bad input with one line (run in-process, short fits at 22.05 kHz)."""

import json

import numpy as np
import soundfile as sf
from conftest import one_error, run_cli, write_stems, write_wav

from automix_lite import parameters

SR = 22050


def _made_mix(tmp_path, capsys):
    """Stems, a parameter file with known gains and pans, and the mix `automix render` makes of them."""
    stems = write_stems(tmp_path / "stems", n=3, seconds=0.75, sr=SR)
    names = ["00_track", "01_track", "02_track"]
    import torch

    from automix_lite import dsp

    p = dsp.default_params(1, 3)
    p["gain_db"], p["pan"] = torch.tensor([[-3.0, 2.0, -1.0]]), torch.tensor([[0.5, 0.2, 0.8]])
    parameters.write(str(tmp_path / "truth.json"), p, names, SR)
    status, _, err = run_cli(capsys, "render", stems, "--params", tmp_path / "truth.json", "--out", tmp_path / "mix.wav")
    assert status == 0, err
    return stems, p


def test_reverse_recovers_gains_and_pans_and_its_file_renders(tmp_path, capsys):
    stems, truth = _made_mix(tmp_path, capsys)
    out = tmp_path / "found.json"
    status, stdout, err = run_cli(capsys, "reverse", stems, "--mix", tmp_path / "mix.wav", "--out", out,
                                  "--steps", 20)
    assert status == 0, err
    assert "after the fit" in stdout and "wrote" in stdout
    found = parameters.read(str(out)).params
    gains = found["gain_db"][0].numpy() - found["gain_db"][0].numpy().mean()
    want = truth["gain_db"][0].numpy() - truth["gain_db"][0].numpy().mean()
    assert np.abs(gains - want).max() < 1.5
    assert np.abs(found["pan"][0].numpy() - truth["pan"][0].numpy()).max() < 0.05
    status, _, err = run_cli(capsys, "render", stems, "--params", out, "--out", tmp_path / "again.wav")
    assert status == 0, err
    a, _ = sf.read(tmp_path / "mix.wav")
    b, _ = sf.read(tmp_path / "again.wav")
    assert np.mean((a - b) ** 2) / np.mean(a ** 2) < 0.1
    assert json.loads(out.read_text())["model"] == "automix_lite.reverse"


def test_reverse_prunes_when_asked(tmp_path, capsys):
    stems, _ = _made_mix(tmp_path, capsys)
    status, stdout, err = run_cli(capsys, "reverse", stems, "--mix", tmp_path / "mix.wav", "--out", tmp_path / "p.json",
                                  "--steps", 2, "--prune", "--tolerance", 0.5, "--finetune-steps", 1)
    assert status == 0, err
    removed = int(stdout.split("pruned ")[1].split(" of ")[0])
    assert "of 15 processors" in stdout and removed >= 1
    assert parameters.read(str(tmp_path / "p.json")).names == ["00_track", "01_track", "02_track"]


def test_reverse_refuses_bad_input(tmp_path, capsys):
    stems, _ = _made_mix(tmp_path, capsys)
    mono = write_wav(tmp_path / "mono.wav", np.zeros(int(0.75 * SR)) + 0.1, sr=SR)
    status, _, err = run_cli(capsys, "reverse", stems, "--mix", mono, "--out", tmp_path / "p.json")
    assert status == 2 and "stereo" in one_error(err)
    short = write_wav(tmp_path / "short.wav", 0.1 * np.ones((2, SR // 2)), sr=SR)
    status, _, err = run_cli(capsys, "reverse", stems, "--mix", short, "--out", tmp_path / "p.json")
    assert status == 2 and "--trim" in one_error(err)
    status, _, err = run_cli(capsys, "reverse", stems, "--mix", tmp_path / "mix.wav", "--out", tmp_path / "mix.wav")
    assert status == 2 and "input" in one_error(err)
    assert not (tmp_path / "p.json").exists()
