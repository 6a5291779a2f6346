"""Differentiable audio effects on tensors shaped ``(batch, channels, samples)``.

Functional core; parameters in real units (dB, Hz, ms, s) as floats or ``(batch,)`` tensors, each
module's docstring names the notebook that teaches it:

- :mod:`.panning`  gain and panning laws (notebooks/02_gain_loudness_panning.ipynb)
- :mod:`.biquad`   RBJ biquads, exact IIR filtering, parametric EQ (notebooks/03_equalization.ipynb)
- :mod:`.dynamics` compressor, limiter, expander, gate (notebooks/04_dynamics.ipynb)
- :mod:`.reverb`   impulse responses, FFT convolution, Schroeder and FDN reverbs (notebooks/05_reverb.ipynb)
- :mod:`.console`  channel strip and mixing console (notebooks/06_channel_strip_console.ipynb)
"""

from .panning import LAWS, db_to_gain, gain, gain_to_db, pan, pan_gains  # noqa: F401
from .biquad import (  # noqa: F401
    EQ_RANGES,
    FILTER_TYPES,
    biquad_coefficients,
    biquad_sos,
    crossover,
    linkwitz_riley_sos,
    parametric_eq,
    parametric_eq_sos,
    sosfilt,
    sosfilt_freq,
    sosfreqz,
)
from .dynamics import (  # noqa: F401
    COMPRESSOR_RANGES,
    GATE_RATIO,
    LIMITER_RATIO,
    compressor,
    compressor_gain,
    expander,
    gate,
    limiter,
    static_curve,
)
from .reverb import (  # noqa: F401
    FDN_DELAYS_MS,
    REVERB_RANGES,
    SCHROEDER_ALLPASS_MS,
    SCHROEDER_COMB_MS,
    allpass_filter,
    comb_filter,
    energy_decay_curve,
    fdn_impulse_response,
    fdn_reverb,
    fft_convolve,
    measure_t60,
    reverb,
    reverb_impulse_response,
    schroeder_impulse_response,
    schroeder_reverb,
)
from .console import (  # noqa: F401
    DEFAULT_PAN_LAW,
    SPECS,
    ChannelStrip,
    MixingConsole,
    ParamSpec,
    channel_strip,
    default_params,
    describe,
    mix,
    pack_params,
    param_names,
    param_rows,
    params_from_normalized,
    params_to_normalized,
    random_params,
    strip_eq_sos,
    unpack_params,
    wet_stems,
)
