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


def _figure_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _config(name):
    from automix_lite import train

    return train.load_config(os.path.join(ROOT, "configs", f"{name}.json"))


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_figure_numbers_are_the_bundled_models():
    """The sizes the figures print (make_figures' PROXY, WAVE_U_NET, STYLE_TRACK, STYLE_MIX) are those of the models
    the configs build, so a changed config fails here until the dicts and the SVGs are updated."""
    import torch.nn as nn

    from automix_lite import train
    from automix_lite.models import style, style_mix

    fig = _figure_module()
    P, U, S, M = fig.PROXY, fig.WAVE_U_NET, fig.STYLE_TRACK, fig.STYLE_MIX

    proxy = train.build_model(_config("proxy_cpu"))
    convs = [b.conv for b in proxy.blocks]
    linears = [m for m in proxy.generator if isinstance(m, nn.Linear)]
    assert (len(proxy.blocks), convs[0].kernel_size[0], convs[0].out_channels) == (P["n_blocks"], P["kernel"], P["channels"])
    assert [c.dilation[0] for c in convs] == [P["growth"] ** i for i in range(P["n_blocks"])]
    assert (proxy.cond_dim, tuple(m.out_features for m in linears)) == (P["cond"], P["hidden"])
    assert (proxy.receptive_field, _n_params(proxy)) == (P["rf"], P["n_params"])

    cfg = _config("wave_u_net_drums")
    unet = train.build_model(cfg)
    assert (cfg["max_tracks"], cfg["model_args"]["depth"], cfg["model_args"]["channels"], cfg["model_args"]["growth"]) \
        == (U["n_tracks"], U["depth"], U["channels"], U["growth"])
    kernels = {m.kernel_size[0] for m in unet.modules() if isinstance(m, nn.Conv1d) and m.kernel_size[0] > 1}
    assert kernels == {U["k_down"], U["k_up"]} and _n_params(unet) == U["n_params"]

    cfg = _config("style_track")
    track = style.build_model(cfg)
    assert {k: cfg[k] for k in ("n_mels", "channels", "embed_dim", "hidden", "param_weight", "corrupt_prob")} \
        == {k: S[k] for k in ("n_mels", "channels", "embed_dim", "hidden", "param_weight", "corrupt_prob")}
    first, last = track.controller[0], track.controller[-1]
    assert (first.in_features, first.out_features, last.out_features) == (3 * (S["embed_dim"] + 2 * S["n_mels"]),
                                                                        S["hidden"], S["controls"])

    cfg = _config("style_mix")
    mix = style_mix.build_model(cfg)
    assert (cfg["n_mels"], tuple(cfg["widths"]), cfg["dim"], cfg["layers"], cfg["heads"], cfg["param_weight"],
            tuple(cfg["fractions"])) == (M["n_mels"], M["widths"], M["dim"], M["layers"], M["heads"],
                                         M["param_weight"], M["fractions"])
    assert mix.track_head[-1].out_features == M["track_controls"] and len(mix.transformer.layers) == M["layers"]
