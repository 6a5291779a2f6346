"""Issue 12, "one training loop, on one machine or many": ``automix train --nproc N`` (spawned processes) and
``torchrun -m automix_lite.train`` train, with PyTorch's DistributedDataParallel on CPU (gloo), the weights one
process trains with the whole batch; only rank 0 writes; resuming works; ``--steps`` overrides the config's."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from automix_lite import train
from conftest import one_error as _one_error, run_cli as _run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A narrow DMC (BatchNorm in its encoder, dropout 0.1 in its MLP: both must see the global batch), 0.5 s segments,
# global batch 4 (2 per process), validation only at the end. "steps": 1000 is overridden with steps=3.
TINY = {"model": "dmc", "model_args": {"console": "basic", "dim": 8, "widths": [4, 8], "hidden": 16}, "task": "songs",
        "batch_size": 4, "steps": 1000, "segment_seconds": 0.5, "val_items": 2, "val_every": 1000, "log_every": 1,
        "warmup_steps": 1, "threads": 1, "seed": 0}


def _noisy_keys(model):
    """The biases of convolutions that feed a BatchNorm, and those BatchNorms' running means. Their exact gradient
    is 0 (BatchNorm removes the mean), so what Adam steps by is rounding noise, up to lr per step, in any two runs
    that add up in another order (one process on 1 or 2 threads too); the model's output does not depend on them
    (in eval mode up to rounding, through the running mean). They are compared by the outputs."""
    keys = set()
    for name, seq in model.named_modules():
        kids = list(seq.named_children())
        for (a, first), (b, second) in zip(kids, kids[1:]):
            if isinstance(first, torch.nn.Conv2d) and isinstance(second, torch.nn.modules.batchnorm._BatchNorm):
                keys |= {f"{name}.{a}.bias", f"{name}.{b}.running_mean"}
    return keys


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_what_one_does_and_resume_under_torchrun(tmp_path, capfd):
    one, two = tmp_path / "one", tmp_path / "two"
    quiet = lambda *_: None  # noqa: E731
    single, h1 = train.train(TINY, out=str(one), progress=False, log=quiet, steps=3)
    ck = train.load_checkpoint(str(one / "last.pt"))
    assert ck["config"]["steps"] == 3 and h1["steps_override"] == 3 and h1["world_size"] == 1  # --steps recorded
    capfd.readouterr()

    # two spawned processes (gloo), stopped after 2 steps ...
    _, h2 = train.train(TINY, out=str(two), progress=False, steps=3, nproc=2, stop_at=2)
    out = capfd.readouterr().out
    assert out.count("step      1  loss") == 1 and out.count("  validation ") == 1, out  # rank 0 alone logs
    assert h2["world_size"] == 2 and h2["steps_done"] == 2 and "2 processes x 2 items" in out
    # ... resumed in two processes started as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, env://)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOMIX_MODE": "fast", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    cmd = [sys.executable, "-m", "automix_lite.train", str(config), "--out", str(two), "--resume", "--steps", "3",
           "--no-progress"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "step      3  loss" in logs[0] and "checkpoints in" in logs[0] and "steps 3-3" in logs[0]
    assert logs[1].strip() == "", logs[1]  # rank 1 prints nothing ...
    assert sorted(os.listdir(two)) == sorted(train.RUN_FILES)  # ... and the folder holds one run, released

    ck2 = train.load_checkpoint(str(two / "last.pt"))
    assert ck2["config"] == ck["config"] and ck2["history"]["world_size"] == 2 and ck2["history"]["steps_done"] == 3
    noisy = _noisy_keys(single)
    assert noisy  # the encoder's convolutions
    for (k, v), w in zip(single.state_dict().items(), ck2["model"].state_dict().values()):
        if v.is_floating_point() and k not in noisy:
            assert (v - w).abs().max() < 1e-5, k
        elif not v.is_floating_point():
            assert torch.equal(v, w), k  # BatchNorm's step counters
    # The loss of the global batch, step by step. One process's StereoLoss takes its norms with
    # torch.linalg.vector_norm, whose float32 sum over (batch, bins, frames) is off by up to ~3e-4 (relative);
    # the ranks' sums are exact to ~1e-7, hence the tolerance (the weights above agree to 1e-5).
    for a, b in zip(h1["loss"], ck2["history"]["loss"]):
        assert a == pytest.approx(b, rel=1e-3)
    assert h1["val_loss"][-1] == pytest.approx(ck2["history"]["val_loss"][-1], rel=1e-4)  # rank 0, StereoLoss
    batch = train._batch(train._datasets(train.load_config(TINY))[1], range(2))
    with torch.no_grad():
        y1, p1 = single(batch["tracks"], batch["mask"])
        y2, p2 = ck2["model"](batch["tracks"], batch["mask"])
    assert (y1 - y2).abs().max() < 1e-5 and (p1.controls[0] - p2.controls[0]).abs().max() < 1e-5


def test_clear_errors_before_any_process_starts(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    status, _, err = _run(capsys, "train", config, "--out", out, "--nproc", "0")
    assert status == 2 and "nproc (--nproc) must be a whole number >= 1" in _one_error(err)
    status, _, err = _run(capsys, "train", config, "--out", out, "--nproc", "3")
    assert status == 2 and "batch_size 4 (the global batch of a step) does not divide among 3" in _one_error(err)
    status, _, err = _run(capsys, "train", config, "--out", out, "--steps", "0")
    assert status == 2 and "--steps" in _one_error(err) and "steps must be a whole number >= 1; got 0" in err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    status, _, err = _run(capsys, "train", config, "--out", out, "--nproc", "2")
    assert status == 2 and "already one of several" in _one_error(err)
    monkeypatch.delenv("WORLD_SIZE")
    if not torch.cuda.is_available():
        gpu = tmp_path / "gpu.json"
        gpu.write_text(json.dumps({**TINY, "device": "cuda"}))
        status, _, err = _run(capsys, "train", gpu, "--out", out, "--nproc", "2")
        assert status == 2 and "device 'cuda' is not available here (0 CUDA device(s))" in _one_error(err)
    assert not out.exists()  # every check came before the out folder was touched
    with pytest.raises(ValueError, match="needs an out folder"):
        train.train(TINY, nproc=2, steps=1)
