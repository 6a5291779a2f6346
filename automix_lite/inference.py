"""Mixing whole songs with a trained model (taught in ``notebooks/14_inference.ipynb``; ``automix mix``).

- :func:`read_stems`: a folder of mono stems -> ``(tracks (N, T), names)`` at the model's rate, with
  clear errors for everything a real folder can hold (no audio, unreadable files, NaN samples, too many
  tracks, different lengths).
- :func:`mix_stems`: ``(mix (2, T), params)`` for a whole song. A DMC estimates its parameters **once**
  for the song (on up to ``analysis_seconds`` of audio spread over it), so they are the same in every
  block, then renders block by block. The Mix-Wave-U-Net has no parameters: it runs on overlapping blocks
  joined by linear crossfades. Silent stems (RMS below ``SILENCE_DB``) are masked. The mix never clips:
  above ``ceiling_db`` it is scaled down, and the gain is reported.
- :func:`params_table`, :func:`params_to_json`, :func:`params_from_json`, :func:`render_params`: read the
  predicted parameters, edit them as JSON, and render the edited mix (``automix render``).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Optional, Sequence

import torch

from ._checks import read_json

__all__ = ["AUDIO_EXTENSIONS", "SILENCE_DB", "CEILING_DB", "PARAMS_FORMAT", "stem_files", "read_stems",
           "active_mask", "estimate_params", "mix_stems", "crossfade_weights", "limit_peak", "params_table", "params_to_json",
           "params_from_json", "render_params", "console_kind"]

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".w64",
                    ".caf", ".au", ".snd", ".rf64")
"""File endings read as stems; other files in a stems folder are ignored with a warning."""

SILENCE_DB = -60.0
"""Stems whose RMS is below this level (dBFS) are masked out of the mix."""

CEILING_DB = -1.0
"""Mixes peaking above this level (dBFS) are scaled down to it."""

PARAMS_FORMAT = "automix-lite-params/1"

_BASIC = ("gain_db", "pan")


# --------------------------------------------------------------------------------------------
# Reading stems
# --------------------------------------------------------------------------------------------


def stem_files(folder) -> list:
    """Sorted paths of the audio files (by ending, :data:`AUDIO_EXTENSIONS`) directly in ``folder``.

    Hidden files and sub-folders are skipped silently; other files (``.txt``, ``.json``, ...) and entries
    that are not regular files (a named pipe, a device, a broken link: opening one could block) are skipped
    with a warning naming them. A missing folder raises ``FileNotFoundError``, a folder without audio a
    ``ValueError``.
    """
    import stat

    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"no stems folder at {folder!r}.")
    if not os.path.isdir(folder):
        raise ValueError(f"{folder!r} is a file; give the folder that holds the stems (one mono audio file per track).")
    audio, ignored, special = [], [], []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.startswith(".") or os.path.isdir(path):
            continue
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)  # stat never opens the file
        except OSError:
            regular = False
        if not regular:
            special.append(entry)
            continue
        (audio if entry.lower().endswith(AUDIO_EXTENSIONS) else ignored).append(path)
    if special:
        warnings.warn(f"skipping {', '.join(special)}: not a regular file (a named pipe, a device or a broken link), "
                      "so not opened", stacklevel=2)
    if ignored:
        warnings.warn(f"ignoring {len(ignored)} file(s) that are not audio by their name: "
                      f"{', '.join(os.path.basename(p) for p in ignored)}", stacklevel=2)
    if not audio:
        raise ValueError(f"no audio files in {folder!r} (looked for {', '.join(AUDIO_EXTENSIONS[:4])}, ...); "
                         "put one mono file per track there.")
    return audio


def _names(paths: Sequence[str]) -> list:
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return stems if len(set(stems)) == len(stems) else [os.path.basename(p) for p in paths]


PAD_TOLERANCE = 4
"""Stems at most this many samples shorter than the longest (resampling rounds lengths up) are zero-padded
without a word; larger differences need ``pad=True`` (``--pad``)."""


def read_stems(folder, sample_rate: int = 44100, max_tracks: Optional[int] = None, pad: bool = False):
    """Read every stem in ``folder`` -> ``(tracks (N, T) float32, names)``, sorted by file name.

    Files are resampled to ``sample_rate`` and stereo stems downmixed to mono, each with a warning. Errors
    (``ValueError`` naming the file): a file with an audio ending that cannot be read, NaN or infinite
    samples; also no audio at all, more than ``max_tracks`` stems, and stems of different lengths
    (unless ``pad=True``: then they are zero-padded at the end to the longest, with a warning; differences
    of up to :data:`PAD_TOLERANCE` samples are padded silently). Silent stems are kept (:func:`mix_stems`
    masks them). ``names`` are the file names without their ending.
    """
    from . import audio as audio_io

    paths = stem_files(folder)
    if max_tracks is not None and len(paths) > max_tracks:
        raise ValueError(f"{folder!r} holds {len(paths)} stems but the model takes at most {max_tracks}; "
                         "combine some (e.g. the drum mics into one stem) or remove the quietest.")
    tracks = []
    for path in paths:
        name = os.path.basename(path)
        try:
            x, file_sr = audio_io.load(path)  # checks for NaN/inf before anything is computed from the samples
        except ValueError as err:
            raise ValueError(f"stem {name!r} cannot be used: {err}") from None
        if file_sr != sample_rate:
            warnings.warn(f"stem {name!r} is at {file_sr} Hz; resampling it to {sample_rate} Hz.", stacklevel=2)
            x = audio_io.resample(x, file_sr, sample_rate)
        x = x[0]
        if x.shape[0] > 1:
            warnings.warn(f"stem {name!r} has {x.shape[0]} channels; downmixing it to mono "
                          "(the models take mono stems).", stacklevel=2)
            x = x.mean(0, keepdim=True)
        tracks.append(x[0].float())
    lengths = [t.shape[-1] for t in tracks]
    longest = max(lengths)
    if longest - min(lengths) > PAD_TOLERANCE:
        listing = ", ".join(f"{os.path.basename(p)}: {n} ({n / sample_rate:.2f} s)" for p, n in zip(paths, lengths))
        if not pad:
            raise ValueError(f"the stems have different lengths at {sample_rate} Hz ({listing}); stems of one song "
                             "must start together and have equal length. Pass --pad (pad=True) to zero-pad the "
                             "shorter ones at the end.")
        warnings.warn(f"zero-padding stems at the end to the longest, {longest} samples ({listing}).", stacklevel=2)
    tracks = [torch.nn.functional.pad(t, (0, longest - t.shape[-1])) for t in tracks]
    return torch.stack(tracks), _names(paths)


# --------------------------------------------------------------------------------------------
# Mixing
# --------------------------------------------------------------------------------------------


def active_mask(tracks: torch.Tensor, silence_db: float = SILENCE_DB) -> torch.Tensor:
    """``(..., N)`` bool: the tracks of ``tracks (..., N, T)`` whose RMS is at least ``silence_db`` dBFS."""
    rms = tracks.double().square().mean(-1).sqrt()
    return rms >= 10 ** (silence_db / 20)


def _is_dmc(model) -> bool:
    """The DMC (its own fast paths: window averaging of its normalised outputs, block-wise consoles)."""
    from .models.dmc import DMC

    return isinstance(model, DMC)


def _check_tracks(model, tracks: torch.Tensor) -> torch.Tensor:
    if not isinstance(tracks, torch.Tensor) or tracks.ndim != 2:
        got = tuple(tracks.shape) if isinstance(tracks, torch.Tensor) else type(tracks).__name__
        raise ValueError(f"tracks must be a (tracks, samples) tensor of mono stems, as read_stems returns; got {got}.")
    limit = model.max_tracks
    if limit is not None and tracks.shape[0] > limit:
        raise ValueError(f"got {tracks.shape[0]} tracks but this model takes at most {limit}.")
    if not bool(torch.isfinite(tracks).all()):
        raise ValueError("tracks contain NaN or infinite samples.")
    return tracks.float()


_CHUNK = 1 << 18  # samples per step of the whole-song reductions below (a few MB of float64 for 8 tracks)


def _check_song(model, tracks: torch.Tensor) -> torch.Tensor:
    """:func:`_check_tracks` a chunk of time at a time: ``torch.isfinite`` of a whole song holds ``|tracks|`` and
    two masks at once (as much again as the song); the checks and their messages are the same."""
    if isinstance(tracks, torch.Tensor) and tracks.ndim == 2 and tracks.shape[-1] > _CHUNK:
        for a in range(0, tracks.shape[-1], _CHUNK):
            _check_tracks(model, tracks[:, a:a + _CHUNK])
        return tracks.float()
    return _check_tracks(model, tracks)


def _active(tracks: torch.Tensor, silence_db: float = SILENCE_DB) -> torch.Tensor:
    """:func:`active_mask` of ``tracks (N, T)`` in time chunks: the float64 sum of squares never holds the song."""
    total = tracks.new_zeros(tracks.shape[0], dtype=torch.float64)
    for a in range(0, tracks.shape[-1], _CHUNK):
        total += tracks[:, a:a + _CHUNK].double().square().sum(-1)
    return (total / tracks.shape[-1]).sqrt() >= 10 ** (silence_db / 20)


def _windows(t: int, length: int, count: int) -> list:
    """Starts of ``count`` windows of ``length`` samples spread over ``t`` samples (first at 0, last at the end)."""
    if length >= t:
        return [0]
    count = max(1, count)
    if count == 1:
        return [(t - length) // 2]
    return sorted({round(k * (t - length) / (count - 1)) for k in range(count)})


@torch.no_grad()
def estimate_params(model, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None, sample_rate: Optional[int] = None,
                    analysis_seconds: float = 30.0, windows: int = 6) -> dict:
    """One set of parameters for a whole song ``tracks (N, T)``, as ``model.estimate`` returns for batch 1.

    ``model``: any :class:`automix_lite.mixer.Mixer`; one without parameters (``has_params`` false, the
    Mix-Wave-U-Net) gives ``None``, as its ``estimate`` does, after the same checks of the input. A DMC:

    The model looks at windows as long as the segments it was trained on (``model.segment_seconds``, set
    from the training config; its encoder pools over time, so its estimates depend on the input length):
    ``ceil(min(T, analysis_seconds) / segment) + 1`` overlapping windows spread evenly over the song. A
    model without ``segment_seconds`` analyses a song of at most ``analysis_seconds`` in one go and a longer
    one in ``windows`` windows of ``analysis_seconds / windows`` seconds. The normalised outputs
    (``"_track"``, ``"_bus"``) are averaged, each track over the windows where it is not silent (a track
    silent in all of them gets an extra window at its loudest part), and converted with
    ``model.console.to_params``. ``mask (N,)`` marks the tracks to use (default: not silent).

    Other mixers: ``segment_seconds=None`` means the whole song in one ``estimate``; with a segment length
    the same windows are analysed and each real-unit parameter is averaged (a track's over the windows where
    it is not silent, a bus parameter over all); ``_``-keys are dropped then.
    """
    from .mixer import check_mixer, device_of

    model = check_mixer(model)
    dmc = _is_dmc(model)
    tracks = _check_song(model, tracks)
    if not model.has_params:
        return None
    sr = int(sample_rate or model.sample_rate)
    n, t = tracks.shape
    mask = _active(tracks) if mask is None else mask.to(torch.bool).reshape(n)
    if not bool(mask.any()):
        raise ValueError(f"every stem is silent (RMS below {SILENCE_DB:g} dBFS); there is nothing to mix.")
    dev = device_of(model)
    segment = model.segment_seconds
    if segment:
        length = int(segment * sr)
        count = math.ceil(min(t, analysis_seconds * sr) / length) + 1
    elif not dmc:  # the protocol's None: the whole input at once
        length, count = t, 1
    else:
        length, count = max(int(analysis_seconds * sr / max(windows, 1)), sr), windows
        if t <= analysis_seconds * sr:
            length = t
    if t <= length:
        return model.estimate(tracks.unsqueeze(0).to(dev), mask.unsqueeze(0).to(dev))
    starts = _windows(t, length, count)
    covered = torch.zeros(n, dtype=torch.bool)
    for s in starts:
        covered |= active_mask(tracks[:, s:s + length])
    for k in torch.nonzero(mask & ~covered).flatten().tolist():  # active tracks no window heard: add their loudest part
        whole = (t // length) * length
        step = max(1, _CHUNK // length) * length  # whole windows at a time: the track is never squared at once
        energy = torch.cat([tracks[k, a:min(a + step, whole)].square().view(-1, length).sum(-1)
                            for a in range(0, whole, step)])
        starts.append(int(energy.argmax()) * length)
    if not dmc:
        return _average_estimates(model, tracks, mask, starts, length, dev)
    track_sum = bus_sum = None
    weight, used = torch.zeros(n, 1), 0
    for m, out in _window_estimates(model, tracks, mask, starts, length, dev):
        w = m.to(torch.float32).unsqueeze(-1)
        tr, bu = out["_track"][0].cpu(), out["_bus"][0].cpu()
        track_sum = tr * w if track_sum is None else track_sum + tr * w
        bus_sum = bu if bus_sum is None else bus_sum + bu
        weight, used = weight + w, used + 1
    track = (track_sum / weight.clamp_min(1.0)).unsqueeze(0).to(dev)
    bus = (bus_sum / used).unsqueeze(0).to(dev)
    params = model.console.to_params(track, bus)
    params["_track"], params["_bus"] = track, bus
    return params


def _window_estimates(model, tracks: torch.Tensor, mask: torch.Tensor, starts, length: int, dev):
    """The windows :func:`estimate_params` averages over, for every mixer: yields ``(m, estimate)`` for each window
    ``tracks[:, s:s + length]`` (``s`` in ``starts``) in which a track of ``mask`` is not silent, ``m (N,)`` those
    tracks and ``estimate`` the model's for them (batch 1). Windows in which they are all silent are skipped."""
    for s in starts:
        seg = tracks[:, s:s + length]
        m = active_mask(seg) & mask
        if bool(m.any()):
            yield m, model.estimate(seg.unsqueeze(0).to(dev), m.unsqueeze(0).to(dev))


