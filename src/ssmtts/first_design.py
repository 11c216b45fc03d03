"""Verdicts of the first design (direction only, Welch tests over seeds, no multiplicity control).

The phases' first-design runs (protocols `reported` and `heldout`: teacher-forced token accuracy of a
decoder that reads the previous frame's codes) are judged here as they were when committed; the
pre-registered re-run is judged by `ssmtts.claims` (paired, Holm, equivalence). Reads only CSVs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .train.results import mean_ci



def _groups(runs: pd.DataFrame, claim) -> pd.DataFrame:
    """The runs a claim is about, with a `group` column: label, or protocol for claims across protocols."""
    protocols = str(claim.protocol).split("|")
    sel = runs[(runs.phase == claim.phase) & runs.protocol.isin(protocols)]
    sel = sel.copy()           # (a defragmented copy: runs.csv has hundreds of columns)
    sel["group"] = sel.protocol if len(protocols) > 1 else sel.label
    return sel


def resolve_label(name: str, sel: pd.DataFrame) -> str:
    """'@H' / '@H/3' name the embedding-width labels of Phase 5 relative to the profile's hidden width
    (data/claims.csv cannot name 'Emb96': the width depends on the profile)."""
    if not name.startswith("@") or sel.empty:
        return name
    # learning runs name the width; a timing pass's rows only their configuration (..._H96_...)
    H = int(sel.model_d_model.iloc[0]) if "model_d_model" in sel else int(sel.config.str.extract(r"_H(\d+)")[0].iloc[0])
    return f"Emb{H if name == '@H' else H // int(name.split('/')[1])}"


def _values(sel: pd.DataFrame, group: str, metric: str) -> np.ndarray:
    """A metric over the finished (and diverged) runs of a group; milestone steps never reached are
    censored at the run's last step + one evaluation interval, so "not reached" counts as slower."""
    g = sel[sel.group == group]
    v = g[metric].to_numpy(dtype=float)
    if "_step_to_" in metric:
        v = np.where(np.isnan(v), (g.train_steps + g.train_eval_every).to_numpy(dtype=float), v)
    return v


def _describe(v: np.ndarray, digits: int | str) -> str:
    mean, ci, n = mean_ci(v)
    fmt = f".{digits}f" if isinstance(digits, int) else digits
    return "n/a" if n == 0 else f"{mean:{fmt}}" + ("" if np.isnan(ci) else f" ± {ci:{fmt}}") + f" (n={n})"


def _direction(a: np.ndarray, b: np.ndarray, deterministic: bool = False, alpha: float = 0.05) -> int:
    """+1 if a is significantly higher than b (Welch t-test), -1 if lower, 0 if not separable.

    Deterministic quantities (parameter counts) are compared exactly; measured ones need two
    runs per side (one run cannot be told apart from noise)."""
    from scipy import stats
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return 0
    if deterministic:
        return int(np.sign(a.mean() - b.mean()))
    if len(a) < 2 or len(b) < 2:
        return 0
    if np.ptp(a) == 0 and np.ptp(b) == 0:          # identical in every seed (e.g. all censored)
        return int(np.sign(a[0] - b[0]))
    import warnings
    with warnings.catch_warnings():   # nearly equal seeds: scipy warns of precision loss; the p it returns is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return int(np.sign(a.mean() - b.mean())) if p < alpha else 0


def _verdict(directions: list[int], expect: str) -> str:
    want = 1 if expect == "higher" else -1
    if directions and all(d == want for d in directions):
        return "holds"
    if any(d == -want for d in directions):
        return "does not hold"
    return "inconclusive"


def _digits(metric: str) -> int | str:
    return 0 if metric.startswith(("params", "mem", "train_step", "val_step")) else ".3g" if "var" in metric else 1


