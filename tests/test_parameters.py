"""The one parameter table, the typed MixParams and the parameter files (automix_lite.parameters)."""

import json

import pytest
import torch

from automix_lite import data as D
from automix_lite import dsp
from automix_lite import parameters as P
from automix_lite.dsp.console import param_names
from automix_lite.models import proxy
from automix_lite.models.dmc import DMC

DSP_RANGES = {  # parameter -> the DSP function's own valid range (low, high)
    **{n: dsp.EQ_RANGES["gain_db"][:2] for n in ("low_shelf_gain_db", "peak_gain_db", "high_shelf_gain_db")},
    **{n: dsp.EQ_RANGES["cutoff_hz"][:2] for n in ("highpass_cutoff_hz", "low_shelf_cutoff_hz", "peak_cutoff_hz",
                                                   "high_shelf_cutoff_hz")},
    "peak_q": dsp.EQ_RANGES["q"][:2],
    **{n: dsp.COMPRESSOR_RANGES[n][:2] for n in ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db",
                                                 "makeup_db")},
    "reverb_t60_s": dsp.REVERB_RANGES["t60_s"][:2], "reverb_damping": dsp.REVERB_RANGES["damping"][:2],
    "reverb_wet": dsp.REVERB_RANGES["wet"][:2],
}


def test_every_control_range_lies_inside_what_the_dsp_accepts():
    for s in P.SPECS + P.CHAIN_SPECS:
        assert s.low < s.high and s.contains(s.default), s.name
        if s.name in DSP_RANGES:
            low, high = DSP_RANGES[s.name]
            assert low <= s.low and s.high <= high, s.name
    # the compressor ratio is one range wherever a mixer sets it
    assert (P.SPEC_BY_NAME["ratio"].low, P.SPEC_BY_NAME["ratio"].high) == (1.0, 20.0)
    assert proxy.SPECS[proxy.NAMES.index("ratio")].high == 20.0


def test_the_proxy_table_is_derived_from_the_console_table():
    columns = set(param_names(3)[0])
    for s in proxy.SPECS:
        base = s.name.split("[")[0]
        row = P.SPEC_BY_NAME.get(base) or next(c for c in P.CHAIN_SPECS if c.name == base)
        assert (s.unit, s.scale, s.processor) == (row.unit, row.scale, row.processor), s.name
        assert row.low <= s.low < s.high <= row.high, s.name
        if "[" in s.name or s.name in P.SPEC_BY_NAME and P.SPEC_BY_NAME[s.name].per_track:
            assert s.name in columns, s.name  # one name per EQ band parameter: the console's column names
    assert proxy.N_PARAMS == 22 and len(set(proxy.NAMES)) == 22
    # each peaking band has its own range, in order
    cut = [proxy.SPECS[proxy.NAMES.index(f"peak_cutoff_hz[{k}]")] for k in range(3)]
    assert [c.low for c in cut] == sorted(c.low for c in cut)


def test_mixparams_groups_views_and_mapping():
    p = P.MixParams(dsp.random_params(2, 3, torch.Generator().manual_seed(0)))
    assert p.console == "full" and (p.batch, p.n_tracks) == (2, 3)
    assert set(p.bus) == {"reverb_t60_s", "reverb_return_db"} and set(p.master) == {"master_gain_db"}
    assert set(p.track) | set(p.bus) | set(p.master) == set(p) and len(p) == len(P.SPECS)
    norm = p.normalized()
    back = dsp.params_from_normalized(norm)
    assert all(torch.allclose(back[k], p[k], rtol=1e-5, atol=1e-5) for k in p)
    x = 0.1 * torch.randn(2, 3, 2048, generator=torch.Generator().manual_seed(1))
    assert torch.equal(dsp.mix(x, 44100, p), dsp.mix(x, 44100, dict(p)))  # a mapping, rendered like a dict
    with pytest.raises(TypeError):
        p["gain_db"] = torch.zeros(2, 3)  # read-only: edits go through replace()
    q = p.replace(gain_db=torch.zeros(2, 3))
    assert float(q["gain_db"].abs().max()) == 0 and torch.equal(q["pan"], p["pan"])
    one = p.item(1)
    assert one.batch == 1 and torch.equal(one["pan"], p["pan"][1:2])
    assert P.MixParams({"gain_db": torch.zeros(1, 2), "pan": torch.full((1, 2), 0.5)}).console == "basic"


