"""Baseline mixers: mono sum, random gain/pan, knowledge-based rules."""

import math

import numpy as np
import pytest
import torch

from automix_lite import baselines as B
from automix_lite import data as D
from automix_lite.audio import loudness_lufs
from automix_lite.baselines import CENTRE_ROLES, LEAD_BOOST_DB, TRACK_LUFS, knowledge_mix, mono_mix, random_mix, tempo_to_t60
from automix_lite.dsp import default_params, mix

SONG = D.songs("songs", "test")[0]
STEMS = D.load_song(SONG["id"])
X = STEMS["tracks"][:, : 6 * 44100].unsqueeze(0)
ROLES = STEMS["roles"]


def test_mono_mix_is_the_plain_sum_on_both_channels():
    x = torch.randn(2, 3, 1000)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    y, p = mono_mix(x, mask)
    assert torch.equal(y[:, 0], y[:, 1])
    assert torch.allclose(y[0, 0], x[0, :2].sum(0)) and torch.allclose(y[1, 0], x[1].sum(0))
    assert torch.allclose(p["gain_db"], torch.full((2, 3), 4.5), atol=0.02) and bool((p["pan"] == 0.5).all())
    # the console with these parameters gives the same level (it only adds its 20 Hz high-pass)
    z = mix(X, 44100, mono_mix(X)[1], reverb=False)
    level = lambda a: float(loudness_lufs(a, 44100)[0])  # noqa: E731
    assert abs(level(z) - level(mono_mix(X)[0])) < 0.3


def test_random_mix_is_seeded_and_within_the_thesis_ranges():
    y, p = random_mix(X, 44100, seed=3)
    y2, p2 = random_mix(X, 44100, seed=3)
    _, p3 = random_mix(X, 44100, seed=4)
    assert torch.equal(y, y2) and not torch.equal(p["gain_db"], p3["gain_db"])
    assert float(p["gain_db"].abs().max()) <= 12 and 0 <= float(p["pan"].min()) and float(p["pan"].max()) <= 1
    assert torch.allclose(y, mix(X, 44100, p, reverb=False))
    _, big = random_mix(torch.zeros(1, 4000, 10) + 0.1, 44100, seed=0)
    g = big["gain_db"].flatten()
    assert abs(float(g.mean())) < 0.6 and float(g.std()) == pytest.approx(24 / math.sqrt(12), rel=0.05)  # uniform


def test_knowledge_mix_follows_its_rules_on_a_bundled_song():
    y, p = knowledge_mix(X, 44100, ROLES, tempo=SONG["tempo"])
    assert torch.allclose(y, mix(X, 44100, p), atol=1e-6)
    after = loudness_lufs(X[0].unsqueeze(1) * 10 ** (p["gain_db"][0].view(-1, 1, 1) / 20), 44100)
    lead = ROLES.index("lead")
    others = [k for k in range(len(ROLES)) if k != lead]
    assert torch.allclose(after[others], torch.full((len(others),), TRACK_LUFS), atol=0.05)
    assert float(after[lead]) == pytest.approx(TRACK_LUFS + LEAD_BOOST_DB, abs=0.05)
    for k, r in enumerate(ROLES):
        if r in CENTRE_ROLES:
            assert float(p["pan"][0, k]) == 0.5
        if r == "bass":
            assert float(p["highpass_cutoff_hz"][0, k]) == 20.0 and float(p["reverb_send_db"][0, k]) == -80.0
        else:
            assert float(p["highpass_cutoff_hz"][0, k]) >= 40.0
    side = [float(p["pan"][0, k]) - 0.5 for k, r in enumerate(ROLES) if r not in CENTRE_ROLES]
    assert min(side) < -0.15 and max(side) > 0.15  # accompaniment spread to both sides
    assert float(p["reverb_t60_s"][0]) == pytest.approx(tempo_to_t60(SONG["tempo"]), abs=1e-6)
    assert 20 * math.log10(float(y.abs().max())) <= -0.99
    assert float(p["peak_gain_db"][0, lead, 0]) == 0.0 and float(p["peak_gain_db"][0].min()) <= 0.0


