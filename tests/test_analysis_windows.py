"""inference.analysis_windows: the windows estimate_params analyses (chapter 3.4 states their number)."""

import math

import pytest

from automix_lite import inference, pretrained

SR = 44100


@pytest.mark.parametrize("seconds, analysis, count", [(60, 60, 16), (60, 30, 9), (60, 12, 4), (8, 30, 3)])
def test_a_bundled_dmc_analyses_one_training_segment_per_window(seconds, analysis, count):
    model = pretrained.load("dmc_basic_songs")
    length, starts = inference.analysis_windows(model, seconds * SR, SR, analysis_seconds=analysis)
    assert length == int(model.segment_seconds * SR) == 4 * SR
    assert len(starts) == count == math.ceil(min(seconds, analysis) / model.segment_seconds) + 1
    assert starts[0] == 0 and starts[-1] + length == seconds * SR  # spread from the start to the end
    assert starts == sorted(starts)


def test_a_song_shorter_than_a_window_is_one_window_and_a_model_without_parameters_sees_it_whole():
    dmc = pretrained.load("dmc_basic_songs")
    assert inference.analysis_windows(dmc, 3 * SR, SR) == (4 * SR, [0])
    wun = pretrained.load("wave_u_net_drums")
    length, starts = inference.analysis_windows(wun, 20 * SR, SR)
    assert (length, starts) == ((int(wun.segment_seconds * SR), starts) if wun.segment_seconds else (20 * SR, [0]))
