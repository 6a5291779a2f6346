"""Tests of the Part 3 models (DMC, Mix-Wave-U-Net), the training loop and the held-out evaluation."""

import math

import pytest
import torch

from automix_lite import dsp, evaluation, train
from automix_lite import parameters as P
from automix_lite.models import TCN, center_crop
from automix_lite.models.dmc import DMC, BasicConsole, mel_filterbank
from automix_lite.models.wave_u_net import MixWaveUNet
from conftest import SR

SMALL = dict(dim=8, widths=(4, 8), hidden=16)  # a narrow DMC for fast tests


def tracks(b=2, n=4, seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tones = torch.stack([torch.sin(2 * math.pi * 110 * (k + 1) * t) for k in range(n)])
    return 0.2 * tones * torch.rand(b, n, 1, generator=g) + 0.01 * torch.randn(b, n, t.shape[0], generator=g)


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(SR, 2048, 64, f_min=30.0).numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=64, fmin=30.0, htk=True, norm=None)
    assert ours.shape == ref.shape
    assert abs(ours - ref).max() < 1e-5


def test_basic_console_is_gain_then_pan_law():
    x = tracks(1, 3).double()
    p = {"gain_db": torch.tensor([[-6.0, 0.0, 3.0]], dtype=torch.float64),
         "pan": torch.tensor([[0.0, 0.5, 0.8]], dtype=torch.float64)}
    y = BasicConsole(SR)(x, p)
    ref = sum(dsp.pan(x[:, k:k + 1] * 10 ** (p["gain_db"][0, k] / 20), p["pan"][0, k], "-4.5dB") for k in range(3))
    assert torch.allclose(y, ref, atol=1e-12)
    # a masked track contributes nothing
    masked = BasicConsole(SR)(x, p, torch.tensor([[True, False, True]]))
    assert torch.allclose(masked, ref - dsp.pan(x[:, 1:2], 0.5, "-4.5dB"), atol=1e-12)


