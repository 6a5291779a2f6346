"""Every cross-reference of the book points at something that exists: "chapter 4.1" at the first chapter of
Part 4 of the table of contents, "Part 5" at a part, "notebooks/NN_name.ipynb" at a file; every chapter's title
carries the number the table of contents gives it; and the worked answer of chapter 2.1's first exercise
(Dugan's gain sharing) agrees with the rule as the chapter states it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
CHAPTER_REF = re.compile(r"\b[Cc]hapters? (\d\.\d+(?:(?:, | and | or |–|-)\d\.\d+)*)")
PART_REF = re.compile(r"\bParts? (\d)(?:(?:–|-| and )(\d))?\b")
FILE_REF = re.compile(r"\bnotebooks/(\d\d_[a-z0-9_]+)\.ipynb")


def numbered_chapters() -> dict:
    """``{"3.3": "notebooks/13_training", ...}`` from the parts of the toc captioned "Part N — ..."."""
    out = {}
    for part in TOC["parts"]:
        m = re.match(r"Part (\d)", part.get("caption", ""))
        if m:
            for k, chapter in enumerate(part["chapters"], start=1):
                out[f"{m.group(1)}.{k}"] = chapter["file"]
    return out


CHAPTERS = numbered_chapters()
PARTS = {key.split(".")[0] for key in CHAPTERS} | ({"0"} if TOC["parts"][0].get("caption") == "Welcome" else set())  # "Part 0 — Welcome"


def page_text(file: str) -> str:
    path = ROOT / f"{file}.ipynb"
    if path.exists():
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join("".join(c["source"]) for c in nb["cells"])
    return (ROOT / f"{file}.md").read_text(encoding="utf-8")


def sources() -> dict:
    """Every text a reader meets: the book's pages, the README, the package's docstrings and messages."""
    files = {}
    for part in TOC["parts"]:
        for chapter in part["chapters"]:
            files[chapter["file"]] = page_text(chapter["file"])
    files[TOC["root"]] = page_text(TOC["root"])
    files["README.md"] = (ROOT / "README.md").read_text(encoding="utf-8")
    for py in sorted((ROOT / "automix_lite").rglob("*.py")):
        files[str(py.relative_to(ROOT))] = py.read_text(encoding="utf-8")
    return files


SOURCES = sources()


def test_every_chapter_title_carries_its_number_in_the_toc():
    for number, file in CHAPTERS.items():
        title = next(line for line in page_text(file).splitlines() if line.startswith("# "))
        assert title.startswith(f"# {number} "), f"{file}: title {title!r} should start with '# {number} '"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_chapter_part_and_notebook_references_exist(name):
    text = SOURCES[name]
    for m in CHAPTER_REF.finditer(text):
        for number in re.findall(r"\d\.\d+", m.group(1)):
            assert number in CHAPTERS, f"{name}: '{m.group(0)}' points at chapter {number}, which the toc does not have"
    for m in PART_REF.finditer(text):
        for number in filter(None, m.groups()):
            assert number in PARTS, f"{name}: '{m.group(0)}' points at Part {number}, which the toc does not have"
    for m in FILE_REF.finditer(text):
        assert (ROOT / "notebooks" / f"{m.group(1)}.ipynb").exists(), f"{name}: {m.group(0)} does not exist"


def test_the_reference_pattern_catches_a_missing_chapter():
    """The check above can fail: a reference past the last chapter of a part is found and rejected."""
    last = max((k for k in CHAPTERS if k.startswith("2.")), key=lambda k: int(k.split(".")[1]))
    missing = f"2.{int(last.split('.')[1]) + 1}"
    refs = re.findall(r"\d\.\d+", CHAPTER_REF.search(f"as chapters 1.2 and {missing} show").group(1))
    assert refs == ["1.2", missing] and missing not in CHAPTERS


def test_the_answer_to_dugans_exercise_follows_the_rule_the_chapter_states():
    """Chapter 2.1: power gains g_i^2 = P_i / sum P_j (the earlier text shared amplitudes, without a source)."""
    text = SOURCES["book/automatic_mixing"]
    assert "g_i^2 = P_i / \\sum_j P_j" in text and "dugan1976patent" in text
    amplitude = np.array([1.0, 0.5, 0.5 * 10 ** (-30 / 20), 0.5 * 10 ** (-30 / 20)])
    power = amplitude ** 2
    gains_db = 10 * np.log10(power / power.sum())
    answer = text[text.index("1. **Gain sharing**"):text.index("2. **Where a rule fails**")]
    for value in gains_db[:3]:
        assert f"${value:.1f}$ dB" in answer.replace("-", "-"), f"{value:.1f} dB is not in the answer"
    talkers_db = 10 * np.log10(power[0] / power[1]) + (gains_db[0] - gains_db[1])
    assert f"{talkers_db:.0f} dB instead of 6" in answer
