"""Run modes, seeding and the notebook players (automix_lite.config, automix_lite.display)."""

import base64
import io
import random
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix_lite import config, display


@pytest.mark.parametrize("value, expected", [("fast", "fast"), (" FULL ", "full"), ("", "standard"), (None, "standard")])
def test_mode_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("AUTOMIX_MODE", raising=False)
    else:
        monkeypatch.setenv("AUTOMIX_MODE", value)
    assert config.mode() == expected


def test_bad_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AUTOMIX_MODE", "quick")
    with pytest.raises(ValueError, match="'quick' is not a run mode; use one of fast, standard, full"):
        config.mode()


def test_pick_steps_and_seconds_follow_the_mode(monkeypatch):
    expected = {"fast": (1, 20, 2.0), "standard": (2, 400, 6.0), "full": (3, 20000, 6.0)}
    for m, (picked, steps, seconds) in expected.items():
        monkeypatch.setenv("AUTOMIX_MODE", m)
        assert config.pick(fast=1, standard=2, full=3) == picked
        assert config.steps() == steps
        assert config.seconds() == seconds  # full falls back to standard when not given
    assert config.pick(fast=1, standard=2) == 2  # full without a value: standard's
    assert config.seconds(full=30.0) == 30.0


def test_device_and_seed_everything():
    assert config.device("cpu") == torch.device("cpu")
    assert config.device().type in ("cpu", "cuda")

    def draw():
        gen = config.seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=gen)

    first, second = draw(), draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    config.seed_everything(124)
    assert not torch.equal(torch.rand(3), first[2])


def decode_player(html):
    """The audio inside a player's HTML (base64 MP3), as (samples, channels) floats and its rate."""
    assert html.startswith("<audio")
    payload = re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1)
    data, rate = sf.read(io.BytesIO(base64.b64decode(payload)), always_2d=True)
    return data, rate


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def test_players_do_not_normalise():
    t = np.arange(2 * 22050) / 22050
    clip = np.sin(2 * np.pi * 440 * t)
    loud, rate = decode_player(display.player_html(0.5 * clip, 22050))
    quiet, _ = decode_player(display.player_html(0.05 * clip, 22050))
    assert rate == 22050
    # levels survive the MP3 codec to within a fraction of a dB; 20 dB apart stays 20 dB apart
    assert 20 * np.log10(rms(loud) / (0.5 / np.sqrt(2))) == pytest.approx(0.0, abs=0.3)
    assert 20 * np.log10(rms(loud) / rms(quiet)) == pytest.approx(20.0, abs=0.2)


def test_players_cap_length_downsample_and_keep_channels():
    sr = 96000
    t = np.arange(10 * sr) / sr
    stereo = torch.zeros(1, 2, 10 * sr)
    stereo[0, 0] = torch.from_numpy(0.3 * np.sin(2 * np.pi * 220 * t)).float()
    data, rate = decode_player(display.player_html(stereo, sr, max_seconds=2.0))
    assert rate == display.DISPLAY_RATE
    assert data.shape[1] == 2
    assert 2 * rate <= data.shape[0] <= 2 * rate + 4 * 1152  # MP3 pads by at most a few frames
    assert rms(data[:, 0]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05) and rms(data[:, 1]) < 1e-3
    a, rate = display._prepare(torch.zeros(1, 1, 3 * 44100), 44100, 1.0, None)
    assert rate == 44100 and a.shape == (1, 44100)


def test_players_reject_bad_input_and_warn_on_clipping():
    with pytest.raises(ValueError, match="NaN or inf"):
        display.player_html(np.array([0.0, np.nan, 0.1]), 8000)
    with pytest.raises(ValueError, match="batch of 2"):
        display.player_html(torch.zeros(2, 1, 100), 8000)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        display.player_html(np.zeros((3, 100)), 8000)
    with pytest.warns(UserWarning, match=r"\+6.0 dBFS"):
        a, _ = display._prepare(np.full(100, 2.0), 8000, 1.0, None)
    assert np.abs(a).max() == 1.0


def test_play_table_labels_and_notes(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    display.play_table({"a <b>": np.zeros(100), "b": 0.1 * np.ones(100)}, 8000, notes={"b": "quiet & flat"})
    (page,) = shown
    assert page.count("<audio") == 2
    assert "a &lt;b&gt;" in page and "quiet &amp; flat" in page
    # the same table as a string, for widgets.HTML inside interactive callbacks
    assert display.table_html({"a <b>": np.zeros(100), "b": 0.1 * np.ones(100)}, 8000,
                              notes={"b": "quiet & flat"}) == page


def test_levels():
    t = np.arange(48000) / 48000
    s = np.sin(2 * np.pi * 1000 * t)
    assert display.peak_db(0.5 * s) == pytest.approx(-6.02, abs=0.01)
    assert display.rms_db(s) == pytest.approx(-3.01, abs=0.01)
    assert display.peak_db(np.zeros(10)) == pytest.approx(-240.0)


def test_find_configs_from_the_notebooks_the_root_and_a_colab_clone(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    for where in (root / "notebooks", root):
        monkeypatch.chdir(where)
        assert config.find_configs() == str(root / "configs")
    clone = tmp_path / "automix-lite" / "configs"
    clone.mkdir(parents=True)
    (clone / "dmc_basic_songs.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "_CHECKOUT", str(tmp_path / "site-packages"))  # as from an installed wheel
    assert config.find_configs() == str(clone)


def test_find_configs_says_where_to_run_when_there_is_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "_CHECKOUT", str(tmp_path / "site-packages"))
    assert config.find_configs() is None
    with pytest.raises(FileNotFoundError, match="run from a clone"):
        config.find_configs(required=True)
    (tmp_path / "configs").mkdir()  # an unrelated configs/ folder is not the repository's
    assert config.find_configs() is None
