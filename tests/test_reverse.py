"""Reverse engineering a mix (automix_lite.reverse, chapter 5.4): the fit recovers a known console on a synthetic
mix, pruning never leaves the loss above its tolerance and removes the processors the mix did not use, and bad
input gets one-line errors."""

import pytest
import torch

from automix_lite import dsp, reverse

SR = 22050


@pytest.fixture(scope="module")
def case():
    """Three decorrelated tracks (a bass-like tone, a bright noise, a percussive burst train), 0.75 s, mixed by a
    known console in which some processors are neutral."""
    torch.manual_seed(0)
    t = torch.arange(int(0.75 * SR)) / SR
    g = torch.Generator().manual_seed(1)
    bass = 0.5 * torch.sin(2 * torch.pi * 110 * t) * (1 + 0.3 * torch.sin(2 * torch.pi * 3 * t))
    noise = 0.2 * torch.randn(len(t), generator=g)
    bright = noise - torch.nn.functional.pad(noise, (1, 0))[:-1] * 0.9
    bursts = 0.6 * torch.randn(len(t), generator=g) * torch.exp(-((t * 8) % 1) * 12)
    x = torch.stack([bass, bright, bursts])
    p = dsp.default_params(1, 3)
    p["gain_db"] = torch.tensor([[-4.0, 3.0, -1.0]])
    p["pan"] = torch.tensor([[0.5, 0.25, 0.7]])
    p["high_shelf_gain_db"] = torch.tensor([[0.0, -4.0, 0.0]])
    p["ratio"] = torch.tensor([[1.0, 1.0, 4.0]])
    p["threshold_db"] = torch.tensor([[0.0, 0.0, -20.0]])
    p["reverb_send_db"] = torch.tensor([[-80.0, -12.0, -80.0]])
    with torch.no_grad():
        y = dsp.mix(x.unsqueeze(0), SR, p)[0]
    torch.set_num_threads(1)
    fitted = reverse.fit(x, y, SR, steps=80)
    return x, y, p, fitted


def test_initialisation_finds_the_pans_and_gains_of_a_linear_mix():
    """A gain-and-pan mix of noises with different spectra (low, middle, high): the least-squares start is
    already close. (Noises of one spectrum could not be told apart by their band powers.)"""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, SR, generator=g)
    low = torch.cumsum(w[0], 0) * 0.01
    low = low - low.mean()
    mid = dsp.sosfilt(dsp.biquad_sos("bandpass", 0.0, 1000.0, 2.0, SR).view(1, 1, 6), w[1].view(1, 1, -1))[0, 0]
    high = w[2] - torch.nn.functional.pad(w[2], (1, 0))[:-1]
    x = torch.stack([low, 0.3 * mid, 0.05 * high])
    p = dsp.default_params(1, 3)
    p["gain_db"], p["pan"] = torch.tensor([[2.0, -6.0, 5.0]]), torch.tensor([[0.2, 0.5, 0.9]])
    y = dsp.mix(x.unsqueeze(0), SR, p)[0]
    start = reverse.initial_params(x, y, SR)
    assert (start["pan"] - p["pan"]).abs().max() < 0.05
    assert (start["gain_db"] - p["gain_db"]).abs().max() < 1.0


def test_fit_recovers_the_known_console(case):
    x, y, p, fitted = case
    assert fitted["loss"] < 0.25 * fitted["start_loss"]
    err = reverse.processor_error(fitted["params"], p, x, SR)
    assert err["gain_db"] < 1.0 and err["pan"] < 0.03
    assert err["eq_db"] < 1.0  # where the tracks have energy (a 110 Hz tone says nothing about its EQ at 5 kHz)
    rendered = dsp.mix(x.unsqueeze(0), SR, dict(fitted["params"]))[0]
    assert float((rendered - y).pow(2).mean() / y.pow(2).mean()) < 0.05  # the refitted mix is close sample by sample


def test_pruning_keeps_the_loss_within_tolerance_and_removes_unused_processors(case):
    x, y, p, fitted = case
    tol = 0.2
    pruned = reverse.prune(x, y, SR, fitted, tolerance=tol, finetune_steps=4)
    assert pruned["loss"] <= fitted["loss"] * (1 + tol) + 1e-6
    assert all(s["loss"] <= pruned["limit"] for s in pruned["steps"] if s["removed"])
    removed = pruned["removed"]
    assert int(removed.sum()) >= 4
    used = reverse.active_processors(p)
    # the processors the mix really needs the most (bright's pan, the bursts' compressor and pan) stay
    for i, proc in ((1, "pan"), (2, "pan"), (2, "compressor"), (1, "reverb")):
        assert not removed[i, reverse.PROCESSORS.index(proc)], (i, proc)
    assert not (removed & used).any(), "pruning removed a processor the known console used"
    # a removed processor is exactly neutral in the returned console
    for i, j in removed.nonzero().tolist():
        assert not reverse.active_processors(pruned["params"])[i, j]


def test_pruning_with_zero_tolerance_never_raises_the_loss(case):
    x, y, _, fitted = case
    pruned = reverse.prune(x, y, SR, fitted["params"], tolerance=0.0, finetune_steps=0)
    assert pruned["loss"] <= fitted["loss"] + 1e-6


@pytest.mark.parametrize("stems, mix, match", [
    (torch.zeros(2, 100), torch.zeros(2, 100), "silent"),
    (torch.zeros(2, 100), torch.zeros(2, 90), "samples"),
    (torch.zeros(2, 100), torch.zeros(1, 100), "stereo"),
    (torch.zeros(100), torch.ones(2, 100), "tracks, samples"),
])
def test_bad_input_is_refused(stems, mix, match):
    with pytest.raises(ValueError, match=match):
        reverse.fit(stems, mix, SR, steps=1)


