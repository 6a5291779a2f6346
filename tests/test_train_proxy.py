"""The channel-chain proxy trains through the one loop of automix_lite.train (issue 12).

``_first_loop`` is a copy of the proxy's own training loop as it was before (``models/proxy.py`` up to
issue 11, which trained the bundled ``proxy_channel.pt``), kept here only to show that the one loop draws the
same random numbers in the same order and so trains the same weights, bit for bit.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from automix_lite import _checkpoint, train
from automix_lite.losses import MRSTFTLoss
from automix_lite.models import proxy as P
from automix_lite.models.tcn import center_crop

SR = 44100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stems(n=3, seconds=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    return [0.3 * torch.sin(2 * math.pi * (110 * (k + 1)) * t) + 0.05 * torch.randn(t.shape[0], generator=g)
            for k in range(n)]


# The first loop's defaults (the one loop's proxy config has the same keys and values, and "model", which the first
# loop's configs did not have) and loop (models/proxy.py before issue 12), without its file writing; its data
# generator, make_batch, is train.proxy_batch now.
_FIRST_DEFAULTS = {k: v for k, v in train.PROXY_DEFAULT_CONFIG.items() if k != "model"}


def _first_loop(config, stems, val_stems):
    cfg = {**_FIRST_DEFAULTS, **config}
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    device = torch.device("cpu")
    sr = cfg["sample_rate"]
    model = P.build_model(cfg)
    history = {"step": [], "loss": [], "lr": [], "seconds": [], "val_step": [], "val_loss": []}
    done = 0
    model = model.to(device)
    torch.manual_seed(cfg["seed"] + done)
    g = torch.Generator().manual_seed(cfg["seed"] + done)
    rf = model.receptive_field
    n_out = round(cfg["patch_seconds"] * sr)
    n_in = n_out + rf - 1
    val = train.proxy_batch(val_stems, cfg["val_examples"], n_in, torch.Generator().manual_seed(cfg["seed"] + 1), sr,
                            P.PROCESSORS, augment=False)
    val_y = center_crop(val["y"], n_out)
    mrstft = MRSTFTLoss().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg["lr_factor"], patience=cfg["lr_patience"])
    start, running = time.time(), []
    for step in range(1, cfg["steps"] + 1):
        model.train()
        batch = train.proxy_batch(stems, cfg["batch_size"], n_in, g, sr, P.PROCESSORS, cfg["augment"],
                                  cfg["mixup_alpha"])
        pred = model(batch["x"].to(device), batch["params"].to(device))
        target = center_crop(batch["y"].to(device), n_out)
        loss = (pred - target).abs().mean()
        if cfg["stft_weight"]:
            loss = loss + cfg["stft_weight"] * mrstft(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        running.append(loss.item())
        elapsed = time.time() - start
        if step % cfg["log_every"] == 0:
            history["step"].append(done + step)
            history["loss"].append(sum(running) / len(running))
            history["lr"].append(opt.param_groups[0]["lr"])
            running = []
        last = step == cfg["steps"] or (cfg["max_seconds"] and elapsed > cfg["max_seconds"])
        if step % cfg["val_every"] == 0 or last:
            v = float((P.predict(model, val["x"], val["params"]) - val_y).abs().mean())
            sched.step(v)
            history["val_step"].append(done + step)
            history["val_loss"].append(v)
        if last:
            break
    model.eval()
    return model, history


# Small, but every random path of the first loop: augmentation, mixup, the MR-STFT term, the direct path and a
# plateau schedule that lowers the learning rate within the run (patience 0).
TINY = {"preset": "tiny", "channels": 4, "kernel_size": 5, "direct": True, "stft_weight": 0.1, "steps": 7,
        "batch_size": 3, "patch_seconds": 0.05, "lr": 0.03, "lr_patience": 0, "lr_factor": 0.5, "mixup_alpha": 0.3,
        "augment": True, "log_every": 1, "val_every": 2, "val_examples": 2, "seed": 4, "device": "cpu",
        "threads": 1}


def _state_sha(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_the_one_loop_trains_the_first_loops_weights_bit_for_bit(tmp_path):
    """The first loop built its model from whatever global random state the process had (a fresh process's is
    random); the one loop seeds it with ``seed`` first. Given that same state, both draw the same numbers."""
    s, vs = stems(), stems(seed=1)
    torch.manual_seed(TINY["seed"])
    old, old_hist = _first_loop(TINY, s, vs)
    torch.manual_seed(12345)  # whatever the global state: the one loop seeds it
    new, hist = train.train({"model": "proxy", **TINY}, out=str(tmp_path / "run"), data=(s, vs), progress=False,
                            log=lambda line: None)
    assert old.state_dict().keys() == new.state_dict().keys()
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k
    assert _state_sha(old) == _state_sha(new)
    assert hist["loss"] == old_hist["loss"] and hist["lr"] == old_hist["lr"]
    assert hist["val_step"] == old_hist["val_step"] == [2, 4, 6, 7] and hist["val_loss"] == old_hist["val_loss"]
    assert min(hist["lr"]) < TINY["lr"]  # the plateau schedule acted
    saved = train.load_checkpoint(str(tmp_path / "run" / "last.pt"))
    assert all(torch.equal(v, saved["model"].state_dict()[k]) for k, v in new.state_dict().items())


def test_proxy_batch_deterministic_shapes_and_targets():
    s = stems()
    a = train.proxy_batch(s, 3, 2048, torch.Generator().manual_seed(7), mixup_alpha=0.0)
    b = train.proxy_batch(s, 3, 2048, torch.Generator().manual_seed(7), mixup_alpha=0.0)
    assert a["x"].shape == a["y"].shape == (3, 1, 2048) and a["params"].shape == (3, P.N_PARAMS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.allclose(a["y"], P.channel_chain(a["x"], SR, a["params"]), atol=1e-6)
    m = train.proxy_batch(s, 3, 2048, torch.Generator().manual_seed(7), mixup_alpha=0.4)
    assert m["x"].shape == (3, 1, 2048) and not torch.equal(m["x"], a["x"])
    eq = train.proxy_batch(s, 2, 2048, torch.Generator().manual_seed(7), augment=False, active=("eq",))
    assert torch.equal(eq["params"], P.bypass(eq["params"], ("eq",)))  # the compressor and reverb bypassed
    with pytest.raises(ValueError, match="louder"):
        train.proxy_batch([torch.zeros(5000)], 1, 2048, torch.Generator())
    with pytest.raises(ValueError, match="stems is empty"):
        train.proxy_batch([], 1, 2048, torch.Generator())


def test_proxy_training_logs_and_continues_from_a_checkpoint(tmp_path):
    cfg = {"model": "proxy", "preset": "tiny", "channels": 4, "steps": 2, "batch_size": 2, "patch_seconds": 0.02,
           "log_every": 1, "val_every": 1, "val_examples": 2}
    lines = []
    quiet = dict(progress=False, log=lines.append, data=(stems(), stems(seed=1)))
    model, hist = train.train(cfg, out=str(tmp_path / "a"), **quiet)
    assert hist["step"] == [1, 2] and hist["steps_done"] == 2 and len(hist["val_loss"]) == 2
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert f"params={trainable} " in lines[0]
    saved = P.load_checkpoint(str(tmp_path / "a" / "last.pt"))["model"]  # the files of every automix train run
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt", "history.json", "last.pt",
                                                                   "loss_curve.png"]
    x, p = torch.ones(1, 1, 300), torch.zeros(1, P.N_PARAMS)
    with torch.no_grad():
        assert torch.equal(saved(x, p), model(x, p))
    _, more = train.train({**cfg, "steps": 1, "init": str(tmp_path / "a" / "last.pt")}, **quiet)
    assert more["steps_done"] == 3 and more["step"] == [1, 2, 3] and more["wall_seconds"] > hist["wall_seconds"]


def test_a_mixing_run_reports_its_trainable_parameters():
    """The one loop counts the trainable parameters of every model family itself (the proxy's: above)."""
    cfg = {"model": "dmc", "model_args": {"console": "basic", "dim": 8, "widths": [4, 8], "hidden": 16}, "steps": 1,
           "batch_size": 1, "segment_seconds": 0.5, "val_items": 1, "warmup_steps": 0, "threads": 1}
    lines = []
    model, _ = train.train(cfg, progress=False, log=lines.append)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert any(f": {trainable:,} trainable parameters" in line for line in lines), lines


def test_a_stopped_and_resumed_proxy_run_trains_what_a_straight_run_does(tmp_path):
    """The batch generator travels in last.pt, and the plateau schedule steps only at the ``val_every``-th steps
    (not at the early end's extra validation)."""
    s, vs = stems(), stems(seed=1)
    cfg = {"model": "proxy", **TINY}
    quiet = dict(progress=False, log=lambda line: None, data=(s, vs))
    straight, hist = train.train(cfg, out=str(tmp_path / "a"), **quiet)
    train.train(cfg, out=str(tmp_path / "b"), stop_at=3, **quiet)
    resumed, rhist = train.train(cfg, out=str(tmp_path / "b"), resume=True, **quiet)
    assert _state_sha(resumed) == _state_sha(straight)
    assert rhist["lr"] == hist["lr"] and rhist["val_step"] == [2, 3, 4, 6, 7] and rhist["steps_done"] == 7
    with pytest.raises(ValueError, match="already finished all 7 steps"):
        train.train(cfg, out=str(tmp_path / "b"), resume=True, **quiet)


def test_max_seconds_ends_a_session_that_resume_continues(tmp_path):
    s, vs = stems(), stems(seed=1)
    cfg = {"model": "proxy", **TINY, "max_seconds": 1e-9}
    quiet = dict(progress=False, log=lambda line: None, data=(s, vs))
    _, hist = train.train(cfg, out=str(tmp_path / "run"), **quiet)
    assert hist["steps_done"] == 1 and hist["val_step"] == [1] and hist["step"] == [1]
    _, more = train.train(cfg, out=str(tmp_path / "run"), resume=True, **quiet)
    assert more["steps_done"] == 2 and more["step"] == [1, 2]


def test_the_bundled_proxy_is_in_the_one_format_with_its_weights_bit_for_bit():
    """proxy_channel.pt was trained by the first loop (format automix-lite-proxy-1) and converted by
    proxy.upgrade_checkpoint: the same state-dict tensors (their sha256 recorded from the old file)."""
    outer = torch.load(P.BUNDLED_CHECKPOINT, weights_only=True)
    assert outer["format"] == train.CHECKPOINT_FORMAT == P.CHECKPOINT_FORMAT
    ck = train.load_checkpoint(P.BUNDLED_CHECKPOINT)
    assert _state_sha(ck["model"]) == "5d3b93b3ab4bb2acfb5e8904f0c7f31397eea04ec8ddefd57a993624c0b9c728"
    assert ck["extra"]["converted_from"] == {
        "format": P.LEGACY_FORMAT, "sha256": "c2db0aeff0db5bff8d47d35c6bdd9cddf1e894eeb3a40270e115ffe544a2e339"}
    assert ck["extra"]["names"] == list(P.NAMES) and ck["config"]["model"] == "proxy"
    assert train.load_config(ck["config"]) == ck["config"]
    assert {"step", "loss", "lr", "val_step", "val_loss", "seconds", "wall_seconds", "steps_done", "device",
            "device_name", "threads", "best_val", "steps_per_second", "world_size", "steps_override"} <= set(ck["history"])
    assert ck["history"]["steps_done"] == 3000 and set(ck["metrics"]) == {"table6", "dry", "examples", "seconds"}
    proxy_ck = P.load_checkpoint()
    assert isinstance(proxy_ck["model"], type(ck["model"])) and proxy_ck["sha256"] == ck["sha256"]


def test_a_first_loop_checkpoint_is_read_and_upgraded_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    old_cfg = {**_FIRST_DEFAULTS, "preset": "tiny", "channels": 4}
    model = P.build_model(old_cfg)
    path, new = str(tmp_path / "proxy.pt"), str(tmp_path / "new.pt")
    history = {"step": [1], "loss": [0.5], "lr": [1e-3], "seconds": [1.0], "val_step": [1], "val_loss": [0.25],
               "wall_seconds": 2.0, "steps_done": 1}
    digest = _checkpoint.write(path, {"state_dict": _checkpoint.float32_state(model), "config": old_cfg,
                                      "metrics": {"a": 1.0}, "history": history, "names": list(P.NAMES)},
                               P.LEGACY_FORMAT)
    read = P.load_checkpoint(path)  # converted on reading
    assert _state_sha(read["model"]) == _state_sha(model) and read["metrics"] == {"a": 1.0}
    P.upgrade_checkpoint(path, new, code_version="0.0.1", history={"device": "cpu"})
    ck = train.load_checkpoint(new)
    assert _state_sha(ck["model"]) == _state_sha(model) and ck["code_version"] == "0.0.1"
    assert ck["extra"]["converted_from"]["sha256"] == digest and ck["history"]["best_val"] == 0.25
    assert ck["history"]["device"] == "cpu" and ck["history"]["world_size"] == 1
    with pytest.raises(ValueError, match="not a channel-chain proxy"):
        dmc = str(tmp_path / "dmc.pt")
        cfg = train.load_config({"model_args": {"console": "basic"}, "max_tracks": 2})
        train.save_checkpoint(dmc, train.build_model(cfg), cfg)
        P.load_checkpoint(dmc)


def test_proxy_configs_are_checked_like_every_config(tmp_path):
    bad = {"model": "proxy", "steps": 0, "preset": "huge", "lr_factor": 1, "channels": 0, "augment": "yes",
           "max_seconds": -1, "device": "gpu", "threads": 0, "lr_patience": -1}
    with pytest.raises(ValueError) as exc:
        train.load_config(bad)
    for key in set(bad) - {"model"}:
        assert f"{key} " in str(exc.value), key
    with pytest.raises(ValueError, match='unknown config key.*add "model": "proxy"'):
        train.load_config({"preset": "tiny", "stft_weight": 0.1})
    with pytest.raises(ValueError, match="unknown config key.*keys of the DMC"):
        train.load_config({"model": "proxy", "model_args": {}})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\]"):
        train.load_config({"learning_rate": 1e-3}, default_model="proxy")
    assert train.load_config({"preset": "tiny"}, default_model="proxy")["model"] == "proxy"  # as proxy files do
    for path in ("configs/proxy_cpu.json", "configs/proxy_full.json"):
        cfg = train.load_config(os.path.join(ROOT, path))
        assert cfg["model"] == "proxy" and type(train.build_model(cfg)).__name__ == "TCN"
    with pytest.raises(ValueError, match="trains in one process"):
        train.train({"model": "proxy", **TINY}, out=str(tmp_path / "run"), nproc=2)
    with pytest.raises(ValueError, match="applies to the proxy"):
        train.train({"steps": 1}, data=([], []), progress=False, log=lambda line: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["style_track", "style_mix"])
