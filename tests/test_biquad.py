"""Biquad coefficients, exact and frequency-sampled SOS filtering, and the parametric EQ."""

import math

import numpy as np
import pytest
import scipy.signal as ss
import torch

from automix_lite.dsp.biquad import (
    EQ_RANGES,
    FILTER_TYPES,
    biquad_coefficients,
    biquad_sos,
    parametric_eq,
    parametric_eq_sos,
    sosfilt,
    sosfilt_freq,
    sosfreqz,
)

SR = 44100


def _analog_prototype(kind, gain_db, q):
    """The cookbook's analog prototypes H(s) (s normalised to the cutoff), descending powers of s."""
    A = 10 ** (gain_db / 40)
    den = [1.0, 1.0 / q, 1.0]
    return {
        "lowpass": ([0.0, 0.0, 1.0], den),
        "highpass": ([1.0, 0.0, 0.0], den),
        "bandpass": ([0.0, 1.0 / q, 0.0], den),
        "notch": ([1.0, 0.0, 1.0], den),
        "peaking": ([1.0, A / q, 1.0], [1.0, 1.0 / (A * q), 1.0]),
        "low_shelf": ([A, A * math.sqrt(A) / q, A * A], [A, math.sqrt(A) / q, 1.0]),
        "high_shelf": ([A * A, A * math.sqrt(A) / q, A], [1.0, math.sqrt(A) / q, A]),
    }[kind]


def _scipy_biquad(kind, gain_db, fc, q, sr):
    """Bilinear transform (scipy) of the prototype, pre-warped so that the cutoff lands on fc."""
    b, a = _analog_prototype(kind, gain_db, q)
    w = 2 * sr * math.tan(math.pi * fc / sr)
    scale = np.array([1 / w**2, 1 / w, 1.0])
    bz, az = ss.bilinear(np.array(b) * scale, np.array(a) * scale, fs=sr)
    return bz / az[0], az / az[0]


def _eq_sos_np(sr, gains, cutoffs, qs):
    kinds = ["low_shelf"] + ["peaking"] * (len(gains) - 2) + ["high_shelf"]
    rows = [np.concatenate(_scipy_biquad(k, g, f, q, sr)) for k, g, f, q in zip(kinds, gains, cutoffs, qs)]
    return np.stack(rows)


@pytest.mark.parametrize("kind", FILTER_TYPES)
@pytest.mark.parametrize("gain_db,fc,q", [(6.0, 1000.0, 0.707), (-12.0, 60.0, 4.0), (18.0, 15000.0, 0.3)])
def test_coefficients_match_scipy_bilinear_transform(kind, gain_db, fc, q):
    b, a = biquad_coefficients(kind, gain_db, fc, q, SR, dtype=torch.float64)
    bz, az = _scipy_biquad(kind, gain_db, fc, q, SR)
    assert a[0].item() == 1.0
    np.testing.assert_allclose(b.numpy(), bz, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.numpy(), az, rtol=1e-9, atol=1e-12)


def test_butterworth_is_the_cookbook_lowpass_and_highpass_at_q_0707():
    for kind, btype in (("lowpass", "low"), ("highpass", "high")):
        b, a = biquad_coefficients(kind, 0.0, 2000.0, 1 / math.sqrt(2), SR, dtype=torch.float64)
        bz, az = ss.butter(2, 2000.0, btype, fs=SR)
        np.testing.assert_allclose(b.numpy(), bz, atol=1e-12)
        np.testing.assert_allclose(a.numpy(), az, atol=1e-12)


@pytest.mark.parametrize("gain_db", [-15.0, 9.0])
def test_closed_form_gains_at_dc_nyquist_and_cutoff(gain_db):
    fc, q = 3000.0, 2.0
    g = 10 ** (gain_db / 20)
    expected = {  # |H| at (DC, Nyquist, fc)
        "lowpass": (1, 0, q), "highpass": (0, 1, q), "bandpass": (0, 0, 1), "notch": (1, 1, 0),
        "peaking": (1, 1, g), "low_shelf": (g, 1, math.sqrt(g)), "high_shelf": (1, g, math.sqrt(g)),
    }
    for kind, gains in expected.items():
        sos = biquad_sos(kind, gain_db, fc, q, SR, dtype=torch.float64).view(1, 6)
        _, h = sosfreqz(sos, sample_rate=SR, freqs=[0.0, SR / 2, fc])
        np.testing.assert_allclose(h.abs().numpy(), gains, atol=1e-9, err_msg=kind)
    # the peaking band's gain at fc equals gain_db exactly
    _, h = sosfreqz(biquad_sos("peaking", gain_db, fc, q, SR, dtype=torch.float64).view(1, 6), sample_rate=SR, freqs=[fc])
    assert 20 * math.log10(h.abs().item()) == pytest.approx(gain_db, abs=1e-9)


