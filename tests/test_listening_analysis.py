"""automix_lite.listening.analysis: the statistics checked against scipy / scikit-posthocs / statsmodels on
known data, post-screening, the simulated panel, the power analysis, bad input and the CLI."""

from __future__ import annotations

import inspect
import itertools
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from conftest import one_error, run_cli
from scipy import stats
from statsmodels.stats.multitest import multipletests

from automix_lite.listening import analysis as A

SYSTEMS = ["dmc", "mono", "random"]


def known_panel(n_listeners=6, pages=("A", "B"), seed=3, design="mushra", reference=True):
    """Fixed ratings: every listener rates every system (and the hidden reference) on every page."""
    rng = np.random.default_rng(seed)
    means = {"dmc": 70, "mono": 55, "random": 50, "anchor_lp35": 20}
    rows = []
    for li in range(n_listeners):
        for p in pages:
            for s, m in means.items():
                rows.append((f"L{li}", design, p, s, float(np.clip(round(m + rng.normal(0, 12)), 0, 100)), 60000.0))
            if reference:
                rows.append((f"L{li}", design, p, "reference", float(100 - rng.integers(0, 5)), 60000.0))
    df = pd.DataFrame(rows, columns=["session", "design", "page", "stimulus", "score", "time_ms"])
    df["experience"], df["equipment"], df["comments"] = "professional", "headphones", "fine, thanks"
    return df


@pytest.fixture(scope="module")
def panel():
    return known_panel(n_listeners=8)  # 8 blocks per page (scipy: permutation test), 16 overall (asymptotic)


@pytest.fixture(scope="module")
def result(panel):
    return A.analyse(panel, n_boot=200)


def conds_of(df):
    return sorted(s for s in df["stimulus"].unique() if not s.startswith("anchor_"))


def row(res, scope, test):
    t = res.tests[(res.tests["scope"] == scope) & (res.tests["test"] == test)]
    assert len(t) == 1
    return t.iloc[0]