def test_sampled_families_use_the_one_loop_in_one_process(tmp_path, model):
    """The style models plug into the loop as sampled families (train.SAMPLED_FAMILIES): their own config keys and
    checks, one process, their own examples (no proxy stems)."""
    cfg = train.load_config({"model": model})
    assert cfg["model"] == model and {"lr_factor", "lr_patience", "max_seconds", "val_every"} <= set(cfg)
    with pytest.raises(ValueError, match=rf"a {model} model trains in one process"):
        train.train({"model": model}, out=str(tmp_path / "run"), nproc=2)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['preset'\].*keys of a 'style"):
        train.load_config({"model": model, "preset": "tiny"})
    with pytest.raises(ValueError, match="steps must be"):
        train.load_config({"model": model, "steps": 0})
    with pytest.raises(ValueError, match="draws its own examples"):
        train.train({"model": model, "steps": 1}, data=([], []), progress=False, log=lambda line: None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="style_track.*style_mix"):
        train.load_config({"model": "style"})


def test_the_models_package_does_not_shadow_train_evaluation_or_metrics():
    import automix_lite.models as models

    for name in ("train", "evaluate", "evaluation", "load_checkpoint", "save_checkpoint", "metrics", "load_config"):
        assert not hasattr(models, name), name
    assert models.proxy is P and callable(P.evaluate)


