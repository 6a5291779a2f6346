"""Baseline mixers: mono sum, random gain/pan, knowledge-based rules."""

import math

import pytest
import torch

from automix_lite import data as D
from automix_lite.audio import loudness_lufs
from automix_lite.baselines import CENTRE_ROLES, LEAD_BOOST_DB, TRACK_LUFS, knowledge_mix, mono_mix, random_mix, tempo_to_t60
from automix_lite.dsp import mix

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
