"""automix_lite.features: the mix features of chapter 4.1 against closed forms, the compat definitions, bad
input, and the Fréchet distance (``notebooks/15_objective_evaluation.ipynb``)."""

import math

import numpy as np
import pytest

from conftest import SR
from automix_lite import features as F

SINE_HZ = 441.0  # a period of exactly 100 samples at 44.1 kHz: sample 25 of each period is the peak


def sine(seconds, amp=0.5, hz=SINE_HZ):
    t = np.arange(round(seconds * SR)) / SR
    return amp * np.sin(2 * np.pi * hz * t)


def song(seconds=2.0, seed=0):
    """A stereo mix with something everywhere: a sine panned left, gated noise panned right, a centred chord."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    a = 0.3 * np.sin(2 * np.pi * 110 * t)
    b = 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 3 * t) > -0.5)
    c = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659))
    return np.stack([a + 0.3 * b + c, 0.4 * a + b + c])


# ------------------------------------------------------------------------------------------------
# Closed forms
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compat", [False, True])
def test_identical_mixes_have_zero_error_in_every_group(compat):
    x = song(9.0 if compat else 2.0)  # compat needs the toolkit's 40 loudness frames: 8.2 s
    result = F.feature_mape(x, x.copy(), SR, compat=compat)
    assert set(result["groups"]) == set(F.GROUPS)
    assert all(v == 0.0 for v in result["groups"].values()), result["groups"]
    assert all(v == 0.0 for v in result["features"].values())


def test_sine_crest_factor_is_3_01_db():
    """peak / RMS of a sine is sqrt(2): 20 log10 sqrt(2) = 3.0103 dB, in every frame."""
    x = np.stack([sine(1.0), sine(1.0)])
    crest = F.feature_series(x, SR)["crest_factor"]
    np.testing.assert_allclose(crest, 20 * math.log10(math.sqrt(2)), atol=0.01)
    assert abs(F.mix_features(x, SR)["crest_factor"] - 3.0103) < 0.01


def test_compat_crest_factor_is_a_ratio_of_decibels():
    """The toolkit divides the peak level by the RMS level, both in dB, after peak normalisation to -1 dBFS:
    a sine reads -1 / (-1 - 3.0103) = 0.2494, and any signal reads what that definition gives."""
    x = np.stack([sine(1.0, 0.3), sine(1.0, 0.3)])
    np.testing.assert_allclose(F.feature_series(x, SR, compat=True)["crest_factor"], -1 / (-1 - 3.0103), atol=5e-4)
    y = song(1.0)
    got = F.feature_series(y, SR, compat=True)["crest_factor"]
    yn = y * 10 ** (-1 / 20) / np.abs(y).max()
    frames = np.stack([np.stack([ch[k * 1024:k * 1024 + 4096] for k in range(1 + (y.shape[1] - 4096) // 1024)])
                       for ch in yn])  # (2, frames, 4096)
    peak_db = 20 * np.log10(np.abs(frames).max(-1) + 1e-30)
    rms_db = 20 * np.log10(np.sqrt((frames ** 2).mean(-1)) + 1e-30)
    np.testing.assert_allclose(got, (peak_db / rms_db).mean(0), rtol=1e-9)
    # the default is the difference: 3.01 dB for the sine, not 0.25
    assert abs(F.feature_series(x, SR)["crest_factor"].mean() - 3.0103) < 0.01


def test_panning_rms_of_mono_is_0_and_of_a_hard_pan_is_1():
    """Proof of the closed forms. psi = 2|L||R| / (|L|^2 + |R|^2) and SPS = (1 - psi) sign(|R| - |L|) per bin.
    L = R: psi = 2|L|^2 / 2|L|^2 = 1 exactly, so SPS = 0 in every bin and its RMS is 0. R = 0: psi = 0 in every
    bin with energy, |SPS| = 1 there; the (energy-weighted) RMS over those bins is 1. More generally a source
    with gains (gL, gR) has SPS = 1 - 2 gL gR / (gL^2 + gR^2) in every bin."""
    s = song(1.0)[0]
    mono = F.feature_series(np.stack([s, s]), SR)
    left = F.feature_series(np.stack([s, np.zeros_like(s)]), SR)
    for name in F.GROUPS["panning"]:
        assert np.all(mono[name] == 0.0), name
        np.testing.assert_allclose(left[name], 1.0, atol=1e-12, err_msg=name)
    theta = 0.3  # constant-power pan, gains (cos, sin)
    part = F.feature_series(np.stack([math.cos(theta) * s, math.sin(theta) * s]), SR)
    np.testing.assert_allclose(part["panning_rms_total"], 1 - math.sin(2 * theta), atol=1e-9)
    compat_left = F.feature_series(np.stack([s, np.zeros_like(s)]), SR, compat=True)  # unweighted, eps 1e-20
    np.testing.assert_allclose(compat_left["panning_rms_mids"], 1.0, atol=1e-6)
    assert np.all(F.feature_series(np.stack([s, s]), SR, compat=True)["panning_rms_total"] == 0.0)


@pytest.mark.parametrize("compat", [False, True])
def test_swapping_left_and_right_leaves_the_panning_rms_unchanged(compat):
    x = song(1.0)
    a, b = F.feature_series(x, SR, compat=compat), F.feature_series(x[::-1].copy(), SR, compat=compat)
    for name in F.GROUPS["panning"]:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-12, err_msg=name)


def test_a_gain_change_moves_loudness_only():
    """The spectral, panning and dynamics features see each mix peak-normalised to -1 dBFS, so a pure gain
    (-6.02 dB, x 0.5) leaves them as they are; the loudness group moves by 6.02 dB in every block."""
    x = song(2.0)
    r = F.feature_mape(0.5 * x, x, SR)
    for group in ("spectral", "panning", "dynamics"):
        assert r["groups"][group] < 1e-6, (group, r["groups"][group])
    assert r["groups"]["loudness"] > 10
    assert abs(r["output"]["lufs"] - r["reference"]["lufs"] + 20 * math.log10(2)) < 1e-6
    assert abs(r["output"]["peak"] - r["reference"]["peak"] + 20 * math.log10(2)) < 1e-6
    # a percentage error of dB values: |6.02| / |reference LUFS| on average
    lufs = F.feature_series(x, SR)["lufs"]
    expected = 100 * np.mean(6.0206 / np.abs(F.running_mean(lufs, 80)))
    assert abs(r["features"]["lufs"] - expected) < 0.05


def test_summary_values_of_a_sine():
    x = np.stack([sine(2.0, 0.5), sine(2.0, 0.5)])
    v = F.mix_features(x, SR)
    assert abs(v["peak"] - 20 * math.log10(0.5)) < 1e-9  # the sample peak of the whole mix
    assert abs(v["rms_level"] - (-1 - 3.0103)) < 0.01  # after peak normalisation to -1 dBFS
    assert abs(v["centroid"] - SINE_HZ) < 5
    assert v["panning_rms_total"] == 0.0
    # BS.1770 sums the channels' power: a 0 dBFS sine on both channels reads about 0 LUFS at 1 kHz; at -6.02 dBFS
    # and 441 Hz (the K-weighting is about 0.7 dB lower there) about -6.7 LUFS
    assert -7.2 < v["lufs"] < -6.3


def test_running_mean():
    x = np.arange(10.0)
    np.testing.assert_allclose(F.running_mean(x, 4), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5])
    np.testing.assert_allclose(F.running_mean(x, 4, compat=True), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5])
    np.testing.assert_allclose(F.running_mean(x, 40), [4.5])  # shorter than n: its one mean
    assert F.running_mean(x, 40, compat=True).size == 0  # the toolkit: empty (its MAPE then fails)
    y = x.copy()
    y[[2, 3]] = np.nan
    np.testing.assert_allclose(F.running_mean(y, 2), [0.5, 1, np.nan, 4, 4.5, 5.5, 6.5, 7.5, 8.5])
    with pytest.raises(ValueError, match="positive whole number"):
        F.running_mean(x, 0)


def test_silent_frames_are_left_out_by_default():
    x = song(3.0)
    x[:, SR:2 * SR] = 0.0  # one silent second in the middle
    s = F.feature_series(x, SR)
    assert np.isnan(s["centroid"]).any() and np.isfinite(s["centroid"]).any()
    assert np.isnan(s["crest_factor"]).any() and np.isnan(s["lufs"]).any()
    r = F.feature_mape(x, x, SR)
    assert all(v == 0.0 for v in r["groups"].values())
    assert all(math.isfinite(v) for v in F.mix_features(x, SR).values())


def test_accepts_batch_of_one_and_torch():
    import torch

    x = song(1.0)
    a = F.mix_features(x, SR)
    b = F.mix_features(torch.from_numpy(x).float()[None], SR)
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-3 * max(1.0, abs(a[k])), k


# ------------------------------------------------------------------------------------------------
# Bad input: one clear ValueError each
# ------------------------------------------------------------------------------------------------


def test_bad_input_gives_one_clear_error_each():
    x = song(1.0)
    with pytest.raises(ValueError, match="mono"):
        F.feature_mape(x[:1], x, SR)
    with pytest.raises(ValueError, match="mono"):
        F.mix_features(x[0], SR)
    bad = x.copy()
    bad[1, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.feature_mape(bad, x, SR)
    with pytest.raises(ValueError, match="silent"):
        F.feature_mape(x, np.zeros_like(x), SR)
    with pytest.raises(ValueError, match="trim=True"):
        F.feature_mape(x[:, :-500], x, SR)
    with pytest.raises(ValueError, match="48000 Hz"):
        F.feature_mape(x, x, (SR, 48000))
    with pytest.raises(ValueError, match="at least"):
        F.mix_features(x[:, :1000], SR)
    with pytest.raises(ValueError, match="40 frames"):
        F.feature_mape(x, x, SR, compat=True)  # 1 s: the toolkit's running means would be empty
    with pytest.raises(ValueError, match="stereo"):
        F.mix_features(np.stack([x[0], x[1], x[0]]), SR)
    r = F.feature_mape(x[:, :-500], x, SR, trim=True)  # trim: both cut to the shorter at the end
    assert all(v < 1e-9 for v in r["groups"].values())


def test_compat_refuses_a_mono_reference_as_the_toolkit_fails():
    s = song(9.0)
    with pytest.raises(ValueError, match="mono mix"):
        F.feature_mape(s, np.stack([s[0], s[0]]), SR, compat=True)
    # the default guards the 0 with the floor (0.05): finite, large
    r = F.feature_mape(s, np.stack([s[0], s[0]]), SR)
    assert math.isfinite(r["groups"]["panning"]) and r["groups"]["panning"] > 100


# ------------------------------------------------------------------------------------------------
# The two definition sets
# ------------------------------------------------------------------------------------------------


def test_differences_table():
    rows = F.differences()
    assert {"aspect", "features", "default", "compat", "source"} <= set(rows[0])
    aspects = [r["aspect"] for r in rows]
    assert "crest factor" in aspects and "flipped values" in aspects and "silence trimming" in aspects
    table = F.differences_table()
    assert table.startswith("| aspect |") and table.count("\n") == len(rows) + 1
    x = song(9.0)
    y = 0.7 * x[::-1].copy()
    both = F.differences_table(y, x, SR)
    assert "| crest_factor |" in both and "**loudness**" in both


def test_table_lists_every_feature():
    x = song(2.0)
    text = F.feature_table(F.feature_mape(0.5 * x, x, SR))
    for name in F.FEATURES:
        assert name in text
    for group in F.GROUPS:
        assert f"{group} MAPE" in text


# ------------------------------------------------------------------------------------------------
# Fréchet distance and embeddings
# ------------------------------------------------------------------------------------------------


def test_frechet_1d_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 2.0, 4000), rng.normal(-0.5, 0.5, 3000)
    m1, m2, s1, s2 = a.mean(), b.mean(), a.std(ddof=1), b.std(ddof=1)
    exact = (m1 - m2) ** 2 + s1 ** 2 + s2 ** 2 - 2 * s1 * s2
    assert abs(F.frechet_distance(a, b) - exact) < 1e-9 * exact
    assert abs(F.frechet_distance(a, b, diagonal=True) - exact) < 1e-9 * exact
    assert abs(exact - (1.5 ** 2 + (2 - 0.5) ** 2)) < 0.2  # and near the population's 4.5


def test_frechet_diagonal_and_scaled_copies():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(500, 6)) * np.arange(1, 7)
    b = rng.normal(size=(400, 6)) * 2.0 + 1.0
    va, vb = a.var(0, ddof=1), b.var(0, ddof=1)
    exact = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(va + vb - 2 * np.sqrt(va * vb))
    assert abs(F.frechet_distance(a, b, diagonal=True) - exact) < 1e-9 * exact
    # correlated a and b = s a + m: S_b = s^2 S_a, (S_a S_b)^1/2 = s S_a, so FD = |mu_b - mu_a|^2 + (1 - s)^2 tr S_a
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    s, m = 1.7, np.array([0.5, -1, 0, 2, 0.1])
    b = s * a + m
    closed = np.sum((b.mean(0) - a.mean(0)) ** 2) + (1 - s) ** 2 * np.trace(np.cov(a, rowvar=False))
    assert abs(F.frechet_distance(a, b) - closed) < 1e-7 * closed


def test_frechet_identical_symmetric_and_near_singular():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 8)), rng.normal(0.3, 1.2, size=(150, 8))
    assert F.frechet_distance(a, a) < 1e-9
    assert abs(F.frechet_distance(a, b) - F.frechet_distance(b, a)) < 1e-9
    few = rng.normal(size=(5, 20))  # N < D: singular covariances
    with pytest.warns(UserWarning, match="singular"):
        d = F.frechet_distance(few, rng.normal(size=(6, 20)))
    assert math.isfinite(d) and d >= 0
    assert F.frechet_distance(few, few, shrinkage=0.5) < 1e-9
    with pytest.raises(ValueError, match="same dimension"):
        F.frechet_distance(a, b[:, :3])
    with pytest.raises(ValueError, match="N >= 2"):
        F.frechet_distance(a[:1], b)


def test_embed_mixes_logmel():
    mixes = [song(1.0, seed=k) for k in range(3)] + [np.stack([song(1.0)[0]] * 2)]
    e = F.embed_mixes(mixes, SR, n_mels=16)
    assert e.shape == (4, 64) and np.isfinite(e).all()
    np.testing.assert_allclose(e[3, 32:48], -100.0)  # a mono mix has no side: -100 dB in every band
    assert F.frechet_distance(e[:3], e[:3], diagonal=True) < 1e-9
    with pytest.raises(ValueError, match="embedding"):
        F.embed_mixes(mixes, SR, embedding="vggish")


def test_embed_mixes_dmc_encoder():
    e = F.embed_mixes([song(1.0, seed=k) for k in range(2)], SR, embedding="dmc")
    assert e.shape == (2, 258) and np.isfinite(e).all()
