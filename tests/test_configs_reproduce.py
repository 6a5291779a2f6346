"""Every bundled checkpoint was trained from the config of its own name: ``automix train configs/NAME.json``
reproduces the bundled ``NAME`` (its card says so), not a different run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automix_lite import pretrained, train

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "automix_lite" / "checkpoints"


@pytest.mark.parametrize("name", pretrained.available())
def test_the_config_of_a_bundled_name_is_the_run_that_made_it(name):
    path = ROOT / "configs" / f"{name}.json"
    assert path.exists(), f"configs/{name}.json is missing: the bundled {name} must be reproducible from it"
    recorded = {k: v for k, v in pretrained.load_checkpoint(name)["config"].items() if k != "comment"}
    given = train.load_config(json.loads(path.read_text()), default_model=recorded["model"])
    given.pop("comment", None)
    differ = {k: (recorded.get(k), given.get(k)) for k in set(recorded) | set(given) if recorded.get(k) != given.get(k)}
    assert not differ, f"configs/{name}.json differs from the run of the bundled {name} (checkpoint, file): {differ}"
    card = (CARDS / f"{name}.md").read_text()
    assert f"configs/{name}.json" in card, f"the model card of {name} does not name configs/{name}.json"
    assert "_param.json" not in card


def test_the_songs_config_records_the_parameter_loss_of_the_bundled_model():
    """The bug this guards against: configs/dmc_basic_songs.json described a stereo-loss-only run of 1200 steps
    while the bundled dmc_basic_songs was trained for 800 steps with a parameter loss."""
    cfg = json.loads((ROOT / "configs" / "dmc_basic_songs.json").read_text())
    history = pretrained.load_checkpoint("dmc_basic_songs")["history"]
    assert cfg["param_weight"] > 0 and cfg["steps"] == history["steps_done"]
