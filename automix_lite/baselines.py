"""Baseline mixers (taught in ``notebooks/07_baselines.ipynb``).

Every baseline takes mono ``tracks`` ``(B, N, T)`` (with an optional bool ``mask`` ``(B, N)`` for padded
tracks) and returns ``(mix, params)``: the stereo mix ``(B, 2, T)`` and the console parameters
(:mod:`automix_lite.dsp.console`, real units) that :func:`automix_lite.dsp.mix` turns into exactly
that mix (for :func:`mono_mix`: up to the console's fixed 20 Hz high-pass), so baselines can be
judged on parameter error like any other mixer.

- :func:`mono_mix`: the equal-gain sum on both channels (Steinmetz 2020, sec. 5.1.2).
- :func:`random_mix`: a seeded gain in +-12 dB and a random pan per track (the thesis' naive baseline).
- :func:`knowledge_mix`: a rule-based engineer built from published mixing rules (loudness balance,
  panning by role and spectrum, masking-aware EQ, high-pass filters, loudness-range-driven
  compression, tempo-driven reverb).

The same three as :class:`automix_lite.mixer.Mixer` objects (``estimate`` -> params, ``render`` -> mix):
:class:`MonoMixer`, :class:`RandomMixer` (``seed``) and :class:`KnowledgeMixer` (``roles``, ``tempo``);
``mixer.render(x, mixer.estimate(x, m), m)`` equals the function's mix exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .audio import _measure
from .dsp.console import DEFAULT_PAN_LAW, SPEC_BY_NAME, _check_mask, _check_tracks, default_params, mix
from .dsp.panning import pan_gains
from .parameters import MixParams

__all__ = ["mono_mix", "random_mix", "knowledge_mix", "MonoMixer", "RandomMixer", "KnowledgeMixer", "CENTRE_ROLES",
           "LEAD_BOOST_DB", "TRACK_LUFS", "MASTER_LUFS", "PEAK_CEILING_DB", "TARGET_RANGE_DB", "FIXED_PANS",
           "tempo_to_t60", "SongAnalysis", "analyze_song", "RULES", "apply_rules", "rule_loudness_balance",
           "rule_panning", "rule_highpass", "rule_masking_eq", "rule_compression", "rule_reverb", "rule_master"]

CENTRE_ROLES = ("drums", "kick", "snare", "bass", "lead")
LEAD_BOOST_DB = 3.0  # the lead sits this much above the (equal-loudness) accompaniment
TRACK_LUFS = -26.0  # loudness every accompaniment track is balanced to, before the master gain
MASTER_LUFS = -16.0
PEAK_CEILING_DB = -1.0
TARGET_RANGE_DB = 6.0  # loudness range a track is compressed towards (see knowledge_mix)


def _neutral(tracks: torch.Tensor) -> dict:
    b, n, _ = tracks.shape
    return default_params(b, n, dtype=tracks.dtype, device=tracks.device)


def mono_mix(tracks: torch.Tensor, mask: Optional[torch.Tensor] = None, pan_law: str = DEFAULT_PAN_LAW):
    """The plain sum of the tracks on both channels: ``left = right = sum_k tracks[k]``.

    As console parameters: every pan centred and every fader at the pan law's centre attenuation
    undone (about +4.5 dB for the default -4.5 dB law), nothing else; the console then differs from the plain
    sum only by its 20 Hz high-pass. Returns ``(mix (B, 2, T), params)``.
    """
    tracks = _check_tracks(tracks)
    w = _check_mask(mask, tracks.shape[0], tracks.shape[1], tracks)
    centre = float(pan_gains(torch.tensor([0.5], dtype=torch.float64), pan_law)[0][0])
    params = _neutral(tracks)
    params["gain_db"].fill_(-20 * math.log10(centre))
    x = tracks if w is None else tracks * w.squeeze(-1)
    return x.sum(1, keepdim=True).expand(-1, 2, -1).contiguous(), params


def random_mix(tracks: torch.Tensor, sample_rate, mask: Optional[torch.Tensor] = None, seed: int = 0,
               gain_range_db: float = 12.0, pan_law: str = DEFAULT_PAN_LAW):
    """Each track at a random gain, uniform in ``[-gain_range_db, +gain_range_db]`` dB, and a random pan,
    uniform over [0, 1] (Steinmetz 2020, sec. 5.1.2). ``seed`` makes it reproducible.
    Returns ``(mix (B, 2, T), params)``; EQ, compressor and reverb stay neutral.
    """
    tracks = _check_tracks(tracks)
    b, n, _ = tracks.shape
    g = torch.Generator().manual_seed(int(seed))
    params = _neutral(tracks)
    params["gain_db"] = ((torch.rand(b, n, generator=g, dtype=torch.float64) * 2 - 1) * gain_range_db).to(tracks)
    params["pan"] = torch.rand(b, n, generator=g, dtype=torch.float64).to(tracks)
    return mix(tracks, sample_rate, params, mask, pan_law, reverb=False), params


# ------------------------------------------------------------------------------------------------
# The knowledge-based mixer: one shared analysis per song, then one function per rule (chapter 2.2)
# ------------------------------------------------------------------------------------------------


def _block_loudness(x: np.ndarray, sr: float) -> np.ndarray:
    """Loudness (dB, -0.691 + 10 log10 mean square; no K-weighting) of 400 ms blocks with 75 % overlap."""
    size, hop = int(0.4 * sr), int(0.1 * sr)
    if x.size < size:
        return np.array([-120.0])
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
    return -0.691 + 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def _spectrum(x: np.ndarray, sr: float, n_fft: int = 4096):
    """Average power spectrum (Welch, Hann) and its frequencies."""
    from scipy.signal import welch

    f, p = welch(x, sr, nperseg=min(n_fft, x.size), noverlap=None)
    return f, p + 1e-20


def _third_octave_db(f: np.ndarray, p: np.ndarray) -> tuple:
    centres = 1000.0 * 2.0 ** (np.arange(-17, 14) / 3)  # 20 Hz ... 16 kHz
    out = []
    for c in centres:
        sel = (f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))
        out.append(10 * np.log10(p[sel].sum() + 1e-20) if sel.any() else -200.0)
    return centres, np.array(out)


def _tempo(x: np.ndarray, sr: float) -> float:
    import librosa

    bpm = librosa.feature.tempo(y=x.astype(np.float32), sr=int(sr), aggregate=np.median)
    return float(bpm[0]) if np.isfinite(bpm[0]) and bpm[0] > 0 else 120.0


def tempo_to_t60(tempo: float) -> float:
    """Reverb time from tempo: a linear map, 2.4 s at 60 bpm falling by 0.01 s per bpm, clipped to
    [0.6, 2.4] s (slow songs leave room for long tails; fast ones would blur)."""
    return float(np.clip(2.4 - 0.01 * (tempo - 60.0), 0.6, 2.4))


@dataclass
class SongAnalysis:
    """What the knowledge mixer measures once per song, shared by its rules (:func:`analyze_song` makes it).

    ``tracks`` ``(N, T)`` float64 and ``sample_rate`` (Hz); ``roles``, one name per track (``""`` for every
    track when ``has_roles`` is false); ``active``, the indices of the tracks the rules touch (present, RMS
    above 1e-5 and of finite loudness), in track order; for each active track ``k``: ``lufs[k]`` (integrated
    loudness, BS.1770), ``spectra[k]`` (Welch power spectrum ``(freqs_hz, power)``) and ``centroid[k]``
    (spectral centroid, Hz); ``lead``, the index of the active ``"lead"`` track or None; ``low``, the active
    tracks kept out of the high-pass and the reverb (bass, kick; without roles any track whose centroid is
    below 250 Hz); ``centred``, the active tracks panned to the centre (:data:`CENTRE_ROLES` and ``low``);
    ``tempo`` (bpm), given or estimated.
    """

    tracks: np.ndarray
    sample_rate: float
    roles: list
    has_roles: bool
    active: list
    lufs: dict
    spectra: dict
    centroid: dict
    lead: Optional[int]
    low: set
    centred: set
    tempo: float


def analyze_song(tracks, sample_rate, roles: Optional[Sequence[str]] = None, tempo: Optional[float] = None,
                 present=None) -> SongAnalysis:
    """Measure one song's tracks ``(N, T)`` (tensor or array) for the rules; returns a :class:`SongAnalysis`.

    ``roles``: one name per track, or None (the rules then work from the audio alone); ``tempo`` (bpm):
    estimated from the sum of the active tracks (librosa, 120 bpm if that fails) when None; ``present``:
    a bool per track (False for padding), default all. Taught in ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    if isinstance(tracks, torch.Tensor):
        x = tracks.detach().cpu().double().numpy()
    else:
        x = np.asarray(tracks, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"analyze_song takes one song's tracks (N, T); got shape {tuple(x.shape)}.")
    sr = float(sample_rate)
    n = x.shape[0]
    if roles is not None and len(roles) != n:
        raise ValueError(f"roles names {len(roles)} tracks but tracks has {n}; give one role per track.")
    present = np.ones(n, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    role = list(roles) if roles is not None else [""] * n
    active = [k for k in range(n) if present[k] and np.sqrt(np.mean(x[k] ** 2)) > 1e-5]
    lufs = {k: float(v) for k, v in zip(active, _measure(torch.from_numpy(x[active]).unsqueeze(1), sr)[0])} if active else {}
    active = [k for k in active if math.isfinite(lufs[k])]
    spectra = {k: _spectrum(x[k], sr) for k in active}
    centroid = {k: float((f * q).sum() / q.sum()) for k, (f, q) in spectra.items()}
    lead = role.index("lead") if "lead" in role and role.index("lead") in active else None
    low = {k for k in active if role[k] in ("bass", "kick") or (roles is None and centroid[k] < 250)}
    centred = {k for k in active if role[k] in CENTRE_ROLES} | low
    if tempo is None:
        tempo = _tempo(x[active].sum(0), sr) if active else 120.0
    return SongAnalysis(x, sr, role, roles is not None, active, lufs, spectra, centroid, lead, low, centred, tempo)


def _set(p: dict, name: str, k, value: float) -> None:
    spec = SPEC_BY_NAME[name]
    p[name][k] = float(np.clip(value, spec.low, spec.high))


# Rules 1-6 fill one song's parameters ``p`` in place: the console's parameter dict without the batch axis
# (track params (N,), peaks (N, n_peaks), bus params 0-d), e.g. ``{k: v[0] for k, v in
# dsp.default_params(1, N).items()}``. Every value is clipped to the console's range (automix_lite.dsp.SPECS).
# They run in the order of RULES (apply_rules); rule 7 works on the rendered mix.


def rule_loudness_balance(song: SongAnalysis, p: dict, lead_boost_db: float = LEAD_BOOST_DB) -> None:
    """Rule 1, loudness balance: every active track to the same integrated loudness, the lead louder.

    Measures each track's integrated loudness ``song.lufs[k]`` (BS.1770, LUFS); sets ``gain_db`` (dB) to
    ``TRACK_LUFS - lufs[k]`` (-26 LUFS), plus ``lead_boost_db`` (:data:`LEAD_BOOST_DB`, 3 dB) for the lead.
    Follows the equal-loudness balance of the knowledge-engineered mixing of De Man and Reiss (2013) and the
    reviews, with a lead above the accompaniment as in the level rule of Li's vocal-mixing baseline (which
    sets a vocal-to-mix ratio; the fixed 3 dB is this package's number). Taught in
    ``notebooks/07_baselines.ipynb`` (chapter 2.2). Runs first: rules 4 and 5 read the faders it sets.
    """
    for k in song.active:
        _set(p, "gain_db", k, TRACK_LUFS + (lead_boost_db if k == song.lead else 0.0) - song.lufs[k])


FIXED_PANS = {"overhead_l": 0.15, "overhead_r": 0.85, "hihat": 0.35, "tom_1": 0.38, "tom_2": 0.52, "tom_3": 0.66}
"""Pans of the drum microphones, as the drummer sees the kit (:func:`rule_panning`)."""


def rule_panning(song: SongAnalysis, p: dict) -> None:
    """Rule 2, panning by role and spectrum: low and lead sources central, the rest spread by brightness.

    Measures each track's spectral centroid ``song.centroid[k]`` (Hz); sets ``pan`` (0 left, 0.5 centre,
    1 right): 0.5 for :data:`CENTRE_ROLES` (drums, kick, snare, bass, lead) and, without roles, for tracks
    whose centroid is below 250 Hz; the drum microphones of :data:`FIXED_PANS` (overheads 0.15 / 0.85,
    hi-hat 0.35, toms 0.38, 0.52, 0.66); the other tracks, sorted by centroid, alternate left (first) and
    right at 0.2 to 0.45 from the centre, rising linearly with rank, so brighter tracks sit wider and low
    frequencies stay central. Follows the panning rules of knowledge-engineered mixing (De Man and Reiss
    2013) and the conventions in the reviews; the distances are this package's numbers. Taught in
    ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    role, centroid = song.roles, song.centroid
    free = sorted((k for k in song.active if k not in song.centred and role[k] not in FIXED_PANS),
                  key=lambda k: centroid[k])
    for k in song.active:
        _set(p, "pan", k, FIXED_PANS.get(role[k], 0.5))
    for i, k in enumerate(free):
        spread = 0.2 + 0.25 * (i / max(len(free) - 1, 1))
        _set(p, "pan", k, 0.5 + spread * (-1 if i % 2 == 0 else 1))


def rule_highpass(song: SongAnalysis, p: dict) -> None:
    """Rule 3, high-pass filters: cut what lies below a track's lowest 1 % of energy.

    Measures the frequency below which a track's Welch power spectrum holds 1 % of its energy; sets
    ``highpass_cutoff_hz`` (Hz) to it, clipped to 40-400 Hz, and to 20 Hz (the console's "off") for the
    ``song.low`` tracks (bass, kick; without roles any track with a centroid below 250 Hz). Follows the
    high-pass rule of knowledge-engineered mixing (De Man and Reiss 2013) and the reviews; the 1 % and the
    limits are this package's numbers. Taught in ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    for k in song.active:
        f, q = song.spectra[k]
        cum = np.cumsum(q) / q.sum()
        cutoff = float(f[np.searchsorted(cum, 0.01)])
        _set(p, "highpass_cutoff_hz", k, 20.0 if k in song.low else float(np.clip(cutoff, 40.0, 400.0)))


def rule_masking_eq(song: SongAnalysis, p: dict) -> None:
    """Rule 4, masking-aware EQ: cut the accompaniment where the lead is strongest.

    Measures the third-octave band levels (dB) of every track; finds the band between 300 Hz and 5 kHz where
    the lead is strongest and, for every other active track, how far that band (after its fader ``gain_db``,
    so after rule 1) comes within 6 dB of the lead's. Sets the first peaking band: ``peak_cutoff_hz`` (Hz) at
    that band's centre, ``peak_q`` 1.5 and ``peak_gain_db`` (dB) = -clip(track - (lead - 6 dB), 0, 6 dB).
    Without a lead (no roles, or the lead absent or silent) it sets nothing. Follows the masking-driven EQ
    of Li's vocal-mixing baseline and the masking reduction discussed in the reviews; the numbers are this
    package's. Taught in ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    lead = song.lead
    if lead is None:
        return
    centres, lead_db = _third_octave_db(*song.spectra[lead])
    band = np.flatnonzero((centres >= 300) & (centres <= 5000))
    best = band[np.argmax(lead_db[band])]
    lead_level = lead_db[best] + p["gain_db"][lead].item()
    for k in song.active:
        if k == lead:
            continue
        level = _third_octave_db(*song.spectra[k])[1][best] + p["gain_db"][k].item()
        cut = float(np.clip(level - (lead_level - 6.0), 0.0, 6.0))
        _set(p, "peak_cutoff_hz", (k, 0), centres[best])
        _set(p, "peak_q", (k, 0), 1.5)
        _set(p, "peak_gain_db", (k, 0), -cut)


def rule_compression(song: SongAnalysis, p: dict) -> None:
    """Rule 5, compression from the loudness range: the wider a track's range, the higher its ratio.

    Measures the loudness range: the 10th to 95th percentile of the track's 400 ms block loudness (75 %
    overlap, no K-weighting; blocks more than 40 dB below the loudest ignored; as
    :func:`automix_lite.audio.level_range_db` with ``frame_ms=400, hop_ms=100, percentiles=(10, 95),
    within_db=40``).
    Sets ``ratio`` = range / :data:`TARGET_RANGE_DB` (6 dB) clipped to [1, 6]; where that exceeds 1.05 also
    ``threshold_db`` 4 dB below the 95th percentile (after the fader of rule 1, with the 0.691 dB offset of
    the block loudness undone), ``attack_ms`` 30 for drums, kick, snare and the ``song.low`` tracks, 2 for the
    lead and 10 for the others, ``release_ms`` one sixteenth note at ``song.tempo`` (15000 / tempo ms)
    clipped to 50-300 and ``knee_db`` 6; tracks of a narrower range keep the console's neutral compressor.
    Follows the loudness-range-driven compression of Li's vocal-mixing baseline (whose figure is a 14 dB
    loudness range; 6 dB per track is this package's number). Taught in ``notebooks/07_baselines.ipynb``
    (chapter 2.2).
    """
    role, lead, low = song.roles, song.lead, song.low
    sixteenth_ms = 60000.0 / song.tempo / 4
    for k in song.active:
        blocks = _block_loudness(song.tracks[k], song.sample_rate)
        blocks = blocks[blocks > blocks.max() - 40]
        lo, hi = np.percentile(blocks, [10, 95])
        ratio = float(np.clip((hi - lo) / TARGET_RANGE_DB, 1.0, 6.0))
        if ratio > 1.05:
            _set(p, "ratio", k, ratio)
            _set(p, "threshold_db", k, hi - 4.0 + 0.691 + p["gain_db"][k].item())
            _set(p, "attack_ms", k, 30.0 if role[k] in ("drums", "kick", "snare") or k in low else 10.0 if k != lead else 2.0)
            _set(p, "release_ms", k, float(np.clip(sixteenth_ms, 50.0, 300.0)))
            _set(p, "knee_db", k, 6.0)


def rule_reverb(song: SongAnalysis, p: dict) -> None:
    """Rule 6, reverb from the tempo and sends by role.

    Measures nothing new: uses ``song.tempo`` (bpm, given or estimated). Sets the bus ``reverb_t60_s`` (s)
    by :func:`tempo_to_t60` (2.4 s at 60 bpm, 0.01 s less per bpm, within 0.6-2.4 s) and each active
    track's ``reverb_send_db`` (dB): -16 for the lead, -24 for drums, overheads and hi-hat, -80 (off) for
    bass, kick and the other ``song.low`` tracks, -20 for the rest (melodic tracks, snare, toms).
    Follows the linear tempo-to-reverb-time mapping of Li's vocal-mixing baseline; the numbers are this
    package's. Taught in ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    p["reverb_t60_s"].fill_(tempo_to_t60(song.tempo))
    for k in song.active:
        r = song.roles[k]
        send = -80.0 if (k in song.low or r in ("kick", "bass")) else -16.0 if k == song.lead else \
            -24.0 if r in ("drums", "overhead_l", "overhead_r", "hihat") else -20.0
        _set(p, "reverb_send_db", k, send)


def rule_master(mix: torch.Tensor, sample_rate) -> torch.Tensor:
    """Rule 7, master: the gain that brings each rendered mix to -16 LUFS without peaking above -1 dBFS.

    Measures the integrated loudness (BS.1770, LUFS) and the sample peak of each item of ``mix``
    ``(B, 2, T)``, the console's output with the master fader at 0 dB; returns ``master_gain_db`` ``(B,)`` (dB):
    ``MASTER_LUFS - loudness`` (-16 LUFS; 0 dB for a silent mix), lowered where needed so that the peak
    lands at :data:`PEAK_CEILING_DB` (-1 dBFS), clipped to the console's range. The last step of the rule set
    after De Man and Reiss (2013) and Li's baseline; its two numbers are common delivery levels chosen by
    this package, not taken from those sources. Taught in ``notebooks/07_baselines.ipynb`` (chapter 2.2).
    """
    loud, _ = _measure(mix, float(sample_rate))
    peak = mix.abs().amax(dim=(1, 2)).clamp_min(1e-12)
    master = torch.where(torch.isfinite(loud), MASTER_LUFS - loud, torch.zeros_like(loud))
    master = torch.minimum(master, PEAK_CEILING_DB - 20 * torch.log10(peak))
    spec = SPEC_BY_NAME["master_gain_db"]
    return master.clamp(spec.low, spec.high)


RULES = (rule_loudness_balance, rule_panning, rule_highpass, rule_masking_eq, rule_compression, rule_reverb,
         rule_master)
"""The knowledge mixer's rules in the order it applies them: rules 1-6 take ``(song, p)``, rule 7 the mix."""


def apply_rules(song: SongAnalysis, p: dict, lead_boost_db: float = LEAD_BOOST_DB) -> None:
    """Rules 1-6 of :data:`RULES`, in order, on one song's parameters ``p`` (filled in place)."""
    rule_loudness_balance(song, p, lead_boost_db)
    rule_panning(song, p)
    rule_highpass(song, p)
    rule_masking_eq(song, p)
    rule_compression(song, p)
    rule_reverb(song, p)


def knowledge_mix(tracks: torch.Tensor, sample_rate, roles: Optional[Sequence[str]] = None,
                  tempo: Optional[float] = None, mask: Optional[torch.Tensor] = None,
                  lead_boost_db: float = LEAD_BOOST_DB, pan_law: str = DEFAULT_PAN_LAW):
    """A rule-based mix of every batch item; returns ``(mix (B, 2, T), params)``.

    ``roles`` (one name per track, e.g. the bundled set's ``"bass"``, ``"lead"``, ``"overhead_l"``)
    unlock role rules; without them the mixer works from the audio alone. ``tempo`` (bpm) is
    estimated from the tracks when not given. Each song is measured once (:func:`analyze_song`), then the
    rules of :data:`RULES` run in order, after De Man and Reiss (2013), the conventions in the reviews and
    the baseline of Li's vocal-mixing proposal (reference 002); chapter 2.2 (``notebooks/07_baselines.ipynb``)
    teaches them one by one:

    1. :func:`rule_loudness_balance`: every track to the same integrated loudness, the lead
       ``lead_boost_db`` above the others.
    2. :func:`rule_panning`: kick, snare, whole drums, bass and lead centred (and, without roles, any track
       whose spectral centroid is below 250 Hz); the others alternate left and right in order of
       spectral centroid, brighter tracks wider (0.2 to 0.45 from the centre), so that low
       frequencies stay central. Overheads go to 0.15 / 0.85, the hi-hat and toms as a drummer sees them.
    3. :func:`rule_highpass` at the frequency below which a track holds 1 % of its energy (40-400 Hz),
       20 Hz (off) for bass, kick and centred low tracks.
    4. :func:`rule_masking_eq`: each accompaniment track is cut (up to 6 dB, Q 1.5) at the third-octave
       band between 300 Hz and 5 kHz where the lead is strongest, by as much as the track would
       exceed the lead there minus 6 dB; without a lead, nothing is cut.
    5. :func:`rule_compression` driven by loudness range (10th to 95th percentile of 400 ms block
       loudness): ratio = range / 6 dB within [1, 6], threshold 4 dB below the 95th percentile,
       2 ms-30 ms attack by role, release one sixteenth note (50-300 ms).
    6. :func:`rule_reverb`: T60 from tempo (:func:`tempo_to_t60`); sends -16 dB for the lead, -20 dB for
       melodic tracks, snare and toms, -24 dB for drums and overheads, off for bass and kick.
    7. :func:`rule_master` to -16 LUFS, lowered where needed to peak at -1 dBFS.
    """
    tracks = _check_tracks(tracks)
    b, n, t = tracks.shape
    w = _check_mask(mask, b, n, tracks)
    present = torch.ones(b, n, dtype=torch.bool) if w is None else mask.cpu()
    if roles is not None and len(roles) != n:
        raise ValueError(f"roles names {len(roles)} tracks but tracks has {n}; give one role per track.")
    sr = float(sample_rate)
    p = _neutral(tracks)
    for item in range(b):
        song = analyze_song(tracks[item].detach().cpu().double().numpy(), sr, roles, tempo, present[item].numpy())
        apply_rules(song, {k: v[item] for k, v in p.items()}, lead_boost_db)
    with torch.no_grad():
        out = mix(tracks, sample_rate, p, mask, pan_law)
        p["master_gain_db"] = rule_master(out, sr).to(tracks.dtype)
        out = out * (10 ** (p["master_gain_db"] / 20)).view(b, 1, 1)
    return out, p


# ------------------------------------------------------------------------------------------------
# The baselines as mixers (automix_lite.mixer.Mixer)
# ------------------------------------------------------------------------------------------------


class _Baseline:
    """Common members of the baseline mixers: any number of tracks, the whole input analysed, parameters."""

    max_tracks: Optional[int] = None
    segment_seconds: Optional[float] = None
    has_params = True

    def __init__(self, sample_rate: int = 44100, pan_law: str = DEFAULT_PAN_LAW):
        self.sample_rate, self.pan_law = int(sample_rate), pan_law

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sample_rate={self.sample_rate})"


