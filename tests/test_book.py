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

from conftest import BOOK_CONFIG as CONFIG, BOOK_OUT as OUT  # what the session build uses

ROOT = Path(__file__).resolve().parents[1]
HTML = OUT / "_build" / "html"
TOC = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
PAGE_LIMIT_BYTES = 3 * 1024 * 1024


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


NOTEBOOKS = [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]
AUDIO_PAGES = [f for f in NOTEBOOKS if "02_" in f or "03_" in f or "04_" in f or "05_" in f or "06_" in f]


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
        # The exercises' hidden solution cells are checked per notebook in tests/test_exercises.py.


def test_every_chapter_is_in_the_toc_and_none_is_planned():
    """Every notebook is a chapter of the book, and the welcome page and the README show no chapter as planned."""
    listed = set(toc_files())
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is not in book/_toc.yml"
    for page in ("book/welcome.md", "README.md"):
        text = (ROOT / page).read_text()
        assert "planned" not in text.lower(), f"{page} still shows a chapter as planned"


COLAB_INSTALL_CELL = """import os, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository (package and bundled data) once
    if not os.path.isdir("automix-lite"):
        !git clone --quiet --depth 1 {url}
    %pip install -q "./automix-lite[notebooks]"
    os.environ["AUTOMIX_DATA"] = os.path.abspath("automix-lite/data")"""


def colab_cell(nb: dict) -> dict:
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def test_notebooks_share_the_colab_install_cell():
    """Every notebook's first code cell clones the one repository (package and bundled data) in Colab; the
    built book hides it (tag ``remove-cell``), the notebook keeps it."""
    url = CONFIG["repository"]["url"]
    expected = COLAB_INSTALL_CELL.format(url=url)
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert paths, "no notebooks found in notebooks/"
    for path in paths:
        nb = json.loads(path.read_text())
        first = colab_cell(nb)
        src = "".join(first["source"]).strip()
        clones = re.findall(r"git clone [^\n]*?(https://\S+)", src)
        assert clones == [url], f"{path.name}: the install cell must clone {url}, found {clones}"
        assert src == expected, f"{path.name}: the first code cell must be exactly the Colab install cell:\n{expected}"
        assert "remove-cell" in first["metadata"].get("tags", []), f"{path.name}: tag the Colab cell remove-cell"


def _imports(source: str) -> set:
    """Top-level modules imported by Python source with IPython magics (lines starting ! or %) blanked."""
    import ast

    lines = [re.sub(r"^(\s*)[!%].*$", r"\1pass", line) for line in source.splitlines()]
    found = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


OPTIONAL_IMPORTS = {"torchaudio": "optional cross-check that skips when absent (CURRICULUM.md)"}


def test_colab_install_covers_every_notebook_import():
    """What the notebooks import (and what the package imports lazily for them) is installed by the Colab
    cell: the package's dependencies plus its ``[notebooks]`` extra. Colab's own preinstalled packages do
    not count, so the notebooks keep working whatever Colab ships."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = re.search(r'\[(\w+)\]', COLAB_INSTALL_CELL).group(1)
    wanted = project["dependencies"] + project["optional-dependencies"][extra]
    installed = {Requirement(r).name.lower().replace("_", "-") for r in wanted}
    needed = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        needed |= _imports("\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"))
    for path in (ROOT / "automix_lite").rglob("*.py"):
        needed |= _imports(path.read_text())
    dists = md.packages_distributions()
    missing = []
    for module in sorted(needed - set(sys.stdlib_module_names) - {"automix_lite", "__future__"}):
        if module in OPTIONAL_IMPORTS or module == "IPython":  # IPython is the notebook kernel itself
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & installed:
            missing.append(f"{module} (from {sorted(names)})")
    assert not missing, f"the Colab route (dependencies + [{extra}]) does not install: {missing}"


def test_colab_cell_is_hidden_in_the_book(book):
    for name in NOTEBOOKS:
        assert "google.colab" not in page(name), f"{name}: the Colab set-up cell shows in the built page"


def test_tables_render_as_tables(book):
    """A display(Markdown(table)) output must become a <table>, never a paragraph of pipe-table text."""
    pipe_paragraph = re.compile(r"<p>\s*\|[^<]*\|[^<]*\|\s*-{3}", re.S)
    for name in NOTEBOOKS:
        text = page(name)
        assert not pipe_paragraph.search(text), f"{name}: a pipe table is shown as raw text"
    assert page("notebooks/13_training").count("<table") >= 2, "chapter 3.3 lost its results tables"


def test_pages_stay_small(book):
    for path in HTML.rglob("*.html"):
        size = path.stat().st_size
        assert size < PAGE_LIMIT_BYTES, f"{path.relative_to(HTML)} is {size / 2**20:.1f} MB (limit 3 MB)"


def test_pages_load_nothing_from_the_network(book):
    """Scripts, styles and fonts come from the build: no <script src> or stylesheet from another host."""
    remote = re.compile(r'<(?:script[^>]*\ssrc|link[^>]*rel="(?:stylesheet|preload)"[^>]*\shref)="(?:https?:)?//', re.I)
    for path in HTML.rglob("*.html"):
        hit = remote.search(path.read_text(encoding="utf-8"))
        assert hit is None, f"{path.relative_to(HTML)} loads {hit.group(0)!r} from the network"


def test_the_listening_test_of_chapter_4_2_is_served_next_to_its_page(book):
    """Chapter 4.2 writes a listening test into AUTOMIX_BOOK_EXTRA; the build copies it into the HTML, where the
    chapter's link points."""
    index = HTML / "listening-test" / "index.html"
    assert index.is_file(), "the book has no listening-test/index.html"
    assert 'href="../listening-test/index.html"' in page("notebooks/16_listening_tests")
    assert list((HTML / "listening-test").rglob("*.wav")), "the listening test has no stimuli"


