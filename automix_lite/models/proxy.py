"""A neural proxy of the channel chain EQ -> compressor -> reverb (taught in ``notebooks/09_neural_proxies.ipynb``).

After Steinmetz (2020): the channel chain of sec. 4.2.5 (fig. 8), modelled by the FiLM-conditioned TCN
of sec. 4.3.1 (``automix_lite.models.TCN``) that receives the chain's parameters normalised to [-1, 1]
(sec. 4.3.3), trained on online-generated data (sec. 4.4) with Adam at 3e-4, the L1 loss (eq. 4.17)
and a plateau schedule (sec. 4.5), evaluated with MAE, ESR, MCD and MR-STFT (sec. 4.6) in the four
cases of Table 6 (each processor alone, then combined).

- ``SPECS``: the chain's 22 parameters in chain order, rows of the one parameter table
  (``automix_lite.parameters.PROXY_SPECS``: the console's names and units, the proxy's narrower ranges);
  ``normalize`` / ``denormalize`` map real units <-> [-1, 1]; ``sample_params`` draws them uniformly in the
  normalised domain, with the processors not in ``active`` set to bypass (EQ gains 0 dB; compressor ratio 1
  and make-up 0 dB; reverb wet 0).
- ``channel_chain``: the differentiable DSP reference (``dsp.parametric_eq``, ``dsp.compressor``,
  ``dsp.reverb`` with the fixed noise seed ``REVERB_SEED``); deterministic.
- ``build_model`` / ``save_checkpoint`` / ``load_checkpoint`` / ``load_proxy``: the TCN proxy and its files, in
  the checkpoint format of every model of the package (``automix_lite.train``, ``automix-lite-model/1``);
  ``upgrade_checkpoint`` converts a file of the proxy's first loop (``LEGACY_FORMAT``), which
  ``load_checkpoint`` also reads.
- ``evaluate`` / ``format_table``: the Table-6 evaluation on held-out TEST stems; ``gradient_agreement``:
  cosine similarity of the proxy's and the DSP's gradients with respect to the parameters.

Training lives in :mod:`automix_lite.train`, the one loop of every model: the config
(``train.PROXY_DEFAULT_CONFIG``, ``"model": "proxy"``), the data (``train.proxy_batch`` / ``train.proxy_stems``:
random patches of the bundled stems with the augmentations of sec. 4.4 and optional mixup, eqs. 4.15-4.16)
and the proxy's part of the loop.

The reverb's decay (T60 0.3-1.5 s) is longer than the receptive field of any TCN here (TCN-10: 325 ms,
TCN-20: 650 ms at 44.1 kHz): the proxy can only learn the part of the tail that fits in its window,
which is why the T60 range is kept modest.

Command line: ``automix train CONFIG.json --out DIR`` (e.g. ``configs/proxy_cpu.json``;
``python -m automix_lite.models.proxy train ...`` is kept as an alias of it) and
``python -m automix_lite.models.proxy evaluate CHECKPOINT.pt``.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Optional, Sequence

import numpy as np
import torch

from .._checks import check_audio, check_sample_rate
from ..dsp import compressor, parametric_eq, reverb
from ..losses import MRSTFTLoss, esr, l1
from ..parameters import PROXY_BYPASS, PROXY_SPECS, ParamSpec
from .tcn import TCN, center_crop

PROCESSORS = ("eq", "compressor", "reverb")
CASES = (("equalizer", ("eq",)), ("compressor", ("compressor",)), ("reverb", ("reverb",)),
         ("combined", PROCESSORS))
"""The four test cases of Table 6: each processor alone (the others bypassed), then all three."""
METRICS = ("MAE", "ESR", "MCD", "MR-STFT")
REVERB_SEED = 0
SAMPLE_RATE = 44100
CHECKPOINT_FORMAT = "automix-lite-model/1"  # automix_lite.train.CHECKPOINT_FORMAT: one format for every model
BUNDLED_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "checkpoints", "proxy_channel.pt")

# Steinmetz (2020), Table 6, TCN-20 (528k parameters, receptive field 649.5 ms): MAE, ESR, MCD, MR-STFT.
THESIS_TCN20 = {
    "equalizer": (0.017, 0.189, 597.3, 2.608),
    "compressor": (0.006, 0.140, 618.1, 2.123),
    "reverb": (0.011, 0.038, 309.2, 1.340),
    "combined": (0.027, 0.292, 495.6, 2.315),
}

MCD_K = 25
MCD_ALPHA = 10.0 * math.sqrt(2.0) / math.log(10.0)  # eq. 4.21, about 6.14185


ProxySpec = ParamSpec
"""A proxy parameter is a row of the one parameter table (``automix_lite.parameters``), narrowed to the proxy's range."""

