"""Multitrack mixing style transfer, Diff-MST-like (taught in ``notebooks/18_style_transfer_mix.ipynb``, chapter 5.2).

A mix engineer who is handed a reference track ("make it sound like this") mixes *towards* it. Here the reference
mix is the control: the model gets the stems of one song and a stereo mix of a **different** song, and predicts the
settings of the full console (:func:`automix_lite.dsp.mix`) for every track and the bus, so that the stems come out
mixed in the reference's style. After Vanka et al. (2024, Diff-MST), made small enough to train on a CPU:

    e_i  = Enc(x_i) + type_track             one token per stem (shared log-mel CNN + the stem's level)
    r_m  = Enc(mid(ref)) + type_mid          two tokens for the reference: mid (L + R) / 2 and side (L - R) / 2
    r_s  = Enc(side(ref)) + type_side
    h    = Transformer([e_1..e_N, r_m, r_s], key_padding_mask)    no positional encoding: a set, not a sequence
    p_i  = sigmoid(MLP_track(h_i))           every track's 23 console controls (gain, high-pass, shelves, three
                                             peaks, compressor, pan, reverb send), normalised [0, 1]
    q    = sigmoid(MLP_bus([mean_i h_i, h_mid, h_side]))          reverb T60 and return, master gain
    y    = Console(x, p, q)                  the differentiable DSP console renders the mix

Permuting the stems permutes the track tokens; self-attention without positional encoding is equivariant, so the
predicted track parameters are permuted the same way and the bus, the masked mean and therefore the mix do not
change. Padding tracks (``mask`` False) are left out of attention by ``key_padding_mask``, out of the mean and out of
the console, so they change nothing.

The master gain of :func:`transfer` (and of :meth:`MixStyleTransfer.mix`) is set last, like the bundled engineer's
(:mod:`automix_lite.data.engineer`): the mix is brought to the reference's integrated loudness, lowered where it would
peak above -1 dBFS. The network's own master output is kept only as a training signal; loudness is measured, not
guessed.

Training data (:class:`StyleMixData`), drawn afresh every step from one seeded ``torch.Generator``: a style is drawn,
then two different TRAIN songs A and B; the reference is a segment of song A mixed in that style, the target a
segment of song B mixed in the same style. Styles are of three kinds:

- ``random``: random console settings tied to *instrument roles* (:func:`automix_lite.data.engineer.random_style`):
  Diff-MST's first method (random settings on the stems) made transferable across songs: the settings belong to
  "the bass", "the lead", ... so that song B's bass gets what song A's bass got. Settings tied to track indices
  would not transfer: track 2 of song A and track 2 of song B are different instruments.
- ``engineer``: a new engineer generated from the bundled engineer's conventions
  (:func:`automix_lite.data.engineer.engineer_style`: taste in EQ, width, reverb, loudness, compression, balance);
- ``bundled``: the bundled engineers ``natural`` and ``punchy``.

Gains are set, as the engineer sets them, from each stem's loudness and the role's target level, so the style is a
set of levels, not of fader positions. Loss: :class:`automix_lite.losses.StereoLoss` of the rendered mix against the
target after matching their RMS level (the master is set from loudness anyway), plus ``param_weight`` times the L1
distance of the normalised controls to the style's known settings (master gain excluded).

Size: about 0.4 M parameters (Diff-MST: about 190 M, two AudioSet-pretrained Cnn14 encoders and a 12-layer
transformer). Long songs: the encoder looks at a bounded excerpt, the central :data:`ENCODER_SECONDS` of the stems
and of the reference; the console then renders the whole song.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import train as _train
from ..dsp.console import BUS_NAMES, DEFAULT_N_PEAKS, mix, pack_params, param_names, params_to_normalized
from ..parameters import MixParams
from .dmc import DSPConsole, LogMel, _logit

__all__ = ["SAMPLE_RATE", "ENCODER_SECONDS", "MIN_SECONDS", "KINDS", "DEFAULT_CONFIG", "SpectrogramEncoder",
           "MixStyleTransfer", "StyleMixData", "transfer", "evaluate_mix", "summarize_mix", "mix_table",
           "build_model", "FAMILIES"]

SAMPLE_RATE = 44100
"""The encoder's sample rate (stems and references at other rates are resampled for it; the console renders at any
rate)."""
ENCODER_SECONDS = 6.0
"""The longest excerpt (s) of the stems and of the reference that the encoder looks at (the central one)."""
MIN_SECONDS = 0.5
"""The shortest stems and reference :func:`transfer` accepts (s)."""
PEAK_CEILING_DB = -1.0
SILENCE_DB = -80.0
KINDS = ("random", "engineer", "bundled")
TRACK_COLUMNS, _ = param_names(DEFAULT_N_PEAKS)
_MASTER = BUS_NAMES.index("master_gain_db")


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class SpectrogramEncoder(nn.Module):
    """Mono audio ``(M, T)`` at 44.1 kHz -> embedding ``(M, dim)``: log-mel (:class:`~automix_lite.models.dmc.LogMel`),
    ``len(widths)`` blocks of 3x3 convolution, ReLU and 2x2 max-pooling, global mean and max pooling, a linear layer
    to ``dim - 1``, plus a linear map of the log-mel's mean and standard deviation over time per band (the average
    spectrum and how much each band moves: a direct path for EQ, width and dynamics, which the pooled CNN features
    learned from scratch hear only slowly), and the signal's RMS level (dBFS / 20) appended. No batch statistics: an item's embedding does
    not depend on the others in the batch (padding and permutation leave the rest unchanged)."""

    def __init__(self, dim: int = 96, widths: Sequence[int] = (16, 32, 48, 64), n_mels: int = 48):
        super().__init__()
        self.frontend = LogMel(SAMPLE_RATE, 2048, 1024, n_mels)
        layers, w_in = [], 1
        for w in widths:
            layers += [nn.Conv2d(w_in, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            w_in = w
        self.cnn = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * w_in, dim - 1)
        self.stats = nn.Linear(2 * n_mels, dim - 1)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.frontend(x) + 2.5  # log-mel in dB / 20, centred
        h = self.cnn(mel)
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        spectrum = torch.cat([mel.mean(-1), mel.std(-1)], -1).flatten(1)  # average spectrum and its movement, per band
        level = 10 * torch.log10(x.square().mean(-1, keepdim=True) + 1e-10) / 20
        return torch.cat([self.proj(h) + self.stats(2 * spectrum), level + 1.5], 1)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class MixStyleTransfer(nn.Module):
    """Stems ``(B, N, T)`` mono at 44.1 kHz, ``mask (B, N)`` bool (False = padding) and a stereo reference mix
    ``(B, 2, T_ref)`` of another song -> the full console's parameters (:class:`~automix_lite.parameters.MixParams`,
    console ``"full"``, with ``controls = (track (B, N, 23), bus (B, 3))``, the normalised outputs).

    ``dim``: token width; ``layers``, ``heads``, ``ff``: the transformer encoder (pre-norm, no dropout, no positional
    encoding); ``widths``, ``n_mels``: the shared spectrogram encoder; ``max_tracks``: the most stems one call takes.
    The output layers start at the console's neutral settings (0 dB, centre, flat EQ, no compression), so an untrained
    model is a plain sum. See the module docstring for the picture.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, dim: int = 96, layers: int = 3, heads: int = 4, ff: int = 192,
                 widths: Sequence[int] = (16, 32, 48, 64), n_mels: int = 48, max_tracks: int = 16):
        super().__init__()
        self.max_tracks = int(max_tracks)
        self.console = DSPConsole(SAMPLE_RATE)
        self.encoder = SpectrogramEncoder(dim, widths, n_mels)
        self.types = nn.Parameter(torch.randn(3, dim) * 0.02)  # track, reference mid, reference side
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        n_track, n_bus = len(self.console.track_names), len(self.console.bus_names)
        self.track_head = _mlp([dim, dim, n_track])
        self.bus_head = _mlp([3 * dim, dim, n_bus])
        track0, bus0 = self.console.neutral()
        with torch.no_grad():
            for head, start in ((self.track_head, track0), (self.bus_head, bus0)):
                head[-1].weight.mul_(0.1)
                head[-1].bias.copy_(torch.tensor([_logit(v) for v in start]))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, stems, mask, reference):
        if not isinstance(stems, torch.Tensor) or stems.ndim != 3:
            got = tuple(stems.shape) if isinstance(stems, torch.Tensor) else type(stems).__name__
            raise ValueError(f"stems must be a (batch, tracks, samples) tensor of mono stems; got {got}.")
        b, n, t = stems.shape
        if n > self.max_tracks:
            raise ValueError(f"got {n} tracks but this model takes at most {self.max_tracks}.")
        if not isinstance(reference, torch.Tensor) or reference.ndim != 3 or reference.shape[:2] != (b, 2):
            got = tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
            raise ValueError(f"reference must be a stereo (batch={b}, 2, samples) tensor; got {got}.")
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=stems.device)
        if tuple(mask.shape) != (b, n):
            raise ValueError(f"mask must be (batch, tracks) = ({b}, {n}); got {tuple(mask.shape)}.")
        mask = mask.to(device=stems.device, dtype=torch.bool)
        if not bool(mask.any(1).all()):
            raise ValueError("every item needs at least one real (unmasked) track.")
        if not (bool(torch.isfinite(stems).all()) and bool(torch.isfinite(reference).all())):
            raise ValueError("stems and reference must be finite (no NaN or inf samples).")
        return mask

    def estimate(self, stems: torch.Tensor, mask: Optional[torch.Tensor], reference: torch.Tensor) -> MixParams:
        """The console parameters (see the class docstring) without rendering."""
        mask = self._check(stems, mask, reference)
        b, n, t = stems.shape
        d = self.encoder.dim
        emb = stems.new_zeros(b, n, d)
        emb[mask] = self.encoder(stems[mask]).to(emb.dtype)  # padding is never encoded
        mid, side = (reference[:, 0] + reference[:, 1]) / 2, (reference[:, 0] - reference[:, 1]) / 2
        ref = self.encoder(torch.cat([mid, side])).view(2, b, d).transpose(0, 1)
        tokens = torch.cat([emb + self.types[0], ref + self.types[1:]], 1)
        pad = torch.cat([~mask, mask.new_zeros(b, 2)], 1)
        h = self.norm(self.transformer(tokens, src_key_padding_mask=pad))
        w = mask.to(h.dtype).unsqueeze(-1)
        pooled = (h[:, :n] * w).sum(1) / w.sum(1)
        track = torch.sigmoid(self.track_head(h[:, :n]))
        bus = torch.sigmoid(self.bus_head(torch.cat([pooled, h[:, n], h[:, n + 1]], -1)))
        return MixParams(self.console.to_params(track, bus), "full", controls=(track, bus))

    def forward(self, stems: torch.Tensor, mask: Optional[torch.Tensor], reference: torch.Tensor) -> MixParams:
        return self.estimate(stems, mask, reference)

    def render(self, stems: torch.Tensor, params, mask: Optional[torch.Tensor] = None,
               sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
        """The console's mix ``(B, 2, T)`` of ``stems`` with ``params`` at ``sample_rate``."""
        return mix(stems, sample_rate, params, mask=mask)

    @torch.no_grad()
    def mix(self, stems: torch.Tensor, mask: Optional[torch.Tensor], reference: torch.Tensor,
            sample_rate: float = SAMPLE_RATE) -> tuple:
        """``(mix (B, 2, T), params)``: :meth:`estimate`, then the master gain set from loudness (the reference's
        integrated loudness, lowered to keep peaks at or below -1 dBFS), then the console (no gradient)."""
        params = self.estimate(stems, mask, reference)
        values = dict(params)
        values["master_gain_db"] = torch.zeros_like(values["master_gain_db"])
        pre = self.render(stems, values, mask, sample_rate)
        master = _master_gain(pre, reference, sample_rate)
        values["master_gain_db"] = master.to(pre.dtype)
        return pre * (10 ** (master / 20)).view(-1, 1, 1).to(pre.dtype), MixParams(values, "full")


def _loudness(x: torch.Tensor, sample_rate) -> torch.Tensor:
    """BS.1770 loudness of ``(B, C, T)`` without the silent-item warning (-inf for silence)."""
    from ..audio import _measure

    return _measure(x, sample_rate)[0].double()


def _master_gain(pre: torch.Tensor, reference: torch.Tensor, sample_rate, ref_rate=None) -> torch.Tensor:
    """``(B,)`` master gain (dB): ``pre``'s loudness to ``reference``'s, capped at the -1 dBFS peak ceiling and the
    parameter's range (0 dB where either is silent)."""
    from ..parameters import SPEC_BY_NAME

    target = _loudness(reference, sample_rate if ref_rate is None else ref_rate)
    now = _loudness(pre, sample_rate)
    gain = torch.where(torch.isfinite(target) & torch.isfinite(now), target - now, torch.zeros_like(now))
    peak = 20 * torch.log10(pre.detach().abs().flatten(1).amax(1).double().clamp_min(1e-12))
    s = SPEC_BY_NAME["master_gain_db"]
    return torch.minimum(gain, PEAK_CEILING_DB - peak).clamp(s.low, s.high)


def build_model(cfg: dict) -> MixStyleTransfer:
    """The network of a ``style_mix`` config (its ``segment_seconds`` kept as an attribute)."""
    model = MixStyleTransfer(dim=cfg["dim"], layers=cfg["layers"], heads=cfg["heads"], ff=cfg["ff"],
                             widths=tuple(cfg["widths"]), n_mels=cfg["n_mels"], max_tracks=cfg["max_tracks"])
    model.segment_seconds = cfg["segment_seconds"]
    return model


# --------------------------------------------------------------------------------------------
# transfer: one song, one reference
# --------------------------------------------------------------------------------------------


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or a numpy array; got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floating-point samples; got {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has NaN or infinite samples.")
    return x.detach().float().cpu()


def _central(x: torch.Tensor, n: int) -> torch.Tensor:
    t = x.shape[-1]
    if t <= n:
        return x
    start = (t - n) // 2
    return x[..., start:start + n]


def transfer(model: MixStyleTransfer, stems, reference, sample_rate: int) -> tuple:
    """Mix ``stems`` in the style of ``reference``: returns ``(mix (2, T), params)``.

    ``stems``: ``(tracks, samples)`` mono stems (tensor or array) at ``sample_rate`` Hz; ``reference``: a stereo mix
    ``(2, samples)`` of *other* music at the same rate (resample it first: ``automix style`` does, with a notice).
    Any whole-number rate works: the encoder gets the central :data:`ENCODER_SECONDS` of both resampled to 44.1 kHz,
    the console renders the whole song at ``sample_rate``. Silent stems are left out of the mix (their parameters
    are still predicted). The master gain brings the mix to the reference's loudness, capped at -1 dBFS peak.
    ``params`` is a batch-1 :class:`~automix_lite.parameters.MixParams` (console ``"full"``, float32):
    :func:`automix_lite.parameters.write` stores it and ``automix render`` (``inference.render_params``) re-renders
    the same ``mix``. Bad input raises ``ValueError``.
    """
    from ..audio import resample
    from ..inference import active_mask, render_params

    if not isinstance(model, MixStyleTransfer):
        raise ValueError(f"model must be a MixStyleTransfer (pretrained.load('style_mix')); got {type(model).__name__}.")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be a whole number of Hz >= 8000; got {sample_rate!r}.")
    sr = int(sample_rate)
    stems, reference = _as_tensor(stems, "stems"), _as_tensor(reference, "reference")
    if stems.ndim != 2 or stems.shape[0] < 1:
        raise ValueError(f"stems must be (tracks, samples) mono stems; got shape {tuple(stems.shape)}.")
    if stems.shape[0] > model.max_tracks:
        raise ValueError(f"got {stems.shape[0]} stems but this model takes at most {model.max_tracks}.")
    if reference.ndim != 2 or reference.shape[0] != 2:
        hint = " (it looks transposed: give (2, samples))" if reference.ndim == 2 and reference.shape[-1] == 2 else \
            " (a mono reference has no stereo image to transfer)" if reference.ndim == 1 or reference.shape[0] == 1 else ""
        raise ValueError(f"reference must be a stereo mix (2, samples); got shape {tuple(reference.shape)}{hint}.")
    for name, x in (("stems", stems), ("reference", reference)):
        if x.shape[-1] < MIN_SECONDS * sr:
            raise ValueError(f"{name} are too short: {x.shape[-1]} samples ({x.shape[-1] / sr:.3f} s); style transfer "
                             f"needs at least {MIN_SECONDS:g} s." if name == "stems" else
                             f"the reference is too short: {x.shape[-1]} samples ({x.shape[-1] / sr:.3f} s); style "
                             f"transfer needs at least {MIN_SECONDS:g} s.")
    if float(reference.double().square().mean().sqrt()) <= 10 ** (SILENCE_DB / 20):
        raise ValueError("the reference is silent: there is no style to transfer.")
    mask = active_mask(stems)
    if not bool(mask.any()):
        raise ValueError(f"every stem is silent (RMS below {SILENCE_DB:g} dBFS): there is nothing to mix.")
    n_enc = round(ENCODER_SECONDS * sr)
    x = resample(_central(stems, n_enc)[None], sr, SAMPLE_RATE)
    r = resample(_central(reference, n_enc)[None], sr, SAMPLE_RATE)
    model.eval()
    with torch.no_grad():
        p = model.estimate(x, mask[None], r)
    values = {k: v.detach().float() for k, v in p.items()}
    values["master_gain_db"] = torch.zeros(1)
    pre = render_params(stems, MixParams(values, "full"), sr, mask)
    values["master_gain_db"] = _master_gain(pre[None], reference[None], sr).float()
    params = MixParams(values, "full")
    return render_params(stems, params, sr, mask), params


# --------------------------------------------------------------------------------------------
# Training data: references and targets made on the fly
# --------------------------------------------------------------------------------------------


T60_GRID = tuple(float(v) for v in np.geomspace(0.3, 4.0, 12))
"""Reverb decay times (s) of the training examples: each style's T60 is snapped to the nearest of these, so that the
reverb impulse responses are computed once (:func:`training_mix`)."""


class _IRCache:
    """Stereo reverb impulse responses of :data:`T60_GRID` at 44.1 kHz, as the console's bus makes them (its seed),
    truncated to ``n`` samples (a ``"same"`` convolution of ``n`` samples never reads further)."""

    def __init__(self):
        self.irs = {}

    def get(self, k: int, n: int) -> torch.Tensor:
        from ..dsp.console import REVERB_SEED
        from ..dsp.reverb import reverb_impulse_response

        if k not in self.irs:
            self.irs[k] = reverb_impulse_response(SAMPLE_RATE, torch.tensor([T60_GRID[k]]), seed=REVERB_SEED,
                                                  channels=2).float()
        ir = self.irs[k][..., :n]
        return torch.nn.functional.pad(ir, (0, n - ir.shape[-1])) if ir.shape[-1] < n else ir


_IRS = _IRCache()


def snap_t60(t60) -> int:
    """The index of the :data:`T60_GRID` value nearest (on a log scale) to ``t60`` seconds."""
    return int(np.argmin(np.abs(np.log(np.array(T60_GRID)) - math.log(float(t60)))))


def training_mix(stems: torch.Tensor, params, mask: Optional[torch.Tensor], t60_index: Sequence[int]) -> torch.Tensor:
    """The console of :func:`automix_lite.dsp.mix` at 44.1 kHz with each item's reverb decay taken from
    :data:`T60_GRID` (``t60_index``, one per item) instead of ``params["reverb_t60_s"]``: the same strips, sends,
    return and master, with cached impulse responses (``mix`` makes one per new decay time, about 0.4 s of CPU).
    Gradients reach every parameter but the decay time (trained by the parameter loss)."""
    from ..dsp.console import DEFAULT_PAN_LAW, STRIP_NAMES, _mix_inputs, _strip
    from ..dsp.panning import db_to_gain
    from ..dsp.reverb import fft_convolve

    tracks, sr, w, p = _mix_inputs(stems, SAMPLE_RATE, params, mask, DEFAULT_PAN_LAW)
    b, n, t = tracks.shape
    flat = {k: p[k].reshape(b * n, *p[k].shape[2:]) for k in STRIP_NAMES}
    out, send = (v.view(b, n, 2, t) for v in _strip(tracks.reshape(b * n, 1, t), sr, flat, DEFAULT_PAN_LAW))
    if w is not None:
        out, send = out * w, send * w
    ir = torch.cat([_IRS.get(int(k), t) for k in t60_index]).to(tracks.dtype)
    wet = fft_convolve(send.sum(1), ir)
    master = out.sum(1) + db_to_gain(p["reverb_return_db"]).view(b, 1, 1) * wet
    return master * db_to_gain(p["master_gain_db"]).view(b, 1, 1)


def _styled(x: torch.Tensor, roles, lufs, style, seed: int, tempo) -> tuple:
    """A segment ``x (N, T)`` mixed in ``style`` (the engineer's rules, :func:`~automix_lite.data.engineer.style_params`)
    with the T60 snapped to the grid and the master set from the segment's loudness (the style's target +- 0.5 LU,
    peak at most -1 dBFS): ``(mix (2, T), params float64, t60 index)``."""
    from ..data.engineer import _clip, style_master_lufs, style_params

    params = style_params(roles, lufs, style, seed, tempo)
    k = snap_t60(float(params["reverb_t60_s"][0]))
    params["reverb_t60_s"] = torch.tensor([T60_GRID[k]], dtype=torch.float64)
    with torch.no_grad():
        pre = training_mix(x[None].float(), {n: v.float() for n, v in params.items()}, None, [k])
    lufs_now = float(_loudness(pre, SAMPLE_RATE)[0])
    target = style_master_lufs(style) + float(np.random.default_rng([int(seed), 103]).uniform(-0.5, 0.5))
    master = target - lufs_now if math.isfinite(lufs_now) else 0.0
    peak = 20 * math.log10(max(float(pre.abs().max()), 1e-12))
    master = _clip("master_gain_db", min(master, PEAK_CEILING_DB - peak))
    params["master_gain_db"] = torch.tensor([master], dtype=torch.float64)
    return pre[0] * 10 ** (master / 20), params, k


class StyleMixData:
    """Examples of mixing style transfer drawn from a ``torch.Generator`` (see the module docstring).

    ``songs``: bundled song ids (default: the ``split`` songs of the songs task); ``seconds``: segment length;
    ``fractions``: the probability of each kind of :data:`KINDS` (random, engineer, bundled). :meth:`example`
    returns one item (a dict of ``stems (N, T)``, ``reference (2, T)``, ``target (2, T)``, ``params`` (the target's
    console settings, float64 dict), ``song`` / ``ref_song`` ids, ``roles``, ``kind``, ``style``, and the
    reference's ``ref_params`` / ``ref_roles``); :meth:`batch` pads
    ``n`` items into ``stems (n, N_max, T)``, ``mask``, ``reference``, ``target``, ``track (n, N_max, 23)`` and
    ``bus (n, 3)`` normalised controls, ``t60_index``. Reverb decay times are snapped to :data:`T60_GRID` and the
    mixes rendered by :func:`training_mix` (cached impulse responses)."""

    def __init__(self, split: str = "train", seconds: float = 2.0, fractions: Sequence[float] = (0.3, 0.4, 0.3),
                 songs: Optional[Sequence[str]] = None):
        from .. import data

        if songs is None:
            songs = [s["id"] for s in data.songs("songs", split)]
        if len(songs) < 2:
            raise ValueError("style transfer examples need at least two songs (a reference and a target).")
        f = [float(v) for v in fractions]
        if len(f) != len(KINDS) or min(f) < 0 or sum(f) <= 0:
            raise ValueError(f"fractions must be {len(KINDS)} non-negative numbers (for {KINDS}), not all 0; got {fractions}.")
        self.songs, self.seconds = list(songs), float(seconds)
        self.cum = np.cumsum(np.array(f) / sum(f))
        self._cache = {}

    def song(self, song_id: str) -> dict:
        from .. import data

        if song_id not in self._cache:
            s = data.load_song(song_id)
            self._cache[song_id] = {"tracks": s["tracks"], "roles": s["roles"], "tempo": s["entry"].get("tempo"),
                                    "lufs": [t["lufs"] for t in s["entry"]["tracks"]]}
        return self._cache[song_id]

    def _segment(self, song_id: str, g: torch.Generator) -> tuple:
        s = self.song(song_id)
        n = round(self.seconds * SAMPLE_RATE)
        t = s["tracks"].shape[-1]
        start = int(torch.randint(0, max(t - n, 0) + 1, (1,), generator=g))
        x = s["tracks"][:, start:start + n]
        if x.shape[-1] < n:
            x = torch.nn.functional.pad(x, (0, n - x.shape[-1]))
        return s, x

    def draw_style(self, g: torch.Generator):
        from ..data import engineer

        kind = KINDS[int(np.searchsorted(self.cum, float(torch.rand((), generator=g)), side="right").clip(0, 2))]
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g))
        if kind == "random":
            return kind, engineer.random_style(seed)
        if kind == "engineer":
            return kind, engineer.engineer_style(seed)
        return kind, tuple(engineer.ENGINEERS)[seed % len(engineer.ENGINEERS)]

    def example(self, g: torch.Generator, style=None, pair: Optional[tuple] = None) -> dict:
        """One example; ``style`` (a bundled name or a style dict) and ``pair`` (reference song, target song) fix
        what is otherwise drawn."""
        kind, drawn = self.draw_style(g)
        if style is not None:
            kind, drawn = ("bundled" if isinstance(style, str) else style.get("kind", "engineer")), style
        i = int(torch.randint(0, len(self.songs), (1,), generator=g))
        j = int(torch.randint(0, len(self.songs) - 1, (1,), generator=g))
        a, b = (self.songs[i], self.songs[j + (j >= i)]) if pair is None else pair
        seeds = torch.randint(0, 2 ** 31 - 1, (2,), generator=g).tolist()
        sa, xa = self._segment(a, g)
        sb, xb = self._segment(b, g)
        ref, ref_params, _ = _styled(xa, sa["roles"], sa["lufs"], drawn, seeds[0], sa["tempo"])
        target, params, k = _styled(xb, sb["roles"], sb["lufs"], drawn, seeds[1], sb["tempo"])
        return {"stems": xb, "reference": ref, "target": target, "params": params, "t60_index": k, "song": b, "ref_song": a,
                "roles": sb["roles"], "kind": kind, "style": drawn, "ref_params": ref_params, "ref_roles": sa["roles"]}

    def batch(self, n: int, g: torch.Generator, paired: bool = False) -> dict:
        """``n`` examples padded into one batch (:func:`collate`). ``paired``: they come in pairs that share the
        reference song and the target song but not the style (the other bundled engineer for a bundled style, a
        fresh draw otherwise), so that only the reference can tell the two targets apart."""
        if not paired:
            return collate([self.example(g) for _ in range(n)])
        from ..data.engineer import ENGINEERS

        items = []
        while len(items) < n:
            first = self.example(g)
            kind, other = self.draw_style(g)
            if first["kind"] == "bundled":
                other = next(e for e in ENGINEERS if e != first["style"])
            items.append(first)
            if len(items) < n:
                items.append(self.example(g, style=other, pair=(first["ref_song"], first["song"])))
        return collate(items)


