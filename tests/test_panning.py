"""Panning laws and gain against the closed forms of the tutorial slides (theta = p * pi / 2)."""

import math

import pytest
import torch

from automix_lite.dsp.panning import LAWS, db_to_gain, gain, gain_to_db, pan, pan_gains

P = torch.linspace(0, 1, 101, dtype=torch.float64)
THETA = P * math.pi / 2


def slide_gains(law, theta):
    """The slides' formulas, written naively (sqrt of a product for the -4.5 dB law)."""
    lin = (2 / math.pi * (math.pi / 2 - theta), 2 / math.pi * theta)
    cp = (torch.cos(theta), torch.sin(theta))
    if law == "linear":
        return lin
    if law == "constant_power":
        return cp
    return tuple(torch.sqrt((a * b).clamp_min(0)) for a, b in zip(lin, cp))


@pytest.mark.parametrize("law", LAWS)
def test_laws_match_slide_formulas(law):
    left, right = pan_gains(P, law)
    ref_left, ref_right = slide_gains(law, THETA)
    torch.testing.assert_close(left, ref_left, atol=1e-12, rtol=0)
    torch.testing.assert_close(right, ref_right, atol=1e-12, rtol=0)


def test_law_identities():
    lin_l, lin_r = pan_gains(P, "linear")
    cp_l, cp_r = pan_gains(P, "constant_power")
    m_l, m_r = pan_gains(P, "-4.5dB")
    torch.testing.assert_close(lin_l + lin_r, torch.ones_like(P), atol=1e-15, rtol=0)
    torch.testing.assert_close(cp_l**2 + cp_r**2, torch.ones_like(P), atol=1e-15, rtol=0)
    # -4.5 dB law: square root of the product of the linear and constant-power laws, elementwise
    torch.testing.assert_close(m_l, torch.sqrt(lin_l * cp_l), atol=1e-12, rtol=0)
    torch.testing.assert_close(m_r, torch.sqrt(lin_r * cp_r), atol=1e-12, rtol=0)