def pairs_of(res, scope, test):
    return res.pairwise[(res.pairwise["scope"] == scope) & (res.pairwise["test"] == test)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- statistics


def test_kruskal_equals_scipy_per_page_and_overall(panel, result):
    conds = conds_of(panel)
    assert result.conditions == conds  # anchors are left out of the tests by default
    for scope in ["A", "B", "overall"]:
        d = panel if scope == "overall" else panel[panel["page"] == scope]
        groups = [d.loc[d["stimulus"] == c, "score"].to_numpy() for c in conds]
        h, p = stats.kruskal(*groups)
        r = row(result, scope, "kruskal")
        assert r["statistic"] == pytest.approx(h, rel=1e-12) and r["p"] == pytest.approx(p, rel=1e-9)
        n = sum(len(g) for g in groups)
        assert r["df"] == len(conds) - 1 and r["n"] == n
        assert r["effect_size"] == pytest.approx(h / (n - 1))  # epsilon-squared
        assert r["effect_size"] == pytest.approx(h / ((n ** 2 - 1) / (n + 1)))


def test_friedman_equals_scipy_with_listener_page_blocks(panel, result):
    conds = conds_of(panel)
    for scope in ["A", "B", "overall"]:
        d = panel if scope == "overall" else panel[panel["page"] == scope]
        wide = d.pivot_table(index=["session", "page"], columns="stimulus", values="score")[conds]
        chi, p = stats.friedmanchisquare(*wide.to_numpy().T)
        r = row(result, scope, "friedman")
        assert r["statistic"] == pytest.approx(chi, rel=1e-12) and r["p"] == pytest.approx(p, rel=1e-9)
        assert r["blocks"] == len(wide)
        assert r["effect_size"] == pytest.approx(chi / (len(wide) * (len(conds) - 1)))  # Kendall's W


def test_friedman_with_listener_blocks_uses_listener_means(panel):
    res = A.analyse(panel, blocks="listener", n_boot=0)
    conds = conds_of(panel)
    means = panel.groupby(["session", "stimulus"])["score"].mean().unstack()[conds]
    chi, p = stats.friedmanchisquare(*means.to_numpy().T)
    r = row(res, "overall", "friedman")
    assert r["statistic"] == pytest.approx(chi) and r["p"] == pytest.approx(p) and r["blocks"] == 8
    for _, pr in pairs_of(res, "overall", "wilcoxon").iterrows():
        assert pr["p"] == pytest.approx(stats.wilcoxon(means[pr["group1"]], means[pr["group2"]]).pvalue, rel=1e-9)


def test_wilcoxon_pairs_equal_scipy_and_holm_is_applied(panel, result):
    conds = conds_of(panel)
    for scope in ["A", "B", "overall"]:
        d = panel if scope == "overall" else panel[panel["page"] == scope]
        wide = d.pivot_table(index=["session", "page"], columns="stimulus", values="score")[conds]
        t = pairs_of(result, scope, "wilcoxon")
        assert list(zip(t["group1"], t["group2"])) == list(itertools.combinations(conds, 2))
        ref = [stats.wilcoxon(wide[a], wide[b]) for a, b in itertools.combinations(conds, 2)]
        assert np.allclose(t["p"], [r.pvalue for r in ref], rtol=1e-9, atol=0)
        assert np.allclose(t["statistic"], [r.statistic for r in ref])
        assert np.allclose(t["p_adj"], multipletests([r.pvalue for r in ref], method="holm")[1], rtol=1e-12)
        assert np.allclose(t["mean_diff"], [(wide[a] - wide[b]).mean() for a, b in itertools.combinations(conds, 2)])
        assert np.allclose(t["effect_size"], [A.rank_biserial(wide[a], wide[b])
                                              for a, b in itertools.combinations(conds, 2)])
        assert (t["reject"] == (t["p_adj"] <= 0.05)).all()


def test_holm_matches_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert np.allclose(A.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(A.holm([0.3, 0.6]), [0.6, 0.6])
    assert np.allclose(A.holm([0.5, 0.9, 0.7]), [1.0, 1.0, 1.0])  # capped at 1
    assert np.allclose(A.holm(p), multipletests(p, method="holm")[1])
    got = A.holm([0.01, np.nan, 0.04])  # NaN leaves the family: m = 2
    assert np.isnan(got[1]) and np.allclose(got[[0, 2]], [0.02, 0.04])
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 0.2, (5, 6))
    assert np.allclose(A.holm(batch), [multipletests(b, method="holm")[1] for b in batch])


def test_rank_biserial_by_hand():
    # d = 1, 2, -3, 4: ranks 1, 2, 3, 4; R+ = 7, R- = 3: r = 4 / 10
    assert A.rank_biserial([11, 12, 7, 14], [10, 10, 10, 10]) == pytest.approx(0.4)
    assert A.rank_biserial([5, 6, 7], [1, 1, 1]) == 1.0 and A.rank_biserial([1, 1], [5, 6]) == -1.0
    assert A.rank_biserial([3, 5, 4], [3, 4, 5]) == pytest.approx(0.0)  # the zero is dropped
    assert np.isnan(A.rank_biserial([1, 2], [1, 2]))


def test_conover_equals_scikit_posthocs_called_directly(panel, result):
    conds = conds_of(panel)
    for scope in ["A", "B", "overall"]:
        d = panel if scope == "overall" else panel[panel["page"] == scope]
        d = d[d["stimulus"].isin(conds)]
        direct = sp.posthoc_conover(d, val_col="score", group_col="stimulus", p_adjust="holm")
        raw = sp.posthoc_conover(d, val_col="score", group_col="stimulus")
        t = pairs_of(result, scope, "conover")
        for _, r in t.iterrows():
            assert r["p_adj"] == pytest.approx(direct.loc[r["group1"], r["group2"]], rel=1e-12)
            assert r["p"] == pytest.approx(raw.loc[r["group1"], r["group2"]], rel=1e-12)
        assert np.allclose(result.pvalues(scope, "conover").loc[conds, conds], direct.loc[conds, conds])
        wide = d.pivot_table(index=["session", "page"], columns="stimulus", values="score")[conds]
        direct_f = sp.posthoc_conover_friedman(wide.reset_index(drop=True), p_adjust="holm")
        for _, r in pairs_of(result, scope, "conover_friedman").iterrows():
            assert r["p_adj"] == pytest.approx(direct_f.loc[r["group1"], r["group2"]], rel=1e-12)


def test_nemenyi_option_equals_scikit_posthocs(panel):
    res = A.analyse(panel, friedman_posthoc="nemenyi", n_boot=0)
    conds = conds_of(panel)
    wide = panel.pivot_table(index=["session", "page"], columns="stimulus", values="score")[conds]
    direct = sp.posthoc_nemenyi_friedman(wide.reset_index(drop=True))
    for _, r in pairs_of(res, "overall", "nemenyi_friedman").iterrows():
        assert r["p_adj"] == pytest.approx(direct.loc[r["group1"], r["group2"]], rel=1e-12)


def test_vectorised_wilcoxon_equals_scipy_auto_on_every_kind_of_sample():
    rng = np.random.default_rng(1)
    cases = 0
    for n in (4, 9, 13, 14, 30, 51):  # scipy: exact, permutation (n <= 13 with ties or zeros), asymptotic
        for kind in ("continuous", "ties", "zeros", "all_zero") if n != 13 else ("continuous", "ties"):
            for _ in range(1 if n <= 13 and kind != "continuous" else 3):  # scipy's permutation test is slow
                if kind == "continuous":
                    d = rng.normal(2, 5, n)
                elif kind == "ties":
                    d = rng.integers(-4, 8, n).astype(float)
                    d[d == 0] = 1.0
                elif kind == "zeros":
                    d = rng.integers(-3, 6, n).astype(float)
                    d[0] = 0.0
                else:
                    d = np.zeros(n)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # all zeros: scipy divides by zero
                    want = stats.wilcoxon(d).pvalue
                got = A._wilcoxon_p(d[None])[0]
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12, nan_ok=True), (n, kind, d)
                cases += 1
    assert cases == 52