def _average_estimates(model, tracks: torch.Tensor, mask: torch.Tensor, starts, length: int, dev) -> dict:
    """A generic mixer's estimates over windows, averaged: track-level values ``(1, N, ...)`` over the windows
    where the track is not silent, the others over every window used."""
    n = tracks.shape[0]
    sums, weights = {}, {}
    for m, out in _window_estimates(model, tracks, mask, starts, length, dev):
        for k, v in out.items():
            if k.startswith("_") or not isinstance(v, torch.Tensor):
                continue
            v = v.detach().double().cpu()
            if v.ndim >= 2 and v.shape[1] == n:
                w = m.to(torch.float64).view(1, n, *([1] * (v.ndim - 2)))
                sums[k], weights[k] = sums.get(k, 0) + v * w, weights.get(k, 0) + w
            else:
                sums[k], weights[k] = sums.get(k, 0) + v, weights.get(k, 0) + 1.0
    out = {}
    for k, v in sums.items():
        w = weights[k]
        out[k] = (v / (w.clamp_min(1.0) if isinstance(w, torch.Tensor) else w)).float().to(dev)
    return out


def crossfade_weights(t: int, block: int, margin: int = 0, fade: int = 0, dtype=torch.float32):
    """The blocks of a song of ``t`` samples and the weight of every block's samples, for block-wise rendering.

    Yields ``(start, stop, weight)`` per block: the block is rendered on ``[start, stop)`` and its output is
    multiplied by ``weight`` (``stop - start`` values) and added into the song at ``start``. Block ``k`` keeps
    ``[k * block, (k + 1) * block)``; it is rendered with ``margin + fade // 2`` extra samples on each side (so
    that effects with memory and non-causal networks have warmed up; weight 0 there), and neighbours are
    joined by a linear crossfade of ``fade`` samples centred on each boundary: across it one block's weight
    falls as ``1 - (i + 0.5) / fade`` while the next one's rises as ``(i + 0.5) / fade``, so the weights
    of the blocks add up to 1 at every sample (eq. crossfade of chapter 3.4, ``notebooks/14_inference.ipynb``).
    ``fade`` is at most ``block``; a last block shorter than ``fade`` is joined to the one before it, and a
    song of one block is a single ``(0, t, ones)``. A generator: one block's weights at a time, so long songs
    need no song-length weight array. :func:`mix_stems` renders every model with it.
    """
    for name, v, low in (("t", t, 1), ("block", block, 1), ("margin", margin, 0), ("fade", fade, 0)):
        if isinstance(v, bool) or not hasattr(v, "__index__") or v < low:
            raise ValueError(f"{name} must be a whole number of samples >= {low}; got {v!r}.")
    t, block, margin, fade = int(t), int(block), int(margin), min(int(fade), int(block))
    cuts = [c for c in range(block, t, block) if t - c >= fade]  # inner boundaries; a crossfade fits after each
    if not cuts:
        yield 0, t, torch.ones(t, dtype=dtype)
        return
    edges = [0] + cuts + [t]
    half = fade // 2
    ramp = (torch.arange(fade, dtype=dtype) + 0.5) / fade
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        first, last = k == 0, k == len(edges) - 2
        a, b = max(0, lo - margin - half), min(t, hi + margin + half)
        w = torch.zeros(b - a, dtype=dtype)
        start = a if first else lo - half
        stop = b if last else hi - half + fade
        w[start - a: stop - a] = 1.0
        if not first and fade:
            w[lo - half - a: lo - half - a + fade] = ramp
        if not last and fade:
            w[hi - half - a: hi - half - a + fade] = 1.0 - ramp
        yield a, b, w