@pytest.mark.parametrize("law, centre_db", [("linear", -6.0206), ("constant_power", -3.0103), ("-4.5dB", -4.5154)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_centre_attenuation(law, centre_db, dtype):
    left, right = pan_gains(torch.tensor(0.5, dtype=dtype), law)
    assert left.dtype == dtype
    assert float(left) == pytest.approx(float(right), abs=1e-7)
    assert float(gain_to_db(left)) == pytest.approx(centre_db, abs=1e-3)


def test_summed_power_and_amplitude_across_positions():
    theta = THETA
    lin_l, lin_r = pan_gains(P, "linear")
    cp_l, cp_r = pan_gains(P, "constant_power")
    m_l, m_r = pan_gains(P, "-4.5dB")
    # summed power L^2 + R^2
    torch.testing.assert_close(lin_l**2 + lin_r**2, (1 - P) ** 2 + P**2)
    torch.testing.assert_close(m_l**2 + m_r**2, (1 - P) * torch.cos(theta) + P * torch.sin(theta))
    power_db = {law: 10 * torch.log10(sum(g**2 for g in pan_gains(P, law))) for law in LAWS}
    assert float(power_db["linear"].min()) == pytest.approx(-3.0103, abs=1e-3)  # dip at the centre
    assert float(power_db["linear"][50]) == pytest.approx(-3.0103, abs=1e-3)
    assert float(power_db["constant_power"].abs().max()) < 1e-12  # flat
    assert float(power_db["-4.5dB"][50]) == pytest.approx(-1.5051, abs=1e-3)  # half-way between the two
    for law in LAWS:  # every law has unit power at the hard positions and its largest dip at the centre
        assert float(power_db[law][0]) == pytest.approx(0, abs=1e-12)
        assert float(power_db[law][-1]) == pytest.approx(0, abs=1e-12)
        assert float(power_db[law].min()) == pytest.approx(float(power_db[law][50]), abs=1e-9)
    # summed amplitude L + R at the centre: 0, +3.01 and +1.51 dB
    assert float(gain_to_db(lin_l + lin_r)[50]) == pytest.approx(0.0, abs=1e-9)
    assert float(gain_to_db(cp_l + cp_r)[50]) == pytest.approx(3.0103, abs=1e-3)
    assert float(gain_to_db(m_l + m_r)[50]) == pytest.approx(1.5051, abs=1e-3)


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hard_left_and_right_are_exact(law, dtype):
    left, right = pan_gains(torch.tensor([0.0, 1.0], dtype=dtype), law)
    assert left.tolist() == [1.0, 0.0]
    assert right.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("law", LAWS)
def test_mirror_symmetry(law):
    p = torch.arange(65, dtype=torch.float32) / 64  # exact binary fractions: 1 - p is exact too
    left, right = pan_gains(p, law)
    mirrored_left, mirrored_right = pan_gains(1 - p, law)
    assert torch.equal(left, mirrored_right)
    assert torch.equal(right, mirrored_left)


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_on_closed_range(law, dtype):
    p = torch.linspace(0, 1, 21, dtype=dtype, requires_grad=True)
    left, right = pan_gains(p, law)
    for g in (left, right):
        (grad,) = torch.autograd.grad(g.sum(), p)
        assert torch.isfinite(grad).all(), (law, grad)
    x = torch.randn(3, 1, 32, dtype=dtype)
    q = torch.tensor([0.0, 0.5, 1.0], dtype=dtype, requires_grad=True)
    pan(x, q, law).square().sum().backward()
    assert torch.isfinite(q.grad).all()


def test_minus_45db_gradient_matches_finite_differences_near_the_ends():
    h = 1e-7
    for p0 in (0.0, 1e-6, 1e-3, 0.02, 0.5, 0.98, 1 - 1e-3, 1 - 1e-6, 1.0):
        p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        left, right = pan_gains(p, "-4.5dB")
        d_left, d_right = (torch.autograd.grad(g, p)[0].item() for g in (left, right))
        lo, hi = max(p0 - h, 0.0), min(p0 + h, 1.0)  # one-sided at the ends
        fl_lo, fr_lo = (float(g) for g in pan_gains(torch.tensor(lo, dtype=torch.float64), "-4.5dB"))
        fl_hi, fr_hi = (float(g) for g in pan_gains(torch.tensor(hi, dtype=torch.float64), "-4.5dB"))
        assert d_left == pytest.approx((fl_hi - fl_lo) / (hi - lo), rel=1e-5, abs=1e-6), p0
        assert d_right == pytest.approx((fr_hi - fr_lo) / (hi - lo), rel=1e-5, abs=1e-6), p0
    # closed forms at the ends: dR/dp = sqrt(pi/2) at p = 0 and 1/2 at p = 1
    p = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (d_right,) = torch.autograd.grad(pan_gains(p, "-4.5dB")[1].sum(), p)
    torch.testing.assert_close(d_right, torch.tensor([math.sqrt(math.pi / 2), 0.5], dtype=torch.float64))


@pytest.mark.parametrize("law", LAWS)
def test_pan_gradcheck(law):
    x = torch.randn(2, 1, 16, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: pan(a, b, law), (x, p))


@pytest.mark.parametrize("law", LAWS)
def test_pan_batch_values(law):
    x = torch.randn(4, 1, 50)
    p = torch.tensor([0.0, 0.25, 0.5, 1.0])
    y = pan(x, p, law)
    assert y.shape == (4, 2, 50) and y.dtype == torch.float32
    left, right = pan_gains(p, law)
    for i in range(4):
        torch.testing.assert_close(y[i, 0], left[i] * x[i, 0])
        torch.testing.assert_close(y[i, 1], right[i] * x[i, 0])
    torch.testing.assert_close(pan(x, 0.25, law)[1], y[1])  # a float pans every item alike


def test_pan_errors():
    mono = torch.randn(2, 1, 10)
    with pytest.raises(ValueError, match="must be mono .* got stereo .* Downmix"):
        pan(torch.randn(2, 2, 10), 0.5)
    with pytest.raises(ValueError, match=r"pan=1.5 is outside its range \[0, 1\]"):
        pan(mono, 1.5)
    with pytest.raises(ValueError, match=r"pan=-0.1\d* is outside its range"):
        pan(mono, torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        pan(mono, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="3 dimensions"):
        pan(torch.randn(10), 0.5)
    with pytest.raises(ValueError, match="not a panning law"):
        pan(mono, 0.5, law="sine")
    with pytest.raises(ValueError, match="not a panning law"):
        pan_gains(0.5, "constant-power")
    with pytest.raises(ValueError, match=r"pan must lie in \[0, 1\]"):
        pan_gains(torch.tensor([0.2, 1.01]))
    with pytest.raises(ValueError, match=r"pan must lie in \[0, 1\]"):
        pan_gains(float("nan"))


def test_gain_matches_decibel_formula():
    x = torch.randn(3, 2, 20, dtype=torch.float64)
    db = torch.tensor([-12.0, 0.0, 6.0], dtype=torch.float64)
    y = gain(x, db)
    torch.testing.assert_close(y, x * (10 ** (db / 20)).view(3, 1, 1))
    torch.testing.assert_close(gain(x, -20.0), x * 0.1)
    assert db_to_gain(20 * math.log10(2)) == pytest.approx(2.0)
    assert db_to_gain(-6.0) == pytest.approx(10 ** (-6 / 20))
    assert gain_to_db(0.5) == pytest.approx(-6.0206, abs=1e-4)
    assert gain_to_db(0.0) == pytest.approx(-240.0)  # floor at eps = 1e-12, not -inf
    torch.testing.assert_close(gain_to_db(db_to_gain(db)), db)
    g = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d: gain(x[:1], d), (g,))
    with pytest.raises(ValueError, match=r"gain_db=60.0 dB is outside its range \[-96, 48\] dB"):
        gain(x, 60.0)
