"""Long songs (issue 11): block-wise rendering equals one-shot rendering, and memory does not grow with length.

``inference.mix_stems`` renders every console and the Mix-Wave-U-Net in blocks of a few seconds;
``dsp.console.mix_blocks`` carries the reverb tail, the compressor's gain reduction and the EQ's state
from block to block. These tests compare each against the whole song rendered at once, and measure in fresh
processes that the memory mixing needs does not grow with the song (apart from the output mix itself).
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from automix_lite import inference
from automix_lite.parameters import MixParams
from automix_lite.dsp import console
from automix_lite.dsp.biquad import sosfilt
from automix_lite.models.dmc import DMC
from automix_lite.models.wave_u_net import MixWaveUNet

SR = 44100
SMALL = dict(widths=(4, 8), dim=8, hidden=16, max_tracks=4)


def _song(n=4, seconds=3.0, seed=0):
    """``(n, T)`` noise stems with what block joins must survive: a track that stops (silence at the end of
    blocks), one that enters late, one gated on and off, and loud peaks that make the compressor work."""
    g = torch.Generator().manual_seed(seed)
    t = int(seconds * SR)
    x = 0.2 * torch.randn(n, t, generator=g)
    x[1 % n, t // 3:] = 0.0
    x[2 % n, : t // 4] = 0.0
    x[3 % n] *= (torch.sin(torch.arange(t) / SR * 2 * torch.pi * 1.3) > 0).float()
    x[0, t // 2: t // 2 + 2000] *= 8.0
    return x


def _dmc(console_kind="basic", backend="dsp", seed=0):
    torch.manual_seed(seed)
    model = DMC(console=console_kind, backend=backend, **SMALL)
    with torch.no_grad():
        model.post[-1].weight.normal_(0, 0.5)  # outputs that vary with the input, not the neutral console
    return model.eval()


def _one_shot(model, x):
    """The whole song at once (what mix_stems did before issue 11), before peak limiting."""
    mask = inference.active_mask(x)
    with torch.no_grad():
        if hasattr(model, "estimate"):
            params = inference.estimate_params(model, x, mask)
            return model.render(x[None], params, mask[None])[0]
        return model(x[None], mask[None])[0]


def _close(y, ref, rel=1e-6):
    """Equal to float32 rounding: within ``rel`` of the peak (one float32 step is 6e-8 of it; the FFTs of
    different lengths in the reverb round differently by a few steps)."""
    err = float((y - ref).abs().max())
    assert err <= rel * float(ref.abs().max()) + 1e-9, f"max |difference| {err:.3g}, peak {float(ref.abs().max()):.3g}"


# ------------------------------------------------------------------ (a) block-wise equals one-shot


def test_basic_console_blocks_equal_one_shot():
    model = _dmc("basic")
    x = _song()
    y, _ = inference.mix_stems(model, x, block_seconds=0.07, ceiling_db=40.0)
    assert torch.equal(y, _one_shot(model, x))  # no memory: bit for bit


def _hard_params(n, generator):
    """Console settings with long memories: 1 s release, a strong low-band EQ (1 s warm-up), a long reverb."""
    p = console.random_params(1, n, generator=generator)
    p["highpass_cutoff_hz"][:], p["low_shelf_cutoff_hz"][:] = 30.0, 100.0
    p["peak_cutoff_hz"][:] = torch.tensor([120.0, 700.0, 5000.0])
    p["peak_q"][:] = torch.tensor([2.0, 1.0, 0.7])
    p["ratio"][:], p["threshold_db"][:] = 8.0, -30.0
    p["attack_ms"][:], p["release_ms"][:] = torch.tensor([0.5, 5.0, 30.0, 100.0])[:n], 1000.0
    p["knee_db"][0, 0] = 0.0  # a hard knee on one track, soft knees on the others
    p["reverb_send_db"][:], p["reverb_t60_s"][:] = -6.0, 2.5
    return p


@pytest.mark.parametrize("block", [4410, 13230, 50000])
def test_full_console_blocks_equal_one_shot(block):
    g = torch.Generator().manual_seed(3)
    x = _song()[None]
    p = _hard_params(4, g)
    sos = console.strip_eq_sos(SR, {k: p[k] for k in console.EQ_NAMES})
    assert console.eq_warmup_samples(sos.reshape(-1, *sos.shape[-2:])) < block + x.shape[-1] // 2  # really warms up
    mask = torch.tensor([[True, True, False, True]])
    with torch.no_grad():
        ref = console.mix(x, SR, p, mask=mask)
        y = console.mix_blocks(x, SR, p, mask=mask, block=block)
    _close(y, ref)


def test_render_of_full_console_parameters_equals_one_shot():
    """`automix render` of a full-console parameter file renders block by block, like `automix mix`."""
    g = torch.Generator().manual_seed(4)
    x = _song(seconds=2.0)
    p = _hard_params(4, g)
    y = inference.render_params(x, MixParams(p, "full"), SR)
    with torch.no_grad():
        ref = console.mix(x[None], SR, p, mask=inference.active_mask(x)[None])[0]
    _close(y, ref)


def test_full_console_without_carried_state_would_differ():
    """The carried state matters: the same blocks with the compressor restarted from zero are far off."""
    g = torch.Generator().manual_seed(3)
    x = _song()[None]
    p = _hard_params(4, g)
    with torch.no_grad():
        ref = console.mix(x, SR, p)
        y = console.mix_blocks(x, SR, p, block=13230)
        start = console._compressor_prefix
        console._compressor_prefix = lambda state, *a: start(torch.zeros_like(state), *a)
        try:
            forgetful = console.mix_blocks(x, SR, p, block=13230)
        finally:
            console._compressor_prefix = start
    _close(y, ref)
    assert float((forgetful - ref).abs().max()) > 1e-3 * float(ref.abs().max())


def test_eq_warmup_covers_the_slowest_settings():
    """After eq_warmup_samples, even the slowest EQ the console allows has forgotten an impulse."""
    p = console.default_params(1, 1)
    p["peak_cutoff_hz"][:], p["peak_q"][:], p["peak_gain_db"][:] = 20.0, 10.0, 24.0  # three coinciding slow poles
    p["highpass_cutoff_hz"][:], p["low_shelf_cutoff_hz"][:], p["low_shelf_gain_db"][:] = 20.0, 20.0, 24.0
    sos = console.strip_eq_sos(SR, {k: p[k] for k in console.EQ_NAMES})[0]
    n = console.eq_warmup_samples(sos)
    assert 30 * SR < n < 40 * SR  # the docstring's 35 s
    impulse = torch.zeros(1, 1, n + 1000, dtype=torch.float64)
    impulse[..., 0] = 1.0
    h = sosfilt(sos, impulse)[0, 0].abs()
    assert float(h[n:].max()) < 1e-10 * float(h.max())


def test_full_dmc_through_mix_stems_equals_one_shot():
    model = _dmc("full")
    x = _song(seconds=4.0)
    y, params = inference.mix_stems(model, x, long_block_seconds=0.4, ceiling_db=40.0)
    assert params.output_gain_db == 0.0
    _close(y, _one_shot(model, x))
    x = x[:, : 5 * SR // 2]
    short, _ = inference.mix_stems(model, x, ceiling_db=40.0)  # 4 tracks x 2.5 s fit one default block: one-shot
    _close(short, _one_shot(model, x), rel=1e-9)


def test_proxy_console_blocks_equal_one_shot():
    model = _dmc("full", backend="proxy")
    x = _song(seconds=2.0)
    rf = model.console.proxy.receptive_field
    y, _ = inference.mix_stems(model, x, long_block_seconds=2 * rf / SR, ceiling_db=40.0)
    _close(y, _one_shot(model, x), rel=2e-6)  # float32 convolutions of different lengths round differently


@pytest.mark.parametrize("depth", [2, 5])
def test_wave_u_net_sub_blocks_equal_one_shot(depth, monkeypatch):
    torch.manual_seed(depth)
    model = MixWaveUNet(n_tracks=4, depth=depth, channels=6, growth=6, kernel_down=9, kernel_up=5).eval()
    monkeypatch.setattr(inference, "_NET_WORK", 2048)  # many sub-blocks per block
    x = _song(seconds=1.5)
    y, params = inference.mix_stems(model, x, block_seconds=0.5, overlap_seconds=0.1, ceiling_db=40.0)
    assert len(params) == 0 and params.output_gain_db == 0.0
    _close(y, _one_shot(model, x))


def test_wave_u_net_context_bounds_its_reach():
    torch.manual_seed(0)
    model = MixWaveUNet(n_tracks=2, depth=4, channels=4, growth=4, kernel_down=7, kernel_up=3).eval()
    context = inference._unet_context(model)
    x = 0.1 * torch.randn(1, 2, 8192)
    with torch.no_grad():
        y0 = model(x)
        for at in (4096, 4096 + 5, 4096 + 13):
            x2 = x.clone()
            x2[..., at] += 1.0
            changed = torch.nonzero((model(x2) - y0).abs().amax(1)[0] > 0).flatten()
            assert int(changed.min()) >= at - context and int(changed.max()) <= at + context


# ------------------------------------------------------------------ (b) memory does not grow with length

_MEASURE = r"""
import gc, json, sys
import torch
from automix_lite import inference
from automix_lite.models.dmc import DMC
from automix_lite.models.wave_u_net import MixWaveUNet

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

