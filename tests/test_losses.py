"""Tests for automix_lite.losses: agreement with auraloss, closed forms, stereo invariances, gradients, errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from automix_lite import losses as L
from automix_lite import signals
from conftest import SR
from conftest import noise as _noise

auraloss = pytest.importorskip("auraloss")

DEFAULTS = dict(fft_sizes=[1024, 2048, 512], hop_sizes=[120, 240, 50], win_lengths=[600, 1200, 240])
# Odd FFT size (no Nyquist bin), window = FFT size, hops that do not divide the window.
OTHER = dict(fft_sizes=[256, 511], hop_sizes=[64, 100], win_lengths=[256, 300])


def _music(seconds=1.0, dtype=torch.float32):
    """(2, 2, T) target and prediction: two stereo mixes of the test song that differ in balance and
    panning; the last 0.2 s are silent in both (so the magnitude clamp at sqrt(eps) is exercised)."""
    t = {k: v[0, 0].to(dtype) for k, v in signals.test_song(SR, seconds).items()}
    drums = t["kick"] + t["snare"] + t["hihat"]

    def mix(g_chords, p_chords, g_lead, p_lead):
        left = drums + t["bass"] + g_chords * (1 - p_chords) * t["chords"] + g_lead * (1 - p_lead) * t["lead"]
        right = drums + t["bass"] + g_chords * p_chords * t["chords"] + g_lead * p_lead * t["lead"]
        return torch.stack([left, right])

    target = torch.stack([mix(1.0, 0.2, 1.0, 0.5), mix(0.7, 0.5, 1.4, 0.9)])
    pred = torch.stack([mix(0.5, 0.8, 1.2, 0.5), mix(1.0, 0.1, 0.8, 0.3)])
    quiet = int(0.2 * SR)
    target[..., -quiet:] = 0
    pred[..., -quiet:] = 0
    return pred, target


def _inputs(kind, dtype):
    if kind == "music":
        return _music(dtype=dtype)
    return 0.3 * _noise(2, 2, SR // 2, seed=1, dtype=dtype), 0.3 * _noise(2, 2, SR // 2, seed=2, dtype=dtype)


def _auraloss_double(module):
    """auraloss keeps its windows in float32; give it float64 windows for a float64 comparison."""
    for m in module.modules():
        if isinstance(m, auraloss.freq.STFTLoss):
            m.window = torch.hann_window(m.win_length, dtype=torch.float64)
    return module


def _value_and_grad(loss_fn, pred, target):
    p = pred.clone().requires_grad_(True)
    value = loss_fn(p, target)
    (grad,) = torch.autograd.grad(value, p)
    return value.detach(), grad


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _check_against(ours, ref, pred, target, kind, scale=1.0):
    """Value within 1e-4 (float32) / 1e-10 (float64) of ``scale`` x the reference, gradient too.

    Float32 music is the exception for the gradient: its near-silent bins (magnitudes just above the
    sqrt(eps) floor) get large log-magnitude gradients that rounding dominates, so auraloss's and our
    float32 gradients are both ~20 % away from the float64 gradient (and ~0.1 % from each other). There
    ours must be as close to the float64 gradient as auraloss's is."""
    tol = 1e-4 if pred.dtype == torch.float32 else 1e-10
    v_ref, g_ref = _value_and_grad(ref, pred, target)
    v, g = _value_and_grad(ours, pred, target)
    assert float(v) == pytest.approx(scale * float(v_ref), rel=tol)
    if kind == "music" and pred.dtype == torch.float32:
        _, g64 = _value_and_grad(ours, pred.double(), target.double())
        assert _rel(g.double(), g64) < 1.01 * _rel(scale * g_ref.double(), g64)
    else:
        assert _rel(g, scale * g_ref) < tol


# ------------------------------------------------------------------------------------ time domain


