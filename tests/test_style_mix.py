"""Multitrack mixing style transfer (chapter 5.2, automix_lite.models.style_mix) and the generated engineer styles.

About 30 s on one loaded CPU core: tiny networks, short signals; one bundled-checkpoint transfer on a 3 s excerpt."""

import math

import pytest
import torch

from automix_lite import data, parameters, pretrained, train
from automix_lite.data import engineer
from automix_lite.dsp.console import mix
from automix_lite.models import style_mix as sm
from automix_lite.parameters import SPEC_BY_NAME, MixParams

TINY = dict(dim=16, layers=1, heads=2, ff=16, widths=(4, 8), n_mels=16)
TINY_CFG = {"model": "style_mix", "steps": 2, "batch_size": 1, "segment_seconds": 0.5, "val_every": 1, "log_every": 1,
            "val_examples": 1, "threads": 1, "device": "cpu", "dim": 16, "layers": 1, "heads": 2, "ff": 16,
            "widths": [4, 8], "n_mels": 16}


def _signals(b=2, n=3, t=22050, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(b, n, t, generator=g), 0.1 * torch.randn(b, 2, t, generator=g)


def test_shapes_and_neutral_start():
    torch.manual_seed(0)
    model = sm.MixStyleTransfer(**TINY).eval()
    stems, ref = _signals()
    p = model(stems, None, ref)
    assert isinstance(p, MixParams) and p.console == "full"
    assert p["gain_db"].shape == (2, 3) and p["peak_gain_db"].shape == (2, 3, 3) and p["master_gain_db"].shape == (2,)
    assert p.controls[0].shape == (2, 3, len(sm.TRACK_COLUMNS)) and p.controls[1].shape == (2, 3)
    assert float(p["pan"].detach().sub(0.5).abs().max()) < 0.05  # starts near the console's neutral settings
    y = model.render(stems, p)
    assert y.shape == (2, 2, 22050) and bool(torch.isfinite(y).all())
    assert 0 < model.n_params < 2_000_000


def test_padding_tracks_change_nothing():
    torch.manual_seed(1)
    model = sm.MixStyleTransfer(**TINY).eval()
    stems, ref = _signals(1, 2)
    padded = torch.cat([stems, torch.randn(1, 2, stems.shape[-1])], 1)
    mask = torch.tensor([[True, True, False, False]])
    with torch.no_grad():
        a, b = model(stems, None, ref), model(padded, mask, ref)
        for k in a:
            assert torch.allclose(a[k], b[k][:, :2] if b[k].dim() > 1 else b[k], atol=1e-5), k
        ya = mix(stems, 44100, dict(a), reverb=False)
        yb = mix(padded, 44100, dict(b), mask=mask, reverb=False)
    assert torch.allclose(ya, yb, atol=1e-5)


def test_permuting_tracks_permutes_parameters_and_keeps_the_mix():
    torch.manual_seed(2)
    model = sm.MixStyleTransfer(**TINY).double().eval()
    stems, ref = (x.double() for x in _signals(1, 4, 11025))
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        a, b = model(stems, None, ref), model(stems[:, perm], None, ref)
        for k in a:
            want = a[k][:, perm] if a[k].dim() > 1 else a[k]
            assert torch.allclose(b[k], want, atol=1e-9), k
        ya, yb = mix(stems, 44100, dict(a)), mix(stems[:, perm], 44100, dict(b))
    assert torch.allclose(ya, yb, atol=1e-9)


def test_examples_are_deterministic_and_share_the_style_not_the_song():
    d = sm.StyleMixData("train", 0.5, fractions=(1.0, 0.0, 0.0))
    a, b = (d.example(torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a["reference"], b["reference"]) and torch.equal(a["target"], b["target"])
    assert a["song"] != a["ref_song"] and a["kind"] == "random"
    assert a["song"] in d.songs and a["ref_song"] in d.songs  # TRAIN songs only
    assert not set(d.songs) & {s["id"] for s in data.songs("songs", "test")}
    # the style belongs to roles: a role both songs have gets the same settings up to the per-song variation
    common = [r for r in a["roles"] if r in a["ref_roles"]]
    assert common
    for role in common:
        i, j = a["roles"].index(role), a["ref_roles"].index(role)
        assert abs(float(a["params"]["pan"][0, i]) - float(a["ref_params"]["pan"][0, j])) < 0.09
        assert abs(float(a["params"]["high_shelf_gain_db"][0, i]) - float(a["ref_params"]["high_shelf_gain_db"][0, j])) < 1.6
    batch = sm.collate([a, b])
    assert batch["stems"].shape[0] == 2 and batch["track"].shape[-1] == len(sm.TRACK_COLUMNS)
    assert float(batch["track"].min()) >= 0 and float(batch["track"].max()) <= 1


def test_paired_batches_share_both_songs_but_not_the_style():
    d = sm.StyleMixData("train", 0.5, fractions=(0.0, 0.0, 1.0))
    g = torch.Generator().manual_seed(2)
    first = d.example(g)
    other = next(e for e in engineer.ENGINEERS if e != first["style"])
    second = d.example(g, style=other, pair=(first["ref_song"], first["song"]))
    assert (second["song"], second["ref_song"]) == (first["song"], first["ref_song"]) and second["style"] != first["style"]
    assert sm.StyleMixData.batch.__doc__ and "paired" in sm.DEFAULT_CONFIG


def test_train_through_the_one_loop_and_resume(tmp_path):
    _, h = train.train(TINY_CFG, out=str(tmp_path / "a"), progress=False, log=lambda *a: None)
    assert len(h["val_loss"]) == 2 and all(math.isfinite(v) for v in h["val_loss"])
    train.train(TINY_CFG, out=str(tmp_path / "b"), progress=False, log=lambda *a: None, stop_at=1)
    train.train(TINY_CFG, out=str(tmp_path / "b"), progress=False, log=lambda *a: None, resume=True)
    wa = train.load_checkpoint(str(tmp_path / "a" / "last.pt"))["model"].state_dict()
    wb = train.load_checkpoint(str(tmp_path / "b" / "last.pt"))["model"].state_dict()
    assert all(torch.allclose(wa[k], wb[k]) for k in wa)
    ck = train.load_checkpoint(str(tmp_path / "a" / "best.pt"))
    assert isinstance(ck["model"], sm.MixStyleTransfer) and ck["config"]["model"] == "style_mix"


def test_config_errors_name_their_keys():
    with pytest.raises(ValueError) as err:
        train.load_config({**TINY_CFG, "dim": 15, "fractions": [1, -1, 0], "segment_seconds": 0.1, "widths": []})
    msg = str(err.value)
    for key in ("dim must be a multiple", "fractions", "segment_seconds", "widths"):
        assert key in msg, key
    with pytest.raises(ValueError, match="unknown config key"):
        train.load_config({"model": "style_mix", "patch_seconds": 1.0})


@pytest.mark.skipif("style_mix" not in pretrained.available(), reason="the bundled style_mix checkpoint is not installed")
def test_bundled_model_transfers_a_test_song_and_the_file_rerenders_it():
    from automix_lite.inference import render_params

    model = pretrained.load("style_mix")
    test = [s["id"] for s in data.songs("songs", "test")]
    n = 3 * 44100
    stems = data.load_song(test[0])["tracks"][:, :n]
    ref = data.reproduce_mix(test[1], "punchy")[:, :n]
    y, params = sm.transfer(model, stems, ref, 44100)
    assert y.shape == (2, n) and bool(torch.isfinite(y).all()) and float(y.abs().max()) <= 10 ** (-1 / 20) + 1e-4
    assert isinstance(params, MixParams) and params.console == "full" and params.n_tracks == stems.shape[0]
    names = [f"t{i}" for i in range(stems.shape[0])]
    back = parameters.from_json(parameters.to_json(params, names, 44100)).params
    assert torch.allclose(render_params(stems, back, 44100), y, atol=2e-4)
    assert torch.allclose(mix(stems[None], 44100, dict(back))[0], y, atol=2e-4)


def test_transfer_at_another_rate_and_bad_input():
    torch.manual_seed(3)
    model = sm.MixStyleTransfer(**TINY).eval()
    stems, ref = _signals(1, 2, 22050)
    y, p = sm.transfer(model, stems[0].numpy(), ref[0], 22050)
    assert y.shape == (2, 22050) and p.n_tracks == 2
    bad = [((stems[0], ref[0][:1], 22050), "stereo"), ((stems[0], ref[0].T, 22050), "transposed"),
           ((stems[0], ref[0][:, :1000], 22050), "too short"), ((stems[0], ref[0] * 0, 22050), "silent"),
           ((stems[0] * 0, ref[0], 22050), "silent"), ((stems[0, 0], ref[0], 22050), "tracks, samples"),
           ((stems[0], ref[0] * math.nan, 22050), "NaN"), ((stems[0], ref[0], 0), "sample_rate")]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            sm.transfer(model, *args)
    with pytest.raises(ValueError, match="MixStyleTransfer"):
        sm.transfer(torch.nn.Linear(1, 1), stems[0], ref[0], 22050)
    with pytest.raises(ValueError, match="stereo"):
        model(stems, None, ref[:, :1])


def test_generated_engineer_styles_are_deterministic_and_in_range():
    assert engineer.engineer_style(3) == engineer.engineer_style(3)
    assert engineer.engineer_style(3) != engineer.engineer_style(4)
    styles = engineer.engineer_styles(4, seed=1)
    assert len(styles) == 4 and styles == engineer.engineer_styles(4, seed=1)
    roles = ["drums", "bass", "keys", "guitar", "pad", "arp", "counter", "brass", "lead"]
    lufs = [-30.0 + i for i in range(len(roles))]
    for style in [*styles.values(), engineer.random_style(0), engineer.random_style(1)]:
        p = engineer.style_params(roles, lufs, style, seed=2, tempo=90)
        assert all(torch.equal(p[k], v) for k, v in engineer.style_params(roles, lufs, style, 2, 90).items())
        for k, v in p.items():
            s = SPEC_BY_NAME[k]
            assert float(v.min()) >= s.low and float(v.max()) <= s.high, k
    nat = engineer.style_params(roles, lufs, "natural", 2, 90)
    assert all(torch.equal(v, engineer.engineer_params(roles, lufs, "natural", 2, 90)[k]) for k, v in nat.items())
    y, p = engineer.styled_mix(torch.randn(3, 22050) * 0.05, roles[:3], styles["engineer_1_0"], 0)
    assert y.shape == (2, 22050) and float(y.abs().max()) <= 10 ** (-1 / 20) + 1e-5
    with pytest.raises(ValueError, match="unknown engineer"):
        engineer.style_params(roles, lufs, "loud", 0)