def test_vectorised_conover_friedman_equals_scikit_posthocs():
    rng = np.random.default_rng(2)
    x = np.round(rng.normal([60, 65, 50, 70], 10, (5, 20, 4)))
    pairs = list(itertools.combinations(range(4), 2))
    got = A._conover_friedman_p(x, pairs)
    for i in range(5):
        direct = sp.posthoc_conover_friedman(pd.DataFrame(x[i]))
        assert np.allclose(got[i], [direct.iloc[a, b] for a, b in pairs], rtol=1e-10)


def test_summary_intervals(panel, result):
    s = result.summary[(result.summary["scope"] == "overall") & (result.summary["stimulus"] == "dmc")].iloc[0]
    x = panel.loc[panel["stimulus"] == "dmc", "score"].to_numpy()
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert s["mean"] == pytest.approx(x.mean())
    assert s["mean_ci_low"] == pytest.approx(lo) and s["mean_ci_high"] == pytest.approx(hi)
    assert s["median"] == np.median(x) and s["median_ci_low"] <= s["median"] <= s["median_ci_high"]
    assert set(result.summary["role"]) == {"reference", "system", "anchor"}  # anchors are summarised, not tested


def test_table14_layout_and_matrix(result):
    t = result.table14()  # Kruskal-Wallis + Conover over all passages, as the thesis' Table 14
    assert list(t.columns) == ["Group 1", "Group 2", "Mean Diff.", "P_adj", "Reject"]
    assert len(t) == 6 and list(t["Group 1"][:3]) == ["dmc"] * 3  # pairs in alphabetical order
    m = result.pvalues("A", "wilcoxon")
    assert np.allclose(m.to_numpy(), m.to_numpy().T) and np.allclose(np.diag(m), 1)
    with pytest.raises(ValueError, match="no 'kruskal'"):
        result.table14(test="kruskal")
    md = result.to_markdown()
    assert "| Group 1 | Group 2 | Mean Diff. | P_adj | Reject |" in md and "SIMULATED" not in md


# ---------------------------------------------------------------------------------------------- screening


