"""Meta-evaluation (chapter 4.1): controlled changes of the engineer's settings and how metrics track them."""

import numpy as np
import pytest
import torch

from automix_lite import data, evaluation
from automix_lite.parameters import SPEC_BY_NAME

SONG = "song_funk_05"


def _params():
    return data.mix_params(SONG, "natural")


def test_amount_zero_is_the_engineers_mix_and_every_change_has_its_size():
    p = _params()
    for kind in evaluation.PERTURBATIONS:
        same = evaluation.perturb(p, kind, 0.0, torch.Generator().manual_seed(0))
        assert all(torch.equal(same[k], p[k]) for k in p), kind
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    gain = evaluation.perturb(p, "gain", 2.0, g())
    d = (gain["gain_db"] - p["gain_db"]).abs()
    inside = (p["gain_db"] + 2 <= SPEC_BY_NAME["gain_db"].high) & (p["gain_db"] - 2 >= SPEC_BY_NAME["gain_db"].low)
    assert torch.allclose(d[inside], torch.full_like(d[inside], 2.0), atol=1e-5)
    # the same generator state gives the same signs at every amount: only the size differs
    four = evaluation.perturb(p, "gain", 4.0, g())
    assert torch.equal(torch.sign(four["gain_db"] - p["gain_db"]), torch.sign(gain["gain_db"] - p["gain_db"]))
    pan = evaluation.perturb(p, "pan", 0.4, g())
    assert float(pan["pan"].min()) >= 0 and float(pan["pan"].max()) <= 1
    eq = evaluation.perturb(p, "eq", 6.0, g())
    assert set(k for k in p if not torch.equal(eq[k], p[k])) == {"peak_gain_db"}


def test_compressor_and_reverb_changes_touch_only_what_the_engineer_switched_on():
    p = _params()
    c = evaluation.perturb(p, "compressor", 12.0)
    on = p["ratio"] > 1 + 1e-6
    assert bool(on.any()) and torch.equal(c["threshold_db"][~on], p["threshold_db"][~on])
    assert bool((c["threshold_db"][on] < p["threshold_db"][on]).all())
    r = evaluation.perturb(p, "reverb", 6.0)
    off = p["reverb_send_db"] <= SPEC_BY_NAME["reverb_send_db"].low + 1e-6
    assert torch.equal(r["reverb_send_db"][off], p["reverb_send_db"][off])
    assert float(r["reverb_send_db"].max()) <= 0.0


def test_bad_perturbations_give_clear_errors():
    p = _params()
    with pytest.raises(ValueError, match="unknown perturbation"):
        evaluation.perturb(p, "tape", 1.0)
    with pytest.raises(ValueError, match="amount must be"):
        evaluation.perturb(p, "gain", -1.0)
    with pytest.raises(ValueError, match="full console"):
        evaluation.perturb({"gain_db": torch.zeros(1, 2), "pan": torch.zeros(1, 2)}, "gain", 1.0)


def _rows(metric):
    rows = []
    for song in ("a", "b", "c"):
        for kind in ("gain", "pan"):
            for amount in (0.0, 1.0, 2.0, 4.0):
                rows.append({"song": song, "kind": kind, "amount": amount, "draw": 0, "m": metric(song, kind, amount)})
    return {"rows": rows, "embeddings": {}, "references": {}}


