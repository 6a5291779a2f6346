"""Tests for automix_lite.dsp.reverb: determinism, T60, convolution, wet/dry, gradients, filters, errors."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix_lite.dsp.reverb import (
    allpass_filter,
    comb_filter,
    energy_decay_curve,
    fdn_impulse_response,
    fdn_reverb,
    fft_convolve,
    measure_t60,
    reverb,
    reverb_impulse_response,
    schroeder_impulse_response,
    schroeder_reverb,
)

SR = 44100


def _noise(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- impulse response


def test_ir_is_deterministic_and_seeded():
    a = reverb_impulse_response(SR, 1.0)
    b = reverb_impulse_response(SR, 1.0)
    assert a.shape == (1, 1, math.ceil(1.5 * SR)) and a.dtype == torch.get_default_dtype()
    assert torch.equal(a, b)
    other = reverb_impulse_response(SR, 1.0, seed=1)
    assert (a - other).abs().max() > 0.01
    # the noise does not depend on the IR length: a longer IR starts with the same shape
    longer = reverb_impulse_response(SR, 1.0, length_s=3.0, damping=0.0, early_ms=0.0)
    short = reverb_impulse_response(SR, 1.0, length_s=1.0, damping=0.0, early_ms=0.0)
    ratio = longer[..., : short.shape[-1]] / short
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))
    stereo = reverb_impulse_response(SR, 1.0, channels=2)
    assert stereo.shape[1] == 2
    assert abs(float(torch.corrcoef(stereo[0])[0, 1])) < 0.1  # decorrelated channels


def test_ir_energy_predelay_and_batch():
    t60 = torch.tensor([0.3, 0.8, 1.2])
    h = reverb_impulse_response(SR, t60, predelay_ms=20.0)
    pre = round(0.02 * SR)
    assert h.shape == (3, 1, pre + math.ceil(1.5 * 1.2 * SR))
    assert torch.all(h[..., :pre] == 0) and torch.all(h[..., pre : 2 * pre].abs().sum(-1) > 0)
    torch.testing.assert_close(h.square().sum(-1), torch.ones(3, 1))
    assert reverb_impulse_response(SR, 0.5, length_s=0.25).shape[-1] == round(0.25 * SR)


@pytest.mark.parametrize("t60", [0.2, 0.5, 1.0, 2.0, 4.0])
def test_measured_t60_matches_parameter(t60):
    for damping, early_ms in [(0.5, 50.0), (0.0, 0.0)]:
        h = reverb_impulse_response(SR, t60, damping=damping, early_ms=early_ms)
        assert float(measure_t60(h, SR)) == pytest.approx(t60, rel=0.05)


def test_damping_makes_highs_decay_faster():
    h = reverb_impulse_response(SR, 1.0, damping=1.0, early_ms=0.0)[0, 0].double().numpy()
    sos = scipy.signal.butter(4, 4000, "highpass", fs=SR, output="sos")
    late_high = scipy.signal.sosfilt(sos, h)
    sos_low = scipy.signal.butter(4, 500, "lowpass", fs=SR, output="sos")
    late_low = scipy.signal.sosfilt(sos_low, h)
    t60_high, t60_low = (float(measure_t60(s, SR, fit_db=(-5, -25))) for s in (late_high, late_low))
    assert t60_high < 0.8 < 1.2 < t60_low


def test_measure_t60_on_exact_exponential():
    for t60 in (0.25, 2.0):
        n = np.arange(int(2 * t60 * SR))
        h = 10.0 ** (-3.0 * n / (t60 * SR))  # amplitude: energy falls 60 dB in t60
        assert float(measure_t60(h, SR)) == pytest.approx(t60, rel=1e-3)
    edc = energy_decay_curve(torch.ones(4, 100))
    assert edc.shape == (4, 100) and float(edc[0, 0]) == 0.0 and bool((edc.diff(dim=-1) <= 0).all())


# ---------------------------------------------------------------- convolution


@pytest.mark.parametrize("t,n", [(1000, 300), (200, 700)])
def test_fft_convolve_matches_scipy_and_numpy(t, n):
    x, ir = _noise(3, 2, t), _noise(1, 2, n, seed=1)
    ref = scipy.signal.fftconvolve(x.numpy(), np.broadcast_to(ir.numpy(), (3, 2, n)), axes=-1)
    full = fft_convolve(x, ir, mode="full")
    np.testing.assert_allclose(full.numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(fft_convolve(x, ir[:, :1])[1, 0].numpy(), np.convolve(x[1, 0], ir[0, 0])[:t], atol=1e-10)
    assert fft_convolve(x, ir).shape == x.shape
    assert fft_convolve(x.float(), ir).dtype == torch.float32


def test_wet_zero_is_identity_and_wet_one_fully_wet():
    x = _noise(2, 2, 4000, dtype=torch.float32)
    ir = reverb_impulse_response(SR, 0.3, channels=2)
    assert torch.equal(reverb(x, SR, 0.3, wet=0.0), x)
    torch.testing.assert_close(reverb(x, SR, 0.3, wet=1.0), fft_convolve(x, ir))
    torch.testing.assert_close(reverb(x, SR, None, wet=1.0, ir=ir), fft_convolve(x, ir))
    half = reverb(x, SR, 0.3, wet=torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(half[1], 0.75 * x[1] + 0.25 * fft_convolve(x, ir)[1])
    y = reverb(x[:, :1].expand(-1, 2, -1), SR, 0.3, wet=1.0)
    assert y.shape == (2, 2, 4000) and (y[:, 0] - y[:, 1]).abs().max() > 0.01  # stereo IR is decorrelated


def test_longer_t60_gives_more_late_energy():
    x = torch.zeros(1, 1, 8000, dtype=torch.float64)
    x[..., 0] = 1.0
    t60 = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    y = reverb(x, 8000, t60, wet=1.0, length_s=1.0)
    y[..., 4000:].square().sum().backward()
    assert float(t60.grad) > 0


# ---------------------------------------------------------------- gradients


def test_gradcheck_reverb_x_t60_wet_damping():
    sr = 8000
    x = _noise(2, 1, 48).requires_grad_()
    t60 = torch.tensor([0.06, 0.1], dtype=torch.float64, requires_grad=True)
    wet = torch.tensor([0.3, 0.8], dtype=torch.float64, requires_grad=True)
    damping = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)

    def f(x, t60, wet, damping):
        return reverb(x, sr, t60, wet, predelay_ms=1.0, damping=damping, early_ms=2.0, length_s=0.01)

    assert torch.autograd.gradcheck(f, (x, t60, wet, damping))


def test_gradients_finite_at_wet_edges():
    x = _noise(2, 1, 500).requires_grad_()
    for w in (0.0, 1.0):
        wet = torch.full((2,), w, dtype=torch.float64, requires_grad=True)
        t60 = torch.full((2,), 0.2, dtype=torch.float64, requires_grad=True)
        reverb(x, SR, t60, wet).square().sum().backward()
        for p in (x, wet, t60):
            assert torch.isfinite(p.grad).all()
            p.grad = None


def test_gradcheck_comb_allpass_and_algorithmic_reverbs():
    x = _noise(2, 1, 40).requires_grad_()
    g = torch.tensor([0.0, -0.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, g: comb_filter(x, 7, g, input_delay_samples=2), (x, g))
    assert torch.autograd.gradcheck(lambda x, g: allpass_filter(x, 5, g), (x, g))
    sr = 2000
    t60 = torch.tensor([0.3, 0.5], dtype=torch.float64, requires_grad=True)
    wet = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    xs = _noise(2, 1, 120).requires_grad_()
    fdn = lambda x, t, w: fdn_reverb(x, sr, t, w, length_s=0.2, delays_ms=(11.0, 13.0, 17.0, 19.0))  # noqa: E731
    for fn in (lambda x, t, w: schroeder_reverb(x, sr, t, w, length_s=0.2), fdn):
        assert torch.autograd.gradcheck(fn, (xs, t60, wet), fast_mode=True)


# ---------------------------------------------------------------- comb / allpass / Schroeder / FDN


def test_comb_and_allpass_match_lfilter():
    x = _noise(2, 2, 3000)
    g = torch.tensor([0.8, -0.5], dtype=torch.float64)
    for n, m in [(37, None), (37, 5), (11, 0)]:
        m_ = n if m is None else m
        y = comb_filter(x, n, g, input_delay_samples=m)
        for i in range(2):
            b = np.zeros(m_ + 1)
            b[m_] = 1.0
            a = np.zeros(n + 1)
            a[0], a[n] = 1.0, -float(g[i])
            np.testing.assert_allclose(y[i].numpy(), scipy.signal.lfilter(b, a, x[i].numpy(), axis=-1), atol=1e-10)
    y = allpass_filter(x, 23, 0.7)
    b, a = np.zeros(24), np.zeros(24)
    b[0], b[23], a[0], a[23] = -0.7, 1.0, 1.0, -0.7
    np.testing.assert_allclose(y.numpy(), scipy.signal.lfilter(b, a, x.numpy(), axis=-1), atol=1e-10)
    assert comb_filter(x[..., :10], 37, 0.5).abs().max() < 1e-12  # delay longer than the signal


def test_allpass_has_flat_magnitude():
    impulse = torch.zeros(1, 1, 16384, dtype=torch.float64)
    impulse[..., 0] = 1.0
    for g in (0.7, -0.4):
        h = allpass_filter(impulse, 37, g)
        np.testing.assert_allclose(np.abs(np.fft.rfft(h[0, 0].numpy())), 1.0, atol=1e-6)
    comb = comb_filter(impulse, 37, 0.7)
    mag = np.abs(np.fft.rfft(comb[0, 0].numpy()))
    assert mag.max() / mag.min() > 5  # a comb is not: peaks 1/(1-g), dips 1/(1+g)


@pytest.mark.parametrize("t60", [0.5, 1.5])
def test_schroeder_and_fdn_t60(t60):
    assert float(measure_t60(schroeder_impulse_response(SR, t60), SR)) == pytest.approx(t60, rel=0.1)
    fdn = fdn_impulse_response(SR, t60, channels=2)
    np.testing.assert_allclose(measure_t60(fdn, SR).numpy(), t60, rtol=0.1)
    four = fdn_impulse_response(SR, t60, delays_ms=(29.7, 37.1, 41.1, 43.7), matrix="householder")
    assert float(measure_t60(four, SR)) == pytest.approx(t60, rel=0.1)
    torch.testing.assert_close(fdn.square().sum(-1), torch.ones(1, 2))


def test_algorithmic_reverbs_shapes():
    x = _noise(2, 2, 2000, dtype=torch.float32)
    for fn in (schroeder_reverb, fdn_reverb):
        y = fn(x, SR, 0.4, wet=0.5)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.equal(fn(x, SR, 0.4, wet=0.0), x)


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    x = _noise(1, 1, 100)
    with pytest.raises(ValueError, match="3 dimensions"):
        reverb(x[0], SR, 1.0)
    bad = x.clone()
    bad[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        reverb(bad, SR, 1.0)
    for t60 in (0.0, -1.0, 20.0):
        with pytest.raises(ValueError, match="t60_s"):
            reverb(x, SR, t60)
    with pytest.raises(ValueError, match=r"t60_s \(in seconds, e.g. 1.2\) or an impulse response"):
        reverb(x, SR)
    with pytest.raises(ValueError, match="wet"):
        reverb(x, SR, 1.0, wet=1.5)
    with pytest.raises(ValueError, match="sample_rate"):
        reverb(x, 0, 1.0)
    with pytest.raises(ValueError, match="seed"):
        reverb_impulse_response(SR, 1.0, seed=-1)
    with pytest.raises(ValueError, match="predelay_ms"):
        reverb_impulse_response(SR, 1.0, predelay_ms=1000.0)
    with pytest.raises(ValueError, match="damping"):
        reverb_impulse_response(SR, 1.0, damping=2.0)
    with pytest.raises(ValueError, match="does not fit"):
        fft_convolve(x, torch.ones(1, 2, 10, dtype=x.dtype))
    with pytest.raises(ValueError, match="strictly between -1 and 1"):
        comb_filter(x, 10, 1.0)
    with pytest.raises(ValueError, match="delay_samples"):
        allpass_filter(x, 0, 0.5)
    with pytest.raises(ValueError, match="power-of-two"):
        fdn_impulse_response(SR, 1.0, delays_ms=(20.0, 25.0, 30.0), matrix="hadamard")
    with pytest.raises(ValueError, match="longer impulse response"):
        measure_t60(reverb_impulse_response(SR, 2.0, length_s=0.3), SR)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = _noise(2, 2, 3000, dtype=torch.float32)
    t60 = torch.tensor([0.3, 0.6])
    ref = reverb(x, SR, t60, wet=0.5)
    out = reverb(x.cuda(), SR, t60.cuda(), wet=0.5)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fdn_reverb(x.cuda(), SR, 0.5).cpu(), fdn_reverb(x, SR, 0.5), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_empty_batches_are_refused_like_the_other_effects(dtype):
    x = torch.randn(1, 2, 2048)
    with pytest.raises(TypeError, match=f"x must be float32 or float64 for the FFT convolution; got {dtype}"):
        reverb(x.to(dtype), SR, t60_s=0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        fft_convolve(x.to(dtype), torch.ones(1, 1, 16))
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 2, 2048\)\)"):
        reverb(x[:0], SR, t60_s=0.5)
