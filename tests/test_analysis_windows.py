"""inference.analysis_windows: the windows estimate_params analyses (chapter 3.4 states their number)."""

import math

import pytest
import torch

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
    wun = pretrained.load("wave_u_net_drums")  # trained on 1 s segments: 20 + 1 windows of 1 s over 20 s
    length, starts = inference.analysis_windows(wun, 20 * SR, SR)
    assert length == SR
    assert starts == [round(k * 19 * SR / 20) for k in range(21)]  # 0, 0.95 s, ..., 19 s


class _Bare(torch.nn.Module):
    """A mixer that records no training segment length (segment_seconds None)."""

    segment_seconds = None
    sample_rate = SR


def test_without_a_segment_length_a_dmc_gets_six_windows_and_any_other_model_the_whole_song():
    from automix_lite.models.dmc import DMC

    dmc = DMC(max_tracks=2)
    dmc.segment_seconds = None
    assert inference.analysis_windows(dmc, 60 * SR, SR) == (5 * SR, [round(k * 55 * SR / 5) for k in range(6)])
    assert inference.analysis_windows(dmc, 20 * SR, SR) == (20 * SR, [0])  # shorter than 30 s: heard whole
    assert inference.analysis_windows(_Bare(), 60 * SR, SR) == (60 * SR, [0])