def _blockwise(render: Callable, t: int, block: int, margin: int, fade: int, dtype=torch.float32) -> torch.Tensor:
    """Join ``render(start, stop) -> (2, stop - start)`` over the blocks of :func:`crossfade_weights`."""
    from itertools import chain

    blocks = crossfade_weights(t, block, margin, fade, dtype)
    first, second = next(blocks), next(blocks, None)
    if second is None:  # one block: no weights to apply
        return render(0, t)
    out = None
    for a, b, w in chain((first, second), blocks):
        y = render(a, b)
        if out is None:
            out = y.new_zeros(y.shape[0], t)
        out[:, a:b] += y * w.to(y.dtype).to(y.device)
    return out


def _limit_gain_db(mix: torch.Tensor, ceiling_db: float) -> float:
    """The gain (dB, <= 0) that brings the peak of ``mix`` down to ``ceiling_db``; 0.0 if it is not above.

    The peak comes from one min/max pass (``torch.aminmax``), without a copy of ``|mix|``."""
    if not mix.numel():
        return 0.0
    low, high = (float(v) for v in torch.aminmax(mix.detach()))
    peak = max(high, -low) if low == low and high == high else math.nan
    if peak <= 10 ** (ceiling_db / 20):
        return 0.0
    return ceiling_db - 20 * math.log10(peak)


