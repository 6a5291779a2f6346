"""The statistics of a listening test, taught in ``notebooks/16_listening_tests.ipynb`` (chapter 4.2).

:func:`analyse` reads the long-format results CSV that the listening-test page downloads (one row per
rating), post-screens the listeners (ITU-R BS.1534-3's hidden-reference rule), and runs, per passage and
over all passages:

- the **Kruskal-Wallis H-test** with **Conover's post-hoc test** (Holm-adjusted), as the thesis does
  (Steinmetz 2020, sec. 5.6.2, Table 14). It treats the ratings of each system as independent groups;
- the **repeated-measures** tests that fit a design where every listener rates every system on every
  page: the **Friedman test** with its post-hoc test (Conover's for Friedman, or Nemenyi's) and the
  pairwise **Wilcoxon signed-rank test** with a **Holm** adjustment.

It returns a :class:`ListeningAnalysis` of pandas tables (summary with 95 % intervals, test statistics,
pairwise p-values in the layout of the thesis' Table 14 and as systems x systems matrices, the screening)
with plots and :meth:`ListeningAnalysis.write` for ``automix listening-analyse CSV --out DIR``.

:func:`simulate_panel` makes a **simulated** panel in the same layout from a written-out model, and
:func:`power_analysis` estimates, by repeated simulation, how many listeners a test needs.

Input columns
-------------
Required: ``session`` (participant/session id), ``design`` (``mushra`` or ``ape``), ``page`` (passage id),
``stimulus`` (system name; ``reference`` is the hidden reference, names starting ``anchor_`` are anchors,
e.g. ``anchor_lp35``/``anchor_lp3500`` and ``anchor_mono``), ``score`` (0-100) and ``time_ms`` (time spent
on the page, ms; may be empty). The page's own names ``session_id`` and ``trial_id`` are accepted for
``session`` and ``page``. Every other column (``experience``, ``equipment``, ``comments``, ...) is kept and
not needed. Several CSV files (one per participant) may be given as a list, or concatenated into one file
(repeated header lines are dropped).
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["analyse", "load_ratings", "screen_listeners", "holm", "rank_biserial", "simulate_panel",
           "power_analysis", "listeners_needed", "plot_scores", "check_out_dir", "ListeningAnalysis",
           "REQUIRED_COLUMNS", "ALIASES", "OUTPUT_FILES"]

REQUIRED_COLUMNS = ("session", "design", "page", "stimulus", "score", "time_ms")
"""The columns :func:`load_ratings` needs (after :data:`ALIASES` are applied)."""

ALIASES = {"session_id": "session", "trial_id": "page"}
"""Other names accepted for a required column: the listening page's ``session_id`` and ``trial_id``."""

OUTPUT_FILES = ("summary.csv", "tests.csv", "pairwise.csv", "screening.csv", "pvalues.csv", "report.md",
                "scores_overall.png", "scores_by_page.png")
"""The files :meth:`ListeningAnalysis.write` (``automix listening-analyse --out DIR``) writes into DIR."""

REFERENCE = "reference"
OVERALL = "overall"
SIMULATED_NOTE = ("SIMULATED DATA: these ratings come from automix_lite.listening.simulate_panel, a model, "
                  "not from listeners.")


# --------------------------------------------------------------------------------------------------------
# reading and checking


def _read_csv(path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file.") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; give the CSV the listening page downloaded.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable CSV file ({str(err).splitlines()[0]}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _canonical(df: pd.DataFrame, where: str) -> pd.DataFrame:
    df = df.rename(columns={a: c for a, c in ALIASES.items() if a in df.columns and c not in df.columns})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(found: {', '.join(map(str, df.columns)) or 'none'}); the listening page's CSV has "
                         f"{', '.join(REQUIRED_COLUMNS)}.")
    return df


