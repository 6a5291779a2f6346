"""The one mixer interface (automix_lite.mixer.Mixer): every mixer implements it, and inference and evaluation
use a mixer through it alone."""

import pytest
import torch

from automix_lite import baselines, evaluation, inference
from automix_lite.data.engineer import EngineerMixer
from automix_lite.mixer import Mixer, check_mixer, mix_with
from automix_lite.models import DMC, MixWaveUNet

SR = 44100
SMALL = dict(widths=(4, 8), dim=8, hidden=16, max_tracks=4)
ROLES = ["kick", "bass", "lead"]


def _tracks(b=1, n=3, seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(b, n, int(seconds * SR), generator=g)


def _mixers():
    torch.manual_seed(0)
    return {
        "dmc basic": (DMC("basic", **SMALL).eval(), True),
        "dmc full": (DMC("full", **SMALL).eval(), True),
        "wave-u-net": (MixWaveUNet(n_tracks=4, depth=2, channels=4, growth=4).eval(), False),
        "mono": (baselines.MonoMixer(SR), True),
        "random": (baselines.RandomMixer(3, SR), True),
        "knowledge": (baselines.KnowledgeMixer(roles=ROLES, tempo=120.0, sample_rate=SR), True),
        "engineer": (EngineerMixer("natural", ROLES, seed=7, tempo=120.0), True),
    }


@pytest.mark.parametrize("name", list(_mixers()))
def test_every_mixer_implements_the_protocol(name):
    mixer, has_params = _mixers()[name]
    assert isinstance(mixer, Mixer) and check_mixer(mixer) is mixer
    assert mixer.has_params is has_params
    assert mixer.sample_rate == SR
    assert mixer.max_tracks is None or mixer.max_tracks >= 3
    x = _tracks(2)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    if name == "engineer":
        mask = None  # the engineer mixes every track of its song
    with torch.no_grad():
        params = mixer.estimate(x, mask)
        y = mixer.render(x, params, mask)
    assert y.shape == (2, 2, x.shape[-1]) and bool(torch.isfinite(y).all())
    if has_params:
        assert params["gain_db"].shape == (2, 3) and params["pan"].shape == (2, 3)
    else:
        assert params is None


def test_baseline_mixers_equal_the_functions():
    x = _tracks(1)
    m = torch.tensor([[True, True, False]])
    for mixer, (y0, p0) in ((baselines.MonoMixer(SR), baselines.mono_mix(x, mask=m)),
                            (baselines.RandomMixer(2, SR), baselines.random_mix(x, SR, mask=m, seed=2)),
                            (baselines.KnowledgeMixer(ROLES, 100.0, SR), baselines.knowledge_mix(x, SR, ROLES, 100.0, m))):
        y, p = mix_with(mixer, x, m)
        assert torch.equal(y, y0)
        assert all(torch.equal(p[k], p0[k]) for k in p0)


def test_engineer_mixer_gives_the_stored_parameters_of_a_song():
    from automix_lite import data

    song_id = data.songs("songs", "test")[0]["id"]
    mixer = EngineerMixer.for_song(song_id, "natural")
    x = data.load_song(song_id)["tracks"][None]
    p = mixer.estimate(x)
    stored = data.mix_params(song_id, "natural")
    for k in ("gain_db", "pan", "reverb_t60_s", "master_gain_db"):
        assert torch.allclose(p[k].float(), stored[k].float(), atol=2e-3), k


def test_a_direct_model_has_no_parameters_to_estimate():
    model = MixWaveUNet(n_tracks=4, depth=2, channels=4, growth=4).eval()
    assert inference.estimate_params(model, _tracks()[0]) is None
    with pytest.raises(ValueError, match="at most 4"):
        inference.estimate_params(model, _tracks(1, 5)[0])
    with pytest.raises(ValueError, match="no parameters"):
        model.render(_tracks(), {"gain_db": torch.zeros(1, 3)})


class _Halves:
    """A mixer known only through the protocol: every track at -6 dB, centred; no torch module."""

    sample_rate = SR
    max_tracks = 3
    segment_seconds = None
    has_params = True

    def __init__(self):
        self.calls = []

    def estimate(self, tracks, mask=None):
        self.calls.append(tracks.shape)
        b, n, _ = tracks.shape
        return {"gain_db": torch.full((b, n), -6.0), "pan": torch.full((b, n), 0.5)}

    def render(self, tracks, params, mask=None):
        g = 10 ** (params["gain_db"] / 20) * (1.0 if mask is None else mask.float())
        y = (g.unsqueeze(-1) * tracks).sum(1, keepdim=True)
        return y.expand(-1, 2, -1).clone()


class _Direct(_Halves):
    has_params = False

    def estimate(self, tracks, mask=None):
        return None

    def render(self, tracks, params, mask=None):
        assert params is None
        return super().render(tracks, {"gain_db": torch.full(tracks.shape[:2], -6.0)}, mask)


def test_mix_stems_takes_any_mixer_through_the_protocol():
    x = _tracks(1, 3, seconds=1.0)[0]
    x[2] = 0  # silent: masked
    mixer = _Halves()
    y, params = inference.mix_stems(mixer, x, ceiling_db=20.0)
    assert mixer.calls == [(1, 3, x.shape[-1])]  # segment_seconds None: the whole song at once
    want = 10 ** (-6 / 20) * x[:2].sum(0)
    assert torch.allclose(y, want.expand(2, -1), atol=1e-6)
    assert params["gain_db"].shape == (1, 3) and params.output_gain_db == 0.0
    y2, p2 = inference.mix_stems(_Direct(), x, block_seconds=0.3, overlap_seconds=0.05, ceiling_db=20.0)
    assert torch.allclose(y2, y, atol=1e-6) and len(p2) == 0 and p2.output_gain_db is not None
    with pytest.raises(ValueError, match="at most 3"):
        inference.mix_stems(mixer, _tracks(1, 4)[0])
    with pytest.raises(TypeError, match="not a mixer"):
        inference.mix_stems(object(), x)


def test_windowed_estimates_of_a_generic_mixer_are_averaged():
    mixer = _Halves()
    mixer.segment_seconds = 0.25
    p = inference.estimate_params(mixer, _tracks(1, 3, seconds=1.0)[0])
    assert len(mixer.calls) == 5 and all(c[-1] == int(0.25 * SR) for c in mixer.calls)
    assert torch.allclose(p["gain_db"], torch.full((1, 3), -6.0))


def test_evaluation_takes_any_mixer_through_the_protocol():
    halves, direct = _Halves(), _Direct()
    halves.max_tracks = direct.max_tracks = None  # any number (a drum song has 8)
    rows = evaluation.evaluate({"halves": evaluation.model_mixer(halves),
                                "direct": evaluation.model_mixer(direct)}, "drums", "test", seconds=1.0, songs=1)
    by = {r["mixer"]: r for r in rows}
    assert "gain_db" in by["halves"] and "pan" in by["halves"] and "gain_db" not in by["direct"]
    assert by["halves"]["stereo"] == pytest.approx(by["direct"]["stereo"], rel=1e-5)


def test_cli_refuses_a_checkpoint_that_is_not_a_mixer(tmp_path):
    """The bundled channel-strip proxy is a checkpoint of the one format but no mixer: one error line."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    from automix_lite.models import proxy

    stems = tmp_path / "stems"
    stems.mkdir()
    for k in range(2):
        sf.write(stems / f"t{k}.wav", 0.1 * np.random.default_rng(k).standard_normal(44100), 44100)
    proc = subprocess.run([sys.executable, "-m", "automix_lite.cli", "mix", str(stems), "--model",
                           proxy.BUNDLED_CHECKPOINT, "--out", str(tmp_path / "mix.wav")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("automix: error: --model") and "not a mixing model" in proc.stderr
    assert not (tmp_path / "mix.wav").exists()


def test_every_mixer_holds_the_tasks_mixing_models_and_not_the_style_models():
    """The bundled style-transfer models (which need a reference, and whose configs have no task) are not mixers:
    every_mixer skips them (it failed with KeyError 'task' once they were bundled)."""
    from automix_lite import pretrained

    assert {"style_track", "style_mix"} <= set(pretrained.available())
    assert pretrained.available(kind="style") == ["style_track", "style_mix"]
    assert pretrained.available(kind="mixer", task="drums") == ["dmc_basic_drums", "wave_u_net_drums"]
    assert pretrained.available(kind="style", task="songs") == ["style_mix"]
    with pytest.raises(ValueError, match="kind must be one of mixer, style"):
        pretrained.available(kind="mixers")
    songs, drums = evaluation.every_mixer("songs", random_draws=1), evaluation.every_mixer("drums", random_draws=1)
    assert {"dmc_basic_songs", "dmc_full_songs"} <= set(songs) and "wave_u_net_drums" not in songs
    assert {"dmc_basic_drums", "wave_u_net_drums"} <= set(drums)
    assert not {"style_track", "style_mix"} & (set(songs) | set(drums))
    assert all(callable(m) for m in songs.values())
