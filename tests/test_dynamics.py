"""Compressor, limiter, expander and gate against closed forms, a slow reference loop and gradcheck."""

import math

import numpy as np
import pytest
import torch

from automix_lite import signals
from automix_lite.dsp.dynamics import (
    COMPRESSOR_RANGES,
    GATE_RATIO,
    LIMITER_RATIO,
    compressor,
    compressor_gain,
    expander,
    gate,
    limiter,
    static_curve,
)

SR = 44100


def db(a):
    return 20 * math.log10(max(float(a), 1e-30))


def rms_db(x):
    return 10 * math.log10(float(x.double().square().mean()) + 1e-30)


def reference(x, sr, thr, ratio, att_ms, rel_ms, knee, makeup, kind="compressor", range_db=math.inf, side=None):
    """Giannoulis et al. (2012) written out sample by sample in plain Python: one batch item,
    x (C, T) and side (Cs, T) as nested lists. Returns (y, smoothed gain reduction)."""
    det = x if side is None else side
    down = kind == "compressor"  # compressor/limiter reduce above the threshold, expander/gate below
    a_att = math.exp(-1.0 / (att_ms / 1000 * sr))
    a_rel = math.exp(-1.0 / (rel_ms / 1000 * sr))
    y = [[0.0] * len(x[0]) for _ in x]
    grs, y_l = [], 0.0
    for n in range(len(x[0])):
        x_g = 10 * math.log10(sum(ch[n] ** 2 for ch in det) / len(det) + 1e-10)
        if down:  # output level y_G from the static curve, then x_L = x_G - y_G
            if 2 * (x_g - thr) < -knee:
                y_g = x_g
            elif knee > 0 and 2 * abs(x_g - thr) <= knee:
                y_g = x_g + (1 / ratio - 1) * (x_g - thr + knee / 2) ** 2 / (2 * knee)
            else:
                y_g = thr + (x_g - thr) / ratio
        else:
            if 2 * (x_g - thr) > knee:
                y_g = x_g
            elif knee > 0 and 2 * abs(x_g - thr) <= knee:
                y_g = x_g + (1 - ratio) * (x_g - thr - knee / 2) ** 2 / (2 * knee)
            else:
                y_g = thr + (x_g - thr) * ratio
        x_l = min(x_g - y_g, range_db)
        rising = x_l > y_l  # gain reduction growing: attack for a compressor, release for an expander
        a = (a_att if rising else a_rel) if down else (a_rel if rising else a_att)
        y_l = a * y_l + (1 - a) * x_l
        grs.append(y_l)
        for c in range(len(x)):
            y[c][n] = x[c][n] * 10 ** ((makeup - y_l) / 20)
    return np.array(y), np.array(grs)


