"""Channel strip and mixing console: parameter table, normalisation, mixing properties, gradients, errors."""

import math

import numpy as np
import pytest
import scipy.signal as ss
import torch

from automix_lite.dsp import console as C
from automix_lite.dsp.biquad import EQ_RANGES
from automix_lite.dsp.dynamics import COMPRESSOR_RANGES
from automix_lite.dsp.panning import pan_gains
from automix_lite.dsp.reverb import REVERB_RANGES
from conftest import SR
from conftest import noise as _noise

T = 4096


def noise(*shape, seed=0, dtype=torch.float64):
    return _noise(*shape, seed=seed, scale=0.3, dtype=dtype)


def rand_params(batch, n, seed=0, dtype=torch.float64, n_peaks=3):
    return C.random_params(batch, n, torch.Generator().manual_seed(seed), n_peaks=n_peaks, dtype=dtype)


# ------------------------------------------------------------------------------------ parameter table


def effect_range(name):
    if name in COMPRESSOR_RANGES:
        return COMPRESSOR_RANGES[name][:2]
    if name == "reverb_t60_s":
        return REVERB_RANGES["t60_s"][:2]
    if name == "pan":
        return (0.0, 1.0)
    if name.endswith("_q"):
        return EQ_RANGES["q"][:2]
    if name.endswith("cutoff_hz"):
        return EQ_RANGES["cutoff_hz"][:2]
    if name.startswith(("low_shelf_gain", "peak_gain", "high_shelf_gain")):
        return EQ_RANGES["gain_db"][:2]
    return (-96.0, 48.0)  # gains: range of panning.gain


def test_specs_lie_inside_effect_ranges():
    assert len({s.name for s in C.SPECS}) == len(C.SPECS)
    for s in C.SPECS:
        low, high = effect_range(s.name)
        assert low <= s.low < s.high <= high, s.name
        assert s.low <= s.default <= s.high, s.name
        assert s.scale in C.SCALES and s.level in C.LEVELS and s.doc
        assert s.scale == "linear" or s.low > 0, s.name
    assert C.BUS_NAMES == ("reverb_t60_s", "reverb_return_db", "master_gain_db")
    assert C.peak_cutoff_defaults(3) == pytest.approx([250.0, 1000.0, 4000.0])


