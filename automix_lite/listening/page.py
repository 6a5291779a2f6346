"""Static listening-test pages (MUSHRA and APE), taught in ``notebooks/16_listening_tests.ipynb`` (chapter 4.2).

:func:`make_test` turns a folder ``MIXES/<passage>/<system>.wav`` (optionally ``MIXES/<passage>/reference.wav``)
into a self-contained folder that runs from ``file://`` or any static web host, with no server and no
network: ``index.html``, ``listening.js``, ``style.css``, ``config.js`` (the pages and the button-to-system
mapping) and the stimuli in ``stimuli/``. :func:`make_test_from_arrays` does the same from arrays in memory.
``automix listening-test MIXES --out DIR --design {mushra,ape}`` is the command-line form.

The two designs
---------------
- ``"mushra"`` (ITU-R BS.1534): every passage needs ``reference.wav``. The page has an open *Reference*
  button, and the reference is hidden once more among the rated stimuli (stimulus ``reference``); with
  ``anchors=True`` two low anchors made from the reference join it: ``anchor_lp3500`` (low-passed at
  3.5 kHz: an elliptic filter run forward and backward, more than 90 dB down above 4 kHz) and
  ``anchor_mono`` (the mono sum (L + R) / 2 on both channels). One vertical slider per stimulus, 0-100,
  with the five labelled intervals Bad (0-20), Poor (20-40), Fair (40-60), Good (60-80), Excellent
  (80-100); every slider must be moved before the next page. Whether the hidden reference got 90 or
  more is for the analysis to check (post-screening), not enforced.
- ``"ape"`` (De Man & Reiss 2014, as in the thesis' sec. 5.6.2): all stimuli of a page as markers on one
  shared horizontal axis (0 = worst, 100 = best), dragged with the mouse (or moved with the arrow keys),
  starting at random places; no open reference and no anchors (a ``reference.wav`` becomes one more
  stimulus, ``reference``, as the thesis' target mixes were). Every marker must be moved.

Stimuli
-------
Every stimulus is cut to the same length within a passage (``seconds`` from ``start``, or the shortest
file if that is shorter, with a warning), faded in and out (``fade_ms`` raised-cosine), and scaled to
``lufs`` integrated loudness (ITU-R BS.1770 via pyloudnorm) so that loudness does not decide the rating.
If that gain would push a stimulus above -1 dBTP (true peak, 4x oversampled), the whole page (every
stimulus of the passage, so that they stay loudness-matched) is turned down by the missing amount, with a
warning that says by how much. Files at different sample rates are **resampled** (polyphase) to the most
common rate among them (ties: the highest), with a warning. Mono files are played on both channels.
Each stimulus is written twice: ``stimuli/<n>.wav`` (16-bit PCM, what a web host serves through
``fetch``) and ``stimuli/<n>.js`` (the same bytes in base64: browsers do not let a page opened from
``file://`` fetch files, but they do run scripts next to it). About 2.3 MB per 10 s stereo stimulus at
44.1 kHz in all; ``seconds`` sets the size. File numbers are shuffled (``seed``) so that names reveal
nothing; the mapping lives in ``config.js``.

At most :data:`MAX_STIMULI` (12) rated stimuli per page (systems, plus the hidden reference and the two
anchors in MUSHRA). Bad input raises ``ValueError``/``OSError`` with one line (the CLI shows
``automix: error: ...``, exit status 2): no passages, a passage with fewer than two systems, a MUSHRA
passage without ``reference.wav``, unreadable or silent files, more than 12 stimuli, an existing ``out_dir``
without ``overwrite`` (and, even with it, a folder that is not a listening test). The folder is built in a
temporary folder next to ``out_dir`` and renamed into place when complete: a failed run leaves no ``out_dir``
(and an old one untouched).

In the browser
--------------
Instructions with the scale defined, a short form (listening experience and equipment required, age band
and hearing optional), a training page (the stimuli of one passage to get familiar with, nothing
recorded), then the pages in a random order with the stimuli in a random order under the letters A, B,
..., both drawn from the participant's random session id (``?session=ID`` in the address repeats a
session's orders). All stimuli are decoded up front into Web Audio ``AudioBuffer``\\ s after the first click
(browsers allow audio only after a gesture); switching to another stimulus starts it at the current
playhead (a 5 ms cross-fade), playback loops, and a loop region can be set. A comment field per page and
one at the end. At the end the participant downloads the results (a ``Blob`` and an ``<a download>`` link,
which works from ``file://``) as CSV and, optionally, JSON; nothing is sent anywhere.

The results CSV
---------------
Long format, one row per rating: one per (page, rated stimulus) of the session; the training page has no
rows. The columns, in this order (:data:`CSV_COLUMNS`):

==================  ========================================================================================
``session_id``      the participant's random session id (16 hex digits, or the ``?session=`` value)
``test_id``         id of the generated test (a hash of its configuration): do not pool different tests
``design``          ``mushra`` or ``ape``
``trial_id``        the passage (its folder name)
``page_order``      1-based position at which this participant met the page
``stimulus``        the system (its file name without extension), ``reference`` (the hidden reference) or
                    ``anchor_lp3500`` / ``anchor_mono``
``button``          the letter the participant saw for it (A, B, ...; the button-to-system mapping)
``score``           0-100: the slider (MUSHRA, integer) or the position on the axis (APE, one decimal)
``time_ms``         milliseconds spent on the page (shown to *Next*)
``timestamp``       when the page was completed (ISO 8601, UTC)
``plays``           how many times this stimulus was started on the page
``page_comment``    the page's comment field
``experience``      ``none``, ``listener``, ``musician``, ``amateur`` or ``professional`` (see the form)
``equipment``       ``headphones`` or ``speakers``
``age_band``        ``18-24`` ... ``65+``, ``undisclosed`` or empty
``hearing``         ``normal``, ``impaired``, ``undisclosed`` or empty
``final_comment``   the comment from the last page
==================  ========================================================================================

Fields are quoted as RFC 4180 asks (commas, quotes, line breaks); the form answers repeat on every row.
The JSON file holds the same, nested by page, plus the browser's user agent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
import random
import shutil
import tempfile
import warnings
from collections import Counter
from importlib import resources

import numpy as np

DESIGNS = ("mushra", "ape")
"""The test designs: ``"mushra"`` (ITU-R BS.1534) and ``"ape"`` (De Man & Reiss)."""

MAX_STIMULI = 12
"""The most stimuli one page may rate (Stables et al. 2019: fewer than 12 is better still)."""

REFERENCE = "reference"
"""The reserved system name of the reference (``reference.wav`` in a passage folder)."""

ANCHORS = ("anchor_lp3500", "anchor_mono")
"""The names of the generated MUSHRA low anchors: a 3.5 kHz low-pass and the mono sum of the reference."""

CSV_COLUMNS = ("session_id", "test_id", "design", "trial_id", "page_order", "stimulus", "button", "score",
               "time_ms", "timestamp", "plays", "page_comment", "experience", "equipment", "age_band",
               "hearing", "final_comment")
"""The columns of the results CSV the page downloads, in order (described in the module docstring)."""

CEILING_DBTP = -1.0
"""The true-peak ceiling (dBTP) no written stimulus exceeds."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg")
STATIC_FILES = ("listening.js", "style.css")
MIN_SECONDS = 1.0
_MARKER = "/* automix-lite listening test: configuration */"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def make_test(mixes_dir, out_dir, design: str = "mushra", seconds: float = 10.0, lufs: float = -23.0,
              anchors: bool = True, overwrite: bool = False, seed=None, *, start: float = 0.0,
              fade_ms: float = 50.0, title: str = "Listening test", question: str | None = None,
              training: str | None = None) -> str:
    """Write a static MUSHRA or APE listening test for ``mixes_dir/<passage>/<system>.wav`` into ``out_dir``.

    Each passage folder holds one audio file per system (``reference.wav`` is the reference: required for
    ``design="mushra"``). Stimuli are cut to ``seconds`` from ``start``, faded (``fade_ms``), normalised to
    ``lufs`` and peak-limited (see the module docstring); ``anchors`` adds the MUSHRA low anchors;
    ``training`` names the passage of the training page (default: the first); ``seed`` fixes the file
    numbering (same inputs and seed, same folder). Returns the path of ``out_dir/index.html``.
    Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    _check_options(design, seconds, lufs, start, fade_ms)
    _check_out_dir(out_dir, overwrite, inputs=mixes_dir)
    passages, sr = _read_mixes(mixes_dir)
    return _build(passages, sr, out_dir, design=design, seconds=seconds, lufs=lufs, anchors=anchors,
                  overwrite=overwrite, seed=seed, start=start, fade_ms=fade_ms, title=title, question=question,
                  training=training)


def make_test_from_arrays(passages: dict, sample_rate, out_dir, design: str = "mushra", seconds: float = 10.0,
                          lufs: float = -23.0, anchors: bool = True, overwrite: bool = False, seed=None, *,
                          start: float = 0.0, fade_ms: float = 50.0, title: str = "Listening test",
                          question: str | None = None, training: str | None = None) -> str:
    """:func:`make_test` from memory: ``passages = {passage: {system: audio}}`` at ``sample_rate`` Hz.

    ``audio`` is stereo ``(2, samples)`` (mono ``(samples,)`` or ``(1, samples)`` plays on both channels;
    a leading batch dimension of 1 is dropped; NumPy arrays or CPU tensors); the system ``"reference"`` is
    the reference. The other arguments are :func:`make_test`'s. Returns the path of ``out_dir/index.html``.
    Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    _check_options(design, seconds, lufs, start, fade_ms)
    _check_out_dir(out_dir, overwrite)
    sr = _check_rate(sample_rate)
    if not isinstance(passages, dict) or not passages:
        raise ValueError("passages must be a non-empty dict {passage: {system: (2, samples) array}}.")
    clean = {}
    for passage, systems in passages.items():
        _check_name(passage, "passage")
        if not isinstance(systems, dict):
            raise ValueError(f"passage {passage!r} must map system names to audio arrays; got {type(systems).__name__}.")
        clean[passage] = {}
        for system, x in systems.items():
            _check_name(system, f"system of passage {passage!r}")
            clean[passage][system] = _as_stereo(x, f"passage {passage!r}, system {system!r}")
    return _build(clean, sr, out_dir, design=design, seconds=seconds, lufs=lufs, anchors=anchors,
                  overwrite=overwrite, seed=seed, start=start, fade_ms=fade_ms, title=title, question=question,
                  training=training)


