"""The contrastive effects encoder (chapter 5.3): embedding, loss, evaluation helpers, training, bundled checkpoint."""

import math

import numpy as np
import pytest
import torch

from automix_lite import pretrained, train
from automix_lite.models import fx_encoder as fx


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fx.FxEncoder(dim=16, hidden=16, widths=(4, 8), n_mels=16).eval()


def test_embed_shapes_unit_norm_mono_and_stereo(model):
    x = torch.randn(3, 2, 8000) * 0.1
    z = model.embed(x)
    assert z.shape == (3, 16) and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    mono = torch.randn(2, 1, 6000) * 0.1
    assert torch.allclose(model.embed(mono), model.embed(mono.repeat(1, 2, 1)), atol=1e-6)
    assert model.embed(x.numpy()).shape == (3, 16)
    assert torch.allclose(model.embed(x[:1]), z[:1], atol=1e-5)  # an item does not depend on its batch


@pytest.mark.parametrize("bad, match", [(torch.randn(2, 8000), "batch, channels, samples"),
                                        (torch.randn(1, 3, 8000), "1 or 2 channels"),
                                        (torch.randn(1, 2, 100), "at least"),
                                        (torch.full((1, 2, 8000), float("nan")), "finite"),
                                        ([0.0] * 10, "tensor or numpy")])
def test_embed_refuses_bad_input_in_one_line(model, bad, match):
    with pytest.raises(ValueError, match=match) as err:
        model.embed(bad)
    assert "\n" not in str(err.value)


def test_loss_is_invariant_to_the_order_of_the_batch():
    g = torch.Generator().manual_seed(1)
    z, ids = torch.randn(12, 8, generator=g), torch.arange(4).repeat_interleave(3)
    perm = torch.randperm(12, generator=g)
    a, b = fx.contrastive_loss(z, ids, 0.2), fx.contrastive_loss(z[perm], ids[perm], 0.2)
    assert torch.allclose(a, b, atol=1e-6)
    relabelled = fx.contrastive_loss(z, (ids * 7 + 3) % 11, 0.2)  # ids are labels only
    assert torch.allclose(a, relabelled, atol=1e-6)


def test_loss_is_lower_for_aligned_than_for_shuffled_embeddings():
    g = torch.Generator().manual_seed(2)
    centres = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    ids = torch.arange(6).repeat_interleave(2)
    z = centres[ids] + 0.05 * torch.randn(12, 16, generator=g)
    aligned = fx.contrastive_loss(z, ids, 0.1)
    shuffled = fx.contrastive_loss(z, ids[torch.randperm(12, generator=g)], 0.1)
    assert aligned < 0.1 < shuffled
    with pytest.raises(ValueError, match="positives"):
        fx.contrastive_loss(z, torch.arange(12))


def test_retrieval_is_perfect_on_a_tiny_synthetic_case():
    ids = np.repeat(np.arange(5), 3)
    e = np.eye(5)[ids] + 0.01 * np.random.default_rng(0).normal(size=(15, 5))
    r = fx.retrieval(e, ids)
    assert r["top1"] == 1.0 and r["recall@5"] == 1.0 and r["chance"] == pytest.approx(2 / 14) and r["n"] == 15
    shuffled = fx.retrieval(e, np.random.default_rng(1).permutation(ids))
    assert shuffled["top1"] < 0.5


def test_linear_probe_recovers_a_linear_parameter():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 2))
    xa, xb = rng.normal(size=(200, 6)), rng.normal(size=(80, 6))
    r2 = fx.linear_probe(xa, xa @ w, xb, xb @ w, names=["a", "b"], alpha=1e-6)
    assert r2["a"] > 0.999 and r2["b"] > 0.999
    noise = fx.linear_probe(xa, rng.normal(size=200), xb, rng.normal(size=80))
    assert noise["y0"] < 0.1
    xy = fx.projection(xa)
    assert xy.shape == (200, 2)


def test_chains_render_stereo_and_the_batch_pairs_different_content():
    data = fx.ChainData("val", 0.25)
    b = data.batch(3, 2, torch.Generator().manual_seed(0))
    assert b["audio"].shape == (6, 2, round(0.25 * fx.SAMPLE_RATE)) and torch.isfinite(b["audio"]).all()
    assert b["chain"].tolist() == [0, 0, 1, 1, 2, 2]
    assert not torch.allclose(b["audio"][0], b["audio"][1])
    norm = fx.normalized_chains(b["params"])
    assert norm.shape == (6, len(fx.CHAIN_NAMES)) and (norm >= -1e-9).all() and (norm <= 1 + 1e-9).all()
    hard_left = fx.render_chains(torch.randn(1, 4096) * 0.1, {**{k: v[:1] for k, v in b["params"].items()},
                                                               "pan": torch.zeros(1), "reverb_send_db": torch.tensor([-80.0])})
    assert hard_left[0, 1].abs().max() < 1e-6 * hard_left[0, 0].abs().max() + 1e-9


