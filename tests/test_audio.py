"""Audio files, resampling and loudness (automix_lite.audio)."""

import math
import warnings

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from automix_lite import audio
from automix_lite.dsp import panning


def sine(freq, sr, seconds, amplitude=1.0, dtype=torch.float32):
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amplitude * torch.sin(2 * math.pi * freq * t)).to(dtype).view(1, 1, -1)


def peak_frequency(x, sr):
    a = x.flatten().double().numpy()
    spectrum = np.abs(np.fft.rfft(a * np.hanning(len(a))))
    return np.argmax(spectrum) * sr / len(a)


def test_db_helpers_are_reexported_from_panning():
    assert audio.db_to_gain is panning.db_to_gain
    assert audio.gain_to_db is panning.gain_to_db


@pytest.mark.parametrize("subtype, atol", [("PCM_24", 2.0**-23), ("PCM_16", 2.0**-15), ("FLOAT", 0.0)])
def test_save_load_round_trip(tmp_path, subtype, atol):
    x = torch.rand(1, 2, 1000) * 1.8 - 0.9
    path = audio.save(tmp_path / "clip.wav", x, 22050, subtype=subtype)
    y, sr = audio.load(path)
    assert sr == 22050 and isinstance(sr, int)
    assert y.shape == (1, 2, 1000) and y.dtype == torch.float32
    torch.testing.assert_close(y, x, atol=atol, rtol=0)
    info = sf.info(path)
    assert (info.channels, info.frames, info.subtype) == (2, 1000, subtype)
    mono, _ = audio.load(path, mono=True)
    torch.testing.assert_close(mono, y.mean(dim=1, keepdim=True))


def test_save_accepts_1d_2d_and_flac(tmp_path):
    x = torch.linspace(-0.5, 0.5, 800)
    audio.save(tmp_path / "a.flac", x, 8000)
    audio.save(tmp_path / "b.wav", x.view(1, -1).numpy(), 8000)
    for name in ("a.flac", "b.wav"):
        y, sr = audio.load(tmp_path / name)
        assert y.shape == (1, 1, 800) and sr == 8000
        torch.testing.assert_close(y.flatten(), x, atol=2.0**-23, rtol=0)


def test_load_resamples_to_the_requested_rate(tmp_path):
    x = sine(1000.0, 48000, 1.0, amplitude=0.5)
    path = audio.save(tmp_path / "sine48k.wav", x, 48000, subtype="FLOAT")
    y, sr = audio.load(path, sample_rate=44100)
    assert sr == 44100
    assert y.shape[-1] == math.ceil(48000 * 147 / 160) == 44100
    assert peak_frequency(y, 44100) == pytest.approx(1000.0, abs=1.0)
    # away from the edges the resampled sine is the same sine sampled at 44.1 kHz
    ref = sine(1000.0, 44100, 1.0, amplitude=0.5)
    torch.testing.assert_close(y[..., 2000:-2000], ref[..., 2000:-2000], atol=2e-3, rtol=0)
    same, sr = audio.load(path, sample_rate=48000)
    assert sr == 48000 and torch.equal(same, x)
    up, sr = audio.load(path, sample_rate=96000)
    assert sr == 96000 and up.shape[-1] == 96000


def test_resample_matches_scipy_and_keeps_dtype():
    x = torch.randn(2, 2, 4410, dtype=torch.float64)
    y = audio.resample(x, 44100, 16000)
    assert y.dtype == torch.float64 and y.shape == (2, 2, 1600)
    np.testing.assert_allclose(y.numpy(), resample_poly(x.numpy(), 160, 441, axis=-1))
    assert audio.resample(x.float(), 44100, 16000).dtype == torch.float32
    with pytest.raises(ValueError, match="whole number of Hz"):
        audio.resample(x, 44100.5, 16000)
    with pytest.raises(ValueError, match="positive number"):
        audio.resample(x, 44100, 0)


