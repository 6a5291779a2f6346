"""Draw the book's architecture and signal-flow figures as SVG into ``book/images/``.

    python book/figures/make_figures.py            # writes book/images/<name>.svg
    python book/figures/make_figures.py --out DIR  # writes them into DIR instead (the test compares the two)

matplotlib only. The figures show what the package implements, with the numbers of the bundled configs:

- ``channel_strip.svg``  ``automix_lite.dsp.console``: the strip's order (gain, high-pass, EQ, compressor, pan,
  post-pan send), the console (N strips summed to a stereo bus, one reverb on a send bus) and an insert reverb;
- ``tcn_film.svg``       ``automix_lite.models.tcn.TCN`` as built by ``models.proxy.build_model`` from
  ``configs/proxy_cpu.json`` (TCN-10, 16 channels, kernel 7, direct path);
- ``wave_u_net.svg``     ``automix_lite.models.wave_u_net.MixWaveUNet`` with ``configs/wave_u_net_drums.json``;
- ``dmc.svg``            ``automix_lite.models.dmc.DMC`` (encoder, context, post-processor, consoles);
- ``style_models.svg``   ``automix_lite.models.style.StyleTransfer`` (``configs/style_track.json``) and
  ``automix_lite.models.style_mix.MixStyleTransfer`` (``configs/style_mix.json``);
- ``formulations.svg``   the formulations of ``book/automatic_mixing.md`` ("Deep learning"): direct
  transformation, and parameter estimation with a parameter loss or an audio loss.

The models' numbers sit in the dicts ``PROXY``, ``WAVE_U_NET``, ``STYLE_TRACK`` and ``STYLE_MIX`` (the script needs
matplotlib only, not torch); ``tests/test_figures.py`` builds each model from its config and checks those numbers
against it, and checks that the committed SVGs are what this script writes, so a changed config or a changed
figure fails a test until the figures are drawn again.

Output is deterministic (fixed ``svg.hashsalt``, no date in the metadata), text stays text
(``svg.fonttype: none``, DejaVu Sans with Arial / Helvetica / sans-serif as fallbacks, all narrower, so the text
still fits its boxes), and every figure lies on its own white rounded card with dark text, so it reads the same
in the book's light and dark themes (pydata-sphinx-theme gives images a white background in dark mode anyway).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "images"))

RC = {
    "svg.hashsalt": "automix-lite-figures",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": 9,
    "text.color": "#1a1a1a",
    "path.simplify": False,
    "svg.image_inline": True,
}

INK = "#1a1a1a"  # text and arrows
MUTED = "#555555"  # secondary text
CARD_EDGE = "#c8c8c8"

# one colour per kind of box: (fill, edge)
KINDS = {
    "dsp": ("#cfe2f6", "#3a6ea5"),  # DSP processor (console, effect)
    "nn": ("#fbdcb4", "#b8701f"),  # neural-network block (trained weights)
    "bus": ("#cdebc6", "#3d8a36"),  # sum / bus
    "signal": ("#e4def2", "#6a5a9c"),  # audio signal (input, output, reference)
    "param": ("#fbf0b8", "#a3861a"),  # parameters / controls / embeddings
    "loss": ("#f6d0d4", "#b0414e"),  # loss / training signal
    "plain": ("#f2f2f2", "#8a8a8a"),  # anything else (notes)
}
LEGEND_NAMES = {"signal": "audio signal", "dsp": "DSP processor", "nn": "neural network (trained)",
                "param": "parameters / embedding", "bus": "sum / bus", "loss": "loss / training signal"}


# --------------------------------------------------------------------------------------------
# Drawing helpers (coordinates in inches: the axes span the figure, 1 unit = 1 inch)
# --------------------------------------------------------------------------------------------


class Box:
    def __init__(self, cx, cy, w, h):
        self.cx, self.cy, self.w, self.h = cx, cy, w, h

    @property
    def l(self):  # noqa: E743
        return (self.cx - self.w / 2, self.cy)

    @property
    def r(self):
        return (self.cx + self.w / 2, self.cy)

    @property
    def t(self):
        return (self.cx, self.cy + self.h / 2)

    @property
    def b(self):
        return (self.cx, self.cy - self.h / 2)

    def at(self, fx, fy):
        """A point at fractions (fx, fy) of the box, (0, 0) = lower left."""
        return (self.cx - self.w / 2 + fx * self.w, self.cy - self.h / 2 + fy * self.h)


def canvas(w, h, title=None, subtitle=None):
    """A figure of w x h inches on a white rounded card; returns (fig, ax)."""
    fig = plt.figure(figsize=(w, h))
    fig.patch.set_alpha(0.0)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.06, 0.06), w - 0.12, h - 0.12, boxstyle="round,pad=0,rounding_size=0.14",
                                fc="white", ec=CARD_EDGE, lw=0.8, zorder=0))
    if title:
        ax.text(0.3, h - 0.3, title, ha="left", va="top", fontsize=11.5, fontweight="bold", color=INK)
    if subtitle:
        ax.text(0.3, h - 0.56, subtitle, ha="left", va="top", fontsize=8.5, color=MUTED)
    return fig, ax


def box(ax, cx, cy, w, h, text="", kind="dsp", fs=8.5, title=None, tfs=None, lw=1.1, ls="-", zorder=3,
        align="center", rounding=0.07):
    """A rounded box centred at (cx, cy); ``title`` in bold above ``text`` (both centred)."""
    fc, ec = KINDS[kind]
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={rounding}",
                                fc=fc, ec=ec, lw=lw, ls=ls, zorder=zorder))
    x = cx if align == "center" else cx - w / 2 + 0.08
    if title and text:
        top = cy + h / 2 - 0.07
        ax.text(x, top, title, ha=align, va="top", fontsize=tfs or fs + 0.5, fontweight="bold", color=INK,
                zorder=zorder + 1)
        below = top - (tfs or fs + 0.5) / 72 * 1.3  # the text is centred in the space under the title
        ax.text(x, (below + cy - h / 2) / 2, text, ha=align, va="center", fontsize=fs, color=INK,
                zorder=zorder + 1, linespacing=1.25)
    elif title:
        ax.text(x, cy, title, ha=align, va="center", fontsize=tfs or fs + 0.5, fontweight="bold", color=INK,
                zorder=zorder + 1)
    elif text:
        ax.text(x, cy, text, ha=align, va="center", fontsize=fs, color=INK, zorder=zorder + 1, linespacing=1.25)
    return Box(cx, cy, w, h)


def arrow(ax, *points, color=INK, lw=1.1, ls="-", head=True, zorder=2, ms=9):
    """A polyline through ``points`` with an arrowhead at the end."""
    pts = list(points)
    for a, b in zip(pts[:-2], pts[1:-1]):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=color, lw=lw, ls=ls, solid_capstyle="butt", zorder=zorder)
    ax.add_patch(FancyArrowPatch(pts[-2], pts[-1], arrowstyle="-|>" if head else "-", mutation_scale=ms, lw=lw,
                                 color=color, ls=ls, shrinkA=0, shrinkB=0, zorder=zorder))


def node(ax, cx, cy, r=0.17, text="Σ", kind="bus", fs=11):
    fc, ec = KINDS[kind]
    ax.add_patch(Circle((cx, cy), r, fc=fc, ec=ec, lw=1.2, zorder=3))
    ax.text(cx, cy, text, ha="center", va="center", fontsize=fs, color=INK, zorder=4)
    return Box(cx, cy, 2 * r, 2 * r)


def label(ax, x, y, text, fs=7.5, color=MUTED, ha="center", va="center", **kw):
    return ax.text(x, y, text, ha=ha, va=va, fontsize=fs, color=color, zorder=5, linespacing=1.2, **kw)


def bracket(ax, x0, x1, y, text, up=True, fs=8, color=INK):
    """A square bracket from x0 to x1 at height y, with ``text`` beyond it."""
    s = 0.08 if up else -0.08
    ax.plot([x0, x0, x1, x1], [y - s, y, y, y - s], color=color, lw=1.0, zorder=4)
    ax.text((x0 + x1) / 2, y + s * 0.9, text, ha="center", va="bottom" if up else "top", fontsize=fs, color=color,
            fontweight="bold", zorder=5)


def dot(ax, x, y, color=INK, r=0.035):
    ax.add_patch(Circle((x, y), r, fc=color, ec=color, zorder=4))


def legend(ax, x, y, kinds, fs=7.5, gap=0.25):
    """A row of colour swatches starting at (x, y)."""
    for k in kinds:
        fc, ec = KINDS[k]
        ax.add_patch(FancyBboxPatch((x, y - 0.07), 0.24, 0.14, boxstyle="round,pad=0,rounding_size=0.03", fc=fc,
                                    ec=ec, lw=0.9, zorder=3))
        t = LEGEND_NAMES[k]
        ax.text(x + 0.31, y, t, ha="left", va="center", fontsize=fs, color=INK)
        x += 0.31 + 0.062 * fs / 7.5 * len(t) + gap


def panel_title(ax, x, y, text, fs=9.5):
    ax.text(x, y, text, ha="left", va="center", fontsize=fs, fontweight="bold", color=INK)


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Title": name[:-4]}, facecolor="none")
    plt.close(fig)
    svg = buf.getvalue()
    # no DOCTYPE (an external DTD) and no RDF metadata block: the file refers to nothing outside itself
    svg = re.sub(r"<!DOCTYPE[^>]*>\n", "", svg)
    svg = re.sub(r" <metadata>.*?</metadata>\n", "", svg, flags=re.S)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(svg)
    return path


# --------------------------------------------------------------------------------------------
# 1. Channel strip and console
# --------------------------------------------------------------------------------------------


def fig_channel_strip(out_dir):
    import matplotlib.patheffects as pe

    W, H = 10.0, 8.3
    fig, ax = canvas(W, H, "The channel strip and the console of automix_lite.dsp",
                     "Processing order as in dsp.console.channel_strip and dsp.console.mix; parameter names "
                     "are those of console.SPECS")

    # A: one strip ----------------------------------------------------------------------------
    panel_title(ax, 0.3, 7.42, "A   One channel strip, in the code's order")
    y = 6.55
    x_in = box(ax, 0.85, y, 0.95, 0.62, "mono\ntrack xₙ", "signal")
    g = box(ax, 2.05, y, 0.98, 0.78, "gain_db\n(trim + fader)", "dsp", title="gain")
    hp = box(ax, 3.33, y, 1.22, 0.78, "2nd order, Q 0.707\nhighpass_cutoff_hz", "dsp", title="high-pass", fs=7.5)
    eq = box(ax, 4.88, y, 1.52, 0.78, "low shelf, 3 peaking\nbands, high shelf", "dsp", title="parametric EQ",
             fs=7.5)
    co = box(ax, 6.47, y, 1.3, 0.78, "threshold, ratio, attack,\nrelease, knee, make-up", "dsp",
             title="compressor", fs=7.0)
    pn = box(ax, 7.84, y, 1.07, 0.78, "−4.5 dB law\nmono → stereo", "dsp", title="pan", fs=7.5)
    out = box(ax, 9.28, y, 0.86, 0.62, "stereo\nout yₙ", "signal")
    for a, b in ((x_in, g), (g, hp), (hp, eq), (eq, co), (co, pn)):
        arrow(ax, a.r, b.l)
    tap = 8.63
    arrow(ax, pn.r, out.l, lw=1.8)
    dot(ax, tap, y)
    snd = box(ax, tap, 5.55, 1.0, 0.52, "reverb_send_db", "dsp", title="send level", fs=7.5)
    arrow(ax, (tap, y), snd.t)
    arrow(ax, snd.r, (snd.r[0] + 0.22, snd.cy))
    label(ax, snd.r[0] + 0.26, snd.cy, "send\nσₙ yₙ\n→ reverb\n    bus", fs=7.2, ha="left", color=INK)
    label(ax, 9.28, 6.06, "→ master bus", fs=7)
    bracket(ax, hp.l[0] - 0.02, co.r[0] + 0.02, 7.08, "INSERTS: in series, they process the whole signal")
    label(ax, (hp.cx + eq.cx) / 2, 5.97, "high-pass + EQ: one cascade of 3 + 3 = 6 biquads", fs=7)
    ax.text(tap - 0.55, 5.55, "SEND:\npost-fader,\npost-pan tap", ha="right", va="center", fontsize=8,
            fontweight="bold", color=INK, linespacing=1.15)

    # B: the console --------------------------------------------------------------------------
    panel_title(ax, 0.3, 4.88, "B   The console: N strips summed to a stereo bus, one shared reverb on a send bus")
    rows = [(4.3, "1"), (3.68, "2"), (2.86, "N")]
    rev_x, mas_x = 4.45, 7.7
    bus_y = 1.95
    halo = [pe.withStroke(linewidth=5, foreground="white")]
    for yy, n in rows:
        t = box(ax, 0.75, yy, 0.8, 0.44, {"1": "x₁", "2": "x₂", "N": "x_N"}[n], "signal")
        s = box(ax, 2.25, yy, 1.75, 0.44, "gain → HP → EQ → comp → pan", "dsp", fs=7.2)
        ax.text(s.l[0] + 0.05, yy + 0.3, f"strip {n}", ha="left", va="bottom", fontsize=7, color=MUTED)
        arrow(ax, t.r, s.l)
        # the strip's stereo output passes over the reverb bus to the master bus
        ax.plot([s.r[0], mas_x - 0.02], [yy, yy], color=INK, lw=1.8, zorder=3, path_effects=halo)
        ax.add_patch(FancyArrowPatch((mas_x - 0.3, yy), (mas_x, yy), arrowstyle="-|>", mutation_scale=10, lw=1.8,
                                     color=INK, shrinkA=0, shrinkB=0, zorder=3))
        tx = 3.4
        dot(ax, tx, yy)
        sb = box(ax, 3.92, yy - 0.3, 0.62, 0.26, f"send {n}", "dsp", fs=6.8)
        arrow(ax, (tx, yy), (tx, yy - 0.3), sb.l, lw=0.9)
        arrow(ax, sb.r, (rev_x, yy - 0.3), lw=0.9, ms=7)
    label(ax, 0.75, 3.28, "⋮", fs=12, color=INK)
    label(ax, 2.25, 3.28, "⋮", fs=12, color=INK)
    # buses (vertical lines)
    ax.plot([rev_x, rev_x], [rows[0][0] - 0.3 + 0.12, bus_y + 0.19], color=KINDS["bus"][1], lw=3.2, zorder=2,
            solid_capstyle="butt")
    ax.plot([mas_x, mas_x], [rows[0][0] + 0.12, bus_y + 0.19], color=KINDS["bus"][1], lw=3.2, zorder=2,
            solid_capstyle="butt")
    label(ax, rev_x + 0.08, 4.58, "reverb bus\n(stereo)", fs=7.5, color=KINDS["bus"][1], ha="left",
          fontweight="bold")
    label(ax, mas_x - 0.08, 4.58, "master bus\n(stereo)", fs=7.5, color=KINDS["bus"][1], ha="right",
          fontweight="bold")
    rs = node(ax, rev_x, bus_y, text="Σ")
    ms = node(ax, mas_x, bus_y, text="Σ")
    rv = box(ax, 5.4, bus_y - 0.85, 1.45, 0.72, "stereo IR, reverb_t60_s\n100 % wet, fixed seed", "dsp",
             title="reverb", fs=7.2)
    rt = box(ax, 6.85, bus_y - 0.85, 1.05, 0.72, "reverb_\nreturn_db", "dsp", title="return", fs=7.2)
    arrow(ax, rs.b, (rev_x, rv.cy), rv.l)
    arrow(ax, rv.r, rt.l)
    arrow(ax, rt.r, (mas_x, rt.cy), ms.b)
    mg = box(ax, 8.75, bus_y, 1.05, 0.62, "master_gain_db", "dsp", title="master gain", fs=7.2)
    arrow(ax, ms.r, mg.l, lw=1.8)
    mix = box(ax, 9.5, bus_y - 0.85, 0.58, 0.5, "mix\n(2, T)", "signal", fs=7.5)
    arrow(ax, mg.b, (mg.cx, mix.cy), mix.l, lw=1.8)
    label(ax, 0.3, 1.12, "master = g_master · ( Σₙ yₙ  +  g_return · h ⊛ Σₙ σₙ yₙ )", fs=8.5, color=INK,
          ha="left")
    label(ax, 0.3, 0.86, "one convolution for all tracks:\nh ⊛ Σₙ σₙ yₙ = Σₙ h ⊛ σₙ yₙ", fs=7.3,
          ha="left",
          va="top")

    # for contrast: a reverb as an insert
    ax.add_patch(FancyBboxPatch((0.3, 1.42), 3.22, 1.0, boxstyle="round,pad=0,rounding_size=0.06", fc="none",
                                ec=CARD_EDGE, lw=0.9, ls="--", zorder=1))
    label(ax, 0.42, 2.2,
          "For contrast: a reverb as an INSERT, in series in\neach strip (the neural proxy's chain, ch. 2.4)",
          fs=7, ha="left", color=INK)
    cy, x = 1.7, 0.42
    parts = [("xₙ", "signal", 0.32), ("EQ", "dsp", 0.48), ("comp", "dsp", 0.56), ("reverb\nwet / dry", "dsp", 0.74),
             ("y", "signal", 0.28)]
    gap = (3.4 - x - sum(w for _, _, w in parts)) / (len(parts) - 1)
    xs = []
    for text, kind, w in parts:
        xs.append(box(ax, x + w / 2, cy, w, 0.36 if "\n" in text else 0.3, text, kind, fs=6.8))
        x += w + gap
    for a_, b_ in zip(xs[:-1], xs[1:]):
        arrow(ax, a_.r, b_.l, ms=7)

    legend(ax, 0.3, 0.3, ["signal", "dsp", "bus"])
    return save(fig, out_dir, "channel_strip.svg")



# --------------------------------------------------------------------------------------------
# 2. TCN with FiLM (the bundled channel-chain proxy)
# --------------------------------------------------------------------------------------------

PROXY = dict(n_blocks=10, kernel=7, channels=16, growth=2, cond=22, hidden=(16, 32, 32), rf=6139, n_params=29147)
"""configs/proxy_cpu.json through models.proxy.build_model: preset tcn10 with channels 16, kernel_size 7, direct;
cond_dim = proxy.N_PARAMS = 22; receptive field and parameter count as the model reports them."""


def fig_tcn_film(out_dir):
    P = PROXY
    W, H = 10.0, 6.9
    fig, ax = canvas(W, H, "The neural proxy: a FiLM-conditioned TCN (models.tcn.TCN)",
                     f"As bundled (configs/proxy_cpu.json): TCN-10, {P['channels']} channels, kernel {P['kernel']}, "
                     f"direct path; receptive field {P['rf']} samples ({P['rf'] / 44.1:.1f} ms at 44.1 kHz), "
                     f"{P['n_params']:,} parameters")
    # conditioning
    cy = 5.72
    pb = box(ax, 1.05, cy, 1.5, 0.62, f"{P['cond']} chain controls\nnormalised to [−1, 1]", "param",
             title="parameters p", fs=7.3)
    gen = box(ax, 3.05, cy, 1.95, 0.62, "MLP " + " → ".join(map(str, (P["cond"],) + P["hidden"])) + ", ReLU",
              "nn", title="FiLM generator", fs=7.5)
    e = box(ax, 4.6, cy, 0.62, 0.46, f"e\n({P['hidden'][-1]})", "param", fs=7.5)
    arrow(ax, pb.r, gen.l)
    arrow(ax, gen.r, e.l)
    # blocks
    by = 4.35
    x_in = box(ax, 0.72, by, 0.8, 0.56, "x (1 ch)\nT samples", "signal", fs=7.5)
    pitch, bw, x0 = 0.66, 0.56, 1.7
    blocks = []
    for i in range(P["n_blocks"]):
        d = P["growth"] ** i
        text = f"d = {d}" + (f"\n1 → {P['channels']} ch" if i == 0 else "")
        blocks.append(box(ax, x0 + i * pitch, by, bw, 0.66, text, "nn", title=f"block {i + 1}", fs=6.6 if i == 0 else 7,
                          tfs=7))
    arrow(ax, x_in.r, blocks[0].l)
    for a, b in zip(blocks[:-1], blocks[1:]):
        arrow(ax, a.r, b.l, ms=7)
    # FiLM line from e to every block
    line_y = cy - 0.62
    ax.plot([e.cx, e.cx], [e.b[1], line_y], color=KINDS["param"][1], lw=1.3, zorder=2)
    ax.plot([blocks[0].cx, blocks[-1].cx], [line_y, line_y], color=KINDS["param"][1], lw=1.3, zorder=2)
    for b in blocks:
        arrow(ax, (b.cx, line_y), b.t, color=KINDS["param"][1], lw=1.0, ms=7)
    label(ax, blocks[-1].cx + 0.05, line_y + 0.14, "e to every block; block i's own linear\nadaptor makes γᵢ, βᵢ "
          f"({P['channels']} each)", fs=6.8, ha="right", va="bottom", color=KINDS["param"][1])
    # skips
    sk_y = 3.45
    for b in blocks:
        arrow(ax, b.b, (b.cx, sk_y + 0.03), lw=0.9, ms=6)
    sum_x = 8.6
    ax.plot([blocks[0].cx, sum_x - 0.17], [sk_y, sk_y], color=INK, lw=1.1, zorder=2)
    ss = node(ax, sum_x, sk_y, text="Σ")
    label(ax, blocks[0].cx - 0.05, sk_y - 0.16, "skips: every block's output, centre-cropped to the final length",
          fs=6.8, ha="left")
    oc = box(ax, sum_x, 4.35, 0.95, 0.56, f"1×1 conv\n{P['channels']} → 1", "nn", fs=7.5)
    arrow(ax, ss.t, oc.b)
    add = node(ax, 9.45, 4.35, r=0.15, text="+")
    arrow(ax, oc.r, add.l)
    yb = box(ax, 9.3, 5.3, 0.92, 0.56, f"y (1 ch)\nT − {P['rf'] - 1}", "signal", fs=7.3)
    arrow(ax, add.t, (add.cx, yb.b[1]))
    # direct path
    dp_y = 2.95
    arrow(ax, x_in.b, (x_in.cx, dp_y), (add.cx, dp_y), add.b, lw=1.0)
    label(ax, 1.0, dp_y + 0.12, "direct path: + centre-cropped x (the untrained network is the identity)", fs=6.8,
          ha="left")

    # one block in detail
    ax.add_patch(FancyBboxPatch((0.3, 0.62), 9.4, 1.95, boxstyle="round,pad=0,rounding_size=0.08", fc="none",
                                ec=CARD_EDGE, lw=0.9, ls="--", zorder=1))
    panel_title(ax, 0.42, 2.38, "Inside block i (TCNBlock)", fs=8.5)
    ry = 1.6
    hin = box(ax, 0.85, ry, 0.8, 0.5, f"h ({P['channels']} ch)", "signal", fs=7.3)
    conv = box(ax, 2.2, ry, 1.55, 0.62,
               f"kernel {P['kernel']}, dilation dᵢ\nnon-causal, unpadded: −{P['kernel'] - 1}·dᵢ",
               "nn", title="Conv1d", fs=6.9)
    bn = box(ax, 3.68, ry, 1.05, 0.62, "no affine", "nn", title="BatchNorm", fs=7)
    film = box(ax, 4.95, ry, 1.12, 0.62, "γᵢ ⊙ z + βᵢ", "nn", title="FiLM", fs=7.5)
    act = box(ax, 6.2, ry, 0.95, 0.62, f"{P['channels']} slopes", "nn", title="PReLU", fs=7)
    plus = node(ax, 7.15, ry, r=0.15, text="+")
    outb = box(ax, 8.45, ry, 1.6, 0.5, "to block i + 1 and\nto the skip sum", "signal", fs=7)
    for a, b in ((hin, conv), (conv, bn), (bn, film), (film, act)):
        arrow(ax, a.r, b.l, ms=7)
    arrow(ax, act.r, plus.l, ms=7)
    arrow(ax, plus.r, outb.l, ms=7)
    ad = box(ax, 6.2, 2.3, 1.45, 0.32, f"adaptor i: Linear {P['hidden'][-1]} → 2·{P['channels']}", "nn", fs=6.8)
    label(ax, 7.18, 2.3, "← e", fs=7.5, color=INK, ha="left")
    arrow(ax, ad.l, (film.cx, ad.cy), film.t, color=KINDS["param"][1], lw=1.0, ms=7)
    label(ax, film.cx - 0.08, 2.15, "γᵢ, βᵢ", fs=7, ha="right", color=KINDS["param"][1])
    res = box(ax, 4.3, 0.95, 3.3, 0.36, "residual: gᵢ · crop(res(h)),  gᵢ learned, clamped to [0, 1]", "nn",
              fs=6.9)
    arrow(ax, hin.b, (hin.cx, res.cy), res.l, ms=7)
    arrow(ax, res.r, (plus.cx, res.cy), plus.b, ms=7)
    label(ax, 6.1, 0.72, "res = 1×1 conv (1 → 16) in block 1, identity after", fs=6.6, ha="left")
    legend(ax, 0.3, 0.3, ["signal", "nn", "param", "bus"])
    return save(fig, out_dir, "tcn_film.svg")



# --------------------------------------------------------------------------------------------
# 3. Mix-Wave-U-Net
# --------------------------------------------------------------------------------------------

WAVE_U_NET = dict(n_tracks=8, depth=7, channels=12, growth=12, k_down=15, k_up=5, n_params=586890)
"""configs/wave_u_net_drums.json (model_args depth 7, channels 12, growth 12; n_tracks = max_tracks 8; kernels are
MixWaveUNet's defaults); the parameter count as the model reports it."""


def fig_wave_u_net(out_dir):
    U = WAVE_U_NET
    depth, n = U["depth"], U["n_tracks"]
    width = [U["channels"] + i * U["growth"] for i in range(depth + 1)]
    W, H = 10.0, 6.55
    fig, ax = canvas(W, H, "Mix-Wave-U-Net: mixing as direct transformation (models.wave_u_net.MixWaveUNet)",
                     f"As bundled (configs/wave_u_net_drums.json): {n} input tracks, depth {depth}, {U['channels']} "
                     f"channels growing by {U['growth']} per level; {U['n_params']:,} parameters")
    y0, dy, bh, bw, step = 4.77, 0.47, 0.34, 1.6, 0.18
    cy = [y0 - i * dy for i in range(depth + 1)]
    dx = [2.35 + i * step for i in range(depth)]
    ux = [7.0 - i * step for i in range(depth)]
    inp = box(ax, 0.78, cy[0], 0.95, 0.62, f"{n} tracks\nas channels\n({n}, T)", "signal", fs=7.2)
    down, up = [], []
    for i in range(depth):
        cin = n if i == 0 else width[i - 1]
        length = "T" if i == 0 else f"T/{2 ** i}"
        down.append(box(ax, dx[i], cy[i], bw, bh, f"{cin} → {width[i]} ch,  {length}", "nn", fs=7.3))
        up.append(box(ax, ux[i], cy[i], bw, bh, f"[{width[i + 1]} ‖ {width[i]}] → {width[i]} ch", "nn", fs=7.3))
    bott = box(ax, (dx[-1] + ux[-1]) / 2, cy[depth], ux[-1] - dx[-1] + 1.1, bh,
               f"bottleneck: {width[depth - 1]} → {width[depth]} ch,  T/{2 ** depth}",
               "nn", fs=7.3)
    arrow(ax, inp.r, down[0].l)
    for i in range(depth):
        # skip connection
        arrow(ax, down[i].r, up[i].l, color=KINDS["bus"][1], lw=1.1, ls="--", ms=8)
        nxt = down[i + 1] if i + 1 < depth else bott
        arrow(ax, (down[i].cx - 0.35, down[i].b[1]), (down[i].cx - 0.35, nxt.t[1]), ms=7)
        prv = up[i + 1] if i + 1 < depth else bott
        arrow(ax, (up[i].cx + 0.35, prv.t[1]), (up[i].cx + 0.35, up[i].b[1]), ms=7)
    label(ax, (down[0].r[0] + up[0].l[0]) / 2, cy[0] + 0.13, "skip: concatenated", fs=6.8, color=KINDS["bus"][1])
    label(ax, dx[0], cy[0] + 0.42,
          f"down block: conv k = {U['k_down']}, LeakyReLU 0.2,\nkept as the skip, then every 2nd sample (÷2)",
          fs=7, color=INK, va="bottom")
    label(ax, ux[0], cy[0] + 0.42,
          f"up block: ×2 linear upsampling, concatenate\nthe skip, conv k = {U['k_up']}, LeakyReLU 0.2", fs=7,
          color=INK, va="bottom")
    oc = box(ax, 8.65, cy[0], 1.2, 0.62, f"[{width[0]} ‖ {n}] = {width[0] + n}\n1×1 conv → 2", "nn", fs=7.2)
    arrow(ax, up[0].r, oc.l)
    top = 5.63
    arrow(ax, inp.t, (inp.cx, top), (oc.cx, top), oc.t, color=KINDS["bus"][1], ls="--", lw=1.1)
    label(ax, 4.7, top + 0.12, f"the input tracks, concatenated before the output layer", fs=6.8,
          color=KINDS["bus"][1])
    out = box(ax, 8.65, cy[2], 1.2, 0.62, "stereo mix\n(2, T)", "signal", fs=7.5)
    arrow(ax, oc.b, out.t, lw=1.6)
    label(ax, 0.35, 0.98, f"The input is zero-padded to a multiple of 2^{depth} = {2 ** depth} samples and the output "
          "cut back to T, so any length works. Absent tracks are silent rows (a fixed number and order of inputs).\n"
          "No console and no parameters: gain, pan, EQ, dynamics and reverb are all inside the weights, and the mix "
          "cannot be edited.", fs=7.3, ha="left", va="top", color=INK)
    legend(ax, 0.3, 0.35, ["signal", "nn"])
    ax.plot([3.75, 4.15], [0.35, 0.35], color=KINDS["bus"][1], lw=1.1, ls="--")
    label(ax, 4.22, 0.35, "skip connection", fs=7.5, ha="left", color=INK)
    return save(fig, out_dir, "wave_u_net.svg")



# --------------------------------------------------------------------------------------------
# 4. Differentiable Mixing Console
# --------------------------------------------------------------------------------------------


def fig_dmc(out_dir):
    W, H = 10.0, 6.75
    fig, ax = canvas(W, H, "The Differentiable Mixing Console (models.dmc.DMC): parameter estimation",
                     "One encoder and one post-processor for every track (shared weights); the context is a mean, so "
                     "the order of the tracks does not matter")
    rows = [(5.05, "₁"), (4.35, "₂"), (3.35, "_N")]
    xe, xc, xm, xp, xcon = 1.75, 3.25, 4.0, 5.05, 7.35
    ctx_y = 2.55
    halo_rows = []
    for yy, k in rows:
        xb = box(ax, 0.72, yy, 0.58, 0.44, f"x{k}", "signal", fs=8.5)
        en = box(ax, xe, yy, 1.0, 0.44, "encoder", "nn", fs=7.8)
        eb = box(ax, 2.62, yy, 0.5, 0.38, f"e{k}", "param", fs=8)
        cat = node(ax, xm, yy, r=0.13, text="‖", kind="param", fs=8)
        mlp = box(ax, xp, yy, 1.2, 0.44, "post-processor", "nn", fs=7.5)
        pb = box(ax, 6.2, yy, 0.55, 0.44, f"p{k}", "param", fs=8)
        arrow(ax, xb.r, en.l)
        arrow(ax, en.r, eb.l)
        arrow(ax, eb.r, cat.l)
        arrow(ax, cat.r, mlp.l)
        arrow(ax, mlp.r, pb.l)
        arrow(ax, pb.r, (xcon - 0.6, yy))
        dot(ax, xc, yy)
        halo_rows.append(yy)
    for xx in (0.72, xe, 2.62, xp, 6.2):
        label(ax, xx, 3.88, "⋮", fs=12, color=INK)
    # context: masked mean over the tracks
    ax.plot([xc, xc], [rows[0][0], ctx_y + 0.2], color=INK, lw=1.1, zorder=2)
    for yy in halo_rows:
        ax.add_patch(FancyArrowPatch((xc, yy), (xc, yy - 0.28), arrowstyle="-|>", mutation_scale=7, lw=1.1,
                                     color=INK, shrinkA=0, shrinkB=0, zorder=2))
    mean = node(ax, xc, ctx_y, r=0.2, text="mean", kind="bus", fs=7)
    cb = box(ax, xc, 1.95, 0.62, 0.38, "c", "param", fs=8.5)
    arrow(ax, mean.b, cb.t)
    label(ax, xc - 0.26, ctx_y, "context: mean over\nthe real tracks\n(order-independent)", fs=7, ha="right",
          color=INK)
    ax.plot([cb.r[0], xm], [cb.cy, cb.cy], color=KINDS["param"][1], lw=1.3, zorder=2)
    ax.plot([xm, xm], [cb.cy, rows[0][0] - 0.13], color=KINDS["param"][1], lw=1.3, zorder=1)
    for yy in halo_rows:
        arrow(ax, (xm, yy - 0.45), (xm, yy - 0.13), color=KINDS["param"][1], lw=1.3, ms=7)
    label(ax, xm + 0.08, 2.9, "c to every\ntrack: [eᵢ, c]", fs=6.8, ha="left", color=KINDS["param"][1])
    bh_ = box(ax, xp, 1.95, 1.2, 0.44, "bus head", "nn", fs=7.5)
    qb = box(ax, 6.2, 1.95, 0.55, 0.44, "q", "param", fs=8.5)
    arrow(ax, (xm, cb.cy), bh_.l, color=KINDS["param"][1], lw=1.3)
    arrow(ax, bh_.r, qb.l)
    arrow(ax, qb.r, (xcon - 0.6, qb.cy))
    label(ax, xp, 1.6, "full console only", fs=6.8)
    # shared weights
    for xx, w_ in ((xe, 1.16), (xp, 1.36)):
        ax.add_patch(FancyBboxPatch((xx - w_ / 2, rows[-1][0] - 0.33), w_, rows[0][0] - rows[-1][0] + 0.66,
                                    boxstyle="round,pad=0,rounding_size=0.08", fc="none", ec=KINDS["nn"][1], lw=1.0,
                                    ls="--", zorder=1))
        label(ax, xx, rows[0][0] + 0.45, "one network,\nshared weights", fs=7, color=KINDS["nn"][1],
              fontweight="bold")
    # console
    con = box(ax, xcon, 3.5, 1.2, 3.4, "", "dsp")
    ax.text(xcon, 4.55, "console", ha="center", va="center", fontsize=9, fontweight="bold", color=INK, zorder=5)
    ax.text(xcon, 3.55, "basic:\ngain → pan\n\nfull:\ndsp.mix\n(strip + reverb\nbus + master)\n\nor: neural\n"
            "proxy", ha="center", va="center", fontsize=7, color=INK, zorder=5, linespacing=1.15)
    # the tracks themselves go into the console too
    top = 5.68
    ax.plot([0.28, 0.28], [rows[-1][0], top], color=INK, lw=1.0, zorder=2)
    for yy, _ in rows:
        ax.plot([0.28, 0.43], [yy, yy], color=INK, lw=1.0, zorder=2)
    arrow(ax, (0.28, top), (xcon, top), con.t, lw=1.0)
    label(ax, 1.0, top + 0.12, "the tracks", fs=7, ha="left", color=INK)
    mixb = box(ax, 8.85, 3.5, 0.9, 0.56, "mix ŷ\n(2, T)", "signal", fs=7.8)
    arrow(ax, con.r, mixb.l, lw=1.6)
    loss = box(ax, 8.85, 2.35, 0.9, 0.5, "audio loss", "loss", fs=7.5)
    tgt = box(ax, 8.85, 1.35, 0.9, 0.5, "target mix y", "signal", fs=7.2)
    arrow(ax, mixb.b, loss.t, ls="--")
    arrow(ax, tgt.t, loss.b, ls="--")
    label(ax, 9.33, 2.9, "gradient\nthrough\nthe console", fs=6.5, ha="left", va="center", color=KINDS["loss"][1])
    # notes
    label(ax, 0.35, 1.36, "encoder: log-mel (64 bands) → 4 × [3×3 conv, BatchNorm, ReLU,\n"
          "max-pool] (16, 32, 64, 128) → mean + max pool → linear → 128,\n"
          "+ the track's RMS level: eᵢ has 129 values\n"
          "post-processor: MLP 258 → 256 → 256 → P (PReLU, dropout 0.1),\n"
          "sigmoid: pᵢ in [0, 1]^P; P = 2 (basic: gain, pan) or 23 (full);\n"
          "q: reverb T60, return, master gain", fs=7, ha="left", va="top", color=INK)
    label(ax, 4.55, 1.0, "Permutation: swap x₁ and x₂, and e₁, e₂ and p₁, p₂ swap with\n"
          "them; c, q and the mix do not "
          "change. Padded tracks are\nnever encoded: any number of tracks up to 8.", fs=7, ha="left", va="center",
          color=INK, fontweight="bold")
    legend(ax, 0.3, 0.3, ["signal", "nn", "param", "dsp", "bus", "loss"], fs=7)
    return save(fig, out_dir, "dmc.svg")



# --------------------------------------------------------------------------------------------
# 5. Style transfer (Part 5): single track and multitrack
# --------------------------------------------------------------------------------------------


def _data_card(ax, x0, y0, x1, y1, title):
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.08",
                                fc="#fafafa", ec=KINDS["loss"][1], lw=1.0, ls="--", zorder=1))
    ax.text(x0 + 0.1, y1 - 0.1, title, ha="left", va="top", fontsize=7.8, fontweight="bold", color=KINDS["loss"][1])


