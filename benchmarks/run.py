"""Speed benchmarks of automix-lite's EQ, compressor, reverb and stereo loss against peer libraries.

    python benchmarks/run.py [--quick] [--out benchmarks/RESULTS.md] [--only eq,compressor,reverb,loss]

Batch 8 x 10 s x 44.1 kHz mono float32 tracks, torch and numba on 2 threads; each case is warmed up,
then timed several times and the median kept. Real-time factor (per channel) =
(batch x channels x seconds of audio) / wall seconds. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import peers  # noqa: E402
from harness import Row, Settings, measure  # noqa: E402

TARGETS = {"eq": 150.0, "compressor": 900.0, "compressor_fwd": 1000.0, "reverb": 400.0,
           "loss": 10.0 / 0.3}  # loss: <= 0.3 s per 10 s stereo pair, as seconds of stereo audio per second
EQ_TOLERANCE = 1e-4
IR_TAPS = 65536
COMP = dict(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=100.0, knee_db=6.0)

DEFINITIONS = """\
- **Workload**: a batch of 8 mono tracks (`(8, 1, T)`, float32), 10 s each at 44.1 kHz (T = 441,000),
  taken from `automix_lite.signals.test_song` (7 instrument tracks and their sum).
- **fwd+bwd**: one forward pass, the loss `mean(y**2)`, and `torch.autograd.grad` of that loss with
  respect to the input audio and every parameter tensor (all `requires_grad`). Parameter-to-coefficient
  conversions are inside the timed region. **fwd**: forward only under `torch.no_grad()`.
- **Time**: median wall-clock seconds of the timed repeats after untimed warm-up runs (which absorb
  numba compilation and caches), for the whole batch. The fastest run is shown too, because a shared
  machine adds noise; the target verdict uses the median.
- **Real-time factor (per channel)** = (batch x channels x seconds of audio per channel) / time.
  Every input here is mono, so this is (8 x 1 x 10 s) / time = 80 s / time, except where an
  implementation outputs more channels than it gets (dasp-pytorch's reverb turns mono into stereo, so
  it is credited 2 channels per item). 100x means 100 channel-seconds of audio per wall second.
- **Threads**: `torch.set_num_threads(2)` and `numba.set_num_threads(2)` (or fewer if the machine has
  fewer cores); pedalboard and scipy run single-threaded calls.
