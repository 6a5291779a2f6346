"""The book's Sphinx extension (book/_ext/automix_book.py): kernel polling without lost wake-ups, and the
static copies of widgets for readers without JavaScript."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import automix_book  # noqa: E402

jupyter_client = pytest.importorskip("jupyter_client")
from jupyter_client.channels import AsyncZMQSocketChannel  # noqa: E402


class LostWakeupSocket:
    """A socket whose readiness edge is missed: poll() never returns early; at the end of its timeout it
    reports what is there (what pyzmq's final poll(0) does, jupyter/nbclient#312)."""

    def __init__(self, arrives_after_s: float):
        self.arrival = time.monotonic() + arrives_after_s

    async def poll(self, timeout_ms=None):
        await asyncio.sleep((timeout_ms or 0) / 1000)
        return 1 if time.monotonic() >= self.arrival else 0


class Channel:
    def __init__(self, arrives_after_s: float):
        self.socket = LostWakeupSocket(arrives_after_s)

    async def _recv(self):
        return {"header": {"date": datetime.now(timezone.utc)}, "parent_header": {}, "content": {}}


def _timed(get_msg, channel, timeout):
    start = time.monotonic()
    try:
        msg = asyncio.run(get_msg(channel, timeout=timeout))
    except Empty:
        msg = None
    return msg, time.monotonic() - start


def test_unpatched_channel_waits_for_the_whole_timeout_after_a_lost_wakeup():
    original = getattr(AsyncZMQSocketChannel, "_automix_original_get_msg", AsyncZMQSocketChannel.get_msg)
    msg, waited = _timed(original, Channel(arrives_after_s=0.05), timeout=2.0)
    assert msg is not None and waited >= 1.9  # the failure mode: the reply is found only at the timeout


def test_sliced_polling_finds_the_reply_within_one_slice():
    msg, waited = _timed(automix_book.sliced_get_msg, Channel(arrives_after_s=0.05), timeout=30.0)
    assert msg is not None and waited < automix_book.SLICE_S + 0.3


def test_sliced_polling_still_times_out():
    msg, waited = _timed(automix_book.sliced_get_msg, Channel(arrives_after_s=60.0), timeout=1.2)
    assert msg is None and 1.1 <= waited < 1.2 + automix_book.SLICE_S + 0.3


def test_patch_is_installed_once():
    automix_book.patch_kernel_channels()
    automix_book.patch_kernel_channels()
    assert AsyncZMQSocketChannel.get_msg is automix_book.sliced_get_msg
    assert AsyncZMQSocketChannel._automix_original_get_msg is not automix_book.sliced_get_msg


def _page(state: dict, view_id: str) -> str:
    return ('<html><body><div class="cell_output">'
            f'<script type="application/vnd.jupyter.widget-view+json">{json.dumps({"model_id": view_id})}</script>'
            '</div><script type="application/vnd.jupyter.widget-state+json">'
            f'{json.dumps({"version_major": 2, "version_minor": 0, "state": state})}</script></body></html>')


def test_static_copy_shows_figures_text_and_control_values():
    png = base64.b64encode(b"\x89PNG fake").decode()
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_d", "IPY_MODEL_o",
                                                                 "IPY_MODEL_i", "IPY_MODEL_h"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "pan p", "value": 0.5}},
        "d": {"model_name": "DropdownModel", "state": {"description": "law", "_options_labels": ["linear", "cp"],
                                                       "index": 1}},
        "o": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure>"}},
            {"output_type": "stream", "name": "stdout", "text": "L = 0.7071 <ok>\n"}]}},
        "i": {"model_name": "ImageModel", "state": {"format": "png"},
              "buffers": [{"path": ["value"], "encoding": "base64", "data": png}]},
        "h": {"model_name": "HTMLModel", "state": {"value": '<table><tr><td><audio src="x"></audio></td></tr></table>'}},
    }
    page = automix_book.add_static_widgets(_page(state, "box"))
    copy = page.split('<div class="automix-widget-static">', 1)[1].split("widget-state+json", 1)[0]
    assert "pan p = 0.5" in copy and "law = cp" in copy
    assert copy.count(f"base64,{png}") == 2  # the output widget's figure and the image widget
    assert "L = 0.7071 &lt;ok&gt;" in copy
    assert "<audio" not in copy and "<table>" in copy  # players stay out of the copy


def test_pages_without_widgets_are_unchanged():
    text = "<html><body><p>no widgets</p></body></html>"
    assert automix_book.add_static_widgets(text) == text


def test_folders_a_notebook_writes_for_the_reader_are_copied_into_the_html(tmp_path, monkeypatch):
    """A notebook writes into AUTOMIX_BOOK_EXTRA (set by the extension); after the build the folder is in the HTML."""
    outdir = tmp_path / "_build" / "html"
    outdir.mkdir(parents=True)
    app = SimpleNamespace(outdir=str(outdir), builder=SimpleNamespace(format="html"), connect=lambda *a: None,
                          add_js_file=lambda *a: None, add_css_file=lambda *a: None)
    monkeypatch.delenv(automix_book.EXTRA_ENV, raising=False)
    automix_book.setup(app)
    extra = Path(automix_book.os.environ[automix_book.EXTRA_ENV])
    assert extra == tmp_path / "_build" / "extra"
    (extra / "listening-test").mkdir(parents=True)
    (extra / "listening-test" / "index.html").write_text("<html>test</html>")
    (outdir / "listening-test").mkdir()
    (outdir / "listening-test" / "stale.wav").write_text("old")
    automix_book._copy_extra(app, None)
    assert (outdir / "listening-test" / "index.html").read_text() == "<html>test</html>"
    assert not (outdir / "listening-test" / "stale.wav").exists()  # a rebuilt folder replaces the old one
    automix_book._copy_extra(app, RuntimeError("build failed"))  # nothing happens after a failed build