class MonoMixer(_Baseline):
    """:func:`mono_mix` as a mixer. ``estimate`` gives the console equivalent of the sum (centre pans, faders at
    the pan law's centre attenuation undone); ``render`` is the plain masked sum on both channels, whatever
    ``params`` hold (the sum has nothing to set), so that it equals :func:`mono_mix` exactly."""

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> MixParams:
        tracks = _check_tracks(tracks)
        _check_mask(mask, tracks.shape[0], tracks.shape[1], tracks)
        centre = float(pan_gains(torch.tensor([0.5], dtype=torch.float64), self.pan_law)[0][0])
        params = _neutral(tracks)
        params["gain_db"].fill_(-20 * math.log10(centre))
        return MixParams(params, "full")

    def render(self, tracks: torch.Tensor, params: Optional[dict] = None, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        tracks = _check_tracks(tracks)
        w = _check_mask(mask, tracks.shape[0], tracks.shape[1], tracks)
        x = tracks if w is None else tracks * w.squeeze(-1)
        return x.sum(1, keepdim=True).expand(-1, 2, -1).contiguous()


class RandomMixer(_Baseline):
    """:func:`random_mix` as a mixer: ``estimate`` draws the gains and pans from ``seed`` (the same draw on every
    call), ``render`` is the console (:func:`automix_lite.dsp.mix`, no reverb) with any gains and pans."""

    def __init__(self, seed: int = 0, sample_rate: int = 44100, gain_range_db: float = 12.0,
                 pan_law: str = DEFAULT_PAN_LAW):
        super().__init__(sample_rate, pan_law)
        self.seed, self.gain_range_db = int(seed), float(gain_range_db)

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> MixParams:
        tracks = _check_tracks(tracks)
        b, n, _ = tracks.shape
        g = torch.Generator().manual_seed(self.seed)
        params = _neutral(tracks)
        params["gain_db"] = ((torch.rand(b, n, generator=g, dtype=torch.float64) * 2 - 1) * self.gain_range_db).to(tracks)
        params["pan"] = torch.rand(b, n, generator=g, dtype=torch.float64).to(tracks)
        return MixParams(params, "full")

    def render(self, tracks: torch.Tensor, params: dict, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return mix(_check_tracks(tracks), self.sample_rate, params, mask, self.pan_law, reverb=False)


class KnowledgeMixer(_Baseline):
    """:func:`knowledge_mix` as a mixer. The song's ``roles`` (one per track) and ``tempo`` (bpm), which the
    protocol does not carry, are given when it is built (one mixer per song; without them it works from
    the audio alone). ``render`` is the full console (:func:`automix_lite.dsp.mix`) with any parameters."""

    def __init__(self, roles: Optional[Sequence[str]] = None, tempo: Optional[float] = None, sample_rate: int = 44100,
                 lead_boost_db: float = LEAD_BOOST_DB, pan_law: str = DEFAULT_PAN_LAW):
        super().__init__(sample_rate, pan_law)
        self.roles = None if roles is None else list(roles)
        self.tempo, self.lead_boost_db = tempo, float(lead_boost_db)

    def estimate(self, tracks: torch.Tensor, mask: Optional[torch.Tensor] = None) -> MixParams:
        return MixParams(knowledge_mix(tracks, self.sample_rate, self.roles, self.tempo, mask, self.lead_boost_db,
                                       self.pan_law)[1], "full")

    def render(self, tracks: torch.Tensor, params: dict, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        tracks = _check_tracks(tracks)
        with torch.no_grad():
            master = params["master_gain_db"]
            out = mix(tracks, self.sample_rate, {**params, "master_gain_db": torch.zeros_like(master)}, mask,
                      self.pan_law)
            return out * (10 ** (master / 20)).view(-1, 1, 1)