def test_bad_budgets_are_refused(case):
    x, y, _, fitted = case
    with pytest.raises(ValueError, match="steps"):
        reverse.fit(x, y, SR, steps=-1)
    with pytest.raises(ValueError, match="tolerance"):
        reverse.prune(x, y, SR, fitted, tolerance=-0.1)
    nan = y.clone()
    nan[0, 5] = float("nan")
    with pytest.raises(ValueError):
        reverse.fit(x, nan, SR, steps=1)


def test_a_bundled_song_is_scored_against_the_engineers_settings_and_tabulated():
    """evaluate_song on half a second of a TEST drum kit (a few steps): every measure is there and in range, and
    results_table renders the rows (benchmarks/reverse.py writes these)."""
    from automix_lite import data

    song = data.songs("drums", "test")[0]["id"]
    r = reverse.evaluate_song(song, seconds=0.5, steps=2, tolerance=0.0, finetune_steps=0)
    assert r["pruned_loss"] <= r["fit_loss"] + 1e-6  # tolerance 0: pruning never raises the loss
    assert 0 <= r["removed"] <= 1 and 0 <= r["removed_neutral"] <= 1 and 0 <= r["neutral_removed"] <= 1
    assert set(r["fit"]) == set(r["pruned"]) >= {"gain_db", "pan", "eq_db", "compressor_db", "reverb_db"}
    table = reverse.results_table({"rows": [dict(r, task="drums"), dict(r, task="drums", song="again")]})
    assert "**drums, the natural engineer** (2 TEST songs)" in table and "compressor_db" in table
    assert table.count("\n| ") >= 6


def test_a_sparse_engineer_has_the_share_of_neutral_processors_asked_for():
    from automix_lite import data

    song = data.songs("drums", "test")[0]["id"]
    r = reverse.evaluate_song(song, seconds=0.5, steps=1, tolerance=0.0, finetune_steps=0, sparsity=0.5, seed=2)
    mask = torch.tensor(r["neutral_mask"])
    assert r["sparsity"] == 0.5 and mask.float().mean() >= 0.5 - 1e-9
    again = reverse.evaluate_song(song, seconds=0.5, steps=1, tolerance=0.0, finetune_steps=0, sparsity=0.5, seed=2)
    assert again["neutral_mask"] == r["neutral_mask"]  # the drawn graph is seeded
    assert "sparse natural engineer (50% of the processors set neutral)" in reverse.results_table(
        {"rows": [dict(r, task="drums")]})
    with pytest.raises(ValueError, match="sparsity"):
        reverse.evaluate_song(song, seconds=0.5, steps=1, sparsity=1.5)


def test_with_neutral_takes_exactly_the_given_processors_out():
    p = dsp.default_params(1, 3)
    p["gain_db"], p["pan"] = torch.tensor([[-4.0, 3.0, -1.0]]), torch.tensor([[0.2, 0.25, 0.7]])
    p["ratio"], p["threshold_db"] = torch.full((1, 3), 3.0), torch.full((1, 3), -20.0)
    p["high_shelf_gain_db"], p["reverb_send_db"] = torch.full((1, 3), 2.0), torch.full((1, 3), -12.0)
    before = reverse.active_processors(p)
    assert bool(before.all())
    mask = torch.tensor([[True, False, False, True, False], [False, True, True, False, True], [False] * 5])
    after = reverse.active_processors(reverse.with_neutral(p, mask))
    assert torch.equal(after, before & ~mask)
    assert float(p["gain_db"][0, 0]) == -4.0  # the input is not changed
    with pytest.raises(ValueError, match="removed must be"):
        reverse.with_neutral(p, torch.zeros(2, 5, dtype=torch.bool))


def test_a_track_least_squares_gives_no_weight_starts_audible():
    """Two stems with the same spectrum (one a scaled copy of the other) are collinear in band powers, so least
    squares puts all the weight on one; the other must start where the descent can still hear it (it used to start
    at -40 dB, where its gain gets almost no gradient)."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(SR, generator=g) * 0.1
    x = torch.stack([a, 0.5 * a, torch.cumsum(torch.randn(SR, generator=g), 0) * 0.002])
    p = dsp.default_params(1, 3)
    p["gain_db"] = torch.tensor([[0.0, -2.0, 3.0]])
    y = dsp.mix(x.unsqueeze(0), SR, p)[0]
    start = reverse.initial_params(x, y, SR)["gain_db"][0]
    assert start.min() > -20.0, start


def test_a_pan_least_squares_puts_at_the_edge_starts_inside():
    """On the first 2 s of a bundled TEST song, least squares gives one track no weight on one side, which put its
    start pan at exactly 1, where the pan's logit is saturated and the fit never moved it (the keys ended hard
    right, the engineer had 0.61). Starts now stay inside [0.05, 0.95]."""
    from automix_lite import data

    n = 2 * data.SAMPLE_RATE
    x = data.load_song("song_electronic_04")["tracks"][:, :n]
    y = data.reproduce_mix("song_electronic_04", "natural")[:, :n]
    start = reverse.initial_params(x, y, data.SAMPLE_RATE)["pan"][0]
    assert float(start.min()) >= 0.05 - 1e-6 and float(start.max()) <= 0.95 + 1e-6, start
