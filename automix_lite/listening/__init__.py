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

# The statistics need pandas and scikit-posthocs (the [notebooks] extra); the page generator does not, so
# `automix listening-test` works with the core package alone: the analysis is imported when first used.
_ANALYSIS = ("ListeningAnalysis", "analyse", "listeners_needed", "load_ratings", "plot_scores", "power_analysis",
             "screen_listeners", "simulate_panel")


def __getattr__(name):
    if name in _ANALYSIS:
        try:
            from . import analysis
        except ImportError as err:
            raise ImportError(f"automix_lite.listening.{name} needs pandas and scikit-posthocs ({err}); install them "
                              "with `pip install \"automix-lite[notebooks]\"`.") from None
        return getattr(analysis, name)
    raise AttributeError(f"module 'automix_lite.listening' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ANALYSIS))