def lowpass_anchor(x: np.ndarray, sample_rate, cutoff_hz: float = 3500.0) -> np.ndarray:
    """The MUSHRA low anchor: ``x`` ``(channels, samples)`` low-passed at ``cutoff_hz`` (zero-phase elliptic
    filter, passband ripple 0.05 dB, more than 90 dB down from about 1.1 x ``cutoff_hz``). Taught in
    ``notebooks/16_listening_tests.ipynb``."""
    from scipy.signal import ellip, sosfiltfilt

    sos = ellip(10, 0.05, 90.0, cutoff_hz, btype="low", fs=float(sample_rate), output="sos")
    return sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


def mono_anchor(x: np.ndarray) -> np.ndarray:
    """The mono anchor: the sum ``(L + R) / 2`` of a stereo ``x`` ``(2, samples)`` on both channels.
    Taught in ``notebooks/16_listening_tests.ipynb``."""
    x = np.asarray(x, dtype=np.float64)
    m = x.mean(axis=0)
    return np.stack([m, m])


def raised_cosine_fade(x: np.ndarray, sample_rate, fade_ms: float = 50.0) -> np.ndarray:
    """``x`` ``(channels, samples)`` with a raised-cosine fade-in and fade-out of ``fade_ms`` each (at most a
    quarter of the length), starting and ending at exactly zero. Taught in ``notebooks/16_listening_tests.ipynb``."""
    x = np.array(x, dtype=np.float64)
    n = min(int(round(fade_ms * 1e-3 * float(sample_rate))), x.shape[-1] // 4)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)  # 0 ... just below 1
        x[..., :n] *= ramp
        x[..., -n:] *= ramp[::-1]
    return x


def true_peak_db(x: np.ndarray) -> float:
    """True peak (dBTP) of ``x`` ``(channels, samples)``: the sample peak after 4x polyphase oversampling
    (ITU-R BS.1770 annex 2). Taught in ``notebooks/16_listening_tests.ipynb``."""
    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float64)
    peak = max(float(np.max(np.abs(x))), float(np.max(np.abs(resample_poly(x, 4, 1, axis=-1)))))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def loudness(x: np.ndarray, sample_rate) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770 via pyloudnorm) of ``x`` ``(channels, samples)``.
    Taught in ``notebooks/16_listening_tests.ipynb``."""
    import pyloudnorm

    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm's "possible clipped samples" notice
        return float(pyloudnorm.Meter(float(sample_rate)).integrated_loudness(x.T))


# --------------------------------------------------------------------------------------------
# Checks and reading
# --------------------------------------------------------------------------------------------


def _check_options(design, seconds, lufs, start, fade_ms):
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}; got {design!r}.")
    for name, value, low in (("seconds", seconds, MIN_SECONDS), ("start", start, 0.0), ("fade_ms", fade_ms, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
            raise ValueError(f"{name} must be a number of at least {low:g}; got {value!r}.")
    if isinstance(lufs, bool) or not isinstance(lufs, (int, float)) or not -70.0 <= lufs <= -5.0:
        raise ValueError(f"lufs must be a loudness between -70 and -5 LUFS (e.g. -23); got {lufs!r}.")


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(sample_rate) or sample_rate < 8000 or sample_rate != int(sample_rate):
        raise ValueError(f"sample_rate must be a whole number of Hz of at least 8000 (e.g. 44100); got {sample_rate!r}.")
    return int(sample_rate)


def _check_name(name, what):
    if not isinstance(name, str) or not name.strip() or name != name.strip() or any(c in name for c in "/\\\n\r\t"):
        raise ValueError(f"each {what} name must be a plain non-empty string (no slashes, line breaks or "
                         f"surrounding spaces); got {name!r}.")


def _within(path, folder) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_out_dir(out_dir, overwrite, inputs=None) -> str:
    """Refuse, before any work, an ``out_dir`` that exists (without ``overwrite``), is not a listening test
    (with it), is a file, overlaps the inputs, or whose parent folder is missing."""
    out = os.path.abspath(os.fspath(out_dir))
    if inputs is not None and (_within(out, inputs) or _within(inputs, out)):
        raise ValueError(f"the test folder {out} and the mixes folder {os.fspath(inputs)} overlap; write the test "
                         "somewhere outside the mixes (and not around them).")
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(out):
            raise ValueError(f"{out} exists and is not a folder; choose another name for the test folder.")
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or "
                                  "choose another folder.")
        if not _is_test_folder(out):
            raise ValueError(f"refusing to replace {out}: it is not a listening test written by automix (no "
                             "config.js of ours); remove it yourself or choose another folder.")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"the folder {parent} (where the test folder goes) does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {parent} (where the test folder goes); choose a location you can "
                              "write to.")
    return out


def _is_test_folder(path) -> bool:
    try:
        with open(os.path.join(path, "config.js"), encoding="utf-8") as f:
            return f.readline().strip() == _MARKER
    except OSError:
        return False


def _read_mixes(mixes_dir) -> tuple:
    """``({passage: {system: (2, T) float64}}, sample_rate)`` from ``mixes_dir/<passage>/<system>.<ext>``."""
    import soundfile as sf

    root = os.fspath(mixes_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"the mixes folder {root} does not exist (expected {root}/<passage>/<system>.wav).")
    files = {}
    for passage in sorted(os.listdir(root)):
        folder = os.path.join(root, passage)
        if passage.startswith(".") or not os.path.isdir(folder):
            continue
        found = {}
        for name in sorted(os.listdir(folder)):
            system, ext = os.path.splitext(name)
            if name.startswith(".") or ext.lower() not in AUDIO_EXTENSIONS:
                continue
            if system in found:
                raise ValueError(f"{folder} holds two files for the system {system!r} ({os.path.basename(found[system])} "
                                 f"and {name}); keep one.")
            found[system] = os.path.join(folder, name)
        if found:
            files[passage] = found
    if not files:
        raise ValueError(f"no passages in {root}: it needs one folder per passage, each with one audio file per "
                         f"system ({root}/<passage>/<system>.wav, optionally reference.wav).")
    audio, rates = {}, {}
    for passage, found in files.items():
        audio[passage] = {}
        for system, path in found.items():
            try:
                data, rate = sf.read(path, dtype="float64", always_2d=True)
            except (sf.SoundFileError, RuntimeError, OSError) as err:
                raise ValueError(f"cannot read {path} as audio ({str(err).splitlines()[0]}); replace or remove it.") from None
            audio[passage][system] = _as_stereo(data.T, path)
            rates[path] = int(rate)
    counts = Counter(rates.values())
    sr = max(counts, key=lambda r: (counts[r], r))
    other = [p for p, r in rates.items() if r != sr]
    if other:
        from scipy.signal import resample_poly

        warnings.warn(f"{len(other)} file(s) are not at {sr} Hz (e.g. {other[0]} at {rates[other[0]]} Hz); resampled "
                      f"them to {sr} Hz, the rate of most files.", stacklevel=3)
        for passage, found in files.items():
            for system, path in found.items():
                if rates[path] != sr:
                    g = math.gcd(sr, rates[path])
                    audio[passage][system] = resample_poly(audio[passage][system], sr // g, rates[path] // g, axis=-1)
    return audio, sr


def _as_stereo(x, what) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: not an audio array ({type(x).__name__}).") from None
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise ValueError(f"{what}: expected mono or stereo audio shaped (2, samples); got shape {a.shape}.")
    if a.shape[1] == 0:
        raise ValueError(f"{what}: has no samples.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: contains NaN or infinite samples.")
    return np.repeat(a, 2, axis=0) if a.shape[0] == 1 else a


# --------------------------------------------------------------------------------------------
# Building the folder
# --------------------------------------------------------------------------------------------


def _stimuli(passages, sr, design, seconds, lufs, anchors, start, fade_ms) -> dict:
    """``{passage: {stimulus: (2, n) float64}}``: trimmed, faded, anchored, loudness-matched, limited."""
    if design == "mushra":
        missing = [p for p, s in passages.items() if REFERENCE not in s]
        if missing:
            raise ValueError(f"MUSHRA needs a reference in every passage: {missing[0]!r}"
                             f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} has no reference.wav. "
                             "Add one, or use the APE design (--design ape), which needs none.")
    for passage, systems in passages.items():
        clash = [s for s in systems if s in ANCHORS]
        if clash:
            raise ValueError(f"passage {passage!r}: the system name {clash[0]!r} is reserved for a generated anchor; "
                             "rename the file.")
        rated = [s for s in systems if s != REFERENCE]
        if len(rated) < 2:
            raise ValueError(f"passage {passage!r} has {len(rated)} system(s) ({', '.join(rated) or 'none'}) besides "
                             "the reference; a multi-stimulus test compares at least two. Add mixes or drop the passage.")
        extra = (1 + (len(ANCHORS) if anchors else 0)) if design == "mushra" else (1 if REFERENCE in systems else 0)
        total = len(rated) + extra
        if total > MAX_STIMULI:
            what = (f"{len(rated)} systems + the hidden reference" + (f" + {len(ANCHORS)} anchors" if anchors else "")
                    if design == "mushra" else f"{len(rated)} systems" + (" + the reference" if extra else ""))
            hint = " or drop the anchors (--no-anchors, anchors=False)" if design == "mushra" and anchors else ""
            raise ValueError(f"passage {passage!r} would put {total} stimuli on one page ({what}); a page takes at most "
                             f"{MAX_STIMULI}. Split the systems into two tests{hint}.")
    out = {}
    for passage, systems in passages.items():
        s0 = int(round(start * sr))
        shortest = min(x.shape[-1] for x in systems.values())
        n = min(int(round(seconds * sr)), shortest - s0)
        if n < MIN_SECONDS * sr:
            raise ValueError(f"passage {passage!r}: from {start:g} s on, its shortest file has {max(n, 0) / sr:.2f} s; "
                             f"stimuli need at least {MIN_SECONDS:g} s. Use longer files or an earlier start.")
        if n < int(round(seconds * sr)):
            warnings.warn(f"passage {passage!r}: its shortest file ends {n / sr:.2f} s after the start; its stimuli "
                          f"are {n / sr:.2f} s long instead of {seconds:g} s.", stacklevel=4)
        page = {name: raised_cosine_fade(x[:, s0:s0 + n], sr, fade_ms) for name, x in systems.items()}
        for name, x in page.items():
            if not np.any(x):
                raise ValueError(f"passage {passage!r}, system {name!r} is silent in the tested excerpt; it cannot be "
                                 "loudness-matched. Check the file (or the start time).")
        if design == "mushra" and anchors:
            ref = page[REFERENCE]
            page[ANCHORS[0]] = raised_cosine_fade(lowpass_anchor(ref, sr), sr, fade_ms)
            page[ANCHORS[1]] = mono_anchor(ref)
        gains = {}
        for name, x in page.items():
            level = loudness(x, sr)
            if not math.isfinite(level):
                raise ValueError(f"passage {passage!r}, system {name!r} is silent (no 400 ms block above -70 LUFS) in "
                                 "the tested excerpt; it cannot be loudness-matched. Check the file.")
            gains[name] = lufs - level
        over = {name: true_peak_db(x) + gains[name] - CEILING_DBTP for name, x in page.items()}
        worst = max(over, key=over.get)
        cut = max(over[worst], 0.0)
        if cut > 0.05:
            warnings.warn(f"passage {passage!r}: turned every stimulus down {cut:.1f} dB more than asked (to "
                          f"{lufs - cut:.1f} LUFS) so that {worst!r} stays below {CEILING_DBTP:g} dBTP; they stay "
                          f"loudness-matched. A lower target (e.g. lufs={math.floor(lufs - cut):.0f}) avoids this.",
                          stacklevel=4)
        out[passage] = {name: x * 10 ** ((gains[name] - cut) / 20) for name, x in page.items()}
    return out


def _wav_bytes(x, sr) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x.T, -1.0, 1.0 - 2 ** -15), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _static(name) -> str:
    return resources.files("automix_lite.listening").joinpath("static", name).read_text(encoding="utf-8")


def _build(passages, sr, out_dir, *, design, seconds, lufs, anchors, overwrite, seed, start, fade_ms, title,
           question, training) -> str:
    out = _check_out_dir(out_dir, overwrite)
    if training is None:
        training = next(iter(passages))
    elif training not in passages:
        raise ValueError(f"training passage {training!r} is not one of the passages ({', '.join(passages)}).")
    stimuli = _stimuli(passages, sr, design, seconds, lufs, anchors, start, fade_ms)
    if question is None:
        question = ("Rate the overall quality of each mix (balance, spectrum, dynamics, stereo image) against the "
                    "reference." if design == "mushra" else
                    "Place each mix on the scale by your preference for its overall quality (balance, spectrum, "
                    "dynamics, stereo image).")
    total = sum(len(p) for p in stimuli.values())
    numbers = list(range(1, total + 1))
    random.Random(seed).shuffle(numbers)
    numbers = iter(numbers)
    pages, files = [], {}
    for passage, page in stimuli.items():
        entries = []
        for name, x in page.items():
            key = f"{next(numbers):03d}"
            files[key] = _wav_bytes(x, sr)
            entries.append({"system": name, "file": key})
        ref = next((e["file"] for e in entries if e["system"] == REFERENCE), None) if design == "mushra" else None
        duration = round(next(iter(page.values())).shape[-1] / sr, 3)
        pages.append({"id": passage, "reference": ref, "stimuli": entries, "duration": duration})
    config = {"design": design, "title": title, "question": question, "training": training, "pages": pages,
              "sample_rate": sr, "lufs": lufs, "csv_columns": list(CSV_COLUMNS), "max_stimuli": MAX_STIMULI}
    body = json.dumps(config, indent=1, sort_keys=True)
    config["test_id"] = hashlib.sha256(body.encode() + b"".join(files[k] for k in sorted(files))).hexdigest()[:12]
    config_js = f"{_MARKER}\nwindow.LT_CONFIG = {json.dumps(config, indent=1, sort_keys=True)};\n"
    page_html = _static("index.html").replace("__TITLE__", html.escape(title))

    parent = os.path.dirname(out)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".partial", dir=parent)
    try:
        os.mkdir(os.path.join(tmp, "stimuli"))
        for key, data in files.items():
            with open(os.path.join(tmp, "stimuli", f"{key}.wav"), "wb") as f:
                f.write(data)
            with open(os.path.join(tmp, "stimuli", f"{key}.js"), "w", encoding="ascii") as f:
                f.write(f'(window.LT_AUDIO = window.LT_AUDIO || {{}})["{key}"] = "'
                        f'{base64.b64encode(data).decode("ascii")}";\n')
        for name in STATIC_FILES:
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(_static(name))
        with open(os.path.join(tmp, "config.js"), "w", encoding="utf-8") as f:
            f.write(config_js)
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as f:
            f.write(page_html)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        old = None
        if os.path.lexists(out):
            if not overwrite or not _is_test_folder(out):  # appeared while we worked
                raise FileExistsError(f"{out} appeared while the test was being written; nothing was replaced.")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".old", dir=parent)
            os.rename(out, os.path.join(old, "test"))
        try:
            os.rename(tmp, out)
        except OSError:
            if old:
                os.rename(os.path.join(old, "test"), out)
                os.rmdir(old)
            raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(out, "index.html")