def screening_panel():
    """Eight pages; listeners built to pass or fail the hidden-reference rule (below 90 on > 15 % of pages)."""
    ref = {"good": [100] * 8, "one_low": [85] + [100] * 7, "two_low": [85, 80] + [100] * 6,
           "at_90": [90] * 8, "all_low": [50] * 8, "fast": [100] * 8}
    rows = []
    for who, scores in ref.items():
        for p, r in enumerate(scores):
            t = 5000.0 if who == "fast" else 60000.0
            rows += [(who, "mushra", f"p{p}", "reference", float(r), t),
                     (who, "mushra", f"p{p}", "sysA", 60.0 + p, t), (who, "mushra", f"p{p}", "sysB", 40.0 + p, t)]
    return pd.DataFrame(rows, columns=["session", "design", "page", "stimulus", "score", "time_ms"])


def test_post_screening_excludes_exactly_the_listeners_built_to_fail():
    df = screening_panel()
    res = A.analyse(df, n_boot=0)
    assert sorted(res.excluded["session"]) == ["all_low", "two_low"]  # one_low: 1/8 = 12.5 % <= 15 %; at_90 kept
    reason = res.excluded.set_index("session").loc["two_low", "reason"]
    assert "below 90 on 2 of 8 pages (25 % > 15 %)" in reason
    assert set(res.data["session"]) == {"good", "one_low", "at_90", "fast"}
    assert res.summary.query("scope == 'overall' and stimulus == 'sysA'")["listeners"].iloc[0] == 4
    assert any("excluded 2 of 6" in n for n in res.notes)
    # the thresholds are parameters
    assert sorted(A.analyse(df, max_fraction=0.3, n_boot=0).excluded["session"]) == ["all_low"]
    assert sorted(A.analyse(df, threshold=95, n_boot=0).excluded["session"]) == ["all_low", "at_90", "two_low"]
    timed = A.analyse(df, min_time_s=60, n_boot=0).excluded.set_index("session")
    assert sorted(timed.index) == ["all_low", "fast", "two_low"] and "40 s in all" in timed.loc["fast", "reason"]
    assert A.analyse(df, screen=False, n_boot=0).excluded.empty


def test_no_reference_no_screening():
    df = known_panel(reference=False, design="ape")
    res = A.analyse(df, n_boot=0)
    assert res.excluded.empty and any("no hidden reference" in n for n in res.notes)


def test_everyone_excluded_is_an_error():
    df = screening_panel()
    df = df[df["session"].isin(["all_low", "two_low"])]
    with pytest.raises(ValueError, match="excluded every listener"):
        A.analyse(df)


# ---------------------------------------------------------------------------------------------- inputs


def test_csv_inputs_one_file_several_files_joined_files_and_aliases(tmp_path, panel):
    paths = []
    for who, g in panel.groupby("session"):
        paths.append(tmp_path / f"{who}.csv")
        g.to_csv(paths[-1], index=False)
    joined = tmp_path / "all.csv"
    joined.write_text("".join(p.read_text() for p in paths))  # `cat *.csv`: a header line per participant
    base = A.load_ratings(panel)
    for source in (paths, joined, [str(p) for p in paths]):
        got = A.load_ratings(source)
        assert len(got) == len(base) and got["score"].sum() == base["score"].sum()
        assert {"experience", "equipment", "comments"} <= set(got.columns)
    page_style = panel.rename(columns={"session": "session_id", "page": "trial_id"})
    page_style["stimulus"] = page_style["stimulus"].replace({"anchor_lp35": "anchor_lp3500"})
    page_style["test_id"] = "abc123"
    res = A.analyse(page_style, n_boot=0)
    assert res.settings["anchors"] == ["anchor_lp3500"] and res.conditions == conds_of(panel)


