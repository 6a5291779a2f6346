"""Differentiable audio effects on tensors shaped ``(batch, channels, samples)``.

Functional core; parameters in real units (dB, Hz, ms, s) as floats or ``(batch,)`` tensors.
"""

from .panning import LAWS, db_to_gain, gain, gain_to_db, pan, pan_gains  # noqa: F401