def bursts(batch=1, channels=1, n=2000, seed=0, dtype=torch.float64):
    """Noise with a level that jumps between -50 and -5 dB every ~150 samples (both branches, all knee pieces)."""
    g = torch.Generator().manual_seed(seed)
    env = 10 ** (torch.empty(batch, 1, n // 150 + 1).uniform_(-50, -5, generator=g) / 20)
    env = env.repeat_interleave(150, dim=-1)[..., :n]
    return (torch.randn(batch, channels, n, generator=g) * env).to(dtype)


def detected(level_db):
    """The detector's reading x_G of a constant signal at ``level_db`` (its power floor included)."""
    return 10 * math.log10(10 ** (level_db / 10) + 1e-10)


def dc_steps(levels_db, seconds_each, sr):
    """A constant (DC) signal stepping through the given levels: x_G is exactly the level."""
    parts = [torch.full((int(round(s * sr)),), 10 ** (lv / 20), dtype=torch.float64)
             for lv, s in zip(levels_db, seconds_each)]
    return torch.cat(parts).view(1, 1, -1)


# ---------------------------------------------------------------- static curves


def test_static_curve_hard_knee_closed_form():
    lv = torch.linspace(-80, 0, 161, dtype=torch.float64)
    out = static_curve(lv, -30.0, 4.0)
    torch.testing.assert_close(out, torch.where(lv <= -30, lv, -30 + (lv + 30) / 4), rtol=0, atol=1e-12)
    out = static_curve(lv, -30.0, 3.0, kind="expander", range_db=40.0)
    ref = torch.where(lv >= -30, lv, torch.maximum(-30 + (lv + 30) * 3, lv - 40))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["compressor", "expander"])
def test_static_curve_soft_knee_closed_form_and_continuity(kind):
    t, r, w = -24.0, 5.0, 12.0
    lv = torch.linspace(-60, 0, 601, dtype=torch.float64)
    out = static_curve(lv, t, r, w, kind=kind)
    inside = (lv - t).abs() <= w / 2
    if kind == "compressor":
        knee = lv + (1 / r - 1) * (lv - t + w / 2) ** 2 / (2 * w)
        torch.testing.assert_close(out[lv < t - w / 2], lv[lv < t - w / 2])
        hi = lv > t + w / 2
        torch.testing.assert_close(out[hi], t + (lv[hi] - t) / r)
    else:
        knee = lv + (1 - r) * (lv - t - w / 2) ** 2 / (2 * w)
        torch.testing.assert_close(out[lv > t + w / 2], lv[lv > t + w / 2])
        lo = lv < t - w / 2
        torch.testing.assert_close(out[lo], t + (lv[lo] - t) * r)
    torch.testing.assert_close(out[inside], knee[inside])
    for edge in (t - w / 2, t + w / 2):  # value and slope continuous at both knee edges
        e = torch.tensor([edge - 1e-7, edge + 1e-7], dtype=torch.float64, requires_grad=True)
        y = static_curve(e, t, r, w, kind=kind)
        (slope,) = torch.autograd.grad(y.sum(), e)
        y = y.detach()
        assert abs(float(y[1] - y[0])) < 1e-5 and abs(float(slope[1] - slope[0])) < 1e-6


def test_static_curve_gradients_finite_at_knee_zero():
    lv = torch.tensor([-40.0, -20.0, -10.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    r = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    static_curve(lv, -20.0, r, w).sum().backward()
    assert all(bool(torch.isfinite(g).all()) for g in (lv.grad, w.grad, r.grad))


# ---------------------------------------------------------------- kernel against the reference loop


@pytest.mark.parametrize("knee", [0.0, 8.0])
def test_compressor_matches_reference_loop(knee):
    x = bursts(batch=2, channels=2, n=1500)
    params = dict(thr=-25.0, ratio=4.0, att_ms=0.5, rel_ms=5.0, knee=knee, makeup=3.0)
    y = compressor(x, SR, -25.0, 4.0, 0.5, 5.0, knee, 3.0)
    gr = compressor_gain(x, SR, -25.0, 4.0, 0.5, 5.0, knee, 3.0)
    for b in range(2):
        ref_y, ref_gr = reference(x[b].tolist(), SR, **params)
        np.testing.assert_allclose(y[b].numpy(), ref_y, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gr[b, 0].numpy(), ref_gr, rtol=1e-12, atol=1e-12)


def test_expander_with_range_and_sidechain_matches_reference_loop():
    x, side = bursts(channels=2, n=1500, seed=1), bursts(channels=1, n=1500, seed=2)
    y = expander(x, SR, -30.0, 3.0, 0.3, 4.0, knee_db=6.0, makeup_db=-2.0, range_db=25.0, sidechain=side)
    ref_y, _ = reference(x[0].tolist(), SR, -30.0, 3.0, 0.3, 4.0, 6.0, -2.0, kind="expander", range_db=25.0,
                         side=side[0].tolist())
    np.testing.assert_allclose(y[0].numpy(), ref_y, rtol=1e-12, atol=1e-15)
    y = gate(x, SR, -30.0, 0.3, 4.0, range_db=50.0)
    ref_y, _ = reference(x[0].tolist(), SR, -30.0, GATE_RATIO, 0.3, 4.0, 0.0, 0.0, kind="expander", range_db=50.0)
    np.testing.assert_allclose(y[0].numpy(), ref_y, rtol=1e-12, atol=1e-15)
    y = limiter(x, SR, -20.0, 0.2, 3.0)
    ref_y, _ = reference(x[0].tolist(), SR, -20.0, LIMITER_RATIO, 0.2, 3.0, 0.0, 0.0)
    np.testing.assert_allclose(y[0].numpy(), ref_y, rtol=1e-12, atol=1e-15)


def test_float32_agrees_with_float64():
    x = bursts(batch=3, channels=2, n=20000, seed=3)
    args = (SR, -30.0, 6.0, 2.0, 80.0, 6.0, 4.0)
    y64 = compressor(x, *args)
    y32 = compressor(x.float(), *args)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=2e-5, atol=1e-7)


# ---------------------------------------------------------------- static and dynamic behaviour


def test_steady_state_gain_equals_static_curve():
    thr, ratio, knee = -20.0, 4.0, 6.0
    levels = [-40.0, -22.0, -17.0, -6.0]  # below, in, in, above the knee
    x = dc_steps(levels, [0.25] * 4, SR)  # each level held for 50 release time constants
    gr = compressor_gain(x, SR, thr, ratio, 1.0, 5.0, knee)[0, 0]
    ends = [int(0.25 * SR) * (i + 1) - 1 for i in range(4)]
    x_g = torch.tensor([detected(lv) for lv in levels], dtype=torch.float64)
    expected = x_g - static_curve(x_g, thr, ratio, knee)
    torch.testing.assert_close(gr[ends], expected, rtol=0, atol=1e-9)
    # a constant-level sine: with a fast attack and slow release the gain settles on the static curve
    # at the sine's peak level
    t = torch.arange(int(0.5 * SR), dtype=torch.float64) / SR
    sine = (10 ** (-6 / 20) * torch.sin(2 * math.pi * 1000 * t)).view(1, 1, -1)
    gr = compressor_gain(sine, SR, thr, ratio, 0.05, 1000.0)[0, 0, -int(0.02 * SR):]
    assert abs(float(gr.mean()) - (-6 - float(static_curve(-6.0, thr, ratio)))) < 0.1


@pytest.mark.parametrize("kind", ["compressor", "expander"])
def test_attack_and_release_time_constants(kind):
    sr, att, rel = 8000, 10.0, 60.0  # tau * sr = 80 and 480 samples
    if kind == "compressor":  # step up: gain reduction rises with the attack; step down: falls with the release
        x = dc_steps([-40.0, -10.0, -40.0], [0.5, 2.0, 0.5], sr)
        gr = compressor_gain(x, sr, -30.0, 3.0, att, rel)[0, 0]
        change = (detected(-10.0) + 30.0) * (1 - 1 / 3)
    else:  # expander: step down closes (release), step up opens again (attack)
        x = dc_steps([-10.0, -40.0, -10.0], [0.5, 2.0, 0.5], sr)
        gr = compressor_gain(x, sr, -30.0, 3.0, att, rel, kind="expander")[0, 0]
        change = (-30.0 - detected(-40.0)) * (3 - 1)
    n1, n2 = int(0.5 * sr), int(2.5 * sr)  # 2 s = 33 release time constants to settle
    first, second = (att, rel) if kind == "compressor" else (rel, att)
    k1, k2 = int(first / 1000 * sr), int(second / 1000 * sr)
    # after tau, 1 - 1/e of the change is done (sample n1 + k - 1 is the k-th update)
    assert float(gr[n1 + k1 - 1]) == pytest.approx(change * (1 - math.exp(-1)), rel=1e-9)
    assert float(gr[n2 - 1]) == pytest.approx(change, rel=1e-9)
    assert float(gr[n2 + k2 - 1]) == pytest.approx(change * math.exp(-1), rel=1e-9)


def test_release_time_changes_output_and_has_a_gradient():
    drums = signals.drum_tracks(SR, 1.0)
    x = (drums["kick"] + drums["snare"]).double()
    y_fast = compressor(x, SR, -30.0, 8.0, 1.0, 20.0)
    y_slow = compressor(x, SR, -30.0, 8.0, 1.0, 400.0)
    assert rms_db(y_slow) < rms_db(y_fast) - 1.0  # slower release: more gain reduction between hits
    rel = torch.tensor([100.0], dtype=torch.float64, requires_grad=True)
    compressor(x, SR, -30.0, 8.0, 1.0, rel).square().sum().backward()
    assert float(rel.grad) < 0  # longer release -> less output energy


def test_ratio_one_makeup_zero_is_identity():
    x = bursts(batch=2, channels=2, n=3000)
    assert torch.equal(compressor(x, SR, -40.0, 1.0, 1.0, 50.0, knee_db=10.0), x)
    assert torch.equal(expander(x, SR, -40.0, 1.0, 1.0, 50.0), x)
    torch.testing.assert_close(compressor(x, SR, -40.0, 1.0, 1.0, 50.0, makeup_db=6.0), x * 10 ** (6 / 20))


def test_expander_and_gate_reduce_low_level_noise():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(SR, dtype=torch.float64) / SR
    tone = 0.5 * torch.sin(2 * math.pi * 220 * t) * ((t % 0.5) < 0.25)  # 250 ms on, 250 ms off
    noise = 10 ** (-55 / 20) * torch.randn(SR, generator=g, dtype=torch.float64)
    x = (tone + noise).view(1, 1, -1)
    gap = slice(int(0.35 * SR), int(0.45 * SR))  # well inside an off period
    body = slice(int(0.1 * SR), int(0.2 * SR))  # well inside an on period
    y_exp = expander(x, SR, -40.0, 3.0, 1.0, 50.0)
    y_gate = gate(x, SR, -40.0, range_db=60.0)
    # noise peaks near the threshold open them briefly, so the gap loses less than the full range
    assert rms_db(y_exp[..., gap]) < rms_db(x[..., gap]) - 15
    assert rms_db(y_gate[..., gap]) < rms_db(x[..., gap]) - 35
    for y in (y_exp, y_gate):
        assert abs(rms_db(y[..., body]) - rms_db(x[..., body])) < 0.1


def test_limiter_keeps_peaks_near_threshold():
    drums = signals.drum_tracks(SR, 2.0)
    x = (drums["kick"] + drums["snare"] + drums["hihat"]).double()
    assert db(x.abs().max()) > -3
    y = limiter(x, SR, -12.0)
    assert db(y.abs().max()) < -11.0
    assert db(y.abs().flatten().quantile(0.999)) < -11.9
    t = torch.arange(SR // 2, dtype=torch.float64) / SR
    y = limiter((0.7 * torch.sin(2 * math.pi * 1000 * t)).view(1, 1, -1), SR, -12.0)
    assert abs(db(y[..., int(0.01 * SR):].abs().max()) + 12.0) < 0.1


def test_sidechain_kick_ducks_pad():
    sr = 22050
    pad = signals.pad(sr, 2.0).double()
    kick = signals.drum_tracks(sr, 2.0)["kick"].double()
    y = compressor(pad, sr, -30.0, 10.0, 1.0, 80.0, sidechain=kick)
    change = [rms_db(y[..., n:n + 512]) - rms_db(pad[..., n:n + 512]) for n in range(0, pad.shape[-1] - 512, 512)]
    kick_loud = [rms_db(kick[..., n:n + 512]) > -20 for n in range(0, pad.shape[-1] - 512, 512)]
    during = [c for c, k in zip(change, kick_loud) if k]
    assert during and np.mean(during) < -10  # ducked while the kick sounds
    assert max(change) > -1.0  # and recovered between kicks
    y_self = compressor(pad, sr, -30.0, 10.0, 1.0, 80.0)
    assert not torch.allclose(y, y_self)


# ---------------------------------------------------------------- gradients


def per_item(*values):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def test_gradcheck_compressor_every_parameter():
    x = (bursts(batch=2, channels=2, n=96, seed=4) * 3).requires_grad_()
    p = per_item([-25.0, -18.0], [4.0, 2.5], [0.2, 0.5], [2.0, 3.0], [6.0, 3.0], [2.0, -1.0])
    assert torch.autograd.gradcheck(lambda x, *p: compressor(x, SR, *p), (x, *p))


def test_gradcheck_expander_sidechain_and_range():
    x = bursts(batch=2, channels=1, n=96, seed=5).requires_grad_()
    side = bursts(batch=2, channels=2, n=96, seed=6).requires_grad_()
    p = per_item([-30.0, -20.0], [3.0, 2.0], [0.2, 0.4], [2.0, 3.0], [6.0, 10.0], [1.0, 0.0], [20.0, 15.0])

    def f(x, side, thr, ratio, att, rel, knee, makeup, rng):
        return expander(x, SR, thr, ratio, att, rel, knee, makeup, range_db=rng, sidechain=side)

    assert torch.autograd.gradcheck(f, (x, side, *p))


def test_gradcheck_limiter_and_gate():
    x = bursts(batch=2, channels=1, n=96, seed=7).requires_grad_()
    thr, att, rel, rng = per_item([-20.0, -15.0], [0.1, 0.3], [2.0, 3.0], [30.0, 40.0])
    assert torch.autograd.gradcheck(lambda x, t, a, r: limiter(x, SR, t, a, r), (x, thr, att, rel))
    assert torch.autograd.gradcheck(lambda x, t, a, r, g: gate(x, SR, t, a, r, g), (x, thr, att, rel, rng))


def test_gradients_finite_at_edges():
    """Hard knee, ratio 1 and digital silence give finite gradients (no 0/0 or log 0)."""
    for x in (torch.zeros(1, 2, 500, dtype=torch.float64), bursts(channels=2, n=500)):
        x = x.clone().requires_grad_()
        p = per_item([-30.0], [1.0], [1.0], [10.0], [0.0], [0.0])
        compressor(x, SR, *p).sum().backward()
        grads = [x.grad] + [q.grad for q in p]
        assert all(bool(torch.isfinite(g).all()) for g in grads)
    x = bursts(channels=1, n=500).requires_grad_()
    p = per_item([-30.0], [4.0], [1.0], [10.0], [0.0], [0.0])
    compressor(x, SR, *p).sum().backward()
    assert float(p[2].grad) != 0 and float(p[3].grad) != 0  # attack and release both matter


# ---------------------------------------------------------------- errors and devices


def test_bad_inputs_raise_clear_errors():
    x = bursts(n=200)
    with pytest.raises(ValueError, match="3 dimensions"):
        compressor(x[0], SR, -20.0, 4.0, 1.0, 50.0)
    bad = x.clone()
    bad[0, 0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compressor(bad, SR, -20.0, 4.0, 1.0, 50.0)
    with pytest.raises(ValueError, match="NaN"):
        compressor(x, SR, -20.0, 4.0, 1.0, 50.0, sidechain=bad)
    with pytest.raises(ValueError, match="threshold_db"):
        compressor(x, SR, 6.0, 4.0, 1.0, 50.0)
    with pytest.raises(ValueError, match="ratio"):
        compressor(x, SR, -20.0, 0.5, 1.0, 50.0)
    _, high, _ = COMPRESSOR_RANGES["release_ms"]
    with pytest.raises(ValueError, match="release_ms"):
        compressor(x, SR, -20.0, 4.0, 1.0, high * 2)
    with pytest.raises(ValueError, match="sidechain"):
        compressor(x, SR, -20.0, 4.0, 1.0, 50.0, sidechain=bursts(n=150))
    with pytest.raises(ValueError, match="kind"):
        compressor_gain(x, SR, -20.0, kind="de-esser")
    with pytest.raises(TypeError, match="float32 or float64"):
        compressor(x.half(), SR, -20.0, 4.0, 1.0, 50.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = bursts(batch=2, channels=2, n=4000)
    thr = torch.tensor([-25.0, -20.0], dtype=torch.float64)
    y_cpu = compressor(x, SR, thr, 4.0, 1.0, 30.0)
    xc = x.cuda().requires_grad_()
    y = compressor(xc, SR, thr.cuda(), 4.0, 1.0, 30.0)
    assert y.device == xc.device
    torch.testing.assert_close(y.cpu(), y_cpu)
    y.sum().backward()
    assert xc.grad.device == xc.device