def collate(items: Sequence[dict]) -> dict:
    """Pad examples of :class:`StyleMixData` into one batch (see there)."""
    n_max = max(it["stems"].shape[0] for it in items)
    b, t = len(items), items[0]["stems"].shape[-1]
    stems, mask = torch.zeros(b, n_max, t), torch.zeros(b, n_max, dtype=torch.bool)
    n_cols = len(TRACK_COLUMNS)
    track, bus = torch.full((b, n_max, n_cols), 0.5), torch.zeros(b, len(BUS_NAMES))
    for k, it in enumerate(items):
        n = it["stems"].shape[0]
        stems[k, :n], mask[k, :n] = it["stems"], True
        tr, bu = pack_params(params_to_normalized(it["params"]))
        track[k, :n], bus[k] = tr[0].float(), bu[0].float()
    return {"stems": stems, "mask": mask, "reference": torch.stack([it["reference"] for it in items]).float(),
            "target": torch.stack([it["target"] for it in items]).float(), "track": track, "bus": bus,
            "kinds": [it["kind"] for it in items], "t60_index": [it["t60_index"] for it in items]}


# --------------------------------------------------------------------------------------------
# The training family (automix_lite.train's one loop)
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "model": "style_mix",
    "steps": 1000, "batch_size": 4, "segment_seconds": 1.5,
    "lr": 1e-3, "lr_factor": 0.5, "lr_patience": 3, "grad_clip": 1.0,
    "log_every": 25, "val_every": 50, "val_examples": 12, "max_seconds": None,
    "seed": 0, "device": "auto", "threads": None,
    "dim": 96, "layers": 3, "heads": 4, "ff": 192, "widths": [16, 32, 48, 64], "n_mels": 48, "max_tracks": 16,
    "fractions": [0.25, 0.35, 0.4], "param_weight": 300.0, "paired": False,
}
"""The keys of a ``"model": "style_mix"`` config and their defaults (:func:`automix_lite.train.load_config`).
``segment_seconds``: reference and target segment length; ``fractions``: how often each kind of style of
:data:`KINDS` is drawn; ``param_weight``: weight of the parameter loss (0: audio only); ``dim``, ``layers``,
``heads``, ``ff``, ``widths``, ``n_mels``, ``max_tracks``: :class:`MixStyleTransfer`; ``paired``: batches of pairs
that share both songs but not the style (:meth:`StyleMixData.batch`); ``val_examples``: fixed VAL
examples (drawn with seed + 1). The rest is the loop's (Adam, the plateau schedule ``lr_factor`` / ``lr_patience``
stepped by the validation loss every ``val_every`` steps, ``max_seconds``)."""