def test_overwrite_protection(tmp_path):
    path = tmp_path / "mix.wav"
    audio.save(path, torch.zeros(1, 1, 100), 8000)
    with pytest.raises(FileExistsError, match="mix.wav.*overwrite=True"):
        audio.save(path, torch.ones(1, 1, 100) * 0.5, 8000)
    assert audio.load(path)[0].abs().max() == 0  # untouched
    audio.save(path, torch.ones(1, 1, 100) * 0.5, 8000, overwrite=True)
    assert float(audio.load(path)[0].max()) == pytest.approx(0.5, abs=1e-6)


def test_save_refuses_nan_and_warns_above_0_dbfs(tmp_path):
    bad = torch.zeros(1, 1, 100)
    bad[0, 0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        audio.save(tmp_path / "nan.wav", bad, 8000)
    assert not (tmp_path / "nan.wav").exists()
    loud = torch.full((1, 1, 100), 2.0)
    with pytest.warns(UserWarning, match=r"peaks at \+6.02 dBFS .* clipped"):
        audio.save(tmp_path / "loud.wav", loud, 8000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio.save(tmp_path / "ok.wav", torch.full((1, 1, 100), 1.0), 8000)  # exactly 0 dBFS: no warning
    with pytest.raises(ValueError, match="batch of 2"):
        audio.save(tmp_path / "batch.wav", torch.zeros(2, 1, 100), 8000)
    with pytest.raises(ValueError, match="not valid for OGG"):
        audio.save(tmp_path / "x.ogg", torch.zeros(1, 1, 100), 8000)
    with pytest.raises(ValueError, match="extension"):
        audio.save(tmp_path / "x.xyz", torch.zeros(1, 1, 100), 8000)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        audio.load(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF this is not a wave file" * 20)
    with pytest.raises(ValueError, match="cannot read .*garbage.wav.* as audio"):
        audio.load(garbage)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1)), 8000)
    with pytest.raises(ValueError, match="empty.wav.* no audio samples"):
        audio.load(empty)
    with pytest.raises(ValueError, match="folder"):
        audio.load(tmp_path)


def test_loudness_of_a_full_scale_1khz_sine():
    x = sine(1000.0, 48000, 3.0)
    # BS.1770: -3.01 LUFS; pyloudnorm's redesigned K-weighting reads about 0.04 LU lower
    assert float(audio.loudness_lufs(x, 48000)) == pytest.approx(-3.01, abs=0.06)
    stereo = x.expand(1, 2, -1).contiguous()
    assert float(audio.loudness_lufs(stereo, 48000)) == pytest.approx(0.0, abs=0.06)
    assert float(audio.loudness_lufs(x * 0.1, 48000)) == pytest.approx(-23.01, abs=0.06)  # -20 dB of gain, -20 LU


def test_loudness_matches_pyloudnorm_per_item():
    rng = np.random.default_rng(0)
    sr = 44100
    white = rng.standard_normal((2, sr * 2)) * 0.1
    spectrum = np.fft.rfft(rng.standard_normal(sr * 2))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n=sr * 2)
    pink = np.stack([pink / np.abs(pink).max() * 0.5, 0.3 * pink / np.abs(pink).max()])
    x = torch.from_numpy(np.stack([white, pink]))  # (2 items, 2 channels, T), channels differ
    measured = audio.loudness_lufs(x, sr)
    assert measured.shape == (2,) and measured.dtype == torch.float64
    meter = pyloudnorm.Meter(sr)
    expected = [meter.integrated_loudness(white.T), meter.integrated_loudness(pink.T)]
    np.testing.assert_allclose(measured.numpy(), expected, atol=1e-9)
    assert expected[0] != pytest.approx(expected[1], abs=1.0)


