"""Neural networks for automatic mixing.

- :mod:`.tcn`  FiLM-conditioned temporal convolutional network, the neural proxy of the channel strip
  (Steinmetz 2020, sec. 4.3.1; notebooks/09_neural_proxies.ipynb)
- :mod:`.proxy`  the channel chain EQ -> compressor -> reverb, its TCN proxy, data, training, evaluation
  (sec. 4.2.5-4.6; notebooks/09_neural_proxies.ipynb)
- :mod:`.dmc`  the Differentiable Mixing Console with basic, DSP and proxy consoles (thesis ch. 5;
  notebooks/12_models.ipynb)
- :mod:`.wave_u_net`  the Mix-Wave-U-Net, mixing by direct transformation (notebooks/12_models.ipynb)
"""

from .dmc import DMC  # noqa: F401
from .tcn import PRESETS, TCN, FiLM, TCNBlock, center_crop, receptive_field  # noqa: F401
from .wave_u_net import MixWaveUNet  # noqa: F401

_PROXY_NAMES = ("BUNDLED_CHECKPOINT", "CASES", "METRICS", "PROCESSORS", "THESIS_TCN20", "ProxySpec", "bypass",
                "channel_chain", "denormalize", "evaluate", "format_table", "gradient_agreement", "load_checkpoint",
                "load_proxy", "make_batch", "normalize", "sample_params", "save_checkpoint", "train", "training_stems")


def __getattr__(name):
    """The proxy's names are imported on first use, so ``python -m automix_lite.models.proxy`` runs cleanly."""
    if name in _PROXY_NAMES:
        from . import proxy

        return getattr(proxy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