def test_two_steps_through_the_one_training_loop(tmp_path):
    cfg = {"model": "fx_encoder", "steps": 2, "batch_size": 3, "views": 2, "segment_seconds": 0.25, "val_every": 2,
           "val_examples": 2, "log_every": 1, "dim": 8, "hidden": 8, "widths": [4], "n_mels": 16, "device": "cpu",
           "threads": 1}
    model, history = train.train(cfg, out=str(tmp_path / "run"), progress=False, log=lambda *a: None)
    assert isinstance(model, fx.FxEncoder) and history["steps_done"] == 2 and np.isfinite(history["val_loss"]).all()
    ck = train.load_checkpoint(str(tmp_path / "run" / "last.pt"))
    assert ck["extra"]["chain_names"] == list(fx.CHAIN_NAMES)
    with pytest.raises(ValueError, match="views"):
        train.load_config({**cfg, "views": 1})


@pytest.mark.skipif("fx_encoder" not in pretrained.available(), reason="the bundled fx_encoder is not installed")
def test_bundled_checkpoint_loads_verified_and_embeds():
    assert pretrained.available(kind="encoder") == ["fx_encoder"]
    assert "fx_encoder" not in pretrained.available(kind="mixer")
    ck = pretrained.load_checkpoint("fx_encoder")
    assert ck["sha256"] and pretrained.REGISTRY["fx_encoder"]["sha256"] == pretrained.file_sha256(
        pretrained.checkpoint_path("fx_encoder"))
    z = ck["model"].embed(torch.randn(2, 2, 22050) * 0.1)
    assert z.shape == (2, ck["config"]["dim"]) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    assert "CPU-trained" in pretrained.card("fx_encoder")
    from automix_lite import features

    mixes = [np.random.default_rng(k).normal(size=(2, 24000)) * 0.05 for k in range(2)]
    e = features.embed_mixes(mixes, 48000, embedding="fx_encoder")  # resampled to 44.1 kHz
    assert e.shape == (2, ck["config"]["dim"]) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_hard_chains_share_pan_and_reverb_and_differ_in_eq_and_compression():
    data = fx.ChainData("val", 0.25)
    b = data.mixed_batch(4, 2, torch.Generator().manual_seed(3), hard_fraction=0.5)
    assert b["audio"].shape == (8, 2, round(0.25 * fx.SAMPLE_RATE)) and b["chain"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    hard = {k: v[4:] for k, v in b["params"].items()}
    for name in ("pan", "reverb_send_db", "reverb_t60_s"):
        assert hard[name].unique().numel() == 1  # one value shared by the hard chains
    assert b["params"]["pan"][:4].unique().numel() == 2  # the ordinary chains keep their own
    for name in ("low_shelf_gain_db", "threshold_db"):
        assert hard[name].unique().numel() == 2
    plain = data.mixed_batch(2, 2, torch.Generator().manual_seed(4), 0.0)
    again = data.batch(2, 2, torch.Generator().manual_seed(4))
    assert torch.equal(plain["audio"], again["audio"])


def test_level_path_is_blind_to_a_constant_power_pan_and_hears_level_and_dynamics():
    torch.manual_seed(0)
    m = fx.FxEncoder(dim=8, hidden=8, widths=(4,), n_mels=16, level_path=True).eval()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 22050, generator=g) * 0.1
    chans = lambda y: torch.stack([y[:, 0], y[:, 1], y.mean(1), (y[:, 0] - y[:, 1]) / 2], 1)  # noqa: E731

    def stats(y):
        return m._level_stats(m.frontend(chans(y).reshape(-1, y.shape[-1])).view(1, 4, 16, -1) + 2.5)

    pan = lambda p: torch.stack([x * math.cos(p * math.pi / 2), x * math.sin(p * math.pi / 2)], 1)  # noqa: E731
    assert torch.allclose(stats(pan(0.2)), stats(pan(0.8)), atol=1e-3)
    assert not torch.allclose(stats(pan(0.5)), stats(0.5 * pan(0.5)), atol=1e-2)  # -6 dB changes it
    env = torch.linspace(0.1, 1.5, 22050)  # a wider loudness range
    assert stats(pan(0.5) * env)[0, -1] > stats(pan(0.5))[0, -1] + 0.1
    assert m(pan(0.5)).shape == (1, 8)
    with pytest.raises(ValueError, match="hard_fraction"):
        train.load_config({"model": "fx_encoder", "hard_fraction": 1.5})


@pytest.mark.skipif("fx_encoder" not in pretrained.available(), reason="the bundled fx_encoder is not installed")
def test_style_track_with_the_frozen_fx_encoder_as_its_reference_encoder():
    from automix_lite.models import style

    cfg = train.load_config({"model": "style_track", "reference_encoder": "fx_encoder", "hidden": 16})
    net = style.build_model(cfg)
    assert train.load_config({"model": "style_track"})["reference_encoder"] == "learned"
    frozen = {k: v.clone() for k, v in net.fx.state_dict().items()}
    x = torch.randn(2, 1, 22050) * 0.05
    y, c = net(x, x.flip(0))
    assert y.shape == x.shape and c.shape == (2, 18)
    y.square().mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in net.fx.parameters())
    assert all(p.grad is not None for p in net.controller.parameters())
    assert not hasattr(net, "conv")  # the learned encoder is replaced, not trained beside it
    assert all(torch.equal(frozen[k], v) for k, v in net.fx.state_dict().items())
    with pytest.raises(ValueError, match="reference_encoder"):
        train.load_config({"model": "style_track", "reference_encoder": "mel"})
