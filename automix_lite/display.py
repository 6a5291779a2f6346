"""Audio players and standard plots for the notebooks.

Players never normalise: two clips at different levels sound at different levels, so a reader hears
what a gain, a compressor or an EQ did. Clips are capped in length and embedded as MP3 (through
soundfile/libsndfile) to keep the built pages small: a 6 s stereo clip is about 100 kB instead of
1 MB of WAV. The MP3 codec changes levels by a fraction of a dB at most.
"""

from __future__ import annotations

import html
import warnings
from typing import Mapping

import numpy as np

DISPLAY_RATE = 44100  # clips above this rate are resampled for display
MAX_SECONDS = 6.0


def _to_numpy(audio) -> np.ndarray:
    try:
        import torch

        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(f"a player takes one clip; got a batch of {a.shape[0]} (index one item, e.g. x[0]).")
        a = a[0]
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise ValueError(f"a player takes (samples,), (channels, samples) or (1, channels, samples) with 1 or 2 channels; got {a.shape}.")
    return a


def _prepare(audio, sample_rate: int, max_seconds: float, display_rate: int | None):
    a = _to_numpy(audio)
    if not np.all(np.isfinite(a)):
        raise ValueError("cannot play audio that contains NaN or inf samples.")
    a = a[:, : int(round(max_seconds * sample_rate))]
    rate = int(sample_rate)
    if display_rate is not None and display_rate < sample_rate:
        from scipy.signal import resample_poly
        from math import gcd

        g = gcd(int(display_rate), rate)
        a = resample_poly(a, int(display_rate) // g, rate // g, axis=-1)
        rate = int(display_rate)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if peak > 1.0:
        warnings.warn(f"clip peaks at {20 * np.log10(peak):+.1f} dBFS and is clipped for playback (levels are not normalised).")
        a = np.clip(a, -1.0, 1.0)
    return a, rate


def player_html(audio, sample_rate: int, max_seconds: float = MAX_SECONDS, display_rate: int | None = DISPLAY_RATE) -> str:
    """HTML ``<audio>`` element (base64 MP3) for a clip, without normalisation."""
    import base64
    import io

    import soundfile as sf

    a, rate = _prepare(audio, sample_rate, max_seconds, display_rate)
    buf = io.BytesIO()
    sf.write(buf, a.T, rate, format="MP3", subtype="MPEG_LAYER_III")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<audio controls preload="metadata"><source src="data:audio/mpeg;base64,{data}" type="audio/mpeg"></audio>'



def play(audio, sample_rate: int, max_seconds: float = MAX_SECONDS, display_rate: int | None = DISPLAY_RATE):
    """Display one player. ``audio`` is ``(samples,)``, ``(channels, samples)`` or ``(1, channels, samples)``."""
    from IPython.display import HTML, display

    display(HTML(player_html(audio, sample_rate, max_seconds, display_rate)))


def table_html(clips: Mapping[str, object], sample_rate: int, max_seconds: float = MAX_SECONDS,
               display_rate: int | None = DISPLAY_RATE, notes: Mapping[str, str] | None = None) -> str:
    """HTML of a table of labelled players; ``notes`` adds a text column. Inside an ipywidgets callback,
    put it into a ``widgets.HTML`` value rather than displaying it: large outputs printed by an
    ``interactive`` callback can stall notebook runners (nbclient) until their timeout."""
    rows = []
    for label, audio in clips.items():
        note = f"<td>{html.escape(notes[label])}</td>" if notes and label in notes else ("<td></td>" if notes else "")
        rows.append(f"<tr><td><b>{html.escape(label)}</b></td><td>{player_html(audio, sample_rate, max_seconds, display_rate)}</td>{note}</tr>")
    return "<table class='automix-players'>" + "".join(rows) + "</table>"


def play_table(clips: Mapping[str, object], sample_rate: int, max_seconds: float = MAX_SECONDS,
               display_rate: int | None = DISPLAY_RATE, notes: Mapping[str, str] | None = None):
    """Display a table of labelled players (A/B comparisons, ``table_html``); ``notes`` adds a text column."""
    from IPython.display import HTML, display

    display(HTML(table_html(clips, sample_rate, max_seconds, display_rate, notes)))


def details(summary: str, markdown: str):
    """A collapsed block (HTML ``<details>``) with ``markdown`` inside, e.g. a model card in chapter 3.4
    (``notebooks/14_inference.ipynb``); it opens on a click in Jupyter, Colab and the built book."""
    from IPython.display import Markdown

    return Markdown(f"<details><summary>{html.escape(summary)}</summary>\n\n{markdown.strip()}\n\n</details>")


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure, which is then closed: for a ``widgets.Image`` that a widget callback
    updates (a callback that draws into the cell's output can stall notebook execution in nbclient)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def peak_db(audio) -> float:
    """Peak level in dBFS."""
    a = _to_numpy(audio)
    return float(20 * np.log10(max(np.max(np.abs(a)), 1e-12)))


def rms_db(audio) -> float:
    """RMS level in dBFS (all channels together)."""
    a = _to_numpy(audio)
    return float(10 * np.log10(max(np.mean(a**2), 1e-24)))


def plot_waveforms(clips: Mapping[str, object], sample_rate: int, ax=None, max_seconds: float | None = None, alpha: float = 0.8):
    """Overlay the waveforms (first channel) of several clips on one time axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    for label, audio in clips.items():
        a = _to_numpy(audio)[0]
        if max_seconds is not None:
            a = a[: int(max_seconds * sample_rate)]
        ax.plot(np.arange(len(a)) / sample_rate, a, label=label, alpha=alpha, lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return ax


def plot_spectrum(clips: Mapping[str, object], sample_rate: int, ax=None, n_fft: int = 4096):
    """Overlay long-term average spectra (Welch, dB) of several clips on a log-frequency axis."""
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    for label, audio in clips.items():
        a = _to_numpy(audio).mean(axis=0)
        f, p = welch(a, fs=sample_rate, nperseg=min(n_fft, len(a)))
        ax.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), label=label, lw=1)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (dB/Hz)")
    ax.set_xlim(20, sample_rate / 2)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return ax