"""


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def test_batch(s: Settings) -> torch.Tensor:
    """(8, 1, T) float32: the 7 tracks of the synthesised test song and their sum (peak -1 dBFS)."""
    from automix_lite.signals import test_song

    tracks = list(test_song(s.sample_rate, s.seconds, seed=0).values())
    mix = sum(tracks)
    tracks.append(mix / mix.abs().max() * 10 ** (-1 / 20))
    x = torch.cat(tracks[: s.batch], dim=0)[..., : s.samples]
    assert x.shape == (s.batch, 1, s.samples), x.shape
    return x.contiguous()


def leaves(d: dict) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in d.items()}


def eq_params(batch: int, seed: int = 0) -> dict:
    """Random per-item EQ settings: gains +-12 dB, musical band frequencies, Q 0.5-4 (shelves 0.5-1)."""
    g = torch.Generator().manual_seed(seed)

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    bands = torch.tensor([[100.0, 400.0], [400.0, 1500.0], [1500.0, 5000.0], [5000.0, 12000.0]], dtype=torch.float64)
    pk_freq = torch.exp(torch.log(bands[:, 0]) + torch.log(bands[:, 1] / bands[:, 0]) * u(0, 1, batch, 4))
    return dict(ls_gain=u(-12, 12, batch), ls_freq=u(40, 300, batch), ls_q=u(0.5, 1.0, batch),
                pk_gain=u(-12, 12, batch, 4), pk_freq=pk_freq, pk_q=u(0.5, 4.0, batch, 4),
                hs_gain=u(-12, 12, batch), hs_freq=u(4000, 14000, batch), hs_q=u(0.5, 1.0, batch))


def fixed_ir(sample_rate: int, taps: int = IR_TAPS, t60_s: float = 1.2, seed: int = 0) -> torch.Tensor:
    """(1, 1, taps) float32 exponentially decaying Gaussian noise with unit energy (the same for everyone)."""
    rng = np.random.default_rng(seed)
    t = np.arange(taps) / sample_rate
    h = rng.standard_normal(taps) * np.exp(-3 * math.log(10) * t / t60_s)
    return torch.from_numpy((h / np.sqrt(np.sum(h**2))).astype(np.float32)).view(1, 1, -1)


# ----------------------------------------------------------------------------------------------
# Timing a processor
# ----------------------------------------------------------------------------------------------

def fwd_bwd(fn, x, params: dict):
    """A closure running fn(x, params) forward, then d mean(y^2) / d (x, params)."""
    xs = x.detach().clone().requires_grad_(True)
    ps = leaves(params)

    def step():
        y = fn(xs, ps)
        torch.autograd.grad(y.square().mean(), [xs, *ps.values()], allow_unused=True)  # peers may ignore a parameter

    return step


def fwd_only(fn, x, params: dict):
    def step():
        with torch.no_grad():
            fn(x, params)

    return step


def timed_row(name, passes, step, s: Settings, channels=1, target=None, note="", repeats=None) -> Row:
    try:
        t = measure(step, s, repeats)
    except Exception as e:  # a broken peer (or our module not ready) must not hide the other rows
        traceback.print_exc()
        return Row(name, passes, None, None, target, f"failed: {type(e).__name__}: {str(e)[:120]}")
    rtf = s.batch * channels * s.seconds / t.median_s
    row = Row(name, passes, t.median_s, rtf, target, note, t.runs)
    print(f"  {name:58s} {passes:8s} {harness.fmt_s(t.median_s):>10s} {harness.fmt_rtf(rtf):>10s}"
          f"  ({len(t.runs)} runs)", flush=True)
    return row


def extrapolated_row(name, passes, make_step, s: Settings, lengths_s, channels=1, note="") -> Row:
    """Time a slow case at two short lengths and extrapolate linearly (time = a + b * seconds) to
    ``s.seconds``. The first length is a few milliseconds, so it measures the fixed cost ``a`` (e.g.
    synthesising an impulse response); for direct convolution the rest grows with the length."""
    try:
        times = []
        for sec in lengths_s:
            short = Settings(**{**s.__dict__, "seconds": sec, "warmup": 1, "repeats": 3})
            times.append(measure(make_step(short.samples), short).median_s)
        (l1, l2), (t1, t2) = lengths_s, times
        slope = (t2 - t1) / (l2 - l1)
        if slope <= 0:
            raise RuntimeError(f"timings too noisy to extrapolate: {t1:.2f} s at {l1:g} s, {t2:.2f} s at {l2:g} s")
        total = t2 + slope * (s.seconds - l2)
    except Exception as e:
        traceback.print_exc()
        return Row(name, passes, None, None, None, f"failed: {type(e).__name__}: {str(e)[:120]}")
    rtf = s.batch * channels * s.seconds / total
    detail = ", ".join(f"{harness.fmt_s(t)} at {l:g} s" for l, t in zip(lengths_s, times))
    print(f"  {name:58s} {passes:8s} {harness.fmt_s(total):>10s} {harness.fmt_rtf(rtf):>10s}  ({detail})", flush=True)
    return Row(name, passes, total, rtf, None,
               f"timed on short audio ({detail}) and extrapolated linearly to {s.seconds:g} s. {note}".strip())


# ----------------------------------------------------------------------------------------------
# 1. Parametric EQ
# ----------------------------------------------------------------------------------------------

def ours_eq(x, sample_rate, p):
    from automix_lite.dsp.biquad import parametric_eq

    return parametric_eq(x, sample_rate, low_shelf_gain_db=p["ls_gain"], low_shelf_cutoff_hz=p["ls_freq"],
                         low_shelf_q=p["ls_q"], peak_gain_db=p["pk_gain"], peak_cutoff_hz=p["pk_freq"],
                         peak_q=p["pk_q"], high_shelf_gain_db=p["hs_gain"], high_shelf_cutoff_hz=p["hs_freq"],
                         high_shelf_q=p["hs_q"])


def bench_eq(s: Settings, x: torch.Tensor):
    sr = s.sample_rate
    p32 = {k: v.float() for k, v in eq_params(s.batch).items()}
    rows = [
        timed_row("automix-lite `parametric_eq` (exact SOS, numba)", "fwd+bwd",
                  fwd_bwd(lambda x, p: ours_eq(x, sr, p), x, p32), s, target=TARGETS["eq"]),
        timed_row("dasp-pytorch `parametric_eq` (frequency sampling)", "fwd+bwd",
                  fwd_bwd(lambda x, p: peers.dasp_eq(x, sr, p), x, p32), s),
        timed_row("exact SOS via torchlpc (RBJ in torch, FIR + `sample_wise_lpc`, 6 sections)", "fwd+bwd",
                  fwd_bwd(lambda x, p: peers.torchlpc_eq(x, sr, p), x, p32), s),
    ]
    sos64 = peers.eq_sos(eq_params(s.batch), sr).numpy()
    xn = x.numpy()
    rows.append(timed_row("`scipy.signal.sosfilt` (float32 in, not differentiable)", "fwd",
                          lambda: peers.scipy_eq(xn, sos64.astype(np.float32)), s,
                          note="reference; one call per item"))

    # Accuracy: against scipy.signal.sosfilt in float64 on the RBJ cookbook SOS of the same settings.
    ref = peers.scipy_eq(x.double().numpy(), sos64)
    acc = []

    def err(name, fn, ref=ref):
        try:
            with torch.no_grad():
                y = fn().detach().double().numpy()
            e = float(np.max(np.abs(y - ref)))
            acc.append((name, e))
            print(f"  max |error| {name}: {e:.3g}", flush=True)
        except Exception as exc:
            traceback.print_exc()
            acc.append((name, f"failed: {type(exc).__name__}: {exc}"))

    err("automix-lite `parametric_eq`, float32", lambda: ours_eq(x, sr, p32))
    err("automix-lite `parametric_eq`, float64", lambda: ours_eq(x.double(), sr, eq_params(s.batch)))
    err("`scipy.signal.sosfilt` itself in float32 (the float32 floor)",
        lambda: torch.from_numpy(peers.scipy_eq(x.numpy(), sos64.astype(np.float32))))
    err("exact SOS via torchlpc, float32", lambda: peers.torchlpc_eq(x, sr, p32))
    err("dasp-pytorch `parametric_eq`, float32", lambda: peers.dasp_eq(x, sr, p32))
    try:  # dasp against scipy on dasp's own coefficients: isolates its frequency-sampling error
        dsos = peers.dasp_eq_sos(eq_params(s.batch), sr).numpy()
        err("dasp-pytorch `parametric_eq`, float32, vs scipy on dasp's own SOS",
            lambda: peers.dasp_eq(x, sr, p32), ref=peers.scipy_eq(x.double().numpy(), dsos))
    except Exception:
        traceback.print_exc()
    return rows, acc


# ----------------------------------------------------------------------------------------------
# 2. Compressor
# ----------------------------------------------------------------------------------------------

def ours_compressor(x, sample_rate, p):
    from automix_lite.dsp.dynamics import compressor

    return compressor(x, sample_rate, threshold_db=p["threshold_db"], ratio=p["ratio"], attack_ms=p["attack_ms"],
                      release_ms=p["release_ms"], knee_db=p["knee_db"])


def bench_compressor(s: Settings, x: torch.Tensor):
    sr = s.sample_rate
    p = {k: torch.full((s.batch,), v) for k, v in COMP.items()}
    cases = [
        ("automix-lite `compressor` (attack + release, soft knee, numba)", ours_compressor, ""),
        ("dasp-pytorch `compressor`", peers.dasp_compressor, "ignores release (attack-only smoothing)"),
        ("torchcomp `avg` (1 ms RMS) + `compexp_gain`", lambda x, sr, p: peers.torchcomp_compressor(x, sr, p, 1.0),
         "attack + release; no knee"),
        ("torchcomp `compexp_gain` on \\|x\\|", peers.torchcomp_compressor, "attack + release; no knee; no RMS averager"),
    ]
    rows = []
    for passes, wrap, target in (("fwd+bwd", fwd_bwd, TARGETS["compressor"]), ("fwd", fwd_only, TARGETS["compressor_fwd"])):
        for name, fn, note in cases:
            ours = name.startswith("automix-lite")
            rows.append(timed_row(name, passes, wrap(lambda x, p, fn=fn: fn(x, sr, p), x, p), s,
                                  target=target if ours else None, note=note))
    xn = x.numpy()
    rows.append(timed_row("pedalboard `Compressor` (JUCE, not differentiable)", "fwd",
                          lambda: peers.pedalboard_compressor(xn, sr, COMP), s, note="one call per item; no knee"))
    return rows


# ----------------------------------------------------------------------------------------------
# 3. Reverb (FFT convolution with a 65536-tap IR)
# ----------------------------------------------------------------------------------------------

def ours_fft_convolve(x, ir):
    from automix_lite.dsp.reverb import fft_convolve

    y = fft_convolve(x, ir)
    return y[..., : x.shape[-1]]


def ours_reverb(x, sample_rate, ir, wet):
    from automix_lite.dsp.reverb import reverb

    return reverb(x, sample_rate, t60_s=1.2, wet=wet, ir=ir)


def bench_reverb(s: Settings, x: torch.Tensor):
    sr = s.sample_rate
    ir = fixed_ir(sr)
    wet = {"wet": torch.full((s.batch,), 0.3)}
    rows = [
        timed_row("automix-lite `fft_convolve` (fixed IR)", "fwd+bwd",
                  fwd_bwd(lambda x, p: ours_fft_convolve(x, ir), x, {}), s, target=TARGETS["reverb"],
                  note="gradient w.r.t. the audio"),
        timed_row("automix-lite `reverb` (fixed IR, wet as a (B,) tensor)", "fwd+bwd",
                  fwd_bwd(lambda x, p: ours_reverb(x, sr, ir, p["wet"]), x, wet), s, target=TARGETS["reverb"],
                  note="gradient w.r.t. the audio and wet"),
        timed_row("automix-lite `fft_convolve` (fixed IR)", "fwd", fwd_only(lambda x, p: ours_fft_convolve(x, ir), x, {}), s),
    ]
    xn, irn = x.numpy()[:, 0], ir.numpy()[0]
    from scipy.signal import fftconvolve

    rows.append(timed_row("`scipy.signal.fftconvolve` (not differentiable)", "fwd",
                          lambda: fftconvolve(xn, irn, axes=-1)[:, : xn.shape[-1]], s, note="reference"))

    lengths = (0.002, 0.1) if s.quick else (0.002, 0.5)
    rows.append(extrapolated_row(
        "dasp-pytorch direct convolution (its `conv1d` step, our fixed IR)", "fwd+bwd",
        lambda n: fwd_bwd(lambda x, p: peers.dasp_direct_convolve(x, ir), x[..., :n], {}), s, lengths,
        note="The convolution code of `noise_shaped_reverberation`, gradient w.r.t. the audio."))
    g = torch.Generator().manual_seed(0)
    dp = {"band_gain": torch.rand(s.batch, 12, generator=g), "band_decay": torch.rand(s.batch, 12, generator=g),
          "mix": torch.full((s.batch,), 0.3)}
    rows.append(extrapolated_row(
        "dasp-pytorch `noise_shaped_reverberation` (65536-sample IR)", "fwd+bwd",
        lambda n: fwd_bwd(lambda x, p: peers.dasp_reverb(x, sr, p), x[..., :n], dp), s, lengths,
        channels=2, note="Includes its IR synthesis (a fresh random IR each call); mono in, stereo out (2 channels)."))

    acc = []
    try:
        ref = fftconvolve(x.double().numpy()[:, 0], ir.double().numpy()[0], axes=-1)[:, : xn.shape[-1]]
        with torch.no_grad():
            for name, xx, ii in (("float32", x, ir), ("float64", x.double(), ir.double())):
                e = float(np.max(np.abs(ours_fft_convolve(xx, ii).double().numpy()[:, 0] - ref)))
                acc.append((f"automix-lite `fft_convolve`, {name}", e))
                print(f"  max |error| fft_convolve {name}: {e:.3g}", flush=True)
    except Exception as exc:
        traceback.print_exc()
        acc.append(("automix-lite `fft_convolve`", f"failed: {type(exc).__name__}: {exc}"))
    return rows, acc


# ----------------------------------------------------------------------------------------------
# 4. Stereo MR-STFT loss (one stereo pair, batch 1)
# ----------------------------------------------------------------------------------------------

def stereo_pair(x: torch.Tensor, seed: int = 0):
    """Prediction and target ``(1, 2, T)``: two stereo mixes of the test song's 7 tracks (the first 7
    items of ``x``), each with seeded gains (+-6 dB) and constant-power pans."""
    tracks = x[:7, 0]
    g = torch.Generator().manual_seed(seed)

    def mix():
        gain = 10 ** ((12 * torch.rand(7, 1, generator=g) - 6) / 20)
        angle = torch.rand(7, 1, generator=g) * math.pi / 2
        return torch.stack([(gain * angle.cos() * tracks).sum(0), (gain * angle.sin() * tracks).sum(0)])[None]

    return mix(), mix()


def loss_fwd_bwd(loss, pred, target):
    """A closure running the loss and ``torch.autograd.grad`` of it with respect to the prediction."""
    p = pred.detach().clone().requires_grad_(True)

    def step():
        torch.autograd.grad(loss(p, target), [p])

    return step


def loss_fwd(loss, pred, target):
    def step():
        with torch.no_grad():
            loss(pred, target)

    return step


def bench_loss(s: Settings, x: torch.Tensor):
    from automix_lite.losses import MRSTFTLoss, StereoLoss

    one = Settings(**{**s.__dict__, "batch": 1})  # one stereo pair: real-time factor = seconds / time
    pred, target = stereo_pair(x)
    ours_sd, ours_mr = StereoLoss(), MRSTFTLoss()
    res = ours_mr.resolutions
    cases = [
        ("automix-lite `StereoLoss` (sum and difference)", "fwd+bwd", loss_fwd_bwd, lambda: ours_sd, TARGETS["loss"],
         "thesis eq. 5.3: MR-STFT(L+R) + MR-STFT(L-R)"),
        ("auraloss `SumAndDifferenceSTFTLoss` (the same resolutions)", "fwd+bwd", loss_fwd_bwd,
         lambda: peers.auraloss_sum_and_difference(res), None, "returns half of ours (it averages the two terms)"),
        ("automix-lite `MRSTFTLoss` on left/right", "fwd+bwd", loss_fwd_bwd, lambda: ours_mr, None, ""),
        ("auraloss `MultiResolutionSTFTLoss()` (defaults) on left/right", "fwd+bwd", loss_fwd_bwd,
         peers.auraloss_mrstft, None, "the same value as ours"),
        ("automix-lite `StereoLoss`", "fwd", loss_fwd, lambda: ours_sd, None, "evaluation: no gradient"),
        ("auraloss `SumAndDifferenceSTFTLoss`", "fwd", loss_fwd, lambda: peers.auraloss_sum_and_difference(res),
         None, ""),
    ]
    rows = []
    for name, passes, wrap, make, target_rtf, note in cases:
        try:
            step = wrap(make(), pred, target)
        except Exception as e:  # auraloss missing: a "failed" row, the others still run
            traceback.print_exc()
            rows.append(Row(name, passes, None, None, target_rtf, f"failed: {type(e).__name__}: {str(e)[:120]}"))
            continue
        rows.append(timed_row(name, passes, step, one, target=target_rtf, note=note))

    # Agreement: loss value and gradient against auraloss (ours against twice auraloss for the stereo loss).
    acc = []
    for dtype in (torch.float32, torch.float64):
        p, t = pred.to(dtype), target.to(dtype)
        for name, ours, ref, k in (
            ("`MRSTFTLoss` vs `MultiResolutionSTFTLoss`", MRSTFTLoss(), lambda: peers.auraloss_mrstft(dtype), 1.0),
            ("`StereoLoss` vs 2 x `SumAndDifferenceSTFTLoss`", StereoLoss(),
             lambda: peers.auraloss_sum_and_difference(res, dtype), 2.0),
        ):
            label = f"{name}, {str(dtype).replace('torch.', '')}"
            try:
                (v, g), (v_ref, g_ref) = (_value_grad(f, p, t) for f in (ours, ref()))
                for what, a, b in (("value", v, k * v_ref), ("gradient", g, k * g_ref)):
                    e = float((a - b).norm() / b.norm())
                    acc.append((f"{label}, {what}", e))
                    print(f"  relative difference {label}, {what}: {e:.3g}", flush=True)
            except Exception as exc:
                traceback.print_exc()
                acc.append((label, f"failed: {type(exc).__name__}: {exc}"))
    return rows, acc


def _value_grad(loss, pred, target):
    p = pred.detach().clone().requires_grad_(True)
    value = loss(p, target)
    (grad,) = torch.autograd.grad(value, [p])
    return value.detach(), grad


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def report(s: Settings, info: dict, sections: dict, load_end: str) -> str:
    out = ["# Speed benchmarks", ""]
    if s.quick:
        out += ["**Quick smoke run (`--quick`): shorter audio and fewer repeats; not the recorded figures.**", ""]
    out += ["Generated by `python benchmarks/run.py` (see `benchmarks/README.md`).", "", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [f"- load average at end: {load_end}", ""]
    out += ["## Definitions", "", DEFINITIONS.strip(), "",
            f"Run: batch {s.batch}, {s.seconds:g} s at {s.sample_rate} Hz, {s.warmup} warm-up run(s), "
            f"up to {s.repeats} timed repeats (at least 3; fewer than {s.repeats} once a case has used "
            f"{s.budget_s:g} s).", ""]
    titles = {"eq": "1. Six-band parametric EQ (low shelf, 4 peaks, high shelf)",
              "compressor": "2. Compressor with attack and release (threshold -20 dB, ratio 4, attack 5 ms, "
                            "release 100 ms, knee 6 dB)",
              "reverb": f"3. Reverb by FFT convolution with a {IR_TAPS}-tap IR (per channel)",
              "loss": f"4. Stereo MR-STFT loss: one {s.seconds:g} s stereo pair, batch 1 (real-time factor = "
                      f"seconds of stereo audio per second; target <= 0.3 s per 10 s)"}
    for key, (rows, acc) in sections.items():
        out += [f"## {titles[key]}", "", harness.table(rows), ""]
        if acc:
            out += [LOSS_AGREEMENT if key == "loss" else "Accuracy (max absolute error against scipy in float64"
                    + (f"; target {EQ_TOLERANCE:g} for ours" if key == "eq" else "") + "):", ""]
            for name, e in acc:
                ok = ""
                if key == "eq" and name.startswith("automix-lite") and isinstance(e, float):
                    ok = " (within 1e-4)" if e <= EQ_TOLERANCE else f" (**over 1e-4** by {e / EQ_TOLERANCE:.1f}x)"
                out.append(f"- {name}: {e:.3g}{ok}" if isinstance(e, float) else f"- {name}: {e}")
            out.append("")
    out += ["## Notes", "", NOTES.strip(), ""]
    return "\n".join(out + quality_sections())


def quality_sections() -> list:
    """The quality reports written by other scripts (model evaluations), as lines for RESULTS.md."""
    out = []
    for extra in QUALITY_REPORTS:
        if extra.exists():
            body = extra.read_text().strip().splitlines()
            out += [f"## Quality: {body[0].lstrip('# ')}", "", f"From `benchmarks/{extra.name}`.", *body[1:], ""]
    return out


def refresh_quality(path: str) -> None:
    """Replace the quality sections at the end of an existing report, keeping its speed figures."""
    text = Path(path).read_text()
    head = text.split("\n## Quality: ")[0].rstrip("\n")
    Path(path).write_text("\n".join([head, "", *quality_sections()]))


# model evaluations written with the checkpoints' model cards: the proxy's Table 6 (models.proxy evaluate)
# and the mixing models' Table 12 (tools/train_bundled.py)
QUALITY_REPORTS = [Path(__file__).resolve().parent / name for name in ("PROXY_RESULTS.md", "MIXING_RESULTS.md",
                                                                        "EVALUATION_RESULTS.md")]


LOSS_AGREEMENT = ("Agreement with auraloss (relative difference ||ours - ref|| / ||ref|| of the loss value and of its "
                  "gradient with respect to the prediction; in float64 both sides use float64 windows):")

NOTES = """\
- EQ settings are drawn per batch item (seeded): shelf and peak gains +-12 dB, low shelf 40-300 Hz,
  peaks log-uniform in 100-400 Hz, 400-1500 Hz, 1.5-5 kHz and 5-12 kHz, high shelf 4-14 kHz, peak Q
  0.5-4, shelf Q 0.5-1. The EQ accuracy reference is `scipy.signal.sosfilt` in float64 on RBJ-cookbook
  sections computed independently in `benchmarks/peers.py`; dasp-pytorch is also compared with scipy on
  its own sections, which isolates the error of frequency sampling (the filter's impulse response is
  sampled on an FFT grid of the next power of two above 2T - 1, so it is circularly aliased and not
  the recursive filter).
