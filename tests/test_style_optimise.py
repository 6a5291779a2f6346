"""Training-free style transfer by optimisation (automix_lite.style_optimise, chapter 5.1).

The recovery tests make a reference from *another segment* of the same bundled stem, processed with known
EQ/compressor settings, and judge the output against the input segment processed with those same settings
(the target, which the optimiser never sees).
"""

import math

import numpy as np
import pytest
import torch

from automix_lite import inference, parameters
from automix_lite import style_optimise as so
from automix_lite.audio import loudness_lufs
from automix_lite.data import load_song, reproduce_mix
from automix_lite.losses import MRSTFTLoss

SR = 44100
TRUE = {**so.TRACK_START, "low_shelf_gain_db": 6.0, "low_shelf_cutoff_hz": 150.0, "peak_gain_db[1]": -6.0,
        "peak_cutoff_hz[1]": 1000.0, "high_shelf_gain_db": 6.0, "high_shelf_cutoff_hz": 6000.0,
        "threshold_db": -35.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0, "output_gain_db": -6.0}
"""The hidden style: bass and treble up, a mid cut, 4:1 compression, 6 dB quieter."""


@pytest.fixture(scope="module")
def case():
    """A keys stem of test song song_pop_04: input = 0.5-1.5 s, reference = 3-4 s in the true style, target =
    the input in the true style."""
    s = load_song("song_pop_04")
    stem = s["tracks"][s["roles"].index("keys")]
    x, other = stem[int(0.5 * SR):int(1.5 * SR)], stem[3 * SR:4 * SR]
    ref = so.process_track(other, SR, TRUE)
    target = so.process_track(x, SR, TRUE)
    return x, ref, target


def _mrstft(y, target):
    return float(MRSTFTLoss()(y.view(1, 1, -1).float(), target.view(1, 1, -1).float()))


@pytest.mark.parametrize("method, steps", [("gradient", 80), ("cma", 240)])
def test_optimise_track_recovers_the_style(case, method, steps):
    x, ref, target = case
    y, params, history = so.optimise_track(x, ref, SR, method=method, steps=steps, seed=0)
    assert y.shape == (1, 1, x.shape[-1]) and set(params) == set(so.TRACK_NAMES)
    assert history["evaluations"] == len(history["values"]) <= steps and history["seconds"] > 0
    # the objective falls to under a third of its value at the start (measured: 30.0 -> 3.2 dB gradient,
    # 30.0 -> 3.6 dB CMA-ES)
    assert history["final"] < history["start"] / 3
    assert history["best"][-1] == history["final"] == min(history["values"])
    # and the output approaches the target it never saw: MR-STFT to the target at most a fifth of the
    # unprocessed input's (measured: 7.66 -> 0.16 gradient, 0.25 CMA-ES)
    assert _mrstft(y, target) < _mrstft(x, target) / 5
    # the level-setting parameters head the right way: the output is quieter than the input, as the target is
    # (4:1 compression and a -6 dB output gain; measured: about -18.7 dB)
    assert 20 * math.log10(float(y.square().mean().sqrt() / x.square().mean().sqrt())) < -3
    # the returned parameters render the returned output
    torch.testing.assert_close(so.process_track(x, SR, params), y, atol=1e-5, rtol=0)


def test_gradient_matches_finite_differences():
    """The gradient of the style objective wrt the [0, 1] controls (float64, a tiny case) agrees with central
    differences along random directions."""
    sr = 16000
    g = torch.Generator().manual_seed(3)
    x = 0.1 * torch.randn(1, 1, 9600, generator=g, dtype=torch.float64)
    other = 0.1 * torch.randn(1, 1, 9600, generator=g, dtype=torch.float64)
    ref = so.process_track(other, sr, TRUE)
    with torch.no_grad():
        ref_f = so.style_features(ref, sr)
    c = (0.2 + 0.6 * torch.rand(len(so.TRACK_SPECS), generator=g, dtype=torch.float64)).requires_grad_(True)

    def f(controls):
        y = so._chain(x, sr, so._real(so.TRACK_SPECS, controls.unsqueeze(0)))
        return so.style_distance(so.style_features(y, sr), ref_f)[0]

    (grad,) = torch.autograd.grad(f(c), c)
    assert float(grad.abs().max()) > 1e-3  # not trivially zero
    h = 1e-6
    for _ in range(3):
        v = torch.randn(c.shape, generator=g, dtype=torch.float64)
        v = v / v.norm()
        with torch.no_grad():
            fd = (f(c + h * v) - f(c - h * v)) / (2 * h)
        assert float(fd) == pytest.approx(float(grad @ v), rel=1e-3, abs=1e-6)


