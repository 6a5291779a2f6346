"""Single-track style transfer (chapter 5.1, automix_lite.models.style): the model, its self-supervised data,
the three gradient routes, training through the one training loop (and resuming), the bundled checkpoint and
transfer(), input and config errors."""

import json
import math

import numpy as np
import pytest
import torch

from automix_lite import pretrained, style_optimise as so, train
from automix_lite.models import style

SR = style.SAMPLE_RATE


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small_batch():
    return style.style_batch(train.proxy_stems("val"), 3, SR // 2, torch.Generator().manual_seed(7), 0.5)


def test_model_shapes_and_ranges(small_batch):
    model = style.StyleTransfer(n_mels=32, channels=16, embed_dim=16, hidden=32)
    x, r = small_batch["x"], small_batch["reference"]
    c = model.controls(x, r)
    assert c.shape == (3, len(so.TRACK_NAMES)) and bool(((c > 0) & (c < 1)).all())
    y, c2 = model(x, r)
    assert y.shape == x.shape and torch.equal(c, c2)
    # the untrained model starts at the neutral chain
    start = torch.tensor([so.TRACK_START[n] for n in so.TRACK_NAMES], dtype=torch.float64)
    assert torch.allclose(model.params(c.double())[0], start, rtol=2e-3, atol=2e-3)
    # [0, 1] -> real units: the ends of every range, log-scaled ones geometrically
    ends = model.params(torch.stack([torch.zeros(18), torch.ones(18), torch.full((18,), 0.5)]).double())
    for i, s in enumerate(so.TRACK_SPECS):
        assert ends[0, i].item() == pytest.approx(s.low) and ends[1, i].item() == pytest.approx(s.high)
        mid = math.sqrt(s.low * s.high) if s.scale == "log" else (s.low + s.high) / 2
        assert ends[2, i].item() == pytest.approx(mid)
    assert sum(p.numel() for p in style.StyleTransfer().parameters()) < 1_000_000


def test_data_same_style_on_both_segments_and_deterministic():
    stems = train.proxy_stems("val")
    a = style.style_batch(stems, 4, SR // 2, torch.Generator().manual_seed(3), corrupt_prob=0.5)
    b = style.style_batch(stems, 4, SR // 2, torch.Generator().manual_seed(3), corrupt_prob=0.5)
    for k in ("x", "reference", "target", "clean", "style", "corrupted"):
        assert torch.equal(a[k], b[k]), k
    real = so._real(so.TRACK_SPECS, a["style"].float())
    with torch.no_grad():
        assert torch.equal(a["target"], so._chain(a["clean"], SR, real))
        for i in range(4):  # process_track with the dict of real units renders the same target
            params = {n: float(v) for n, v in zip(so.TRACK_NAMES, real[i])}
            assert torch.allclose(so.process_track(a["clean"][i], SR, params)[0], a["target"][i], atol=1e-5)
    assert not torch.equal(a["clean"], a["reference"])  # two different segments
    for i in range(4):
        if not a["corrupted"][i]:
            assert torch.equal(a["x"][i], a["clean"][i])
        else:
            assert not torch.equal(a["x"][i], a["clean"][i])
    c = style.style_batch(stems, 4, SR // 2, torch.Generator().manual_seed(4), corrupt_prob=0.5)
    assert not torch.equal(a["style"], c["style"])
    lo = torch.tensor([style.STYLE_RANGES[n][0] for n in so.TRACK_NAMES], dtype=torch.float64)
    hi = torch.tensor([style.STYLE_RANGES[n][1] for n in so.TRACK_NAMES], dtype=torch.float64)
    assert bool(((a["style"] >= lo) & (a["style"] <= hi)).all())


def test_routes_give_gradients(small_batch):
    """autodiff: exact gradients agree with finite differences; proxy and SPSA: finite, non-zero gradients."""
    x = small_batch["x"][:1].double()
    loss_fn = style.train_loss()
    target = small_batch["target"][:1].double()
    c = torch.full((1, 18), 0.5, dtype=torch.float64, requires_grad=True)
    loss = loss_fn(style.render(x, c, "autodiff"), target)
    (g,) = torch.autograd.grad(loss, c)
    assert bool(torch.isfinite(g).all()) and g.abs().sum() > 0
    for j in (0, 11, 13, 17):  # low-shelf gain, high-shelf gain, threshold, output gain
        e = torch.zeros_like(c)
        e[0, j] = 1e-4
        with torch.no_grad():
            fd = (loss_fn(style.render(x, c + e, "autodiff"), target)
                  - loss_fn(style.render(x, c - e, "autodiff"), target)) / 2e-4
        assert g[0, j].item() == pytest.approx(fd.item(), rel=0.05, abs=1e-4)
    for route in ("proxy", "spsa"):
        c = torch.full((1, 18), 0.5, requires_grad=True)
        y = style.render(small_batch["x"][:1], c, route)
        assert y.shape == small_batch["x"][:1].shape
        (g,) = torch.autograd.grad(loss_fn(y, small_batch["target"][:1]), c)
        assert bool(torch.isfinite(g).all()) and g.abs().sum() > 0, route


TINY = {"model": "style_track", "n_mels": 16, "channels": 8, "embed_dim": 8, "hidden": 16, "steps": 4,
        "batch_size": 2, "segment_seconds": 0.3, "log_every": 1, "val_every": 2, "val_examples": 2, "seed": 5,
        "device": "cpu", "threads": 1}


def test_training_runs_and_resume_matches(tmp_path):
    model, h = train.train(TINY, out=str(tmp_path / "a"), progress=False, log=lambda *a: None)
    assert len(h["loss"]) == 4 and all(math.isfinite(v) for v in h["loss"]) and len(h["val_loss"]) == 2
    assert (tmp_path / "a" / "best.pt").exists()
    train.train(TINY, out=str(tmp_path / "b"), progress=False, stop_at=2, log=lambda *a: None)
    _, h2 = train.train(TINY, out=str(tmp_path / "b"), resume=True, progress=False, log=lambda *a: None)
    assert h2["loss"] == h["loss"]
    ck = train.load_checkpoint(str(tmp_path / "a" / "last.pt"))
    assert isinstance(ck["model"], style.StyleTransfer) and ck["extra"]["names"] == list(so.TRACK_NAMES)
    a, b = dict(model.state_dict()), ck["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['colour'\]"):
        train.load_config({**TINY, "colour": 1})
    with pytest.raises(ValueError) as err:
        train.load_config({**TINY, "route": "magic", "corrupt_prob": 2, "segment_seconds": 0})
    text = str(err.value)
    assert "route must be one of" in text and "corrupt_prob" in text and "segment_seconds" in text
    for name in ("style_track.json", "style_track_gpu.json", "style_track_proxy.json", "style_track_spsa.json",
                 "style_track_routes_autodiff.json"):
        cfg = train.load_config(f"configs/{name}")
        assert cfg["model"] == "style_track"


def test_bundled_checkpoint_improves_a_held_out_example():
    assert "style_track" in pretrained.available()
    model = pretrained.load("style_track")
    ex = style.test_examples(4, seconds=1.5, seed=99)
    loss_fn = style.train_loss()
    before, after = 0.0, 0.0
    for i in range(4):
        y, params = style.transfer(model, ex["x"][i], ex["reference"][i], SR)
        assert y.shape == ex["x"][i].shape and list(params) == list(so.TRACK_NAMES)
        assert torch.allclose(so.process_track(ex["x"][i], SR, params)[0], y, atol=1e-5)
        before += float(loss_fn(ex["x"][i:i + 1], ex["target"][i:i + 1]))
        after += float(loss_fn(y.unsqueeze(0), ex["target"][i:i + 1]))
    assert after < 0.8 * before
    # numpy in, numpy out; stereo and another rate
    y, _ = style.transfer(model, ex["x"][0, 0].numpy().astype(np.float64), ex["reference"][0, 0].numpy(), SR)
    assert isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == (ex["x"].shape[-1],)
    st = torch.cat([ex["x"][1], 0.5 * ex["x"][1]])[:, ::2].contiguous()
    y, _ = style.transfer(model, st, ex["reference"][1][:, ::2].contiguous(), SR // 2)
    assert y.shape == st.shape and bool(torch.isfinite(y).all())


def test_bad_inputs():
    model = style.StyleTransfer(n_mels=16, channels=8, embed_dim=8, hidden=16)
    x = 0.1 * torch.randn(1, SR)
    with pytest.raises(ValueError, match="reference is silent"):
        style.transfer(model, x, torch.zeros(1, SR), SR)
    bad = x.clone()
    bad[0, 10] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        style.transfer(model, bad, x, SR)
    with pytest.raises(ValueError, match="reference is too short"):
        style.transfer(model, x, x[:, :1000], SR)
    with pytest.raises(ValueError, match="mono .* or stereo"):
        style.transfer(model, torch.randn(3, SR), x, SR)
    with pytest.raises(ValueError, match="sample_rate"):
        style.transfer(model, x, x, 100)
    with pytest.raises(ValueError, match="model must be a StyleTransfer"):
        style.transfer(object(), x, x, SR)
    with pytest.raises(ValueError, match="route must be one of"):
        style.render(x.view(1, 1, -1), torch.full((1, 18), 0.5), "magic")


def test_evaluation_rows():
    ex = style.test_examples(4, seconds=1.0, seed=3)
    model = style.StyleTransfer(n_mels=16, channels=8, embed_dim=8, hidden=16)
    rows = style.evaluate_track({"untrained": model}, examples=ex)
    assert [r["method"] for r in rows] == ["corrupt", "matching EQ", "untrained"]
    for r in rows:
        assert r["n"] == 4 and all(math.isfinite(r[k]) for k in ("mrstft", "loudness_lu", "centroid_hz",
                                                                  "crest_db", "rms_db"))
    assert rows[0]["param_eq"] is None and (rows[2]["param_eq"] is None) == bool(ex["corrupted"].all())
    table = style.results_table(rows)
    assert table.count("\n") == 4 and "matching EQ" in table
    json.dumps(rows)