- The torchlpc rows build the same RBJ sections in torch, apply each numerator as a 3-tap FIR and the
  denominator with `torchlpc.sample_wise_lpc` (whose coefficients are per sample, so the 2 denominator
  coefficients are expanded over time). torchlpc's speed depends on its compiled C++ extension (see
  "torchlpc C++ extension loaded" above; without it torchlpc falls back to numba).
- dasp-pytorch's `compressor` accepts a release time but smooths with the attack time only.
  torchcomp's time constants are converted with its own `ms2coef` (10-90 % rise time convention,
  2200 / (ms x sr)); ours use the 1 - 1/e convention, so equal milliseconds are not identical
  ballistics. torchcomp and pedalboard have no knee; ours and dasp-pytorch use a 6 dB knee.
  pedalboard is C++ (JUCE) without gradients; it is called once per item on float32 numpy arrays.
- dasp-pytorch has no reverb that takes a given impulse response: `noise_shaped_reverberation`
  synthesises one (a fresh random IR per call) and convolves it with `conv1d` (direct convolution,
  cost proportional to length x taps). Both its full call and its convolution step alone are timed on
  short audio and extrapolated linearly to 10 s, as stated in their rows.
- The machine may have been busy (see the load averages); timings on a shared machine are noisy. On
  the same machine with other jobs running, the compressor's fwd+bwd figure fell to about 850x: about
  half of its fwd+bwd time is the loss `mean(y**2)` and its gradient on 3.5 M samples (torch
  elementwise work shared by every implementation), which suffers most from contention; the
  compressor's own backward kernel alone runs at about 2000x.
