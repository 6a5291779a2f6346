"""Sphinx extension of the book (loaded from ``book/_config.yml``: ``sphinx.local_extensions``).

1. **No lost wake-ups while executing notebooks.** nbclient waits for a cell's reply with one
   ``await socket.poll(timeout)`` on the kernel's shell channel (jupyter_client's
   ``AsyncZMQSocketChannel.get_msg``). pyzmq's asyncio poll is edge-triggered on the ZMQ file
   descriptor; when its wake-up is missed, the reply sits in the socket until the poll's own timeout
   fires, and pyzmq's final ``poll(0)`` then finds it: the cell "succeeds" after waiting the whole cell
   timeout. That is the one path on which nbclient waits a full timeout and carries on without an error,
   which is what earlier builds showed in cells with ipywidgets (928 s for one cell of chapter 1.3 under a
   900 s timeout, the kernel idle; jupyter/nbclient#312). Why the wake-up is missed was not found.
   :func:`sliced_get_msg` polls in slices of :data:`SLICE_S` seconds until the same deadline, so a
   missed edge costs at most one slice; a cell that really runs past its timeout still raises
   ``CellTimeoutError`` and fails the build (``nb_execution_raise_on_error``).
2. **Widgets that show something without JavaScript.** After the build, every saved widget view in a page
   gets a static copy of its initial state next to it (:func:`static_widget_html`: the figures, text and
   players of its output, image and HTML widgets, and the values of its controls). ``automix.js`` hides
   the copies once the widget manager (served from ``_static/vendor``) has drawn the live widgets.
3. **Folders a chapter writes for the reader.** The build sets ``AUTOMIX_BOOK_EXTRA`` to a folder next to the
   HTML output (``_build/extra``); a notebook that writes something a reader should open from the book
   (chapter 4.2's listening test) writes it there, and after the build :func:`_copy_extra` copies each folder
   in it into the HTML (``_build/html/listening-test/``), where the chapter links it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path
from datetime import datetime, timezone
from queue import Empty

SLICE_S = 0.5
"""Longest wait on one poll of a kernel channel, in seconds."""

late_wakeups = {"count": 0, "worst_s": 0.0}
"""Messages that waited in the socket unnoticed until the end of a slice (a missed wake-up each): how many,
and the longest such wait in seconds (now minus the kernel's send time), for the build log."""


async def sliced_get_msg(self, timeout: float | None = None) -> dict:
    """Drop-in for ``AsyncZMQSocketChannel.get_msg``: the same contract, polled in bounded slices."""
    assert self.socket is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = SLICE_S if deadline is None else max(0.0, min(SLICE_S, deadline - time.monotonic()))
        start = time.monotonic()
        ready = await self.socket.poll(int(step * 1000))
        if ready:
            found_at_end = step > 0 and time.monotonic() - start >= 0.95 * step
            msg = await self._recv()
            if found_at_end:  # found by pyzmq's final poll(0): was it sitting there, unnoticed?
                _note_staleness(msg)
            return msg
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty


def _note_staleness(msg: dict) -> None:
    sent = msg.get("header", {}).get("date")
    if not isinstance(sent, datetime):
        return
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=timezone.utc)
    stale = (datetime.now(timezone.utc) - sent).total_seconds()
    if stale > 0.25 * SLICE_S:
        late_wakeups["count"] += 1
        late_wakeups["worst_s"] = max(late_wakeups["worst_s"], stale)