def test_basic_console_gradcheck():
    x = tracks(1, 2, seconds=0.002).double()

    def f(g, p):
        return BasicConsole(SR)(x, {"gain_db": g, "pan": p})

    g = torch.tensor([[-3.0, 2.0]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[0.3, 0.6]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (g, p))


@pytest.mark.parametrize("console", ["basic", "full"])
def test_dmc_permutation_equivariant_and_mix_invariant(console):
    torch.manual_seed(0)
    model = DMC(console, **SMALL).eval()
    x = tracks(2, 4)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        y, p = model(x, mask)
        y2, p2 = model(x[:, perm], mask[:, perm])
    assert torch.allclose(p.controls[0][:, perm], p2.controls[0], atol=1e-6)
    assert torch.allclose(p.controls[1], p2.controls[1], atol=1e-6)
    assert torch.allclose(y, y2, atol=1e-5)
    assert y.shape == (2, 2, x.shape[-1])


def test_dmc_padding_and_track_count():
    torch.manual_seed(0)
    model = DMC("basic", max_tracks=5, **SMALL).eval()
    x = tracks(1, 3)
    padded = torch.cat([x, torch.randn(1, 2, x.shape[-1])], 1)  # padding content must not matter
    mask = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        y, p = model(x)
        y2, p2 = model(padded, mask)
    assert torch.allclose(y, y2, atol=1e-6)
    assert torch.allclose(p["gain_db"], p2["gain_db"][:, :3], atol=1e-5)
    with pytest.raises(ValueError, match="at most 5"):
        model(torch.zeros(1, 6, 2048))
    with pytest.raises(ValueError, match="at least one real"):
        model(x, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be"):
        model(x, torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="console must be"):
        DMC("fancy")


def test_dmc_starts_neutral_and_learns_a_gain():
    torch.manual_seed(0)
    model = DMC("basic", **SMALL)
    x = tracks(1, 2)
    with torch.no_grad():
        _, p = model.eval()(x)
    assert p["gain_db"].abs().max() < 3.0 and (p["pan"] - 0.5).abs().max() < 0.05
    # target: both tracks 6 dB down, centred -> a few steps of gradient descent move the gains down
    target = BasicConsole(SR)(x, {"gain_db": torch.full((1, 2), -6.0), "pan": torch.full((1, 2), 0.5)})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        y, p = model(x)
        loss = (y - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, p = model.eval()(x)
    assert p["gain_db"].mean() < -3.0


def test_dmc_full_dsp_matches_console_and_proxy_backend_runs():
    torch.manual_seed(0)
    model = DMC("full", "dsp", **SMALL).eval()
    x = tracks(1, 2, seconds=0.3)
    with torch.no_grad():
        y, p = model(x)
    assert torch.allclose(y, dsp.mix(x, SR, dict(p)), atol=1e-6)
    proxy = TCN.preset("tiny", channels=4, cond_dim=22, direct=True)
    model = DMC("full", "proxy", proxy=proxy, **SMALL)
    y, p = model(x)
    y.square().mean().backward()
    assert all(q.grad is None for q in proxy.parameters())  # the proxy stays frozen
    assert model.post[-1].weight.grad.abs().sum() > 0  # but gradients reach the DMC through it
    chain = p.proxy_controls()
    assert p.console == "proxy" and chain.shape == (1, 2, 22) and chain.min() >= -1 and chain.max() <= 1
    assert torch.allclose(P.MixParams(dict(p), "proxy").proxy_controls(), chain, atol=1e-5)  # from the values too


def test_direct_tcn_starts_as_identity():
    model = TCN.preset("tiny", channels=4, cond_dim=3, direct=True)
    x = torch.randn(2, 1, 3000)
    y = model(x, torch.zeros(2, 3))
    assert torch.equal(y, center_crop(x, y.shape[-1]))
    with pytest.raises(ValueError, match="n_inputs must equal n_outputs"):
        TCN(n_inputs=1, n_outputs=2, direct=True)


def test_wave_u_net_any_length_and_masking():
    torch.manual_seed(0)
    model = MixWaveUNet(n_tracks=4, depth=3, channels=4, growth=4)
    for t in (1000, 1023, 77):
        assert model(torch.randn(1, 3, t)).shape == (1, 2, t)
    x = torch.randn(1, 4, 512)
    mask = torch.tensor([[True, True, False, True]])
    zeroed = x.clone()
    zeroed[:, 2] = 0
    assert torch.allclose(model(x, mask), model(zeroed), atol=1e-6)
    assert model.n_params == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="at most 4"):
        model(torch.randn(1, 5, 100))


def test_lr_schedule_warms_up_then_decays():
    cfg = train.load_config({"steps": 100, "warmup_steps": 10, "final_lr_fraction": 0.1})
    assert train.lr_schedule(cfg, 5) == pytest.approx(0.5)
    assert train.lr_schedule(cfg, 10) == pytest.approx(1.0)
    assert train.lr_schedule(cfg, 55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert train.lr_schedule(cfg, 100) == pytest.approx(0.1)
    assert train.lr_schedule(cfg, 150) == pytest.approx(0.1)  # after the last step: the final fraction
    assert train._lr_factor is train.lr_schedule  # the former private name
    with pytest.raises(ValueError, match="unknown config key"):
        train.load_config({"stpes": 3})


def test_lr_schedule_is_the_formula_and_the_scheduler_train_steps():
    cfg = train.load_config({"steps": 40, "warmup_steps": 8, "final_lr_fraction": 0.05, "lr": 1e-3})
    for s in range(1, 41):  # eq. (lr-schedule) of chapter 3.3, written out
        want = s / 8 if s <= 8 else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (s - 8) / 32))
        assert train.lr_schedule(cfg, s) == pytest.approx(want, abs=1e-12)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: train.lr_schedule(cfg, s + 1))  # as train does
    seen = []
    for _ in range(40):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([cfg["lr"] * train.lr_schedule(cfg, s) for s in range(1, 41)])
    constant = train.load_config({"steps": 40, "warmup_steps": 0, "schedule": "constant"})
    assert [train.lr_schedule(constant, s) for s in (1, 20, 40, 99)] == [1.0] * 4


def test_lr_schedule_bad_input():
    cfg = train.load_config({"steps": 10, "warmup_steps": 2})
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="whole number >= 1"):
            train.lr_schedule(cfg, bad)
    with pytest.raises(KeyError, match="warmup_steps"):
        train.lr_schedule({"steps": 10, "schedule": "cosine", "final_lr_fraction": 0.1}, 1)


