"""The lead-and-backing task (chapter 5.5): the one-track console, the rules, the level alteration, the models."""

import math

import numpy as np
import pytest
import torch

from automix_lite import data, dsp, lead_backing as lb

SR = data.SAMPLE_RATE


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def real_pair():
    return lb.pair(data.songs("songs", "test")[0]["id"], "natural", seconds=4.0)


def _tone(f, seconds=2.0, amp=0.1, phase=0.0):
    t = torch.arange(round(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * f * t + phase)


def test_one_track_console_with_the_engineers_lead_row_is_the_wet_lead_stem():
    entry = data.songs("songs", "val")[0]
    for engineer in lb.ENGINEERS:
        p = lb.pair(entry["id"], engineer)
        wet = lb.lead_console(p["lead"], p["truth"])[0]
        assert float(p["truth"]["master_gain_db"][0]) == 0.0  # folded into the gain
        assert float((wet - p["wet_lead"]).abs().max()) < 1e-5 * float(p["wet_lead"].abs().max())
        assert torch.allclose(p["backing"] + p["wet_lead"], p["mix"], atol=1e-6)
        assert torch.allclose(lb.render(p["lead"], p["backing"], p["truth"]), data.reproduce_mix(entry["id"], engineer),
                              atol=1e-5)


def test_rule_gain_hits_minus_3_lu_on_a_real_pair(real_pair):
    p = real_pair
    wet = lb.lead_console(p["lead"], lb.neutral_params())[0]
    g = lb.solve_gain(wet, p["backing"], SR)
    y = wet * 10 ** (g / 20)
    assert lb.lead_to_mix_lu(y, y + p["backing"], SR) == pytest.approx(-3.0, abs=0.1)


def test_rule_gain_matches_the_power_addition_closed_form_on_two_tones():
    lead = _tone(1000.0, amp=0.05).expand(2, -1)
    backing = _tone(3100.0, amp=0.2).expand(2, -1)
    g = lb.solve_gain(lead, backing, SR, target_lu=-6.0)
    ll, lbk = lb._lufs(lead, SR), lb._lufs(backing, SR)
    r = 10 ** (-6.0 / 10)
    assert g == pytest.approx(lbk + 10 * math.log10(r / (1 - r)) - ll, abs=0.05)


def test_masking_eq_picks_the_band_where_the_backing_covers_a_partial():
    lead = _tone(300.0) + _tone(1000.0) + _tone(3000.0)
    backing = (_tone(1000.0, amp=0.4, phase=1.0) + 1e-3 * torch.randn(lead.shape[0], generator=torch.Generator().manual_seed(0)))
    e = lb.masking_eq(lead, backing.expand(2, -1).contiguous(), SR)
    assert lb.BAND_EDGES[e["band"]] <= 1000.0 < lb.BAND_EDGES[e["band"] + 1]
    assert e["peak_gain_db"] == -3.0
    none = lb.masking_eq(lead, (0.01 * backing).expand(2, -1).contiguous(), SR)  # backing far below: nothing to cut
    assert none["peak_gain_db"] == 0.0


def test_t60_tempo_fit_recovers_the_line():
    rng = np.random.default_rng(0)
    tempo = rng.uniform(70, 160, 40)
    t60 = 2.4 - 0.006 * tempo + rng.normal(0, 0.02, 40)
    a, b = lb.fit_t60_tempo(tempo, t60)
    pb, pa = np.polyfit(tempo, t60, 1)
    assert (a, b) == pytest.approx((pa, pb), abs=1e-9)
    assert a == pytest.approx(2.4, abs=0.05) and b == pytest.approx(-0.006, abs=5e-4)


def test_compressor_rule_leaves_a_narrow_lead_alone_and_narrows_a_wide_one():
    g = torch.Generator().manual_seed(0)
    env = torch.repeat_interleave(torch.tensor([1.0, 0.05, 0.5, 0.02] * 3), SR // 4)
    wide = env * 0.3 * torch.randn(env.shape[0], generator=g)
    p = lb.neutral_params()
    before = lb.loudness_range_db(wide, SR)
    narrow = lb.rule_compressor(wide, p, None, SR, target_lra_db=before + 5)
    assert narrow["ratio"] == 1.0 and len(narrow["grid"]) == 1
    squeezed = lb.rule_compressor(wide, p, None, SR, target_lra_db=before - 8)
    assert squeezed["ratio"] > 1.0 and abs(squeezed["lra_db"] - (before - 8)) < abs(before - (before - 8))


def test_level_alteration_moves_only_the_direct_gain(real_pair):
    p = real_pair
    lead, back = p["lead"][: 3 * SR], p["backing"][:, : 3 * SR]
    f0 = lb.input_features(lead, back, p["tempo"])
    f6 = lb.input_features(lead * 10 ** (6 / 20), back, p["tempo"])
    assert np.allclose(lb.alter(f0, 6.0), f6, atol=0.02)
    truth = p["truth"]
    wet, mix = p["wet_lead"][:, : 3 * SR], p["mix"][:, : 3 * SR]
    t60 = float(truth["reverb_t60_s"][0])
    # the engineer's result does not change when the raw lead is louder: its fader is 6 dB lower
    altered = dict(truth, gain_db=truth["gain_db"] - 6.0)
    wet6 = lb.lead_console(lead * 10 ** (6 / 20), altered)[0]
    assert np.allclose(lb.intermediate_targets(wet6, wet6 + back, t60), lb.intermediate_targets(wet, mix, t60), atol=1e-3)
    d0, d6 = lb.direct_targets(truth), lb.direct_targets(truth, 6.0)
    assert d6[0] == pytest.approx(d0[0] - 6.0) and np.array_equal(d6[1:], d0[1:])


def test_the_rules_do_not_depend_on_the_raw_leads_level(real_pair):
    p = real_pair
    lead, back = p["lead"][: 3 * SR], p["backing"][:, : 3 * SR]
    c = {"t60_a": 2.0, "t60_b": -0.005, "send_db": -14.0, "return_db": 0.0}
    r0 = lb.rule_params(lead, back, p["tempo"], constants=c)
    r9 = lb.rule_params(lead * 10 ** (-9 / 20), back, p["tempo"], constants=c)
    assert r9["eq"]["band"] == r0["eq"]["band"]
    assert float(r9["params"]["gain_db"][0, 0]) == pytest.approx(float(r0["params"]["gain_db"][0, 0]) + 9.0, abs=0.05)


def _tiny_set(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(lb.FEATURE_NAMES)))
    return {"x": x, "intermediate": np.stack([x[:, 0] - x[:, 1], 3 + x[:, 2], 1 + 0.1 * x[:, 3]], 1),
            "direct": np.stack([-x[:, 48], x[:, 4], 0.5 * x[:, 5], 1 + 0.1 * x[:, 3]], 1)}


@pytest.mark.parametrize("kind", ["intermediate", "direct"])
def test_a_tiny_training_run_lowers_the_loss(kind):
    tr, va = _tiny_set(256), _tiny_set(24, 1)
    model, h = lb.train_model(kind, tr, va, steps=200, batch_size=32, lr=5e-3, val_every=50)
    assert np.mean(h["loss"][-20:]) < 0.7 * np.mean(h["loss"][:5])
    assert h["val_step"] == [50, 100, 150, 200] and h["best_val"] == min(h["val_loss"])
    assert model.predict(va["x"]).shape == (24, 3 if kind == "intermediate" else 4)


def test_the_inverse_peak_undoes_the_random_eq_exactly():
    f = np.geomspace(30, 18000, 200)
    c, g = np.array([250.0, 1200.0, 7000.0]), np.array([9.0, -12.0, 4.5])
    h = lb.peak_response_db(f, c, g) + lb.peak_response_db(f, c, -g)
    assert float(h.abs().max()) < 1e-6
    power = lb.lead_spectra("val")[:1, 0]
    flat = lb.spectral_error_db(power, np.zeros_like(power))
    assert flat[0] == 0.0


def test_a_tiny_eq_model_learns_to_lower_its_loss():
    spectra = lb.lead_spectra("val")
    model, h = lb.train_eq_model(spectra, spectra, steps=60, batch_size=32, lr=3e-3, val_every=30)
    assert np.mean(h["loss"][-10:]) < np.mean(h["loss"][:5])
    c = lb.predict_eq(model, data.load_song(data.songs("songs", "val")[0]["id"])["tracks"][-1])
    assert lb.EQ_RANGE["centre_hz"][0] <= c["centre_hz"] <= lb.EQ_RANGE["centre_hz"][1] and abs(c["gain_db"]) <= 12


def test_bad_input_raises_one_clear_error(real_pair):
    p = real_pair
    lead, back = p["lead"], p["backing"]
    with pytest.raises(ValueError, match="mono stem"):
        lb.rule_params(back, back, 100.0)
    with pytest.raises(ValueError, match="stereo mix"):
        lb.rule_params(lead, lead, 100.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        lb.rule_params(torch.full_like(lead, float("nan")), back, 100.0)
    with pytest.raises(ValueError, match="silent"):
        lb.rule_params(torch.zeros_like(lead), back, 100.0)
    with pytest.raises(ValueError, match="tempo must be a positive"):
        lb.rule_params(lead, back, 0.0)
    with pytest.raises(ValueError, match="same excerpt"):
        lb.rule_params(lead, back[:, :-10], 100.0)
    with pytest.raises(ValueError, match="unknown engineer"):
        lb.pair(data.songs("songs", "test")[0]["id"], "loud")
    with pytest.raises(ValueError, match="exactly one 'lead'"):
        lb.lead_index(["drums", "bass"])
    with pytest.raises(ValueError, match="same length"):
        lb.fit_t60_tempo([100, 120], [1.0])


def test_results_table_and_read_results(tmp_path):
    rows = []
    for s in ("a", "b", "c"):
        for eng in lb.ENGINEERS:
            for k, m in enumerate(("engineer", "naive", "rules")):
                rows.append({"song": s, "engineer": eng, "method": m, "stereo": 0.5 * k, "spectral MAPE": k,
                             "lmr_error_lu": k + (s == "a"), "gain_error_db": 2.0 * k,
                             "t60_error_s": None if m == "naive" else 0.1 * k})
    res = {"rows": rows, "split": "test"}
    table = lb.results_table(res)
    assert "| rules | 1.00 ± 0.00 |" in table and "| naive |" in table and "—" in table
    assert "rules - naive" in table
    s = lb.summarize(res)
    assert s["paired"]["rules - naive"]["lmr_error_lu"][0] == pytest.approx(1.0)
    alt = lb.altered_table({"altered": {"+10": res}})
    assert "| +10 dB | natural | rules | 2.33 ± 1.43 | 4.00 ± 0.00 | 1.00 ± 0.00 |" in alt
    assert lb.read_results(str(tmp_path / "absent.json")) is None
    path = tmp_path / "r.json"
    path.write_text('{"evaluation": ' + __import__("json").dumps(res) + "}")
    assert lb.results_table(lb.read_results(str(path))) == table