torch.set_num_threads(1)
torch.manual_seed(0)
dmc = DMC(console="full", widths=(4, 8), dim=8, hidden=16, max_tracks=4).eval()
dmc.segment_seconds = 1.0  # analysed in windows of its training length, as the bundled DMCs are
unet = MixWaveUNet(n_tracks=4, depth=3, channels=4, growth=4).eval()
inference._NET_WORK = 8192
cases = {"dmc": (dmc, dict(long_block_seconds=0.5, block_seconds=0.5)),
         "wave_u_net": (unet, dict(block_seconds=2.0, overlap_seconds=0.1))}
x = 0.1 * torch.randn(4, int(float(sys.argv[1]) * 44100), generator=torch.Generator().manual_seed(0))
out = {}
for kind, (model, kw) in cases.items():
    inference.mix_stems(model, x[:, :44100].clone(), **kw)  # numba kernels, caches
    gc.collect()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    y, _ = inference.mix_stems(model, x, **kw)
    out[kind] = {"adds": status("VmHWM") - before, "output": y.numel() * 4, "input": x.numel() * 4}
    del y
print(json.dumps(out))
"""


def _mixing_adds(*seconds):
    """Run the measurement for each length in its own process, all at once (each uses one thread). Large blocks
    go straight to and from the system (``MALLOC_MMAP_THRESHOLD_``), so one model's freed memory does not hide
    the next one's needs."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               MALLOC_MMAP_THRESHOLD_="65536")
    procs = [subprocess.Popen([sys.executable, "-c", _MEASURE, str(s)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for s in seconds]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture(scope="module")
def memory():
    return _mixing_adds(12.0, 48.0)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to reset the peak RSS")
@pytest.mark.parametrize("kind", ["dmc", "wave_u_net"])
def test_memory_does_not_grow_with_song_length(kind, memory):
    """12 s vs 48 s of 4 tracks: what mixing adds to the process grows by the output mix only.

    Before issue 11 the whole-song checks (finiteness, float64 silence test) held several times the input, and
    the full console every strip's signals for the whole song: the same measurement grew by about 190 MiB (full
    DMC) and 95 MiB (Mix-Wave-U-Net) from 12 s to 48 s; now by 5-7 MiB (the longer output needs 12)."""
    short, long = memory[0][kind], memory[1][kind]
    growth = long["adds"] - short["adds"]
    allowed = (long["output"] - short["output"]) + 0.25 * (long["input"] - short["input"]) + 8 * 2 ** 20
    assert growth <= allowed, (f"mixing added {short['adds'] / 2**20:.0f} MiB at 12 s and {long['adds'] / 2**20:.0f} MiB "
                               f"at 48 s (allowed growth {allowed / 2**20:.0f} MiB)")


def test_read_long_songs_parses_the_benchmark_table(tmp_path):
    rows = inference.read_long_songs()  # the committed benchmarks/LONG_SONGS.md
    text = open(inference.LONG_SONGS_FILE, encoding="utf-8").read()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    assert len(rows) == sum(line.startswith("| ") for line in section.splitlines()) - 1  # minus the header
    assert {r["tracks"] for r in rows} >= {8} and all(r["peak RSS (MiB)"] > r["RSS before mixing (MiB)"] for r in rows)
    demo = tmp_path / "LONG.md"
    demo.write_text("# t\n\n## Results\n\n| model | tracks | minutes | mix time (s) | real-time factor | peak RSS (MiB) | "
                    "RSS before mixing (MiB) | mixing adds (MiB) | input + output tensors (MiB) |\n|---|---|---|---|---|---|---|---|---|\n"
                    "| m | 8 | 2 | 1.5 | 80x | 1,014 | 956 | 58 | 202 |\n\n## Growth with length\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert inference.read_long_songs(str(demo)) == [
        {"model": "m", "tracks": 8, "minutes": 2.0, "mix time (s)": 1.5, "peak RSS (MiB)": 1014.0,
         "RSS before mixing (MiB)": 956.0, "mixing adds (MiB)": 58.0, "input + output tensors (MiB)": 202.0}]
    assert inference.read_long_songs(str(tmp_path / "absent.md")) is None
    (tmp_path / "bad.md").write_text("# no results here\n")
    with pytest.raises(ValueError, match="Results"):
        inference.read_long_songs(str(tmp_path / "bad.md"))