def test_cma_is_deterministic_for_a_seed(case):
    x, ref, _ = case
    state = np.random.get_state()
    a = so.optimise_track(x, ref, SR, method="cma", steps=37, seed=5)
    b = so.optimise_track(x, ref, SR, method="cma", steps=37, seed=5)
    c = so.optimise_track(x, ref, SR, method="cma", steps=37, seed=6)
    assert a[2]["values"] == b[2]["values"] and a[1] == b[1]
    assert torch.equal(a[0], b[0])
    assert a[2]["values"] != c[2]["values"]
    # 1 start + 3 generations of 12 fit the budget of 37
    assert a[2]["evaluations"] == 37 and a[2]["popsize"] == 12
    # numpy's global generator is left as it was
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_gradient_route_is_deterministic_and_takes_stereo(case):
    x, ref, _ = case
    stereo, ref2 = torch.stack([x, 0.7 * x]), torch.cat([ref, 0.7 * ref], 1)
    a = so.optimise_track(stereo, ref2, SR, steps=6)
    b = so.optimise_track(stereo, ref2, SR, steps=6)
    assert a[0].shape == (1, 2, x.shape[-1]) and a[2]["values"] == b[2]["values"] and torch.equal(a[0], b[0])
    assert a[2]["final"] < a[2]["start"]
    # the same settings on both channels (linked compressor): the channels keep their ratio
    torch.testing.assert_close(a[0][0, 1], 0.7 * a[0][0, 0], atol=1e-6, rtol=1e-4)


def test_features_objective_with_cma(case):
    """The Part 4 feature summaries as a black-box objective: CMA-ES lowers their mean relative error."""
    x, ref, _ = case
    _, _, history = so.optimise_track(x, ref, SR, method="cma", objective="features", steps=25, seed=0, popsize=8)
    # measured: 0.117 -> 0.045
    assert history["evaluations"] == 25 and history["final"] < 0.7 * history["start"]


def test_mrstft_objective_to_the_target(case):
    """With the target itself as the reference (same content), the MR-STFT objective drives it down."""
    x, _, target = case
    _, _, history = so.optimise_track(x, target, SR, method="gradient", objective="mrstft", steps=30)
    assert history["final"] < history["start"] / 5  # measured: 4.90 -> 0.21


def _spectrum_db(a, sr=SR, n_fft=4096):
    """1/3-octave-smoothed average spectrum (dB) of bins 100 Hz - 10 kHz."""
    a = a.reshape(-1, a.shape[-1]).double().numpy()
    p = so._smooth_octave(so._average_spectrum(a, n_fft))
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    return 10 * np.log10(p[(f >= 100) & (f <= 10000)])


