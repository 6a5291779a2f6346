"""The bundled multitrack set: manifest, stems, engineer mixes and a training dataset.

Taught in ``notebooks/11_datasets.ipynb``; the set itself is described in ``data/README.md``.

- :func:`data_dir` finds the set: ``$AUTOMIX_DATA`` if set, else the ``data/`` folder of the repository
  the package was installed from (``pip install -e .``).
- :func:`manifest` / :func:`songs` read ``data/manifest.json`` (song ids, task ``"songs"`` or
  ``"drums"``, split, tempo, key, style, tracks, mixes, checksums); :func:`verify` checks every
  committed file against its checksum.
- :func:`load_song` reads a song's dry stems ``(N, T)``; :func:`mix_params` the console parameters an
  engineer chose (real units); :func:`reproduce_mix` renders the target mix from the two with
  :func:`automix_lite.dsp.mix`, cached on disk outside the repository (``$AUTOMIX_CACHE``, default
  ``~/.cache/automix-lite``).
- :func:`wet_stems_of` renders a song's wet stems (each track after its channel strip with its share of the
  reverb bus, :func:`automix_lite.dsp.wet_stems`), optionally FX-normalised (:mod:`automix_lite.fxnorm`), cached.
- :class:`BundledDataset` yields segments for training and evaluation; :func:`collate` batches them.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .._checks import read_json
from ..audio import resample
from .. import parameters as param_files
from ..dsp.console import SPEC_BY_NAME, default_params, mix, pack_params, params_to_normalized, wet_stems
from .engineer import engineer_mix

__all__ = ["data_dir", "manifest", "songs", "song", "verify", "load_song", "mix_params", "reproduce_mix",
           "wet_stems_of", "BundledDataset", "collate", "cache_dir", "SAMPLE_RATE", "TASKS", "SPLITS"]

SAMPLE_RATE = 44100
TASKS = ("songs", "drums")
SPLITS = ("train", "val", "test")
CACHE_VERSION = "1"  # bump when the console's processing changes, to invalidate cached mixes
_REQUIRED = ("id", "task", "split", "tempo", "samples", "tracks", "mixes")


def data_dir(root=None) -> str:
    """The folder holding ``manifest.json``: ``root``, else ``$AUTOMIX_DATA``, else the repository's ``data/``.

    A set ``AUTOMIX_DATA`` without a ``manifest.json`` is an error, never a silent fall-back to another set."""
    env = os.environ.get("AUTOMIX_DATA")
    if root is None and env and not os.path.isfile(os.path.join(env, "manifest.json")):
        raise FileNotFoundError(f"AUTOMIX_DATA={env!r} holds no manifest.json; point it at the data/ folder of an "
                                "automix-lite checkout, or unset it to use the repository's data/.")
    candidates = [root] if root is not None else [env, os.path.join(os.path.dirname(__file__), "..", "..", "data")]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "manifest.json")):
            return os.path.abspath(c)
    where = ", ".join(repr(os.path.abspath(c)) for c in candidates if c)
    raise FileNotFoundError(
        f"the bundled data set (data/manifest.json) was not found (looked in {where}). It lives in the "
        "repository's data/ folder: clone the repository and install it with `pip install -e .`, or set "
        "AUTOMIX_DATA=/path/to/automix-lite/data."
    )


@functools.lru_cache(maxsize=4)
def _read_manifest(root: str) -> dict:
    path = os.path.join(root, "manifest.json")
    data = read_json(path, "restore it with `git checkout data/manifest.json`")
    if not isinstance(data, dict) or not isinstance(data.get("songs"), list):
        raise ValueError(f"{path} has no list of songs; restore it with `git checkout data/manifest.json`.")
    for i, s in enumerate(data["songs"]):
        missing = [k for k in _REQUIRED if k not in s]
        if missing:
            raise ValueError(f"{path}: song entry {i} ({s.get('id', '?')}) lacks {', '.join(missing)}.")
    return data


def manifest(root=None) -> dict:
    """The parsed ``manifest.json`` (cached; treat it as read-only)."""
    return _read_manifest(data_dir(root))


def songs(task: Optional[str] = None, split: Optional[str] = None, root=None) -> list:
    """Manifest entries of the songs of ``task`` (``"songs"``/``"drums"``) and ``split``; None = all."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None; got {task!r}.")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None; got {split!r}.")
    return [s for s in manifest(root)["songs"] if task in (None, s["task"]) and split in (None, s["split"])]


