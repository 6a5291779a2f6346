"""The listening-test generator without a browser (``automix_lite.listening.page``, chapter 4.2): the written
stimuli (loudness, fades, length, anchors, peaks), the page limits, bad input through ``automix
listening-test``, atomic writing, and a page that names nothing outside its folder. The page itself runs in
``tests/test_listening_browser.py``."""

from __future__ import annotations

import inspect
import json
import os
import re

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from conftest import one_error, run_cli

from automix_lite import listening
from automix_lite.listening import ANCHORS, CSV_COLUMNS, REFERENCE, make_test, make_test_from_arrays, page

SR = 22050


def _signal(k: int, seconds: float = 1.5, sr: int = SR) -> np.ndarray:
    """A stereo test mix: a tone (its level and pitch set by ``k``) over broadband noise."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(k)
    x = (0.05 + 0.1 * k) * np.sin(2 * np.pi * (200 + 50 * k) * t) + 0.02 * (k + 1) * rng.standard_normal(t.size)
    return np.stack([x, 0.6 * x + 0.01 * rng.standard_normal(t.size)])


def _passages(n_passages=2, n_systems=3, reference=True, seconds=1.5, sr=SR) -> dict:
    return {f"p{j}": {**{f"sys{i}": _signal(3 * j + i, seconds, sr) for i in range(n_systems)},
                      **({REFERENCE: _signal(9 + j, seconds, sr)} if reference else {})}
            for j in range(n_passages)}


def _write_mixes(root, passages, sr=SR) -> str:
    for passage, systems in passages.items():
        os.makedirs(root / passage, exist_ok=True)
        for system, x in systems.items():
            sf.write(str(root / passage / f"{system}.wav"), x.T, sr, subtype="PCM_24")
    return str(root)


def _config(folder) -> dict:
    text = open(os.path.join(folder, "config.js"), encoding="utf-8").read()
    return json.loads(text.split("window.LT_CONFIG = ", 1)[1].rstrip().rstrip(";"))


def _stimuli(folder) -> dict:
    """``{(passage, stimulus): (audio (2, T), sample rate)}`` of the written WAV files."""
    out = {}
    for p in _config(folder)["pages"]:
        for s in p["stimuli"]:
            data, sr = sf.read(os.path.join(folder, "stimuli", f"{s['file']}.wav"), always_2d=True)
            out[(p["id"], s["system"])] = (data.T, sr)
    return out


@pytest.fixture(scope="module")
def mushra(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("mushra") / "test"
    make_test_from_arrays(_passages(), SR, folder, design="mushra", seconds=1.0, seed=3)
    return str(folder)


def test_every_stimulus_is_loudness_matched_trimmed_and_faded(mushra):
    stimuli = _stimuli(mushra)
    assert len(stimuli) == 2 * (3 + 1 + 2)
    for (passage, name), (x, sr) in stimuli.items():
        assert sr == SR and x.shape == (2, SR), (passage, name, x.shape)  # exactly --seconds
        lufs = pyloudnorm.Meter(sr).integrated_loudness(x.T)
        assert abs(lufs - (-23.0)) < 0.5, f"{passage}/{name}: {lufs:.2f} LUFS"
        n = int(0.05 * sr)  # the 50 ms raised-cosine fades
        assert np.max(np.abs(x[:, :3])) < 1e-3 and np.max(np.abs(x[:, -3:])) < 1e-3
        middle = np.sqrt(np.mean(x[:, n:-n] ** 2))
        assert np.sqrt(np.mean(x[:, : n // 5] ** 2)) < 0.2 * middle and np.sqrt(np.mean(x[:, -n // 5:] ** 2)) < 0.2 * middle
        assert np.sqrt(np.mean(x[:, n:2 * n] ** 2)) > 0.5 * middle  # nothing faded beyond the fade
        assert sf.info(os.path.join(mushra, "stimuli", "001.wav")).subtype == "PCM_16"


def test_mushra_anchors_are_a_3500_hz_low_pass_and_a_mono_sum(mushra):
    stimuli = _stimuli(mushra)
    for passage in ("p0", "p1"):
        lp, sr = stimuli[(passage, ANCHORS[0])]
        spectrum = np.abs(np.fft.rfft(lp, axis=-1)) ** 2
        f = np.fft.rfftfreq(lp.shape[-1], 1 / sr)
        ratio = spectrum[:, f > 4000].sum() / spectrum.sum()
        assert ratio < 1e-6, f"the low-pass anchor keeps {10 * np.log10(ratio):.1f} dB of its energy above 4 kHz"
        ref_spec = np.abs(np.fft.rfft(stimuli[(passage, REFERENCE)][0], axis=-1)) ** 2
        assert ref_spec[:, f > 4000].sum() / ref_spec.sum() > 1e-2  # the reference had plenty there
        mono, _ = stimuli[(passage, ANCHORS[1])]
        assert np.array_equal(mono[0], mono[1]) and np.any(mono[0])


def test_the_config_maps_anonymous_files_to_systems(mushra):
    config = _config(mushra)
    assert config["design"] == "mushra" and config["csv_columns"] == list(CSV_COLUMNS)
    assert config["training"] == "p0" and len(config["test_id"]) == 12
    files = set()
    for p in config["pages"]:
        names = sorted(s["system"] for s in p["stimuli"])
        assert names == sorted(["sys0", "sys1", "sys2", REFERENCE, *ANCHORS])  # the hidden reference is rated
        assert p["reference"] == next(s["file"] for s in p["stimuli"] if s["system"] == REFERENCE)
        files |= {s["file"] for s in p["stimuli"]}
    on_disk = sorted(os.listdir(os.path.join(mushra, "stimuli")))
    assert on_disk == sorted([f"{k}.wav" for k in files] + [f"{k}.js" for k in files])
    assert all(re.fullmatch(r"\d{3}\.(wav|js)", name) for name in on_disk)  # names reveal nothing


def test_the_same_seed_writes_the_same_folder(tmp_path):
    passages = _passages(1, 2)
    for name in ("a", "b"):
        make_test_from_arrays(passages, SR, tmp_path / name, design="ape", seconds=1.0, seed=7)
    for d, _, files in os.walk(tmp_path / "a"):
        for f in files:
            other = os.path.join(str(tmp_path / "b"), os.path.relpath(os.path.join(d, f), tmp_path / "a"))
            assert open(os.path.join(d, f), "rb").read() == open(other, "rb").read(), f


def test_the_page_names_nothing_outside_its_folder(mushra):
    html = open(os.path.join(mushra, "index.html"), encoding="utf-8").read()
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sorted(refs) == ["#", "#", "config.js", "listening.js", "style.css"]
    for ref in refs:
        assert ref == "#" or os.path.isfile(os.path.join(mushra, ref))
    for name in ("index.html", "listening.js", "style.css", "config.js"):
        text = open(os.path.join(mushra, name), encoding="utf-8").read()
        assert not re.search(r"https?:|wss?:|ftp:|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert not re.search(r"@import|@font-face|\burl\(", text), name  # no fonts or images pulled in by CSS
    assert "<title>Listening test</title>" in html


def test_ape_takes_no_reference_and_no_anchors(tmp_path):
    make_test_from_arrays(_passages(2, 3, reference=False), SR, tmp_path / "ape", design="ape", seconds=1.0)
    config = _config(tmp_path / "ape")
    assert all(p["reference"] is None and len(p["stimuli"]) == 3 for p in config["pages"])
    make_test_from_arrays(_passages(1, 3), SR, tmp_path / "ape2", design="ape", seconds=1.0)  # reference: rated
    assert sorted(s["system"] for s in _config(tmp_path / "ape2")["pages"][0]["stimuli"]) == \
        ["reference", "sys0", "sys1", "sys2"]


def test_peaky_stimuli_turn_the_whole_page_down_with_a_warning(tmp_path):
    t = np.arange(int(1.5 * SR))
    clicks = np.where(t % 2205 == 0, 1.0, 0.0) + 1e-3 * np.random.default_rng(0).standard_normal(t.size)
    passages = {"p": {"clicks": np.stack([clicks, clicks]), "tone": _signal(1), REFERENCE: _signal(2)}}
    with pytest.warns(UserWarning, match=r"turned every stimulus down .* dB more than asked.*'clicks'"):
        make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.5)
    levels = []
    for (_, name), (x, sr) in _stimuli(tmp_path / "t").items():
        assert page.true_peak_db(x) <= page.CEILING_DBTP + 0.1, name
        levels.append(pyloudnorm.Meter(sr).integrated_loudness(x.T))
    assert max(levels) - min(levels) < 0.5 and max(levels) < -23.5  # still matched, below the target


def test_shorter_files_shorten_the_page_with_a_warning(tmp_path):
    passages = {"p": {"a": _signal(0, 1.2), "b": _signal(1, 3.0)}}
    with pytest.warns(UserWarning, match="1.20 s long instead of 10 s"):
        make_test_from_arrays(passages, SR, tmp_path / "t", design="ape")
    assert {x.shape[-1] for x, _ in _stimuli(tmp_path / "t").values()} == {int(1.2 * SR)}


def test_twelve_stimuli_per_page_at_most(tmp_path):
    ten = _passages(1, 10, seconds=1.0)
    with pytest.raises(ValueError, match=r"13 stimuli on one page \(10 systems \+ the hidden reference \+ 2 "
                                         r"anchors\); a page takes at most 12\. Split .*--no-anchors"):
        make_test_from_arrays(ten, SR, tmp_path / "t", design="mushra", seconds=1.0)
    assert not os.path.exists(tmp_path / "t")
    make_test_from_arrays(ten, SR, tmp_path / "t", design="mushra", seconds=1.0, anchors=False)  # 11
    assert len(_config(tmp_path / "t")["pages"][0]["stimuli"]) == 11
    with pytest.raises(ValueError, match="13 stimuli on one page"):
        make_test_from_arrays(_passages(1, 12, seconds=1.0), SR, tmp_path / "u", design="ape", seconds=1.0)


def test_make_test_reads_folders_and_the_cli_writes_the_test(tmp_path, capsys):
    mixes = _write_mixes(tmp_path / "mixes", _passages(2, 2))
    index = make_test(mixes, tmp_path / "api", design="mushra", seconds=1.0)
    assert index == str(tmp_path / "api" / "index.html") and os.path.isfile(index)
    status, out, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "cli", "--design", "ape",
                               "--seconds", "1", "--seed", "1", "--title", "Drums <A & B>")
    assert status == 0 and err == "", err
    assert "wrote" in out and "index.html" in out
    assert "<title>Drums &lt;A &amp; B&gt;</title>" in open(tmp_path / "cli" / "index.html").read()
    assert _config(tmp_path / "cli")["title"] == "Drums <A & B>"
    status, _, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "cli", "--design", "ape")
    assert status == 2 and "already exists; pass --overwrite" in one_error(err)
    status, _, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "cli", "--design", "ape",
                             "--seconds", "1", "--overwrite")
    assert status == 0, err


def test_sample_rates_that_differ_are_resampled_with_a_warning(tmp_path, capsys):
    mixes = _write_mixes(tmp_path / "mixes", _passages(1, 2))
    sf.write(str(tmp_path / "mixes" / "p0" / "other.wav"), _signal(5, 1.5, 16000).T, 16000)
    status, _, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "t", "--seconds", "1")
    assert status == 0
    assert "automix: warning: 1 file(s) are not at 22050 Hz" in err and "resampled" in err
    assert {sr for _, sr in _stimuli(tmp_path / "t").values()} == {SR}


def _bad(root, case):
    """A mixes folder that is wrong in one way."""
    if case == "empty":
        os.makedirs(root / "p0")
        return str(root)
    mixes = _write_mixes(root, _passages(2, 2))
    if case == "one system":
        os.remove(root / "p1" / "sys1.wav")
    elif case == "unreadable":
        (root / "p1" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    elif case == "silent":
        sf.write(str(root / "p1" / "quiet.wav"), np.zeros((SR * 2, 2)), SR)
    elif case == "no reference":
        os.remove(root / "p1" / "reference.wav")
    elif case == "too many":
        for k in range(9):
            sf.write(str(root / "p0" / f"extra{k}.wav"), _signal(20 + k).T, SR)
    elif case == "reserved name":
        sf.write(str(root / "p0" / "anchor_mono.wav"), _signal(30).T, SR)
    elif case == "too short":
        sf.write(str(root / "p0" / "short.wav"), _signal(31, 0.5).T, SR)
    return mixes


BAD = {
    "empty": "no passages in",
    "one system": "passage 'p1' has 1 system(s) (sys0) besides the reference; a multi-stimulus test compares at least two",
    "unreadable": "cannot read",
    "silent": "passage 'p1', system 'quiet' is silent",
    "no reference": "MUSHRA needs a reference in every passage: 'p1' has no reference.wav",
    "too many": "would put 14 stimuli on one page",
    "reserved name": "'anchor_mono' is reserved",
    "too short": "stimuli need at least 1 s",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_and_leaves_no_folder(tmp_path, capsys, case):
    mixes = _bad(tmp_path / "mixes", case)
    status, out, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "test", "--seconds", "1")
    assert status == 2 and BAD[case] in one_error(err), err
    assert sorted(os.listdir(tmp_path)) == ["mixes"]  # no test folder, no temporary folder


def test_outputs_that_are_refused_before_any_work(tmp_path, capsys):
    mixes = _write_mixes(tmp_path / "mixes", _passages(1, 2))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    status, _, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "mine", "--overwrite")
    assert status == 2 and "refusing to replace" in one_error(err) and (tmp_path / "mine" / "notes.txt").exists()
    for out in (tmp_path / "mixes" / "test", tmp_path / "mixes", tmp_path):
        status, _, err = run_cli(capsys, "listening-test", mixes, "--out", out, "--overwrite")
        assert status == 2 and "overlap" in one_error(err)
    status, _, err = run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "no" / "such" / "test")
    assert status == 2 and "does not exist" in one_error(err)
    with pytest.raises(SystemExit) as stop:  # a usage error: argparse exits
        run_cli(capsys, "listening-test", mixes, "--out", tmp_path / "t", "--design", "abx")
    assert stop.value.code == 2 and "invalid choice" in one_error(capsys.readouterr().err)
    assert os.path.isdir(mixes) and not os.path.exists(tmp_path / "t")


def test_a_run_that_fails_while_writing_leaves_no_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    passages = _passages(1, 2)
    real = page._static

    def failing(name):
        if name == "index.html":
            raise OSError(28, "No space left on device")
        return real(name)

    monkeypatch.setattr(page, "_static", failing)
    with pytest.raises(OSError):
        make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.0)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(page, "_static", real)
    make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.0, title="old")
    monkeypatch.setattr(page, "_static", failing)
    with pytest.raises(OSError):
        make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.0, overwrite=True, title="new")
    assert os.listdir(tmp_path) == ["t"] and _config(tmp_path / "t")["title"] == "old"
    monkeypatch.setattr(page, "_static", real)
    make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.0, overwrite=True, title="new")
    assert os.listdir(tmp_path) == ["t"] and _config(tmp_path / "t")["title"] == "new"


def test_arrays_in_every_accepted_shape_and_bad_ones(tmp_path):
    torch = pytest.importorskip("torch")
    x = _signal(1)
    passages = {"p": {"stereo": x, "mono": x[0], "mono2d": x[:1], "batch": torch.as_tensor(x)[None]}}
    make_test_from_arrays(passages, SR, tmp_path / "t", design="ape", seconds=1.0)
    stimuli = _stimuli(tmp_path / "t")
    assert np.array_equal(stimuli[("p", "mono")][0][0], stimuli[("p", "mono")][0][1])
    for bad, match in (({"p": {"a": np.zeros((3, SR)), "b": x}}, "mono or stereo"),
                       ({"p": {"a": np.full((2, SR), np.nan), "b": x}}, "NaN"),
                       ({}, "non-empty dict"), ({"p/q": {"a": x, "b": x}}, "plain non-empty string")):
        with pytest.raises(ValueError, match=match):
            make_test_from_arrays(bad, SR, tmp_path / "u", design="ape")
    for kwargs, match in (({"design": "abx"}, "design must be"), ({"seconds": 0.5}, "seconds must be"),
                          ({"lufs": 3}, "lufs must be"), ({"training": "nope"}, "training passage 'nope'")):
        with pytest.raises(ValueError, match=match):
            make_test_from_arrays({"p": {"a": x, "b": x}}, SR, tmp_path / "u", **{"design": "ape", **kwargs})
    with pytest.raises(ValueError, match="sample_rate must be"):
        make_test_from_arrays({"p": {"a": x, "b": x}}, 44.1, tmp_path / "u", design="ape")
    assert not os.path.exists(tmp_path / "u")


def test_the_docstrings_name_the_notebook_and_the_csv_columns():
    for name in ("make_test", "make_test_from_arrays", "lowpass_anchor", "mono_anchor", "raised_cosine_fade",
                 "true_peak_db", "loudness"):
        assert "notebooks/16_listening_tests.ipynb" in inspect.getdoc(getattr(listening, name)), name
    table = re.findall(r"^``(\w+)``\s{2,}", page.__doc__, re.M)
    assert tuple(table) == CSV_COLUMNS  # the docstring documents exactly the columns, in order
    js = open(os.path.join(os.path.dirname(page.__file__), "static", "listening.js"), encoding="utf-8").read()
    for column in CSV_COLUMNS:
        assert f"{column}:" in js, f"listening.js never fills the column {column}"


def test_the_static_files_ship_as_package_data():
    text = open(os.path.join(os.path.dirname(os.path.dirname(page.__file__)), "..", "pyproject.toml")).read()
    assert '"listening/static/*"' in text
    static = os.path.join(os.path.dirname(page.__file__), "static")
    assert sorted(os.listdir(static)) == ["index.html", "listening.js", "style.css"]