def _blank(v) -> bool:
    """An empty cell: None, NaN, pd.NA or blank text."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return True
    return isinstance(v, str) and v.strip() in ("", "nan", "NaN", "None")


def load_ratings(data, design: str | None = None) -> pd.DataFrame:
    """Read and check listening-test ratings; returns one DataFrame in the canonical columns.

    ``data``: a CSV path, a list of CSV paths (one per participant; concatenated), or a DataFrame. Aliases
    (:data:`ALIASES`) are renamed, repeated header rows (files joined with ``cat``) dropped, ids made
    strings, ``score`` and ``time_ms`` numbers. ``design`` keeps only that design (``"mushra"``/``"ape"``);
    without it, a mix of designs is an error. Raises one ``ValueError`` for: missing columns, an unknown
    design, ratings of different tests (``test_id``), a listener who rated nothing, a missing (NaN) or
    non-numeric score, a score outside 0-100, a stimulus rated twice on one page by one listener, fewer than
    two stimuli. Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    if isinstance(data, pd.DataFrame):
        frames, where = [_canonical(data.copy(), "the DataFrame")], "the DataFrame"
    else:
        paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        if not paths:
            raise ValueError("no CSV files given.")
        frames = [_canonical(_read_csv(p), str(p)) for p in paths]
        where = str(paths[0]) if len(paths) == 1 else f"the {len(paths)} CSV files"
    df = pd.concat(frames, ignore_index=True, sort=False)
    attrs = dict(getattr(data, "attrs", {}) or {}) if isinstance(data, pd.DataFrame) else {}
    for col in ("session", "design", "page", "stimulus"):
        df[col] = df[col].map(lambda v: "" if _blank(v) else str(v).strip())
    df = df[~((df["session"] == "session") & (df["stimulus"] == "stimulus"))  # a repeated header line
            & ~((df["session"] == "session_id") & (df["stimulus"] == "stimulus"))].reset_index(drop=True)
    if df.empty:
        raise ValueError(f"{where} holds no ratings.")
    for col in ("session", "page", "stimulus"):
        if (df[col] == "").any():
            raise ValueError(f"{where}: {int((df[col] == '').sum())} row(s) have an empty {col}.")
    df["design"] = df["design"].str.lower()
    bad = sorted(set(df["design"]) - {"mushra", "ape"})
    if bad:
        raise ValueError(f"{where}: design must be 'mushra' or 'ape', found {bad[0]!r}.")
    if design is not None:
        if design not in ("mushra", "ape"):
            raise ValueError(f"design must be 'mushra' or 'ape' (or None), not {design!r}.")
        df = df[df["design"] == design].reset_index(drop=True)
        if df.empty:
            raise ValueError(f"{where} holds no {design} ratings.")
    elif df["design"].nunique() > 1:
        raise ValueError(f"{where} mixes the designs {', '.join(sorted(set(df['design'])))}; analyse them "
                         "separately (design='mushra' or design='ape').")
    if "test_id" in df.columns:
        ids = sorted({str(v) for v in df["test_id"] if str(v).strip() not in ("", "nan")})
        if len(ids) > 1:
            raise ValueError(f"{where} holds ratings of {len(ids)} different tests (test_id {ids[0]!r}, "
                             f"{ids[1]!r}, ...); do not pool different tests: analyse each on its own.")
    raw = df["score"]
    score = pd.to_numeric(raw, errors="coerce")
    wrong = score.isna() & ~raw.map(_blank)
    if wrong.any():
        i = int(np.flatnonzero(wrong.to_numpy())[0])
        raise ValueError(f"{where}: the score {raw.iloc[i]!r} (session {df['session'].iloc[i]}, page "
                         f"{df['page'].iloc[i]}, stimulus {df['stimulus'].iloc[i]}) is not a number.")
    df["score"] = score.astype(float)
    nothing = df.groupby("session")["score"].apply(lambda s: bool(s.isna().all()))
    if nothing.any():
        who = list(nothing[nothing].index)
        raise ValueError(f"{where}: listener {who[0]} rated nothing (every score is empty)"
                         f"{f', and {len(who) - 1} more' if len(who) > 1 else ''}; remove them from the file.")
    if df["score"].isna().any():
        i = int(np.flatnonzero(df["score"].isna().to_numpy())[0])
        raise ValueError(f"{where}: {int(df['score'].isna().sum())} score(s) are missing (NaN), the first for "
                         f"session {df['session'].iloc[i]}, page {df['page'].iloc[i]}, stimulus "
                         f"{df['stimulus'].iloc[i]}; every row must hold a rating.")
    out = (df["score"] < 0) | (df["score"] > 100) | ~np.isfinite(df["score"])
    if out.any():
        i = int(np.flatnonzero(out.to_numpy())[0])
        raise ValueError(f"{where}: scores must lie in 0-100; found {df['score'].iloc[i]:g} (session "
                         f"{df['session'].iloc[i]}, page {df['page'].iloc[i]}, stimulus {df['stimulus'].iloc[i]}).")
    t = pd.to_numeric(df["time_ms"], errors="coerce")
    if (t.isna() & ~df["time_ms"].map(_blank)).any() or (t < 0).any():
        raise ValueError(f"{where}: time_ms must be a non-negative number of milliseconds (or empty).")
    df["time_ms"] = t.astype(float)
    if (df["page"] == OVERALL).any():
        raise ValueError(f"{where}: a page is called {OVERALL!r}, the name of the analysis over all pages; "
                         "rename it.")
    dup = df.duplicated(["session", "page", "stimulus"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise ValueError(f"{where}: listener {r['session']} rated {r['stimulus']!r} on page {r['page']!r} more "
                         f"than once ({int(dup.sum())} duplicated rows; the same CSV given twice?).")
    if df["stimulus"].nunique() < 2:
        raise ValueError(f"{where}: only one stimulus ({df['stimulus'].iloc[0]!r}) was rated; comparing "
                         "systems needs at least two.")
    df.attrs = attrs
    if "simulated" in df.columns:
        df.attrs["simulated"] = bool(df["simulated"].astype(str).str.lower().isin(["true", "1"]).any()) or \
            bool(attrs.get("simulated", False))
    return df


def _role(stimulus: str, reference: str, anchors) -> str:
    if stimulus == reference:
        return "reference"
    if (anchors is None and stimulus.startswith("anchor_")) or (anchors is not None and stimulus in anchors):
        return "anchor"
    return "system"


# --------------------------------------------------------------------------------------------------------
# post-screening


def screen_listeners(ratings: pd.DataFrame, reference: str = REFERENCE, threshold: float = 90.0,
                     max_fraction: float = 0.15, min_time_s: float | None = None) -> pd.DataFrame:
    """Post-screening: one row per listener, ``excluded`` and ``reason`` saying who fails and why.

    The hidden-reference rule of ITU-R BS.1534-3 (sec. 4.1.2): a listener is excluded if they rated the
    hidden reference (stimulus ``reference``) below ``threshold`` (90) on more than ``max_fraction`` (15 %)
    of the pages (test items) on which it appeared. With ``min_time_s`` a listener whose total time (the sum
    over pages of ``time_ms``, which the page repeats on every row of a page) is shorter is excluded too
    (the tutorial's advice: "exclude participants if their total testing time is too short"). Without a
    rated reference (APE without one) the reference rule does not apply. ``ratings``: from
    :func:`load_ratings`. Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    if not 0 <= max_fraction < 1:
        raise ValueError(f"max_fraction must lie in [0, 1), not {max_fraction}.")
    rows = []
    for session, g in ratings.groupby("session", sort=True):
        ref = g[g["stimulus"] == reference]
        pages = int(ref["page"].nunique())
        below = int((ref["score"] < threshold).sum())
        frac = below / pages if pages else float("nan")
        seconds = float(g.groupby("page")["time_ms"].max().sum(min_count=1)) / 1000.0
        reasons = []
        if pages and frac > max_fraction:
            reasons.append(f"rated the hidden reference below {threshold:g} on {below} of {pages} pages "
                           f"({100 * frac:.0f} % > {100 * max_fraction:g} %)")
        if min_time_s is not None and not (seconds >= min_time_s):
            reasons.append(f"spent {seconds:.0f} s in all (< {min_time_s:g} s)" if math.isfinite(seconds)
                           else "no time_ms recorded (min_time_s asks for it)")
        rows.append({"session": session, "pages": int(g["page"].nunique()), "reference_pages": pages,
                     "reference_below": below, "fraction_below": frac, "total_time_s": seconds,
                     "excluded": bool(reasons), "reason": "; ".join(reasons)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------
# statistics


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of the p-values ``p`` (last axis is one family; NaNs are left out).

    Sort the m p-values, p_(1) <= ... <= p_(m); the adjusted p_(i) is max_{j<=i} min(1, (m - j + 1) p_(j)),
    returned in the original order. Controls the family-wise error rate at alpha when p_adj <= alpha is
    rejected. Equals ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``. Taught in
    ``notebooks/16_listening_tests.ipynb``.
    """
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p.copy()
    nan = np.isnan(p)
    m = (~nan).sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(nan, np.inf, p), axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, axis=-1)
    j = np.arange(p.shape[-1])
    adj = np.minimum(1.0, np.maximum.accumulate(np.where(np.isnan(ps), 0.0, (m - j) * ps), axis=-1))
    adj = np.where(np.isnan(ps), np.nan, adj)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def rank_biserial(x, y) -> float:
    """Matched-pairs rank-biserial correlation of ``x`` against ``y``: r = (R+ - R-) / (R+ + R-).

    R+ and R- are the sums of the ranks of |x - y| over the pairs where x > y and x < y; zero differences
    are dropped (as the Wilcoxon test's default ``zero_method="wilcox"`` does). r lies in [-1, 1]: +1 when
    every listener rated x higher, 0 when the ranks balance (Kerby 2014). NaN if every difference is zero.
    Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    r = stats.rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def _adjust(p: np.ndarray, method: str | None) -> np.ndarray:
    if method is None:
        return np.asarray(p, float).copy()
    if method == "holm":
        return holm(p)
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **kw)


def _summary(data: pd.DataFrame, scope: str, roles: dict, order: list, n_boot: int, rng) -> list:
    rows = []
    for s in order:
        x = data.loc[data["stimulus"] == s, "score"].to_numpy(float)
        n = x.size
        if n == 0:
            continue
        mean, sd = float(x.mean()), float(x.std(ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
        if n > 1 and n_boot:
            med = np.median(x[rng.integers(0, n, size=(n_boot, n))], axis=1)
            lo, hi = np.percentile(med, [2.5, 97.5])
        else:
            lo = hi = float("nan")
        rows.append({"scope": scope, "stimulus": s, "role": roles[s], "n": n,
                     "listeners": int(data.loc[data["stimulus"] == s, "session"].nunique()),
                     "mean": mean, "sd": sd, "mean_ci_low": mean - half, "mean_ci_high": mean + half,
                     "median": float(np.median(x)), "median_ci_low": float(lo), "median_ci_high": float(hi)})
    return rows


def _blocks(data: pd.DataFrame, conds: list) -> pd.DataFrame:
    """The (listener, page) x conditions matrix of the complete blocks."""
    wide = data.pivot_table(index=["session", "page"], columns="stimulus", values="score", aggfunc="first")
    return wide.reindex(columns=conds).dropna()


def _pairs_table(conds, p_raw, p_adj, stat, mean_diff, scope, test, alpha, extra=None):
    rows = []
    for idx, (a, b) in enumerate(itertools.combinations(conds, 2)):
        row = {"scope": scope, "test": test, "group1": a, "group2": b, "mean_diff": mean_diff[idx],
               "statistic": stat[idx], "p": p_raw[idx], "p_adj": p_adj[idx],
               "reject": bool(p_adj[idx] <= alpha) if not np.isnan(p_adj[idx]) else False}
        if extra:
            row.update({k: v[idx] for k, v in extra.items()})
        rows.append(row)
    return rows


def _analyse_scope(data, conds, scope, *, alpha, p_adjust, friedman_posthoc, blocks):
    import scikit_posthocs as sp

    tests, pairs, notes = [], [], []
    k = len(conds)
    pairs_list = list(itertools.combinations(conds, 2))
    sub = data[data["stimulus"].isin(conds)]
    groups = [sub.loc[sub["stimulus"] == c, "score"].to_numpy(float) for c in conds]
    present = [c for c, g in zip(conds, groups) if g.size]
    n = int(sum(g.size for g in groups))
    # Kruskal-Wallis + Conover (independent groups, as in the thesis)
    if len(present) >= 2:
        try:
            h, p = _quiet(stats.kruskal, *[g for g in groups if g.size])
        except ValueError:
            h, p = float("nan"), float("nan")
        tests.append({"scope": scope, "test": "kruskal", "statistic": float(h), "df": len(present) - 1,
                      "p": float(p), "effect_size": float(h) / (n - 1) if n > 1 else float("nan"),
                      "effect_measure": "epsilon_squared", "n": n, "k": len(present), "blocks": np.nan})
        raw = _quiet(sp.posthoc_conover, sub, val_col="score", group_col="stimulus", p_adjust=None, sort=True)
        means = {c: g.mean() if g.size else np.nan for c, g in zip(conds, groups)}
        get = lambda m, a, b: float(m.loc[a, b]) if a in m.index and b in m.index else float("nan")  # noqa: E731
        praw = np.array([get(raw, a, b) for a, b in pairs_list])
        pairs += _pairs_table(conds, praw, _adjust(praw, p_adjust), [np.nan] * len(pairs_list),
                              [means[a] - means[b] for a, b in pairs_list], scope, "conover", alpha)
    # repeated measures: complete blocks only
    lp = _blocks(sub, conds)
    dropped = sub[["session", "page"]].drop_duplicates().shape[0] - len(lp)
    wide = lp.groupby(level="session").mean() if (scope == OVERALL and blocks == "listener") else lp
    nb = len(wide)
    if dropped:
        notes.append(f"{scope}: {dropped} listener x page block(s) without a rating of every condition left out "
                     "of the repeated-measures tests.")
    x = wide.to_numpy(float)
    if nb >= 2 and k >= 3:
        chi, p = _quiet(stats.friedmanchisquare, *x.T)
        tests.append({"scope": scope, "test": "friedman", "statistic": float(chi), "df": k - 1, "p": float(p),
                      "effect_size": float(chi) / (nb * (k - 1)), "effect_measure": "kendall_w", "n": nb * k,
                      "k": k, "blocks": nb})
        frame = pd.DataFrame(x, columns=conds)
        if friedman_posthoc == "conover":
            raw = _quiet(sp.posthoc_conover_friedman, frame, p_adjust=None)
        else:
            raw = _quiet(sp.posthoc_nemenyi_friedman, frame)
        praw = np.array([float(raw.loc[a, b]) for a, b in pairs_list])
        padj = _adjust(praw, p_adjust) if friedman_posthoc == "conover" else praw  # Nemenyi is single-step
        diffs = [float((wide[a] - wide[b]).mean()) for a, b in pairs_list]
        pairs += _pairs_table(conds, praw, padj, [np.nan] * len(pairs_list), diffs,
                              scope, f"{friedman_posthoc}_friedman", alpha)
    elif k < 3:
        notes.append(f"{scope}: the Friedman test needs three or more conditions; with two, the Wilcoxon test "
                     "is the repeated-measures test.")
    elif nb < 2:
        notes.append(f"{scope}: fewer than two complete blocks; no repeated-measures tests.")
    if nb >= 1:
        d = np.stack([wide[a].to_numpy(float) - wide[b].to_numpy(float) for a, b in pairs_list])  # (pairs, blocks)
        praw = list(_wilcoxon_p(d))  # = scipy.stats.wilcoxon(wide[a], wide[b]).pvalue, all pairs at once
        r = np.nan_to_num(stats.rankdata(np.where(d == 0, np.nan, np.abs(d)), axis=1, nan_policy="omit"))
        stat = list(np.minimum((r * (d > 0)).sum(axis=1), (r * (d < 0)).sum(axis=1)))  # scipy's statistic
        diffs, meds = list(d.mean(axis=1)), list(np.median(d, axis=1))
        rbs = [rank_biserial(wide[a], wide[b]) for a, b in pairs_list]
        pairs += _pairs_table(conds, praw, list(_adjust(np.array(praw), p_adjust)), stat, diffs, scope, "wilcoxon",
                              alpha, {"median_diff": meds, "effect_size": rbs,
                                      "effect_measure": ["rank_biserial"] * len(pairs_list)})
    return tests, pairs, notes


@dataclass
class ListeningAnalysis:
    """The result of :func:`analyse` (taught in ``notebooks/16_listening_tests.ipynb``).

    Tables (pandas DataFrames; ``scope`` is a page id or ``"overall"``):

    - ``summary``: per scope and stimulus: n, listeners, mean with a 95 % **t-interval** over the ratings
      (mean +- t_{0.975, n-1} sd / sqrt(n), as ITU-R BS.1534-3 reports), median with a 95 % **bootstrap
      percentile interval** (``n_boot`` resamples of the ratings, seeded);
    - ``tests``: Kruskal-Wallis (H, p, epsilon-squared) and Friedman (chi-square, p, Kendall's W);
    - ``pairwise``: every pair of conditions under ``conover`` (the Kruskal-Wallis post-hoc),
      ``conover_friedman`` or ``nemenyi_friedman`` and ``wilcoxon``: ``mean_diff`` (group1 - group2),
      ``p`` (unadjusted), ``p_adj`` (adjusted within the scope), ``reject`` (p_adj <= alpha), for Wilcoxon
      also ``median_diff`` and the rank-biserial ``effect_size``;
    - ``screening``: every listener, ``excluded`` and ``reason``; ``excluded`` is the failing rows;
    - ``data``: the ratings kept (after screening); ``conditions``: those compared by the tests.
    """

    summary: pd.DataFrame
    tests: pd.DataFrame
    pairwise: pd.DataFrame
    screening: pd.DataFrame
    data: pd.DataFrame
    conditions: list
    settings: dict
    notes: list = field(default_factory=list)
    simulated: bool = False

    @property
    def excluded(self) -> pd.DataFrame:
        """The listeners post-screening excluded, with the reason (``notebooks/16_listening_tests.ipynb``)."""
        return self.screening[self.screening["excluded"]].reset_index(drop=True)

    @property
    def scopes(self) -> list:
        """The pages in order, then ``"overall"`` (``notebooks/16_listening_tests.ipynb``)."""
        return list(self.settings["pages"]) + [OVERALL]

    def table14(self, scope: str = OVERALL, test: str = "conover") -> pd.DataFrame:
        """The pairwise results in the layout of the thesis' Table 14: Group 1, Group 2, Mean Diff.
        (group 1 - group 2, MUSHRA points), P_adj, Reject, one row per pair in alphabetical order
        (``notebooks/16_listening_tests.ipynb``)."""
        t = self.pairwise[(self.pairwise["scope"] == scope) & (self.pairwise["test"] == test)]
        if t.empty:
            raise ValueError(f"no {test!r} results for scope {scope!r}; tests: "
                             f"{', '.join(sorted(set(self.pairwise['test'])))}; scopes: {', '.join(self.scopes)}.")
        return pd.DataFrame({"Group 1": t["group1"].to_numpy(), "Group 2": t["group2"].to_numpy(),
                             "Mean Diff.": t["mean_diff"].to_numpy(), "P_adj": t["p_adj"].to_numpy(),
                             "Reject": t["reject"].to_numpy()})

    def pvalues(self, scope: str = OVERALL, test: str = "conover", adjusted: bool = True) -> pd.DataFrame:
        """The systems x systems matrix of (adjusted) p-values of ``test`` in ``scope`` (1 on the diagonal),
        the layout ``scikit_posthocs`` returns (``notebooks/16_listening_tests.ipynb``)."""
        t = self.pairwise[(self.pairwise["scope"] == scope) & (self.pairwise["test"] == test)]
        if t.empty:
            raise ValueError(f"no {test!r} results for scope {scope!r}.")
        k = len(self.conditions)
        m = pd.DataFrame(np.where(np.eye(k) == 1, 1.0, np.nan), index=self.conditions, columns=self.conditions)
        for _, r in t.iterrows():
            m.loc[r["group1"], r["group2"]] = m.loc[r["group2"], r["group1"]] = r["p_adj" if adjusted else "p"]
        m.index.name = f"{test} ({'adjusted: ' + str(self.settings['p_adjust']) if adjusted else 'unadjusted'})"
        return m

    def plot(self, by: str = "page", kind: str = "box"):
        """Box (or violin) plots of the kept ratings, per page or ``by="overall"``; see :func:`plot_scores`
        (``notebooks/16_listening_tests.ipynb``)."""
        return plot_scores(self, by=by, kind=kind)

    def to_dict(self) -> dict:
        """The tables as ``{name: DataFrame}`` plus ``settings``, ``notes`` and ``simulated``
        (``notebooks/16_listening_tests.ipynb``)."""
        return {"summary": self.summary, "tests": self.tests, "pairwise": self.pairwise,
                "screening": self.screening, "excluded": self.excluded, "settings": dict(self.settings),
                "notes": list(self.notes), "simulated": self.simulated}

    def to_markdown(self, full: bool = True) -> str:
        """A report: notes, screening, summary, tests and the Table-14 layouts of every test and scope
        (``full=False``: only the ``"overall"`` scope and the excluded listeners; what the CLI prints). See
        ``notebooks/16_listening_tests.ipynb``."""
        head = "# Listening-test analysis" + (" (SIMULATED DATA)" if self.simulated else "")
        parts = [head, ""]
        if self.simulated:
            parts += [f"**{SIMULATED_NOTE}**", ""]
        s = self.settings
        parts += [f"Design: {s['design']}; {s['listeners_kept']} of {s['listeners']} listeners kept; conditions "
                  f"compared: {', '.join(self.conditions)}; p-values adjusted with {s['p_adjust']} within each "
                  f"scope; alpha = {s['alpha']:g}; overall repeated-measures blocks: {s['blocks']}.", ""]
        notes = [n for n in self.notes if n != SIMULATED_NOTE]
        parts += [f"- {n}" for n in notes] + ([""] if notes else [])
        scopes = self.scopes if full else [OVERALL]
        pick = (lambda t: t) if full else (lambda t: t[t["scope"] == OVERALL])  # noqa: E731
        parts += ["## Post-screening", "", _markdown(self.screening if full else self.excluded)
                  if full or len(self.excluded) else "No listener was excluded.", ""]
        parts += ["## Summary (mean: 95 % t-interval; median: 95 % bootstrap interval)", "",
                  _markdown(pick(self.summary)), ""]
        parts += ["## Omnibus tests", "", _markdown(pick(self.tests)), ""]
        for test in dict.fromkeys(self.pairwise["test"]):
            for scope in scopes:
                try:
                    t = self.table14(scope, test)
                except ValueError:
                    continue
                parts += [f"## {test}: {scope}", "", _markdown(t), ""]
        return "\n".join(parts)

    def write(self, out_dir, overwrite: bool = False) -> list:
        """Write the tables (CSV), ``report.md`` and the plots (PNG) into ``out_dir`` (created if missing),
        all or nothing (``_checks.atomic_outputs``); an existing file is never replaced without
        ``overwrite``. Returns the paths written. ``automix listening-analyse CSV --out DIR`` calls it
        (``notebooks/16_listening_tests.ipynb``)."""
        from .._checks import atomic_outputs

        paths = check_out_dir(out_dir, overwrite)
        names = [os.path.basename(p) for p in paths]
        figs = {"scores_overall.png": self.plot("overall"), "scores_by_page.png": self.plot("page")}
        os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
        with atomic_outputs(paths, overwrite) as temps:
            for name, tmp in zip(names, temps):
                if name == "report.md":
                    with open(tmp, "w", encoding="utf-8") as f:
                        f.write(self.to_markdown() + "\n")
                elif name.endswith(".png"):
                    figs[name].savefig(tmp, dpi=100)
                else:
                    self._csv(name).to_csv(tmp, index=False)
        return paths

    def _csv(self, name: str) -> pd.DataFrame:
        if name == "pvalues.csv":  # every test's matrices, stacked: test, scope, system, then one column each
            frames = []
            for test in dict.fromkeys(self.pairwise["test"]):
                for scope in self.scopes:
                    try:
                        m = self.pvalues(scope, test)
                    except ValueError:
                        continue
                    m = m.rename_axis(None).reset_index().rename(columns={"index": "system"})
                    m.insert(0, "scope", scope)
                    m.insert(0, "test", test)
                    frames.append(m)
            out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        else:
            out = getattr(self, name[:-4]).copy()
        if self.simulated:
            out.insert(0, "simulated", True)
        return out


def check_out_dir(out_dir, overwrite: bool = False, inputs=()) -> list:
    """Check, before any work, that the :data:`OUTPUT_FILES` can be written into ``out_dir``; returns their paths.

    ``out_dir`` may be missing (its parent must exist; it is created when writing). Refused
    (``ValueError``/``FileExistsError``): ``out_dir`` is a file, an output exists without ``overwrite``, an
    output is one of ``inputs`` (the CSV files read), a folder that cannot be written. Used by
    ``automix listening-analyse`` (``notebooks/16_listening_tests.ipynb``).
    """
    from .._checks import check_output

    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} exists and is not a folder; give a folder.")
    paths = [os.path.join(out_dir, n) for n in OUTPUT_FILES]
    for src in inputs:
        for p in paths:
            if os.path.abspath(os.fspath(src)) == p or (os.path.exists(p) and os.path.exists(src)
                                                        and os.path.samefile(src, p)):
                raise ValueError(f"the input {src} is the output {p}; choose another --out folder.")
    if not os.path.isdir(out_dir):
        if not os.path.isdir(os.path.dirname(out_dir)):
            raise ValueError(f"the folder above --out {out_dir} does not exist; create it first.")
    else:
        for p in paths:
            check_output(p, overwrite, "--out")
    return paths


def _fmt(v, sci: bool = False) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        if sci or (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)):
            m, e = f"{v:.2e}".split("e")
            return f"{m}e{int(e)}"  # 3.24e-3, as the thesis prints p-values
        if float(v).is_integer():
            return str(int(v))
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v).replace("|", "/").replace("\n", " ")


def _markdown(df: pd.DataFrame) -> str:
    """A pipe table (no ``tabulate`` needed); p-value columns in the thesis' notation (3.24e-3)."""
    cols = [str(c) for c in df.columns]
    sci = [c in ("p", "p_adj", "P_adj") for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, e) for v, e in zip(row, sci)) + " |")
    return "\n".join(lines)


