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