def _evaluate(sel: pd.DataFrame, claim, metric: str) -> tuple[str, str]:
    """(our values, verdict) of one claim on one metric."""
    a = [resolve_label(x, sel) for x in str(claim.a).split("|")]
    d = _digits(metric)
    if claim.kind == "reach":
        th = float(claim.b)
        vals = {g: _values(sel, g, metric) for g in a}
        ours = "; ".join(f"{g}: {_describe(v, d)}" for g, v in vals.items())
        if any(len(v) == 0 for v in vals.values()):
            return ours, "inconclusive"
        if all(v.min() >= th for v in vals.values()):
            return ours, "holds"
        return ours, "does not hold" if any(v.max() < th for v in vals.values()) else "inconclusive"
    if claim.kind == "best":
        others = [g for g in sel.group.unique() if g != a[0]]
        b = others if claim.b == "*" else [resolve_label(x, sel) for x in str(claim.b).split("|")]
    else:
        b = [resolve_label(x, sel) for x in str(claim.b).split("|")]
    va = np.concatenate([_values(sel, g, metric) for g in a])
    dirs = [_direction(va, _values(sel, g, metric), metric.startswith("params")) for g in b]
    ours = f"{'+'.join(a)}: {_describe(va, d)} vs " + "; ".join(f"{g}: {_describe(_values(sel, g, metric), d)}" for g in b)
    if claim.kind == "best":
        want = 1 if claim.expect == "higher" else -1
        if any(x == -want for x in dirs):
            return ours, "does not hold"
        return ours, "holds" if dirs and all(x == want for x in dirs) else "inconclusive"
    return ours, _verdict(dirs, claim.expect)


def _scaling_claim(bench_dir, claim) -> tuple[str, str]:
    from pathlib import Path
    path = Path(bench_dir) / "slopes.csv"
    if not path.is_file():
        return "no benchmark results", "inconclusive"
    s = pd.read_csv(path)
    rows, verdicts = [], []
    for (d, e), g in s.groupby(["d_model", "expand"]):
        ka = g.loc[g.method == claim.a, claim.metric]
        kb = g.loc[g.method == claim.b, claim.metric]
        if ka.empty or kb.empty:
            continue
        rows.append(f"d{d} E{e:g}: {claim.a} {ka.iloc[0]:.2f} vs {claim.b} {kb.iloc[0]:.2f}")
        # linear vs quadratic, decided by the midpoint: the SSM's log-log slope is closer to 1 than
        # to 2, attention's closer to 2 than to 1
        verdicts.append(ka.iloc[0] < 1.5 < kb.iloc[0])
    if not rows:
        return "no matching methods in slopes.csv", "inconclusive"
    return "log-log slope of fwd+bwd time vs length: " + "; ".join(rows), \
        "holds" if all(verdicts) else "does not hold" if not any(verdicts) else "inconclusive"


def claims_table(claims: pd.DataFrame, runs: pd.DataFrame, bench_dir=None) -> pd.DataFrame:
    """One row per claim: reported value, our value (mean ± 95 % CI, n), verdict, held-out check, command.

    Verdicts: "holds" when every comparison the claim makes goes the claimed way with p < 0.05
    (Welch t-test over seeds; exact comparison for deterministic counts), "does not hold" when
    any goes significantly the other way, "inconclusive" otherwise (including missing runs).
    """
    rows = []
    for c in claims.itertuples():
        if c.kind == "slope":
            ours, verdict = _scaling_claim(bench_dir, c) if bench_dir else ("no benchmark results", "inconclusive")
            held = ""
        else:
            sel = _groups(runs, c)
            if sel.empty:
                ours, verdict, held = f"no {c.phase} runs in results/", "inconclusive", ""
            else:
                ours, verdict = _evaluate(sel, c, c.metric)
                held = ""
                if isinstance(c.heldout_metric, str) and c.heldout_metric:
                    hsel = _groups(runs, c._replace(protocol=str(c.protocol).replace("reported", "heldout")))
                    if not hsel.empty:
                        h_ours, h_verdict = _evaluate(hsel, c, c.heldout_metric)
                        held = f"{c.heldout_metric}: {h_verdict} — {h_ours}"
        rows.append({"claim": c.claim_id, "phase": c.phase, "statement": c.claim, "reported": c.reported,
                     "metric": f"{c.metric} ({c.protocol})" if c.kind != "slope" else c.metric, "ours": ours,
                     "verdict": verdict, "held-out check": held, "command": c.command})
    return pd.DataFrame(rows)
