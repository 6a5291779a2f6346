"""Mixing whole songs with a trained model (taught in ``notebooks/14_inference.ipynb``; ``automix mix``).

- :func:`read_stems`: a folder of mono stems -> ``(tracks (N, T), names)`` at the model's rate, with
  clear errors for everything a real folder can hold (no audio, unreadable files, NaN samples, too many
  tracks, different lengths).
- :func:`mix_stems`: ``(mix (2, T), params)`` for a whole song. A DMC estimates its parameters **once**
  for the song (on up to ``analysis_seconds`` of audio spread over it), so they are the same in every
  block, then renders block by block. The Mix-Wave-U-Net has no parameters: it runs on overlapping blocks
  joined by linear crossfades. Silent stems (RMS below ``SILENCE_DB``) are masked. The mix never clips:
  above ``ceiling_db`` it is scaled down, and the gain is reported.
- :func:`render_params`: render the predicted parameters after editing them (``automix render``); the
  parameter files themselves are read and written by :mod:`automix_lite.parameters` (``read``, ``write``,
  ``table``).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Optional, Sequence

import torch

from .parameters import MixParams, as_params

__all__ = ["AUDIO_EXTENSIONS", "SILENCE_DB", "CEILING_DB", "stem_files", "read_stems", "active_mask",
           "estimate_params", "analysis_windows", "mix_stems", "crossfade_weights", "limit_peak", "render_params",
           "LONG_SONGS_FILE", "read_long_songs"]

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".w64",
                    ".caf", ".au", ".snd", ".rf64")
"""File endings read as stems; other files in a stems folder are ignored with a warning."""

SILENCE_DB = -60.0
"""Stems whose RMS is below this level (dBFS) are masked out of the mix."""

CEILING_DB = -1.0
"""Mixes peaking above this level (dBFS) are scaled down to it."""



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


def analysis_windows(model, n_samples: int, sample_rate: Optional[int] = None, analysis_seconds: float = 30.0,
                     windows: int = 6) -> tuple:
    """The windows :func:`estimate_params` analyses a song of ``n_samples`` in: ``(length, starts)`` in samples
    (taught in chapter 3.4, ``notebooks/14_inference.ipynb``). A model trained on segments of ``segment_seconds``
    gets ``ceil(min(T, analysis_seconds) / segment) + 1`` windows of one segment, spread evenly from the start
    to the end of the song; one without a segment length gets the whole song, or (a DMC longer than
    ``analysis_seconds``) ``windows`` windows of ``analysis_seconds / windows``. A song no longer than one
    window is one window at 0. (``estimate_params`` adds a window for a track that none of these hears.)"""
    sr = int(sample_rate or model.sample_rate)
    t = int(n_samples)
    segment = getattr(model, "segment_seconds", None)
    if segment:
        length = int(segment * sr)
        count = math.ceil(min(t, analysis_seconds * sr) / length) + 1
    elif not _is_dmc(model):  # the protocol's None: the whole input at once
        length, count = t, 1
    else:
        length, count = max(int(analysis_seconds * sr / max(windows, 1)), sr), windows
        if t <= analysis_seconds * sr:
            length = t
    if t <= length:
        return length, [0]
    return length, _windows(t, length, count)


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
    one in ``windows`` windows of ``analysis_seconds / windows`` seconds. The network's normalised outputs
    (``MixParams.controls``) are averaged, each track over the windows where it is not silent (a track
    silent in all of them gets an extra window at its loudest part), and converted with
    ``model.console.to_params``. ``mask (N,)`` marks the tracks to use (default: not silent).

    Other mixers: ``segment_seconds=None`` means the whole song in one ``estimate``; with a segment length
    the same windows are analysed and each real-unit parameter is averaged (a track's over the windows where
    it is not silent, a bus parameter over all). Returns a :class:`~automix_lite.parameters.MixParams`.
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
    length, starts = analysis_windows(model, t, sr, analysis_seconds, windows)
    if t <= length:
        return as_params(model.estimate(tracks.unsqueeze(0).to(dev), mask.unsqueeze(0).to(dev)))
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
        tr, bu = out.controls[0][0].cpu(), out.controls[1][0].cpu()
        track_sum = tr * w if track_sum is None else track_sum + tr * w
        bus_sum = bu if bus_sum is None else bus_sum + bu
        weight, used = weight + w, used + 1
    track = (track_sum / weight.clamp_min(1.0)).unsqueeze(0).to(dev)
    bus = (bus_sum / used).unsqueeze(0).to(dev)
    return MixParams(model.console.to_params(track, bus), model.console.kind, controls=(track, bus))


def _window_estimates(model, tracks: torch.Tensor, mask: torch.Tensor, starts, length: int, dev):
    """The windows :func:`estimate_params` averages over, for every mixer: yields ``(m, estimate)`` for each window
    ``tracks[:, s:s + length]`` (``s`` in ``starts``) in which a track of ``mask`` is not silent, ``m (N,)`` those
    tracks and ``estimate`` the model's for them (batch 1). Windows in which they are all silent are skipped."""
    for s in starts:
        seg = tracks[:, s:s + length]
        m = active_mask(seg) & mask
        if bool(m.any()):
            yield m, model.estimate(seg.unsqueeze(0).to(dev), m.unsqueeze(0).to(dev))


