"""Mix parameters: the one parameter table, the typed parameters every mixer estimates and renders, and the
parameter files (the table is taught in ``notebooks/06_channel_strip_console.ipynb``, the files in
``notebooks/14_inference.ipynb``).

**The table.** :data:`SPECS` lists every parameter of the mixing console (:mod:`automix_lite.dsp.console`) as a
:class:`ParamSpec`: name, range ``[low, high]`` in ``unit``, ``scale`` of its control (linear or logarithmic),
neutral ``default``, ``level`` (``"track"``: one per track; ``"peak"``: one per track and peaking band;
``"bus"``: the reverb bus; ``"master"``: the master bus) and ``processor``. :data:`CHAIN_SPECS` adds the two
controls of the insert reverb (:func:`automix_lite.dsp.reverb`) of the channel chain that the neural proxy
models. Everything else is derived from these rows:

- the console's [0, 1] controls (``ParamSpec.to_normalized``; :func:`automix_lite.dsp.params_to_normalized`),
  its random and neutral settings, and the ranges the knowledge mixer and the synthetic engineers clip to;
- the proxy's 22 parameters (:data:`PROXY_SPECS`, ``automix_lite.models.proxy.SPECS``), each a row of the table
  narrowed to the range the bundled proxy was trained on (:data:`PROXY_RANGES`) and mapped to [-1, 1]. Their
  names are the console's: a peaking band is ``peak_gain_db[k]`` (band ``k`` from 0), the column name of
  :func:`automix_lite.dsp.param_names`, and ``dsp.parametric_eq`` takes ``peak_gain_db``, ``peak_cutoff_hz`` and
  ``peak_q``: one name per EQ parameter in the DSP, the console and the proxy.

The ranges are control ranges: what a mixer may set. The DSP functions accept wider, physically valid ranges
(:data:`automix_lite.dsp.COMPRESSOR_RANGES`: ratio up to 100 so that gates and limiters fit;
:data:`~automix_lite.dsp.EQ_RANGES`; :data:`~automix_lite.dsp.REVERB_RANGES`); every control range lies inside
them (tested). The compressor ratio is 1-20 everywhere a mixer sets it (console, proxy, engineer, knowledge
mixer): beyond 20:1 a compressor is a limiter, which the console does not have. The proxy's ranges are narrower
(EQ gains +-12 dB, make-up 0-12 dB, T60 0.3-1.5 s, each peaking band its own decade) because a small TCN learns
a narrow range well (chapter 2.4).

**Typed parameters.** :class:`MixParams` holds the settings of ``B`` mixes of ``N`` tracks in real units: per
track ``(B, N)`` (peaking bands ``(B, N, P)``), bus ``(B,)`` and master ``(B,)``, grouped as ``.track``,
``.bus`` and ``.master``, tagged with the ``console`` that renders them (``"basic"``: gain and pan; ``"full"``:
the DSP console; ``"proxy"``: gain, pan and the proxy chain), with normalised views (``normalized()``: [0, 1];
``proxy_controls()``: the proxy's [-1, 1]). It is a read-only mapping of name -> tensor, so
``automix_lite.dsp.mix(tracks, sr, params)`` and ``params["gain_db"]`` work as with a dict. Every mixer's
``estimate`` returns one (:mod:`automix_lite.mixer`).

**Parameter files.** :func:`to_json` / :func:`from_json` (and :func:`write` / :func:`read`) are the one reader
and writer of parameter files: ``automix mix --params-out``, ``automix render`` and the engineer mixes of the
bundled set (``data/mixes/*/*.json``). A file has ``"format": "automix-lite-params"``, ``"version": 2``, the
``console``, the ``sample_rate``, one object per track (``"name"``, optional ``"role"`` / ``"file"``, then its
parameters), ``"bus"`` and ``"master"`` objects, and optional provenance (``model``, ``song_id``, ``engineer``,
``seed``, ``pad``, ``comment``). Version 1 files (``"format": "automix-lite-params/1"`` from ``automix mix``, and
the bundled set's first layout without a format) are read too. Every problem is one ``ValueError`` naming the
file, the key and what to do.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Optional, Sequence

import torch

__all__ = ["ParamSpec", "SPECS", "SPEC_BY_NAME", "CHAIN_SPECS", "PROXY_RANGES", "PROXY_SPECS", "PROXY_NAMES", "PROXY_BYPASS",
           "BASIC_NAMES", "CONSOLES", "LEVELS", "MixParams", "as_params", "ParamFile", "FILE_FORMAT", "FILE_VERSION",
           "console_names", "to_json", "from_json", "write", "read", "json_text", "table", "CHAIN_FORMAT",
           "chain_text", "read_chain"]

LEVELS = ("track", "peak", "bus", "master")
SCALES = ("linear", "log")
CONSOLES = ("basic", "full", "proxy")
FILE_FORMAT = "automix-lite-params"
FILE_VERSION = 2
_V1_FORMAT = "automix-lite-params/1"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: range ``[low, high]`` in ``unit``, ``scale`` of its control, neutral ``default``.

    ``scale="log"`` maps geometrically: ``value = low * (high / low) ** n``; ``"linear"``:
    ``value = low + (high - low) * n`` (``n`` in [0, 1]). ``level``: ``"track"``, ``"peak"`` (per peaking band),
    ``"bus"`` or ``"master"``; ``processor``: the stage of the chain it belongs to.
    """

    name: str
    low: float
    high: float
    unit: str
    scale: str = "linear"
    default: float = 0.0
    doc: str = ""
    level: str = "track"
    processor: str = ""

    @property
    def per_track(self) -> bool:
        """``True`` for one value per track (``"track"`` and ``"peak"`` levels), ``False`` for one per mix."""
        return self.level in ("track", "peak")

    def to_normalized(self, value: torch.Tensor) -> torch.Tensor:
        """Real units -> [0, 1] (no checks; see ``dsp.params_to_normalized``)."""
        if self.scale == "log":
            return torch.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def from_normalized(self, norm: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> real units (no clamping; see ``dsp.params_from_normalized``)."""
        if self.scale == "log":
            return self.low * torch.exp(norm * math.log(self.high / self.low))
        return self.low + (self.high - self.low) * norm

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _p(name, low, high, unit, scale, default, doc, level="track", processor=""):
    return ParamSpec(name, float(low), float(high), unit, scale, float(default), doc, level, processor)


SPECS: tuple = (
    _p("gain_db", -48, 24, "dB", "linear", 0, "input gain (trim/fader)", processor="gain"),
    _p("highpass_cutoff_hz", 20, 1000, "Hz", "log", 20, "high-pass cutoff, 12 dB/octave; 20 Hz ~ off", processor="eq"),
    _p("low_shelf_gain_db", -24, 24, "dB", "linear", 0, "low shelf gain", processor="eq"),
    _p("low_shelf_cutoff_hz", 20, 1000, "Hz", "log", 100, "low shelf cutoff", processor="eq"),
    _p("peak_gain_db", -24, 24, "dB", "linear", 0, "gain of each peaking band", "peak", "eq"),
    _p("peak_cutoff_hz", 20, 16000, "Hz", "log", 1000,
       "centre of each peaking band; defaults spread 250-4000 Hz (dsp.console.peak_cutoff_defaults)", "peak", "eq"),
    _p("peak_q", 0.1, 10, "", "log", 0.707, "Q (sharpness) of each peaking band", "peak", "eq"),
    _p("high_shelf_gain_db", -24, 24, "dB", "linear", 0, "high shelf gain", processor="eq"),
    _p("high_shelf_cutoff_hz", 1000, 16000, "Hz", "log", 8000, "high shelf cutoff", processor="eq"),
    _p("threshold_db", -60, 0, "dB", "linear", 0, "compressor threshold", processor="compressor"),
    _p("ratio", 1, 20, "", "log", 1, "compressor ratio (1 = no compression; 20:1 at most, no limiting)",
       processor="compressor"),
    _p("attack_ms", 0.1, 100, "ms", "log", 10, "compressor attack time", processor="compressor"),
    _p("release_ms", 10, 1000, "ms", "log", 100, "compressor release time", processor="compressor"),
    _p("knee_db", 0, 12, "dB", "linear", 6, "compressor knee width (0 = hard knee)", processor="compressor"),
    _p("makeup_db", 0, 24, "dB", "linear", 0, "compressor make-up gain", processor="compressor"),
    _p("pan", 0, 1, "", "linear", 0.5, "pan position: 0 = left, 0.5 = centre, 1 = right", processor="pan"),
    _p("reverb_send_db", -80, 0, "dB", "linear", -80, "post-pan send level to the reverb bus", processor="reverb"),
    _p("reverb_t60_s", 0.1, 5, "s", "log", 1.5, "reverb decay time (T60)", "bus", "reverb"),
    _p("reverb_return_db", -48, 12, "dB", "linear", 0, "reverb return level", "bus", "reverb"),
    _p("master_gain_db", -48, 24, "dB", "linear", 0, "master bus gain", "master", "master"),
)
"""The console's parameters in chain order: track-level, peak-level (one per band), then bus and master."""

SPEC_BY_NAME = {s.name: s for s in SPECS}

CHAIN_SPECS: tuple = (
    _p("reverb_damping", 0, 1, "", "linear", 0.5, "high-frequency damping of the insert reverb's tail",
       processor="reverb"),
    _p("reverb_wet", 0, 1, "", "linear", 0, "wet share of the insert reverb (0 = dry, reverb off)", processor="reverb"),
)
"""Controls of the channel chain's insert reverb (``dsp.reverb``) that the console, with its send bus, lacks."""

_CHAIN_BY_NAME = {s.name: s for s in CHAIN_SPECS}

PROXY_RANGES: tuple = (
    # (parameter, band or None, low, high): the chain EQ -> compressor -> reverb of chapter 2.4, in its order
    ("low_shelf_gain_db", None, -12, 12), ("low_shelf_cutoff_hz", None, 30, 400),
    ("peak_gain_db", 0, -12, 12), ("peak_cutoff_hz", 0, 80, 800), ("peak_q", 0, 0.5, 4),
    ("peak_gain_db", 1, -12, 12), ("peak_cutoff_hz", 1, 300, 3000), ("peak_q", 1, 0.5, 4),
    ("peak_gain_db", 2, -12, 12), ("peak_cutoff_hz", 2, 1000, 10000), ("peak_q", 2, 0.5, 4),
    ("high_shelf_gain_db", None, -12, 12), ("high_shelf_cutoff_hz", None, 2000, 16000),
    ("threshold_db", None, -60, 0), ("ratio", None, 1, 20), ("attack_ms", None, 0.1, 100),
    ("release_ms", None, 10, 1000), ("knee_db", None, 0, 12), ("makeup_db", None, 0, 12),
    ("reverb_t60_s", None, 0.3, 1.5), ("reverb_damping", None, 0, 1), ("reverb_wet", None, 0, 0.5),
)
"""The ranges the bundled proxy was trained on: each a sub-range of its row of :data:`SPECS` / :data:`CHAIN_SPECS`."""


def _narrowed(name: str, band: Optional[int], low: float, high: float) -> ParamSpec:
    base = SPEC_BY_NAME.get(name) or _CHAIN_BY_NAME[name]
    if not (base.low <= low < high <= base.high):
        raise AssertionError(f"proxy range of {name} [{low}, {high}] is not inside [{base.low}, {base.high}]")
    default = min(max(base.default, low), high)
    return replace(base, name=name if band is None else f"{name}[{band}]", low=float(low), high=float(high),
                   default=float(default), level="track")


PROXY_SPECS: tuple = tuple(_narrowed(*row) for row in PROXY_RANGES)
"""The proxy's 22 parameters (one per track), in the order of its conditioning vector."""
PROXY_NAMES = tuple(s.name for s in PROXY_SPECS)
_PROXY_BY_NAME = {s.name: s for s in PROXY_SPECS}
PROXY_BYPASS = {"eq": {s.name: 0.0 for s in PROXY_SPECS if s.processor == "eq" and s.unit == "dB"},
                "compressor": {"ratio": 1.0, "makeup_db": 0.0},
                "reverb": {"reverb_wet": 0.0}}
"""Real-unit settings that switch each stage of the proxy's chain off (the others then do not matter)."""
BASIC_NAMES = ("gain_db", "pan")

# Names of the proxy's parameters before issue 12 (version 1 files): the bands counted from 1, the reverb unprefixed.
_V1_PROXY_NAMES = {**{f"peak{k + 1}_{p}": f"peak_{p}[{k}]" for k in range(3) for p in ("gain_db", "cutoff_hz", "q")},
                   "t60_s": "reverb_t60_s", "damping": "reverb_damping", "wet": "reverb_wet"}


def renamed_proxy_names(names: Sequence[str]) -> list:
    """Proxy parameter names of any version as today's :data:`PROXY_NAMES` (the first names counted the peaking
    bands from 1, ``peak2_gain_db``, and left the reverb's unprefixed, ``wet``), e.g. those in an old checkpoint."""
    return [_V1_PROXY_NAMES.get(n, n) for n in names]


def console_names(console: str) -> tuple:
    """``(per-track names, bus names, master names)`` of ``console`` (``"basic"``, ``"full"`` or ``"proxy"``)."""
    if console == "basic":
        return BASIC_NAMES, (), ()
    if console == "full":
        return (tuple(s.name for s in SPECS if s.per_track), tuple(s.name for s in SPECS if s.level == "bus"),
                tuple(s.name for s in SPECS if s.level == "master"))
    if console == "proxy":
        return BASIC_NAMES + PROXY_NAMES, (), ()
    raise ValueError(f'console must be one of {", ".join(map(repr, CONSOLES))}; got {console!r}.')


def spec(name: str, console: str = "full") -> ParamSpec:
    """The table row of parameter ``name`` as ``console`` uses it (the proxy's narrowed ranges for ``"proxy"``)."""
    if console == "proxy" and name in _PROXY_BY_NAME:
        return _PROXY_BY_NAME[name]
    if name in SPEC_BY_NAME:
        return SPEC_BY_NAME[name]
    raise KeyError(name)


def _infer_console(names) -> str:
    names = set(names)
    for console in CONSOLES:
        if names <= set().union(*console_names(console)):
            return console
    known = set().union(*(set().union(*console_names(c)) for c in CONSOLES))
    raise ValueError(f"unknown parameter name(s) {sorted(names - known)}; the names are those of "
                     "automix_lite.parameters.SPECS (and PROXY_NAMES for the proxy console).")


class MixParams(Mapping):
    """The settings of ``B`` mixes of ``N`` tracks in real units, for one ``console``; a read-only mapping.

    ``values``: name -> tensor, per-track ``(B, N)`` (peaking bands ``(B, N, P)``), bus and master ``(B,)``.
    ``console``: ``"basic"``, ``"full"`` or ``"proxy"`` (default: the smallest console that has every name);
    a name the console lacks raises a ``ValueError``. Names may be missing (a file with only some parameters):
    renderers fill them with neutral values. ``controls``: the ``(track (B, N, C), bus (B, D))`` [0, 1] outputs
    of the network that produced ``values`` (a DMC), kept so that training, window averaging and the proxy
    render use them exactly (no round trip through exp and log); ``None`` otherwise, and dropped by
    :meth:`replace`. ``output_gain_db``: the gain a renderer applied to keep the mix under its peak ceiling
    (``inference.mix_stems``), else ``None``.
    """

    def __init__(self, values: Mapping, console: Optional[str] = None, controls: Optional[tuple] = None,
                 output_gain_db: Optional[float] = None):
        values = dict(values)
        for k, v in values.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"parameter {k} must be a tensor (batch first); got {type(v).__name__}.")
        console = _infer_console(values) if console is None else console
        track, bus, master = console_names(console)
        extra = sorted(set(values) - set(track) - set(bus) - set(master))
        if extra:
            hint = (' To render it through the full DSP console (every parameter not given at its neutral value) '
                    'use console "full".' if console == "basic" else "")
            raise ValueError(f"{extra} {'is not a parameter' if len(extra) == 1 else 'are not parameters'} of the "
                             f"{console} console (it has {', '.join(track + bus + master)}).{hint}")
        order = [k for k in track + bus + master if k in values]
        self._values = {k: values[k] for k in order}
        self.console, self.controls, self.output_gain_db = console, controls, output_gain_db

    # mapping
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self._values.items())
        return f"MixParams({self.console!r}: {shapes})"

    # groups
    def _group(self, i: int) -> dict:
        names = console_names(self.console)[i]
        return {k: v for k, v in self._values.items() if k in names}

    @property
    def track(self) -> dict:
        """Per-track settings: name -> ``(B, N)`` (peaking bands ``(B, N, P)``)."""
        return self._group(0)

    @property
    def bus(self) -> dict:
        """Reverb-bus settings: name -> ``(B,)``."""
        return self._group(1)

    @property
    def master(self) -> dict:
        """Master-bus settings: name -> ``(B,)``."""
        return self._group(2)

    @property
    def batch(self) -> int:
        return next(iter(self._values.values())).shape[0] if self._values else 0

    @property
    def n_tracks(self) -> int:
        t = self.track
        return next(iter(t.values())).shape[1] if t else 0

    def spec(self, name: str) -> ParamSpec:
        """The table row of ``name`` as this console uses it."""
        return spec(name, self.console)

    # views
    def normalized(self) -> dict:
        """Every value as its [0, 1] control (linear or logarithmic per :data:`SPECS`; the proxy's narrowed
        ranges on the proxy console). Differentiable."""
        return {k: self.spec(k).to_normalized(v) for k, v in self._values.items()}

    def proxy_controls(self) -> torch.Tensor:
        """The proxy chain's conditioning ``(B, N, 22)`` in [-1, 1] (console ``"proxy"``): the network's outputs
        when ``controls`` holds them, else computed from the values (missing ones at the proxy's bypass)."""
        if self.console != "proxy":
            raise ValueError(f"proxy_controls() needs the proxy console's parameters; these are for {self.console}.")
        if self.controls is not None:
            return self.controls[0][..., len(BASIC_NAMES):] * 2 - 1
        b, n = self.batch, self.n_tracks
        like = next(iter(self._values.values()))
        cols = []
        for s in PROXY_SPECS:
            v = self._values.get(s.name)
            u = s.to_normalized(v) if v is not None else torch.full((b, n), _proxy_bypass(s), dtype=like.dtype)
            cols.append(2 * u - 1)
        return torch.stack(cols, -1)

    # editing
    def replace(self, **values) -> "MixParams":
        """A copy with some values replaced (or added); ``controls`` are dropped (they no longer match)."""
        return MixParams({**self._values, **values}, self.console)

    def item(self, i: int) -> "MixParams":
        """Batch item ``i`` as a batch of one."""
        ctl = None if self.controls is None else tuple(c[i:i + 1] for c in self.controls)
        return MixParams({k: v[i:i + 1] for k, v in self._values.items()}, self.console, ctl, self.output_gain_db)

    def to(self, device=None, dtype=None) -> "MixParams":
        """A copy on ``device`` / in ``dtype`` (floating values), detached from any graph."""
        def move(v):
            v = v.detach().to(device=device)
            return v.to(dtype) if dtype is not None and v.is_floating_point() else v
        ctl = None if self.controls is None else tuple(move(c) for c in self.controls)
        return MixParams({k: move(v) for k, v in self._values.items()}, self.console, ctl, self.output_gain_db)