def test_meta_summary_rank_correlations_responses_and_blindness():
    def metric(song, kind, amount):
        # tracks gain strongly, pan weakly (5 % of its gain response: blind by the relative rule), never flat
        return amount ** 2 if kind == "gain" else 0.05 * 16 * amount / 4

    s = evaluation.meta_summary(_rows(metric))
    g, p = s[("m", "gain")], s[("m", "pan")]
    assert (g["rho"], g["low"], g["high"], g["n"]) == (1.0, 1.0, 1.0, 3)
    assert g["response"] == 16.0 and g["relative"] == 1.0 and not g["blind"]
    assert p["rho"] == 1.0 and abs(p["relative"] - 0.05) < 1e-12 and p["blind"]  # it moves, but hardly
    flat = evaluation.meta_summary(_rows(lambda s_, k, a: a if k == "gain" else 1.0))[("m", "pan")]
    assert (flat["rho"], flat["low"], flat["high"]) == (0.0, 0.0, 0.0) and flat["blind"]  # does not move at all
    table = evaluation.meta_table(s)
    assert "+1.00 [+1.00, +1.00], 100 %" in table and "5 % *blind*" in table.split("\n")[2]
    # a metric that falls as the change grows has rho -1
    assert evaluation.meta_summary(_rows(lambda s_, k, a: -a))[("m", "gain")]["rho"] == -1.0


def test_meta_summary_frechet_over_the_set_of_songs():
    rng = np.random.default_rng(0)
    songs = [f"s{k}" for k in range(6)]
    refs = {s: rng.normal(size=3) for s in songs}
    emb = {("gain", a): {s: refs[s] + a for s in songs} for a in (0.0, 1.0, 2.0, 3.0)}  # the set moves with a

    def mean_distance(x, y):
        return float(np.sum((x.mean(0) - y.mean(0)) ** 2))

    rows = [{"song": s, "kind": "gain", "amount": a, "draw": 0, "m": a} for s in songs for a in (0.0, 1.0, 2.0, 3.0)]
    out = evaluation.meta_summary({"rows": rows, "embeddings": emb, "references": refs}, frechet=mean_distance,
                                  n_boot=20)
    f = out[("Fréchet", "gain")]
    assert (f["rho"], f["low"], f["high"], f["response"]) == (1.0, 1.0, 1.0, 27.0)  # |3 * ones(3)|^2 at amount 3


def test_meta_evaluate_on_a_bundled_song_sees_a_fader_change():
    out = evaluation.meta_evaluate({"level diff": lambda y, r: float((y - r).abs().max())}, songs=[SONG],
                                   kinds=("gain",), seconds=1.0, amounts={"gain": (0.0, 3.0)})
    values = [r["level diff"] for r in out["rows"]]
    assert len(out["rows"]) == 2 and values[0] == 0.0 and values[1] > 0.0


def test_evaluate_takes_extra_metrics_and_embeddings():
    """evaluate(extra=..., embed=...): named values (several from one function), Fréchet over the set of songs."""
    calls = []

    def several(y, r):
        calls.append(1)
        return {"peak diff": float((y.abs().max() - r.abs().max()).abs()), "zero": 0.0}

    mixers = {"mono": evaluation.baseline_mixer("mono"), "knowledge": evaluation.baseline_mixer("knowledge")}
    rows = evaluation.evaluate(mixers, "drums", "test", 1.0, songs=2, extra={"several": several,
                               "one": lambda y, r: 1.5}, embed=lambda y: y[0].abs().mean(-1).numpy())
    assert len(rows) == 4 and len(calls) == 4  # one call per mix for both values
    assert all({"stereo", "peak diff", "zero", "one", "embedding", "target_embedding"} <= set(r) for r in rows)
    s = evaluation.summarize(rows)
    assert s[("drums", "mono")]["one"][:2] == (1.5, 0.0) and "embedding" not in s[("drums", "mono")]
    # Fréchet between the sets: identical embeddings of the mixer and the engineer give 0
    same = [dict(r, embedding=r["target_embedding"]) for r in rows]
    d = evaluation.frechet_by_mixer(same, lambda a, b: float(np.sum((a.mean(0) - b.mean(0)) ** 2)))
    assert d == {("drums", "mono"): 0.0, ("drums", "knowledge"): 0.0}
    table = evaluation.metrics_table(s, "drums", ["stereo", "one", "gain_db"], d)
    lines = table.splitlines()
    assert lines[0] == "| mixer | stereo | one | gain_db | Fréchet |" and len(lines) == 4
    assert "1.50 ± 0.00" in lines[2] and lines[2].endswith("| 0.00 |")