def test_normalisation_round_trip_bounds_and_log_scale():
    p = rand_params(3, 5, seed=1)
    norm = C.params_to_normalized(p)
    assert set(norm) == set(p)
    for name, v in norm.items():
        assert v.shape == p[name].shape and bool(((v >= 0) & (v <= 1)).all()), name
    back = C.params_from_normalized(norm)
    for name in p:
        torch.testing.assert_close(back[name], p[name], rtol=1e-12, atol=1e-12)
    n = torch.rand(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for s in C.SPECS:
        torch.testing.assert_close(C.params_to_normalized(C.params_from_normalized({s.name: n}))[s.name], n)
        c = torch.tensor([0.0, 0.5, 1.0, -3.0, 7.0], dtype=torch.float64)  # the last two are clamped
        lo_hi = C.params_from_normalized({s.name: c})[s.name]
        mid = math.sqrt(s.low * s.high) if s.scale == "log" else 0.5 * (s.low + s.high)
        torch.testing.assert_close(lo_hi, torch.tensor([s.low, mid, s.high, s.low, s.high], dtype=torch.float64))


def test_normalisation_is_differentiable_and_checks_input():
    n = torch.full((2, 3), 0.25, dtype=torch.float64, requires_grad=True)
    C.params_from_normalized({"ratio": n})["ratio"].sum().backward()
    assert bool((n.grad > 0).all())
    with pytest.raises(ValueError, match=r"ratio=30.*outside its range \[1, 20\]"):
        C.params_to_normalized({"ratio": torch.tensor([2.0, 30.0])})
    with pytest.raises(ValueError, match="unknown parameter.*volume"):
        C.params_to_normalized({"volume": 1.0})
    with pytest.raises(ValueError, match="NaN"):
        C.params_from_normalized({"pan": torch.tensor([math.nan])})


def test_default_and_random_params():
    d = C.default_params(2, 4)
    assert d["gain_db"].shape == (2, 4) and d["peak_q"].shape == (2, 4, 3) and d["master_gain_db"].shape == (2,)
    assert d["gain_db"].dtype == torch.float32
    a, b, c = (C.random_params(2, 4, torch.Generator().manual_seed(s)) for s in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["gain_db"], c["gain_db"])
    track, bus = C.pack_params(a)
    assert track.shape == (2, 4, len(C.param_names(3)[0])) and bus.shape == (2, 3)
    u = C.unpack_params(track, bus, 3)
    assert all(torch.equal(u[k], a[k]) for k in a)


# ------------------------------------------------------------------------------------ mixing properties


def hp20(x):
    sos = ss.butter(2, 20.0, "highpass", fs=SR, output="sos")
    return torch.from_numpy(ss.sosfilt(sos, x.numpy(), axis=-1))


@pytest.mark.parametrize("law", ["-4.5dB", "constant_power"])
def test_default_strip_is_a_panned_sum(law):
    x = noise(2, 3, T)
    p = C.default_params(2, 3, dtype=torch.float64)
    p["pan"] = torch.tensor([[0.0, 0.3, 0.5], [1.0, 0.5, 0.8]], dtype=torch.float64)
    left, right = pan_gains(p["pan"], law)
    ref = torch.stack([(left[..., None] * hp20(x)).sum(1), (right[..., None] * hp20(x)).sum(1)], 1)
    dry = C.mix(x, SR, p, pan_law=law, reverb=False)
    torch.testing.assert_close(dry, ref, atol=1e-4, rtol=0)  # RBJ (Q 0.707) vs scipy Butterworth
    wet = C.mix(x, SR, p, pan_law=law)  # send at -80 dB: the reverb is 80 dB down
    assert float((wet - dry).abs().max()) < 1e-3 * float(dry.abs().max())
    # a 1 kHz tone keeps its level through the 20 Hz high-pass (only its phase moves, by 0.03 rad)
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(T, dtype=torch.float64) / SR).view(1, 1, T)
    y = C.mix(tone, SR, C.default_params(1, 1, dtype=torch.float64), pan_law=law, reverb=False)
    g = pan_gains(0.5, law)[0].item()
    level_db = 20 * torch.log10(y[..., 1000:].square().mean(-1).sqrt() / (g * tone[..., 1000:].square().mean().sqrt()))
    assert float(level_db.abs().max()) < 0.01


def test_permuting_tracks_and_params_leaves_the_mix_unchanged():
    x, p = noise(2, 4, T, seed=3), rand_params(2, 4, seed=3)
    perm = torch.tensor([2, 0, 3, 1])
    q = {k: (v[:, perm] if C.SPEC_BY_NAME[k].per_track else v) for k, v in p.items()}
    torch.testing.assert_close(C.mix(x[:, perm], SR, q), C.mix(x, SR, p), atol=1e-10, rtol=1e-10)