def test_widget_cells_have_a_static_copy(book):
    """Every saved widget view is followed by a static copy of its initial state (book/_ext/automix_book.py)."""
    view = '<script type="application/vnd.jupyter.widget-view+json">'
    for name in NOTEBOOKS:
        text = page(name)
        for chunk in text.split(view)[1:]:
            after = chunk.split("</script>", 1)[1][:200]
            assert after.startswith('<div class="automix-widget-static">'), f"{name}: a widget has no static copy"


def test_a_cell_that_reaches_its_timeout_fails_the_build(tmp_path):
    """A cell that runs past the cell timeout fails the build instead of being waited out silently."""
    jb = Path(sys.executable).with_name("jupyter-book")
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# slow"]},
                    {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": ["import time\n", "time.sleep(30)"]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "slow.ipynb").write_text(json.dumps(nb))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: slow\n")
    cfg = {"title": "t", "execute": {"execute_notebooks": "force", "timeout": 3},
           "sphinx": {"local_extensions": {"automix_book": str(ROOT / "book" / "_ext")},
                      "config": {"nb_execution_raise_on_error": True}}}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    proc = subprocess.run([str(jb), "build", str(tmp_path), "--keep-going"], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode != 0, "a cell past its timeout did not fail the build"
    assert "CellTimeoutError" in proc.stdout + proc.stderr or "timed out" in (proc.stdout + proc.stderr).lower()
    assert time.perf_counter() - start < 120


def _chromium() -> str:
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("headless Chromium not found: `apt-get update && apt-get install -y chromium` (Debian), "
                    "or set CHROMIUM=/path/to/chromium")
    return exe


class _Quiet:
    def log_message(self, *args, **kwargs):
        pass


def _serve(directory: Path, blocked: str | None = None) -> tuple:
    """Serve ``directory`` on 127.0.0.1 (paths containing ``blocked`` answer 404); returns (url, server)."""
    import http.server
    import threading

    class Handler(_Quiet, http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            if blocked and blocked in self.path:
                self.send_error(404)
            else:
                super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture(scope="module")
def served_book(book):
    """The built HTML served on 127.0.0.1 (a real browser reads it as a reader's would)."""
    url, server = _serve(HTML)
    yield url
    server.shutdown()


def _dom(url: str, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with every other host unreachable."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
           "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path}",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=10000", "--dump-dom"]
    proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "</html>" in proc.stdout, f"chromium failed on {url}: {proc.stderr[-2000:]}"
    return proc.stdout


def test_offline_browser_typesets_math_and_draws_every_widget(served_book, tmp_path):
    """Headless Chromium, no network: MathJax (served by the build) typesets every formula, and every
    widget cell shows its live widget drawn from the saved state (the static copy hidden)."""
    view = '<script type="application/vnd.jupyter.widget-view+json">'
    for k, name in enumerate(NOTEBOOKS + ["book/automatic_mixing"]):
        source = page(name)
        has_math = 'class="math' in source
        has_widgets = view in source
        if not (has_math or has_widgets):
            continue
        dom = _dom(f"{served_book}/{name}.html", tmp_path / f"profile{k}")
        if has_math:
            assert "<mjx-container" in dom, f"{name}: math was not typeset (MathJax did not load)"
            assert "<mjx-merror" not in dom, f"{name}: MathJax reports an error in a formula"
        if has_widgets:
            assert re.search(r"<html[^>]*automix-widgets-live", dom), f"{name}: the widget manager did not run"
            for chunk in dom.split(view)[:-1]:
                output = chunk.rsplit('<div class="cell_output', 1)[-1]
                assert "jupyter-widgets" in output, f"{name}: a widget cell shows no live widget"


def test_without_the_widget_manager_every_widget_cell_shows_its_static_copy(book, tmp_path):
    """If the widget JavaScript cannot load (here: the server refuses it), the static copies stay visible."""
    name = next(n for n in NOTEBOOKS if '<script type="application/vnd.jupyter.widget-view+json">' in page(n))
    url, server = _serve(HTML, blocked="/vendor/html-manager/")
    try:
        dom = _dom(f"{url}/{name}.html", tmp_path / "no-widgets")
    finally:
        server.shutdown()
    assert not re.search(r"<html[^>]*automix-widgets-live", dom), f"{name}: widgets drawn without their script?"
    assert re.search(r'automix-widget-static">.*?<img', dom, re.S), f"{name}: the static copy shows no figure"


def test_the_book_fixture_is_the_sessions_one():
    """Every test module gets conftest's session fixture: one defined or imported in a test module is a second
    fixture, and builds the whole book a second time (it did: test_exercises imported test_book's)."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^def book\(", text, re.M), f"{path.name} defines its own `book` fixture"
        assert not re.search(r"^from \S+ import [^\n]*\bbook\b", text, re.M), f"{path.name} imports a `book` fixture"