def song(song_id: str, root=None) -> dict:
    """The manifest entry of ``song_id``."""
    for s in manifest(root)["songs"]:
        if s["id"] == song_id:
            return s
    ids = [s["id"] for s in manifest(root)["songs"]]
    raise KeyError(f"no song {song_id!r} in the bundled set; ids look like {ids[0]!r} (see automix_lite.data.songs()).")


def file_sha256(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (the manifest's checksums)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(root=None) -> list:
    """Check every file listed in the manifest's checksums; returns a list of problems (empty = all good)."""
    root = data_dir(root)
    problems = []
    for rel, digest in manifest(root).get("checksums", {}).items():
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            problems.append(f"{rel}: missing")
        elif file_sha256(path) != digest:
            problems.append(f"{rel}: checksum differs from the manifest (modified or corrupt)")
    return problems


def _read(root: str, entry: dict, rel: str, expect: int) -> np.ndarray:
    import soundfile as sf

    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"song {entry['id']!r}: manifest entry {rel!r} points to no file ({path}); "
                                "restore data/ with `git checkout data` or regenerate it with `make data`.")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise ValueError(f"song {entry['id']!r}: cannot decode {path} ({err}); the file is corrupt: restore it "
                         "with `git checkout data` or regenerate the set with `make data`.") from None
    if sr != SAMPLE_RATE:
        raise ValueError(f"song {entry['id']!r}: {path} is at {sr} Hz but the set is at {SAMPLE_RATE} Hz.")
    if audio.shape[1] != 1:
        raise ValueError(f"song {entry['id']!r}: {path} has {audio.shape[1]} channels; stems must be mono.")
    if audio.shape[0] < expect:
        raise ValueError(f"song {entry['id']!r}: {path} has {audio.shape[0]} samples but the manifest says "
                         f"{expect}; the tracks of a song must all have the same length.")
    return audio[:expect, 0]


@functools.lru_cache(maxsize=64)
def _stems(root: str, song_id: str) -> torch.Tensor:
    entry = song(song_id, root)
    return torch.from_numpy(np.stack([_read(root, entry, t["file"], entry["samples"]) for t in entry["tracks"]]))


def load_song(song_id: str, sample_rate: int = SAMPLE_RATE, root=None) -> dict:
    """A song's dry stems: ``{"tracks": (N, T) float32, "roles", "instruments", "sample_rate", "entry"}``.

    Stems are decoded once and kept in memory (64 songs at most); ``sample_rate`` resamples them.
    """
    root = data_dir(root)
    entry = song(song_id, root)
    x = _stems(root, song_id)
    if sample_rate != SAMPLE_RATE:
        x = resample(x.unsqueeze(0), SAMPLE_RATE, sample_rate)[0]
    return {"tracks": x.clone(), "roles": [t["role"] for t in entry["tracks"]],
            "instruments": [t["instrument"] for t in entry["tracks"]], "sample_rate": sample_rate, "entry": entry}


def _mix_file(entry: dict, engineer: str) -> str:
    for m in entry["mixes"]:
        if m["engineer"] == engineer:
            return m["params"]
    known = [m["engineer"] for m in entry["mixes"]]
    raise ValueError(f"song {entry['id']!r} has no mix by engineer {engineer!r}; it has {', '.join(known)}.")


def mix_params(song_id: str, engineer: str, root=None, dtype=torch.float32) -> param_files.MixParams:
    """The console parameters (a batch-1 :class:`automix_lite.parameters.MixParams`, real units) of the engineer's mix
    of ``song_id``, read from its parameter file (``data/mixes/SONG/ENGINEER.json``)."""
    root = data_dir(root)
    entry = song(song_id, root)
    rel = _mix_file(entry, engineer)
    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"song {song_id!r}: manifest entry {rel!r} points to no file ({path}).")
    params = param_files.from_json(read_json(path), f"{path}: ", dtype).params
    if params["gain_db"].shape[1] != len(entry["tracks"]):
        raise ValueError(f"{path} has parameters for {params['gain_db'].shape[1]} tracks but song {song_id!r} "
                         f"has {len(entry['tracks'])}.")
    return params


