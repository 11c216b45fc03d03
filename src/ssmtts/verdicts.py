"""Verdicts of the pre-registered claims: paired by seed, Holm within a family, equivalence within a margin.

`data/claims.csv` fixes, per claim, the primary outcome, its family and an equivalence margin
(docs/preregistration.md). One claim makes one or more comparisons "a vs b" (b may list several
groups); each comparison is decided on runs paired by seed (runs of one seed share their
batches, so seed-to-seed variation cancels):

    scale "difference":  d_s = y_a(s) - y_b(s)              margin in the outcome's unit
    scale "ratio":       d_s = log(y_a(s) / y_b(s))          margin m -> log(1 + m); effect shown as a ratio

    effect = mean(d) with a 95 % t interval; p = paired t-test (two-sided);
    p_equiv = two one-sided tests (TOST) that |effect| < margin.

Holm's correction runs over the distinct hypotheses of a family (and separately over their p_equiv):
two claims that make the same comparison on the same outcome (Phase 3's "best" claim repeats the
pairwise ones) test one hypothesis, counted once (`Comparison.hypothesis`). Verdict of a
comparison, with the claimed direction `expect` (a "higher" or "lower" than b):

    holds          p_holm < 0.05 and the effect goes the claimed way
    does not hold  p_holm < 0.05 the other way
    equivalent     not different, and p_equiv_holm < 0.05 (the interval sits inside the margin)
    inconclusive   neither; `seeds_needed` says how many seed pairs a paired t-test needs for
                   80 % power at an effect of one margin, given the spread seen, at the family's
                   Bonferroni level alpha / m (Holm's strictest step: an upper bound)

A claim holds when every comparison holds, does not hold when any does not, is equivalent when
all are equivalent, holds in part when every comparison holds or is equivalent (both occur), and
is inconclusive otherwise. Exact outcomes (parameter counts) are
compared exactly. A milestone never reached is censored at the run's budget (`censor_at`): its
value says "not reached by step N", never a number of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8
VERDICTS = ("holds", "does not hold", "equivalent", "inconclusive")


@dataclass
class Comparison:
    claim_id: str
    family: str
    a: str
    b: str
    expect: str            # "higher" | "lower": the claimed direction of a relative to b
    scale: str             # "difference" | "ratio" | "exact"
    margin: float
    n: int = 0             # seed pairs
    effect: float = np.nan           # mean difference, or ratio a/b
    ci_lo: float = np.nan
    ci_hi: float = np.nan
    p: float = np.nan
    p_equiv: float = np.nan
    sd: float = np.nan               # of the paired differences (log scale for ratios)
    censored: str = ""               # "a: 2 of 3 seeds not reached by step 600", ...
    hypothesis: str = ""             # outcome and the unordered pair compared; "" = this comparison's own


def paired(values_a: pd.Series, values_b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The two groups' values on their common seeds (Series indexed by seed)."""
    common = sorted(set(values_a.dropna().index) & set(values_b.dropna().index))
    return values_a.loc[common].to_numpy(float), values_b.loc[common].to_numpy(float)


def compare(c: Comparison, values_a: pd.Series, values_b: pd.Series) -> Comparison:
    """Fill in n, effect, its CI, p and p_equiv for one comparison."""
    a, b = paired(values_a, values_b)
    c.n = len(a)
    if c.n == 0:
        return c
    if c.scale == "exact":
        c.effect, c.p, c.p_equiv = float(a.mean() - b.mean()), (0.0 if a.mean() != b.mean() else 1.0), np.nan
        if a.mean() == b.mean():
            c.p_equiv = 0.0
        return c
    d = np.log(a / b) if c.scale == "ratio" else a - b
    margin = np.log1p(c.margin) if c.scale == "ratio" else c.margin
    mean = float(d.mean())
    back = (lambda x: float(np.exp(x))) if c.scale == "ratio" else float
    c.effect = back(mean)
    if c.n < 2:
        return c
    sd = float(d.std(ddof=1))
    c.sd = sd
    if sd == 0:   # identical differences in every seed pair (e.g. deterministic timings of a fake)
        c.p = 0.0 if mean != 0 else 1.0
        c.p_equiv = 0.0 if abs(mean) < margin else 1.0
        c.ci_lo = c.ci_hi = back(mean)
        return c
    se = sd / np.sqrt(c.n)
    t = stats.t(df=c.n - 1)
    c.ci_lo, c.ci_hi = back(mean - t.ppf(0.975) * se), back(mean + t.ppf(0.975) * se)
    c.p = float(2 * t.sf(abs(mean) / se))
    # TOST: H0 effect <= -margin or >= +margin; both one-sided tests must reject
    c.p_equiv = float(max(t.sf((mean + margin) / se), t.cdf((mean - margin) / se))) if margin > 0 else 1.0
    return c


