"""Tests of automix_lite.models.proxy: parameters, DSP reference, proxy model, metrics, checkpoints (its training
data and training: tests/test_train_proxy.py)."""

import math

import pytest
import torch

from automix_lite.models import proxy as P

SR = 44100


def stems(n=3, seconds=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    return [0.3 * torch.sin(2 * math.pi * (110 * (k + 1)) * t) + 0.05 * torch.randn(t.shape[0], generator=g)
            for k in range(n)]


def tiny():
    torch.manual_seed(0)
    return P.build_model({"preset": "tiny", "channels": 4})


def test_normalize_round_trip_and_ranges():
    p = P.sample_params(64, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert p.shape == (64, P.N_PARAMS) and p.min() >= -1 and p.max() <= 1
    real = P.denormalize(p)
    assert torch.allclose(P.normalize(real), p, atol=1e-9)
    ones = torch.ones(1, P.N_PARAMS, dtype=torch.float64)
    assert torch.allclose(P.denormalize(-ones)[0], P._LOW) and torch.allclose(P.denormalize(ones)[0], P._HIGH)
    i = P.NAMES.index("ratio")  # log scale: the middle of [-1, 1] is the geometric mean
    assert P.denormalize(0 * ones)[0, i].item() == pytest.approx(math.sqrt(20.0))
    with pytest.raises(ValueError, match=f"\\(batch, {P.N_PARAMS}\\)"):
        P.normalize(torch.zeros(2, 3))


def test_sample_params_bypass_values():
    p = P.sample_params(8, torch.Generator().manual_seed(2), active=("reverb",), dtype=torch.float64)
    real = dict(zip(P.NAMES, P.denormalize(p).unbind(1)))
    for name in ("low_shelf_gain_db", "peak_gain_db[1]", "high_shelf_gain_db", "makeup_db"):
        assert torch.allclose(real[name], torch.zeros(8, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(real["ratio"], torch.ones(8, dtype=torch.float64))
    assert real["reverb_wet"].min() > 0  # the active reverb keeps random settings
    with pytest.raises(ValueError, match="active"):
        P.sample_params(2, active=("delay",))


def test_all_bypassed_chain_returns_input_and_each_processor_acts():
    x = torch.stack(stems(2)).unsqueeze(1)
    g = torch.Generator().manual_seed(3)
    y = P.channel_chain(x, SR, P.sample_params(2, g, active=()))
    assert torch.allclose(y, x, atol=1e-5)
    for proc in P.PROCESSORS:
        y = P.channel_chain(x, SR, P.sample_params(2, g, active=(proc,)))
        assert (y - x).abs().max() > 1e-3, proc


def test_channel_chain_deterministic_and_differentiable():
    x = torch.stack(stems(2)).unsqueeze(1)
    p = P.sample_params(2, torch.Generator().manual_seed(4))
    assert torch.equal(P.channel_chain(x, SR, p), P.channel_chain(x, SR, p))
    # float64 directional derivative: autograd against a central difference along a random direction
    g = torch.Generator().manual_seed(5)
    x64 = x[:1, :, :2048].double()
    p64 = 0.8 * P.sample_params(1, g, dtype=torch.float64)
    w, v = torch.randn(2048, generator=g, dtype=torch.float64), torch.randn(p64.shape, generator=g, dtype=torch.float64)

    def loss(q):
        return (P.channel_chain(x64, SR, q)[0, 0] * w).sum()

    q = p64.clone().requires_grad_(True)
    loss(q).backward()
    assert torch.isfinite(q.grad).all() and (q.grad != 0).sum() > P.N_PARAMS // 2
    eps = 1e-6
    numeric = (loss(p64 + eps * v) - loss(p64 - eps * v)) / (2 * eps)
    assert (q.grad * v).sum().item() == pytest.approx(numeric.item(), rel=1e-4)


def test_proxy_shapes_and_conditioning():
    model = tiny().eval()
    x = torch.randn(2, 1, 1000)
    p = P.sample_params(2, torch.Generator().manual_seed(6))
    assert model(x, p, same_length=True).shape == x.shape
    assert model(x, p).shape == (2, 1, 1000 - model.receptive_field + 1)
    with torch.no_grad():
        assert (model(x, p) - model(x, -p)).abs().max() > 1e-4


def test_metrics_closed_forms():
    y = torch.stack(stems(2)).unsqueeze(1)[..., :8192]
    m = P.metrics(torch.zeros_like(y), y, SR)
    assert torch.allclose(m["ESR"], torch.ones(2))
    assert torch.allclose(P.metrics(y + 0.25, y, SR)["MAE"], torch.full((2,), 0.25))
    assert torch.allclose(P.mcd(y, y, SR), torch.zeros(2, dtype=torch.float64))
    assert (P.mcd(0.5 * y, y, SR) > 0).all()
    assert P.MCD_ALPHA == pytest.approx(6.14185, abs=1e-5)


def test_evaluate_layout():
    res = P.evaluate(tiny(), n_examples=2, seconds=0.05, stems=stems())
    assert list(res) == [c for c, _ in P.CASES]
    assert all(set(cell) == set(P.METRICS) for cell in res.values())
    assert "| combined |" in P.format_table(res)


def test_checkpoint_round_trip_and_checksum(tmp_path):
    model = tiny().eval()
    path = str(tmp_path / "p.pt")
    P.save_checkpoint(path, model, {"preset": "tiny", "channels": 4}, {"a": 1.0})
    ck = P.load_checkpoint(path)
    x, p = torch.randn(1, 1, 600), P.sample_params(1, torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert torch.equal(ck["model"](x, p), model(x, p))
    assert ck["metrics"] == {"a": 1.0}
    outer = torch.load(path, weights_only=True)
    payload = bytearray(outer["payload"])
    payload[len(payload) // 2] ^= 0xFF
    outer["payload"] = bytes(payload)
    torch.save(outer, path)
    with pytest.raises(ValueError, match="checksum"):
        P.load_checkpoint(path)
