"""Finite-difference and SPSA gradients of black-box (numpy/scipy) effects against exact autograd."""

import numpy as np
import pytest
import scipy.signal as ss
import torch

from automix_lite.dsp import biquad_coefficients, biquad_sos, sosfilt
from automix_lite.gradients import BlackBoxEffect, finite_difference, spsa

SR = 44100


def gain_np(x, p):
    return x * 10 ** (p[:, :, None] / 20)  # one gain (dB) per channel: P = C


def gain_torch(x, p):
    return x * 10 ** (p[:, :, None] / 20)


def peaking_np(x, p):
    """Overall gain (dB), then a peaking EQ (gain dB, centre Hz, Q = 1) run by scipy."""
    b, a = biquad_coefficients("peaking", torch.from_numpy(p[:, 1]), torch.from_numpy(p[:, 2]), 1.0, SR,
                               dtype=torch.float64)
    y = np.stack([ss.lfilter(bi, ai, xi, axis=-1) for bi, ai, xi in zip(b.numpy(), a.numpy(), x)])
    return y * 10 ** (p[:, :1, None] / 20)


def peaking_torch(x, p):
    sos = biquad_sos("peaking", p[:, 1], p[:, 2], 1.0, SR).view(-1, 1, 1, 6)
    return sosfilt(sos, x) * 10 ** (p[:, :1, None] / 20)


def _grads(effect, exact, x, p, target):
    """Gradient of the MSE to ``target`` w.r.t. ``p`` through ``effect`` and through ``exact`` (autograd)."""
    out = []
    for f in (effect, exact):
        q = p.clone().requires_grad_()
        torch.nn.functional.mse_loss(f(x, q), target).backward()
        out.append(q.grad)
    return out


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def _gain_case(channels=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, channels, 1024, generator=g, dtype=torch.float64)
    p = 6 * torch.randn(3, channels, generator=g, dtype=torch.float64)
    return x, p, torch.randn(3, channels, 1024, generator=g, dtype=torch.float64)


def test_forward_is_the_black_box_output():
    x = torch.randn(2, 1, 64)
    p = torch.tensor([[-6.0], [3.0]])
    y = finite_difference(gain_np)(x, p)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y, gain_torch(x, p), rtol=1e-6)


def test_finite_difference_matches_exact_gain_gradient():
    x, p, target = _gain_case(channels=1)
    fd, exact = _grads(finite_difference(gain_np), gain_torch, x, p, target)
    assert torch.allclose(fd, exact, rtol=1e-6, atol=0)
    # with one parameter an SPSA draw (+-1) is the central difference itself
    sp, _ = _grads(spsa(gain_np, seed=3), gain_torch, x, p, target)
    assert torch.allclose(sp, fd, rtol=1e-12, atol=0)


def test_spsa_is_unbiased_for_several_parameters():
    x, p, target = _gain_case(channels=4)
    n = 200
    sp, exact = _grads(spsa(gain_np, n_samples=n, seed=0), gain_torch, x, p, target)
    assert _cos(sp, exact) > 0.95
    # each draw's error in component j is sum_{i != j} +-G_i: standard error of the mean over n draws
    se = (((exact**2).sum(1, keepdim=True) - exact**2) / n).sqrt()
    assert ((sp - exact).abs() < 4 * se).all()
    # n draws in one backward pass = the mean of n single-draw passes from the same seed
    single = spsa(gain_np, seed=0)
    mean = sum(_grads(single, gain_torch, x, p, target)[0] for _ in range(n)) / n
    assert torch.allclose(mean, sp, rtol=1e-10, atol=1e-15)