STYLE_TRACK = dict(n_mels=64, channels=96, embed_dim=128, hidden=256, controls=18, param_weight=0.5, corrupt_prob=0.5)
"""configs/style_track.json through models.style.build_model; the controller's input is [e_x, e_r, e_r - e_x], three
times the encoder's width (embed_dim + 2 n_mels band statistics)."""

STYLE_MIX = dict(n_mels=48, widths=(16, 32, 48, 64), dim=96, layers=3, heads=4, track_controls=23,
                 param_weight=300.0, fractions=(0.25, 0.35, 0.4))
"""configs/style_mix.json through models.style_mix.build_model; track_controls is the track head's width."""


def fig_style_models(out_dir):
    S, M = STYLE_TRACK, STYLE_MIX
    width = S["embed_dim"] + 2 * S["n_mels"]
    W, H = 10.0, 8.75
    fig, ax = canvas(W, H, "Style transfer from a reference (Part 5)",
                     "One shared encoder hears the input and the reference; a controller sets DSP whose settings "
                     "stay readable; the training examples make themselves")
    # A: single track -------------------------------------------------------------------------
    panel_title(ax, 0.3, 7.84, "A   Single track: models.style.StyleTransfer (configs/style_track.json, chapter 5.1)")
    _data_card(ax, 0.3, 4.72, 2.95, 7.58, "training data: one stem")
    fc, ec = KINDS["signal"]
    ax.add_patch(Rectangle((0.45, 6.95), 2.35, 0.24, fc=fc, ec=ec, lw=0.9, zorder=2))
    for x0, t in ((0.6, "a"), (1.85, "b")):
        ax.add_patch(Rectangle((x0, 6.95), 0.75, 0.24, fc="#b9acdc", ec=ec, lw=0.9, zorder=3))
        label(ax, x0 + 0.375, 7.07, t, fs=8, color=INK, fontweight="bold")
    label(ax, 1.62, 6.8, "two different segments of one stem", fs=6.6)
    sb = box(ax, 1.62, 6.32, 1.6, 0.42, "random style s (EQ, comp,\ngain), fresh every step", "param", fs=6.6)
    ax.text(0.42, 5.88, f"input x = a, or a through a random\ncorruption (probability {S['corrupt_prob']})\n"
            "reference r = s(b)\ntarget = s(a)\n\nthe right settings are known: s", ha="left", va="top",
            fontsize=6.9, color=INK, linespacing=1.3)
    xb = box(ax, 3.55, 6.7, 0.8, 0.44, "input x", "signal", fs=7.5)
    rb = box(ax, 3.55, 5.3, 0.8, 0.44, "reference r", "signal", fs=7.2)
    en = box(ax, 4.98, 6.0, 1.5, 1.75, f"log-mel, {S['n_mels']} bands\n4 × Conv1d, {S['channels']} ch,\nstrides 1, 2, 2, 2\nmean + std pool\n"
             f"→ {S['embed_dim']}, + band\nmeans and stds", "nn", title="shared encoder", fs=6.8, tfs=7.6)
    arrow(ax, xb.r, (en.l[0], xb.cy))
    arrow(ax, rb.r, (en.l[0], rb.cy))
    label(ax, en.cx, en.b[1] - 0.14, "the same weights for both", fs=6.6, color=KINDS["nn"][1])
    ex = box(ax, 6.12, 6.45, 0.5, 0.36, "e_x", "param", fs=7.5)
    er = box(ax, 6.12, 5.55, 0.5, 0.36, "e_r", "param", fs=7.5)
    arrow(ax, (en.r[0], ex.cy), ex.l)
    arrow(ax, (en.r[0], er.cy), er.l)
    ctl = box(ax, 7.3, 6.0, 1.4, 1.3, f"[e_x, e_r, e_r − e_x]\n{3 * width} → {S['hidden']} → {S['hidden']}\n→ {S['controls']}, sigmoid", "nn",
              title="controller MLP", fs=6.8, tfs=7.6)
    arrow(ax, ex.r, (ctl.l[0], ex.cy))
    arrow(ax, er.r, (ctl.l[0], er.cy))
    cb = box(ax, 8.55, 6.0, 0.72, 0.5, f"{S['controls']} controls\nin [0, 1]", "param", fs=6.6)
    arrow(ax, ctl.r, cb.l)
    ch = box(ax, 7.95, 7.28, 2.5, 0.52,
             "EQ (low shelf, 3 peaks, high shelf)\n→ compressor (knee 6 dB) → output gain",
             "dsp", fs=6.8)
    arrow(ax, xb.t, (xb.cx, 7.28), ch.l)
    arrow(ax, cb.t, (cb.cx, ch.b[1]))
    yb = box(ax, 9.5, 6.55, 0.56, 0.4, "ŷ", "signal", fs=8.5)
    arrow(ax, ch.r, (yb.cx, ch.cy), yb.t)
    lb = box(ax, 9.5, 5.65, 0.64, 0.52, "MR-STFT\nloss", "loss", fs=6.8)
    tb = box(ax, 9.5, 4.98, 0.64, 0.38, "s(a)", "signal", fs=7.5)
    arrow(ax, yb.b, lb.t, ls="--")
    arrow(ax, tb.t, lb.b, ls="--")
    label(ax, 7.0, 5.12, f"+ {S['param_weight']} × L1(controls, s) on the uncorrupted items", fs=6.6, color=KINDS["loss"][1])
    label(ax, 7.0, 4.88, "training renders: autodiff DSP, neural proxy or SPSA; inference: the DSP", fs=6.6)

    # B: multitrack ---------------------------------------------------------------------------
    panel_title(ax, 0.3, 4.42,
                "B   Multitrack: models.style_mix.MixStyleTransfer (configs/style_mix.json, chapter 5.2)")
    _data_card(ax, 0.3, 0.72, 2.95, 4.12, "training data: two songs")
    shares = (100 * f for f in M["fractions"])
    ax.text(0.42, 3.8, ("a style, drawn every step:\nrole-tied random settings ({:.0f} %),\na generated engineer ({:.0f} %),\n"
            "the natural or punchy engineer\n({:.0f} %)\n\nreference = song A mixed in it\n"
            "target = song B mixed in it\ninput = the stems of song B\n\nthe right settings are known;\n"
            "two different songs: the model\nmust carry over the style,\nnot copy the song").format(*shares),
            ha="left", va="top", fontsize=6.9, color=INK, linespacing=1.3)
    st = box(ax, 3.55, 3.3, 0.85, 0.52, "stems\nx₁ … x_N", "signal", fs=7.2)
    rf = box(ax, 3.55, 1.95, 0.85, 0.52, "reference\nmix (stereo)", "signal", fs=6.8)
    ms = box(ax, 3.55, 1.2, 0.85, 0.42, "mid, side", "dsp", fs=6.8)
    arrow(ax, rf.b, ms.t)
    en2 = box(ax, 4.95, 2.3, 1.2, 2.0, f"log-mel, {M['n_mels']} bands\n4 × [3×3 conv,\nReLU, max-pool]\n{M['widths']}\n"
              f"+ band means\nand spreads\n+ RMS level\n→ {M['dim']} per token", "nn", title="shared\nencoder", fs=6.6,
              tfs=7.4)
    arrow(ax, st.r, (en2.l[0], st.cy))
    arrow(ax, ms.r, (en2.l[0] - 0.2, ms.cy), (en2.l[0] - 0.2, 1.75), (en2.l[0], 1.75))
    tk = box(ax, 6.3, 3.3, 0.95, 0.52, "N stem tokens\n+ type_track", "param", fs=6.6)
    tr = box(ax, 6.3, 1.75, 0.95, 0.52, "2 tokens\n+ type_mid, side", "param", fs=6.4)
    arrow(ax, (en2.r[0], tk.cy), tk.l)
    arrow(ax, (en2.r[0], tr.cy), tr.l)
    tf = box(ax, 7.45, 2.5, 0.95, 2.0,
             f"{M['layers']} layers\n{M['heads']} heads\nno positional\nencoding:\na set of\ntokens,\npadding\nmasked",
             "nn", title="trans-\nformer", fs=6.5, tfs=7.4)
    arrow(ax, tk.r, (tf.l[0], tk.cy))
    arrow(ax, tr.r, (tf.l[0], tr.cy))
    th = box(ax, 8.7, 3.58, 1.3, 0.5, f"track head, per stem:\n{M['track_controls']} controls each", "nn", fs=6.6)
    bh_ = box(ax, 8.7, 2.88, 1.3, 0.56, "bus head\n[mean hᵢ, h_mid, h_side]\n→ T60, return, master", "nn", fs=6.3)
    arrow(ax, (tf.r[0], th.cy), th.l)
    arrow(ax, (tf.r[0], bh_.cy), bh_.l)
    con = box(ax, 8.8, 2.15, 1.5, 0.46, "console: dsp.mix", "dsp", fs=7.2)
    arrow(ax, th.r, (9.48, th.cy), (9.48, con.t[1]), ms=7)
    arrow(ax, bh_.b, (bh_.cx, con.t[1]), ms=7)
    top = 4.05
    arrow(ax, st.t, (st.cx, top), (9.72, top), (9.72, con.cy), con.r, lw=1.0)
    label(ax, 6.3, top + 0.1, "the stems", fs=6.8, color=INK)
    mx = box(ax, 8.35, 1.3, 0.6, 0.42, "mix", "signal", fs=7.5)
    arrow(ax, (mx.cx, con.b[1]), mx.t)
    lb2 = box(ax, 9.3, 1.3, 0.72, 0.42, "loss", "loss", fs=7.5)
    arrow(ax, mx.r, lb2.l, ls="--")
    label(ax, 9.3, 0.9, "← target: song B", fs=6.6, color=INK)
    label(ax, 5.95, 0.92, f"loss: stereo loss after RMS matching + {M['param_weight']:g} × L1 of the controls\n"
          "inference: the master gain is set to the reference's loudness", fs=6.6, ha="center", va="center")
    legend(ax, 0.3, 0.3, ["signal", "nn", "param", "dsp", "loss"], fs=7)
    return save(fig, out_dir, "style_models.svg")