def as_params(values: Mapping, console: Optional[str] = None) -> MixParams:
    """``values`` if it is a :class:`MixParams`, else ``MixParams(values, console)`` (a mixer that returns a dict
    of the console's names)."""
    return values if isinstance(values, MixParams) else MixParams(values, console)


def _proxy_bypass(s: ParamSpec) -> float:
    """The [0, 1] control of a proxy parameter at its bypass (:data:`PROXY_BYPASS`), else the middle of its range
    (as ``models.proxy.bypass`` of zeros, the untrained DMC's start)."""
    value = next((group[s.name] for group in PROXY_BYPASS.values() if s.name in group), None)
    return 0.5 if value is None else float(s.to_normalized(torch.tensor(value, dtype=torch.float64)))


# --------------------------------------------------------------------------------------------
# Parameter files
# --------------------------------------------------------------------------------------------

_META_KEYS = ("model", "song_id", "engineer", "seed", "pad", "comment")
_TOP_KEYS = ("format", "version", "console", "sample_rate", "n_peaks", "tracks", "bus", "master") + _META_KEYS
_ROW_INFO = ("name", "role", "file")


@dataclass
class ParamFile:
    """A parameter file's contents: the parameters (batch 1), the track ``names`` (stem file names without their
    ending), the ``sample_rate`` they were made at, ``pad`` (the stems were zero-padded to one length), the
    tracks' ``roles`` and ``files`` when the file gives them, and the provenance ``meta`` (model, song_id,
    engineer, seed, comment)."""

    params: MixParams
    names: list
    sample_rate: int = 44100
    pad: bool = False
    roles: Optional[list] = None
    files: Optional[list] = None
    meta: Optional[dict] = None