def test_peaking_eq_gradients_against_sosfilt_autograd():
    x = torch.randn(4, 1, 4096, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.tensor([[0.0, 6.0, 1000.0], [-3.0, -6.0, 300.0], [2.0, 3.0, 5000.0], [-1.0, -9.0, 150.0]],
                     dtype=torch.float64)
    target = peaking_torch(x, torch.tensor([[1.0, 0.0, 800.0]] * 4, dtype=torch.float64))
    scale = [1.0, 1.0, 1000.0]  # dB, dB, Hz: steps of 1e-3 dB and 1 Hz
    fd, exact = _grads(finite_difference(peaking_np, scale=scale), peaking_torch, x, p, target)
    assert ((fd - exact).abs() <= 1e-4 * exact.abs()).all()
    assert _cos(fd, exact) > 0.99
    sp, _ = _grads(spsa(peaking_np, n_samples=200, seed=0, scale=scale), peaking_torch, x, p, target)
    unit = torch.tensor(scale, dtype=torch.float64)  # compare per unit step of each parameter
    assert _cos(sp * unit, exact * unit) > 0.9


def test_spsa_is_deterministic_with_a_seed():
    x, p, target = _gain_case()
    a = _grads(spsa(gain_np, seed=7), gain_torch, x, p, target)[0]
    b = _grads(spsa(gain_np, seed=7), gain_torch, x, p, target)[0]
    c = _grads(spsa(gain_np, seed=8), gain_torch, x, p, target)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    effect = spsa(gain_np, seed=7)
    first, second = (_grads(effect, gain_torch, x, p, target)[0] for _ in range(2))
    assert torch.equal(first, a) and not torch.equal(second, a)  # each backward pass draws anew


def test_gradients_reach_upstream_parameters_in_float32():
    net = torch.nn.Linear(2, 1)
    x = torch.randn(2, 1, 256)
    y = spsa(gain_np, seed=0)(x, net(torch.rand(2, 2)))
    y.square().mean().backward()
    assert net.weight.grad is not None and bool(torch.isfinite(net.weight.grad).all())
    assert net.weight.grad.dtype == torch.float32
    p = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)  # float64 params, float32 audio
    finite_difference(gain_np)(x, p).sum().backward()
    assert p.grad.dtype == torch.float64
    assert torch.allclose(p.grad, x.double().sum((1, 2)).unsqueeze(1) * np.log(10) / 20, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    effect = finite_difference(gain_np, name="channel gain")
    x, p = torch.randn(2, 1, 32), torch.zeros(2, 1)
    with pytest.raises(ValueError, match="3 dimensions"):
        effect(x[0], p)
    with pytest.raises(ValueError, match=r"'channel gain'.*\(batch, n_params\)"):
        effect(x, torch.zeros(2))
    with pytest.raises(ValueError, match=r"batch = 2"):
        effect(x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="NaN"):
        effect(x, torch.tensor([[0.0], [float("inf")]]))
    with pytest.raises(ValueError, match="detach"):
        effect(x.requires_grad_(), p)
    with pytest.raises(ValueError, match="scale has 2 entries"):
        finite_difference(gain_np, scale=[1.0, 2.0])(torch.randn(2, 1, 8), p)
    for kwargs, match in [(dict(eps=0.0), "eps"), (dict(n_samples=0), "n_samples"), (dict(scale=[1.0, -1.0]), "scale")]:
        with pytest.raises(ValueError, match=match):
            spsa(gain_np, **kwargs)
    with pytest.raises(TypeError, match="fn must be a function"):
        BlackBoxEffect("gain", "fd")


def test_bad_effect_outputs_name_the_effect():
    x, p = torch.randn(2, 1, 32), torch.full((2, 1), 1e-4, requires_grad=True)

    def root_gain(x, p):
        with np.errstate(invalid="ignore"):
            return x * np.sqrt(p[:, :, None])  # NaN for p < 0: p - eps is out of range

    y = finite_difference(root_gain)(x, p)  # the forward pass is fine
    with pytest.raises(ValueError, match=r"'root_gain' returned NaN.*gradient estimate.*batch item 0"):
        y.sum().backward()
    with pytest.raises(ValueError, match=r"'nan effect' returned NaN.*forward"):
        finite_difference(lambda x, p: x * np.nan, name="nan effect")(x, p)
    with pytest.raises(ValueError, match="first dimension must be the batch size 2"):
        finite_difference(lambda x, p: x[0])(x, p)

    def shape_shifter(x, p):
        return x[..., :-1] if p[0, 0] > 1e-3 else x  # shorter only when perturbed upwards

    y = finite_difference(shape_shifter)(x, p)
    with pytest.raises(ValueError, match="in the forward pass"):
        y.sum().backward()
