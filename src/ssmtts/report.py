"""Tables and figures from results CSVs only (nothing here trains)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .train.results import summarize

COMPARISON_METRICS = ["params_total", "fwd_ms", "bwd_ms", "opt_ms", "step_ms", "tokens_per_s", "mem_peak_mb",
                      "final_train_ce", "final_train_acc", "final_val_acc", "best_train_acc", "best_val_acc",
                      "final_val_dur_acc", "train_step_to_90", "val_step_to_50", "val_wall_s_to_50"]


def _fmt(mean, ci, digits):
    if pd.isna(mean):
        return "not reached"
    return f"{mean:.{digits}f}" + ("" if pd.isna(ci) else f" ± {ci:.{digits}f}")


def comparison_table(runs: pd.DataFrame, metrics=COMPARISON_METRICS) -> pd.DataFrame:
    """Rows: metrics; columns: protocol x label; cells 'mean ± CI95' over seeds (n in the header)."""
    metrics = [m for m in metrics if m in runs.columns]
    s = summarize(runs, ["protocol", "label"], metrics)
    out = {}
    for _, r in s.iterrows():
        col = f"{r['protocol']} / {r['label']} (n={r['n']}{', diverged ' + str(r['n_diverged']) if r['n_diverged'] else ''})"
        out[col] = {m: _fmt(r[f"{m}_mean"], r[f"{m}_ci95"], 0 if m.startswith(("params", "tokens", "mem")) else 1)
                    for m in metrics}
    return pd.DataFrame(out)


def learning_curves(curves: pd.DataFrame):
    """Token accuracy vs step: train subset and validation, per protocol; mean line and 95 % CI band."""
    long = curves.melt(id_vars=["protocol", "label", "seed", "step"], value_vars=["train_acc", "val_acc"],
                       var_name="scored_on", value_name="token accuracy (%)")
    g = sns.relplot(data=long, x="step", y="token accuracy (%)", hue="label", style="scored_on", col="protocol",
                    kind="line", errorbar=("ci", 95), facet_kws={"sharex": False, "sharey": False},
                    height=3.5, aspect=1.3)
    return g.figure


def milestone_table(ms: pd.DataFrame, metric_suffix: str = "_acc") -> pd.DataFrame:
    """Median first step reaching each accuracy threshold, per protocol x label x split."""
    sel = ms[ms.metric.str.endswith(metric_suffix) & ~ms.metric.str.contains("dur")]
    t = sel.groupby(["protocol", "label", "split", "threshold"])["step"].median().unstack("threshold")
    return t