TINY = {"model": "dmc", "model_args": {"console": "basic", **SMALL, "widths": [4, 8]}, "steps": 4, "batch_size": 2,
        "segment_seconds": 1.0, "val_items": 2, "val_every": 2, "log_every": 1, "warmup_steps": 1, "threads": 1,
        "dropout": None}
TINY.pop("dropout")


def test_train_checkpoint_resume_and_checksum(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    model_a, hist = train.train(TINY, out=str(a), progress=False, log=lambda *_: None)
    assert hist["steps_done"] == 4 and len(hist["val_loss"]) == 2 and (a / "loss_curve.png").is_file()
    # stopped after 2 steps and resumed: the same weights as the uninterrupted run
    train.train(TINY, out=str(b), progress=False, stop_at=2, log=lambda *_: None)
    model_b, _ = train.train(TINY, out=str(b), resume=True, progress=False, log=lambda *_: None)
    for (k, v), w in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    ck = train.load_checkpoint(str(a / "best.pt"))
    assert ck["config"]["steps"] == 4 and ck["code_version"].startswith("0.")
    raw = bytearray((a / "last.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (a / "bad.pt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum|not a readable"):
        train.load_checkpoint(str(a / "bad.pt"))
    with pytest.raises(ValueError, match="already finished"):
        train.train(TINY, out=str(a), resume=True, progress=False, log=lambda *_: None)


def test_train_with_the_parameter_loss_of_the_bundled_songs_model(tmp_path):
    """The parameter loss (``param_weight`` > 0, as in configs/dmc_basic_songs.json, the bundled model's
    config) trains: it once read the controls from the plain dict of values, which has none (AttributeError)."""
    cfg = dict(TINY, steps=2, val_every=2, param_weight=5.0)
    _, hist = train.train(cfg, out=str(tmp_path / "p"), progress=False, log=lambda *_: None)
    no_param = train.train(dict(cfg, param_weight=0.0), out=str(tmp_path / "q"), progress=False, log=lambda *_: None)[1]
    assert hist["steps_done"] == 2 and hist["loss"][0] > no_param["loss"][0]  # the parameter term adds to the loss


def test_summary_confidence_interval_and_table():
    stats = pytest.importorskip("scipy.stats")
    rows = [{"mixer": "m", "task": "songs", "song": str(i), "stereo": v, "gain_db": 1.0, "pan": 0.1}
            for i, v in enumerate([1.0, 2.0, 4.0])]
    s = evaluation.summarize(rows)[("songs", "m")]
    vals = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    half = stats.t.ppf(0.975, 2) * float(vals.std()) / math.sqrt(3)
    assert s["stereo"] == pytest.approx((7 / 3, half, 3))
    table = evaluation.markdown_table(evaluation.summarize(rows))
    assert "| m | 2.33 ± " in table and "songs: pan err." in table


def test_evaluation_oracle_beats_mono_on_a_test_song():
    rows = evaluation.evaluate({m: evaluation.baseline_mixer(m) for m in ("mono", "engineer (gain, pan)")},
                               "drums", "test", seconds=2.0, songs=1)
    by = {r["mixer"]: r for r in rows}
    assert by["engineer (gain, pan)"]["stereo"] < by["mono"]["stereo"]
    assert by["engineer (gain, pan)"]["gain_db"] == pytest.approx(0.0, abs=1e-9)
    assert by["engineer (gain, pan)"]["pan"] == pytest.approx(0.0, abs=1e-9)


def test_wave_u_net_block_rendering_matches_one_shot():
    from automix_lite.inference import mix_stems

    torch.manual_seed(0)
    model = MixWaveUNet(n_tracks=3, depth=3, channels=4, growth=4).eval()
    x = 0.05 * torch.randn(3, 22050)
    with torch.no_grad():
        whole = model(x[None])[0]
        blocks, params = mix_stems(model, x, block_seconds=0.1, overlap_seconds=0.02)
    assert params.output_gain_db == 0.0
    assert (blocks - whole).abs().max() < 1e-5 * whole.abs().max()


def test_dmc_analyses_windows_of_its_training_length():
    from automix_lite.inference import estimate_params

    torch.manual_seed(0)
    model = DMC("basic", **SMALL).eval()
    model.segment_seconds = 0.25
    x = tracks(1, 2, seconds=1.0)[0]
    seen = []
    estimate = model.estimate
    model.estimate = lambda t, m: seen.append(t.shape[-1]) or estimate(t, m)
    with torch.no_grad():
        p = estimate_params(model, x)
    assert seen == [int(0.25 * SR)] * 5  # ceil(1.0 / 0.25) + 1 windows of the training length
    assert p["gain_db"].shape == (1, 2)


def test_a_dmc_and_any_other_mixer_are_asked_about_the_same_windows():
    """estimate_params has one window loop for every mixer: a DMC and a mixer that only wraps it (the protocol, no
    DMC), with the same segment length, are asked about the same windows with the same masks (a track silent in a
    window is masked there, a window in which every track is silent is skipped)."""
    from automix_lite.inference import estimate_params

    torch.manual_seed(0)
    model = DMC("basic", **SMALL).eval()
    model.segment_seconds = 0.25
    x = tracks(1, 3, seconds=1.0)[0]
    x[1, :int(0.5 * SR)] = 0  # track 1 silent in the first half
    x[:, int(0.75 * SR):] = 0  # every track silent in the last window
    seen = {"dmc": [], "other": []}
    estimate = model.estimate

    class Other:  # any mixer: the protocol's members, nothing of the DMC's
        sample_rate, max_tracks, segment_seconds, has_params = model.sample_rate, None, 0.25, True

        def estimate(self, t, m):
            seen["other"].append((t, m))
            return estimate(t, m)

        def render(self, t, p, m=None):
            return model.render(t, p, m)

    model.estimate = lambda t, m: seen["dmc"].append((t, m)) or estimate(t, m)
    with torch.no_grad():
        estimate_params(model, x)
        estimate_params(Other(), x)
    assert len(seen["dmc"]) == len(seen["other"]) == 4  # ceil(1.0 / 0.25) + 1 windows, the silent one skipped
    for (t, m), (u, n) in zip(seen["dmc"], seen["other"]):
        assert torch.equal(t, u) and torch.equal(m, n)
    assert [m[0].tolist() for _, m in seen["dmc"]][:2] == [[True, False, True]] * 2


def test_encoder_pretraining_by_role_classification():
    from automix_lite.models.dmc import TrackEncoder

    torch.manual_seed(0)
    enc = TrackEncoder(SR, dim=8, widths=(4, 8))
    before = [p.detach().clone() for p in enc.parameters()]
    report = train.pretrain_encoder(enc, "drums", steps=3, batch_size=4, seconds=0.25, val_crops=16)
    assert report["roles"] == sorted(["kick", "snare", "hihat", "tom_1", "tom_2", "tom_3", "overhead_l", "overhead_r"])
    assert len(report["loss"]) == 3 and 0.0 <= report["val_accuracy"] <= 1.0 and 0.0 < report["chance"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, enc.parameters()))
    with pytest.raises(ValueError, match="Mix-Wave-U-Net has none"):
        train.train({"model": "wave_u_net", "model_args": {"depth": 2, "channels": 4, "growth": 4},
                     "encoder_pretrain_steps": 2, "steps": 1}, progress=False, log=lambda *_: None)


def test_table_rows_reads_back_markdown_table_and_the_committed_results():
    rows = [{"mixer": m, "task": t, "song": str(i), "stereo": v, "gain_db": 1.0, "pan": 0.1}
            for m, t in (("a", "songs"), ("b", "drums")) for i, v in enumerate([1.0, 2.0, 4.0])]
    back = evaluation.table_rows(evaluation.markdown_table(evaluation.summarize(rows)))
    assert list(back) == ["a", "b"] and len(back["a"]) == 6
    assert back["a"][0].startswith("2.33 ± ") and back["a"][3:] == ["–", "–", "–"]
    assert back["b"][:3] == ["–", "–", "–"] and back["b"][5].startswith("0.100 ± ")
    committed = evaluation.table_rows(open(evaluation.MIXING_RESULTS_FILE, encoding="utf-8").read())
    assert {"mono", "dmc_basic_drums", "dmc_basic_drums + pretrained encoder"} <= set(committed)