def analyse(data, *, design: str | None = None, reference: str = REFERENCE, anchors=None,
            include_anchors: bool = False, screen: bool = True, threshold: float = 90.0,
            max_fraction: float = 0.15, min_time_s: float | None = None, alpha: float = 0.05,
            p_adjust: str = "holm", friedman_posthoc: str = "conover", blocks: str = "listener_page",
            n_boot: int = 2000, seed: int = 0) -> ListeningAnalysis:
    """Analyse listening-test ratings; returns a :class:`ListeningAnalysis` (taught in
    ``notebooks/16_listening_tests.ipynb``; the CLI is ``automix listening-analyse CSV``).

    ``data``: a CSV path, a list of paths or a DataFrame (see :func:`load_ratings`). ``anchors``: the anchor
    names (default: every stimulus starting ``anchor_``); anchors appear in the summary and plots but not in
    the tests unless ``include_anchors`` (an anchor is built to be worse: including it only adds trivially
    significant pairs). The hidden ``reference`` is compared like a system, as the thesis compared its
    target mixes. Post-screening (``screen``): :func:`screen_listeners` with ``threshold``, ``max_fraction``
    and ``min_time_s``; the excluded listeners' ratings leave every table but ``screening``.

    Statistics, per page and ``"overall"`` (every page pooled):

    - Kruskal-Wallis H (``scipy.stats.kruskal``) on the ratings of each condition as independent groups;
      effect size epsilon-squared = H / (n - 1) (= H / ((n^2 - 1) / (n + 1)), n ratings; 0 none, 1 all);
      post-hoc Conover (``scikit_posthocs.posthoc_conover``, adjusted with ``p_adjust``, Holm by default).
      Like the thesis, this ignores that one listener rates every condition.
    - Friedman (``scipy.stats.friedmanchisquare``) over complete blocks; a block is one listener on one page,
      also overall (``blocks="listener_page"``: listener x page, more blocks, but the pages of one listener
      are not independent) or, with ``blocks="listener"``, each listener's mean over the pages (one block
      per listener: the conservative choice). Listener x page blocks are only valid if a listener's pages
      are independent: if listeners differ in taste for a system (the same on every page), they are
      anti-conservative: they reject equal systems more often than ``alpha`` (chapter 4.2 measures the rate for
      both choices with :func:`power_analysis` and ``listener_system_sd``). Effect size Kendall's W = chi^2 / (N (k - 1)) (N blocks, k
      conditions; 0 no agreement, 1 every block ranks the conditions the same). Post-hoc
      ``friedman_posthoc``: ``"conover"`` (``posthoc_conover_friedman``, adjusted with ``p_adjust``) or
      ``"nemenyi"`` (``posthoc_nemenyi_friedman``, a single-step test with no further adjustment).
    - Wilcoxon signed-rank (``scipy.stats.wilcoxon``, its defaults) for every pair over the same blocks,
      Holm-adjusted (:func:`holm`) within the scope; effect size the matched-pairs rank-biserial
      correlation (:func:`rank_biserial`).

    Blocks missing a condition are left out of the repeated-measures tests (a note says how many).
    """
    if p_adjust is None:
        raise ValueError("p_adjust must name an adjustment (e.g. 'holm'); comparing every pair without one "
                         "inflates the false-positive rate.")
    if friedman_posthoc not in ("conover", "nemenyi"):
        raise ValueError(f"friedman_posthoc must be 'conover' or 'nemenyi', not {friedman_posthoc!r}.")
    if blocks not in ("listener_page", "listener"):
        raise ValueError(f"blocks must be 'listener_page' or 'listener', not {blocks!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), not {alpha}.")
    try:
        import scikit_posthocs  # noqa: F401
    except ImportError:
        raise ValueError("the listening-test analysis needs scikit-posthocs: pip install 'automix-lite[notebooks]' "
                         "(or pip install scikit-posthocs).") from None
    ratings = load_ratings(data, design=design)
    simulated = bool(ratings.attrs.get("simulated", False))
    anchors = tuple(anchors) if anchors is not None else None
    stim = sorted(ratings["stimulus"].unique())
    roles = {s: _role(s, reference, anchors) for s in stim}
    screening = screen_listeners(ratings, reference, threshold, max_fraction, min_time_s)
    if not screen:
        screening["excluded"], screening["reason"] = False, ""
    kept = ratings[~ratings["session"].isin(set(screening.loc[screening["excluded"], "session"]))]
    if kept.empty:
        raise ValueError(f"post-screening excluded every listener ({len(screening)}); check the data, or relax "
                         "threshold/max_fraction (or screen=False).")
    kept = kept.reset_index(drop=True)
    kept.attrs = dict(ratings.attrs)
    conds = [s for s in stim if roles[s] != "anchor" or include_anchors]
    conds = [s for s in conds if (kept["stimulus"] == s).any()]
    if len(conds) < 2:
        raise ValueError(f"fewer than two systems to compare ({', '.join(conds) or 'none'}; anchors "
                         f"{'included' if include_anchors else 'left out'}); a listening test compares at least two.")
    notes = [SIMULATED_NOTE] if simulated else []
    if REFERENCE not in set(ratings["stimulus"]) and reference == REFERENCE and screen:
        notes.append("no hidden reference was rated: the BS.1534 post-screening rule did not apply.")
    n_ex = int(screening["excluded"].sum())
    if n_ex:
        notes.append(f"post-screening excluded {n_ex} of {len(screening)} listeners: "
                     + "; ".join(f"{r.session} ({r.reason})" for r in screening[screening["excluded"]].itertuples()))
    pages = list(dict.fromkeys(kept["page"]))
    pages = sorted(pages, key=lambda p: (len(p), p)) if all(p.isdigit() for p in pages) else sorted(pages)
    rng = np.random.default_rng(seed)
    plot_order = [s for s in stim if roles[s] == "reference"] + [s for s in stim if roles[s] == "system"] + \
                 [s for s in stim if roles[s] == "anchor"]
    summary, tests, pairs = [], [], []
    for scope in pages + [OVERALL]:
        d = kept if scope == OVERALL else kept[kept["page"] == scope]
        summary += _summary(d, scope, roles, plot_order, n_boot, rng)
        t, p, n = _analyse_scope(d, conds, scope, alpha=alpha, p_adjust=p_adjust,
                                 friedman_posthoc=friedman_posthoc, blocks=blocks)
        tests += t
        pairs += p
        notes += n
    settings = {"design": str(ratings["design"].iloc[0]), "reference": reference,
                "anchors": [s for s in stim if roles[s] == "anchor"], "include_anchors": include_anchors,
                "screen": screen, "threshold": threshold, "max_fraction": max_fraction, "min_time_s": min_time_s,
                "alpha": alpha, "p_adjust": p_adjust, "friedman_posthoc": friedman_posthoc, "blocks": blocks,
                "n_boot": n_boot, "seed": seed, "listeners": int(len(screening)),
                "listeners_kept": int(len(screening) - n_ex), "pages": pages, "plot_order": plot_order}
    return ListeningAnalysis(summary=pd.DataFrame(summary), tests=pd.DataFrame(tests), pairwise=pd.DataFrame(pairs),
                             screening=screening, data=kept, conditions=conds, settings=settings, notes=notes,
                             simulated=simulated)


