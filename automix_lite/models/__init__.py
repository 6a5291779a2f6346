"""Neural networks for automatic mixing.

- :mod:`.tcn`  FiLM-conditioned temporal convolutional network, the neural proxy of the channel strip
  (Steinmetz 2020, sec. 4.3.1; notebooks/09_neural_proxies.ipynb)
"""

from .tcn import PRESETS, TCN, FiLM, TCNBlock, center_crop, receptive_field  # noqa: F401