SPECS: tuple = PROXY_SPECS
"""The chain's 22 parameters in the order of the conditioning vector: ``automix_lite.parameters.PROXY_SPECS``, the
console's rows (same names; peaking band ``k`` is ``peak_gain_db[k]``) narrowed to ``parameters.PROXY_RANGES`` (EQ
gains +-12 dB, each peaking band its own decade so that the bands keep their order, make-up 0-12 dB, T60
0.3-1.5 s), plus the insert reverb's ``reverb_damping`` and ``reverb_wet``."""
NAMES = tuple(s.name for s in SPECS)
N_PARAMS = len(SPECS)
GROUPS = {p: [i for i, s in enumerate(SPECS) if s.processor == p] for p in PROCESSORS}
BYPASS = PROXY_BYPASS
"""Real-unit settings that switch each processor off (the other parameters then do not matter)."""

_LOW = torch.tensor([s.low for s in SPECS], dtype=torch.float64)
_HIGH = torch.tensor([s.high for s in SPECS], dtype=torch.float64)
_LOG = torch.tensor([s.scale == "log" for s in SPECS])


def _check_params(p: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(p, torch.Tensor) or p.ndim != 2 or p.shape[1] != N_PARAMS:
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        raise ValueError(f"{name} must be a tensor of shape (batch, {N_PARAMS}) in the order of proxy.NAMES; got {shape}.")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return p


def normalize(values: torch.Tensor) -> torch.Tensor:
    """Real units ``(B, P)`` -> [-1, 1] ``(B, P)`` (sec. 4.3.3); log-scaled parameters map geometrically."""
    v = _check_params(values, "values")
    low, high, log = _LOW.to(v), _HIGH.to(v), _LOG.to(v.device)
    lin = (v - low) / (high - low)
    safe_low = torch.where(log, low, torch.ones_like(low))  # keeps log() finite (and its gradient) off the log rows
    geo = torch.log(torch.where(log, v, safe_low).clamp_min(1e-12) / safe_low) / torch.log(_log_span(log, low, high))
    return 2.0 * torch.where(log, geo, lin) - 1.0


def denormalize(norm: torch.Tensor) -> torch.Tensor:
    """[-1, 1] ``(B, P)`` -> real units ``(B, P)``; values are clamped to [-1, 1] first. Differentiable."""
    u = (_check_params(norm, "params_norm").clamp(-1.0, 1.0) + 1.0) / 2.0
    low, high, log = _LOW.to(u), _HIGH.to(u), _LOG.to(u.device)
    lin = low + (high - low) * u
    geo = low * torch.exp(u * torch.log(_log_span(log, low, high)))
    return torch.where(log, geo, lin)


def _log_span(log: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``high / low`` on log-scaled rows, e on the others (whose low may be 0), so no NaN reaches a gradient."""
    return torch.where(log, high / torch.where(log, low, torch.ones_like(low)), torch.full_like(low, math.e))


def _check_active(active) -> tuple:
    active = (active,) if isinstance(active, str) else tuple(active)
    bad = [a for a in active if a not in PROCESSORS]
    if bad:
        raise ValueError(f"active must name processors among {PROCESSORS}; got {bad}.")
    return active


def _normalized_value(spec: ProxySpec, value: float) -> float:
    if spec.scale == "log":
        return 2.0 * math.log(value / spec.low) / math.log(spec.high / spec.low) - 1.0
    return 2.0 * (value - spec.low) / (spec.high - spec.low) - 1.0


def bypass(params_norm: torch.Tensor, active: Sequence[str] = PROCESSORS) -> torch.Tensor:
    """A copy of ``params_norm`` ``(B, P)`` with every processor not in ``active`` set to its bypass (``BYPASS``)."""
    out = _check_params(params_norm, "params_norm").clone()
    active = _check_active(active)
    for proc in PROCESSORS:
        if proc not in active:
            for name, value in BYPASS[proc].items():
                i = NAMES.index(name)
                out[:, i] = _normalized_value(SPECS[i], value)
    return out


def sample_params(batch: int, generator: Optional[torch.Generator] = None, active: Sequence[str] = PROCESSORS,
                  dtype=torch.float32) -> torch.Tensor:
    """Normalised parameters ``(batch, P)`` drawn uniformly in [-1, 1] (sec. 4.4), inactive processors bypassed."""
    u = torch.rand(batch, N_PARAMS, generator=generator, dtype=torch.float64)
    return bypass(2.0 * u - 1.0, active).to(dtype)


def channel_chain(x: torch.Tensor, sample_rate: float, params_norm: torch.Tensor) -> torch.Tensor:
    """The DSP reference: parametric EQ -> compressor -> convolution reverb (fig. 8) on mono ``x`` ``(B, 1, T)``.

    ``params_norm``: ``(B, P)`` in [-1, 1] (order ``NAMES``); returns ``(B, 1, T)``. Differentiable in ``x``
    and ``params_norm``; deterministic (the reverb's noise uses ``REVERB_SEED``).
    """
    check_audio(x, channels=1)
    sr = check_sample_rate(sample_rate)
    p = _check_params(params_norm, "params_norm")
    if p.shape[0] != x.shape[0]:
        raise ValueError(f"params_norm has {p.shape[0]} rows but x has batch size {x.shape[0]}; give one row per item.")
    v = dict(zip(NAMES, denormalize(p.to(x.dtype)).unbind(1)))
    peaks = range(3)
    y = parametric_eq(
        x, sr,
        low_shelf_gain_db=v["low_shelf_gain_db"], low_shelf_cutoff_hz=v["low_shelf_cutoff_hz"],
        peak_gain_db=torch.stack([v[f"peak_gain_db[{k}]"] for k in peaks], 1),
        peak_cutoff_hz=torch.stack([v[f"peak_cutoff_hz[{k}]"] for k in peaks], 1),
        peak_q=torch.stack([v[f"peak_q[{k}]"] for k in peaks], 1),
        high_shelf_gain_db=v["high_shelf_gain_db"], high_shelf_cutoff_hz=v["high_shelf_cutoff_hz"],
    )
    # A processor bypassed in every row is skipped when no gradient is needed (same output, less work).
    grad = torch.is_grad_enabled() and (p.requires_grad or x.requires_grad)
    if grad or not bool(((v["ratio"] == 1) & (v["makeup_db"] == 0)).all()):
        y = compressor(y, sr, v["threshold_db"], v["ratio"], v["attack_ms"], v["release_ms"], v["knee_db"],
                       v["makeup_db"])
    if grad or bool((v["reverb_wet"] != 0).any()):
        y = reverb(y, sr, t60_s=v["reverb_t60_s"], wet=v["reverb_wet"], damping=v["reverb_damping"], seed=REVERB_SEED)
    return y


# --------------------------------------------------------------------------------------------
# model and checkpoints
# --------------------------------------------------------------------------------------------


def build_model(config: dict) -> TCN:
    """The TCN of ``config`` (preset with optional ``channels`` / ``n_blocks`` / ``kernel_size``), ``cond_dim = P``."""
    overrides = {k: config[k] for k in ("channels", "n_blocks", "kernel_size") if config.get(k) is not None}
    return TCN.preset(config["preset"], cond_dim=N_PARAMS, direct=bool(config.get("direct", False)), **overrides)


def save_checkpoint(path: str, model: TCN, config: dict, metrics: Optional[dict] = None,
                    history: Optional[dict] = None, extra: Optional[dict] = None,
                    version: Optional[str] = None) -> str:
    """Write model weights (float32), config, metrics and history to ``path``; returns the payload's sha256.

    The checkpoint of every model of the package (``automix_lite.train.save_checkpoint``, format
    ``automix-lite-model/1``, checksummed), with ``extra["names"] = NAMES``; ``version`` (default: the code
    now) records the code that trained the weights.
    """
    from .. import train

    cfg = train.load_config(config, default_model="proxy")
    if cfg["model"] != "proxy":
        raise ValueError(f"the config describes a {cfg['model']!r} model, not the channel-chain proxy "
                         "(\"model\": \"proxy\"); train it with `automix train CONFIG --out DIR`.")
    return train.save_checkpoint(path, model, cfg, history, metrics, extra={**(extra or {}), "names": list(NAMES)},
                                 version=version)


LEGACY_FORMAT = "automix-lite-proxy-1"
"""The format of the checkpoints of the proxy's first training loop (before issue 12); read and converted by
``load_checkpoint`` and ``upgrade_checkpoint``."""

_HINT = "train one with `automix train configs/proxy_cpu.json --out DIR`"


def _format_of(path: str):
    from .._checkpoint import _load

    outer = _load(path, path, "proxy checkpoint")
    return outer.get("format") if isinstance(outer, dict) else None


def _upgraded(data: dict, digest: str, code_version: Optional[str] = None, history: Optional[dict] = None) -> dict:
    """The payload of a checkpoint of the first loop in the format of ``automix_lite.train``: the same state-dict
    tensors, the config with ``"model": "proxy"``, the history with the keys the one loop writes (what the old
    history cannot tell, such as the ``device``, is taken from ``history`` or ``None``), ``extra`` with the names
    and the old file's payload sha256 (``converted_from``)."""
    from .. import train

    if not isinstance(data.get("state_dict"), dict) or not isinstance(data.get("config"), dict):
        raise ValueError(f"a {LEGACY_FORMAT} checkpoint holds its weights and config as objects; this one does not.")
    cfg = train.load_config({k: v for k, v in data["config"].items() if k != "model"}, default_model="proxy")
    h = dict(data.get("history") or {})
    vals = [v for v in h.get("val_loss", []) if isinstance(v, float) and math.isfinite(v)]
    done, wall = h.get("steps_done"), h.get("wall_seconds")
    h.update(history or {})
    for key, value in (("device", None), ("device_name", None), ("threads", cfg["threads"]),
                       ("best_val", min(vals) if vals else None),
                       ("steps_per_second", done / wall if done and wall else None), ("world_size", 1),
                       ("steps_override", None)):
        h.setdefault(key, value)
    return {"state_dict": data["state_dict"], "config": cfg, "history": h, "metrics": data.get("metrics") or {},
            "code_version": code_version or f"unknown (the proxy's first training loop, {LEGACY_FORMAT})",
            "extra": {"names": list(data.get("names") or []),
                      "converted_from": {"format": LEGACY_FORMAT, "sha256": digest}}}


def upgrade_checkpoint(src: str, dst: Optional[str] = None, code_version: Optional[str] = None,
                       history: Optional[dict] = None) -> str:
    """Convert a checkpoint of the proxy's first loop (``LEGACY_FORMAT``) into the format of every model of the
    package, in ``dst`` (default: in place); returns the new payload's sha256. The state-dict tensors are stored
    as they were, bit for bit; ``code_version`` and ``history`` (e.g. ``{"device": "cpu"}``) record what the old
    file does not."""
    from .. import _checkpoint, train

    data, digest = _checkpoint.read(src, LEGACY_FORMAT, "proxy checkpoint of the first training loop")
    return _checkpoint.write(dst or src, _upgraded(data, digest, code_version, history), train.CHECKPOINT_FORMAT)


def load_checkpoint(path: str = BUNDLED_CHECKPOINT, device: str = "cpu") -> dict:
    """Read a proxy checkpoint (``automix train`` with ``"model": "proxy"``, or the first loop's format, converted
    on reading); the payload's sha256 is verified.

    Returns ``automix_lite.train.load_checkpoint``'s dict: ``{"model" (TCN in eval mode), "config", "metrics",
    "history", "code_version", "extra", "sha256"}``; a modified or truncated file, or one of another model,
    raises a ``ValueError`` saying so.
    """
    from .. import _checkpoint, train

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}; {_HINT}.")
    if _format_of(path) == LEGACY_FORMAT:
        data, digest = _checkpoint.read(path, LEGACY_FORMAT, "proxy checkpoint", _HINT)
        ck = train._from_payload(_upgraded(data, digest), digest, path, device)
    else:
        ck = train.load_checkpoint(path, device)
    if ck["config"]["model"] != "proxy":
        raise ValueError(f"{path} holds a {ck['config']['model']} model, not a channel-chain proxy; {_HINT}.")
    return ck


def load_proxy(path: str = BUNDLED_CHECKPOINT) -> TCN:
    """The proxy TCN of a checkpoint (default: the bundled one), in eval mode."""
    return load_checkpoint(path)["model"]


# --------------------------------------------------------------------------------------------
# metrics (sec. 4.6)
# --------------------------------------------------------------------------------------------


def mfcc(x: torch.Tensor, sample_rate: float, k: int = MCD_K) -> np.ndarray:
    """MFCCs ``(B, k, frames)`` of mono ``x`` ``(B, 1, T)``: ``librosa.feature.mfcc(n_mfcc=k)`` with its defaults.

    Those are: power STFT with n_fft 2048, hop 512, Hann window, centred; 128 Slaney mel bands
    (0 Hz to Nyquist); ``power_to_db`` (10 log10, amin 1e-10, ref 1, top_db 80); DCT-II, orthonormal;
    c0 included.
    """
    import librosa

    return librosa.feature.mfcc(y=x[:, 0].detach().cpu().double().numpy(), sr=sample_rate, n_mfcc=k)


def mcd(pred: torch.Tensor, target: torch.Tensor, sample_rate: float, k: int = MCD_K) -> torch.Tensor:
    """Mel cepstral distortion per item ``(B,)``, eqs. 4.20-4.21: ``alpha * mean_frames ||C_hat - C||_2``.

    ``C`` are the first ``k`` (25) MFCCs of ``mfcc`` (c0 included), ``alpha = 10 sqrt(2) / ln 10``.
    Because the MFCCs are on a dB scale the values are of the order of hundreds, as in Table 6.
    """
    d = mfcc(pred, sample_rate, k) - mfcc(target, sample_rate, k)
    return torch.from_numpy(MCD_ALPHA * np.sqrt((d ** 2).sum(1)).mean(-1))


def metrics(pred: torch.Tensor, target: torch.Tensor, sample_rate: float, mrstft: Optional[MRSTFTLoss] = None) -> dict:
    """``{"MAE", "ESR", "MCD", "MR-STFT"}`` -> per-item values ``(B,)`` for mono ``pred``, ``target`` ``(B, 1, T)``.

    MAE (eq. 4.17) and ESR (eq. 4.19 without its 1/(n-1)) are ``losses.l1`` and ``losses.esr`` per item;
    MR-STFT is ``losses.MRSTFTLoss`` with the resolutions of Table 5, computed item by item.
    """
    mrstft = mrstft or MRSTFTLoss()
    with torch.no_grad():
        stft = torch.stack([mrstft(p[None], t[None]) for p, t in zip(pred, target)])
        return {"MAE": l1(pred, target, reduction="none"), "ESR": esr(pred, target, reduction="none"),
                "MCD": mcd(pred, target, sample_rate),
                "MR-STFT": stft}


def predict(model: TCN, x: torch.Tensor, params_norm: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """The proxy's output for ``x`` ``(B, 1, T)``: ``(B, 1, T - rf + 1)`` (valid convolutions), in eval mode, chunked."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk].to(device), params_norm[i:i + chunk].to(device)).cpu()
                          for i in range(0, x.shape[0], chunk)])


def evaluate(model: TCN, n_examples: int = 20, seconds: float = 2.0, seed: int = 1234, split: str = "test",
             cases=CASES, sample_rate: float = SAMPLE_RATE, stems=None, dry: bool = False) -> dict:
    """Table 6 on held-out stems: ``{case: {metric: (mean, std)}}`` for the four ``CASES``.

    For each case, ``n_examples`` fixed patches (``automix_lite.train.proxy_batch`` seeded by ``seed``, no
    augmentation) of the ``split`` stems (``train.proxy_stems``), ``seconds`` of output plus the receptive field
    as context, fresh parameters with the other processors bypassed; the target is the centre of
    ``channel_chain`` over the whole patch.
    ``dry=True`` scores the unprocessed input on the same patches instead of the model (the floor a
    useful proxy must beat).
    """
    from .. import train

    stems = train.proxy_stems(split) if stems is None else stems
    rf = model.receptive_field
    n_out = round(seconds * sample_rate)
    out, mrstft = {}, MRSTFTLoss()
    for i, (case, active) in enumerate(cases):
        ex = train.proxy_batch(stems, n_examples, n_out + rf - 1, torch.Generator().manual_seed(seed + i), sample_rate,
                               active, augment=False)
        pred = center_crop(ex["x"], n_out) if dry else predict(model, ex["x"], ex["params"])
        values = metrics(pred, center_crop(ex["y"], n_out), sample_rate, mrstft)
        out[case] = {m: (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0) for m, v in values.items()}
    return out


def format_table(results: dict, reference: Optional[dict] = THESIS_TCN20) -> str:
    """Markdown table in the layout of Table 6: one row per case, ``mean (std)`` per metric, thesis TCN-20 alongside."""
    head = "| Case | " + " | ".join(METRICS)
    rule = "|---|" + "---|" * len(METRICS)
    if reference:
        head += " | " + " | ".join(f"{m} (thesis TCN-20)" for m in METRICS)
        rule += "---|" * len(METRICS)
    lines = [head + " |", rule]
    for case, cell in results.items():
        row = [f"{cell[m][0]:.4g} ({cell[m][1]:.3g})" for m in METRICS]
        if reference:
            row += [f"{v:g}" for v in reference.get(case, ("",) * len(METRICS))]
        lines.append(f"| {case} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def gradient_agreement(model: TCN, x: torch.Tensor, params_norm: torch.Tensor, target: torch.Tensor,
                       sample_rate: float = SAMPLE_RATE) -> dict:
    """Cosine similarity, per processor group, of ``d L / d params`` through the proxy and through the DSP.

    ``L = mean |f(x, params) - target|`` on the proxy's output samples (``target`` ``(B, 1, T)`` aligned
    with ``x``, e.g. ``channel_chain(x, other_params)``); the cosine is taken over the batch and the
    group's parameters. Returns ``{"eq", "compressor", "reverb", "all"}`` -> float.
    """
    model.eval()
    n_out = model.output_length(x.shape[-1])
    tgt = center_crop(target, n_out)
    grads = []
    for fn in (lambda p: model(x, p), lambda p: center_crop(channel_chain(x, sample_rate, p), n_out)):
        p = params_norm.detach().clone().requires_grad_(True)
        (fn(p) - tgt).abs().mean().backward()
        grads.append(p.grad.detach())

    def cos(a, b):
        return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    out = {g: cos(grads[0][:, idx], grads[1][:, idx]) for g, idx in GROUPS.items()}
    out["all"] = cos(grads[0], grads[1])
    return out


def main(argv=None) -> int:
    """``python -m automix_lite.models.proxy evaluate [CHECKPOINT]``: Table 6; ``... train CONFIG --out DIR
    [options]`` is ``automix train`` (the one training loop, :mod:`automix_lite.train`), kept as an alias."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        from ..cli import main as automix

        return automix(argv)
    parser = argparse.ArgumentParser(prog="python -m automix_lite.models.proxy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="the same as `automix train CONFIG --out DIR [options]` (its arguments)")
    e = sub.add_parser("evaluate", help="Table 6 metrics of a checkpoint on the TEST stems")
    e.add_argument("checkpoint", nargs="?", default=BUNDLED_CHECKPOINT)
    e.add_argument("--examples", type=int, default=20)
    e.add_argument("--seconds", type=float, default=2.0)
    e.add_argument("--save", action="store_true", help="store the metrics (and the dry reference) in the checkpoint")
    args = parser.parse_args(argv)
    ck = load_checkpoint(args.checkpoint)
    results = evaluate(ck["model"], args.examples, args.seconds)
    dry = evaluate(ck["model"], args.examples, args.seconds, dry=True)
    print(format_table(results))
    print("\nThe same examples with the dry input passed through unchanged:\n")
    print(format_table(dry, reference=None))
    if args.save:  # the weights, history, extra and code version stay; only the metrics change
        save_checkpoint(args.checkpoint, ck["model"], ck["config"],
                        {"table6": results, "dry": dry, "examples": args.examples, "seconds": args.seconds},
                        ck["history"], extra=ck["extra"], version=ck["code_version"])
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