def test_proxy_training_lives_in_train_only():
    """models/proxy.py is the model (parameters, DSP chain, TCN, checkpoints, Table 6); its training (config, data,
    optimiser, part of the loop) is automix_lite.train's, under the names there."""
    for name in ("train", "DEFAULT_CONFIG", "load_config", "config_problems", "TrainingPart", "optimiser",
                 "continue_from", "make_batch", "training_stems", "_examples", "_patch", "_augment", "_stems_of"):
        assert not hasattr(P, name), name
    assert callable(train.proxy_batch) and callable(train.proxy_stems) and train.PROXY_DEFAULT_CONFIG["model"] == "proxy"


def test_automix_train_trains_the_bundled_proxy_config(tmp_path, capsys):
    from automix_lite.cli import main

    out = tmp_path / "run"
    assert main(["train", os.path.join(ROOT, "configs", "proxy_cpu.json"), "--out", str(out), "--steps", "1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "proxy: tcn10 channels=16 rf=6139" in printed and "models.proxy evaluate" in printed
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.json", "last.pt", "loss_curve.png"]
    hist = json.loads((out / "history.json").read_text())
    assert hist["steps_done"] == 1 and hist["steps_override"] == 1 and hist["world_size"] == 1
    ck = P.load_checkpoint(str(out / "last.pt"))
    assert ck["config"]["steps"] == 1 and ck["model"].receptive_field == 6139


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "automix_lite.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_automix_data_runs_the_renderer_with_its_checks(tmp_path):
    done = _cli("data", "--help")
    assert done.returncode == 0 and "--out DIR" in done.stdout and "--soundfont" in done.stdout
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOMIX_SOUNDFONT",)}
    env["PATH"] = str(empty)  # no fluidsynth
    done = _cli("data", "--out", str(tmp_path / "data"), env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("automix: error: make data needs FluidSynth (the `fluidsynth` program) and a "
                                  "General MIDI SoundFont.")
    assert "sudo apt-get install fluidsynth fluid-soundfont-gm" in done.stderr
    assert not (tmp_path / "data").exists()


def test_proxy_card_still_writes_the_card(tmp_path, monkeypatch):
    import shutil

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import proxy_card
    finally:
        sys.path.pop(0)
    path = tmp_path / "proxy_channel.pt"
    shutil.copy(P.BUNDLED_CHECKPOINT, path)
    (tmp_path / "benchmarks").mkdir()
    monkeypatch.setattr(P, "BUNDLED_CHECKPOINT", str(path))
    monkeypatch.setattr(proxy_card, "ROOT", str(tmp_path))
    monkeypatch.setattr(proxy_card, "print", lambda *a: None, raising=False)
    proxy_card.main()
    card = (tmp_path / "proxy_channel.md").read_text()
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() in card
    assert "automix train configs/proxy_cpu.json --out runs/proxy_cpu" in card
    assert "cp runs/proxy_cpu/last.pt" in card and "bit for bit" in card
    assert "| combined | 0.02472 (0.0151) |" in card  # the stored Table 6
    assert "Intel(R) Xeon(R) Processor" in (tmp_path / "benchmarks" / "PROXY_RESULTS.md").read_text()


def test_the_proxy_command_line_evaluates_and_aliases_automix_train(tmp_path, capsys):
    import shutil

    path = str(tmp_path / "p.pt")
    shutil.copy(P.BUNDLED_CHECKPOINT, path)
    before = P.load_checkpoint(path)
    P.main(["evaluate", path, "--examples", "1", "--seconds", "0.2", "--save"])
    after = P.load_checkpoint(path)  # new metrics; weights, history, extra and code version kept
    assert after["metrics"]["examples"] == 1 and set(after["metrics"]["table6"]) == {c for c, _ in P.CASES}
    assert _state_sha(after["model"]) == _state_sha(before["model"])
    assert (after["extra"], after["code_version"], after["history"]) == (before["extra"], before["code_version"],
                                                                        before["history"])
    # "python -m automix_lite.models.proxy train" is automix train, its arguments and its messages
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "proxy", "preset": "tiny", "steps": 0}))
    capsys.readouterr()
    assert P.main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "automix: error: " in err and "steps must be a whole number >= 1; got 0" in err
    assert not (tmp_path / "run").exists()
    config.write_text(json.dumps({"preset": "tiny", "steps": 1, "batch_size": 1, "patch_seconds": 0.05,
                                  "val_examples": 1}))
    assert P.main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert 'add "model": "proxy"' in capsys.readouterr().err