def test_matching_eq_matches_spectrum_and_loudness(case):
    x, ref, _ = case
    y = so.matching_eq(x, ref, SR)
    assert y.shape == x.shape and y.dtype == x.dtype
    before = np.abs(_spectrum_db(x) - _spectrum_db(ref)).mean()
    after = np.abs(_spectrum_db(y) - _spectrum_db(ref)).mean()
    # the mean spectral difference (1/3-octave, 100 Hz - 10 kHz) falls below 1.5 dB (measured: 14.3 -> 1.1 dB)
    assert before > 5 and after < 1.5
    lufs = loudness_lufs(torch.stack([y, ref[0, 0]]).unsqueeze(1).double(), SR)
    assert abs(float(lufs[0] - lufs[1])) < 0.5
    # stereo in, stereo out; each channel equalised alike
    y2 = so.matching_eq(torch.stack([x, 0.5 * x]), ref, SR)
    assert y2.shape == (2, x.shape[-1])
    torch.testing.assert_close(y2[1], 0.5 * y2[0], atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def mix_case():
    """1 s of test song song_jazz_02's stems (4 tracks) and 1 s of the natural engineer's mix of another test
    song, song_rock_03."""
    stems = load_song("song_jazz_02")["tracks"][:, 2 * SR:3 * SR]
    ref = reproduce_mix("song_rock_03", "natural")[:, 2 * SR:3 * SR]
    return stems, ref


@pytest.mark.parametrize("method, steps, factor", [("gradient", 30, 0.6), ("cma", 85, 0.8)])
def test_optimise_mix_reduces_objective_and_round_trips(mix_case, tmp_path, method, steps, factor):
    stems, ref = mix_case
    out, params, history = so.optimise_mix(stems, ref, SR, method=method, steps=steps, seed=0)
    assert out.shape == (2, stems.shape[-1])
    assert isinstance(params, parameters.MixParams) and params.console == "full" and params.n_tracks == 4
    # measured: 15.9 -> 6.7 dB (gradient, 30 steps); 15.9 -> 10.8 dB (CMA-ES, 85 evaluations in 29 dimensions)
    assert history["final"] < factor * history["start"]
    # what is not optimised stays neutral
    assert torch.all(params["ratio"] == 1) and torch.all(params["reverb_send_db"] == -80)
    assert torch.all(params["highpass_cutoff_hz"] == 20)
    # the file round trip renders the same mix
    path = tmp_path / "style.json"
    parameters.write(path, params, [f"t{k}" for k in range(4)], SR, model="style_optimise")
    again = inference.render_params(stems, parameters.read(path).params, SR)
    assert float((again - out).abs().max()) < 1e-4 * float(out.abs().max())
    # and the objective, recomputed on the returned mix, is the reported best (the reverb bus, at -80 dB
    # send, changes it by less than 0.01 dB)
    with torch.no_grad():
        d = so.style_distance(so.style_features(out.unsqueeze(0), SR, stereo=True),
                              so.style_features(ref.unsqueeze(0), SR, stereo=True))
    assert float(d) == pytest.approx(history["final"], abs=0.01)


def _err(fn, *args, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors(case, mix_case):
    x, ref, _ = case
    stems, mref = mix_case
    opt = so.optimise_track
    _err(opt, torch.zeros(SR), ref, SR, match="silent")
    _err(opt, x, torch.zeros(SR), SR, match="reference is silent")
    bad = x.clone()
    bad[10] = float("nan")
    _err(opt, bad, ref, SR, match="NaN")
    _err(opt, x, ref.clone().fill_(float("nan")), SR, match="reference contains NaN")
    _err(opt, x[:1000], ref, SR, match="too short")
    _err(opt, x, ref[..., :1000], SR, match="reference is too short")
    _err(opt, x.view(1, 1, 1, -1), ref, SR, match="shape")
    _err(opt, torch.stack([x, x, x]), ref, SR, match="3 channels")
    _err(opt, x, ref, SR, method="adam", match="method")
    _err(opt, x, ref, SR, objective="loudness", match="objective")
    _err(opt, x, ref, SR, objective="features", match="no gradient")
    _err(opt, x, ref, SR, steps=0, match="positive integer")
    _err(opt, x, ref, SR, method="cma", steps=0, match="positive integer")
    _err(opt, x, ref[..., :-5], SR, objective="mrstft", match="one shape")
    _err(opt, x, ref, 0, match="sample_rate")
    _err(opt, x, ref, SR, lr=0.0, match="lr")
    _err(opt, x, ref, SR, method="cma", sigma0=2.0, match="sigma0")
    _err(opt, x, ref, SR, method="cma", popsize=1, match="popsize")
    _err(so.matching_eq, x, torch.zeros(SR), SR, match="silent")
    _err(so.matching_eq, x, ref, SR, n_taps=100, match="odd")
    _err(so.optimise_mix, stems, mref[:1], SR, match="stereo")
    _err(so.optimise_mix, stems[0], mref, SR, match="tracks, samples")
    _err(so.optimise_mix, torch.zeros_like(stems), mref, SR, match="silent")
    _err(so.optimise_mix, stems, mref, SR, steps=-1, match="positive integer")
    _err(so.optimise_mix, stems, mref[:, :100], SR, match="too short")
    _err(so.process_track, x, SR, {"ratio": 2.0}, match="exactly")
    _err(so.process_track, x, SR, {**TRUE, "ratio": 50.0}, match="ratio must lie")