def test_knowledge_mix_is_equivariant_to_track_order_and_works_without_roles():
    perm = torch.randperm(X.shape[1], generator=torch.Generator().manual_seed(0))
    _, p = knowledge_mix(X, 44100, ROLES, tempo=100.0)
    _, q = knowledge_mix(X[:, perm], 44100, [ROLES[i] for i in perm], tempo=100.0)
    for name in ("gain_db", "highpass_cutoff_hz", "ratio", "reverb_send_db"):
        assert torch.allclose(q[name][0], p[name][0, perm], atol=1e-4), name
    y, p = knowledge_mix(X, 44100)  # no roles, tempo estimated
    bass = ROLES.index("bass")
    assert float(p["pan"][0, bass]) == 0.5 and float(p["highpass_cutoff_hz"][0, bass]) == 20.0
    assert 0.6 <= float(p["reverb_t60_s"][0]) <= 2.4 and y.shape == (1, 2, X.shape[-1])


def test_knowledge_mix_ignores_masked_and_silent_tracks_and_checks_roles():
    x = torch.cat([X, torch.zeros(1, 1, X.shape[-1])], 1)
    mask = torch.ones(1, x.shape[1], dtype=torch.bool)
    mask[0, 0] = False
    y, p = knowledge_mix(x, 44100, ROLES + ["pad"], tempo=100.0, mask=mask)
    assert float(p["gain_db"][0, -1]) == 0.0 and float(p["gain_db"][0, 0]) == 0.0  # silent and masked: untouched
    assert torch.isfinite(y).all()
    with pytest.raises(ValueError, match="one role per track"):
        knowledge_mix(X, 44100, ROLES[:-1])


# ------------------------------------------------------------------------------------------------
# The knowledge mixer rule by rule (chapter 2.2): each rule alone, on signals whose answer is known
# ------------------------------------------------------------------------------------------------

SR = 44100
_T = torch.arange(3 * SR, dtype=torch.float64) / SR


def sine(freq, amp=0.1):
    return amp * torch.sin(2 * math.pi * freq * _T)


