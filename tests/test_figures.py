"""The book's vector figures (book/images/*.svg) and their generator, book/figures/make_figures.py.

- regenerating the figures into a temporary folder gives files identical to the committed ones, so the
  generator and the figures never drift apart;
- every SVG is well-formed XML with a viewBox and refers to nothing outside itself (no links, no fonts or
  images fetched from elsewhere), and stays small;
- every figure is used by the chapter it was drawn for (``FIGURE_PAGES``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "book", "images")
SCRIPT = os.path.join(ROOT, "book", "figures", "make_figures.py")

FIGURE_PAGES = {
    "channel_strip.svg": "notebooks/06_channel_strip_console.ipynb",
    "tcn_film.svg": "notebooks/09_neural_proxies.ipynb",
    "wave_u_net.svg": "notebooks/12_models.ipynb",
    "dmc.svg": "notebooks/12_models.ipynb",
    "style_models.svg": "notebooks/17_style_transfer_track.ipynb",
    "formulations.svg": "book/automatic_mixing.md",
}
"""Each figure and the page that shows it (paths from the repository root)."""

MAX_BYTES = 100_000
SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def _committed():
    return sorted(f for f in os.listdir(IMAGES) if f.endswith(".svg"))


def test_every_committed_svg_is_generated_and_mapped():
    assert _committed() == sorted(FIGURE_PAGES), (
        "book/images/*.svg and FIGURE_PAGES disagree; every SVG there is drawn by book/figures/make_figures.py "
        "and belongs to one page")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, SCRIPT, "--out", str(out)], check=True, cwd=ROOT, env=env,
                   capture_output=True, text=True, timeout=300)
    return out


@pytest.mark.parametrize("name", sorted(FIGURE_PAGES))
def test_regenerated_figure_is_identical(regenerated, name):
    new = (regenerated / name).read_bytes()
    with open(os.path.join(IMAGES, name), "rb") as f:
        old = f.read()
    assert new == old, (f"book/images/{name} differs from what book/figures/make_figures.py draws now; "
                        "run `python book/figures/make_figures.py` and commit the result")


@pytest.mark.parametrize("name", sorted(FIGURE_PAGES))
def test_svg_is_self_contained(name):
    path = os.path.join(IMAGES, name)
    assert os.path.getsize(path) < MAX_BYTES, f"{name} is {os.path.getsize(path)} bytes (limit {MAX_BYTES})"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    root = ET.fromstring(text.encode("utf-8"))  # well-formed XML
    assert root.tag == SVG_NS + "svg"
    view = root.get("viewBox", "").split()
    assert len(view) == 4 and float(view[2]) > 0 and float(view[3]) > 0, f"{name} has no usable viewBox"
    assert "<!DOCTYPE" not in text, f"{name} refers to an external DTD"
    for el in root.iter():
        for attr in ("href", XLINK_HREF, "src"):
            ref = el.get(attr)
            assert ref is None or ref.startswith("#"), f"{name}: <{el.tag}> refers to {ref!r}"
        assert el.tag not in (SVG_NS + "image", SVG_NS + "foreignObject", SVG_NS + "script"), \
            f"{name} contains a <{el.tag}> element"
    for style in re.findall(r"<style[^>]*>(.*?)</style>", text, flags=re.S) + re.findall(r'style="([^"]*)"', text):
        assert "@import" not in style and "@font-face" not in style, f"{name} loads a font or a stylesheet"
        assert not re.search(r"url\(\s*['\"]?(?!#)", style), f"{name} has a url() to something outside the file"


@pytest.mark.parametrize("name", sorted(FIGURE_PAGES))
def test_figure_is_used_by_its_page(name):
    page = os.path.join(ROOT, FIGURE_PAGES[name])
    with open(page, encoding="utf-8") as f:
        text = f.read()
    assert f"images/{name}" in text, f"{FIGURE_PAGES[name]} does not show book/images/{name}"