def cache_dir() -> str:
    """Where rendered mixes are cached: ``$AUTOMIX_CACHE`` or ``~/.cache/automix-lite``."""
    return os.environ.get("AUTOMIX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "automix-lite")


def reproduce_mix(song_id: str, engineer: str, sample_rate: int = SAMPLE_RATE, cache: bool = True,
                  root=None) -> torch.Tensor:
    """The engineer's target mix of ``song_id``, stereo ``(2, T)``: the console applied to the stems.

    Nothing but ``automix_lite.dsp.mix(stems, 44100, mix_params(song_id, engineer))``: deterministic
    (same stems, same parameters, same fixed-seed reverb). Rendered at 44.1 kHz, then resampled to
    ``sample_rate``. With ``cache=True`` the 44.1 kHz render is stored as ``.npy`` under
    :func:`cache_dir` (keyed by the checksums of the stems and parameters), never inside ``data/``; a
    cached file of the wrong shape or dtype, with non-finite samples or all zeros is rendered again.
    """
    root = data_dir(root)
    entry = song(song_id, root)

    def render():
        with torch.no_grad():
            return mix(_stems(root, song_id).unsqueeze(0), SAMPLE_RATE, mix_params(song_id, engineer, root))[0].contiguous()

    if cache:
        path = os.path.join(cache_dir(), "mixes", f"{song_id}.{engineer}.{_cache_key(root, entry, engineer)}.npy")
        out = _cached(path, (2, entry["samples"]), render)
    else:
        out = render()
    if sample_rate != SAMPLE_RATE:
        out = resample(out.unsqueeze(0), SAMPLE_RATE, sample_rate)[0]
    return out


def _cache_key(root: str, entry: dict, engineer: str, *kind: str) -> str:
    """The cache key of a render of ``entry``'s stems with ``engineer``'s parameters: the checksums of both, the
    cache version and ``kind`` (nothing for the mix, ``"wet"`` for the wet stems)."""
    sums = manifest(root).get("checksums", {})
    return hashlib.sha256("|".join([CACHE_VERSION, *kind, entry["id"], engineer, sums.get(_mix_file(entry, engineer), "")]
                                   + [sums.get(t["file"], "") for t in entry["tracks"]]).encode()).hexdigest()[:16]


def _cached(path: str, shape: tuple, render):
    """The array at ``path`` if it is a usable cache of ``shape`` (float32, finite, not all zeros: a damaged, wrong
    or zeroed file is rendered again), else ``render()`` saved there (atomically)."""
    out = None
    if os.path.isfile(path):
        try:
            out = torch.from_numpy(np.load(path))
        except (OSError, ValueError):
            out = None
        if out is not None and (tuple(out.shape) != shape or out.dtype != torch.float32
                                or not bool(torch.isfinite(out).all()) or not bool(out.abs().max() > 0)):
            out = None
    if out is None:
        out = render()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        np.save(tmp, out.numpy())
        os.replace(tmp, path)
    return out


def wet_stems_of(song_id: str, engineer: str, fxnorm: bool = False, root=None) -> torch.Tensor:
    """The engineer's wet stems of ``song_id``, ``(N, 2, T)`` at 44.1 kHz: ``automix_lite.dsp.wet_stems`` of the dry
    stems with the stored parameters (so they sum to :func:`reproduce_mix`). ``fxnorm=True``: each stem FX-normalised
    towards its role's averages over the train split's wet stems (:func:`automix_lite.fxnorm.normalize`, centred).
    Both are cached as ``.npy`` under :func:`cache_dir` (keyed like :func:`reproduce_mix`)."""
    root = data_dir(root)
    entry = song(song_id, root)
    key = _cache_key(root, entry, engineer, "wet")
    shape = (len(entry["tracks"]), 2, entry["samples"])

    def render_wet():
        with torch.no_grad():
            return wet_stems(_stems(root, song_id).unsqueeze(0), SAMPLE_RATE, mix_params(song_id, engineer, root))[0].contiguous()

    wet = _cached(os.path.join(cache_dir(), "wet", f"{song_id}.{engineer}.{key}.npy"), shape, render_wet)
    if not fxnorm:
        return wet
    from .. import fxnorm as fx

    def render_norm():
        avg = fx.role_averages(entry["task"], "train", engineer)
        return torch.stack([fx.normalize(s, SAMPLE_RATE, t["role"], avg) for s, t in zip(wet, entry["tracks"])]).contiguous()

    return _cached(os.path.join(cache_dir(), "fxnorm", f"{song_id}.{engineer}.{key}.v{fx.VERSION}.npy"), shape, render_norm)


_TARGETS = ("stored", "render", "fresh")
_STEMS = ("dry", "wet", "fxnorm")


class BundledDataset(Dataset):
    """Segments of the bundled set for training and evaluation (``torch.utils.data.Dataset``).

    Item ``i`` comes from song ``i % n_songs`` (manifest order) at a start drawn from
    ``np.random.default_rng([seed, i])``: the same ``(seed, i)`` always gives the same item. Items::

        {"tracks": (max_tracks, T) float32  dry mono stems, zero rows after the song's tracks,
         "mask":   (max_tracks,) bool        True for tracks that are present and audible here,
         "mix":    (2, T) float32            the engineer's target mix of this segment,
         "params": (max_tracks, D) float32   normalised [0, 1] console parameters per track
                                             (columns: automix_lite.dsp.param_names()[0]),
         "bus":    (3,) float32              normalised reverb T60, reverb return, master gain,
         "names":  list[str]                 roles of the song's tracks, "song": str, "start": int}

    ``task``: ``"songs"`` or ``"drums"``; ``split``: ``"train"``, ``"val"``, ``"test"`` or None (all);
    ``engineer``: a style from ``manifest()["engineers"]``. ``segment_seconds=None`` gives whole songs.
    ``length``: number of items (default: one per song). ``sample_rate``: stems and target are
    resampled from 44.1 kHz (parameters keep their meaning).

    ``target``:

    - ``"stored"`` (default): the segment cut from :func:`reproduce_mix` (reverb tails and compressor
      state carry over from before the segment, as in a real mix).
    - ``"render"``: the stored parameters applied to the segment's stems with the console.
    - ``"fresh"``: a new draw of the same engineer's conventions for every item (its own per-song
      variation), rendered on the segment, so training is not limited to the stored mixes.

    ``gain_augment_db`` > 0 scales every stem by a random gain in ``[-a, +a]`` dB and lowers the
    track's ``gain_db`` parameter by the same amount, which leaves the target unchanged (the gain is
    the first stage of the strip); gains are clamped to the console's range.

    **Silent tracks.** A track whose segment is quieter than ``silence_db`` (RMS, dBFS, default -60;
    e.g. toms outside their fills, a lead between phrases) gets ``mask = False`` and zero audio: a model
    cannot set parameters for what it cannot hear. In ``"stored"`` targets its inaudible signal and any
    reverb tail from earlier stay in the mix; ``"render"``/``"fresh"`` targets leave it out.

    **Wet stems** (chapter 5.3). ``stems="dry"`` (default) gives the dry stems; ``"wet"`` the engineer's wet stems
    (:func:`wet_stems_of`, each track after its strip with its share of the reverb) and ``"fxnorm"`` the same after
    FX normalization, both as the mono mid ``(L + R) / 2`` the DMC takes. The target stays the engineer's stored
    mix (so only ``target="stored"``), and ``params`` / ``bus`` stay the engineer's parameters *for the dry stems*
    (the ground truth of the dry-stem problem, not what a mixer of wet stems should set).
    """

    def __init__(self, task: str = "songs", split: Optional[str] = "train", engineer: str = "natural",
                 segment_seconds: Optional[float] = 4.0, sample_rate: int = SAMPLE_RATE, max_tracks: int = 8,
                 seed: int = 0, length: Optional[int] = None, target: str = "stored",
                 gain_augment_db: float = 0.0, silence_db: float = -60.0, root=None, stems: str = "dry"):
        self.root = data_dir(root)
        self.entries = songs(task, split, self.root)
        if not self.entries:
            raise ValueError(f"no songs for task={task!r}, split={split!r} in the bundled set.")
        engineers = manifest(self.root).get("engineers", [])
        if engineer not in engineers:
            raise ValueError(f"unknown engineer {engineer!r}; the bundled mixes are by {', '.join(engineers)}.")
        if target not in _TARGETS:
            raise ValueError(f"target must be one of {_TARGETS}; got {target!r}.")
        if stems not in _STEMS:
            raise ValueError(f"stems must be one of {_STEMS}; got {stems!r}.")
        if stems != "dry" and target != "stored":
            raise ValueError(f"stems={stems!r} needs target='stored' (the engineer's mix); got target={target!r}.")
        if segment_seconds is not None and (isinstance(segment_seconds, bool) or not isinstance(segment_seconds, (int, float))
                                            or not 0 < segment_seconds <= min(e["seconds"] for e in self.entries)):
            raise ValueError(f"segment_seconds must be None (whole songs) or a number of seconds in (0, "
                             f"{min(e['seconds'] for e in self.entries):.2f}] (the shortest song here); got {segment_seconds!r}.")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
            raise ValueError(f"sample_rate must be a whole number of Hz >= 8000; got {sample_rate!r}.")
        most = max(len(e["tracks"]) for e in self.entries)
        if isinstance(max_tracks, bool) or not isinstance(max_tracks, int) or max_tracks < most:
            raise ValueError(f"max_tracks must be a whole number >= {most}, the most tracks of a song here; got {max_tracks!r}.")
        if not 0 <= gain_augment_db <= 12:
            raise ValueError(f"gain_augment_db must be in [0, 12] dB; got {gain_augment_db!r}.")
        self.task, self.split, self.engineer, self.target, self.stems = task, split, engineer, target, stems
        self.segment_seconds, self.sample_rate, self.max_tracks = segment_seconds, sample_rate, max_tracks
        self.seed, self.gain_augment_db, self.silence_db = int(seed), float(gain_augment_db), float(silence_db)
        self.length = len(self.entries) if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    @property
    def song_ids(self) -> list:
        return [e["id"] for e in self.entries]

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        index %= len(self)
        entry = self.entries[index % len(self.entries)]
        rng = np.random.default_rng([self.seed, index])
        stems = _stems(self.root, entry["id"])
        n, total = stems.shape
        length = total if self.segment_seconds is None else round(self.segment_seconds * SAMPLE_RATE)
        start = int(rng.integers(0, total - length + 1))
        if self.stems == "dry":
            x = stems[:, start:start + length].clone()
        else:
            x = wet_stems_of(entry["id"], self.engineer, self.stems == "fxnorm", self.root)[..., start:start + length].mean(1)
        params = mix_params(entry["id"], self.engineer, self.root)
        roles = [t["role"] for t in entry["tracks"]]
        if self.gain_augment_db > 0:
            aug = torch.from_numpy(rng.uniform(-self.gain_augment_db, self.gain_augment_db, n)).float()
            x = x * 10 ** (aug.unsqueeze(1) / 20)
            params = params.replace(gain_db=(params["gain_db"] - aug).clamp(SPEC_BY_NAME["gain_db"].low,
                                                                         SPEC_BY_NAME["gain_db"].high))
        else:
            aug = torch.zeros(n)
        rms_db = 10 * torch.log10(x.pow(2).mean(1) + 1e-20)
        audible = rms_db > self.silence_db
        x = x * audible.unsqueeze(1)
        if self.target == "stored":
            y = reproduce_mix(entry["id"], self.engineer, root=self.root)[:, start:start + length]
        else:
            if self.target == "fresh":
                lufs = [t["lufs"] + float(a) for t, a in zip(entry["tracks"], aug)]
                _, params = engineer_mix(x, roles, self.engineer, seed=int(rng.integers(2 ** 31)),
                                         tempo=entry["tempo"], stem_lufs=lufs)
                params = {k: v.float() for k, v in params.items()}
            with torch.no_grad():
                y = mix(x.unsqueeze(0), SAMPLE_RATE, params, mask=audible.unsqueeze(0))[0]
        if self.sample_rate != SAMPLE_RATE:
            x = resample(x.unsqueeze(0), SAMPLE_RATE, self.sample_rate)[0]
            y = resample(y.unsqueeze(0), SAMPLE_RATE, self.sample_rate)[0]
        tracks = torch.zeros(self.max_tracks, x.shape[-1])
        tracks[:n] = x
        mask = torch.zeros(self.max_tracks, dtype=torch.bool)
        mask[:n] = audible
        full = default_params(1, self.max_tracks)
        for k in full:
            if not SPEC_BY_NAME[k].per_track:
                full[k] = params[k].float()
            else:
                full[k][:, :n] = params[k].float()
        track_p, bus_p = pack_params(params_to_normalized(full))
        return {"tracks": tracks, "mask": mask, "mix": y.float().contiguous(), "params": track_p[0].float(),
                "bus": bus_p[0].float(), "names": roles, "song": entry["id"], "start": start}


def collate(items) -> dict:
    """Make one batch of a list of dataset items: the ``collate_fn`` for a ``torch.utils.data.DataLoader``.

    Tensors are stacked along a new first dimension (``tracks`` ``(B, max_tracks, T)``, ``mask``, ``mix``,
    ``params``, ``bus``); everything else (``names``, whose length depends on the song, ``song``,
    ``start``) becomes a list with one entry per item. PyTorch's default collate cannot batch ``names``.
    Works for :class:`BundledDataset` and for the real-dataset loaders of :mod:`automix_lite.data.real`
    (items with the same keys). Taught in chapter 3.1 (``notebooks/11_datasets.ipynb``, "Another sample
    rate, and batches"). Raises ``ValueError`` for an empty list, items with different keys, or tensors of
    different shapes (e.g. segments of different lengths: give the dataset a ``segment_seconds``).
    """
    items = list(items)
    if not items:
        raise ValueError("collate needs at least one item.")
    keys = list(items[0])
    for i, it in enumerate(items[1:], start=1):
        if list(it) != keys:
            raise ValueError(f"item {i} has the keys {sorted(it)}, item 0 {sorted(keys)}: batch items of one dataset.")
    out = {}
    for k in keys:
        values = [it[k] for it in items]
        if all(isinstance(v, torch.Tensor) for v in values):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot stack {k!r}: the items have shapes {sorted(shapes)}. Cut segments of one "
                                 "length (segment_seconds) and use the same max_tracks.")
            out[k] = torch.stack(values)
        else:
            out[k] = values
    return out