def test_mixparams_refuses_names_its_console_lacks():
    with pytest.raises(ValueError, match="'ratio'.*not a parameter of the basic console"):
        P.MixParams({"gain_db": torch.zeros(1, 1), "ratio": torch.ones(1, 1)}, "basic")
    with pytest.raises(ValueError, match="unknown parameter"):
        P.MixParams({"loudness": torch.zeros(1, 1)})
    with pytest.raises(ValueError, match="console must be one of"):
        P.MixParams({"gain_db": torch.zeros(1, 1)}, "vintage")
    with pytest.raises(TypeError, match="must be a tensor"):
        P.MixParams({"gain_db": 0.0})


def test_dmc_estimates_are_mixparams_with_the_network_outputs():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(1, 3, 4096)
    for console in ("basic", "full"):
        model = DMC(console=console, dim=16, widths=(4, 8), hidden=16, n_mels=16).eval()
        p = model.estimate(x)
        assert isinstance(p, P.MixParams) and p.console == console
        track, bus = p.controls
        assert track.shape == (1, 3, len(model.track_names)) and bus.shape[0] == 1
        norm = p.normalized()
        assert torch.allclose(norm["gain_db"], track[..., model.track_names.index("gain_db")], atol=1e-5)
        assert torch.equal(model.render(x, p), model(x)[0])
        assert p.replace(pan=p["pan"]).controls is None  # an edited copy no longer has network outputs


def test_proxy_controls_from_values_equal_the_networks_outputs():
    torch.manual_seed(0)
    u = torch.rand(2, 3, 2 + proxy.N_PARAMS)
    from automix_lite.models.dmc import ProxyConsole

    values = ProxyConsole.to_params(_proxy_console(), u, u[:, 0, :0])
    with_net = P.MixParams(values, "proxy", controls=(u, u[:, 0, :0]))
    without = P.MixParams(values, "proxy")
    assert torch.equal(with_net.proxy_controls(), u[..., 2:] * 2 - 1)
    assert torch.allclose(without.proxy_controls(), with_net.proxy_controls(), atol=1e-5)
    # a proxy parameter left out sits at the proxy's bypass
    part = P.MixParams({k: v for k, v in values.items() if k != "reverb_wet"}, "proxy").proxy_controls()
    assert torch.allclose(part[..., proxy.NAMES.index("reverb_wet")], torch.full((2, 3), -1.0))


def _proxy_console():
    from automix_lite.models.dmc import ProxyConsole

    c = ProxyConsole.__new__(ProxyConsole)
    c.chain_names, c._denormalize = tuple(proxy.NAMES), proxy.denormalize
    return c


def test_parameter_file_round_trip_with_provenance(tmp_path):
    p = D.mix_params("song_jazz_01", "natural")
    names = [f"t{k}" for k in range(p.n_tracks)]
    path = tmp_path / "mix.json"
    P.write(path, p, names, 44100, roles=names, song_id="song_jazz_01", engineer="natural", seed=3)
    text = path.read_text()
    assert sum(line.startswith('  {"name": "t') for line in text.splitlines()) == p.n_tracks  # one line per track
    f = P.read(path)
    assert f.names == names and f.roles == names and f.meta == {"song_id": "song_jazz_01", "engineer": "natural",
                                                                "seed": 3}
    assert f.params.console == "full" and set(f.params) == set(p)
    assert all(torch.allclose(f.params[k], p[k], atol=1e-5, rtol=1e-6) for k in p)
    data = json.loads(text)
    assert (data["format"], data["version"]) == ("automix-lite-params", 2)
    assert set(data["bus"]) == {"reverb_t60_s", "reverb_return_db"} and set(data["master"]) == {"master_gain_db"}