def white(amp=0.1, seed=0, seconds=3):
    return amp * torch.randn(seconds * SR, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def neutral(n):
    """One song's neutral console parameters, the batch axis removed (what the rules fill in place)."""
    return {k: v[0] for k, v in default_params(1, n).items()}


def run_rules(x, roles, *rules, tempo=120.0, **kwargs):
    """The parameters after running ``rules`` in turn on tracks ``x`` (N, T); kwargs go to the first rule."""
    song = B.analyze_song(x, SR, roles, tempo)
    p = neutral(x.shape[0])
    for i, rule in enumerate(rules):
        rule(song, p, **(kwargs if i == 0 else {}))
    return p


def test_rules_are_public_named_in_order_and_make_knowledge_mix():
    names = [r.__name__ for r in B.RULES]
    assert names == ["rule_loudness_balance", "rule_panning", "rule_highpass", "rule_masking_eq", "rule_compression",
                     "rule_reverb", "rule_master"]
    assert set(names) | {"RULES", "SongAnalysis", "analyze_song", "apply_rules"} <= set(B.__all__)
    assert all("07_baselines.ipynb" in r.__doc__ and "chapter 2.2" in r.__doc__ for r in B.RULES)
    # the rules, run one by one on the shared analysis, give exactly knowledge_mix's parameters
    y, want = knowledge_mix(X, SR, ROLES, tempo=SONG["tempo"])
    song = B.analyze_song(X[0], SR, ROLES, SONG["tempo"])
    p = neutral(X.shape[1])
    for rule in B.RULES[:-1]:
        rule(song, p)
    for name in want:
        if name != "master_gain_db":
            assert torch.equal(p[name], want[name][0]), name
    with torch.no_grad():
        unmastered = mix(X, SR, {**want, "master_gain_db": torch.zeros(1)})
    assert torch.equal(B.rule_master(unmastered, SR).float(), want["master_gain_db"])
    with pytest.raises(ValueError, match="one role per track"):
        B.analyze_song(X[0], SR, ROLES[:-1])


def test_rule_loudness_balance_equalises_integrated_loudness_with_the_lead_above():
    lead = ROLES.index("lead")
    for roles, boost in ((ROLES, 5.0), (ROLES, LEAD_BOOST_DB), (None, 5.0)):
        p = run_rules(X[0], roles, B.rule_loudness_balance, lead_boost_db=boost)
        after = loudness_lufs(X[0].unsqueeze(1) * 10 ** (p["gain_db"].view(-1, 1, 1) / 20), SR)  # pyloudnorm
        want = torch.full_like(after, -26.0)  # TRACK_LUFS
        if roles is not None:  # without roles there is no lead to lift
            want[lead] += boost
        assert torch.allclose(after, want, atol=0.05), (roles is None, boost)
    # a silent and a masked track keep their neutral fader
    x = torch.cat([X[0], torch.zeros(1, X.shape[-1])])
    song = B.analyze_song(x, SR, ROLES + ["pad"], 120.0, present=[False] + [True] * len(ROLES))
    p = neutral(x.shape[0])
    B.rule_loudness_balance(song, p)
    assert float(p["gain_db"][0]) == 0.0 and float(p["gain_db"][-1]) == 0.0
    assert song.active == list(range(1, len(ROLES)))


def test_rule_panning_centres_low_and_lead_spreads_the_rest_by_brightness():
    freqs = {"bass": 80, "lead": 500, "pad": 300, "keys": 1000, "gtr": 3000, "arp": 6000}
    drums = {"overhead_l": 0.15, "overhead_r": 0.85, "hihat": 0.35, "tom_1": 0.38, "tom_2": 0.52, "tom_3": 0.66,
             "snare": 0.5, "kick": 0.5}
    roles = list(freqs) + list(drums)
    x = torch.stack([sine(f) for f in freqs.values()] + [white(seed=k) for k in range(len(drums))])
    pan = dict(zip(roles, run_rules(x, roles, B.rule_panning)["pan"].tolist()))
    # bass and lead central; the others by centroid 300 < 1000 < 3000 < 6000 Hz: left, right, left, right,
    # 0.2, 0.2 + 0.25/3, 0.2 + 0.5/3 and 0.45 from the centre; drum microphones where the drummer hears them
    want = {"bass": 0.5, "lead": 0.5, "pad": 0.3, "keys": 0.5 + 0.2 + 0.25 / 3, "gtr": 0.5 - 0.2 - 0.5 / 3, "arp": 0.95,
            **drums}
    for r in roles:
        assert pan[r] == pytest.approx(want[r], abs=1e-6), r
    # without roles only the low tracks (centroid below 250 Hz) stay central; the lead is spread like any other
    x = torch.stack([sine(f) for f in (80, 200, 500, 2000)])
    assert run_rules(x, None, B.rule_panning)["pan"].tolist() == pytest.approx([0.5, 0.5, 0.3, 0.95], abs=1e-6)


def test_rule_highpass_cuts_below_the_lowest_percent_of_energy():
    roles = ["pad", "keys", "gtr", "arp", "bass", "kick"]
    x = torch.stack([sine(30), sine(150), sine(1000), white(), sine(80), white(seed=1)])
    hp = run_rules(x, roles, B.rule_highpass)["highpass_cutoff_hz"].tolist()
    bin_hz = SR / 4096
    assert hp[0] == pytest.approx(40.0)  # a 30 Hz tone: its 1 % point is below 40 Hz, clipped up
    assert 150 - 2 * bin_hz <= hp[1] <= 150  # a 150 Hz tone: just below it (the window's leakage)
    assert hp[2] == pytest.approx(400.0)  # a 1 kHz tone: clipped down to 400 Hz
    assert hp[3] == pytest.approx(0.01 * SR / 2, abs=2 * bin_hz)  # white noise: 1 % of the band up to Nyquist
    assert hp[4] == hp[5] == 20.0  # bass and kick: off
    # without roles the low tracks (centroid below 250 Hz) are left alone too, the noise is not
    hp = run_rules(x, None, B.rule_highpass)["highpass_cutoff_hz"].tolist()
    assert hp[:2] == [20.0, 20.0] and hp[4] == 20.0 and hp[5] == pytest.approx(0.01 * SR / 2, abs=2 * bin_hz)


def test_rule_masking_eq_cuts_at_most_6_db_where_the_lead_is_strongest():
    # lead and pad are 1 kHz tones; after rule 1 the pad sits lead_boost_db below the lead in that band,
    # so its cut is clip(6 - boost, 0, 6) dB; the 200 Hz keys and the guitar (100 Hz + 2 kHz) have nothing there
    x = torch.stack([sine(1000), sine(1000, 0.03), sine(200), sine(100) + sine(2000, 0.03)])
    roles = ["lead", "pad", "keys", "gtr"]
    for boost in (3.0, 0.0, 8.0, -10.0):
        p = run_rules(x, roles, B.rule_loudness_balance, B.rule_masking_eq, lead_boost_db=boost)
        cuts = (-p["peak_gain_db"][:, 0]).tolist()
        assert cuts == pytest.approx([0.0, min(max(6.0 - boost, 0.0), 6.0), 0.0, 0.0], abs=0.02), boost
        assert p["peak_cutoff_hz"][1:, 0].tolist() == pytest.approx([1000.0] * 3)
        assert p["peak_q"][1:, 0].tolist() == [1.5] * 3
    # the band is searched between 300 Hz and 5 kHz only: a lead louder at 100 Hz than at 2 kHz is cut for at 2 kHz
    x = torch.stack([sine(100) + sine(2000, 0.03), sine(2000), sine(8000)])
    p = run_rules(x, ["lead", "pad", "keys"], B.rule_loudness_balance, B.rule_masking_eq)
    assert p["peak_cutoff_hz"][1:, 0].tolist() == pytest.approx([2000.0, 2000.0])
    assert float(p["peak_gain_db"][1, 0]) == pytest.approx(-6.0) and float(p["peak_gain_db"][2, 0]) == 0.0
    # no lead (no roles): nothing is touched
    p = run_rules(x, None, B.rule_loudness_balance, B.rule_masking_eq)
    for name in ("peak_gain_db", "peak_cutoff_hz", "peak_q"):
        assert torch.equal(p[name], neutral(3)[name]), name


def stepped_noise(range_db, seed, amp=0.1, seconds=8):
    """White noise whose level alternates every second between amp (RMS) and range_db below it."""
    env = torch.tensor([1.0, 10 ** (-range_db / 20)], dtype=torch.float64).repeat(seconds // 2).repeat_interleave(SR)
    return env * white(amp, seed, seconds)


def test_rule_compression_ratio_is_the_loudness_range_over_6_db():
    ranges = [3.0, 12.0, 24.0, 39.0, 12.0, 12.0]
    roles = ["pad", "pad", "keys", "gtr", "lead", "drums"]
    x = torch.stack([stepped_noise(d, seed=k) for k, d in enumerate(ranges)])
    for tempo, release in ((120.0, 125.0), (60.0, 250.0), (30.0, 300.0), (400.0, 50.0)):
        p = run_rules(x, roles, B.rule_compression, tempo=tempo)
        assert p["release_ms"][1:].tolist() == pytest.approx([release] * 5), tempo  # a sixteenth note, 50-300 ms
    ratio = p["ratio"].tolist()
    assert ratio[0] == 1.0 and float(p["threshold_db"][0]) == 0.0  # 3 dB / 6 dB < 1: no compressor
    for k in range(1, 6):  # range / 6 dB, at most 6
        assert ratio[k] == pytest.approx(min(ranges[k] / 6.0, 6.0), rel=0.02), k
    # threshold 4 dB below the loud seconds' level (RMS 0.1 = -20 dBFS), after the fader
    assert p["threshold_db"][1:].tolist() == pytest.approx([-24.0] * 5, abs=0.15)
    assert p["attack_ms"].tolist()[1:] == [10.0, 10.0, 10.0, 2.0, 30.0] and p["knee_db"][1:].tolist() == [6.0] * 5
    p = run_rules(x, roles, B.rule_loudness_balance, B.rule_compression)
    assert torch.allclose(p["threshold_db"][1:], -24.0 + p["gain_db"][1:], atol=0.15)
    # a level falling steadily by 24 or 36 dB over 8 s: the 400 ms block centred at c seconds is at
    # -20 dB - fall * c / 8 s, so the 10th and 95th percentiles of those levels give the range and threshold
    n = 8 * SR
    size, hop = int(0.4 * SR), int(0.1 * SR)
    centres = (np.arange((n - size) // hop + 1) * hop + size / 2) / SR
    for fall in (24.0, 36.0):
        x = 10 ** (-fall * torch.arange(n, dtype=torch.float64) / n / 20) * white(0.1, seed=7, seconds=8)
        lo, hi = np.percentile(-20.0 - fall * centres / 8, [10, 95])
        p = run_rules(x.view(1, -1), ["pad"], B.rule_compression)
        assert float(p["ratio"][0]) == pytest.approx((hi - lo) / 6.0, rel=0.02), fall
        assert float(p["threshold_db"][0]) == pytest.approx(hi - 4.0, abs=0.15), fall


def test_rule_reverb_time_from_tempo_and_sends_by_role():
    roles = ["lead", "drums", "overhead_l", "overhead_r", "hihat", "bass", "kick", "snare", "tom_1", "pad"]
    x = torch.stack([white(seed=k) for k in range(len(roles))])
    for tempo, t60 in ((60.0, 2.4), (120.0, 1.8), (200.0, 1.0), (300.0, 0.6), (30.0, 2.4)):
        p = run_rules(x, roles, B.rule_reverb, tempo=tempo)
        assert float(p["reverb_t60_s"]) == pytest.approx(t60, abs=1e-6), tempo
    assert p["reverb_send_db"].tolist() == [-16.0, -24.0, -24.0, -24.0, -24.0, -80.0, -80.0, -20.0, -20.0, -20.0]
    # without roles: no send for the low tracks (centroid below 250 Hz), -20 dB for the others
    p = run_rules(torch.stack([sine(80), white()]), None, B.rule_reverb)
    assert p["reverb_send_db"].tolist() == [-80.0, -20.0]
    # no tempo given: estimated from the audio (clicks every 0.5 s: 120 bpm)
    clicks = torch.zeros(8 * SR, dtype=torch.float64)
    clicks[:: SR // 2] = 1.0
    song = B.analyze_song(clicks.view(1, -1), SR)
    assert song.tempo == pytest.approx(120.0, abs=3.0)


def test_rule_master_reaches_minus_16_lufs_or_a_minus_1_dbfs_peak():
    y = white(0.01, seed=3).float().view(1, 1, -1).expand(1, 2, -1).clone()
    spiky = y.clone()
    spiky[0, :, 1000] = 0.5  # one peak far above the noise: the ceiling binds
    g = B.rule_master(torch.cat([y, spiky, torch.zeros_like(y)]), SR)
    out = torch.cat([y, spiky]) * 10 ** (g[:2] / 20).view(-1, 1, 1)
    assert float(loudness_lufs(out[:1], SR)) == pytest.approx(-16.0, abs=0.01)
    assert 20 * math.log10(float(out[0].abs().max())) < -1.0
    assert 20 * math.log10(float(out[1].abs().max())) == pytest.approx(-1.0, abs=1e-4)
    assert float(loudness_lufs(out[1:], SR)) < -17.0
    assert float(g[2]) == 0.0  # a silent mix is left alone
