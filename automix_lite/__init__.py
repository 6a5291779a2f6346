"""automix_lite: the package behind the *Deep Learning for Automatic Mixing* curriculum.

Functional, differentiable audio effects on ``torch`` tensors shaped ``(batch, channels, samples)``
(:mod:`automix_lite.dsp`), the one parameter table, typed mix parameters and parameter files
(:mod:`automix_lite.parameters`), the mixer interface (:mod:`automix_lite.mixer`), run-mode configuration
(:mod:`automix_lite.config`), audio helpers (:mod:`automix_lite.audio`) and notebook display helpers
(:mod:`automix_lite.display`).
"""

__version__ = "0.1.0"

from . import config  # noqa: F401  (light: no heavy imports)