def _round(v):
    return [round(float(a), 6) for a in v] if v.ndim else round(float(v), 6)


def to_json(params: Mapping, names: Sequence[str], sample_rate: int = 44100, *, roles: Optional[Sequence[str]] = None,
            files: Optional[Sequence[str]] = None, item: int = 0, pad: bool = False, **meta) -> dict:
    """Batch item ``item`` of ``params`` (a :class:`MixParams` or a dict of the console's names) -> the dict of a
    version-2 parameter file (values rounded to 6 decimals, peaking bands as lists). ``names``: one per track;
    ``roles`` / ``files`` are stored per track when given; ``meta``: provenance among ``model``, ``song_id``,
    ``engineer``, ``seed``, ``comment`` (``None`` values are left out). ``pad`` is stored when true."""
    p = params if isinstance(params, MixParams) else MixParams(params)
    names = list(names)
    bad = sorted(set(meta) - set(_META_KEYS))
    if bad:
        raise ValueError(f"unknown file entries {bad}; a parameter file records {', '.join(_META_KEYS)}.")
    if p.n_tracks != len(names):
        raise ValueError(f"names has {len(names)} entries for {p.n_tracks} tracks; give one name per track.")
    for label, seq in (("roles", roles), ("files", files)):
        if seq is not None and len(seq) != len(names):
            raise ValueError(f"{label} has {len(seq)} entries for {len(names)} tracks.")
    out = {"format": FILE_FORMAT, "version": FILE_VERSION, "console": p.console, "sample_rate": int(sample_rate)}
    if "peak_gain_db" in p:
        out["n_peaks"] = int(p["peak_gain_db"].shape[-1])
    out.update({k: v for k, v in meta.items() if v is not None})
    if pad:
        out["pad"] = True
    rows = []
    for k, name in enumerate(names):
        row = {"name": name}
        if roles is not None:
            row["role"] = roles[k]
        if files is not None:
            row["file"] = files[k]
        for key, v in p.track.items():
            row[key] = _round(v.detach()[item, k].cpu())
        rows.append(row)
    out["tracks"] = rows
    out["bus"] = {k: _round(v.detach()[item].cpu()) for k, v in p.bus.items()}
    out["master"] = {k: _round(v.detach()[item].cpu()) for k, v in p.master.items()}
    return out


