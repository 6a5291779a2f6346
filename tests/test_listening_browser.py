"""The listening-test page in a real browser: headless Chromium driven by Selenium through whole MUSHRA and
APE sessions opened from ``file://`` with the network blocked (chapter 4.2, ``automix_lite.listening``).

Each session: the form (refused while incomplete), the training page, then every test page: play, the
playhead advances, switching to another stimulus continues from the same position, *Next* is refused until
every slider / marker has been moved, the ratings are set (keyboard on the MUSHRA sliders, mouse drags on
the APE markers), comments typed; then the CSV (and JSON) downloaded and checked row by row against what
was set. Every request the page made is checked to be a local file (or a blob: of its own).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from automix_lite.listening import ANCHORS, CSV_COLUMNS, REFERENCE, make_test_from_arrays

SR = 22050
PASSAGES = ("bossa", "funk")
SYSTEMS = ("dmc", "wave_u_net", "mono_sum")


def _chromium() -> tuple:
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if not exe or not driver:
        pytest.skip("headless Chromium and chromedriver not found: `apt-get update && apt-get install -y chromium "
                    "chromium-driver` (Debian), or set CHROMIUM=/path/to/chromium and CHROMEDRIVER=/path/to/chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: `pip install 'selenium>=4.10'` (in the dev extra)")
    return exe, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = exe
    for arg in ("--headless=new", "--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--disable-gpu",
                "--no-first-run", "--disable-sync", "--disable-background-networking", "--disable-component-update",
                "--disable-dev-shm-usage", "--window-size=1100,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.prompt_for_download": False,
                                              "download.default_directory": str(profile)})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_path), options=options)
    drv.set_page_load_timeout(30)
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]})
    yield drv
    drv.quit()


def _mix(k: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(k)
    x = 0.3 * np.sin(2 * np.pi * (150 + 70 * k) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = x + 0.03 * rng.standard_normal(t.size)
    return np.stack([x, (0.4 + 0.15 * (k % 4)) * x + 0.02 * rng.standard_normal(t.size)])


def _test_folder(root: Path, design: str) -> Path:
    passages = {p: {**{s: _mix(3 * j + i) for i, s in enumerate(SYSTEMS)}, REFERENCE: _mix(10 + j)}
                for j, p in enumerate(PASSAGES)}
    out = root / f"test_{design}"
    make_test_from_arrays(passages, SR, out, design=design, seconds=2.0, seed=0)
    return out


def _expected_stimuli(design: str) -> set:
    return set(SYSTEMS) | {REFERENCE} | (set(ANCHORS) if design == "mushra" else set())


def _wait(what, condition, timeout: float = 15.0, step: float = 0.02):
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def _attr(drv, element_id: str, name: str) -> str:
    return drv.execute_script("var e = document.getElementById(arguments[0]); return e && e.getAttribute(arguments[1]);",
                              element_id, name) or ""


def _playhead(drv) -> float:
    return float(_attr(drv, "playhead", "data-time") or 0)


def _click(drv, css: str):
    drv.find_element("css selector", css).click()


def _check_playback_and_switching(drv, buttons: list, reference: bool):
    """Play the first stimulus, see the playhead advance, switch twice and see it continue from the same place."""
    _click(drv, f'#stimuli button.play[data-button="{buttons[0]}"]')
    _wait("the audio context to run", lambda: _attr(drv, "playhead", "data-state") == "running")
    _wait("the playhead to advance", lambda: _playhead(drv) > 0.25)
    t1 = _playhead(drv)
    time.sleep(0.15)
    t2 = _playhead(drv)
    assert t2 > t1, f"the playhead does not advance ({t1} -> {t2})"
    targets = [buttons[1]] + (["reference"] if reference else [buttons[0]])
    for k, target in enumerate(targets):
        before = _playhead(drv)
        _click(drv, f'#stimuli button.play[data-button="{target}"]')
        _wait(f"stimulus {target} to play", lambda: _attr(drv, "playhead", "data-playing") == target)
        after = _playhead(drv)
        start, continued = float(_attr(drv, "playhead", "data-switch-from")), float(_attr(drv, "playhead", "data-switch-to"))
        assert int(_attr(drv, "playhead", "data-switches")) == k + 1
        duration = 2.0
        assert abs(continued - start) < 1e-3, f"switching to {target} jumped from {start:.3f} s to {continued:.3f} s"
        gap = (start - before) % duration  # the playhead loops
        assert gap < 0.5, f"the switch happened at {start:.3f} s, far from the playhead {before:.3f} s"
        assert (after - continued) % duration < 0.5, f"after switching the playhead is at {after:.3f} s, not near {continued:.3f} s"
        time.sleep(0.12)
        assert (_playhead(drv) - after) % duration > 0.03, f"the playhead stopped after switching to {target}"


def _check_loop_region(drv):
    """Narrow the loop to 1.0-1.6 s (keyboard on the two range inputs): the playhead stays inside it."""
    from selenium.webdriver.common.keys import Keys

    drv.find_element("id", "loop-start").send_keys(Keys.HOME + Keys.ARROW_RIGHT * 10)
    drv.find_element("id", "loop-end").send_keys(Keys.END + Keys.ARROW_LEFT * 4)
    assert drv.find_element("id", "loop-text").text == "1.0 s \u2013 1.6 s"
    assert _attr(drv, "playhead", "data-playing"), "changing the loop stopped the playback"
    times = []
    for _ in range(25):  # 1 s: the playhead wraps at least once
        times.append(_playhead(drv))
        time.sleep(0.04)
    assert min(times) >= 0.99 and max(times) <= 1.61, f"the playhead left the loop 1.0-1.6 s: {times}"
    assert any(b < a for a, b in zip(times, times[1:])), f"the playhead did not wrap: {times}"


def _refused(drv, missing: list):
    page = _attr(drv, "page", "data-page-index")
    refusals = int(_attr(drv, "message", "data-refusals"))
    _click(drv, "#next")
    assert _attr(drv, "page", "data-page-index") == page, "Next moved on although not every stimulus was rated"
    assert int(_attr(drv, "message", "data-refusals")) == refusals + 1
    text = drv.find_element("id", "message").text
    assert "not yet rated" in text and all(b in text for b in missing), text


def _rate_mushra(drv, button: str, score: int) -> float:
    from selenium.webdriver.common.keys import Keys

    slider = drv.find_element("css selector", f'input.rating[data-button="{button}"]')
    slider.send_keys(Keys.HOME + Keys.ARROW_UP * score)
    _wait(f"slider {button} to read {score}", lambda: slider.get_attribute("data-score") == str(score), timeout=5)
    assert slider.get_attribute("data-moved") == "1"
    return float(score)


def _rate_ape(drv, button: str, score: float) -> float:
    from selenium.webdriver.common.action_chains import ActionChains

    marker = drv.find_element("css selector", f'.marker[data-button="{button}"]')
    width = drv.execute_script("return document.querySelector('.ape-axis').getBoundingClientRect().width;")
    now = float(marker.get_attribute("data-score"))
    dx = round((score - now) / 100 * width)
    if dx == 0:  # already there: a drag there and back still counts as moving it
        ActionChains(drv).click_and_hold(marker).move_by_offset(20, 0).move_by_offset(-20, 0).release().perform()
    else:
        ActionChains(drv).click_and_hold(marker).move_by_offset(dx, 0).release().perform()
    got = float(marker.get_attribute("data-score"))
    assert abs(got - score) <= 1.0, f"dragging marker {button} to {score} left it at {got}"
    assert marker.get_attribute("data-moved") == "1"
    return got


def _download(drv, link_id: str, folder: Path, suffix: str) -> Path:
    drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    _click(drv, f"#{link_id}")
    return _wait(f"the {suffix} download", lambda: next((p for p in folder.glob(f"*{suffix}")), None), timeout=10)


def _network_urls(drv) -> list:
    urls = []
    for entry in drv.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _session(drv, folder: Path, design: str, downloads: Path, screenshot: Path | None):
    from selenium.webdriver.support.ui import Select

    drv.get_log("performance")  # drop what earlier sessions logged
    drv.get((folder / "index.html").as_uri())
    _wait("the welcome page", lambda: _attr(drv, "app", "data-view") == "welcome")
    session = _attr(drv, "app", "data-session")
    assert len(session) == 16
    time.sleep(0.1)
    assert _attr(drv, "playhead", "data-state") == "", "an AudioContext exists before the first click"

    _click(drv, "#start")  # the form is incomplete
    assert _attr(drv, "app", "data-view") == "welcome" and drv.find_element("id", "welcome-message").text
    Select(drv.find_element("id", "experience")).select_by_value("amateur")
    _click(drv, 'input[name=equipment][value="headphones"]')
    Select(drv.find_element("id", "age_band")).select_by_value("25-34")
    _click(drv, "#start")

    _wait("the training page", lambda: _attr(drv, "page", "data-kind") == "training", timeout=30)
    assert drv.find_element("id", "page-comment").is_displayed() is False
    n_stimuli = len(_expected_stimuli(design))
    buttons = [b.get_attribute("data-button") for b in drv.find_elements("css selector", "#stimuli button.play")]
    assert buttons == (["reference"] if design == "mushra" else []) + list("ABCDEFGHIJKL"[:n_stimuli])
    _check_playback_and_switching(drv, buttons[-n_stimuli:], reference=False)
    _check_loop_region(drv)
    # training: no rating needed; the next page's playhead is at 0 as soon as the page is there (the click and the
    # read in one script: no 40 ms tick in between, which once let a check see the training page's position)
    shown = drv.execute_script('document.getElementById("next").click(); var p = document.getElementById("page");'
                               'return [p.getAttribute("data-page-index"), p.getAttribute("data-kind"),'
                               'document.getElementById("playhead").getAttribute("data-time")];')
    assert shown == ["1", "test", "0.0000"], shown

    set_scores, seen = {}, []
    for page_number in range(1, len(PASSAGES) + 1):
        _wait(f"test page {page_number}", lambda: _attr(drv, "page", "data-page-index") == str(page_number)
              and _attr(drv, "page", "data-kind") == "test")
        trial = _attr(drv, "page", "data-trial")
        seen.append(trial)
        assert _playhead(drv) == 0 and _attr(drv, "playhead", "data-playing") == ""
        letters = [b.get_attribute("data-button") for b in drv.find_elements("css selector", "#stimuli button.play")
                   if b.get_attribute("data-button") != "reference"]
        assert letters == list("ABCDEFGHIJKL"[:n_stimuli])
        if design == "mushra":
            assert drv.find_element("css selector", 'button.play[data-button="reference"]').is_displayed()
        else:
            assert not drv.find_elements("css selector", 'button.play[data-button="reference"]'), "APE shows no reference"
        _check_playback_and_switching(drv, letters, reference=design == "mushra")
        _refused(drv, letters)
        rate = _rate_mushra if design == "mushra" else _rate_ape
        for i, letter in enumerate(letters):
            score = min(100, 8 + 9 * i + 5 * page_number)
            if i == len(letters) - 1:
                _refused(drv, [letter])  # all but the last rated: still refused
            set_scores[(trial, letter)] = rate(drv, letter, score)
        drv.find_element("id", "page-comment").send_keys(f"page {page_number}, fine")
        if screenshot and page_number == 1:
            drv.save_screenshot(str(screenshot))
        _click(drv, "#next")

    _wait("the final page", lambda: _attr(drv, "app", "data-view") == "final")
    assert sorted(seen) == sorted(PASSAGES)
    drv.find_element("id", "final-comment").send_keys('all "good"\nthanks')
    _click(drv, "#finish")
    _wait("the results", lambda: _attr(drv, "app", "data-view") == "done")
    for link in ("download-csv", "download-json"):
        href = drv.find_element("id", link).get_attribute("href")
        assert href.startswith("blob:"), href

    csv_file = _download(drv, "download-csv", downloads, ".csv")
    json_file = _download(drv, "download-json", downloads, ".json")
    text = csv_file.read_text(encoding="utf-8")
    assert csv_file.name == f"listening_{design}_{session}.csv"
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    rows = list(reader)
    assert len(rows) == len(PASSAGES) * n_stimuli, f"{len(rows)} rows for {len(PASSAGES)} pages x {n_stimuli} stimuli"
    for trial in PASSAGES:
        mine = [r for r in rows if r["trial_id"] == trial]
        assert sorted(r["stimulus"] for r in mine) == sorted(_expected_stimuli(design)), "one row per stimulus"
        assert sorted(r["button"] for r in mine) == list("ABCDEFGHIJKL"[:n_stimuli])
        assert {r["page_order"] for r in mine} == {str(seen.index(trial) + 1)}
        for r in mine:
            assert float(r["score"]) == pytest.approx(set_scores[(trial, r["button"])], abs=0.05), r
    for r in rows:
        assert r["session_id"] == session and r["design"] == design and len(r["test_id"]) == 12
        assert r["experience"] == "amateur" and r["equipment"] == "headphones" and r["age_band"] == "25-34"
        assert r["hearing"] == "" and r["final_comment"] == 'all "good"\nthanks'
        assert r["page_comment"] == f"page {r['page_order']}, fine"
        assert int(r["time_ms"]) > 0 and r["timestamp"].endswith("Z")
    played = {(r["trial_id"], r["button"]): int(r["plays"]) for r in rows}
    assert all(played[(t, b)] >= 1 for t in PASSAGES for b in "AB")
    if design == "mushra":
        assert all(r["score"].isdigit() for r in rows)
    data = json.loads(json_file.read_text(encoding="utf-8"))
    assert data["session_id"] == session and len(data["pages"]) == len(PASSAGES)

    urls = _network_urls(drv)
    assert urls and any(u.endswith("index.html") for u in urls)
    outside = [u for u in urls if not u.startswith(("file://", "blob:", "data:"))]
    assert not outside, f"the page requested something off this computer: {outside}"
    refs = drv.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('[src],[href]'),"
        " function (e) { return e.getAttribute('src') || e.getAttribute('href'); });")
    assert all(r.startswith(("blob:", "#")) or "://" not in r and not r.startswith("//") for r in refs), refs


@pytest.mark.parametrize("design", ["mushra", "ape"])
def test_browser_runs_a_whole_session_from_file_url(browser, tmp_path, design):
    """A whole participant session in headless Chromium from file://, the network blocked: the downloaded CSV
    has one row per (page, stimulus) with exactly the scores set through the page."""
    folder = _test_folder(tmp_path, design)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shots = os.environ.get("LISTENING_SCREENSHOTS")
    shot = Path(shots) / f"listening_{design}.png" if shots else tmp_path / f"{design}.png"
    _session(browser, folder, design, downloads, shot)
    assert shot.stat().st_size > 10_000


def test_browser_loads_the_stimuli_from_a_static_web_host(browser, tmp_path):
    """Served over http (any static host), the page fetches the WAV files themselves, not their .js copies."""
    import functools
    import http.server
    import threading

    from selenium.webdriver.support.ui import Select

    folder = _test_folder(tmp_path, "ape")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    try:
        browser.get_log("performance")
        browser.get(f"http://127.0.0.1:{server.server_port}/index.html")
        _wait("the welcome page", lambda: _attr(browser, "app", "data-view") == "welcome")
        Select(browser.find_element("id", "experience")).select_by_value("none")
        _click(browser, 'input[name=equipment][value="speakers"]')
        _click(browser, "#start")
        _wait("the training page", lambda: _attr(browser, "page", "data-kind") == "training", timeout=30)
        urls = _network_urls(browser)
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        server.shutdown()
    wavs = [u for u in urls if u.endswith(".wav")]
    assert len(wavs) == len(PASSAGES) * (len(SYSTEMS) + 1), urls
    assert not [u for u in urls if "/stimuli/" in u and u.endswith(".js")], "fetched the .js copies over http"
