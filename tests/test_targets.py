"""evaluation.check_targets: the bar of chapter 2.2, checked on scores."""

import pytest

from automix_lite import evaluation, pretrained


def scores(model_stereo, gain=1.0, pan=0.05):
    return {"mono": {"stereo": (10.0, 0, 1)}, "random": {"stereo": (5.0, 0, 1)}, "knowledge": {"stereo": (3.0, 0, 1)},
            "m": {"stereo": (model_stereo, 0, 1), "gain_db": (gain, 0, 1), "pan": (pan, 0, 1)}}


def test_each_target_has_its_limit_and_boundaries():
    res = {r["target"]: r for r in evaluation.check_targets(scores(2.9), "m")}
    assert [r["limit"] for r in res.values()] == pytest.approx([7.0, 3.5, 3.0, 2.0, 0.1])
    assert all(r["met"] for r in res.values())
    res = {r["target"]: r["met"] for r in evaluation.check_targets(scores(3.0, gain=2.01, pan=0.1), "m")}
    assert res == {"stereo loss at least 30 % below the mono sum": True, "stereo loss at least 30 % below the random mix": True,
                   "stereo loss below the knowledge mixer": False, "gain error within 2 dB": False, "pan error within 0.1": True}


def test_each_target_names_its_metric_baseline_and_unit_even_when_a_baseline_is_missing():
    s = scores(2.0)
    del s["random"]
    res = evaluation.check_targets(s, "m")
    assert [(r["metric"], r["base"], r["unit"]) for r in res] == [
        ("stereo", "mono", ""), ("stereo", "knowledge", ""), ("gain_db", None, "dB"), ("pan", None, "")]
    assert [r["limit"] for r in res] == pytest.approx([7.0, 3.0, 2.0, 0.1])


def test_a_mixer_without_parameters_is_graded_on_the_stereo_loss_only_and_unknown_names_are_refused():
    s = scores(2.0)
    s["w"] = {"stereo": (2.0, 0, 1)}
    assert [r["target"] for r in evaluation.check_targets(s, "w")][-1] == "stereo loss below the knowledge mixer"
    with pytest.raises(ValueError, match="no scores for 'nope'"):
        evaluation.check_targets(s, "nope")


def test_the_bundled_drums_model_misses_the_knowledge_mixer_and_the_pan_target():
    """What chapter 3.3 reads from the bundled checkpoint's stored TEST scores."""
    test = pretrained.load_checkpoint("dmc_basic_drums")["metrics"]["test"]
    missed = [r["target"] for r in evaluation.check_targets(test, "dmc_basic_drums") if not r["met"]]
    assert missed == ["stereo loss below the knowledge mixer", "pan error within 0.1"]


def test_pan_sides_names_where_each_track_sits_against_the_reference():
    import torch

    from automix_lite import metrics

    model = {"pan": torch.tensor([[0.5, 0.2, 0.8, 0.52, 0.7]])}
    engineer = {"pan": torch.tensor([[0.51, 0.3, 0.3, 0.9, 0.5]])}
    assert metrics.pan_sides(model, engineer) == ["centre", "same side", "mirrored", "centred", "off-centre"]
    with pytest.raises(ValueError, match="same song"):
        metrics.pan_sides(model, {"pan": torch.zeros(1, 3)})
