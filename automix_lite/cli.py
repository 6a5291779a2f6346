"""The ``automix`` command.

``automix info`` reports the package, run mode, device and library versions, and lists the effects
of :mod:`automix_lite.dsp` with their parameter ranges. Mixing, training and evaluation commands
arrive with the chapters that teach them (Parts 2-4).
"""

from __future__ import annotations

import argparse
import platform
import sys


def _info(args) -> int:
    import numba
    import numpy
    import scipy
    import torch

    import automix_lite
    from automix_lite import config, dsp

    try:
        import torchaudio

        ta = torchaudio.__version__
    except ImportError:
        ta = "not installed (optional)"
    print(f"automix-lite {automix_lite.__version__}")
    print(f"run mode     {config.mode()} (AUTOMIX_MODE)")
    print(f"device       {config.device()}")
    print(f"python       {platform.python_version()}")
    for name, version in (("torch", torch.__version__), ("torchaudio", ta), ("numpy", numpy.__version__),
                          ("scipy", scipy.__version__), ("numba", numba.__version__)):
        print(f"{name:<12} {version}")
    print("\nparameter ranges (low, high, unit):")
    for title, ranges in (("EQ", dsp.EQ_RANGES), ("compressor", dsp.COMPRESSOR_RANGES), ("reverb", dsp.REVERB_RANGES)):
        print(f"  {title}")
        for key, value in ranges.items():
            low, high, unit = value
            print(f"    {key:<18} {low:g} .. {high:g} {unit}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="automix", description="automix-lite: differentiable mixing tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, run mode, device and effect parameter ranges").set_defaults(func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