def limit_peak(mix: torch.Tensor, ceiling_db: float = CEILING_DB):
    """``(mix, gain_db)``: ``mix`` scaled down so that its peak is at most ``ceiling_db`` dBFS (gain 0 dB if it was)."""
    gain_db = _limit_gain_db(mix, ceiling_db)
    if not gain_db:
        return mix, 0.0
    return mix * 10 ** (gain_db / 20), gain_db


_WORK = 1 << 20
"""Samples times tracks per block of the consoles (see :func:`_work_block`; 8 tracks: 3.0 s at 44.1 kHz)."""

_NET_WORK = 1 << 15
"""Input samples per sub-block of the Mix-Wave-U-Net (0.74 s at 44.1 kHz, about 50 MB for the bundled network:
its first level alone holds ``channels`` signals of that length, the skips and concatenations several more;
its context, 2 x 2,432 samples, adds 15 % to the work)."""


def _work_block(n: int, sr: int, budget: int = _WORK) -> int:
    """Samples per block for ``n`` tracks within ``budget`` samples times tracks (at least a second)."""
    return max(int(sr), budget // max(n, 1))


def _unet_context(model) -> int:
    """Input samples on each side of an output sample that a Mix-Wave-U-Net's output depends on (an upper bound).

    Down level ``i`` (rate ``2^-i``) convolves over ``k_down // 2`` of its samples on each side, the bottleneck
    likewise at the lowest rate, and each up level interpolates from samples less than one step of the level
    below away and convolves over ``k_up // 2``: the sum in input samples, plus one grid step (``2^depth``) to
    spare. The bundled network (depth 7): 2,421 samples (55 ms); its output measurably reaches about 2,250.
    """
    depth = int(model.depth)
    down, up = model.down[0].kernel_size[0] // 2, model.up[0].kernel_size[0] // 2
    bottleneck = model.bottleneck.kernel_size[0] // 2
    reach = sum(down * 2 ** i + 2 ** (i + 1) + up * 2 ** i for i in range(depth)) + bottleneck * 2 ** depth
    return reach + 2 ** depth


def _is_unet(model) -> bool:
    from .models.wave_u_net import MixWaveUNet

    return isinstance(model, MixWaveUNet) and len(model.down) > 0


@torch.no_grad()
def mix_stems(model, tracks: torch.Tensor, block_seconds: float = 30.0, overlap_seconds: float = 1.0,
              analysis_seconds: float = 30.0, analysis_windows: int = 6, whole_song_seconds: Optional[float] = None,
              long_block_seconds: Optional[float] = None, warmup_seconds: Optional[float] = None,
              ceiling_db: float = CEILING_DB, sample_rate: Optional[int] = None,
              log: Optional[Callable[[str], None]] = None):
    """Mix a whole song ``tracks (N, T)`` (at the model's sample rate) -> ``(mix (2, T), params)``.

    ``model``: any :class:`automix_lite.mixer.Mixer`; it is used through that protocol only (``has_params``,
    ``estimate``, ``render``, ``sample_rate``, ``max_tracks``, ``segment_seconds``). The DMC and the
    Mix-Wave-U-Net (recognised by class) are rendered block by block as described below; another mixer with
    parameters renders the whole song in one ``render`` call (its console may have memory), one without
    parameters in crossfaded blocks like the Mix-Wave-U-Net's (``render(x, None, mask)``).

    Apart from ``tracks`` and the mix, memory does not grow with the song: everything is rendered in blocks
    of seconds (8 tracks: 3 s for the basic console, 1.5 s for the full one, 0.74 s through the Mix-Wave-U-Net),
    and the results equal rendering
    the whole song at once to float32 rounding. DMC: the parameters are estimated once (:func:`estimate_params`)
    and rendered

    - basic console (gain, pan): in blocks of ``block_seconds`` (or shorter); the console has no memory, so
      the blocks join exactly;
    - full DSP console (EQ, compressor and reverb have memory): with
      :func:`automix_lite.dsp.console.mix_blocks`, which carries the reverb's tail (overlap-add) and the
      compressor's gain reduction from block to block and starts each block's EQ ``warmup_seconds``
      earlier (default: from the EQ's slowest pole, about 0.5 s for the bundled model);
    - neural-proxy console: in blocks with the proxy's receptive field as context on both sides (exact);

    each in blocks of ``long_block_seconds`` (default: the memory budget above), or in one go for songs of at
    most ``whole_song_seconds`` (default: only songs that fit in one block).

    Mix-Wave-U-Net: blocks of ``block_seconds`` rendered with ``overlap_seconds`` of context on both sides
    (each block's input starts on a multiple of ``2 ** depth`` samples, the grid its decimation keeps),
    joined by linear crossfades of ``overlap_seconds``. Each block runs through the network in sub-blocks of
    ``_NET_WORK`` samples with its receptive field as context (:func:`_unet_context`), which gives the block's
    output exactly. ``params`` is then ``{}`` (no parameters).

    Silent tracks (RMS below :data:`SILENCE_DB`) are masked. If the mix peaks above ``ceiling_db`` it is
    scaled down; ``params["_output_gain_db"]`` holds the gain applied (0.0 if none) and ``log`` (e.g.
    ``print``) is told. DMC ``params`` are real-unit tensors for batch 1 (``(1, N)``, ``(1, N, P)``,
    ``(1,)``), as ``model.estimate`` returns them.
    """
    from .mixer import check_mixer, device_of

    model = check_mixer(model)
    tracks = _check_song(model, tracks)
    sr = int(sample_rate or model.sample_rate)
    n, t = tracks.shape
    mask = _active(tracks)
    if not bool(mask.any()):
        raise ValueError(f"every stem is silent (RMS below {SILENCE_DB:g} dBFS); there is nothing to mix.")
    if not mask.all() and log is not None:
        log(f"{int((~mask).sum())} silent stem(s) (RMS below {SILENCE_DB:g} dBFS) are left out of the mix.")
    if isinstance(model, torch.nn.Module):
        model.eval()
    dev = device_of(model)
    x, m = tracks.unsqueeze(0).to(dev), mask.unsqueeze(0).to(dev)
    block = max(1, int(round(block_seconds * sr)))
    overlap = max(0, int(round(overlap_seconds * sr)))
    if model.has_params and not _is_dmc(model):
        params = dict(estimate_params(model, tracks, mask, sr, analysis_seconds, analysis_windows))
        mix = model.render(x, params, m)[0]
    elif model.has_params:
        params = estimate_params(model, tracks, mask, sr, analysis_seconds, analysis_windows)

        def render(a, b):
            return model.render(x[..., a:b], params, m)[0]

        from .dsp.console import mix_blocks
        from .models.dmc import DSPConsole

        long_block = None if long_block_seconds is None else max(1, int(round(long_block_seconds * sr)))
        if model.console_kind == "basic":  # no memory: any blocks join exactly
            mix = _blockwise(render, t, min(block, _work_block(n, sr)), 0, 0)
        elif whole_song_seconds is not None and t <= whole_song_seconds * sr:
            mix = render(0, t)
        elif isinstance(model.console, DSPConsole):
            warmup = None if warmup_seconds is None else int(round(warmup_seconds * sr))
            public = {k: v for k, v in params.items() if not k.startswith("_")}
            mix = mix_blocks(x, model.console.sample_rate, public, m, pan_law=model.console.pan_law,
                             block=long_block, warmup=warmup)[0]
        else:  # the neural proxy: a non-causal TCN of finite receptive field, so context on both sides is exact
            rf = int(model.console.proxy.receptive_field)
            mix = _blockwise(render, t, long_block or max(4 * rf, (_WORK // 4) // n), rf, 0)
    else:
        params = {}
        unet = _is_unet(model)
        step = 2 ** model.depth if unet else 1
        if unet:
            context = _unet_context(model)
            context += (-context) % step  # whole grid steps, so every sub-block starts on the grid
            sub = max(_NET_WORK - _NET_WORK % step, 4 * context)

            def run(a0, b):  # the mix of x[..., a0:b] for a0 on the grid, in sub-blocks that see the same samples
                def piece(c, d):  # c is on the grid: sub and context are multiples of step
                    return model.render(x[..., a0 + c:a0 + d], None, m)[0]

                return _blockwise(piece, b - a0, sub, context, 0)
        else:
            def run(a0, b):
                return model.render(x[..., a0:b], None, m)[0]

        def render_direct(a, b):  # start on the network's decimation grid, as a one-shot run does
            a0 = a - a % step
            return run(a0, b)[..., a - a0:]

        mix = _blockwise(render_direct, t, block, overlap, overlap)
    mix = mix.float().cpu()
    gain_db = _limit_gain_db(mix, ceiling_db)
    if gain_db:  # in place (a scaled copy would double the mix), unless a model handed back its input
        shared = mix.untyped_storage().data_ptr() == tracks.untyped_storage().data_ptr()
        mix = mix * 10 ** (gain_db / 20) if shared else mix.mul_(10 ** (gain_db / 20))
    params["_output_gain_db"] = gain_db
    if gain_db and log is not None:
        log(f"the mix peaked above {ceiling_db:g} dBFS; scaled it by {gain_db:+.2f} dB so that it does not clip.")
    return mix, params


# --------------------------------------------------------------------------------------------
# Reading, editing and rendering parameters
# --------------------------------------------------------------------------------------------


def _public(params: dict) -> dict:
    return {k: v for k, v in params.items() if not k.startswith("_") and k != "chain"}


def _item(v) -> torch.Tensor:
    """Drop the batch dimension of batch-1 tensors: track (1, N) -> (N,), peaks (1, N, P) -> (N, P), bus (1,) -> ()."""
    v = torch.as_tensor(v).detach().cpu()
    return v[0] if v.ndim >= 1 and v.shape[0] == 1 else v


_CONSOLES = ("basic", "full", "proxy")


def _console_names(kind: str) -> tuple:
    """(track-level names, bus-level names) of console ``kind``."""
    from .dsp.console import BUS_NAMES, SPEC_BY_NAME

    if kind == "basic":
        return _BASIC, ()
    if kind == "full":
        return tuple(k for k, v in SPEC_BY_NAME.items() if v.level != "bus"), BUS_NAMES
    from .models import proxy

    return _BASIC + tuple(proxy.NAMES), ()


def console_kind(params: dict) -> str:
    """``"basic"`` (only gain and pan), ``"full"`` (the DSP console's names) or ``"proxy"`` (the neural proxy's).

    A dict from :func:`params_from_json` carries its file's explicit ``"console"`` tag (``params["_console"]``):
    that tag decides, and a name the tagged console does not have is refused (a basic file with a reverb key is
    not silently rendered by the full console). Without a tag (a model's output) the names decide."""
    keys = set(_public(params))
    tag = params.get("_console")
    if tag is not None:
        track, bus = _console_names(tag)
        extra = sorted(keys - set(track) - set(bus))
        if extra:
            hint = (' To render it through the full DSP console (every parameter not given at its neutral value) set '
                    '"console": "full".' if tag == "basic" else "")
            raise ValueError(f"{extra} {'is not a parameter' if len(extra) == 1 else 'are not parameters'} of the "
                             f"{tag} console (it has {', '.join(track + bus)}).{hint}")
        return tag
    for kind in _CONSOLES:
        track, bus = _console_names(kind)
        if keys <= set(track) | set(bus):
            return kind
    raise ValueError(f"unknown parameter name(s) {sorted(keys - set().union(*_console_names('full')))}; the console's "
                     "names are those of automix_lite.dsp.console.SPECS.")


def _split(params: dict, n: Optional[int] = None):
    """Track-level ``{name: (N,) or (N, P)}`` and bus-level ``{name: float}`` values of batch item 0."""
    track, bus = {}, {}
    for k, v in _public(params).items():
        v = _item(v)
        if v.ndim == 0:
            bus[k] = float(v)
        else:
            track[k] = v
    sizes = {v.shape[0] for v in track.values()}
    if len(sizes) > 1 or (n is not None and sizes and sizes != {n}):
        raise ValueError(f"the track parameters disagree on the number of tracks ({sorted(sizes)}"
                         f"{'' if n is None else f', names give {n}'}).")
    return track, bus


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1000 else f"{v:.2f}"


def params_table(params: dict, names: Sequence[str]) -> str:
    """A text table of (batch item 0 of) ``params``: one row per track, one column per parameter in real units
    (peaking bands as ``name[k]``), then the bus parameters on one line. The names are the JSON keys to edit."""
    from .dsp.console import SPEC_BY_NAME

    names = list(names)
    track, bus = _split(params, len(names))
    columns = []
    for k, v in track.items():
        if v.ndim == 2:
            columns += [(f"{k}[{b}]", v[:, b]) for b in range(v.shape[1])]
        else:
            columns.append((k, v))
    header = ["track"] + [c for c, _ in columns]
    rows = [[name] + [_fmt(float(v[i])) for _, v in columns] for i, name in enumerate(names)]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    units = sorted({f"{k.split('[')[0]} {SPEC_BY_NAME[k.split('[')[0]].unit}" for k, _ in columns
                    if k.split("[")[0] in SPEC_BY_NAME and SPEC_BY_NAME[k.split("[")[0]].unit})
    if units:
        out.append("units: " + ", ".join(units) + ("; pan 0 = left, 0.5 = centre, 1 = right" if "pan" in track else ""))
    if bus:
        out.append("bus: " + ", ".join(f"{k} {_fmt(v)}" for k, v in bus.items()))
    return "\n".join(out)


def params_to_json(params: dict, names: Sequence[str], sample_rate: int = 44100, model: Optional[str] = None,
                   pad: bool = False) -> dict:
    """Parameters (batch item 0) -> a JSON-ready dict a person can edit and :func:`render_params` can render.

    ``{"format", "console", "sample_rate", "pad", "model", "n_peaks" (full console), "tracks": [{"name",
    <param>: value, ...}], "bus": {<param>: value}}``, the per-track/bus layout of
    ``data.engineer.params_to_json``, values rounded to 6 decimals, peaking bands as lists. ``pad``: the stems
    were zero-padded to equal length (``--pad``), so ``automix render`` pads them too and gives the same mix.
    """
    names = list(names)
    kind = console_kind(params)
    track, bus = _split(params, len(names))
    rows = []
    for i, name in enumerate(names):
        row = {"name": name}
        for k, v in track.items():
            row[k] = [round(float(a), 6) for a in v[i]] if v.ndim == 2 else round(float(v[i]), 6)
        rows.append(row)
    out = {"format": PARAMS_FORMAT, "console": kind, "sample_rate": int(sample_rate), "pad": bool(pad)}
    if model is not None:
        out["model"] = str(model)
    if "peak_gain_db" in track:
        out["n_peaks"] = int(track["peak_gain_db"].shape[-1])
    out["tracks"] = rows
    out["bus"] = {k: round(v, 6) for k, v in bus.items()}
    return out


_TOP_KEYS = ("format", "console", "sample_rate", "pad", "model", "n_peaks", "tracks", "bus", "comment")


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def params_from_json(obj) -> tuple:
    """Inverse of :func:`params_to_json`: ``(params, names)``, params as batch-1 tensors (track ``(1, N)``,
    peaks ``(1, N, P)``, bus ``(1,)``). ``obj``: the dict, or the path of a JSON file. Missing parameters stay
    missing (:func:`render_params` fills them with neutral values).

    The file must say which console renders it (``"console"``: ``"basic"``, ``"full"`` or ``"proxy"``); a name
    that console lacks is refused. Every value is checked (``ValueError`` naming it): numbers (not booleans) for
    track and bus values, lists of numbers for peaking bands, an object for ``"bus"``, a whole ``sample_rate``
    in [8000, 384000] Hz, a boolean ``pad``, ``format`` :data:`PARAMS_FORMAT`. ``params`` also holds
    ``"_console"``, ``"_sample_rate"`` (default 44100) and ``"_pad"`` (default false)."""
    from .dsp.console import SPEC_BY_NAME

    where = ""
    if isinstance(obj, (str, os.PathLike)):
        where = f"{os.fspath(obj)}: "
        obj = read_json(obj, "write one with `automix mix ... --params-out PARAMS.json`")
    if not isinstance(obj, dict) or not isinstance(obj.get("tracks"), list) or not obj["tracks"]:
        raise ValueError(f'{where}mix parameters must be a JSON object with a non-empty "tracks" list, as written by '
                         "`automix mix --params-out`.")

    def bad(message):
        return ValueError(where + message)

    unknown = sorted(set(obj) - set(_TOP_KEYS))
    if unknown:
        raise bad(f"unknown key(s) {unknown}; a parameters file has {', '.join(_TOP_KEYS)}.")
    if obj.get("format", PARAMS_FORMAT) != PARAMS_FORMAT:
        raise bad(f"format {obj['format']!r} is not {PARAMS_FORMAT!r}; write the file with `automix mix --params-out`.")
    kind = obj.get("console")
    if kind not in _CONSOLES:
        raise bad(f'"console" must say which console renders the file: "basic" (gain and pan), "full" (the DSP '
                  f'console) or "proxy"; got {kind!r}.')
    sr = obj.get("sample_rate", 44100)
    if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 384000:
        raise bad(f'"sample_rate" must be a whole number of Hz in [8000, 384000] (the model\'s rate, e.g. 44100); '
                  f"got {sr!r}.")
    pad = obj.get("pad", False)
    if not isinstance(pad, bool):
        raise bad(f'"pad" must be true or false; got {pad!r}.')
    rows = obj["tracks"]
    if not all(isinstance(r, dict) for r in rows):
        raise bad('every entry of "tracks" must be an object of parameter name -> value.')
    names = [r.get("name", r.get("file", f"track {i}")) for i, r in enumerate(rows)]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise bad(f'every track needs its own "name" (the stem\'s file name without its ending); got {names}.')
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("name", "file", "role")))
    params = {}
    for k in keys:
        missing = [n for n, r in zip(names, rows) if k not in r]
        if missing:
            raise bad(f"parameter {k!r} is missing for track(s) {', '.join(missing)}.")
        values = [r[k] for r in rows]
        if k in SPEC_BY_NAME and SPEC_BY_NAME[k].level == "peak":
            if not all(isinstance(v, list) and v and all(_number(a) for a in v) for v in values) or \
                    len({len(v) for v in values}) != 1:
                raise bad(f"parameter {k!r} must be a list of finite numbers (one per peaking band, as many on "
                          f"every track) on every track; got {values}.")
        elif not all(_number(v) for v in values):
            raise bad(f"parameter {k!r} must be a finite number on every track; got {values}.")
        params[k] = torch.tensor([values], dtype=torch.float32)
    bus = obj.get("bus", {})
    if not isinstance(bus, dict):
        raise bad(f'"bus" must be an object of parameter name -> number (e.g. {{"reverb_return_db": -12}}); got {bus!r}.')
    for k, v in bus.items():
        if not _number(v):
            raise bad(f"bus parameter {k!r} must be a finite number; got {v!r}.")
        params[k] = torch.tensor([float(v)], dtype=torch.float32)
    params.update(_console=kind, _sample_rate=sr, _pad=pad)
    try:
        console_kind(params)  # names the tagged console lacks -> a clear error
    except ValueError as err:
        raise bad(str(err)) from None
    return params, names


_PROXY_CONSOLES: dict = {}


def render_params(tracks: torch.Tensor, params: dict, sample_rate: int = 44100,
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Render ``tracks (N, T)`` with (edited) parameters -> mix ``(2, T)`` (no peak limiting: see :func:`limit_peak`).

    - only ``gain_db`` and ``pan``: the basic console of the DMC (gain -> -4.5 dB pan law), exactly as
      ``automix mix`` rendered them (the rest of the console is bypassed, not approximated);
    - any other names of :data:`automix_lite.dsp.console.SPECS`: :func:`automix_lite.dsp.mix`, every parameter
      not given at its neutral :func:`automix_lite.dsp.default_params` value;
    - the neural proxy's names: the proxy console with the bundled proxy.

    The console is the one ``params["_console"]`` names (the file's tag, :func:`params_from_json`), else the one
    the names imply (:func:`console_kind`). ``mask (N,)`` marks the tracks to use (default: those not silent).
    Values out of range, and stems that are all silent (nothing to render), raise a ``ValueError``.
    """
    from .dsp.console import ALL_NAMES, SPEC_BY_NAME, default_params, mix_blocks

    if not isinstance(tracks, torch.Tensor) or tracks.ndim != 2:
        raise ValueError("tracks must be a (tracks, samples) tensor of mono stems, as read_stems returns.")
    tracks = tracks.float()
    n, _ = tracks.shape
    mask = active_mask(tracks) if mask is None else mask.to(torch.bool).reshape(n)
    if not bool(mask.any()):
        raise ValueError(f"every stem is silent (RMS below {SILENCE_DB:g} dBFS); there is nothing to render.")
    kind = console_kind(params)
    given = {k: torch.as_tensor(v, dtype=torch.float32).detach().cpu() for k, v in _public(params).items()}
    for k, v in given.items():
        is_bus = k in SPEC_BY_NAME and SPEC_BY_NAME[k].level == "bus"
        if is_bus and tuple(v.shape) not in ((), (1,)):
            raise ValueError(f"bus parameter {k} must be one number; got shape {tuple(v.shape)}.")
        if not is_bus and (v.ndim < 2 or v.shape[0] != 1 or v.shape[1] != n):
            raise ValueError(f"{k} must hold one value per track for the {n} stems (shape (1, {n})); "
                             f"got shape {tuple(v.shape)}.")
    x, m = tracks.unsqueeze(0), mask.unsqueeze(0)
    if kind == "basic":
        from .models.dmc import BasicConsole

        full = {"gain_db": torch.zeros(1, n), "pan": torch.full((1, n), 0.5)}
        full.update(given)
        for k, v in full.items():
            spec = SPEC_BY_NAME[k]
            if bool(((v < spec.low) | (v > spec.high) | ~torch.isfinite(v)).any()):
                raise ValueError(f"{k} must lie in [{spec.low:g}, {spec.high:g}] {spec.unit}; "
                                 f"got {v.flatten().tolist()}.")
        return BasicConsole(sample_rate)(x, full, m)[0]
    if kind == "full":
        n_peaks = given["peak_gain_db"].shape[-1] if "peak_gain_db" in given else 3
        full = default_params(1, n, n_peaks=n_peaks)
        full.update(given)
        with torch.no_grad():  # block by block, as automix mix renders a full DMC: memory does not grow with length
            return mix_blocks(x, sample_rate, {k: full[k] for k in ALL_NAMES}, mask=m)[0]
    from .models import proxy
    from .models.dmc import ProxyConsole

    key = int(sample_rate)
    if key not in _PROXY_CONSOLES:
        _PROXY_CONSOLES[key] = ProxyConsole(sample_rate)
    console = _PROXY_CONSOLES[key]
    defaults = proxy.denormalize(proxy.bypass(torch.zeros(1, len(proxy.NAMES))))[0]
    cols = [given[name][0] if name in given else defaults[i].expand(n) for i, name in enumerate(proxy.NAMES)]
    real = proxy.normalize(torch.stack(cols, -1))
    full = {"gain_db": given.get("gain_db", torch.zeros(1, n)), "pan": given.get("pan", torch.full((1, n), 0.5)),
            "chain": real.unsqueeze(0)}
    with torch.no_grad():
        return console(x, full, m)[0]