# --------------------------------------------------------------------------------------------------------
# plots


def plot_scores(result, by: str = "page", kind: str = "box"):
    """Box (``kind="box"``) or violin (``"violin"``) plots of the ratings per stimulus, one panel per page
    (``by="page"``, like the thesis' Figure 17) or all pages pooled (``by="overall"``, Figure 18); the
    reference first, then the systems, then the anchors, the mean as a green triangle. ``result``: a
    :class:`ListeningAnalysis` (its kept ratings) or ratings accepted by :func:`load_ratings`. Returns a
    ``matplotlib.figure.Figure`` (no pyplot state; shows once in Jupyter). Titles say "simulated" when the
    ratings are. Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    from matplotlib.figure import Figure

    if by not in ("page", "overall"):
        raise ValueError(f"by must be 'page' or 'overall', not {by!r}.")
    if kind not in ("box", "violin"):
        raise ValueError(f"kind must be 'box' or 'violin', not {kind!r}.")
    if isinstance(result, ListeningAnalysis):
        data, order, pages, sim = result.data, result.settings["plot_order"], result.settings["pages"], result.simulated
    else:
        data = load_ratings(result)
        order = sorted(data["stimulus"].unique(), key=lambda s: (s != REFERENCE, s.startswith("anchor_"), s))
        pages, sim = sorted(data["page"].unique()), bool(data.attrs.get("simulated", False))
    order = [s for s in order if (data["stimulus"] == s).any()]
    panels = [(OVERALL, data)] if by == "overall" else [(p, data[data["page"] == p]) for p in pages]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    width = max(4.0, 0.7 * len(order) + 1.5)
    fig = Figure(figsize=(width * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (name, d) in zip(axes.flat, panels):
        groups = [d.loc[d["stimulus"] == s, "score"].to_numpy(float) for s in order]
        pos = [i + 1 for i, g in enumerate(groups) if g.size]
        vals = [g for g in groups if g.size]
        if kind == "box":
            ax.boxplot(vals, positions=pos, widths=0.6)
        else:
            ax.violinplot(vals, positions=pos, showmedians=True)
        ax.plot(pos, [g.mean() for g in vals], "^", color="tab:green", markersize=6, label="mean")
        ax.set_xticks(range(1, len(order) + 1), order, rotation=35, ha="right")
        ax.set_ylim(-3, 103)
        ax.set_title(("all pages" if name == OVERALL else f"page {name}") + (" (simulated)" if sim else ""))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("score (0-100)")
    if sim:
        fig.suptitle("SIMULATED listening-test ratings (a model, not listeners)")
    return fig


# --------------------------------------------------------------------------------------------------------
# simulation


DEFAULT_ANCHORS = {"anchor_lp3500": 20.0, "anchor_mono": 45.0}  # the page's anchor names (listening.ANCHORS)


def _draw(rng, means, n_sims, n_listeners, n_pages, listener_sd, page_sd, noise_sd, listener_system_sd, decimals):
    """Scores ``(n_sims, n_listeners, n_pages, len(means))`` of the panel model (see :func:`simulate_panel`)."""
    means = np.asarray(means, float)
    s = means.size
    b = rng.normal(0.0, listener_sd, (n_sims, n_listeners, 1, 1))
    c = rng.normal(0.0, page_sd, (n_sims, 1, n_pages, 1))
    g = rng.normal(0.0, listener_system_sd, (n_sims, n_listeners, 1, s))
    e = rng.normal(0.0, noise_sd, (n_sims, n_listeners, n_pages, s))
    return np.clip(np.round(means + b + c + g + e, decimals), 0.0, 100.0)


def simulate_panel(systems: dict, n_listeners: int = 12, pages=4, listener_sd: float = 8.0, noise_sd: float = 10.0,
                   seed: int = 0, design: str = "mushra", reference: bool = True, anchors=None, *,
                   page_sd: float = 3.0, listener_system_sd: float = 0.0, careless: int = 1,
                   reference_sd: float = 3.0) -> pd.DataFrame:
    """A **simulated** listening-test panel (not real listeners) in the layout of the results CSV.

    The model, for listener l, page p and stimulus s (systems and anchors)::

        score = clip(round(true_mean[s] + b_l + c_p + g_ls + e_lps), 0, 100)
        b_l ~ N(0, listener_sd^2)   the listener's offset (strict or lenient)
        c_p ~ N(0, page_sd^2)       the page's offset (an easy or hard passage)
        g_ls ~ N(0, listener_system_sd^2)  the listener's taste for a system (0: none), the same on every page
        e_lps ~ N(0, noise_sd^2)    the rating noise

    (rounded to integers for MUSHRA sliders, to one decimal for APE). The hidden reference (``reference``)
    is rated clip(round(100 - |N(0, reference_sd^2)|)), near 100. ``careless`` listeners (the last ones)
    do not find it: they rate every stimulus, the reference included, uniformly at random in 0-100 and fast
    (about 15 s a page instead of 90 s), so that post-screening has work to do (with 4 pages a careless
    listener passes the BS.1534 rule with probability 0.11^4). ``anchors``: ``{name: true_mean}`` (default
    ``anchor_lp3500`` 20 and ``anchor_mono`` 45 for MUSHRA (the names of the page's anchors), none for APE; ``{}`` for none). ``pages``: a number
    (pages ``A``, ``B``, ...) or a list of ids.

    Columns: ``session`` (``sim01``, ...), ``design``, ``page``, ``stimulus``, ``score``, ``time_ms``,
    ``experience``, ``equipment``, ``comments`` ("simulated listener"), ``careless`` (the simulation's
    truth) and ``simulated`` (True); ``attrs["simulated"]`` is True and ``attrs["model"]`` states the model.
    Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    if design not in ("mushra", "ape"):
        raise ValueError(f"design must be 'mushra' or 'ape', not {design!r}.")
    if not isinstance(systems, dict) or len(systems) < (1 if reference else 2):
        raise ValueError("systems must be a dict {name: true mean score} with at least two systems "
                         "(or one and the reference).")
    page_ids = [chr(ord("A") + i) if i < 26 else f"P{i + 1}" for i in range(int(pages))] \
        if isinstance(pages, (int, np.integer)) else [str(p) for p in pages]
    if not page_ids or n_listeners < 1 or not 0 <= careless <= n_listeners:
        raise ValueError("need at least one page, one listener, and 0 <= careless <= n_listeners.")
    anchors = (dict(DEFAULT_ANCHORS) if design == "mushra" else {}) if anchors is None else dict(anchors)
    names = list(systems) + list(anchors)
    if REFERENCE in names:
        raise ValueError(f"{REFERENCE!r} is the hidden reference's name; pass reference=True instead.")
    means = [float(systems[s]) for s in systems] + [float(anchors[a]) for a in anchors]
    if any(not 0 <= m <= 100 for m in means):
        raise ValueError("true means must lie in 0-100.")
    rng = np.random.default_rng(seed)
    dec = 0 if design == "mushra" else 1
    L, P = int(n_listeners), len(page_ids)
    x = _draw(rng, means, 1, L, P, listener_sd, page_sd, noise_sd, listener_system_sd, dec)[0]
    if reference:
        ref = np.clip(np.round(100.0 - np.abs(rng.normal(0.0, reference_sd, (L, P, 1))), dec), 0, 100)
        x = np.concatenate([ref, x], axis=-1)
        names = [REFERENCE] + names
    is_careless = np.zeros(L, bool)
    if careless:
        is_careless[L - careless:] = True
        x[is_careless] = np.round(rng.uniform(0, 100, x[is_careless].shape), dec)
    t = np.where(is_careless[:, None], rng.lognormal(math.log(15000), 0.3, (L, P)),
                 rng.lognormal(math.log(90000), 0.3, (L, P))).round()
    exp = rng.choice(["professional", "amateur", "musician"], size=L)
    rows = []
    for li in range(L):
        for pi, page in enumerate(page_ids):
            for si in rng.permutation(len(names)):  # the page shows the stimuli in a random order
                rows.append((f"sim{li + 1:02d}", design, page, names[si], float(x[li, pi, si]), float(t[li, pi]),
                             exp[li], "headphones", "simulated listener" + (" (careless)" if is_careless[li] else ""),
                             bool(is_careless[li]), True))
    df = pd.DataFrame(rows, columns=["session", "design", "page", "stimulus", "score", "time_ms", "experience",
                                     "equipment", "comments", "careless", "simulated"])
    df.attrs["simulated"] = True
    df.attrs["model"] = ("SIMULATED: score = clip(round(true_mean[s] + N(0, listener_sd^2)_l + N(0, page_sd^2)_p + "
                         "N(0, listener_system_sd^2)_ls + N(0, noise_sd^2)), 0, 100); reference = 100 - |N(0, "
                         f"reference_sd^2)|; {careless} careless listener(s) rate uniformly at random. "
                         f"true means {dict(zip(list(systems) + list(anchors), means))}, listener_sd={listener_sd}, "
                         f"page_sd={page_sd}, listener_system_sd={listener_system_sd}, noise_sd={noise_sd}, "
                         f"reference_sd={reference_sd}, seed={seed}")
    return df


# --------------------------------------------------------------------------------------------------------
# vectorised tests for the power analysis


def _wilcoxon_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``scipy.stats.wilcoxon(d)`` (defaults) for every slice of the last axis, vectorised.

    scipy's ``method="auto"``, per slice: n > 50 asymptotic; no ties and no zeros: exact; ties or zeros and
    n <= 13: the complete sign-flip permutation distribution (computed here by enumerating the 2^n flips,
    as scipy's deterministic permutation test does); otherwise asymptotic.
    """
    d = np.asarray(d, float)
    lead, n = d.shape[:-1], d.shape[-1]
    flat = d.reshape(-1, n)
    p = np.full(flat.shape[0], np.nan)
    absd = np.where(flat == 0, np.nan, np.abs(flat))
    srt = np.sort(absd, axis=1)
    ties = (np.diff(srt, axis=1) == 0).any(axis=1)
    zeros = (flat == 0).any(axis=1)
    exact = ~(ties | zeros) & (n <= 50)
    perm = (ties | zeros) & (n <= 13)
    asym = ~(exact | perm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if exact.any():
            p[exact] = stats.wilcoxon(flat[exact], axis=-1, method="exact").pvalue
        if asym.any():
            p[asym] = stats.wilcoxon(flat[asym], axis=-1, method="asymptotic").pvalue
    if perm.any():
        x = flat[perm]
        r = np.nan_to_num(stats.rankdata(np.where(x == 0, np.nan, np.abs(x)), axis=1, nan_policy="omit"))
        obs = (r * (x > 0)).sum(axis=1)
        flips = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(float)  # (2^n, n)
        null = r @ flips.T  # rank sum of the positives under every sign pattern
        gamma = np.abs(obs * np.finfo(float).eps * 100)[:, None]
        less = (null <= obs[:, None] + gamma).mean(axis=1)
        greater = (null >= obs[:, None] - gamma).mean(axis=1)
        p[perm] = np.clip(2 * np.minimum(less, greater), 0, 1)
    return p.reshape(lead)


def _conover_friedman_p(x: np.ndarray, pairs) -> np.ndarray:
    """Unadjusted p-values of Conover's test for the Friedman design, ``x`` ``(..., blocks, k)``, for ``pairs``
    (the formula of ``scikit_posthocs.posthoc_conover_friedman``), vectorised over the leading axes."""
    n, k = x.shape[-2], x.shape[-1]
    r = stats.rankdata(x, axis=-1)
    rs = r.sum(axis=-2)
    a1 = (r ** 2).sum(axis=(-2, -1))
    s2 = (a1 - k * n * (k + 1) ** 2 / 4.0) / (k - 1)
    t2 = ((rs - n * (k + 1) / 2.0) ** 2).sum(axis=-1) / s2
    df = n * k - k - n + 1
    a = s2 * 2 * n * (k - 1) / df
    b = 1 - t2 / (n * (k - 1))
    i, j = np.array(pairs).T
    t = np.abs(rs[..., i] - rs[..., j]) / np.sqrt(a)[..., None] / np.sqrt(b)[..., None]
    return 2 * stats.t.sf(t, df)


def _pair_pvalues(scores: np.ndarray, test: str, blocks: str) -> np.ndarray:
    """Adjusted (Holm) p-values of every pair, ``(n_sims, n_pairs)``, from ``scores`` ``(n_sims, L, P, S)``."""
    sims, L, P, S = scores.shape
    x = scores.mean(axis=2) if blocks == "listener" else scores.reshape(sims, L * P, S)
    pairs = list(itertools.combinations(range(S), 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "wilcoxon":
            d = np.stack([x[..., i] - x[..., j] for i, j in pairs], axis=1)  # (sims, pairs, blocks)
            p = _wilcoxon_p(d)
        else:
            p = _conover_friedman_p(x, pairs)
    return holm(p)


def power_analysis(effect=(5.0, 10.0, 15.0), n_listeners=(4, 8, 12, 16, 24), *, pages: int = 4, base: float = 60.0,
                   listener_sd: float = 8.0, page_sd: float = 3.0, noise_sd: float = 10.0,
                   listener_system_sd: float = 0.0, others: dict | None = None, test: str = "wilcoxon",
                   blocks: str = "listener_page", alpha: float = 0.05, n_sims: int = 200, seed: int = 0,
                   design: str = "mushra") -> pd.DataFrame:
    """**Simulated** power: how often the test separates two systems ``effect`` MUSHRA points apart.

    For each effect (difference in points) and each number of listeners (those left after post-screening),
    ``n_sims`` panels are drawn from :func:`simulate_panel`'s model (system ``A`` true mean ``base``, ``B``
    ``base + effect``, plus the systems ``others`` ``{name: true_mean}``, all on ``pages`` pages; no
    reference, no anchors, no careless listeners) and the pair A-B is tested as :func:`analyse` does:
    ``test="wilcoxon"`` (Wilcoxon signed-rank, Holm over every pair) or ``"conover_friedman"`` (Conover's
    Friedman post-hoc, Holm), over listener x page blocks (or ``blocks="listener"``: listener means).
    The power is the fraction of panels with Holm-adjusted p <= ``alpha``; with ``effect=0`` it is the
    false-positive rate (which ``listener_system_sd`` > 0 inflates for listener x page blocks). All panels of one call are tested at once (vectorised): a few seconds for the
    defaults. Returns a DataFrame (``effect``, ``n_listeners``, ``pages``, ``blocks_per_panel``, ``power``,
    ``ci_low``/``ci_high``: a 95 % Wilson interval for the simulation's own uncertainty, ``n_sims``, ``test``,
    ``pairs`` (the Holm family), ``simulated`` = True); ``attrs["simulated"]`` is True.
    Taught in ``notebooks/16_listening_tests.ipynb``.
    """
    if test not in ("wilcoxon", "conover_friedman"):
        raise ValueError(f"test must be 'wilcoxon' or 'conover_friedman', not {test!r}.")
    if blocks not in ("listener_page", "listener"):
        raise ValueError(f"blocks must be 'listener_page' or 'listener', not {blocks!r}.")
    others = dict(others or {})
    if test == "conover_friedman" and len(others) < 1:
        raise ValueError("the Friedman post-hoc needs three or more systems: give others={name: true_mean}.")
    effects = np.atleast_1d(np.asarray(effect, float))
    listeners = [int(n) for n in np.atleast_1d(n_listeners)]
    if n_sims < 1 or min(listeners) < 1 or pages < 1:
        raise ValueError("n_sims, n_listeners and pages must be positive.")
    rng = np.random.default_rng(seed)
    z = stats.norm.ppf(0.975)
    rows = []
    for eff in effects:
        means = [base, base + eff] + [float(v) for v in others.values()]
        for L in listeners:
            x = _draw(rng, means, n_sims, L, pages, listener_sd, page_sd, noise_sd, listener_system_sd,
                      0 if design == "mushra" else 1)
            p = _pair_pvalues(x, test, blocks)[:, 0]  # pair (A, B) comes first
            hits = int(np.sum(p <= alpha))
            ph = hits / n_sims
            centre = (ph + z * z / (2 * n_sims)) / (1 + z * z / n_sims)
            half = z * math.sqrt(ph * (1 - ph) / n_sims + z * z / (4 * n_sims ** 2)) / (1 + z * z / n_sims)
            lo, hi = centre - half, centre + half
            rows.append({"effect": float(eff), "n_listeners": L, "pages": pages,
                         "blocks_per_panel": L * pages if blocks == "listener_page" else L, "power": ph,
                         "ci_low": 0.0 if lo < 1e-12 else lo, "ci_high": 1.0 if hi > 1 - 1e-12 else hi,
                         "n_sims": n_sims,
                         "test": test, "pairs": len(means) * (len(means) - 1) // 2, "simulated": True})
    out = pd.DataFrame(rows)
    out.attrs["simulated"] = True
    out.attrs["model"] = (f"SIMULATED power: score = clip(round(mean + N(0,{listener_sd}^2) + N(0,{page_sd}^2) + "
                          f"N(0,{listener_system_sd}^2) + N(0,{noise_sd}^2)), 0, 100); base={base}, alpha={alpha}, "
                          f"{test} + Holm, blocks={blocks}, seed={seed}")
    return out


def listeners_needed(power: pd.DataFrame, level: float = 0.8) -> dict:
    """``{effect: n}``: for each nonzero effect of a :func:`power_analysis` table, the smallest simulated number
    of listeners whose power reaches ``level`` (``None`` where no simulated panel size does). Taught in
    ``notebooks/16_listening_tests.ipynb``."""
    if not 0 < level < 1:
        raise ValueError(f"level is a power between 0 and 1, not {level!r}.")
    out = {}
    for effect, rows in power[power["effect"] != 0].groupby("effect"):
        reached = rows.loc[rows["power"] >= level, "n_listeners"]
        out[float(effect)] = int(reached.min()) if len(reached) else None
    return out
