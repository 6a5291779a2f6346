"""Listening tests (chapter 4.2, ``notebooks/16_listening_tests.ipynb``).

- :mod:`automix_lite.listening.page`: :func:`make_test` / :func:`make_test_from_arrays` write a self-contained
  static MUSHRA or APE test (``index.html``, its script, style and stimuli) that runs from ``file://`` or any
  static host; the participant downloads the results as CSV (columns: :data:`CSV_COLUMNS`, described in the
  module's docstring). ``automix listening-test MIXES --out DIR --design {mushra,ape}`` on the command line.
- :mod:`automix_lite.listening.analysis`: the statistics of those CSV files.
"""

from .page import (  # noqa: F401
    ANCHORS,
    CSV_COLUMNS,
    DESIGNS,
    MAX_STIMULI,
    REFERENCE,
    loudness,
    lowpass_anchor,
    make_test,
    make_test_from_arrays,
    mono_anchor,
    raised_cosine_fade,
    true_peak_db,
)

# analysis: `from .analysis import ...` goes on the line below (added with analysis.py).
from .analysis import ListeningAnalysis, analyse, load_ratings, plot_scores, power_analysis, screen_listeners, simulate_panel  # noqa: F401,E501