# --------------------------------------------------------------------------------------------
# 6. The formulations of book/automatic_mixing.md ("Deep learning")
# --------------------------------------------------------------------------------------------


def fig_formulations(out_dir):
    W, H = 10.0, 5.0
    fig, ax = canvas(W, H, "What should the network output? (chapter 2.1, after Moffat and Sandler)",
                     "Two formulations: direct transformation and parameter estimation; parameter estimation can be "
                     "trained with either of two losses")
    loss_c = KINDS["loss"][1]
    for k, (x0, title) in enumerate(((0.3, "Direct transformation"), (3.5, "Parameter estimation: parameter loss"),
                                     (6.7, "Parameter estimation: audio loss"))):
        ax.add_patch(FancyBboxPatch((x0, 1.12), 3.0, 3.0, boxstyle="round,pad=0,rounding_size=0.08", fc="#fbfbfb",
                                    ec=CARD_EDGE, lw=0.9, zorder=1))
        ax.text(x0 + 0.12, 4.02, title, ha="left", va="top", fontsize=8.4, fontweight="bold", color=INK,
                linespacing=1.15)
        cx = x0 + 0.95
        tr = box(ax, cx, 3.2, 1.15, 0.38, "tracks x₁ … x_N", "signal", fs=7.2)
        if k == 0:
            net = box(ax, cx, 2.5, 1.15, 0.42, "network f_θ", "nn", fs=7.8)
            yb = box(ax, cx, 1.8, 1.15, 0.4, "mix ŷ (audio)", "signal", fs=7.5)
            arrow(ax, tr.b, net.t)
            arrow(ax, net.b, yb.t, lw=1.6)
            lb = box(ax, cx + 1.35, 1.8, 0.95, 0.4, "L(ŷ, y)", "loss", fs=7.5)
            tb = box(ax, cx + 1.35, 2.5, 0.95, 0.4, "target mix y", "signal", fs=7)
            arrow(ax, yb.r, lb.l, ls="--")
            arrow(ax, tb.b, lb.t, ls="--")
            label(ax, x0 + 1.5, 1.38, "e.g. Mix-Wave-U-Net (chapter 3.2)", fs=6.8, color=INK)
            continue
        net = box(ax, cx, 2.5, 1.15, 0.42, "network g_θ", "nn", fs=7.8)
        pb = box(ax, cx + 1.35, 2.5, 0.95, 0.42, "settings p̂", "param", fs=7.5)
        con = box(ax, cx + 1.35, 1.8, 0.95, 0.4, "console", "dsp", fs=7.5)
        arrow(ax, tr.b, net.t)
        arrow(ax, net.r, pb.l)
        arrow(ax, pb.b, con.t)
        yb = box(ax, cx, 1.8, 1.15, 0.4, "mix ŷ", "signal", fs=7.5)
        arrow(ax, con.l, yb.r, lw=1.6)
        arrow(ax, tr.r, (con.r[0] + 0.12, tr.cy), (con.r[0] + 0.12, con.cy), con.r, lw=0.9)
        if k == 1:
            lb = box(ax, cx + 1.35, 3.63, 0.95, 0.36, "L(p̂, p)", "loss", fs=7.5)
            eng = box(ax, cx, 3.63, 1.15, 0.36, "engineer's p", "param", fs=7.2)
            ax.plot([pb.cx - 0.25, pb.cx - 0.25], [pb.t[1], 3.2], color=INK, lw=1.0, ls="--", zorder=2)
            arrow(ax, (pb.cx - 0.25, 3.2), (pb.cx - 0.25, lb.b[1]), ls="--")
            arrow(ax, eng.r, lb.l, ls="--")
            label(ax, x0 + 1.5, 1.38, "the console is not needed in training", fs=6.8, color=INK)
        else:
            lb = box(ax, cx, 1.38 - 0.02, 1.15, 0.32, "L(ŷ, y)  ← target y", "loss", fs=7)
            arrow(ax, yb.b, lb.t, ls="--")
            arrow(ax, lb.r, (con.cx - 0.15, lb.cy), (con.cx - 0.15, con.b[1]), color=loss_c, ls="--", lw=1.2)
            label(ax, con.cx - 0.05, lb.cy - 0.02, "∂L flows back\nthrough it", fs=6.3, color=loss_c, ha="left")
    notes = [
        "Free to do anything, but needs much\ndata and a large receptive field, a fixed\nnumber and order of inputs, "
        "and the\nmix cannot be explained or adjusted.",
        "Interpretable, editable settings, but it\nneeds the engineer's settings (real\ndatasets do not record "
        "them) and counts\nall parameter errors alike.",
        "Needs only multitracks and their mixes;\nthe console must be differentiable:\nautodiff DSP (2.3), a neural "
        "proxy (2.4)\nor a gradient estimate (SPSA). The DMC.",
    ]
    for x0, t in zip((0.3, 3.5, 6.7), notes):
        ax.text(x0 + 0.05, 1.0, t, ha="left", va="top", fontsize=6.9, color=INK, linespacing=1.25)
    legend(ax, 0.3, 0.3, ["signal", "nn", "param", "dsp", "loss"], fs=7)
    return save(fig, out_dir, "formulations.svg")


FIGURES = {
    "channel_strip.svg": fig_channel_strip,
    "tcn_film.svg": fig_tcn_film,
    "wave_u_net.svg": fig_wave_u_net,
    "dmc.svg": fig_dmc,
    "style_models.svg": fig_style_models,
    "formulations.svg": fig_formulations,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT_DIR, help="output folder (default: book/images)")
    parser.add_argument("names", nargs="*", help="figures to draw (default: all)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with matplotlib.rc_context(RC):
        for name in args.names or FIGURES:
            name = name if name.endswith(".svg") else name + ".svg"
            if name not in FIGURES:
                parser.error(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
            print(os.path.relpath(FIGURES[name](args.out)))


if __name__ == "__main__":
    sys.exit(main())
