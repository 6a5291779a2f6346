"""The book: every notebook executes (fast mode), the HTML is built, and its pages are complete.

One Jupyter Book build into ``_build/test`` executes every notebook in the table of contents
(``AUTOMIX_MODE=fast``; a failing cell fails the build) and the tests below check its output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "test"
HTML = OUT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
NOTEBOOK_BUDGET_S = 60  # per notebook in fast mode on 2 CPU cores (CURRICULUM.md)


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


NOTEBOOKS = [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]
AUDIO_PAGES = [f for f in NOTEBOOKS if "02_" in f or "03_" in f or "04_" in f or "05_" in f or "06_" in f]


@pytest.fixture(scope="session")
def book():
    """Build the book once in fast mode, forcing execution; returns the build's log text."""
    shutil.rmtree(OUT, ignore_errors=True)
    env = dict(os.environ, AUTOMIX_MODE="fast")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", "book/_config.yml", "--toc", "book/_toc.yml",
           "--path-output", str(OUT), "--keep-going", "--warningiserror"]
    # Force execution into this build; the cache of `make book` stays untouched.
    cfg = dict(CONFIG)
    cfg["execute"] = dict(CONFIG["execute"], execute_notebooks="force", timeout=NOTEBOOK_BUDGET_S * 3)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "_config.yml").write_text(yaml.safe_dump(cfg))
    cmd[cmd.index("book/_config.yml")] = str(OUT / "_config.yml")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (OUT / "build.log").write_text(log)
    print(f"book built in {time.perf_counter() - start:.0f} s")
    if proc.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}); last lines:\n{log[-6000:]}")
    return log


def page(name: str) -> str:
    path = HTML / f"{name}.html"
    assert path.exists(), f"{path} was not produced"
    return path.read_text(encoding="utf-8")


def test_every_toc_page_is_built(book):
    assert (HTML / "index.html").exists()
    for name in toc_files():
        page(name)


def test_notebooks_ran_without_errors(book):
    for name in NOTEBOOKS:
        text = page(name)
        assert "Traceback (most recent call last)" not in text or "raises-exception" in text, name
        assert 'class="output' in text or "cell_output" in text, f"{name} shows no executed output"


def test_audio_pages_have_players(book):
    assert AUDIO_PAGES, "no audio chapters found in the table of contents"
    for name in AUDIO_PAGES:
        assert "<audio" in page(name), f"{name} has no <audio> player"


def test_notebook_pages_have_plots(book):
    for name in NOTEBOOKS:
        assert re.search(r'<img[^>]+src="[^"]+\.png"', page(name)), f"{name} has no plot image"


def test_widget_state_is_saved(book):
    with_widgets = [n for n in NOTEBOOKS if "ipywidgets" in (ROOT / f"{n}.ipynb").read_text()]
    assert with_widgets, "no notebook uses ipywidgets"
    for name in with_widgets:
        assert "application/vnd.jupyter.widget-view+json" in page(name), f"{name}: widget state not saved"


def test_colab_launch_buttons_point_at_main(book):
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        url = f"https://colab.research.google.com/github/{repo}/blob/{CONFIG['repository']['branch']}/{name}.ipynb"
        assert url in page(name), f"{name}: no Colab launch button for {url}"


def test_citations_resolve(book):
    assert "??" not in page("book/welcome").split("<main")[-1][:200000]
    bib = page("book/bibliography")
    assert "Steinmetz" in bib


def test_notebooks_stored_clean_and_badges_agree_with_config():
    """Notebooks are committed without outputs; their Colab badge uses the one repository URL."""
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    for name in NOTEBOOKS:
        nb = json.loads((ROOT / f"{name}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), f"{name} is stored with outputs"
        src = "".join("".join(c["source"]) for c in nb["cells"])
        badges = re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/", src)
        assert badges and set(badges) == {repo}, f"{name}: Colab badge must point at {repo}, found {badges}"
        for heading in ("Learning objectives", "Summary", "Exercises"):
            assert heading in src, f"{name} lacks a '{heading}' section"
        assert ":class: dropdown" in src, f"{name} has no hidden exercise solutions"


COLAB_INSTALL_CELL = """import os, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository (package and bundled data) once
    if not os.path.isdir("automix-lite"):
        !git clone --quiet --depth 1 {url}
    %pip install -q ./automix-lite
    os.environ["AUTOMIX_DATA"] = os.path.abspath("automix-lite/data")"""


def test_notebooks_share_the_colab_install_cell():
    """Every notebook's first code cell clones the one repository (package and bundled data) in Colab."""
    url = CONFIG["repository"]["url"]
    expected = COLAB_INSTALL_CELL.format(url=url)
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert paths, "no notebooks found in notebooks/"
    for path in paths:
        nb = json.loads(path.read_text())
        first = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
        assert first is not None, f"{path.name} has no code cell"
        src = "".join(first["source"]).strip()
        clones = re.findall(r"git clone [^\n]*?(https://\S+)", src)
        assert clones == [url], f"{path.name}: the install cell must clone {url}, found {clones}"
        assert src == expected, f"{path.name}: the first code cell must be exactly the Colab install cell:\n{expected}"
