"""Neural networks for automatic mixing.

- :mod:`.tcn`  FiLM-conditioned temporal convolutional network, the neural proxy of the channel strip
  (Steinmetz 2020, sec. 4.3.1; notebooks/09_neural_proxies.ipynb)
- :mod:`.proxy`  the channel chain EQ -> compressor -> reverb, its TCN proxy, data, its part of the training
  loop, evaluation (sec. 4.2.5-4.6; notebooks/09_neural_proxies.ipynb). Its names are used as
  ``from automix_lite.models import proxy; proxy.channel_chain(...)``: this package does not re-export them,
  so that ``train``, ``evaluate``, ``load_checkpoint`` here never stand for the proxy's (training is
  :func:`automix_lite.train.train`, evaluation :mod:`automix_lite.evaluation`).
- :mod:`.dmc`  the Differentiable Mixing Console with basic, DSP and proxy consoles (thesis ch. 5;
  notebooks/12_models.ipynb)
- :mod:`.wave_u_net`  the Mix-Wave-U-Net, mixing by direct transformation (notebooks/12_models.ipynb)
"""

from .dmc import DMC  # noqa: F401
from .tcn import PRESETS, TCN, FiLM, TCNBlock, center_crop, receptive_field  # noqa: F401
from .wave_u_net import MixWaveUNet  # noqa: F401
