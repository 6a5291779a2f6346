"""The instructor kit: tools/student_copy.py, tools/export_figures.py and the guide book/instructors.md.

Fast: no notebook is executed; the tools run as subprocesses (student_copy) or in-process on temporary folders.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDENT_COPY = ROOT / "tools" / "student_copy.py"
EXPORT = ROOT / "tools" / "export_figures.py"
GUIDE = ROOT / "book" / "instructors.md"
TWO = ["02_gain_loudness_panning.ipynb", "16_listening_tests.ipynb"]
SOL = re.compile(r"-sol(\d+)$")


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, str(STUDENT_COPY), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture
def two_notebooks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in TWO:
        shutil.copy(ROOT / "notebooks" / name, src / name)
    return src


def _cells(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def _source(cell):
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def test_student_copy_removes_every_solution_and_keeps_every_other_cell(two_notebooks, tmp_path):
    out = tmp_path / "students"
    run = _run(out, *(two_notebooks / n for n in TWO))
    assert run.returncode == 0, run.stderr
    for name in TWO:
        original, copy = _cells(two_notebooks / name), _cells(out / name)
        assert len(copy) == len(original)
        n_solutions = 0
        for a, b in zip(original, copy):
            m = SOL.search(a.get("id", ""))
            if a["cell_type"] == "code" and m:
                n_solutions += 1
                assert b["cell_type"] == "code"
                assert _source(b) == f"# Your solution to exercise {int(m.group(1))}"
                assert not SOL.search(b.get("id", "")), "the answer cell must not look like a solution cell"
                assert b["outputs"] == [] and "hide-cell" not in b["metadata"].get("tags", [])
                assert _source(a) not in _source(b)
            else:
                assert b == a, f"{name}: cell {a.get('id')} changed"
        assert n_solutions > 0
        # no cell of the copy keeps the code of any solution
        sols = [_source(c) for c in original if SOL.search(c.get("id", ""))]
        assert not any(s in _source(c) for s in sols for c in copy)
        assert not any(SOL.search(c.get("id", "")) for c in copy)
        assert "#@title Solution to exercise" not in json.dumps(copy)
    assert "solution cells replaced" in run.stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_student_copy_refuses_to_overwrite_without_the_flag(two_notebooks, tmp_path):
    out = tmp_path / "students"
    assert _run(out, two_notebooks / TWO[0]).returncode == 0
    marker = out / TWO[0]
    marker.write_text("{}")  # a student's edit must survive a refused run
    run = _run(out, two_notebooks / TWO[0])
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "--overwrite" in run.stderr
    assert marker.read_text() == "{}"
    run = _run(out, two_notebooks / TWO[0], "--overwrite")
    assert run.returncode == 0, run.stderr
    assert json.loads(marker.read_text())["cells"]


@pytest.mark.parametrize("case", ["missing", "not_notebook", "broken_json", "inside_notebooks", "out_is_file",
                                  "same_name", "no_args"])
def test_student_copy_refuses_bad_input_with_one_line(case, two_notebooks, tmp_path):
    out = tmp_path / "students"
    nb = two_notebooks / TWO[0]
    if case == "missing":
        args = [out, tmp_path / "nothere.ipynb"]
    elif case == "not_notebook":
        (tmp_path / "notes.txt").write_text("hello")
        args = [out, tmp_path / "notes.txt"]
    elif case == "broken_json":
        (tmp_path / "broken.ipynb").write_text("{not json")
        args = [out, tmp_path / "broken.ipynb"]
    elif case == "inside_notebooks":
        out = ROOT / "notebooks" / "student-copies-test"
        args = [out, nb]
    elif case == "out_is_file":
        out = tmp_path / "a_file"
        out.write_text("x")
        args = [out, nb]
    elif case == "same_name":
        other = tmp_path / "other"
        other.mkdir()
        shutil.copy(nb, other / nb.name)
        args = [out, nb, other / nb.name]
    else:
        args = []
    run = _run(*args)
    assert run.returncode == 1, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    if case != "out_is_file":
        assert not out.exists() or not any(out.iterdir()), "nothing may be written on a refusal"


def _load_export():
    spec = importlib.util.spec_from_file_location("export_figures_under_test", EXPORT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_export_figures_names_every_svg_by_its_chapter_and_writes_an_index(tmp_path, capsys, monkeypatch):
    mod = _load_export()
    monkeypatch.setattr(mod, "BUILD", tmp_path / "no_build")  # whatever the checkout has built
    out = tmp_path / "figures"
    assert mod.main([str(out)]) == 0
    said = capsys.readouterr().out
    assert "copied only the figures of book/images" in said
    svgs = sorted((ROOT / "book" / "images").glob("*.svg"))
    assert svgs
    numbers = {n for _, n, _, _ in mod.chapters()}
    written = {p.name for p in out.iterdir()}
    index = (out / "index.md").read_text(encoding="utf-8")
    for svg in svgs:
        match = [w for w in written if w.endswith("_" + svg.name)
                 and re.fullmatch(r"(\d+\.\d+|A)_" + re.escape(svg.name), w)]
        assert match, f"{svg.name} not exported with a chapter prefix ({sorted(written)})"
        assert match[0].split("_", 1)[0] in numbers
        assert (out / match[0]).read_bytes() == svg.read_bytes()
        assert match[0] in index
    assert "1.6_channel_strip.svg" in written
    # refuses to overwrite, then does with the flag
    assert mod.main([str(out)]) == 1
    assert mod.main([str(out), "--overwrite"]) == 0


def test_export_figures_takes_the_plots_of_a_build(tmp_path, monkeypatch):
    mod = _load_export()
    build = tmp_path / "_build"
    (build / "html" / "_images").mkdir(parents=True)
    (build / "html" / "notebooks").mkdir()
    png = b"\x89PNG\r\n\x1a\nfake"
    (build / "html" / "_images" / "abc123.png").write_bytes(png)
    (build / "html" / "_images" / "def456.png").write_bytes(png + b"2")
    (build / "html" / "notebooks" / "06_channel_strip_console.html").write_text(
        '<html><body><img alt="" src="../_images/abc123.png"/><p>x</p>'
        '<img src="../_images/def456.png"><img src="../_images/abc123.png"></body></html>')
    monkeypatch.setattr(mod, "BUILD", build)
    out = tmp_path / "figures"
    assert mod.main([str(out)]) == 0
    assert (out / "1.6_06_channel_strip_console_fig1.png").read_bytes() == png
    assert (out / "1.6_06_channel_strip_console_fig2.png").read_bytes() == png + b"2"
    assert not (out / "1.6_06_channel_strip_console_fig3.png").exists()
    assert "1.6_06_channel_strip_console_fig2.png" in (out / "index.md").read_text()


def _toc_chapters():
    """``[(number, title)]`` of every numbered chapter of the toc (from each page's "# N.M Title")."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    out = []
    for part in toc["parts"]:
        for ch in part["chapters"]:
            path = next(p for p in (ROOT / f"{ch['file']}.ipynb", ROOT / f"{ch['file']}.md") if p.exists())
            if path.suffix == ".ipynb":
                text = "\n".join(_source(c) for c in json.loads(path.read_text())["cells"])
            else:
                text = path.read_text()
            head = next(line[2:] for line in text.splitlines() if line.startswith("# "))
            m = re.match(r"(\d+\.\d+) (.+)", head)
            if m:
                out.append((m.group(1), m.group(2).strip()))
    return out


def _syllabus_rows(text):
    section = text.split("## Syllabus", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_guide_syllabus_names_every_chapter_of_the_toc():
    text = GUIDE.read_text(encoding="utf-8")
    table = "\n".join(_syllabus_rows(text))
    chapters = _toc_chapters()
    assert len(chapters) >= 23
    for number, title in chapters:
        assert f"{number} {title}" in table, f"the syllabus table misses '{number} {title}'"
    for stem in ("07_baselines", "11_datasets", "12_models", "06_channel_strip_console"):
        assert stem in text.split("### Chapters that do not fit one lecture slot", 1)[1].split("\n## ", 1)[0]


def test_guide_includes_the_measured_times_and_types_none():
    text = GUIDE.read_text(encoding="utf-8")
    assert "```{include} ../benchmarks/CHAPTER_TIMES.md\n```" in text
    assert "notebooks/22_primer.ipynb" in text
    typed = re.compile(r"[<>≤≥~≈]\s*\d+(?:\.\d+)?\s*(?:s|sec|seconds?|min|minutes?|h|hours?)\b"
                       r"|\d+(?:\.\d+)?\s*(?:s|min|minutes?)\s+(?:to run|run time|of run time)", re.I)
    found = typed.findall(text) + typed.findall(text.replace("&lt;", "<"))
    assert not found, f"typed run times in the guide: {found}"
    for row in _syllabus_rows(text):
        assert not re.search(r"\b\d+(?:\.\d+)?\s*(?:s|sec|min|minutes?|h|hours?)\b", row), row
    # the old hand-typed column must be gone
    assert "fast-mode run time" not in text and "in preparation" not in text


def _chapter_times_module():
    spec = importlib.util.spec_from_file_location("chapter_times", ROOT / "benchmarks" / "chapter_times.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chapter_times_total_counts_only_the_chapters_of_the_toc(tmp_path):
    mod = _chapter_times_module()
    stems = [p.stem for _, _, p in mod.chapters()]
    row = {"mode": "standard", "seconds": 60.0, "slowest_cell": 1.0, "solutions": 0.0, "error": None,
           "date": "2026-12-01"}
    results = {s: dict(row) for s in stems}
    results["99_a_notebook_that_left_the_toc"] = dict(row, seconds=6000.0)  # a stale row must not count
    out = tmp_path / "times.md"
    mod.write(results, "a test machine", out=out)
    text = out.read_text()
    assert f"({len(stems):.1f} min in all)" in text
    assert "99_a_notebook" not in text
    verdict = "met" if len(stems) <= mod.TARGET_MIN else "missed"
    assert f"is {mod.TARGET_MIN} min (CURRICULUM.md): {verdict}" in text
    # every chapter measured, one of them in fast mode: the total is not the standard-mode time
    results[stems[0]]["mode"] = "fast"
    mod.write(results, "a test machine", out=out)
    text = out.read_text()
    assert "not every chapter was measured in standard mode" in text.lower()
    assert "not been measured yet" not in text
    # a chapter missing
    del results[stems[1]]
    mod.write(results, "a test machine", out=out)
    assert "not been measured yet" in out.read_text()