def test_l1_and_esr_closed_forms_and_auraloss():
    y = _noise(3, 2, 1000)
    pred = _noise(3, 2, 1000, seed=5)
    assert torch.allclose(L.l1(pred, y), F.l1_loss(pred, y))
    assert float(L.esr(0.5 * y, y)) == pytest.approx(0.25, rel=1e-9)
    assert float(L.esr(torch.zeros_like(y), y)) == pytest.approx(1.0, rel=1e-9)
    assert float(L.esr(y, y)) == 0.0
    assert torch.allclose(L.esr(pred, y), auraloss.time.ESRLoss()(pred, y), rtol=1e-12)
    # Per item: an item with a quiet target counts as much as a loud one.
    y2 = torch.cat([y[:1], 0.01 * y[1:2]])
    assert float(L.esr(0.5 * y2, y2)) == pytest.approx(0.25, rel=1e-6)
    # reduction="none": one value per item, the mean over its channels.
    scale = torch.tensor([0.5, 0.0, 1.0]).view(3, 1, 1)
    assert torch.allclose(L.esr(scale * y, y, reduction="none"), torch.tensor([0.25, 1.0, 0.0], dtype=y.dtype))
    assert torch.allclose(L.l1(pred, y, reduction="none"), (pred - y).abs().mean((1, 2)))
    with pytest.raises(ValueError, match="reduction"):
        L.l1(pred, y, reduction="sum")


def test_si_sdr_closed_forms_scale_invariance_and_auraloss():
    y = _noise(2, 2, 4000)
    y = y - y.mean(-1, keepdim=True)
    n = _noise(2, 2, 4000, seed=7)
    n = n - n.mean(-1, keepdim=True)
    n = n - (n * y).sum(-1, keepdim=True) / y.square().sum(-1, keepdim=True) * y  # orthogonal to y
    snr_db = torch.tensor([[3.0, 10.0], [-6.0, 20.0]], dtype=torch.float64)
    n = n * torch.sqrt(y.square().sum(-1) / n.square().sum(-1) / 10 ** (snr_db / 10)).unsqueeze(-1)
    assert float(L.si_sdr(y + n, y)) == pytest.approx(float(snr_db.mean()), abs=1e-6)
    # Scale invariance: rescaling the prediction (even a sign flip) does not change it.
    pred = y + n
    assert float(L.si_sdr(-3.0 * pred, y)) == pytest.approx(float(L.si_sdr(pred, y)), abs=1e-9)
    assert float(L.si_sdr(0.25 * y, y)) > 80  # a scaled copy: only the eps keeps it finite
    assert float(L.si_sdr(pred + 0.5, y)) == pytest.approx(float(L.si_sdr(pred, y)), abs=1e-9)  # zero-mean
    assert float(L.si_sdr(pred + 0.5, y, zero_mean=False)) < float(L.si_sdr(pred, y)) - 1
    other = _noise(2, 2, 4000, seed=9)
    assert torch.allclose(L.si_sdr_loss(other, y), auraloss.time.SISDRLoss()(other, y), rtol=1e-10)
    assert float(L.si_sdr_loss(pred, y)) == -float(L.si_sdr(pred, y))


# ------------------------------------------------------------------------------------ MR-STFT


def test_mrstft_defaults_are_auralosses():
    ours = L.MRSTFTLoss()
    ref = auraloss.freq.MultiResolutionSTFTLoss()
    assert ours.resolutions == tuple(zip(ref.fft_sizes, ref.hop_sizes, ref.win_lengths))
    assert ours.eps == ref.stft_losses[0].eps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["noise", "music"])
def test_mrstft_matches_auraloss(kind, dtype):
    pred, target = _inputs(kind, dtype)
    for res in (DEFAULTS, OTHER, dict(w_sc=0.3, w_log_mag=2.0)):
        ref = auraloss.freq.MultiResolutionSTFTLoss(**res)
        _check_against(L.MRSTFTLoss(**res), _auraloss_double(ref) if dtype == torch.float64 else ref, pred, target, kind)


