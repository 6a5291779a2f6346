"""automix_lite.metrics: closed forms, invariances and bad input."""

import math

import pytest
import torch

from automix_lite import metrics
from automix_lite.dsp import pan
from conftest import SR, noise


def _source(seconds=1.0, seed=0):
    return noise(1, 1, int(seconds * SR), seed=seed, scale=0.1, dtype=torch.float32)


def test_side_to_mid_db_closed_forms():
    x = _source()
    assert metrics.side_to_mid_db(torch.cat([x, x], 1)) == -math.inf  # mono
    assert metrics.side_to_mid_db(torch.cat([x, torch.zeros_like(x)], 1)) == pytest.approx(0.0, abs=1e-9)  # hard left
    assert metrics.side_to_mid_db(torch.cat([x, 0.5 * x], 1)[0]) == pytest.approx(20 * math.log10(0.5 / 1.5), abs=1e-6)
    with pytest.raises(ValueError, match="silent"):
        metrics.side_to_mid_db(torch.cat([x, -x], 1))


def test_matched_stereo_loss_ignores_level_and_mirror_but_not_panning():
    x, y = _source(seed=1), _source(seed=2)
    target = pan(x, 0.2) + pan(y, 0.7)
    assert metrics.matched_stereo_loss(target * 0.25, target, SR) == pytest.approx(0.0, abs=1e-4)
    mirrored = target.flip(1)
    assert metrics.matched_stereo_loss(mirrored, target, SR) == pytest.approx(0.0, abs=1e-4)
    centred = pan(x, 0.5) + pan(y, 0.5)
    assert metrics.matched_stereo_loss(centred, target, SR) > 0.5
    # the user's tensors are left as they were
    before = centred.clone()
    metrics.matched_stereo_loss(centred, target, SR)
    assert torch.equal(centred, before)


def test_gain_and_pan_errors():
    ref = {"gain_db": torch.tensor([[0.0, -3.0, 6.0]]), "pan": torch.tensor([[0.5, 0.2, 0.9]])}
    offset = {"gain_db": ref["gain_db"] + 4.0, "pan": 1 - ref["pan"]}
    assert metrics.gain_error_db(offset, ref) == pytest.approx(0.0, abs=1e-12)
    assert metrics.pan_error(offset, ref) == pytest.approx(0.0, abs=1e-6)  # float32 pans
    assert metrics.pan_error(offset, ref, mirror=False) == pytest.approx((0.0 + 0.6 + 0.8) / 3)
    one = {"gain_db": torch.tensor([[3.0, -3.0, 6.0]]), "pan": ref["pan"]}
    assert metrics.gain_error_db(one, ref) == pytest.approx((2 + 1 + 1) / 3)  # +3 dB on one track, offset 1 dB
    with pytest.raises(ValueError, match="same song"):
        metrics.gain_error_db({"gain_db": torch.zeros(1, 2)}, ref)