def test_coefficients_broadcast_and_keep_gradients():
    gain = torch.tensor([-6.0, 0.0, 6.0], dtype=torch.float64, requires_grad=True)
    fc = torch.tensor([[100.0], [1000.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    b, a = biquad_coefficients("peaking", gain, fc, q, SR)
    assert b.shape == a.shape == (2, 3, 3) and b.dtype == torch.float64
    assert torch.equal(a[..., 0], torch.ones(2, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda g, f, q: biquad_sos("low_shelf", g, f, q, SR), (gain, fc, q))
    assert biquad_sos("notch", 0.0, 500.0, 1.0, SR).shape == (6,)


def _sos_bank(dtype=torch.float64):
    params = [("low_shelf", 6.0, 100.0, 0.707), ("peaking", -9.0, 700.0, 3.0), ("highpass", 0.0, 40.0, 0.8),
              ("high_shelf", 4.0, 8000.0, 0.707)]
    return torch.stack([biquad_sos(k, g, f, q, SR, dtype=dtype) for k, g, f, q in params])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_sosfilt_matches_scipy_for_broadcast_layouts(dtype, tol):
    g = torch.Generator().manual_seed(0)
    B, C, T = 3, 2, 3000
    x = torch.randn(B, C, T, generator=g, dtype=torch.float64).to(dtype)
    base = _sos_bank(dtype)
    per_item = torch.stack([base * (1 + 0.05 * i * (torch.arange(6) < 3)) for i in range(B)])  # vary b per item
    layouts = {
        "shared": base,  # (S, 6)
        "per_item": per_item[:, None],  # (B, 1, S, 6)
        "per_channel": per_item[:, None].expand(B, C, -1, -1).clone(),  # (B, C, S, 6)
        "per_channel_shared": per_item[:C],  # (C, S, 6) broadcasts against (B, C)
    }
    for name, sos in layouts.items():
        y = sosfilt(sos, x)
        assert y.shape == x.shape and y.dtype == dtype, name
        s = sos.double().expand(B, C, *sos.shape[-2:]).numpy()
        for b in range(B):
            for c in range(C):
                ref = ss.sosfilt(s[b, c], x[b, c].double().numpy())
                np.testing.assert_allclose(y[b, c].double().numpy(), ref, atol=tol, rtol=0, err_msg=name)


def test_sosfilt_broadcasts_x_against_a_batch_of_filters_and_normalises_a0():
    x = torch.zeros(1, 1, 500, dtype=torch.float64)
    x[..., 0] = 1.0
    sos = torch.stack([_sos_bank(), 2 * _sos_bank()])[:, None]  # (2, 1, S, 6); the second has a0 = 2
    y = sosfilt(sos, x)
    assert y.shape == (2, 1, 500)
    ref = ss.sosfilt(_sos_bank().numpy(), x[0, 0].numpy())
    np.testing.assert_allclose(y[0, 0].numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(y[1, 0].numpy(), ref, atol=1e-12)


def test_sosfilt_non_contiguous_input():
    x = torch.randn(2, 1000, 2, dtype=torch.float64).transpose(1, 2)  # (2, 2, 1000), not contiguous
    sos = _sos_bank()[:, :].flip(0)
    np.testing.assert_allclose(sosfilt(sos, x).numpy(), ss.sosfilt(sos.numpy(), x.numpy(), axis=-1), atol=1e-10)


def test_sosfilt_gradcheck_x_and_sos():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 40, generator=g, dtype=torch.float64, requires_grad=True)
    shared = _sos_bank()[:3].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(sosfilt, (shared, x))
    per_item = (_sos_bank()[None, None, :2] * torch.tensor([1.0, 0.9]).view(2, 1, 1, 1)).requires_grad_(True)
    assert torch.autograd.gradcheck(sosfilt, (per_item, x))
    x1 = torch.randn(1, 1, 30, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sosfilt, (per_item, x1))  # x broadcast against a batch of filters


def test_parametric_eq_gradcheck_in_real_units():
    x = torch.randn(2, 1, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    gain = torch.tensor([3.0, -5.0], dtype=torch.float64, requires_grad=True)
    cutoffs = torch.tensor([[300.0, 2000.0], [500.0, 5000.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.707, 2.0], dtype=torch.float64, requires_grad=True)

    def f(gain, cutoffs, q):
        return parametric_eq(x, SR, low_shelf_gain_db=gain, high_shelf_q=q, peak_gain_db=(4.0, -4.0),
                             peak_cutoff_hz=cutoffs, peak_q=(1.0, 1.0))

    assert torch.autograd.gradcheck(f, (gain, cutoffs, q))


def test_gradients_finite_at_range_edges():
    x = torch.randn(2, 1, 4410, generator=torch.Generator().manual_seed(3), requires_grad=True)
    lo, hi = {k: v[0] for k, v in EQ_RANGES.items()}, {k: v[1] for k, v in EQ_RANGES.items()}
    gains = torch.tensor([lo["gain_db"], hi["gain_db"]], requires_grad=True)
    qs = torch.tensor([lo["q"], hi["q"]], requires_grad=True)
    cut = torch.tensor([lo["cutoff_hz"], hi["cutoff_hz"]], requires_grad=True)
    y = parametric_eq(x, SR, low_shelf_gain_db=gains, low_shelf_q=qs, low_shelf_cutoff_hz=cut,
                      high_shelf_gain_db=gains.flip(0), high_shelf_cutoff_hz=cut.flip(0),
                      peak_gain_db=gains[:, None].expand(2, 4), peak_q=qs[:, None].expand(2, 4))
    y.square().mean().backward()
    for t in (x, gains, qs, cut):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_sosfreqz_matches_scipy():
    sos = _sos_bank()
    for kwargs, sk in (({}, {}), ({"n_freqs": 1000, "sample_rate": SR}, {"worN": 1000, "fs": SR}),
                       ({"n_freqs": 64, "whole": True}, {"worN": 64, "whole": True})):
        f, h = sosfreqz(sos, **kwargs)
        fr, hr = ss.sosfreqz(sos.numpy(), **sk)
        np.testing.assert_allclose(f.numpy(), fr, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(h.numpy(), hr, rtol=1e-9, atol=1e-12)
    batch = torch.stack([sos, sos.flip(0)])  # response of a cascade does not depend on the order
    _, h = sosfreqz(batch, 256, SR)
    assert h.shape == (2, 256)
    np.testing.assert_allclose(h[0].numpy(), h[1].numpy(), rtol=1e-10)


def test_frequency_sampling_accuracy_limit():
    """Error of frequency sampling = time aliasing of the impulse response tail that outlasts the padding."""
    x = torch.randn(1, 1, 8192, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def rel_err(sos, n_fft):
        y = sosfilt(sos, x)
        return float((sosfilt_freq(sos, x, n_fft) - y).norm() / y.norm())

    resonant = biquad_sos("lowpass", 0.0, 40.0, 10.0, SR, dtype=torch.float64).view(1, 6)  # rings ~3500 samples
    gentle = biquad_sos("peaking", 6.0, 1000.0, 0.7, SR, dtype=torch.float64).view(1, 6)
    assert rel_err(resonant, 8192) > 0.1  # no padding: the ringing wraps around
    assert rel_err(resonant, 16384) > 1e-2  # padding of ~2 time constants is not enough
    assert rel_err(resonant, 1 << 17) < 1e-3  # padding of ~35 time constants
    assert rel_err(gentle, 16384) < 1e-10  # default-sized padding is plenty for a broad band
    y = sosfilt_freq(gentle, x)  # default n_fft: next power of two >= 2 T
    assert y.shape == x.shape
    assert float((y - sosfilt(gentle, x)).abs().max()) < 1e-9


def test_sosfilt_freq_gradients():
    # well-damped sections: near-DC poles (a 40 Hz highpass) make finite differences of H(e^jw) inaccurate
    x = torch.randn(2, 1, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(7), requires_grad=True)
    sos = _sos_bank()[[1, 3]].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(sosfilt_freq, (sos, x))


def test_parametric_eq_flat_is_identity_and_has_six_bands():
    x = torch.randn(2, 2, 5000, generator=torch.Generator().manual_seed(5))
    assert parametric_eq_sos(SR).shape == (1, 6, 6)
    y = parametric_eq(x, SR)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float((y - x).abs().max()) < 1e-6


def test_parametric_eq_matches_scipy_with_per_item_parameters():
    x = torch.randn(3, 2, 4000, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    ls = torch.tensor([6.0, -3.0, 0.0], dtype=torch.float64)
    pg = torch.tensor([[2.0, -6.0, 4.0], [0.0, 3.0, -9.0], [12.0, 0.0, 0.0]], dtype=torch.float64)
    pf = (150.0, 1200.0, 4000.0)
    y = parametric_eq(x, SR, low_shelf_gain_db=ls, peak_gain_db=pg, peak_cutoff_hz=pf, peak_q=(1.0, 2.0, 0.5),
                      high_shelf_gain_db=-4.0, high_shelf_cutoff_hz=9000.0)
    for b in range(3):
        gains = [ls[b].item(), *pg[b].tolist(), -4.0]
        sos = _eq_sos_np(SR, gains, [80.0, *pf, 9000.0], [0.707, 1.0, 2.0, 0.5, 0.707])
        ref = ss.sosfilt(sos, x[b].numpy(), axis=-1)  # the same filter on both channels
        np.testing.assert_allclose(y[b].numpy(), ref, atol=1e-10)



def test_parametric_eq_float32_within_1e4_of_scipy_float64():
    """A float32 6-band EQ with low, narrow bands stays within 1e-4 of scipy's float64 filter (benchmark target)."""
    rng = np.random.default_rng(7)
    x = torch.from_numpy(0.3 * rng.standard_normal((2, 1, 3 * SR))).float()
    params = dict(low_shelf_gain_db=9.0, low_shelf_cutoff_hz=40.0, peak_gain_db=(12.0, -9.0, 6.0, -12.0),
                  peak_cutoff_hz=(60.0, 300.0, 2500.0, 9000.0), peak_q=(8.0, 4.0, 1.0, 2.0),
                  high_shelf_gain_db=-6.0, high_shelf_cutoff_hz=12000.0)
    y = parametric_eq(x, SR, **params)
    sos = _eq_sos_np(SR, [9.0, 12.0, -9.0, 6.0, -12.0, -6.0], [40.0, 60.0, 300.0, 2500.0, 9000.0, 12000.0],
                     [0.707, 8.0, 4.0, 1.0, 2.0, 0.707])
    ref = ss.sosfilt(sos, x.double().numpy(), axis=-1)
    assert np.abs(y.numpy() - ref).max() < 1e-4

def test_parametric_eq_sos_batch_inference_and_like():
    like = torch.zeros(1, dtype=torch.float64)
    sos = parametric_eq_sos(SR, low_shelf_gain_db=torch.tensor([1.0, 2.0]), like=like)
    assert sos.shape == (2, 6, 6) and sos.dtype == torch.float64
    sos = parametric_eq_sos(SR, peak_gain_db=torch.zeros(5, 2), peak_cutoff_hz=(500.0, 5000.0), peak_q=(1.0, 1.0))
    assert sos.shape == (5, 4, 6)
    sos = parametric_eq_sos(SR, peak_gain_db=torch.tensor([1.0, 2.0, 3.0]), peak_cutoff_hz=(100.0, 1000.0, 9000.0),
                            peak_q=(1.0,) * 3)  # a 1-d tensor is one value per band
    assert sos.shape == (1, 5, 6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sosfilt_on_cuda_returns_to_the_device():
    x = torch.randn(2, 1, 1000, device="cuda", requires_grad=True)
    sos = _sos_bank(torch.float32).cuda().requires_grad_(True)
    y = sosfilt(sos, x)
    assert y.device == x.device
    y.sum().backward()
    assert x.grad.device == x.device and sos.grad.device == sos.device
    np.testing.assert_allclose(y.detach().cpu().numpy(), sosfilt(sos.detach().cpu(), x.detach().cpu()).numpy())


def test_errors_are_clear():
    x = torch.randn(1, 1, 100)
    sos = _sos_bank(torch.float32)
    with pytest.raises(ValueError, match="3 dimensions"):
        sosfilt(sos, torch.randn(100))
    with pytest.raises(ValueError, match="NaN"):
        sosfilt(sos, torch.full((1, 1, 10), float("nan")))
    with pytest.raises(TypeError, match="float32 or float64"):
        sosfilt(sos, torch.zeros(1, 1, 10, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\(\.\.\., n_sections, 6\)"):
        sosfilt(torch.zeros(4, 5), x)
    with pytest.raises(ValueError, match="do not broadcast"):
        sosfilt(sos.expand(3, 1, -1, -1), torch.randn(2, 1, 10))
    with pytest.raises(ValueError, match="a0 == 0"):
        sosfilt(torch.zeros(1, 6), x)
    with pytest.raises(ValueError, match="not a biquad type"):
        biquad_coefficients("lowshelf", 0.0, 100.0, 0.7, SR)
    with pytest.raises(ValueError, match="Nyquist"):
        biquad_coefficients("lowpass", 0.0, SR / 2, 0.7, SR)
    with pytest.raises(ValueError, match="Q must be positive"):
        biquad_coefficients("peaking", 3.0, 1000.0, torch.tensor([1.0, 0.0]), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        biquad_coefficients("peaking", 3.0, 1000.0, 1.0, -1)
    with pytest.raises(ValueError, match=r"low_shelf_gain_db=30.0 dB is outside its range \[-24, 24\]"):
        parametric_eq(x, SR, low_shelf_gain_db=30.0)
    with pytest.raises(ValueError, match=r"peak_cutoff_hz\[1\]=10.0 Hz is outside"):
        parametric_eq(x, SR, peak_cutoff_hz=(200.0, 10.0, 2500.0, 6000.0))
    with pytest.raises(ValueError, match=r"peak_q\[0\]=20.0 is outside"):
        parametric_eq(x, SR, peak_q=(20.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="high_shelf_cutoff_hz=10000.0 Hz is not below the Nyquist frequency 8000"):
        parametric_eq(x, 16000)  # the default high shelf sits above 16 kHz's Nyquist frequency
    with pytest.raises(ValueError, match="must be finite"):
        parametric_eq(x, SR, high_shelf_q=float("nan"))
    with pytest.raises(ValueError, match="one value per band"):
        parametric_eq(x, SR, peak_gain_db=(0.0, 0.0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        parametric_eq(torch.randn(2, 1, 10), SR, low_shelf_gain_db=torch.zeros(3))
    with pytest.raises(ValueError, match="n_fft"):
        sosfilt_freq(sos, x, n_fft=50)


def test_decaying_tails_are_flushed_to_zero_not_subnormal():
    """A tail decaying into silence never reaches subnormal numbers (slow arithmetic), and still matches scipy."""
    x = torch.zeros(1, 1, 4 * SR, dtype=torch.float64)
    x[..., 0] = 1.0
    sos = biquad_sos("lowpass", 0.0, 1000.0, 0.707, SR, dtype=torch.float64).view(1, 6)
    y = sosfilt(sos, x)[0, 0].numpy()
    ref = ss.sosfilt(sos.numpy(), x[0, 0].numpy())
    assert np.abs(ref[-100:]).max() > 0 and np.abs(ref[-100:]).max() < np.finfo(np.float64).tiny  # scipy: subnormal
    tiny = np.finfo(np.float64).tiny
    assert not np.any((y != 0) & (np.abs(y) < tiny))
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-14)


def test_sosfilt_agrees_with_torchaudio_lfilter_when_available():
    """Optional cross-check: torchaudio is not a dependency (no builds for torch >= 2.12)."""
    F = pytest.importorskip("torchaudio.functional", reason="torchaudio is optional; cross-check skipped")
    x = torch.randn(2, 1, 6000, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) * 0.3
    b, a = biquad_coefficients("peaking", 6.0, 1000.0, 2.0, SR, dtype=torch.float64)
    ours = sosfilt(torch.cat([b, a]).view(1, 6), x)
    theirs = F.lfilter(x, a, b, clamp=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-9)


def test_crossover_bands_sum_to_an_allpass_and_meet_at_minus_6_db():
    from automix_lite.dsp.biquad import crossover, linkwitz_riley_sos

    impulse = torch.zeros(1, 1, 1 << 15, dtype=torch.float64)
    impulse[..., 0] = 1.0
    bands = crossover(impulse, SR, (150.0, 2500.0))
    assert len(bands) == 3
    total = np.abs(np.fft.rfft(sum(bands)[0, 0].numpy()))
    assert np.max(np.abs(20 * np.log10(total))) < 1e-6  # flat magnitude: an all-pass
    for kind in ("lowpass", "highpass"):
        _, h = ss.sosfreqz(linkwitz_riley_sos(kind, 1000.0, SR).numpy(), worN=[1000.0], fs=SR)
        assert 20 * np.log10(abs(h[0])) == pytest.approx(-6.02, abs=0.01)
    with pytest.raises(ValueError, match="increasing"):
        crossover(impulse, SR, (2500.0, 150.0))
    with pytest.raises(ValueError, match="increasing"):
        crossover(impulse, SR, (30000.0,))


def test_sosfilt_refuses_an_unstable_section():
    x = torch.randn(1, 1, 256)
    stable = biquad_sos("lowpass", 0.0, 1000.0, 0.707, SR)
    unstable = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, -1.21]])  # poles at +-1.1
    with pytest.raises(ValueError, match=r"sos section 1 is unstable: a pole has magnitude 1\.1 >= 1"):
        sosfilt(torch.cat([stable.view(1, 6), unstable]), x)
    on_circle = torch.tensor([[1.0, 0.0, 0.0, 1.0, -2.0, 1.0]])  # a double pole at z = 1
    with pytest.raises(ValueError, match="unstable"):
        sosfilt(on_circle, x)
    assert torch.isfinite(sosfilt(stable.view(1, 6), x)).all()