def test_mrstft_zero_for_identical_and_no_gradient_to_target():
    pred, target = _music()
    value, grad = _value_and_grad(L.MRSTFTLoss(), target, target)
    assert float(value) == 0.0 and torch.equal(grad, torch.zeros_like(grad))  # a minimum, no NaN
    t = target.clone().requires_grad_(True)
    p = pred.clone().requires_grad_(True)
    L.MRSTFTLoss()(p, t).backward()
    assert t.grad is None and p.grad is not None


def test_mrstft_gradcheck():
    loss = L.MRSTFTLoss(fft_sizes=(64, 33), hop_sizes=(16, 10), win_lengths=(48, 33), w_sc=0.7, w_log_mag=1.3)
    pred, target = _noise(2, 2, 200, seed=3), _noise(2, 2, 200, seed=4)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred.requires_grad_(True),))


# ------------------------------------------------------------------------------------ stereo loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["noise", "music"])
def test_stereo_loss_is_twice_auraloss_sum_and_difference(kind, dtype):
    """Ours is the thesis's sum of the two terms; auraloss 0.4 averages them (half the value)."""
    pred, target = _inputs(kind, dtype)
    ref = auraloss.freq.SumAndDifferenceSTFTLoss(**DEFAULTS, w_sum=0.8, w_diff=1.5)
    ref = _auraloss_double(ref) if dtype == torch.float64 else ref
    _check_against(L.StereoLoss(w_sum=0.8, w_diff=1.5), ref, pred, target, kind, scale=2.0)
    # Each term is the MR-STFT loss of the sum and of the difference signals.
    mr = L.MRSTFTLoss(**OTHER)
    expected = mr(pred[:, :1] + pred[:, 1:], target[:, :1] + target[:, 1:]) + mr(
        pred[:, :1] - pred[:, 1:], target[:, :1] - target[:, 1:]
    )
    assert float(L.StereoLoss(**OTHER)(pred, target)) == pytest.approx(float(expected), rel=1e-5)


def test_stereo_loss_left_right_invariance():
    pred, target = _music()
    stereo, plain = L.StereoLoss(), L.MRSTFTLoss()
    assert float(stereo(target, target)) == 0.0
    v, g = _value_and_grad(stereo, pred, target)
    v_swap, g_swap = _value_and_grad(stereo, pred.flip(1), target)
    assert float(v_swap) == pytest.approx(float(v), rel=1e-6)
    assert torch.allclose(g_swap.flip(1), g, rtol=1e-5, atol=1e-6 * float(g.abs().max()))
    # The mirror image of the target costs nothing; the plain MR-STFT loss on left/right sees it.
    assert float(stereo(target.flip(1), target)) == 0.0
    assert float(plain(target.flip(1), target)) > 0.1


def test_stereo_loss_tells_centre_from_hard_panned():
    s = signals.test_song(SR, 1.0)["chords"].expand(1, 2, -1)
    left = s * torch.tensor([1.0, 0.0]).view(1, 2, 1)
    right = left.flip(1)
    centre = s * math.sqrt(0.5)  # constant-power centre: the same power as hard left
    stereo = L.StereoLoss()
    assert float(stereo(right, left)) == 0.0  # mirror image: same sum, difference flips sign
    assert float(stereo(centre, left)) > 1.0  # centre has no difference signal; hard-left has one
    assert float(L.MRSTFTLoss()(right, left)) > 1.0


def test_stereo_loss_gradcheck():
    loss = L.StereoLoss(w_sum=1.0, w_diff=0.5, fft_sizes=(64, 32), hop_sizes=(16, 12), win_lengths=(40, 32))
    pred, target = _noise(2, 2, 160, seed=3), _noise(2, 2, 160, seed=4)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred.requires_grad_(True),))