def _problems(cfg: dict) -> list:
    problems = _train._value_problems(
        cfg, {"model": ("style_mix",)},
        {"steps": 1, "batch_size": 1, "lr_patience": 0, "log_every": 1, "val_every": 1, "val_examples": 1, "seed": 0,
         "dim": 4, "layers": 1, "heads": 1, "ff": 1, "n_mels": 8, "max_tracks": 1},
        {"segment_seconds": (0.5, 30, True), "lr": (0, None, False), "lr_factor": (0, 1, False),
         "grad_clip": (0, None, False), "param_weight": (0, None, True)})
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1  # noqa: E731
    if whole(cfg["dim"]) and whole(cfg["heads"]) and cfg["dim"] % cfg["heads"]:
        problems.append(f"dim must be a multiple of heads; got dim={cfg['dim']}, heads={cfg['heads']}")
    if cfg["lr_factor"] == 1:
        problems.append("lr_factor must be below 1; got 1")
    w = cfg["widths"]
    if not isinstance(w, (list, tuple)) or not w or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w):
        problems.append(f"widths must be a non-empty list of whole numbers >= 1; got {w!r}")
    f = cfg["fractions"]
    if (not isinstance(f, (list, tuple)) or len(f) != len(KINDS)
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in f)
            or sum(f) <= 0):
        problems.append(f"fractions must be {len(KINDS)} non-negative numbers (for {', '.join(KINDS)}), not all 0; "
                        f"got {f!r}")
    v = cfg["max_seconds"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
        problems.append(f"max_seconds must be null (no limit) or a positive number of seconds; got {v!r}")
    if not isinstance(cfg["paired"], bool):
        problems.append(f"paired must be true or false; got {cfg['paired']!r}")
    return problems


class _StyleMixPart(_train.SampledPart):
    """The loop's part for ``style_mix`` (see :class:`automix_lite.train.Family`): fresh TRAIN examples every step
    from one generator seeded ``seed + steps done``; validation on ``val_examples`` fixed VAL examples."""

    loss_name = "stereo loss (RMS-matched) + param_weight x control L1"

    def __init__(self, cfg: dict, model: MixStyleTransfer, device, done: int = 0):
        from ..losses import StereoLoss

        self.cfg, self.device = cfg, device
        self.data = StyleMixData("train", cfg["segment_seconds"], cfg["fractions"])
        self.generator = torch.Generator().manual_seed(cfg["seed"] + done)
        val = StyleMixData("val", cfg["segment_seconds"], cfg["fractions"])
        g = torch.Generator().manual_seed(cfg["seed"] + 1)
        self.val = [val.batch(1, g) for _ in range(cfg["val_examples"])]
        self.stereo = StereoLoss().to(device)
        self.extra = {"track_columns": list(TRACK_COLUMNS), "bus_columns": list(BUS_NAMES)}

    def describe(self, model, device, start: int, end: int) -> str:
        c = self.cfg
        return (f"style_mix: dim={c['dim']} layers={c['layers']} heads={c['heads']} params={model.n_params:,} "
                f"device={device} batch={c['batch_size']} x {c['segment_seconds']:g} s, styles {dict(zip(KINDS, c['fractions']))}, "
                f"steps {start + 1}-{end}")

    def batch(self, run, step: int) -> dict:
        return self.data.batch(self.cfg["batch_size"], self.generator, self.cfg["paired"])

    def _loss(self, model, batch: dict) -> tuple:
        dev = self.device
        stems, mask = batch["stems"].to(dev), batch["mask"].to(dev)
        target = batch["target"].to(dev)
        params = model(stems, mask, batch["reference"].to(dev))
        values = dict(params)
        values["master_gain_db"] = torch.zeros_like(values["master_gain_db"])
        y = training_mix(stems, values, mask, batch["t60_index"])
        rms = lambda v: v.square().mean((1, 2), keepdim=True).add(1e-12).sqrt()  # noqa: E731
        y = y * (rms(target) / rms(y)).detach()
        audio_loss = self.stereo(y, target)
        track, bus = params.controls
        w = mask.to(track.dtype).unsqueeze(-1)
        p_loss = ((track - batch["track"].to(dev)).abs() * w).sum() / (w.sum() * track.shape[-1])
        keep = [i for i in range(bus.shape[-1]) if i != _MASTER]
        p_loss = p_loss + (bus[:, keep] - batch["bus"].to(dev)[:, keep]).abs().mean() * len(keep) / track.shape[-1]
        return audio_loss, p_loss

    def loss(self, run, batch: dict, net) -> torch.Tensor:
        a, p = self._loss(net, batch)
        return a + self.cfg["param_weight"] * p

    def validate(self, run) -> float:
        with torch.no_grad():
            return float(np.mean([self._loss(run.model, b)[0].item() for b in self.val]))


def _loaded(data: dict, path: str) -> None:
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    if extra.get("track_columns", list(TRACK_COLUMNS)) != list(TRACK_COLUMNS):
        raise ValueError(f"{path} is a style_mix model for other console columns; it is not valid for this version. "
                         "Retrain it.")


FAMILIES = {"style_mix": _train.Family(DEFAULT_CONFIG, _problems, build_model, _StyleMixPart, ("data_rng",), _loaded)}
"""The ``style_mix`` family of :data:`automix_lite.train.SAMPLED_FAMILIES` (config, checks, network, loop part)."""


# --------------------------------------------------------------------------------------------
# Evaluation on the TEST songs (chapter 5.2's table, benchmarks/style_mix.py)
# --------------------------------------------------------------------------------------------

BASELINES = ("equal loudness", "dmc_full_songs", "average engineer")
"""The reference-agnostic mixers :func:`evaluate_mix` compares with: every stem at the same loudness (-23 LUFS,
centred, no processing); the bundled DMC with the full console (trained on the *natural* engineer; it ignores the
reference); the average of the two bundled engineers' parameters for the song (their dB, Hz and pan values
averaged: the best a mixer that ignores the reference can do knowing both engineers)."""


def _equal_loudness(tracks: torch.Tensor, lufs: Sequence[float]) -> dict:
    from ..dsp.console import default_params

    p = default_params(1, tracks.shape[0])
    p["gain_db"] = torch.tensor([[-23.0 - float(v) for v in lufs]]).clamp(-48, 24)
    return p


def _average_engineer(a, b) -> dict:
    return {k: (a[k].double() + b[k].double()).float() / 2 for k in a}


def _param_errors(params, truth, mask) -> dict:
    from .. import metrics

    sub = lambda p: {k: p[k][:, mask] for k in ("gain_db", "pan")}  # noqa: E731 - audible tracks only
    tr, _ = pack_params(params_to_normalized({k: params[k].double() for k in truth}))
    tt, _ = pack_params(params_to_normalized({k: truth[k].double() for k in truth}))
    return {"gain_db": metrics.gain_error_db(sub(params), sub(truth)), "pan": metrics.pan_error(sub(params), sub(truth)),
            "controls": float((tr[0, mask] - tt[0, mask]).abs().mean())}


def evaluate_mix(model: MixStyleTransfer, songs: Optional[Sequence[str]] = None, references: Optional[int] = None,
                 engineers: Sequence[str] = ("natural", "punchy"), seconds: Optional[float] = 6.0,
                 baselines: Sequence[str] = BASELINES, log=None) -> list:
    """Rows of the style-transfer evaluation: for every song of ``songs`` (default: the TEST songs), every other
    song of ``songs`` as the reference (the first ``references`` others when given), every engineer E of
    ``engineers``: the reference is the other song's mix by E, and every mixer's output on the song's stems (the
    first ``seconds``; ``None``: whole songs) is compared with E's mix of the song.

    A row: ``mixer`` (``"style_mix"`` or one of ``baselines``: :data:`BASELINES`), ``song``, ``ref_song``,
    ``engineer``; ``stereo`` (:func:`automix_lite.metrics.matched_stereo_loss` against E's mix), ``stereo_other``
    (against the other engineer's mix of the song), ``closer`` (1.0 when ``stereo < stereo_other``: the style
    discrimination), ``mape`` (the mean of the four Part 4 feature-group MAPEs, percent), and the parameter errors
    against E's parameters: ``gain_db`` (dB, mean offset removed), ``pan`` (mirror allowed) and ``controls`` (mean
    |difference| of all 23 normalised track controls). Reference-agnostic baselines are computed once per song and
    repeated for each reference (their ``closer`` for one engineer is one minus that for the other)."""
    from .. import data, features, metrics, pretrained
    from ..inference import active_mask, mix_stems

    songs = [s["id"] for s in data.songs("songs", "test")] if songs is None else list(songs)
    if len(songs) < 2:
        raise ValueError("evaluate_mix needs at least two songs (each is the other's reference).")
    if len(engineers) != 2:
        raise ValueError(f"engineers must name two bundled engineers (E and the other); got {list(engineers)}.")
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose among {BASELINES}.")
    sr = data.SAMPLE_RATE
    dmc = pretrained.load("dmc_full_songs") if "dmc_full_songs" in baselines else None
    loss_fn = __import__("automix_lite.losses", fromlist=["StereoLoss"]).StereoLoss()
    cache = {}

    def song(sid):
        if sid not in cache:
            s = data.load_song(sid)
            n = s["tracks"].shape[-1] if seconds is None else min(round(seconds * sr), s["tracks"].shape[-1])
            cache[sid] = {"tracks": s["tracks"][:, :n], "lufs": [t["lufs"] for t in s["entry"]["tracks"]],
                          "mix": {e: data.reproduce_mix(sid, e)[:, :n] for e in engineers},
                          "params": {e: data.mix_params(sid, e) for e in engineers}}
        return cache[sid]

    def score(y, params, s, e, other, mask):
        row = {"stereo": metrics.matched_stereo_loss(y[None], s["mix"][e][None], sr, loss_fn),
               "stereo_other": metrics.matched_stereo_loss(y[None], s["mix"][other][None], sr, loss_fn)}
        row["closer"] = float(row["stereo"] < row["stereo_other"])
        row["mape"] = float(np.nanmean(list(features.feature_mape(y, s["mix"][e], sr)["groups"].values())))
        row.update(_param_errors(params, s["params"][e], mask) if params is not None else {})
        return row

    rows = []
    for sid in songs:
        s = song(sid)
        mask = active_mask(s["tracks"])
        fixed = {}
        with torch.no_grad():
            if "equal loudness" in baselines:
                p = _equal_loudness(s["tracks"], s["lufs"])
                fixed["equal loudness"] = (mix(s["tracks"][None], sr, p, mask=mask[None])[0], p)
            if dmc is not None:
                y, p = mix_stems(dmc, s["tracks"])
                fixed["dmc_full_songs"] = (y, p.to("cpu"))
            if "average engineer" in baselines:
                p = _average_engineer(*(s["params"][e] for e in engineers))
                fixed["average engineer"] = (mix(s["tracks"][None], sr, p, mask=mask[None])[0], p)
        others = [r for r in songs if r != sid][:references]
        for e in engineers:
            other = engineers[1] if e == engineers[0] else engineers[0]
            base = {name: score(y, p, s, e, other, mask) for name, (y, p) in fixed.items()}
            for ref_id in others:
                y, p = transfer(model, s["tracks"], song(ref_id)["mix"][e], sr)
                key = {"song": sid, "ref_song": ref_id, "engineer": e}
                rows.append({"mixer": "style_mix", **key, **score(y, p, s, e, other, mask)})
                rows += [{"mixer": name, **key, **r} for name, r in base.items()]
            if log is not None:
                log(f"{sid} ({e}): {len(others)} references")
    return rows


_SUMMARY_KEYS = ("stereo", "stereo_other", "closer", "mape", "gain_db", "pan", "controls")


def summarize_mix(rows: Sequence[dict]) -> dict:
    """``{"mixers": {mixer: {"all" | engineer: {metric: mean, "n": rows}}}, "discrimination": fraction of
    style_mix rows closer to E's mix than to the other engineer's, "beats_sum": relative stereo-loss reduction of
    style_mix against the equal-loudness sum, "beats_dmc": {engineer: fraction of cases where style_mix's stereo loss
    is below the DMC's}}`` from :func:`evaluate_mix`'s rows."""
    out = {}
    for r in rows:
        for group in ("all", r["engineer"]):
            out.setdefault(r["mixer"], {}).setdefault(group, []).append(r)
    mixers = {m: {g: {**{k: float(np.mean([r[k] for r in rs])) for k in _SUMMARY_KEYS if k in rs[0]}, "n": len(rs)}
                  for g, rs in groups.items()} for m, groups in out.items()}
    res = {"mixers": mixers}
    if "style_mix" in mixers:
        res["discrimination"] = mixers["style_mix"]["all"]["closer"]
        res["discrimination_by_engineer"] = {g: v["closer"] for g, v in mixers["style_mix"].items() if g != "all"}
        if "equal loudness" in mixers:
            res["beats_sum"] = 1 - mixers["style_mix"]["all"]["stereo"] / mixers["equal loudness"]["all"]["stereo"]
        if "dmc_full_songs" in mixers:
            key = lambda r: (r["song"], r["ref_song"], r["engineer"])  # noqa: E731
            dmc = {key(r): r["stereo"] for r in rows if r["mixer"] == "dmc_full_songs"}
            wins = {}
            for r in rows:
                if r["mixer"] == "style_mix" and key(r) in dmc:
                    wins.setdefault(r["engineer"], []).append(float(r["stereo"] < dmc[key(r)]))
            res["beats_dmc"] = {e: float(np.mean(v)) for e, v in wins.items()}
    return res


def mix_table(summary: dict) -> str:
    """A markdown table of :func:`summarize_mix`: one row per mixer and engineer of the reference."""
    lines = ["| mixer | reference by | stereo loss | vs other engineer | closer to E | feature MAPE (%) | gain err (dB) "
             "| pan err | control err | cases |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for mixer, groups in summary["mixers"].items():
        for g in sorted(groups, key=lambda k: (k == "all", k)):
            v = groups[g]
            lines.append(f"| {mixer} | {g} | {fmt(v['stereo'])} | {fmt(v['stereo_other'])} | {v['closer']:.0%} | "
                         f"{fmt(v['mape'], 1)} | {fmt(v.get('gain_db'), 2)} | {fmt(v.get('pan'))} | "
                         f"{fmt(v.get('controls'))} | {v['n']} |")
    return "\n".join(lines)


def draw_architecture(ax=None):
    """Draw :class:`MixStyleTransfer` as a block diagram on a matplotlib ``ax`` (a new figure when ``None``);
    returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="0.3", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)

    def arrow(a, b):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color="0.35", lw=1))

    stems = ["stem 1", "stem 2", "...", "stem N"]
    for i, s in enumerate(stems):
        y = 4.3 - 0.55 * i
        box(0.1, y, 0.9, 0.4, s, "#dbe9f6")
        if s != "...":
            arrow((1.05, y + 0.2), (1.55, y + 0.2))
    box(0.1, 1.2, 0.9, 0.4, "ref mid", "#fde2c8")
    box(0.1, 0.6, 0.9, 0.4, "ref side", "#fde2c8")
    box(-0.05, 0.05, 1.2, 0.35, "reference mix\n(other song)", "#fff4e6")
    for y in (1.4, 0.8):
        arrow((1.05, y), (1.55, y))
    box(1.6, 0.55, 1.5, 4.2, "shared encoder\nlog-mel CNN\n+ level\n\n+ token type\n(track / mid / side)", "#e8f3e8")
    box(3.6, 0.55, 1.7, 4.2, "transformer\nencoder\n(self-attention,\nno positional\nencoding,\npadding mask)", "#efe6f6")
    arrow((3.15, 2.65), (3.55, 2.65))
    box(5.8, 2.7, 1.5, 1.9, "track head\n23 controls per\ntrack: gain, EQ,\ncompressor, pan,\nreverb send", "#f6e6e6")
    box(5.8, 0.6, 1.5, 1.7, "bus head\n(mean of tracks,\nmid, side):\nT60, return", "#f6e6e6")
    arrow((5.35, 3.6), (5.75, 3.6))
    arrow((5.35, 1.5), (5.75, 1.5))
    box(7.8, 1.6, 1.1, 2.2, "DSP\nconsole\n(dsp.mix)", "#e6eef6")
    arrow((7.35, 3.6), (7.75, 3.0))
    arrow((7.35, 1.5), (7.75, 2.2))
    box(7.8, 0.3, 1.1, 0.9, "master gain\nfrom the ref's\nloudness", "#fff4e6")
    arrow((8.35, 1.25), (8.35, 1.55))
    box(9.2, 2.3, 0.75, 0.8, "mix\n(stereo)", "#dbe9f6")
    arrow((8.95, 2.7), (9.15, 2.7))
    ax.text(1.0, 4.85, "the stems of song B (any number, any order)", fontsize=8, ha="left")
    return ax