def json_text(data: dict) -> str:
    """A parameter file's text: one line per track (easy to read, edit and diff), then bus and master."""
    lines = []
    for key, value in data.items():
        if key == "tracks":
            rows = ",\n".join(f"  {json.dumps(row, allow_nan=False)}" for row in value)
            lines.append(f' "tracks": [\n{rows}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(path, params: Mapping, names: Sequence[str], sample_rate: int = 44100, **kwargs) -> None:
    """Write a parameter file (:func:`to_json`, :func:`json_text`) atomically: a temporary file renamed into place."""
    from ._checks import atomic_outputs

    text = json_text(to_json(params, names, sample_rate, **kwargs))
    with atomic_outputs([os.fspath(path)], overwrite=True) as temps:
        with open(temps[0], "w") as f:
            f.write(text)


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _upgrade_v1(obj: dict) -> dict:
    """A version-1 file in the version-2 layout: the bundled set's first layout (no format, ``role``/``file``
    rows, the master gain in ``bus``, console ``full``) or ``automix mix``'s ``automix-lite-params/1`` (the
    proxy's old names)."""
    obj = dict(obj)
    if "format" not in obj:  # the bundled engineer files before issue 12
        obj.setdefault("console", "full")
        obj["tracks"] = [{"name": r.get("name", r.get("role")), **r} if isinstance(r, dict) else r
                         for r in obj.get("tracks") or []]
    if isinstance(obj.get("bus"), dict) and "master_gain_db" in obj["bus"] and "master" not in obj:
        bus = dict(obj["bus"])
        obj["master"] = {"master_gain_db": bus.pop("master_gain_db")}
        obj["bus"] = bus
    if obj.get("console") == "proxy" and isinstance(obj.get("tracks"), list):
        obj["tracks"] = [{_V1_PROXY_NAMES.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r
                         for r in obj["tracks"]]
    obj.pop("format", None)
    obj["version"] = FILE_VERSION
    return obj


def from_json(obj, where: str = "", dtype=torch.float32) -> ParamFile:
    """Read a parameter file's dict (or the path of one) into a :class:`ParamFile` (parameters as batch-1
    tensors: per track ``(1, N)``, peaking bands ``(1, N, P)``, bus and master ``(1,)``). Missing parameters stay
    missing (renderers fill them with neutral values). Every value is checked; a problem raises one
    ``ValueError`` naming the file and the key. ``dtype``: of the tensors."""
    if isinstance(obj, (str, os.PathLike)):
        where = f"{os.fspath(obj)}: "
        from ._checks import read_json

        obj = read_json(obj, "write one with `automix mix ... --params-out PARAMS.json`")

    def bad(message):
        return ValueError(where + message)

    if not isinstance(obj, dict) or not isinstance(obj.get("tracks"), list) or not obj["tracks"]:
        raise bad('mix parameters must be a JSON object with a non-empty "tracks" list, as written by '
                  "`automix mix --params-out`.")
    fmt = obj.get("format")
    if fmt is None and "console" in obj and "version" not in obj:
        fmt = _V1_FORMAT  # an automix mix file whose format line was deleted by hand
    if fmt in (None, _V1_FORMAT) and obj.get("version", 1) == 1:
        obj = _upgrade_v1(obj)
    elif fmt != FILE_FORMAT:
        raise bad(f"format {fmt!r} is not {FILE_FORMAT!r}; write the file with `automix mix --params-out`.")
    elif obj.get("version") != FILE_VERSION:
        raise bad(f"version {obj.get('version')!r} of {FILE_FORMAT} is not one this automix-lite reads "
                  f"({FILE_VERSION}); update automix-lite or write the file again.")
    unknown = sorted(set(obj) - set(_TOP_KEYS))
    if unknown:
        raise bad(f"unknown key(s) {unknown}; a parameters file has {', '.join(_TOP_KEYS)}.")
    console = obj.get("console")
    if console not in CONSOLES:
        raise bad(f'"console" must say which console renders the file: "basic" (gain and pan), "full" (the DSP '
                  f'console) or "proxy"; got {console!r}.')
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
    values = {}
    for k in dict.fromkeys(k for r in rows for k in r if k not in _ROW_INFO):
        missing = [n for n, r in zip(names, rows) if k not in r]
        if missing:
            raise bad(f"parameter {k!r} is missing for track(s) {', '.join(missing)}.")
        column = [r[k] for r in rows]
        if k in SPEC_BY_NAME and SPEC_BY_NAME[k].level == "peak":
            if not all(isinstance(v, list) and v and all(_number(a) for a in v) for v in column) or \
                    len({len(v) for v in column}) != 1:
                raise bad(f"parameter {k!r} must be a list of finite numbers (one per peaking band, as many on "
                          f"every track) on every track; got {column}.")
        elif not all(_number(v) for v in column):
            raise bad(f"parameter {k!r} must be a finite number on every track; got {column}.")
        values[k] = torch.tensor([column], dtype=dtype)
    for group in ("bus", "master"):
        entries = obj.get(group, {})
        if not isinstance(entries, dict):
            raise bad(f'"{group}" must be an object of parameter name -> number (e.g. {{"reverb_return_db": -12}}); '
                      f"got {entries!r}.")
        for k, v in entries.items():
            if not _number(v):
                raise bad(f"{group} parameter {k!r} must be a finite number; got {v!r}.")
            level = SPEC_BY_NAME[k].level if k in SPEC_BY_NAME else None
            if level is not None and level != group:
                raise bad(f"{k!r} is a {level} parameter; put it under \"{level}\".")
            values[k] = torch.tensor([float(v)], dtype=dtype)
    n_peaks = obj.get("n_peaks")
    if "peak_gain_db" in values and n_peaks is not None and values["peak_gain_db"].shape[-1] != n_peaks:
        raise bad(f"the file declares n_peaks={n_peaks} but holds {values['peak_gain_db'].shape[-1]} bands.")
    try:
        params = MixParams(values, console)
    except ValueError as err:
        raise bad(str(err)) from None
    roles = [r["role"] for r in rows] if all("role" in r for r in rows) else None
    files = [r["file"] for r in rows] if all("file" in r for r in rows) else None
    meta = {k: obj[k] for k in _META_KEYS if k in obj and k != "pad"}
    return ParamFile(params, names, sr, pad, roles, files, meta)


def read(path, dtype=torch.float32) -> ParamFile:
    """Read a parameter file (any version this package wrote); see :func:`from_json`."""
    return from_json(path, dtype=dtype)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1000 else f"{v:.2f}"


def table(params: Mapping, names: Sequence[str], item: int = 0) -> str:
    """A text table of batch item ``item``: one row per track, one column per parameter in real units (peaking
    bands as ``name[k]``), a line of units, then the bus and master values. The names are the file's keys."""
    p = params if isinstance(params, MixParams) else MixParams(params)
    names = list(names)
    columns = []
    for k, v in p.track.items():
        v = v.detach()[item].cpu()
        if v.ndim == 2:
            columns += [(f"{k}[{b}]", v[:, b]) for b in range(v.shape[1])]
        else:
            columns.append((k, v))
    if columns and len(columns[0][1]) != len(names):
        raise ValueError(f"names has {len(names)} entries for {len(columns[0][1])} tracks.")
    header = ["track"] + [c for c, _ in columns]
    rows = [[name] + [_fmt(float(v[i])) for _, v in columns] for i, name in enumerate(names)]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    def unit(column):
        for key in (column, column.split("[")[0]):
            if key in SPEC_BY_NAME or (p.console == "proxy" and key in _PROXY_BY_NAME):
                return p.spec(key).unit
        return ""

    units = sorted({f"{c.split('[')[0]} {unit(c)}" for c, _ in columns if unit(c)})
    if units:
        out.append("units: " + ", ".join(units) + ("; pan 0 = left, 0.5 = centre, 1 = right" if "pan" in p else ""))
    rest = {**p.bus, **p.master}
    if rest:
        out.append("bus: " + ", ".join(f"{k} {_fmt(float(v.detach()[item]))}" for k, v in rest.items()))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Track-chain files (the settings of one recording's EQ -> compressor chain: automix style-track --params-out)
# --------------------------------------------------------------------------------------------

CHAIN_FORMAT = "automix-lite-track-chain"
CHAIN_VERSION = 1


def chain_text(params: Mapping[str, float], sample_rate: int, **meta) -> str:
    """The text of a track-chain file: ``{"format": CHAIN_FORMAT, "version": 1, "sample_rate", <meta: method,
    objective, ...>, "params": {name: value in real units}}`` (``automix style-track --params-out``; the names
    are those of :data:`automix_lite.style_optimise.TRACK_SPECS`, rendered by ``style_optimise.process_track``)."""
    values = {str(k): round(float(v), 6) for k, v in params.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"chain settings {bad} are not finite numbers.")
    data = {"format": CHAIN_FORMAT, "version": CHAIN_VERSION, "sample_rate": int(sample_rate),
            **{k: v for k, v in meta.items() if v is not None}, "params": values}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def read_chain(obj) -> dict:
    """Read a track-chain file (a path or its dict): ``{"params": {name: float}, "sample_rate", ...meta}``; one
    ``ValueError`` naming the file and the key for a wrong format, version, rate or value."""
    where = ""
    if isinstance(obj, (str, os.PathLike)):
        where = f"{os.fspath(obj)}: "
        from ._checks import read_json

        obj = read_json(obj, "write one with `automix style-track ... --params-out CHAIN.json`")
    if not isinstance(obj, dict) or obj.get("format") != CHAIN_FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{where}not a track-chain file (format {got!r}, expected {CHAIN_FORMAT!r}); write one with "
                         "`automix style-track ... --params-out`.")
    if obj.get("version") != CHAIN_VERSION:
        raise ValueError(f"{where}version {obj.get('version')!r} of {CHAIN_FORMAT} is not one this automix-lite reads "
                         f"({CHAIN_VERSION}).")
    sr = obj.get("sample_rate")
    if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 384000:
        raise ValueError(f'{where}"sample_rate" must be a whole number of Hz in [8000, 384000]; got {sr!r}.')
    params = obj.get("params")
    if not isinstance(params, dict) or not params or not all(_number(v) for v in params.values()):
        raise ValueError(f'{where}"params" must be an object of setting name -> finite number; got {params!r}.')
    return {**{k: v for k, v in obj.items() if k not in ("format", "version")},
            "params": {k: float(v) for k, v in params.items()}}
