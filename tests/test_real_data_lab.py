"""The fixture builder of notebooks/23_real_data_lab.ipynb writes folders the real-set loaders read; a loader
pointed at a wrong or empty folder says in one line which layout it expects."""

import json
from pathlib import Path

import pytest

from automix_lite import data

NB = Path(__file__).resolve().parents[1] / "notebooks" / "23_real_data_lab.ipynb"
LOADERS = {"ENSTDrums": data.ENSTDrums, "MedleyDB": data.MedleyDB, "MUSDB18HQ": data.MUSDB18HQ, "DSD100": data.DSD100}
EXPECTED = {"ENSTDrums": (8, ["kick", "snare", "hi-hat", "tom_1", "tom_2", "tom_3", "overhead_L", "overhead_R"]),
            "MUSDB18HQ": (4, ["drums", "bass", "other", "vocals"]), "DSD100": (4, ["drums", "bass", "other", "vocals"])}


@pytest.fixture(scope="module")
def build_fixture():
    cells = json.loads(NB.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def build_fixture" in "".join(c["source"]))
    namespace = {}
    exec(compile(source, str(NB), "exec"), namespace)
    return namespace["build_fixture"]


@pytest.mark.parametrize("kind", list(LOADERS))
def test_fixture_is_read_by_its_loader(kind, build_fixture, tmp_path):
    root = build_fixture(kind, str(tmp_path / kind), n_songs=2, seconds=0.5)
    ds = LOADERS[kind](root, sample_rate=data.SAMPLE_RATE, **({"split": "test"} if kind in ("MUSDB18HQ", "DSD100") else {}))
    assert len(ds) == 2 and ds.sample_rate == data.SAMPLE_RATE
    item = ds[0]
    T = round(0.5 * data.SAMPLE_RATE)
    assert item["mix"].shape == (2, T) and item["tracks"].shape[-1] == T
    assert len(item["names"]) == int(item["mask"].sum()) > 0
    if kind in EXPECTED:
        rows, names = EXPECTED[kind]
        assert item["tracks"].shape[0] == rows and item["names"] == names
    else:  # MedleyDB names the stems from the metadata file (bundled roles), when PyYAML is installed
        assert item["names"][0] in ("drums", "STEM_01")
    assert float(item["tracks"][item["mask"]].abs().max()) > 0


@pytest.mark.parametrize("kind", list(LOADERS))
def test_wrong_or_empty_folder_gives_one_line_with_the_layout(kind, tmp_path):
    for root in (tmp_path / "missing", tmp_path):
        with pytest.raises((FileNotFoundError, ValueError)) as err:
            LOADERS[kind](root)
        message = str(err.value)
        assert "\n" not in message and "expected layout" in message and LOADERS[kind].layout in message


def _item_from_bundled(seconds=1.0):
    """A loader-like item made from a bundled test song: its stems under ENST microphone names, its mix the target."""
    import torch

    entry = data.songs("drums", "test")[0]
    s = data.load_song(entry["id"])
    n = round(seconds * data.SAMPLE_RATE)
    names = ["hi-hat" if r == "hihat" else r for r in s["roles"]]
    k = len(names)
    tracks = torch.zeros(10, n)
    tracks[:k] = s["tracks"][:, :n]
    mask = torch.zeros(10, dtype=torch.bool)
    mask[:k] = True
    return {"tracks": tracks, "mask": mask, "mix": data.reproduce_mix(entry["id"], "natural")[:, :n], "names": names,
            "song": entry["id"]}, s["roles"]


def test_item_example_keeps_the_real_rows_and_maps_the_names_to_roles():
    from automix_lite import evaluation

    item, roles = _item_from_bundled()
    ex = evaluation.item_example(item)
    k = len(roles)
    assert ex["tracks"].shape == (1, k, item["tracks"].shape[-1]) and ex["target"].shape == (1, 2, item["tracks"].shape[-1])
    assert ex["roles"] == roles  # "hi-hat" -> "hihat", the rest unchanged
    assert ex["params"] is None and ex["entry"] == {"id": item["song"], "tempo": None}
    assert evaluation.item_example({**item, "names": ["Male Singer"] * k})["roles"] == ["lead"] * k


def test_evaluate_items_scores_each_mixer_against_the_items_mix_like_the_metric_itself():
    import torch

    from automix_lite import evaluation, metrics, pretrained

    item, _ = _item_from_bundled()
    mixers = {"mono": evaluation.baseline_mixer("mono"), "random": evaluation.baseline_mixer("random", seeds=2),
              "knowledge": evaluation.baseline_mixer("knowledge"),
              "dmc_basic_drums": evaluation.model_mixer(pretrained.load("dmc_basic_drums"))}
    rows = evaluation.evaluate_items(mixers, [item, item], task="enst")
    assert [r["mixer"] for r in rows] == list(mixers) * 2 and {r["task"] for r in rows} == {"enst"}
    assert all(set(r) == {"mixer", "task", "song", "stereo"} for r in rows)  # no parameter errors on real data
    ex = evaluation.item_example(item)
    with torch.no_grad():
        y, _ = mixers["mono"](ex)
    assert rows[0]["stereo"] == pytest.approx(metrics.matched_stereo_loss(y, ex["target"], data.SAMPLE_RATE))
    draws, _ = mixers["random"](ex)
    mean = sum(metrics.matched_stereo_loss(d, ex["target"], data.SAMPLE_RATE) for d in draws) / 2
    assert rows[1]["stereo"] == pytest.approx(mean)
    summary = evaluation.summarize(rows)
    assert summary[("enst", "mono")]["stereo"][0] == pytest.approx(rows[0]["stereo"])


@pytest.mark.parametrize("change, words", [
    (lambda it: {k: v for k, v in it.items() if k != "mix"}, "missing"),
    (lambda it: {**it, "mix": it["mix"][:1]}, "must be stereo"),
    (lambda it: {**it, "names": it["names"][:-1]}, "one name each"),
])
def test_a_bad_item_is_refused_in_one_line(change, words):
    from automix_lite import evaluation

    item, _ = _item_from_bundled(seconds=0.2)
    with pytest.raises(ValueError, match=words) as err:
        evaluation.item_example(change(item))
    assert "\n" not in str(err.value)
