"""Inference on whole songs, the pretrained registry and the `automix mix/render/train/models` commands."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from automix_lite import cli, inference, pretrained, train
from automix_lite import parameters as param_files
from automix_lite.models.dmc import DMC
from automix_lite.models.wave_u_net import MixWaveUNet
from conftest import SR, write_stems as _stems, write_wav as _write

TINY_DMC = {"console": "basic", "widths": [4, 8], "dim": 8, "hidden": 16}


def _hashes(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}


def _dmc(console="basic", seed=0):
    """A small DMC whose outputs vary with the input (the last layer is randomised, not neutral)."""
    torch.manual_seed(seed)
    model = DMC(console=console, widths=(4, 8), dim=8, hidden=16, max_tracks=4)
    with torch.no_grad():
        model.post[-1].weight.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny DMC trained for 2 steps through `automix train` (also tests that command)."""
    root = tmp_path_factory.mktemp("run")
    config = root / "tiny.json"
    config.write_text(json.dumps({"model": "dmc", "model_args": TINY_DMC, "max_tracks": 8, "steps": 2,
                                  "batch_size": 1, "segment_seconds": 1.0, "val_items": 1, "val_every": 2,
                                  "threads": 1}))
    assert cli.main(["train", str(config), "--out", str(root / "out"), "--no-progress"]) == 0
    return str(root / "out" / "best.pt")


# ------------------------------------------------------------------ read_stems


