"""Loaders for the standard folder layouts of real multitrack datasets.

None of these sets may be redistributed, so none ships with the package: download them yourself
(each class docstring says where and under which licence) and point the loader at the folder.

Every loader is a :class:`torch.utils.data.Dataset` with ``len()`` = number of songs (takes) and
items that are dicts::

    {"tracks": (max_tracks, T) float32   mono tracks, zero rows after the real ones,
     "mask":   (max_tracks,) bool         True for the real tracks,
     "mix":    (2, T) float32             the dataset's mix (a mono mix is duplicated to 2 channels),
     "names":  list[str]                  names of the real tracks (len == mask.sum()),
     "song":   str}                       song / take identifier

- Stereo (or multichannel) tracks are **downmixed to mono** by averaging their channels.
- The requested ``sample_rate`` is always honoured: files at another rate are resampled
  (:func:`automix_lite.audio.resample`, exact polyphase).
- ``segment_seconds=None`` returns whole songs; a float returns a segment of that length whose start
  is drawn deterministically from ``(seed, index)`` (the same item and seed always give the same
  segment). Only the segment (plus a few samples of filter margin) is read from disk. Songs shorter
  than the segment are zero-padded at the end.
- All files of one song (tracks and mix) must have the same sample rate and the same length,
  otherwise a ``ValueError`` names the file and the mismatch.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import _whole_hz, load, resample

__all__ = ["ENSTDrums", "MedleyDB", "MUSDB18HQ", "DSD100"]


def _info(path: str):
    """(frames, sample_rate, channels) from the file header; unreadable files raise a ValueError naming them."""
    import soundfile as sf

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no audio file at {path!r}: the dataset folder is incomplete.")
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError) as err:
        raise ValueError(
            f"cannot read {path!r} as audio ({err}); is the file complete? Re-download or remove it."
        ) from None
    if info.frames <= 0:
        raise ValueError(f"{path!r} contains no audio samples (0 frames).")
    return int(info.frames), int(info.samplerate), int(info.channels)


def _read_span(path: str, file_sr: int, sample_rate: int, start: int, length: int) -> torch.Tensor:
    """Samples ``[start, start + length)`` at ``sample_rate`` of a file at ``file_sr``, as ``(channels, length)``.

    Reads only the needed frames plus a filter margin; the result equals the same span of the fully
    resampled file (up to float rounding). Past the end of the file, zeros.
    """
    import soundfile as sf

    ratio = Fraction(sample_rate, file_sr)
    up, down = ratio.numerator, ratio.denominator
    # Output sample j sits at input sample j * down / up. Start the read on a multiple of `down` so
    # the chunk's output grid coincides with the full file's, with a margin wider than the
    # polyphase filter's half length (10 * max(up, down) samples at the upsampled rate).
    margin = math.ceil(10 * max(up, down) / up) + 2
    in_start = max(0, (start * down) // up - margin)
    in_start -= in_start % down
    in_stop = (start + length) * down // up + margin + 1
    try:
        data, _ = sf.read(path, start=in_start, stop=in_stop, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise ValueError(f"cannot read {path!r} as audio ({err}); is the file complete?") from None
    x = torch.from_numpy(np.ascontiguousarray(data.T)).unsqueeze(0)
    if x.shape[-1] > 0:
        x = resample(x, file_sr, sample_rate)[0]
    else:
        x = x[0]
    offset = start - in_start * up // down
    x = x[:, offset : offset + length]
    if x.shape[-1] < length:
        x = torch.nn.functional.pad(x, (0, length - x.shape[-1]))
    return x


class _MultitrackDataset(Dataset):
    """Shared machinery: subclasses fill ``self._items`` with dicts (song, names, paths, mix)."""

    layout = ""  # the expected layout, for error messages
    default_max_tracks = 8

    def __init__(self, root, sample_rate=44100, segment_seconds: Optional[float] = None,
                 max_tracks: Optional[int] = None, split=None, seed: int = 0):
        self.root = os.fspath(root)
        self.sample_rate = _whole_hz(sample_rate, "sample_rate")
        if segment_seconds is not None:
            if isinstance(segment_seconds, bool) or not isinstance(segment_seconds, (int, float)) \
                    or not math.isfinite(segment_seconds) or segment_seconds <= 0:
                raise ValueError(f"segment_seconds must be a positive number of seconds or None (whole songs); got {segment_seconds!r}.")
        self.segment_seconds = segment_seconds
        self.max_tracks = self.default_max_tracks if max_tracks is None else max_tracks
        if isinstance(self.max_tracks, bool) or not isinstance(self.max_tracks, int) or self.max_tracks < 1:
            raise ValueError(f"max_tracks must be a positive whole number; got {max_tracks!r}.")
        self.split = split
        self.seed = int(seed)
        name = type(self).__name__
        if not os.path.exists(self.root):
            raise FileNotFoundError(
                f"{name} root {self.root!r} does not exist. Download the dataset and pass its folder; "
                f"expected layout: {self.layout}"
            )
        if not os.path.isdir(self.root):
            raise ValueError(f"{name} root {self.root!r} is a file, not a folder; expected layout: {self.layout}")
        self._items: list[dict] = self._discover()
        if not self._items:
            where = "" if split is None else f" for split={split!r}"
            raise ValueError(f"no {name} songs found under {self.root!r}{where}; expected layout: {self.layout}")
        for item in self._items:
            n = len(item["paths"])
            if n > self.max_tracks:
                raise ValueError(
                    f"{name} song {item['song']!r} has {n} tracks but max_tracks={self.max_tracks}; "
                    f"pass max_tracks={n} or more (the largest song here has "
                    f"{max(len(i['paths']) for i in self._items)} tracks)."
                )

    # subclasses -------------------------------------------------------------------------------
    def _discover(self) -> list[dict]:
        raise NotImplementedError

    # Dataset ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    @property
    def songs(self) -> list[str]:
        """Identifiers of the songs (takes), in index order."""
        return [item["song"] for item in self._items]

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} songs.")
        index %= len(self)
        item = self._items[index]
        files = list(item["paths"]) + [item["mix"]]
        infos = [_info(p) for p in files]
        frames, file_sr, _ = infos[0]
        for path, (f, sr, _) in zip(files[1:], infos[1:]):
            if sr != file_sr:
                raise ValueError(
                    f"{path!r} is at {sr} Hz but {files[0]!r} of the same song is at {file_sr} Hz: "
                    "all tracks and the mix of a song must share one sample rate; resample the file."
                )
            if f != frames:
                raise ValueError(
                    f"{path!r} has {f} samples but {files[0]!r} of the same song has {frames}: "
                    "all tracks and the mix of a song must have the same length; trim or pad the file."
                )
        for path, (_, _, ch) in zip(files[-1:], infos[-1:]):
            if ch > 2:
                raise ValueError(f"mix {path!r} has {ch} channels; expected mono or stereo.")

        total = math.ceil(frames * self.sample_rate / file_sr)  # length after resampling
        if self.segment_seconds is None:
            audio = [load(p, sample_rate=self.sample_rate)[0][0] for p in files]
        else:
            length = max(1, round(self.segment_seconds * self.sample_rate))
            rng = np.random.default_rng([self.seed, index])
            start = int(rng.integers(0, max(total - length, 0) + 1))
            audio = [_read_span(p, file_sr, self.sample_rate, start, length) for p in files]
        T = audio[0].shape[-1]
        tracks = torch.zeros(self.max_tracks, T, dtype=torch.float32)
        for k, a in enumerate(audio[:-1]):
            tracks[k] = a.mean(dim=0)
        mask = torch.zeros(self.max_tracks, dtype=torch.bool)
        mask[: len(item["paths"])] = True
        mix = audio[-1].float()
        if mix.shape[0] == 1:
            mix = mix.expand(2, -1)
        return {
            "tracks": tracks,
            "mask": mask,
            "mix": mix.contiguous(),
            "names": list(item["names"]),
            "song": item["song"],
        }


def _wavs(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(".wav") and not f.startswith("."))


def _as_list(split) -> Optional[list[str]]:
    if split is None:
        return None
    if isinstance(split, str):
        return [split]
    return [str(s) for s in split]


def _select(found: list, split, message: str) -> list:
    """The entries of ``found`` named by ``split`` (None: all); unknown names raise ``ValueError(names: message)``."""
    wanted = _as_list(split)
    if wanted is None:
        return found
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise ValueError(f"{unknown}: {message}.")
    return [f for f in found if f in wanted]


class ENSTDrums(_MultitrackDataset):
    """ENST-Drums: drum takes by three drummers, one mono WAV per microphone, plus dry and wet mixes.

    Layout (``root`` is the folder holding ``drummer_1``, ``drummer_2``, ``drummer_3``)::

        <root>/drummer_N/audio/<mic>/<take>.wav        mics: kick, snare, hi-hat, tom_1, tom_2, ...,
                                                       overhead_L, overhead_R
        <root>/drummer_N/audio/dry_mix/<take>.wav      plain sum of the mics
        <root>/drummer_N/audio/wet_mix/<take>.wav      engineered mix (EQ, compression, reverb)

    ``accompaniment`` (the music of the minus-one takes) and the mix folders are not tracks. A take
    is every ``<take>.wav`` name found in a mic folder; mics missing for a take are masked out.
    ``mix="wet"`` (default) or ``"dry"`` picks the mix. ``split``: ``None`` (all drummers), a
    drummer folder name (``"drummer_1"``) or a list of them. Song ids are ``"drummer_N/<take>"``.
    Track order: kick, snare, hi-hat, toms, overheads, then any other mic alphabetically.

    Obtain: https://perso.telecom-paris.fr/grichard/ENST-drums/ (on request); licence: free for
    non-commercial research use (ENST-Drums licence agreement), not redistributable.
    """

    layout = ("<root>/drummer_N/audio/<mic>/<take>.wav (mics such as kick, snare, hi-hat, overhead_L) "
              "and <root>/drummer_N/audio/wet_mix/<take>.wav (or dry_mix)")
    default_max_tracks = 8
    _not_tracks = {"dry_mix", "wet_mix", "accompaniment"}
    _order = ["kick", "snare", "hi-hat", "tom_1", "tom_2", "tom_3", "overhead_l", "overhead_r"]

    def __init__(self, root, sample_rate=44100, segment_seconds=None, max_tracks=None, split=None,
                 seed=0, mix: str = "wet"):
        if mix not in ("wet", "dry"):
            raise ValueError(f"mix must be 'wet' (engineered mix) or 'dry' (plain sum); got {mix!r}.")
        self.mix = mix
        super().__init__(root, sample_rate, segment_seconds, max_tracks, split, seed)

    def _mic_key(self, mic: str):
        low = mic.lower()
        return (self._order.index(low), "") if low in self._order else (len(self._order), low)

    def _discover(self):
        drummers = sorted(d for d in os.listdir(self.root)
                          if d.startswith("drummer_") and os.path.isdir(os.path.join(self.root, d, "audio")))
        drummers = _select(drummers, self.split, f"split not found under {self.root!r}; available drummers: {drummers}")
        items = []
        for drummer in drummers:
            audio_dir = os.path.join(self.root, drummer, "audio")
            mics = sorted((m for m in os.listdir(audio_dir)
                           if os.path.isdir(os.path.join(audio_dir, m)) and m not in self._not_tracks),
                          key=self._mic_key)
            takes: dict[str, list[str]] = {}
            for mic in mics:
                for f in _wavs(os.path.join(audio_dir, mic)):
                    takes.setdefault(f, []).append(mic)
            for f in sorted(takes):
                take = f[:-4]
                mix = os.path.join(audio_dir, f"{self.mix}_mix", f)
                if not os.path.isfile(mix):
                    raise FileNotFoundError(
                        f"take {drummer}/{take} has no {self.mix} mix: expected {mix!r}. "
                        f"Restore the file, or try mix={'dry' if self.mix == 'wet' else 'wet'!r}."
                    )
                mic_list = takes[f]
                items.append({
                    "song": f"{drummer}/{take}",
                    "names": mic_list,
                    "paths": [os.path.join(audio_dir, m, f) for m in mic_list],
                    "mix": mix,
                })
        return items


class MedleyDB(_MultitrackDataset):
    """MedleyDB (1.0 / 2.0): multitrack songs with stems, raw tracks, mixes and instrument metadata.

    Layout (``root`` is the ``Audio`` folder holding one folder per song)::

        <root>/<Song>/<Song>_MIX.wav
        <root>/<Song>/<Song>_STEMS/<Song>_STEM_01.wav, <Song>_STEM_02.wav, ...
        <root>/<Song>/<Song>_METADATA.yaml            (optional)
        <root>/<Song>/<Song>_RAW/...                  (raw tracks: not used)

    The stems are the tracks (stereo stems are downmixed to mono). Track names come from the
    metadata's ``stems: {S01: {filename, instrument}}`` when the yaml file exists and PyYAML is
    installed, else they are ``"STEM_01"``, ... ``split``: ``None`` (all songs) or a list of song
    names (MedleyDB has no official split). The MIX files are stereo.

    Obtain: https://medleydb.weebly.com (Zenodo, on request); licence: CC BY-NC-SA 4.0.
    """

    layout = ("<root>/<Song>/<Song>_MIX.wav and <root>/<Song>/<Song>_STEMS/<Song>_STEM_01.wav ... "
              "(optional <root>/<Song>/<Song>_METADATA.yaml)")
    default_max_tracks = 24

    def _discover(self):
        songs = sorted(s for s in os.listdir(self.root)
                       if os.path.isfile(os.path.join(self.root, s, f"{s}_MIX.wav")))
        songs = _select(songs, self.split, f"songs not found under {self.root!r} (expected <root>/<Song>/<Song>_MIX.wav)")
        items = []
        for song in songs:
            folder = os.path.join(self.root, song)
            stem_dir = os.path.join(folder, f"{song}_STEMS")
            prefix = f"{song}_STEM_"
            stems = [f for f in _wavs(stem_dir) if f.startswith(prefix)]
            if not stems:
                raise FileNotFoundError(f"song {song!r} has no stems: expected {stem_dir}/{prefix}01.wav ...")
            instruments = self._instruments(os.path.join(folder, f"{song}_METADATA.yaml"))
            names = [instruments.get(f, f[len(song) + 1 : -4]) for f in stems]
            items.append({
                "song": song,
                "names": names,
                "paths": [os.path.join(stem_dir, f) for f in stems],
                "mix": os.path.join(folder, f"{song}_MIX.wav"),
            })
        return items

    @staticmethod
    def _instruments(path: str) -> dict[str, str]:
        """{stem file name: instrument} from a metadata yaml; {} when absent, unparseable or no PyYAML."""
        if not os.path.isfile(path):
            return {}
        try:
            import yaml
        except ImportError:
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                meta = yaml.safe_load(fh)
            out = {}
            for stem in (meta.get("stems") or {}).values():
                inst = stem.get("instrument")
                if isinstance(inst, list):
                    inst = "/".join(str(i) for i in inst)
                if stem.get("filename") and inst:
                    out[str(stem["filename"])] = str(inst)
            return out
        except Exception as err:  # a broken metadata file must not block the audio
            warnings.warn(f"ignoring unreadable MedleyDB metadata {path!r} ({err}); stems are named STEM_NN.", stacklevel=3)
            return {}


_SOURCES = ["drums", "bass", "other", "vocals"]


class MUSDB18HQ(_MultitrackDataset):
    """MUSDB18-HQ: 150 songs (100 train, 50 test) as uncompressed stereo WAV, four stems per song.

    Layout (``root`` is the folder holding ``train`` and ``test``)::

        <root>/train/<Track>/mixture.wav, drums.wav, bass.wav, other.wav, vocals.wav
        <root>/test/<Track>/...

    Tracks are drums, bass, other, vocals (stereo, downmixed to mono). ``split``: ``"train"``,
    ``"test"`` or ``None`` (both; song ids are then ``"train/<Track>"``). The 14-song validation
    subset of ``train`` used by the ``musdb`` package is not applied here. ``max_tracks`` defaults to 4.

    Obtain: https://zenodo.org/records/3338373 (doi:10.5281/zenodo.3338373, on request); licence:
    non-commercial research use, per-track terms (mostly CC BY-NC-SA).
    """

    layout = "<root>/train/<Track>/{mixture,drums,bass,other,vocals}.wav and <root>/test/<Track>/..."
    default_max_tracks = 4
    _splits = {"train": "train", "test": "test"}

    def _split_dirs(self, split):
        """[(split name, mixture folder, sources folder)] for the requested split."""
        if split is None:
            names = list(self._splits)
        elif split in self._splits:
            names = [split]
        else:
            raise ValueError(f"split must be one of {list(self._splits)} or None (all); got {split!r}.")
        return [(n, os.path.join(self.root, self._splits[n]), os.path.join(self.root, self._splits[n])) for n in names]

    def _discover(self):
        items = []
        dirs = self._split_dirs(self.split)
        for name, mix_root, src_root in dirs:
            if not os.path.isdir(mix_root):
                continue
            for track in sorted(os.listdir(mix_root)):
                mix = os.path.join(mix_root, track, "mixture.wav")
                if not os.path.isfile(mix):
                    continue
                paths = [os.path.join(src_root, track, f"{s}.wav") for s in _SOURCES]
                missing = [p for p in paths if not os.path.isfile(p)]
                if missing:
                    raise FileNotFoundError(f"track {track!r} lacks its sources {missing}; expected layout: {self.layout}")
                items.append({
                    "song": track if self.split is not None else f"{name}/{track}",
                    "names": list(_SOURCES),
                    "paths": paths,
                    "mix": mix,
                })
        return items


class DSD100(MUSDB18HQ):
    """DSD100 (SiSEC 2016): 100 songs (50 Dev, 50 Test), stereo WAV, four sources per song.

    Layout (``root`` is the ``DSD100`` folder)::

        <root>/Mixtures/Dev/<Track>/mixture.wav        <root>/Mixtures/Test/<Track>/mixture.wav
        <root>/Sources/Dev/<Track>/{bass,drums,other,vocals}.wav   and Sources/Test/...

    Tracks are drums, bass, other, vocals (stereo, downmixed to mono). ``split``: ``"train"``
    (= Dev), ``"test"`` (= Test) or ``None`` (both; ids ``"train/<Track>"``).

    Obtain: https://sisec.inria.fr/sisec-2016/2016-professionally-produced-music-recordings/
    (mirrored on Zenodo); licence: non-commercial research use, per-track terms (mostly CC BY-NC-SA).
    """

    layout = ("<root>/Mixtures/Dev|Test/<Track>/mixture.wav and "
              "<root>/Sources/Dev|Test/<Track>/{bass,drums,other,vocals}.wav")
    _splits = {"train": "Dev", "test": "Test"}

    def _split_dirs(self, split):
        return [(n, os.path.join(self.root, "Mixtures", d), os.path.join(self.root, "Sources", d))
                for n, _, _ in super()._split_dirs(split)
                for d in [self._splits[n]]]