def _average_estimates(model, tracks: torch.Tensor, mask: torch.Tensor, starts, length: int, dev) -> MixParams:
    """A generic mixer's estimates over windows, averaged: track-level values ``(1, N, ...)`` over the windows
    where the track is not silent, the others over every window used."""
    n = tracks.shape[0]
    sums, weights, kind = {}, {}, None
    for m, out in _window_estimates(model, tracks, mask, starts, length, dev):
        out = as_params(out)  # a mixer of one's own may return a dict of the console's names
        kind = out.console
        for k, v in out.items():
            v = v.detach().double().cpu()
            if v.ndim >= 2 and v.shape[1] == n:
                w = m.to(torch.float64).view(1, n, *([1] * (v.ndim - 2)))
                sums[k], weights[k] = sums.get(k, 0) + v * w, weights.get(k, 0) + w
            else:
                sums[k], weights[k] = sums.get(k, 0) + v, weights.get(k, 0) + 1.0
    avg = {}
    for k, v in sums.items():
        w = weights[k]
        avg[k] = (v / (w.clamp_min(1.0) if isinstance(w, torch.Tensor) else w)).float().to(dev)
    return MixParams(avg, kind)


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
    output exactly. ``params`` is then an empty :class:`~automix_lite.parameters.MixParams` (no parameters).

    Silent tracks (RMS below :data:`SILENCE_DB`) are masked. If the mix peaks above ``ceiling_db`` it is
    scaled down; ``params.output_gain_db`` holds the gain applied (0.0 if none) and ``log`` (e.g.
    ``print``) is told. ``params`` is the :class:`~automix_lite.parameters.MixParams` of ``model.estimate`` for
    batch 1 (``(1, N)``, ``(1, N, P)``, ``(1,)`` in real units).
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
        params = estimate_params(model, tracks, mask, sr, analysis_seconds, analysis_windows)
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
            mix = mix_blocks(x, model.console.sample_rate, params, m, pan_law=model.console.pan_law,
                             block=long_block, warmup=warmup)[0]
        else:  # the neural proxy: a non-causal TCN of finite receptive field, so context on both sides is exact
            rf = int(model.console.proxy.receptive_field)
            mix = _blockwise(render, t, long_block or max(4 * rf, (_WORK // 4) // n), rf, 0)
    else:
        params = MixParams({}, "basic")  # no parameters: only the output gain below
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
    params.output_gain_db = gain_db
    if gain_db and log is not None:
        log(f"the mix peaked above {ceiling_db:g} dBFS; scaled it by {gain_db:+.2f} dB so that it does not clip.")
    return mix, params


# --------------------------------------------------------------------------------------------
# Rendering (edited) parameters
# --------------------------------------------------------------------------------------------

_PROXY_CONSOLES: dict = {}


def render_params(tracks: torch.Tensor, params, sample_rate: int = 44100,
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Render ``tracks (N, T)`` with (edited) parameters -> mix ``(2, T)`` (no peak limiting: see :func:`limit_peak`).

    ``params``: a batch-1 :class:`~automix_lite.parameters.MixParams` (e.g. ``automix_lite.parameters.read(path).params``,
    or what a mixer estimated), or a dict of parameter names. Its ``console`` decides:

    - ``"basic"``: the basic console of the DMC (gain -> -4.5 dB pan law), exactly as ``automix mix`` rendered it
      (the rest of the console is bypassed, not approximated);
    - ``"full"``: :func:`automix_lite.dsp.mix`, every parameter not given at its neutral
      :func:`automix_lite.dsp.default_params` value, block by block (:func:`automix_lite.dsp.mix_blocks`);
    - ``"proxy"``: the proxy console with the bundled proxy, parameters not given at the proxy's bypass.

    ``mask (N,)`` marks the tracks to use (default: those not silent). Values out of range, and stems that are
    all silent (nothing to render), raise a ``ValueError``.
    """
    from .dsp.console import ALL_NAMES, default_params, mix_blocks

    if not isinstance(tracks, torch.Tensor) or tracks.ndim != 2:
        raise ValueError("tracks must be a (tracks, samples) tensor of mono stems, as read_stems returns.")
    params = as_params(params)
    tracks = tracks.float()
    n, _ = tracks.shape
    mask = active_mask(tracks) if mask is None else mask.to(torch.bool).reshape(n)
    if not bool(mask.any()):
        raise ValueError(f"every stem is silent (RMS below {SILENCE_DB:g} dBFS); there is nothing to render.")
    given = {k: v.detach().float().cpu() for k, v in params.items()}
    for k, v in given.items():
        if not params.spec(k).per_track and tuple(v.shape) not in ((), (1,)):
            raise ValueError(f"bus parameter {k} must be one number; got shape {tuple(v.shape)}.")
        if params.spec(k).per_track and (v.ndim < 2 or v.shape[0] != 1 or v.shape[1] != n):
            raise ValueError(f"{k} must hold one value per track for the {n} stems (shape (1, {n})); "
                             f"got shape {tuple(v.shape)}.")
        spec = params.spec(k)
        if params.console != "full" and bool(((v < spec.low) | (v > spec.high) | ~torch.isfinite(v)).any()):
            raise ValueError(f"{k} must lie in [{spec.low:g}, {spec.high:g}] {spec.unit}; got {v.flatten().tolist()}.")
    x, m = tracks.unsqueeze(0), mask.unsqueeze(0)
    if params.console == "basic":
        from .models.dmc import BasicConsole

        full = {"gain_db": torch.zeros(1, n), "pan": torch.full((1, n), 0.5), **given}
        return BasicConsole(sample_rate)(x, full, m)[0]
    if params.console == "full":
        n_peaks = given["peak_gain_db"].shape[-1] if "peak_gain_db" in given else 3
        full = default_params(1, n, n_peaks=n_peaks)
        full.update({k: v.reshape(full[k].shape) for k, v in given.items()})
        with torch.no_grad():  # block by block, as automix mix renders a full DMC: memory does not grow with length
            return mix_blocks(x, sample_rate, {k: full[k] for k in ALL_NAMES}, mask=m)[0]
    from .models.dmc import ProxyConsole

    key = int(sample_rate)
    if key not in _PROXY_CONSOLES:
        _PROXY_CONSOLES[key] = ProxyConsole(sample_rate)
    full = {"gain_db": torch.zeros(1, n), "pan": torch.full((1, n), 0.5), **given}
    with torch.no_grad():
        return _PROXY_CONSOLES[key](x, MixParams(full, "proxy"), m)[0]


LONG_SONGS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                               "LONG_SONGS.md")
_LONG_SONGS_COLUMNS = {"model": str, "tracks": int, "minutes": float, "mix time (s)": float,
                       "peak RSS (MiB)": float, "RSS before mixing (MiB)": float, "mixing adds (MiB)": float,
                       "input + output tensors (MiB)": float}


def read_long_songs(path: Optional[str] = None) -> Optional[list]:
    """The measured cases of ``benchmarks/long_songs.py`` (its ``## Results`` table in ``benchmarks/LONG_SONGS.md``):
    one dict per case with the table's columns ``model``, ``tracks``, ``minutes``, ``mix time (s)``, ``peak RSS
    (MiB)``, ``RSS before mixing (MiB)``, ``mixing adds (MiB)`` and ``input + output tensors (MiB)``; ``None`` where
    the file is absent (an installed wheel ships no benchmarks). Taught in ``notebooks/14_inference.ipynb``."""
    path = LONG_SONGS_FILE if path is None else path
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "\n## Results\n" not in text:
        raise ValueError(f"{path} has no '## Results' section: regenerate it with python benchmarks/long_songs.py")
    table = [line for line in text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0].splitlines()
             if line.startswith("|")]
    header = [h.strip() for h in table[0].strip("|").split("|")]
    missing = [c for c in _LONG_SONGS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: the results table lacks the columns {missing}")
    rows = []
    for line in table[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows.append({k: cast(cells[k].replace(",", "")) for k, cast in _LONG_SONGS_COLUMNS.items()})
    return rows