BAD = [
    (lambda d: d.drop(columns=["score"]), "lacks the column score"),
    (lambda d: d.drop(columns=["session", "time_ms"]), "lacks the columns session, time_ms"),
    (lambda d: d.assign(score=d["score"].where(d.index != 3, 101.0)), "must lie in 0-100; found 101"),
    (lambda d: d.assign(score=d["score"].where(d.index != 3, -0.5)), "must lie in 0-100; found -0.5"),
    (lambda d: d.assign(score=d["score"].where(d.index != 4, np.nan)), r"1 score\(s\) are missing \(NaN\)"),
    (lambda d: d.assign(score=d["score"].astype(object).where(d.index != 4, "good")), "'good'.*is not a number"),
    (lambda d: d.assign(score=d["score"].where(d["session"] != "L2", np.nan)), "listener L2 rated nothing"),
    (lambda d: d[d["stimulus"] == "dmc"], "only one stimulus"),
    (lambda d: d[d["stimulus"].isin(["reference", "anchor_lp35"])].assign(stimulus=lambda x: x["stimulus"].replace(
        {"reference": "anchor_mono"})), "fewer than two systems"),
    (lambda d: d.assign(design=np.where(d["session"] == "L0", "ape", "mushra")), "mixes the designs ape, mushra"),
    (lambda d: d.assign(design="abx"), "design must be 'mushra' or 'ape'"),
    (lambda d: pd.concat([d, d.iloc[:2]]), "more than once"),
    (lambda d: d.assign(test_id=np.where(d["session"] == "L0", "t1", "t2")), "do not pool different tests"),
    (lambda d: d.assign(page="overall"), "a page is called 'overall'"),
    (lambda d: d.assign(time_ms="slow"), "time_ms must be"),
    (lambda d: d.iloc[:0], "holds no ratings"),
]


@pytest.mark.parametrize("make, message", BAD)
def test_bad_input_is_one_clear_value_error(panel, make, message):
    with pytest.raises(ValueError, match=message):
        A.analyse(make(panel.copy()))