def holm(p: pd.Series) -> pd.Series:
    """Holm-adjusted p-values (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests
    out = pd.Series(np.nan, index=p.index)
    ok = p.notna()
    if ok.any():
        out[ok] = multipletests(p[ok].to_numpy(), alpha=ALPHA, method="holm")[1]
    return out


def seeds_needed(sd: float, margin: float, scale: str, alpha: float = ALPHA) -> float:
    """Seed pairs for 80 % power (paired t-test, two-sided, at `alpha`) at an effect of one margin."""
    from statsmodels.stats.power import TTestPower
    m = np.log1p(margin) if scale == "ratio" else margin
    if not (np.isfinite(sd) and sd > 0 and m > 0):
        return np.nan
    return float(np.ceil(TTestPower().solve_power(effect_size=m / sd, alpha=alpha, power=POWER,
                                                  alternative="two-sided")))


def decide(comparisons: list[Comparison]) -> pd.DataFrame:
    """One row per comparison with Holm-adjusted p-values (within each family) and its verdict."""
    df = pd.DataFrame([c.__dict__ for c in comparisons])
    if df.empty:
        return df.assign(p_holm=[], p_equiv_holm=[], verdict=[], seeds_needed=[])
    # one p per distinct hypothesis of a family, adjusted once and given back to every comparison making it
    df["hypothesis"] = df.hypothesis.where(df.hypothesis != "", "comparison " + df.index.astype(str))
    first = df.drop_duplicates(["family", "hypothesis"])
    for col in ("p", "p_equiv"):
        adjusted = first.groupby("family", group_keys=False)[col].apply(holm)
        by_key = dict(zip(zip(first.family, first.hypothesis), adjusted.loc[first.index]))
        df[col + "_holm"] = [by_key[k] for k in zip(df.family, df.hypothesis)]
    n_hypotheses = first.groupby("family").size()
    centre = np.where(df.scale == "ratio", 1.0, 0.0)
    sign = np.sign(df.effect - centre)
    want = np.where(df.expect == "higher", 1, -1)
    significant = df.p_holm < ALPHA
    df["verdict"] = np.select(
        [significant & (sign == want), significant & (sign == -want), df.p_equiv_holm < ALPHA],
        ["holds", "does not hold", "equivalent"], "inconclusive")
    df["seeds_needed"] = [seeds_needed(r.sd, r.margin, r.scale, ALPHA / n_hypotheses[r.family])
                          if r.verdict == "inconclusive" else np.nan for r in df.itertuples()]
    return df


def claim_verdict(verdicts) -> str:
    """A claim's verdict from its comparisons' verdicts."""
    v = list(verdicts)
    if v and all(x == "holds" for x in v):
        return "holds"
    if "does not hold" in v:
        return "does not hold"
    if v and all(x == "equivalent" for x in v):
        return "equivalent"
    if v and set(v) == {"holds", "equivalent"}:   # every comparison decided: better than some, level with the rest
        return "holds in part"
    return "inconclusive"


def magnitude(effect: float, reported: float, scale: str, verdict: str) -> str:
    """Our effect beside the reported one: 'direction holds, 1.2 vs 9.7 points'."""
    if not np.isfinite(reported) or not np.isfinite(effect):
        return "" if np.isfinite(effect) else "not measured"
    fmt = (lambda x: f"{x:.2f}x") if scale == "ratio" else (lambda x: f"{x:.3g}")
    head = {"holds": "direction holds", "does not hold": "direction reversed",
            "equivalent": "no difference beyond the margin"}.get(verdict, "undecided")
    return f"{head}, {fmt(effect)} vs {fmt(reported)} reported"


def censored_values(steps: pd.Series, budget: pd.Series) -> tuple[pd.Series, int]:
    """Milestone steps with 'not reached' (NaN) set to the run's budget + 1 (slower than any reached
    value); returns them and how many were censored."""
    return steps.fillna(budget + 1), int(steps.isna().sum())