def test_read_stems_sorted_mono_and_resampled(tmp_path):
    _stems(tmp_path / "s", n=2)
    _write(tmp_path / "s" / "10_slow.wav", np.zeros(SR // 2), sr=SR // 2)  # silent, half the rate
    with pytest.warns(UserWarning, match="'10_slow.wav' is at 22050 Hz; resampling it to 44100 Hz"):
        tracks, names = inference.read_stems(tmp_path / "s", sample_rate=SR)
    assert names == ["00_track", "01_track", "10_slow"]
    assert tracks.shape == (3, SR) and tracks.dtype == torch.float32


def test_read_stems_empty_and_non_audio(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        inference.read_stems(tmp_path / "e")
    (tmp_path / "e" / "notes.txt").write_text("kick, snare")
    (tmp_path / "e" / ".DS_Store").write_text("x")
    with pytest.warns(UserWarning, match="notes.txt"), pytest.raises(ValueError, match="no audio files"):
        inference.read_stems(tmp_path / "e")
    with pytest.raises(FileNotFoundError):
        inference.read_stems(tmp_path / "missing")


def test_read_stems_unreadable_wav_names_the_file(tmp_path):
    _stems(tmp_path / "s", n=2)
    (tmp_path / "s" / "05_broken.wav").write_bytes(b"RIFF....not really audio")
    with pytest.raises(ValueError, match="05_broken.wav"):
        inference.read_stems(tmp_path / "s")


def test_read_stems_too_many_tracks(tmp_path):
    _stems(tmp_path / "s", n=5, seconds=0.1)
    with pytest.raises(ValueError, match=r"5 stems .* at most 4"):
        inference.read_stems(tmp_path / "s", max_tracks=4)


def test_read_stems_lengths_must_match_unless_padded(tmp_path):
    _stems(tmp_path / "s", n=2)
    _write(tmp_path / "s" / "02_short.wav", 0.1 * np.ones(SR // 4))
    with pytest.raises(ValueError, match=r"different lengths.*02_short.wav: 11025"):
        inference.read_stems(tmp_path / "s")
    with pytest.warns(UserWarning, match="zero-padding"):
        tracks, _ = inference.read_stems(tmp_path / "s", pad=True)
    assert tracks.shape == (3, SR)
    assert torch.all(tracks[2, SR // 4:] == 0) and tracks[2, 0] != 0


def test_stereo_stem_downmixed_with_warning(tmp_path):
    (tmp_path / "s").mkdir()
    _write(tmp_path / "s" / "keys.wav", np.stack([np.full(1000, 0.5), np.full(1000, 0.1)]))
    with pytest.warns(UserWarning, match="keys.wav.*downmixing"):
        tracks, names = inference.read_stems(tmp_path / "s")
    assert names == ["keys"] and torch.allclose(tracks, torch.full((1, 1000), 0.3), atol=1e-6)


def test_nan_samples_name_the_file(tmp_path):
    _stems(tmp_path / "s", n=1)
    x = np.zeros(SR)
    x[100] = np.nan
    _write(tmp_path / "s" / "bad.wav", x, subtype="FLOAT")
    with pytest.raises(ValueError, match="bad.wav.*NaN"):
        inference.read_stems(tmp_path / "s")


# ------------------------------------------------------------------ mixing


def test_blockwise_join_is_a_partition_of_unity():
    x = torch.randn(2, 10_000)
    for block, margin, fade in ((3000, 0, 0), (3000, 500, 400), (1234, 100, 1000)):
        y = inference._blockwise(lambda a, b: x[:, a:b], x.shape[-1], block, margin, fade)
        assert torch.allclose(y, x, atol=1e-6), (block, margin, fade)


def test_crossfade_weights_add_up_to_one_and_ramp_linearly():
    t, block, fade = 1000, 300, 100
    blocks = list(inference.crossfade_weights(t, block, margin=fade, fade=fade))
    assert len(blocks) == 4
    total = torch.zeros(t)
    for k, (a, b, w) in enumerate(blocks):
        assert w.shape == (b - a,) and w.dtype == torch.float32
        assert a == max(0, k * block - fade - fade // 2) and b == min(t, (k + 1) * block + fade + fade // 2)
        total[a:b] += w
    assert torch.allclose(total, torch.ones(t), atol=1e-6)
    # across the first boundary (samples 250..349) block 0 falls and block 1 rises as (i + 0.5) / fade
    ramp = (torch.arange(fade) + 0.5) / fade
    (a0, _, w0), (a1, _, w1) = blocks[:2]
    assert torch.allclose(w0[250 - a0: 350 - a0], 1 - ramp) and torch.allclose(w1[250 - a1: 350 - a1], ramp)
    assert w0[: 250 - a0].eq(1).all() and w0[350 - a0:].eq(0).all()  # kept, then context only
    # no crossfade: hard cuts, every sample kept by exactly one block; context samples weigh 0
    for a, b, w in inference.crossfade_weights(t, block, margin=50):
        assert set(w.unique().tolist()) <= {0.0, 1.0}
    assert sum(int(w.sum()) for _, _, w in inference.crossfade_weights(t, block, margin=50)) == t
    # one block, and a last block too short for the crossfade joins the one before
    assert [(a, b) for a, b, _ in inference.crossfade_weights(200, 300, 10, 10)] == [(0, 200)]
    assert len(list(inference.crossfade_weights(650, 300, 0, 100))) == 2
    # _blockwise applies exactly these weights
    x = torch.randn(2, t, dtype=torch.float64)
    direct = torch.zeros_like(x)
    for a, b, w in inference.crossfade_weights(t, block, fade, fade):
        direct[:, a:b] += x[:, a:b] * w.double()
    assert torch.equal(inference._blockwise(lambda a, b: x[:, a:b], t, block, fade, fade), direct)


def test_crossfade_weights_bad_input():
    for kw in ({"t": 0}, {"block": 0}, {"margin": -1}, {"fade": -2}, {"block": 2.5}, {"t": True}):
        args = {"t": 100, "block": 10, "margin": 0, "fade": 0, **kw}
        with pytest.raises(ValueError, match="whole number of samples"):
            list(inference.crossfade_weights(**args))


def test_basic_dmc_blockwise_equals_one_shot():
    model = _dmc("basic")
    tracks = torch.randn(3, 3 * SR // 2) * torch.tensor([[0.3], [0.1], [0.05]])
    mix, params = inference.mix_stems(model, tracks, block_seconds=0.2)
    with torch.no_grad():
        ref, ref_params = model(tracks.unsqueeze(0))
    ref, gain = inference.limit_peak(ref[0])
    assert params.output_gain_db == pytest.approx(gain)
    assert torch.allclose(params["gain_db"], ref_params["gain_db"])
    assert not torch.allclose(params["pan"], torch.full((1, 3), 0.5))  # not the neutral console
    assert torch.allclose(mix, ref, atol=1e-6)
    assert float(mix.abs().max()) <= 10 ** (inference.CEILING_DB / 20) + 1e-6


def test_long_song_parameters_from_spread_windows_and_silent_tracks_masked():
    model = _dmc("basic")
    t = 4 * SR
    tracks = torch.zeros(3, t)
    tracks[0] = 0.2 * torch.randn(t)
    tracks[1, 3 * SR:] = 0.2 * torch.randn(SR)  # enters late: only the last window hears it
    log = []
    params = inference.estimate_params(model, tracks, analysis_seconds=2.0, windows=2)
    assert params["gain_db"].shape == (1, 3) and torch.isfinite(params["gain_db"]).all()
    mix, _ = inference.mix_stems(model, tracks, analysis_seconds=2.0, analysis_windows=2, log=log.append)
    assert any("silent" in line for line in log) and mix.shape == (2, t)
    with pytest.raises(ValueError, match="every stem is silent"):
        inference.mix_stems(model, torch.zeros(2, SR))


def test_full_console_long_blocks_match_whole_song():
    model = _dmc("full")
    tracks = 0.1 * torch.randn(2, 2 * SR)
    whole, p1 = inference.mix_stems(model, tracks, ceiling_db=20.0)
    assert p1["ratio"].shape == (1, 2) and p1["peak_gain_db"].shape == (1, 2, 3) and p1["reverb_t60_s"].shape == (1,)
    kw = dict(whole_song_seconds=0.5, long_block_seconds=0.5, overlap_seconds=0.1, ceiling_db=20.0)
    # the console is causal: a warm-up reaching back to the start makes every block exact
    exact, _ = inference.mix_stems(model, tracks, warmup_seconds=2.0, **kw)
    assert torch.allclose(exact, whole, atol=1e-5)
    short, _ = inference.mix_stems(model, tracks, warmup_seconds=0.3, **kw)
    assert float((short - whole).abs().max()) < 0.05 * float(whole.abs().max())


def test_wave_u_net_blocks_with_crossfade():
    torch.manual_seed(0)
    model = MixWaveUNet(n_tracks=4, depth=2, channels=4, growth=4).eval()
    tracks = 0.1 * torch.randn(3, SR)
    mix, params = inference.mix_stems(model, tracks, block_seconds=0.25, overlap_seconds=0.05, ceiling_db=20.0)
    with torch.no_grad():
        ref = model(tracks.unsqueeze(0))[0]
    assert mix.shape == (2, SR) and len(params) == 0 and params.output_gain_db is not None
    assert float((mix - ref).abs().max()) < 1e-2 * float(ref.abs().max()) + 1e-4  # only the block edges differ


# ------------------------------------------------------------------ parameters


def test_params_json_round_trip_and_render_equals_mix():
    model = _dmc("basic")
    tracks = 0.2 * torch.randn(3, SR // 2)
    mix, params = inference.mix_stems(model, tracks)
    names = ["kick", "bass", "keys"]
    table = param_files.table(params, names)
    assert table.splitlines()[0].split() == ["track", "gain_db", "pan"] and "kick" in table
    data = json.loads(json.dumps(param_files.to_json(params, names)))
    assert (data["format"], data["version"], data["console"]) == ("automix-lite-params", 2, "basic")
    assert [r["name"] for r in data["tracks"]] == names
    back = param_files.from_json(data)
    assert back.names == names and set(back.params) == {"gain_db", "pan"}
    assert (back.params.console, back.sample_rate, back.pad) == ("basic", SR, False)
    rendered, _ = inference.limit_peak(inference.render_params(tracks, back.params, SR))
    assert torch.allclose(rendered, mix, atol=1e-5)
    # a file tagged "basic" with a parameter of the full console is refused, not rendered by the full console
    data["tracks"][0]["ratio"] = 4.0
    for row in data["tracks"][1:]:
        row["ratio"] = 1.0
    with pytest.raises(ValueError, match=r"'ratio'.*not a parameter of the basic console.*console \"full\""):
        param_files.from_json(data)
    # an edit tagged "full" renders through the full console with neutral values for everything not given
    data["console"] = "full"
    edited = param_files.from_json(data).params
    assert edited.console == "full"
    assert inference.render_params(tracks, edited, SR).shape == (2, SR // 2)
    data["tracks"][0]["gain_db"] = 99.0
    with pytest.raises(ValueError, match="gain_db"):
        inference.render_params(tracks, param_files.from_json(data).params, SR)
    with pytest.raises(ValueError, match="'loudness'.*not a parameter of the full console"):
        param_files.from_json({**data, "tracks": [{"name": "a", "loudness": 3}]})
    with pytest.raises(ValueError, match="unknown parameter"):
        param_files.MixParams({"loudness": torch.zeros(1, 1)})


# ------------------------------------------------------------------ registry


def test_registry_load_and_checksum_mismatch(tmp_path, checkpoint):
    folder = tmp_path / "ck"
    folder.mkdir()
    with pytest.raises(ValueError, match="unknown model 'nope'.*installed: none"):
        pretrained.load("nope", folder=folder)
    with pytest.raises(FileNotFoundError, match="not installed"):
        pretrained.load("dmc_basic_songs", folder=folder)
    shutil.copy(checkpoint, folder / "dmc_basic_songs.pt")
    (folder / "dmc_basic_songs.md").write_text("# Model card\n")
    with pytest.raises(ValueError, match="write_registry"):
        pretrained.load("dmc_basic_songs", folder=folder)  # no checksum recorded yet
    entries = pretrained.write_registry(folder)
    assert set(entries) == {"dmc_basic_songs"} and pretrained.available(folder) == ["dmc_basic_songs"]
    model = pretrained.load("dmc_basic_songs", folder=folder)
    assert isinstance(model, DMC) and not model.training
    assert pretrained.card("dmc_basic_songs", folder=folder).startswith("# Model card")
    assert pretrained.card(checkpoint) is None
    with open(folder / "dmc_basic_songs.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="checksum mismatch for 'dmc_basic_songs'"):
        pretrained.load("dmc_basic_songs", folder=folder)
    assert isinstance(pretrained.load(checkpoint), DMC)  # a path: only the payload checksum applies
    assert set(pretrained.REGISTRY) == {"dmc_basic_songs", "dmc_basic_drums", "dmc_full_songs", "wave_u_net_drums",
                                        "style_track", "style_mix", "fx_encoder"}


# ------------------------------------------------------------------ the command line


def test_cli_mix_end_to_end_then_render(tmp_path, checkpoint, capsys, stems_dir):
    stems = stems_dir  # three one-second stems (conftest.write_stems)
    before = _hashes(stems)
    out, params = tmp_path / "mix.wav", tmp_path / "params.json"
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", str(out), "--params-out", str(params)]) == 0
    printed = capsys.readouterr().out
    assert "00_track" in printed and "gain_db" in printed and "wrote" in printed
    info = sf.info(str(out))
    assert info.channels == 2 and info.samplerate == SR and info.subtype == "PCM_24" and info.frames == SR
    mixed, _ = sf.read(str(out))
    assert np.abs(mixed).max() <= 10 ** (-1 / 20) + 1e-6 and np.abs(mixed).max() > 1e-3
    assert json.loads(params.read_text())["console"] == "basic"
    # render the written parameters: the same audio as the mix
    again = tmp_path / "again.wav"
    assert cli.main(["render", stems, "--params", str(params), "--out", str(again)]) == 0
    rendered, _ = sf.read(str(again))
    assert np.abs(rendered - mixed).max() < 1e-5
    assert _hashes(stems) == before  # inputs untouched


def test_cli_refuses_to_overwrite_and_to_write_over_inputs(tmp_path, checkpoint, capsys):
    stems = _stems(tmp_path / "stems", n=2)
    before = _hashes(stems)
    out = tmp_path / "mix.wav"
    out.write_bytes(b"keep me")
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("automix: error:") and "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == b"keep me"
    target = os.path.join(stems, "00_track.wav")
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", target, "--overwrite"]) == 2
    assert "input stems" in capsys.readouterr().err
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", os.path.join(stems, "mix.wav")]) == 2
    assert "stems folder" in capsys.readouterr().err
    assert _hashes(stems) == before
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", str(out), "--overwrite"]) == 0
    assert sf.info(str(out)).channels == 2


def test_cli_errors_are_one_line(tmp_path, checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["mix", str(tmp_path / "empty"), "--model", checkpoint, "--out", str(tmp_path / "m.wav")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    stems = _stems(tmp_path / "s", n=2)
    _write(os.path.join(stems, "02_short.wav"), 0.1 * np.ones(SR // 4))
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", str(tmp_path / "m.wav")]) == 2
    assert "different lengths" in capsys.readouterr().err
    assert cli.main(["mix", stems, "--model", checkpoint, "--out", str(tmp_path / "m.wav"), "--pad"]) == 0
    assert "zero-padding" in capsys.readouterr().err
    assert cli.main(["mix", stems, "--model", "no_such_model", "--out", str(tmp_path / "n.wav")]) == 2
    assert "unknown model" in capsys.readouterr().err
    wun = tmp_path / "wun.pt"
    cfg = train.load_config({"model": "wave_u_net", "model_args": {"depth": 2, "channels": 4, "growth": 4}})
    train.save_checkpoint(str(wun), train.build_model(cfg), cfg)
    assert cli.main(["mix", stems, "--model", str(wun), "--out", str(tmp_path / "w.wav"), "--pad",
                     "--params-out", str(tmp_path / "w.json")]) == 2
    assert "no parameters" in capsys.readouterr().err
    assert not (tmp_path / "w.wav").exists()


def test_cli_models_lists_registry(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in pretrained.available()) and "wave_u_net_drums" in out