def test_masked_tracks_contribute_nothing():
    x, p = noise(2, 5, T, seed=4), rand_params(2, 5, seed=4)
    mask = torch.tensor([[True, True, True, False, False], [True, False, True, True, False]])
    x = x.clone().requires_grad_(True)
    y = C.mix(x, SR, p, mask)
    y.square().sum().backward()
    assert float(x.grad[~mask].abs().max()) == 0.0 and float(x.grad[mask].abs().max()) > 0
    for b in range(2):  # equals the mix of the real tracks alone
        keep = mask[b]
        sub = {k: (v[b:b + 1, keep] if C.SPEC_BY_NAME[k].per_track else v[b:b + 1]) for k, v in p.items()}
        torch.testing.assert_close(y[b:b + 1].detach(), C.mix(x[b:b + 1, keep].detach(), SR, sub), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_any_track_count_is_the_sum_of_channel_strips(n):
    x, p = noise(2, n, 2048, seed=n), rand_params(2, n, seed=n)
    y = C.mix(x, SR, p, reverb=False)
    strips = [C.channel_strip(x[:, k:k + 1], SR, {s: p[s][:, k] for s in C.STRIP_NAMES})[0] for k in range(n)]
    ref = sum(strips) * (10 ** (p["master_gain_db"] / 20)).view(2, 1, 1)
    assert y.shape == (2, 2, 2048)
    torch.testing.assert_close(y, ref, atol=1e-10, rtol=1e-9)


def test_batched_params_apply_per_item():
    x = noise(1, 3, T, seed=5).expand(2, 3, T)
    p = rand_params(2, 3, seed=5)
    y = C.mix(x, SR, p)
    assert float((y[0] - y[1]).abs().max()) > 1e-3
    for b in range(2):
        torch.testing.assert_close(y[b:b + 1], C.mix(x[b:b + 1], SR, {k: v[b:b + 1] for k, v in p.items()}))


def test_channel_strip_send_is_scaled_post_pan_output():
    x = noise(2, 1, 2048, seed=6)
    p = {k: v[:, 0] for k, v in rand_params(2, 1, seed=6).items() if k in C.STRIP_NAMES}
    out, send = C.channel_strip(x, SR, p)
    assert out.shape == send.shape == (2, 2, 2048)
    torch.testing.assert_close(send, out * (10 ** (p["reverb_send_db"] / 20)).view(2, 1, 1))


def test_strip_eq_sos_is_the_strips_filter():
    x, p = noise(3, 1, 2048, seed=13), rand_params(3, 1, seed=13)
    p.update(ratio=torch.ones(3, 1, dtype=torch.float64), makeup_db=torch.zeros(3, 1, dtype=torch.float64),
             pan=torch.full((3, 1), 0.5, dtype=torch.float64))  # compressor off, centred
    out, _ = C.channel_strip(x, SR, {k: p[k][:, 0] for k in C.STRIP_NAMES}, "constant_power")
    sos = C.strip_eq_sos(SR, p)  # (3, 1, 6, 6)
    assert sos.shape == (3, 1, 6, 6)
    ref = np.stack([ss.sosfilt(sos[b, 0].numpy(), x[b, 0].numpy()) for b in range(3)])[:, None]
    ref = torch.from_numpy(ref) * (10 ** (p["gain_db"] / 20))[..., None] * math.sqrt(0.5)
    torch.testing.assert_close(out, ref.expand(3, 2, 2048), atol=1e-10, rtol=1e-8)


def test_cached_reverb_equals_the_differentiable_one():
    x, p = noise(2, 2, 4096, seed=14), rand_params(2, 2, seed=14)
    q = {**p, "reverb_t60_s": p["reverb_t60_s"].clone().requires_grad_(True)}
    torch.testing.assert_close(C.mix(x, SR, q).detach(), C.mix(x, SR, p), atol=1e-12, rtol=1e-12)


def test_reverb_bus_adds_a_decorrelated_tail():
    t = torch.arange(SR // 2, dtype=torch.float64)
    x = (torch.sin(2 * math.pi * 440 * t / SR) * (t < 2000)).view(1, 1, -1)
    p = C.default_params(1, 1, dtype=torch.float64)
    p["reverb_send_db"][:] = 0.0
    p["reverb_t60_s"][:] = 1.0
    tail = C.mix(x, SR, p)[..., 4000:]
    dry_tail = C.mix(x, SR, p, reverb=False)[..., 4000:]
    assert float(dry_tail.abs().max()) < 1e-3 * float(tail.abs().max())  # only the high-pass ringing
    assert 10 * math.log10(float(tail.square().mean())) > -50
    corr = float((tail[0, 0] * tail[0, 1]).sum() / (tail[0, 0].norm() * tail[0, 1].norm()))
    assert abs(corr) < 0.3  # decorrelated left and right reverb
    p["reverb_t60_s"][:] = 0.3  # a shorter decay leaves less energy late in the tail
    assert float(C.mix(x, SR, p)[..., 10000:].square().sum()) < 0.1 * float(tail[..., 6000:].square().sum())


def test_low_sample_rate_clamps_cutoffs():
    p = C.default_params(1, 2, dtype=torch.float64)
    p["high_shelf_cutoff_hz"][:] = 16000.0
    p["peak_cutoff_hz"][..., -1] = 16000.0
    y = C.mix(noise(1, 2, 2048), 16000, p)
    assert bool(torch.isfinite(y).all())


# ------------------------------------------------------------------------------------ gradients


def active_params(n, dtype=torch.float64):
    """Settings where every parameter changes the output (no flat band, compressor working, reverb on)."""
    p = C.default_params(1, n, dtype=dtype)
    for k, v in dict(highpass_cutoff_hz=200.0, low_shelf_gain_db=4.0, high_shelf_gain_db=-3.0, threshold_db=-30.0,
                     ratio=4.0, attack_ms=2.0, release_ms=40.0, knee_db=6.0, makeup_db=3.0, pan=0.3,
                     reverb_send_db=-6.0).items():
        p[k][:] = v
    p["peak_gain_db"] = torch.tensor([6.0, -4.0, 3.0], dtype=dtype).expand(1, n, 3).clone()
    p["reverb_t60_s"][:] = 0.5
    p["reverb_return_db"][:] = -3.0
    p["master_gain_db"][:] = -2.0
    return p


def test_gradients_finite_and_nonzero_for_every_parameter():
    x = noise(1, 2, 2048, seed=7, dtype=torch.float32).requires_grad_(True)
    p = {k: v.float().requires_grad_(True) for k, v in active_params(2).items()}
    y = C.MixingConsole(SR)(x, p)
    (y * noise(1, 2, 2048, seed=8, dtype=torch.float32)).sum().backward()
    for name, v in [("tracks", x)] + list(p.items()):
        assert v.grad is not None and bool(torch.isfinite(v.grad).all()), name
        assert bool((v.grad != 0).all()), name


def test_gradient_matches_finite_difference_along_a_random_direction():
    x = noise(1, 2, 1024, seed=9)
    norm = C.params_to_normalized(active_params(2))
    gen = torch.Generator().manual_seed(10)
    v = {k: torch.randn(n.shape, generator=gen, dtype=torch.float64) for k, n in norm.items()}
    w = noise(1, 2, 1024, seed=11)

    def loss(eps):
        return (C.mix(x, SR, C.params_from_normalized({k: norm[k] + eps * v[k] for k in norm})) * w).sum()

    eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(eps), eps)
    h = 1e-6
    fd = (loss(h).item() - loss(-h).item()) / (2 * h)
    assert grad.item() == pytest.approx(fd, rel=1e-4)


# ------------------------------------------------------------------------------------ modules and errors


def test_modules_wrap_the_functions():
    x, p = noise(1, 3, 2048, seed=12), rand_params(1, 3, seed=12)
    console = C.MixingConsole(SR)
    torch.testing.assert_close(console(x, p), C.mix(x, SR, p))
    assert console.specs is C.SPECS and console.default_params(2, 3)["peak_q"].shape == (2, 3, 3)
    text = console.describe(p, names=["kick", "bass", "lead"])
    assert text.splitlines()[2].startswith("kick") and "reverb bus: T60" in text
    strip = C.ChannelStrip(SR, n_peaks=2)
    sp = strip.default_params(2)
    assert sp["peak_gain_db"].shape == (2, 2)
    out, _ = strip(noise(2, 1, 512), sp)
    assert out.shape == (2, 2, 512)
    with pytest.raises(ValueError, match="3 bands but this module has n_peaks=2"):
        strip(noise(2, 1, 512), {k: v[:, 0] for k, v in rand_params(2, 1).items() if k in C.STRIP_NAMES})


def test_clear_errors_for_bad_input():
    x, p = noise(1, 3, 512), C.default_params(1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"3 dimensions \(batch, tracks, samples\)"):
        C.mix(x[0], SR, p)
    with pytest.raises(ValueError, match="missing ratio"):
        C.mix(x, SR, {k: v for k, v in p.items() if k != "ratio"})
    with pytest.raises(ValueError, match="unknown wet"):
        C.mix(x, SR, {**p, "wet": 0.5})
    with pytest.raises(ValueError, match=r"gain_db must have shape \(batch=1, tracks=4\)"):
        C.mix(noise(1, 4, 512), SR, p)  # too many tracks for these params
    with pytest.raises(ValueError, match=r"master_gain_db must have shape \(batch=1\)"):
        C.mix(x, SR, {**p, "master_gain_db": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match=r"pan=1.5 is outside its range \[0, 1\]"):
        C.mix(x, SR, {**p, "pan": torch.tensor([[0.5, 1.5, 0.5]])})
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(batch=1, tracks=3\)"):
        C.mix(x, SR, p, mask=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        C.mix(x, SR, p, mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="pan_law='wide' is not a panning law"):
        C.MixingConsole(SR, pan_law="wide")
    with pytest.raises(ValueError, match="mono"):
        C.channel_strip(noise(1, 2, 512), SR, {k: v[:, 0] for k, v in p.items() if k in C.STRIP_NAMES})