@pytest.mark.parametrize("kind", ["music", "noise"])
def test_global_loss_from_slices_is_the_stereo_loss_of_the_whole_batch(kind):
    """StereoLoss.global_loss (the loss of data-parallel training, automix_lite.train): each slice's sums, added up
    by ``total``, give the loss of the whole batch, and the gradient of each slice is that slice's part of the whole
    batch's gradient; on the whole batch with ``total`` the identity it is the loss itself."""
    pred, target = _inputs(kind, torch.float64)  # a batch of two: two slices of one item
    loss = L.StereoLoss(w_sum=0.7, w_diff=1.3, **OTHER)
    value, grad = _value_and_grad(loss, pred, target)
    joined, joined_grad = _value_and_grad(lambda p, t: loss.global_loss(p, t, lambda s: s), pred, target)
    assert float(joined) == pytest.approx(float(value), rel=1e-12) and _rel(joined_grad, grad) < 1e-10
    sums = []
    for i in range(2):
        loss.global_loss(pred[i:i + 1], target[i:i + 1], lambda s: sums.append(s.detach()) or s)
    for i in range(2):
        def whole(p, t, i=i):  # this slice's sums plus the other slice's: what the ranks' all-reduce gives
            return loss.global_loss(p, t, lambda s: s + sums[1 - i])

        v, g = _value_and_grad(whole, pred[i:i + 1], target[i:i + 1])
        assert float(v) == pytest.approx(float(value), rel=1e-12) and _rel(g, grad[i:i + 1]) < 1e-10
    half = loss.global_loss(pred[:1], target[:1], lambda s: s)
    assert float(half) != pytest.approx(float(value), rel=1e-3)  # one slice alone is not the batch's loss


def test_global_loss_gradcheck():
    loss = L.StereoLoss(w_sum=1.0, w_diff=0.5, fft_sizes=(64, 32), hop_sizes=(16, 12), win_lengths=(40, 32))
    pred, target = _noise(2, 2, 160, seed=3), _noise(2, 2, 160, seed=4)
    assert torch.autograd.gradcheck(lambda p: loss.global_loss(p, target, lambda s: 2 * s),
                                    (pred.requires_grad_(True),))


# ------------------------------------------------------------------------------------ errors


def test_errors():
    y = _noise(1, 2, 4096)
    with pytest.raises(ValueError, match=r"stereo \(2 channels\); got mono"):
        L.StereoLoss()(y[:, :1], y[:, :1])
    with pytest.raises(ValueError, match=r"got pred \(1, 2, 4096\) and target \(1, 2, 4000\)"):
        L.MRSTFTLoss()(y, y[..., :4000])
    with pytest.raises(ValueError, match=r"same shape"):
        L.esr(y, y[:, :1])
    with pytest.raises(ValueError, match=r"2000 samples, fewer than the largest FFT size \(2048\)"):
        L.StereoLoss()(y[..., :2000], y[..., :2000])
    with pytest.raises(ValueError, match="3 dimensions"):
        L.l1(y[0], y[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        L.si_sdr(y.numpy(), y)
    with pytest.raises(ValueError, match="NaN"):
        L.MRSTFTLoss()(y * float("nan"), y)
    with pytest.raises(ValueError, match="one entry per resolution"):
        L.MRSTFTLoss(fft_sizes=(1024, 512), hop_sizes=(256,), win_lengths=(1024, 512))
    with pytest.raises(ValueError, match="win_length <= fft_size"):
        L.MRSTFTLoss(fft_sizes=(512,), hop_sizes=(128,), win_lengths=(1024,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stereo_loss_refuses_half_precision_and_empty_batches(dtype):
    x = torch.randn(1, 2, 4096)
    with pytest.raises(TypeError, match=f"pred must be float32 or float64 for the STFT loss.*got {dtype}"):
        L.StereoLoss()(x.to(dtype), x.to(dtype))
    with pytest.raises(ValueError, match=r"pred is empty \(shape \(0, 2, 4096\)\)"):
        L.StereoLoss()(x[:0], x[:0])