def test_version_1_files_still_read(tmp_path):
    # automix mix --params-out before issue 12: master gain under "bus", the proxy's old band names
    v1 = {"format": "automix-lite-params/1", "console": "full", "sample_rate": 44100, "pad": False,
          "tracks": [{"name": "a", "gain_db": -3.0}], "bus": {"reverb_return_db": -6.0, "master_gain_db": -2.0}}
    f = P.from_json(v1)
    assert float(f.params["master_gain_db"]) == -2.0 and set(f.params.master) == {"master_gain_db"}
    old_proxy = {"format": "automix-lite-params/1", "console": "proxy", "sample_rate": 44100,
                 "tracks": [{"name": "a", "gain_db": 0.0, "pan": 0.5, "peak2_gain_db": 3.0, "wet": 0.1}], "bus": {}}
    f = P.from_json(old_proxy)
    assert float(f.params["peak_gain_db[1]"]) == 3.0 and abs(float(f.params["reverb_wet"]) - 0.1) < 1e-7
    # the bundled set's first layout (no format; role and file per track; master in "bus")
    new = json.load(open(D.data_dir() + "/mixes/song_pop_01/natural.json"))
    first = {"song_id": new["song_id"], "engineer": new["engineer"], "seed": new["seed"], "sample_rate": 44100,
             "n_peaks": 3, "tracks": [{k: v for k, v in r.items() if k != "name"} for r in new["tracks"]],
             "bus": {**new["bus"], **new["master"]}}
    a, b = P.from_json(first), P.from_json(new)
    assert a.names == [r["role"] for r in new["tracks"]] and a.files == b.files
    assert all(torch.equal(a.params[k], b.params[k]) for k in b.params)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(version=3), "version 3 of automix-lite-params is not one this automix-lite reads"),
    (lambda d: d.update(format="mixfile"), "format 'mixfile'"),
    (lambda d: d["bus"].update(master_gain_db=0.0), "'master_gain_db' is a master parameter; put it under \"master\""),
    (lambda d: d.update(n_peaks=4), "declares n_peaks=4 but holds 3 bands"),
    (lambda d: d.update(engineer_notes="x"), "unknown key"),
    (lambda d: d["tracks"][0].update(peak_q=[1.0, 2.0]), "one per peaking band, as many on every track"),
])
def test_bad_parameter_files_give_one_clear_error(tmp_path, edit, message):
    data = json.load(open(D.data_dir() + "/mixes/song_pop_01/natural.json"))
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as err:
        P.read(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_bundled_parameter_files_are_what_the_writer_writes():
    """`make data` writes the mix files with parameters.to_json / json_text: the committed files are those bytes."""
    for sid in ("song_pop_01", "drums_funk_01"):
        for engineer in ("natural", "punchy"):
            path = f"{D.data_dir()}/mixes/{sid}/{engineer}.json"
            f = P.read(path, dtype=torch.float64)
            text = P.json_text(P.to_json(f.params, f.names, f.sample_rate, roles=f.roles, files=f.files, **f.meta))
            assert text == open(path).read(), path


def test_track_chain_files_round_trip_and_refuse_bad_ones(tmp_path):
    text = P.chain_text({"ratio": 4.0, "threshold_db": -20.1234567}, 44100, method="cma", objective="style")
    data = json.loads(text)
    assert (data["format"], data["version"], data["method"]) == ("automix-lite-track-chain", 1, "cma")
    path = tmp_path / "chain.json"
    path.write_text(text)
    back = P.read_chain(path)
    assert back["params"] == {"ratio": 4.0, "threshold_db": -20.123457} and back["sample_rate"] == 44100
    for edit, message in ((dict(format="x"), "not a track-chain file"), (dict(version=2), "version 2"),
                          (dict(sample_rate=True), "sample_rate"), (dict(params={"ratio": "4"}), "finite number")):
        path.write_text(json.dumps({**data, **edit}))
        with pytest.raises(ValueError, match=message):
            P.read_chain(path)
    with pytest.raises(ValueError, match="not finite"):
        P.chain_text({"ratio": float("nan")}, 44100)