def test_loudness_of_silence_and_short_clips():
    with pytest.warns(UserWarning, match=r"item\(s\) \[1\] are silent .* -inf"):
        values = audio.loudness_lufs(torch.cat([sine(440.0, 8000, 1.0), torch.zeros(1, 1, 8000)]), 8000)
    assert math.isfinite(values[0]) and values[1] == -math.inf
    with pytest.raises(ValueError, match="at least 0.4 s"):
        audio.loudness_lufs(torch.zeros(1, 1, 3000), 8000)
    with pytest.raises(ValueError, match="at most 5 channels"):
        audio.loudness_lufs(torch.zeros(1, 6, 8000), 8000)


def test_normalize_loudness():
    sr = 16000
    x = torch.cat([sine(500.0, sr, 1.0, 0.5), sine(500.0, sr, 1.0, 0.01), torch.zeros(1, 1, sr)])
    with pytest.warns(UserWarning, match=r"\[2\] are silent .* unchanged"):
        y = audio.normalize_loudness(x, sr, -20.0)
    with pytest.warns(UserWarning):
        measured = audio.loudness_lufs(y, sr)
    torch.testing.assert_close(measured[:2], torch.tensor([-20.0, -20.0]), atol=1e-3, rtol=0)
    assert torch.equal(y[2], x[2])
    # the result is a constant gain per item, and gradients flow to x
    z = x[:2].clone().requires_grad_(True)
    out = audio.normalize_loudness(z, sr, torch.tensor([-30.0, -14.0]))
    ratio = out.detach()[..., 100] / x[:2, :, 100]
    torch.testing.assert_close(out.detach(), ratio[..., None] * x[:2])
    out.sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"target_lufs=5.0 LUFS is outside its range \[-70, 0\]"):
        audio.normalize_loudness(x[:1], sr, 5.0)


def test_load_names_the_file_with_non_finite_samples_before_resampling(tmp_path):
    x = np.zeros(2205)
    x[7] = np.inf
    sf.write(tmp_path / "bad.wav", x, 22050, subtype="FLOAT")
    for rate in (None, 44100):
        with pytest.raises(ValueError, match=r"bad\.wav' contains 1 NaN or infinite sample\(s\) \(the first at sample 7\); repair") as exc:
            audio.load(tmp_path / "bad.wav", sample_rate=rate)
        assert "nan_to_num" not in str(exc.value)


def test_save_is_atomic_and_picks_the_format_from_the_extension(tmp_path, monkeypatch):
    assert audio.output_format(tmp_path / "x.aif", None) == ("AIFF", "PCM_24")
    assert audio.output_format(tmp_path / "x.ogg", None) == ("OGG", "VORBIS")
    path = tmp_path / "keep.wav"
    path.write_bytes(b"old")

    def full_disk(*args, **kwargs):
        raise RuntimeError("Error : System error.")

    monkeypatch.setattr(sf, "write", full_disk)
    with pytest.raises(ValueError, match="enough free space"):
        audio.save(path, torch.zeros(1, 1, 100), 8000, overwrite=True)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


# ------------------------------------------------------------------------------ short-term levels


