"""FX normalization (chapter 5.3): wet stems, the normaliser, the wet/fxnorm dataset and a smoke run of training."""

import math

import numpy as np
import pytest
import torch

from automix_lite import data, fxnorm
from automix_lite.dsp import biquad_sos, mix, pan, random_params, sosfilt, wet_stems

SR = data.SAMPLE_RATE


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_wet_stems_sum_to_the_mix():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6000, generator=g) * 0.1
    p = random_params(2, 3, g)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    for reverb in (True, False):
        w = wet_stems(x, SR, p, mask, reverb=reverb)
        assert w.shape == (2, 3, 2, 6000) and bool((w[0, 2] == 0).all())
        want = mix(x, SR, p, mask, reverb=reverb)
        assert torch.allclose(w.sum(1), want, atol=1e-5 * float(want.abs().max()))


def _reference_and_exaggerated():
    """A dry stem (3 s), the 'role average' measured on it centred, and the same stem with a +12 dB treble shelf,
    +10 dB gain and panned hard left."""
    s = data.load_song(data.songs("songs", "test")[0]["id"])
    k = s["roles"].index("keys") if "keys" in s["roles"] else 0
    x = s["tracks"][k:k + 1, SR:4 * SR]
    avg = {"r": {**fxnorm.stem_features(x, SR), "count": 1}}
    avg["r"]["spectrum"] = avg["r"]["spectrum"].tolist()
    shelf = biquad_sos("high_shelf", 12.0, 2000.0, 0.707, SR).reshape(1, 6).float()  # one section
    y = sosfilt(shelf, x[None] * 10 ** (10 / 20))
    return x, avg, pan(y, torch.tensor([0.05]))[0]


def test_normalize_moves_every_feature_towards_the_role_average():
    _, avg, wet = _reference_and_exaggerated()
    out = fxnorm.normalize(wet, SR, "r", avg)
    assert out.shape == wet.shape and bool(torch.isfinite(out).all())
    before, after = fxnorm.stem_features(wet, SR), fxnorm.stem_features(out, SR)
    for feat in ("spectrum", "loudness", "pan", "decorrelation"):
        d0 = np.mean(np.abs(np.asarray(before[feat]) - np.asarray(avg["r"][feat])))
        d1 = np.mean(np.abs(np.asarray(after[feat]) - np.asarray(avg["r"][feat])))
        assert d1 <= d0 * 0.5 + 1e-9, (feat, d0, d1)
    assert after["loudness"] == pytest.approx(avg["r"]["loudness"], abs=0.1)
    d = lambda f, k: abs(f[k] - avg["r"][k])  # noqa: E731
    assert d(after, "crest_db") + d(after, "lra_db") <= d(before, "crest_db") + d(before, "lra_db") + 0.5


def test_normalize_rejects_bad_input_and_leaves_silence_alone():
    x, avg, _ = _reference_and_exaggerated()
    with pytest.raises(ValueError, match="unknown role"):
        fxnorm.normalize(x, SR, "tuba", avg)
    with pytest.raises(ValueError, match="NaN"):
        fxnorm.normalize(torch.full((2, SR), math.nan), SR, "r", avg)
    with pytest.raises(ValueError, match="shape"):
        fxnorm.normalize(torch.zeros(3, SR), SR, "r", avg)
    with pytest.raises(ValueError, match="at least"):
        fxnorm.normalize(x[:, :100], SR, "r", avg)
    silent = torch.zeros(1, SR)
    assert torch.equal(fxnorm.normalize(silent, SR, "r", avg), torch.zeros(2, SR))


def test_wet_dataset_shapes_targets_and_params(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIX_CACHE", str(tmp_path))
    kw = dict(split="test", segment_seconds=0.5, length=1, seed=3)
    dry, wet = data.BundledDataset(**kw)[0], data.BundledDataset(stems="wet", **kw)[0]
    assert wet["tracks"].shape == dry["tracks"].shape and torch.equal(wet["mix"], dry["mix"])
    assert torch.equal(wet["params"], dry["params"]) and not torch.allclose(wet["tracks"], dry["tracks"])
    song, start, n = dry["song"], dry["start"], dry["tracks"].shape[-1]
    stems = data.wet_stems_of(song, "natural")
    k = len(dry["names"])
    assert torch.allclose(wet["tracks"][:k], stems[..., start:start + n].mean(1) * wet["mask"][:k, None])
    with pytest.raises(ValueError, match="stems must be"):
        data.BundledDataset(stems="damp", **kw)
    with pytest.raises(ValueError, match="target='stored'"):
        data.BundledDataset(stems="wet", target="render", **kw)


def test_train_smoke_on_fxnorm_stems(tmp_path, monkeypatch):
    """The one training loop on FX-normalised stems, 2 steps. The normaliser is replaced by a cheap centring (its
    own tests are above) and the role averages by a stub, so that a cold cache renders only the few songs touched."""
    from automix_lite import train

    monkeypatch.setenv("AUTOMIX_CACHE", str(tmp_path))
    monkeypatch.setattr(fxnorm, "role_averages", lambda *a, **k: {})
    monkeypatch.setattr(fxnorm, "normalize", lambda s, sr, role, avg: s.mean(0, keepdim=True).expand(2, -1) * 0.5)
    cfg = {"model": "dmc", "model_args": {"console": "basic", "dim": 8, "widths": [4, 8], "hidden": 16}, "steps": 2, "batch_size": 1,
           "segment_seconds": 0.5, "val_items": 1, "val_every": 2, "log_every": 1, "warmup_steps": 1, "threads": 1,
           "stems": "fxnorm", "gain_augment_db": 0.0}
    _, hist = train.train(cfg, out=str(tmp_path / "run"), progress=False, log=lambda *_: None)
    assert hist["steps_done"] == 2 and all(math.isfinite(v) for v in hist["loss"])
    assert any((tmp_path / "fxnorm").iterdir())


def test_committed_results_read_back_as_a_table():
    res = fxnorm.read_results()
    assert {("dry", "dry"), ("wet", "wet"), ("fxnorm", "dry")} <= set(res["summary"])
    assert res["table"].count("\n") == 4 and set(res["distances"]) == set(fxnorm.FEATURES)