- The EQ kernels keep their float64 states out of the subnormal range; before that, songs with
  silences (decaying filter tails) made the EQ about 3x slower (210x instead of 700x here).
- Loss section: prediction and target are two stereo mixes of the test song's 7 tracks (seeded gains
  +-6 dB and constant-power pans), `(1, 2, T)` float32. fwd+bwd is the loss and `torch.autograd.grad`
  of it with respect to the prediction. All rows use the three resolutions of auraloss's
  `MultiResolutionSTFTLoss` defaults (FFT 1024/2048/512, hop 120/240/50, Hann window 600/1200/240,
  the thesis's Table 5). auraloss's `SumAndDifferenceSTFTLoss` averages its sum and difference terms,
  so its value is half of `StereoLoss` (the thesis's eq. 5.3 adds them); the cost is the same.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke check: 1 s of audio, fewer repeats")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"), help="Markdown report path")
    ap.add_argument("--only", default="eq,compressor,reverb,loss",
                    help="comma-separated subset of eq,compressor,reverb,loss")
    ap.add_argument("--quality-only", action="store_true",
                    help="only refresh the quality sections (model results) of an existing report")
    args = ap.parse_args(argv)
    if args.quality_only:
        refresh_quality(args.out)
        return 0

    import numba

    warnings.filterwarnings("ignore", message=".*custom extension")  # torchlpc/torchcomp without their C++ part
    torch.set_num_threads(2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    s = Settings.make(args.quick)
    info = harness.machine()
    print("\n".join(f"{k}: {v}" for k, v in info.items()))
    print(DEFINITIONS)
    x = test_batch(s)

    benches = {"eq": bench_eq, "compressor": bench_compressor, "reverb": bench_reverb, "loss": bench_loss}
    sections = {}
    for key in args.only.split(","):
        key = key.strip()
        print(f"\n== {key} ==", flush=True)
        result = benches[key](s, x)
        sections[key] = result if isinstance(result, tuple) else (result, [])

    text = report(s, info, sections, ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    Path(args.out).write_text(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
