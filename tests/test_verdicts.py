"""The verdict engine (ssmtts.verdicts): paired tests, Holm, equivalence, power, on data with known answers."""
import numpy as np
import pandas as pd
import pytest

from ssmtts.verdicts import Comparison, claim_verdict, compare, decide, magnitude, seeds_needed

SEEDS = [0, 1, 2, 3, 4]


def series(values):
    return pd.Series(values, index=SEEDS[:len(values)], dtype=float)


def one(a, b, expect="lower", scale="difference", margin=3.0, family="f", claim="c"):
    c = compare(Comparison(claim, family, "A", "B", expect, scale, margin), series(a), series(b))
    return decide([c]).iloc[0]


def test_separated_paired_runs_hold_or_are_reversed():
    assert one([10, 11, 12, 10.5, 11.5], [20, 21, 22, 20.5, 21.4]).verdict == "holds"
    assert one([20, 21, 22, 20.5, 21.4], [10, 11, 12, 10.5, 11.5]).verdict == "does not hold"


def test_pairing_finds_a_small_consistent_effect_under_a_large_seed_effect():
    """Seeds differ by 30 points, the models by 1 point in every seed: the paired test decides,
    where an unpaired test could not (the Welch test of the old report engine)."""
    from scipy import stats
    base = np.array([10, 40, 25, 55, 30])
    a, b = base - 1.0 + np.array([0, .1, -.1, .05, 0]), base
    r = one(a, b, margin=0.5)
    assert r.verdict == "holds" and stats.ttest_ind(a, b, equal_var=False).pvalue > 0.5
    assert r.ci_lo < r.effect < r.ci_hi < 0


def test_small_noise_inside_the_margin_is_equivalent():
    r = one([20.1, 19.9, 20.2, 20.0, 19.8], [20.0, 20.0, 20.0, 20.1, 19.9], margin=3.0)
    assert r.verdict == "equivalent" and r.p_equiv_holm < 0.05


def test_a_straddling_interval_is_inconclusive_with_the_seeds_it_needs():
    r = one([20, 26, 17, 24], [21, 20, 22, 21], margin=3.0)
    assert r.verdict == "inconclusive" and r.seeds_needed > r.n
    assert seeds_needed(r.sd, 3.0, "difference") == r.seeds_needed


def test_holm_within_a_family_not_across_families():
    a, b = [10.0, 11.5, 9.0, 10.8, 10.2], [11.0, 12.1, 10.3, 11.2, 11.4]
    alone = decide([compare(Comparison("c1", "f1", "A", "B", "lower", "difference", 0.1), series(a), series(b))])
    assert alone.p.iloc[0] < 0.05 and alone.verdict.iloc[0] == "holds"
    crowd = [compare(Comparison(f"c{i}", "f1", "A", "B", "lower", "difference", 0.1), series(a),
                     series(np.array(b) + 0.05 * i)) for i in range(6)]
    crowd += [compare(Comparison("other", "f2", "A", "B", "lower", "difference", 0.1), series(a), series(b))]
    t = decide(crowd).set_index("claim_id")
    assert (t.loc["c0", "p_holm"] > t.loc["c0", "p"]) and t.loc["other", "p_holm"] == t.loc["other", "p"]


def test_ratio_scale_and_exact_counts():
    r = one([100, 102, 98, 101, 99], [120, 123, 118, 121, 119], scale="ratio", margin=0.05)
    assert r.verdict == "holds" and r.effect == pytest.approx(0.83, abs=0.01)
    e = one([5], [7], scale="exact", margin=0)
    assert e.verdict == "holds" and e.effect == -2
    assert one([7], [7], scale="exact", margin=0).verdict == "equivalent"


def test_one_seed_or_none_decides_nothing():
    assert one([10], [20]).verdict == "inconclusive"
    c = compare(Comparison("c", "f", "A", "B", "lower", "difference", 3), series([]), series([1, 2]))
    assert c.n == 0 and decide([c]).verdict.iloc[0] == "inconclusive"


def test_claim_verdict_and_magnitude():
    assert claim_verdict(["holds", "holds"]) == "holds"
    assert claim_verdict(["holds", "does not hold"]) == "does not hold"
    assert claim_verdict(["equivalent", "equivalent"]) == "equivalent"
    assert claim_verdict(["holds", "inconclusive"]) == "inconclusive"
    assert magnitude(0.83, 0.64, "ratio", "holds") == "direction holds, 0.83x vs 0.64x reported"
    assert magnitude(1.2, 9.7, "difference", "holds") == "direction holds, 1.2 vs 9.7 reported"


def test_holm_counts_a_hypothesis_two_claims_share_once():
    """Phase 3's "best" claim repeats its pairwise claims: the same outcome, the same pair (either order) is one
    hypothesis of the family, adjusted once and given back to both claims; the power calculation works at
    the family's Bonferroni level."""
    from ssmtts.verdicts import Comparison, decide
    def c(claim, a, b, p, hyp):
        return Comparison(claim, "fam", a, b, "lower", "difference", 3.0, n=3, effect=-1.0, p=p, p_equiv=0.5,
                          sd=1.0, hypothesis=hyp)
    df = decide([c("best", "A", "B", 0.01, "per: A vs B"), c("best", "A", "C", 0.04, "per: A vs C"),
                 c("pair", "B", "A", 0.01, "per: A vs B")])
    assert df.p_holm.tolist() == pytest.approx([0.02, 0.04, 0.02])      # m = 2, not 3
    assert df.verdict.tolist() == ["holds", "holds", "holds"]
    alone = decide([Comparison("x", "f", "A", "B", "lower", "difference", 3.0, n=3, effect=-1.0, p=0.5,
                               p_equiv=0.5, sd=2.0)])
    family_of_7 = decide([Comparison(f"x{i}", "f", "A", f"B{i}", "lower", "difference", 3.0, n=3, effect=-1.0,
                                     p=0.5, p_equiv=0.5, sd=2.0) for i in range(7)])
    assert family_of_7.seeds_needed.iloc[0] > alone.seeds_needed.iloc[0]