def test_frame_power_and_levels_agree_with_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 3, 10_000, generator=g, dtype=torch.float64)  # (batch, channels, samples)
    p = audio.frame_power(x, 44100)  # 50 ms = 2,205 samples, back to back: 4 whole frames
    assert p.shape == (2, 3, 4)
    direct = x[..., : 4 * 2205].reshape(2, 3, 4, 2205).square().mean(-1)
    assert torch.allclose(p, direct, rtol=1e-12)
    levels = audio.frame_levels(x, 44100)
    assert levels.shape == (2, 4)
    assert torch.allclose(levels, 10 * torch.log10(direct.mean(1)), rtol=1e-12)
    # overlapping frames: 400 ms every 100 ms (BS.1770's blocks), from a NumPy array
    a = x[0, 0].numpy()
    blocks = audio.frame_power(a, 8000, 400.0, hop_ms=100.0)
    n, hop = 3200, 800
    want = [np.mean(a[k * hop:k * hop + n] ** 2) for k in range(1 + (len(a) - n) // hop)]
    assert blocks.dtype == torch.float64 and np.allclose(blocks.numpy(), want, rtol=1e-12)
    # shapes: (samples,) and (channels, samples) give (frames,)
    assert audio.frame_levels(x[0, 0], 44100).shape == (4,)
    assert torch.allclose(audio.frame_levels(x[0], 44100), levels[0])


def test_frame_levels_of_a_sine_silence_and_gradients():
    x = sine(1000.0, 48000, 0.5)
    assert torch.allclose(audio.frame_levels(x, 48000, 20.0), torch.full((1, 25), -3.0103), atol=2e-3)
    silent = audio.frame_levels(torch.zeros(1, 1, 4800), 48000, 10.0, floor_db=-100.0)
    assert torch.all(silent == -100.0)
    y = x.clone().requires_grad_(True)
    audio.frame_levels(y, 48000).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_frame_levels_bad_input():
    with pytest.raises(ValueError, match="fewer than one 50 ms frame"):
        audio.frame_levels(torch.zeros(1, 1, 1000), 44100)
    for kw, match in (({"frame_ms": 0}, "frame_ms"), ({"frame_ms": -5.0}, "frame_ms"), ({"hop_ms": 0.0}, "hop_ms"),
                      ({"frame_ms": 0.001}, "shorter than one sample")):
        with pytest.raises(ValueError, match=match):
            audio.frame_power(torch.zeros(100), 8000, **kw)
    with pytest.raises(ValueError, match="NaN"):
        audio.frame_levels(torch.tensor([0.0, float("nan")] * 2000), 8000)
    with pytest.raises(ValueError, match="floating-point"):
        audio.frame_levels(torch.zeros(4000, dtype=torch.int16), 8000)
    with pytest.raises(TypeError, match="torch.Tensor"):
        audio.frame_levels("loud", 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        audio.frame_levels(torch.zeros(4000), 0)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        audio.frame_levels(torch.zeros(1, 1, 1, 4000), 8000)


def test_level_range_db():
    sr = 8000
    frame = 400  # 50 ms
    steps = torch.tensor([1.0, 0.5, 0.25, 0.125]).repeat_interleave(frame)  # four frames, 6.02 dB apart
    x = (steps * torch.sin(torch.arange(4 * frame) / sr * 2 * math.pi * 400)).view(1, 1, -1)
    full = 20 * math.log10(8)
    assert audio.level_range_db(x, sr, percentiles=(0, 100)) == pytest.approx(full, abs=1e-3)
    # the 10th..90th percentile of four evenly spaced levels: 80 % of the spread (linear interpolation)
    assert audio.level_range_db(x, sr) == pytest.approx(0.8 * full, abs=1e-3)
    # silence does not count: a frame more than within_db below the loudest is left out
    padded = torch.cat([x, torch.zeros(1, 1, 4 * frame)], -1)
    assert audio.level_range_db(padded, sr, percentiles=(0, 100)) == pytest.approx(full, abs=1e-3)
    assert audio.level_range_db(padded, sr, percentiles=(0, 100), within_db=10.0) == pytest.approx(20 * math.log10(2), abs=1e-3)
    # frames chosen by a reference: the same frames before and after processing
    assert audio.level_range_db(0.5 * x, sr, percentiles=(0, 100), reference=x) == pytest.approx(full, abs=1e-3)
    assert audio.level_range_db(torch.ones_like(x) * 0.1, sr, reference=x) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="as long as x"):
        audio.level_range_db(x, sr, reference=padded)
    with pytest.raises(ValueError, match="percentiles"):
        audio.level_range_db(x, sr, percentiles=(90, 10))
    with pytest.raises(ValueError, match="one clip"):
        audio.level_range_db(torch.cat([x, x]), sr)