def test_bad_files_and_settings(tmp_path, panel):
    with pytest.raises(ValueError, match="no such file"):
        A.load_ratings(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        A.load_ratings(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="no ape ratings"):
        A.load_ratings(panel, design="ape")
    for kw, msg in (({"blocks": "page"}, "blocks must"), ({"friedman_posthoc": "dunn"}, "friedman_posthoc"),
                    ({"p_adjust": None}, "p_adjust must"), ({"alpha": 1.5}, "alpha must"),
                    ({"max_fraction": 1.0}, "max_fraction")):
        with pytest.raises(ValueError, match=msg):
            A.analyse(panel, **kw)


def test_incomplete_blocks_are_left_out_of_repeated_measures_tests(panel):
    df = panel.drop(panel.index[(panel["session"] == "L0") & (panel["page"] == "A") & (panel["stimulus"] == "mono")])
    res = A.analyse(df, n_boot=0)
    assert row(res, "overall", "friedman")["blocks"] == 15 and row(res, "overall", "kruskal")["n"] == 63
    assert any("1 listener x page block(s)" in n for n in res.notes)


def test_two_conditions_skip_friedman_but_run_wilcoxon(panel):
    res = A.analyse(panel[panel["stimulus"].isin(["dmc", "mono"])], n_boot=0)
    assert set(res.tests["test"]) == {"kruskal"} and set(res.pairwise["test"]) == {"conover", "wilcoxon"}
    assert any("three or more conditions" in n for n in res.notes)


# ---------------------------------------------------------------------------------------------- simulation


def test_simulated_panel_layout_and_model():
    df = A.simulate_panel({"dmc": 70, "mono": 55}, n_listeners=10, pages=3, seed=4, careless=2)
    assert list(df.columns[:6]) == list(A.REQUIRED_COLUMNS) and df.attrs["simulated"] and df["simulated"].all()
    assert "SIMULATED" in df.attrs["model"] and df["comments"].str.startswith("simulated listener").all()
    assert len(df) == 10 * 3 * 5 and set(df["stimulus"]) == {"reference", "dmc", "mono", "anchor_lp3500", "anchor_mono"}
    assert sorted(df.loc[df["careless"], "session"].unique()) == ["sim09", "sim10"]
    ref = df[(df["stimulus"] == "reference") & ~df["careless"]]["score"]
    assert ref.min() >= 85 and (df["score"] == df["score"].round()).all() and df["score"].between(0, 100).all()
    careful = df[~df["careless"]]
    assert careful.groupby("stimulus")["score"].mean()["dmc"] > careful.groupby("stimulus")["score"].mean()["mono"]
    assert df.equals(A.simulate_panel({"dmc": 70, "mono": 55}, n_listeners=10, pages=3, seed=4, careless=2))
    ape = A.simulate_panel({"a": 50, "b": 60}, design="ape", reference=False, careless=0, seed=1)
    assert set(ape["stimulus"]) == {"a", "b"} and set(ape["design"]) == {"ape"}
    with pytest.raises(ValueError, match="design must"):
        A.simulate_panel({"a": 1, "b": 2}, design="abx")
    with pytest.raises(ValueError, match="hidden reference's name"):
        A.simulate_panel({"reference": 90, "b": 2})


def test_screening_of_a_simulated_panel_removes_the_careless_listeners():
    for seed in range(3):
        df = A.simulate_panel({"dmc": 70, "mono": 55, "random": 50}, n_listeners=8, pages=4, seed=seed, careless=2)
        res = A.analyse(df, n_boot=0)
        assert sorted(res.excluded["session"]) == sorted(df.loc[df["careless"], "session"].unique())
        assert res.simulated and "SIMULATED" in res.to_markdown() and A.SIMULATED_NOTE in res.notes


def test_equal_true_means_give_about_alpha_false_positives():
    # the vectorised power analysis with no effect: the false-positive rate of Wilcoxon + Holm
    fp = A.power_analysis(effect=0, n_listeners=(8,), n_sims=2000, seed=1)
    assert 0.035 <= fp["power"].iloc[0] <= 0.065, fp
    # the full analysis on simulated panels with three equal systems: the family-wise rate stays small
    hits = 0
    for seed in range(20):
        df = A.simulate_panel({"a": 60, "b": 60, "c": 60}, n_listeners=8, pages=3, seed=seed, reference=False,
                              anchors={}, careless=0)
        res = A.analyse(df, n_boot=0)
        hits += bool(pairs_of(res, "overall", "wilcoxon")["reject"].any())
    assert hits <= 3  # Binomial(20, ~0.05): P(> 3) < 2 %


def test_listener_page_blocks_are_anti_conservative_when_listeners_differ_in_taste():
    kw = dict(effect=0, n_listeners=(12,), listener_system_sd=6.0, n_sims=1000, seed=3)
    assert A.power_analysis(**kw)["power"].iloc[0] > 0.09  # pseudo-replication: the pages of one listener
    assert A.power_analysis(**kw, blocks="listener")["power"].iloc[0] < 0.07


def test_a_large_effect_is_detected_by_every_test():
    df = A.simulate_panel({"good": 75, "poor": 45, "middle": 60}, n_listeners=8, pages=3, seed=5)
    res = A.analyse(df, n_boot=0)
    for test in ("conover", "conover_friedman", "wilcoxon"):
        t = res.table14("overall", test).set_index(["Group 1", "Group 2"])
        assert t.loc[("good", "poor"), "Reject"] and t.loc[("good", "poor"), "Mean Diff."] > 20
    assert row(res, "overall", "kruskal")["p"] < 1e-6 and row(res, "overall", "friedman")["p"] < 1e-6


def test_power_rises_with_the_number_of_listeners():
    pw = A.power_analysis(effect=(6.0,), n_listeners=(2, 4, 8, 16), n_sims=400, seed=0)
    assert pw.attrs["simulated"] and pw["simulated"].all()
    power = pw["power"].to_numpy()
    assert power[-1] > 0.8 and power[0] < 0.4 and np.all(np.diff(power) > -0.03), pw
    assert (pw["ci_low"] <= pw["power"]).all() and (pw["power"] <= pw["ci_high"]).all()
    big = A.power_analysis(effect=(4.0, 12.0), n_listeners=(6,), n_sims=300)
    assert big["power"].iloc[1] > big["power"].iloc[0]
    fr = A.power_analysis(effect=(10.0,), n_listeners=(4, 12), others={"c": 50}, test="conover_friedman", n_sims=300)
    assert fr["power"].iloc[1] > fr["power"].iloc[0] and (fr["pairs"] == 3).all()


def test_power_analysis_tests_as_analyse_does():
    rng = np.random.default_rng(7)
    x = A._draw(rng, [60, 66, 55], 1, 6, 3, 8.0, 3.0, 10.0, 0.0, 0)
    rows = [(f"l{li}", "mushra", f"p{pi}", name, x[0, li, pi, si], 1000.0)
            for li in range(6) for pi in range(3) for si, name in enumerate(["A", "B", "C"])]
    df = pd.DataFrame(rows, columns=list(A.REQUIRED_COLUMNS))
    res = A.analyse(df, n_boot=0)
    for test in ("wilcoxon", "conover_friedman"):
        want = pairs_of(res, "overall", test)["p_adj"].to_numpy()
        assert np.allclose(A._pair_pvalues(x, test, "listener_page")[0], want, rtol=1e-9)


def test_power_analysis_bad_arguments():
    with pytest.raises(ValueError, match="three or more"):
        A.power_analysis(test="conover_friedman")
    with pytest.raises(ValueError, match="test must"):
        A.power_analysis(test="t")


# ---------------------------------------------------------------------------------------------- outputs


def test_plots_return_figures(result):
    from matplotlib.figure import Figure

    fig = result.plot("page")
    assert isinstance(fig, Figure) and sum(ax.get_visible() for ax in fig.axes) == 2
    assert len(A.plot_scores(result, by="overall", kind="violin").axes) == 1
    assert isinstance(A.plot_scores(known_panel()), Figure)
    with pytest.raises(ValueError, match="by must"):
        result.plot("listener")


def test_write_tables_report_and_plots_atomically(tmp_path, result):
    out = tmp_path / "res"
    paths = result.write(out)
    assert sorted(os.listdir(out)) == sorted(A.OUTPUT_FILES)
    pv = pd.read_csv(out / "pvalues.csv")
    assert set(pv["test"]) == {"conover", "conover_friedman", "wilcoxon"} and set(pv["scope"]) == {"A", "B", "overall"}
    assert pd.read_csv(out / "tests.csv").shape[0] == 6
    assert (out / "scores_overall.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: os.path.getmtime(p) for p in paths}
    with pytest.raises(FileExistsError, match="--overwrite"):
        result.write(out)
    assert {p: os.path.getmtime(p) for p in paths} == before and sorted(os.listdir(out)) == sorted(A.OUTPUT_FILES)
    result.write(out, overwrite=True)
    with pytest.raises(ValueError, match="not a folder"):
        result.write(out / "report.md")


def test_cli_as_a_subprocess_writes_and_refuses_to_overwrite(tmp_path):
    csv = tmp_path / "sim.csv"
    A.simulate_panel({"dmc": 70, "mono": 55, "random": 50}, n_listeners=6, pages=2, seed=0).to_csv(csv, index=False)
    cmd = [sys.executable, "-m", "automix_lite.cli", "listening-analyse", str(csv), "--out", str(tmp_path / "res")]
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "SIMULATED" in done.stdout and "| Group 1 | Group 2 | Mean Diff. | P_adj | Reject |" in done.stdout
    assert sorted(os.listdir(tmp_path / "res")) == sorted(A.OUTPUT_FILES)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 2 and "already exists; pass --overwrite" in one_error(again.stderr)


def test_cli_in_process(tmp_path, capsys):
    csv = tmp_path / "sim.csv"
    A.simulate_panel({"a": 70, "b": 55}, n_listeners=5, pages=2, seed=0).to_csv(csv, index=False)
    status, out, err = run_cli(capsys, "listening-analyse", csv)
    assert status == 0 and "wilcoxon: overall" in out and "--out DIR" in out
    status, out, err = run_cli(capsys, "listening-analyse", csv, "--out", tmp_path / "r", "--blocks", "listener")
    assert status == 0 and (tmp_path / "r" / "report.md").exists()
    status, out, err = run_cli(capsys, "listening-analyse", csv, "--out", tmp_path / "r", "--overwrite")
    assert status == 0
    shutil.copy(csv, tmp_path / "r" / "summary.csv")
    status, _, err = run_cli(capsys, "listening-analyse", tmp_path / "r" / "summary.csv", "--out", tmp_path / "r",
                             "--overwrite")
    assert status == 2 and "is the output" in one_error(err)
    bad = tmp_path / "bad.csv"
    pd.read_csv(csv).assign(score=150).to_csv(bad, index=False)
    status, _, err = run_cli(capsys, "listening-analyse", bad)
    assert status == 2 and "0-100" in one_error(err)
    status, _, err = run_cli(capsys, "listening-analyse", tmp_path / "nope.csv")
    assert status == 2 and "no such file" in one_error(err)
    status, _, err = run_cli(capsys, "listening-analyse", csv, "--out", tmp_path / "no" / "such")
    assert status == 2 and "does not exist" in one_error(err)


def test_a_csv_in_the_listening_pages_own_layout_is_accepted(tmp_path, panel):
    from automix_lite.listening.page import ANCHORS, CSV_COLUMNS

    page_csv = pd.DataFrame({c: "" for c in CSV_COLUMNS}, index=panel.index)
    page_csv["session_id"], page_csv["trial_id"] = panel["session"], panel["page"]
    page_csv["stimulus"] = panel["stimulus"].replace({"anchor_lp35": ANCHORS[0]})
    for c in ("design", "score", "time_ms", "experience", "equipment"):
        page_csv[c] = panel[c]
    page_csv["test_id"], page_csv["page_comment"] = "0123abcd", 'loud, "very" loud\nsecond line'
    page_csv.to_csv(tmp_path / "page.csv", index=False)
    res = A.analyse(tmp_path / "page.csv", n_boot=0)
    want = A.analyse(panel, n_boot=0)
    assert res.conditions == want.conditions and res.settings["anchors"] == [ANCHORS[0]]
    assert np.allclose(res.pairwise["p_adj"], want.pairwise["p_adj"])


def test_every_public_name_names_the_notebook():
    names = [n for n in A.__all__ if callable(getattr(A, n))]
    names += [f"ListeningAnalysis.{m}" for m in ("table14", "pvalues", "plot", "to_dict", "to_markdown", "write",
                                                 "excluded", "scopes")]
    for name in names:
        obj = A
        for part in name.split("."):
            obj = getattr(obj, part)
        assert "notebooks/16_listening_tests.ipynb" in inspect.getdoc(obj), name
    assert "notebooks/16_listening_tests.ipynb" in A.__doc__


def test_listeners_needed_reads_the_smallest_panel_reaching_the_level():
    table = pd.DataFrame({"effect": [0.0, 0.0, 5.0, 5.0, 5.0, 10.0, 10.0, 10.0, 15.0, 15.0, 15.0],
                          "n_listeners": [4, 8, 4, 8, 16, 4, 8, 16, 16, 4, 8],  # any row order
                          "power": [0.9, 0.9, 0.2, 0.5, 0.79, 0.5, 0.8, 0.95, 1.0, 0.81, 0.99]})
    assert A.listeners_needed(table) == {5.0: None, 10.0: 8, 15.0: 4}  # 0.79 < 0.8; effect 0 left out
    assert A.listeners_needed(table, level=0.5) == {5.0: 8, 10.0: 4, 15.0: 4}
    with pytest.raises(ValueError, match="between 0 and 1"):
        A.listeners_needed(table, level=80)
    pw = A.power_analysis(effect=(0.0, 12.0), n_listeners=(2, 4, 8, 16), n_sims=200, seed=0)
    need = A.listeners_needed(pw)
    assert list(need) == [12.0]
    n = need[12.0]
    at = dict(zip(pw.loc[pw["effect"] == 12.0, "n_listeners"], pw.loc[pw["effect"] == 12.0, "power"]))
    assert n is not None and at[n] >= 0.8 and all(at[m] < 0.8 for m in at if m < n)