def patch_kernel_channels() -> None:
    """Install :func:`sliced_get_msg` on jupyter_client's asyncio channel class (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if AsyncZMQSocketChannel.get_msg is not sliced_get_msg:
        AsyncZMQSocketChannel._automix_original_get_msg = AsyncZMQSocketChannel.get_msg
        AsyncZMQSocketChannel.get_msg = sliced_get_msg


def _report(app, exception) -> None:
    from sphinx.util import logging

    if late_wakeups["count"]:
        logging.getLogger(__name__).info(
            f"automix_book: {late_wakeups['count']} kernel messages sat unnoticed in their socket until the end of "
            f"a {SLICE_S:g} s poll slice (missed wake-ups; longest {late_wakeups['worst_s']:.2f} s)")


VIEW = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">(.*?)</script>', re.S)
STATE = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S)
AUDIO = re.compile(r"<audio\b.*?</audio>", re.S | re.I)
AUDIO_NOTE = "<em>(player in the interactive version)</em>"  # players stay out of the copy: pages stay small
CONTROLS = {"FloatSliderModel", "FloatLogSliderModel", "IntSliderModel", "DropdownModel", "ToggleButtonsModel",
            "CheckboxModel", "RadioButtonsModel", "SelectionSliderModel", "IntTextModel", "FloatTextModel"}


def _output_html(out: dict) -> str:
    if out.get("output_type") == "stream":
        return f"<pre>{html.escape(''.join(out.get('text', '')))}</pre>"
    data = out.get("data", {})
    if "image/png" in data:
        return f'<img alt="figure" src="data:image/png;base64,{"".join(data["image/png"]).strip()}">'
    if "text/html" in data:
        return AUDIO.sub(AUDIO_NOTE, "".join(data["text/html"]))
    if "text/plain" in data:
        return f"<pre>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


def static_widget_html(model_id: str, state: dict) -> str:
    """The initial state of one widget view as plain HTML ("" when there is nothing to show).

    ``state`` is the page's saved widget state (``{model_id: {"model_name", "state", "buffers"}}``); the view's
    children are followed through their ``IPY_MODEL_<id>`` references."""
    controls, parts, seen = [], [], set()

    def visit(mid: str) -> None:
        if mid in seen or mid not in state:
            return
        seen.add(mid)
        model = state[mid]
        name, st = model.get("model_name", ""), model.get("state", {})
        if name == "OutputModel":
            parts.extend(_output_html(o) for o in st.get("outputs", []))
        elif name == "ImageModel":
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
                    parts.append(f'<img alt="figure" src="data:image/{st.get("format", "png")};base64,{buf["data"]}">')
        elif name == "HTMLModel" and st.get("value"):
            parts.append(AUDIO.sub(AUDIO_NOTE, st["value"]))
        elif name in CONTROLS:
            value = st.get("value")
            if "_options_labels" in st and st.get("index") is not None:
                value = st["_options_labels"][st["index"]]
            label = st.get("description") or name.removesuffix("Model")
            controls.append(f"{html.escape(str(label))} = {html.escape(str(value))}")
        for v in st.values():
            for ref in v if isinstance(v, list) else [v]:
                if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                    visit(ref[len("IPY_MODEL_"):])

    visit(model_id)
    body = "".join(p for p in parts if p)
    if not body and not controls:
        return ""
    note = "Initial state of the interactive panel (run the notebook in Jupyter or Colab to move the controls)"
    note += f": {', '.join(controls)}." if controls else "."
    return f'<div class="automix-widget-static"><p class="automix-widget-note">{note}</p>{body}</div>'


def add_static_widgets(page: str) -> str:
    """Insert :func:`static_widget_html` after every widget view of an HTML page."""
    found = STATE.search(page)
    if not found or not VIEW.search(page):
        return page
    state = json.loads(found.group(1)).get("state", {})

    def with_copy(m) -> str:
        model_id = json.loads(m.group(1)).get("model_id", "")
        return m.group(0) + static_widget_html(model_id, state)

    return VIEW.sub(with_copy, page)


def _static_widgets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for path in Path(app.outdir).rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        new = add_static_widgets(text)
        if new != text:
            path.write_text(new, encoding="utf-8")


EXTRA_ENV = "AUTOMIX_BOOK_EXTRA"


def _extra_dir(app) -> Path:
    return Path(app.outdir).parent / "extra"


def _copy_extra(app, exception) -> None:
    """Copy every folder the notebooks wrote into ``AUTOMIX_BOOK_EXTRA`` into the HTML output."""
    from sphinx.util import logging

    src = _extra_dir(app)
    if exception is not None or app.builder.format != "html" or not src.is_dir():
        return
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        dest = Path(app.outdir) / folder.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(folder, dest)
        logging.getLogger(__name__).info(f"automix_book: copied {folder} to {dest}")


def setup(app):
    patch_kernel_channels()
    os.environ[EXTRA_ENV] = str(_extra_dir(app))  # inherited by the kernels that execute the notebooks
    app.connect("build-finished", _copy_extra)
    app.add_js_file("automix.js")
    app.add_css_file("automix.css")
    app.connect("build-finished", _static_widgets)
    app.connect("build-finished", _report)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
