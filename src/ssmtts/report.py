"""Tables and figures from results CSVs only (nothing here trains)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .first_design import claims_table  # noqa: F401  (the report notebook's first-design table)
from .train.results import summarize  # noqa: F401  (notebooks call report.summarize)

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
        failed = "".join(f", {what} {r[k]}" for k, what in (("n_diverged", "diverged"), ("n_oom", "out of memory")) if r[k])
        col = f"{r['protocol']} / {r['label']} (n={r['n']}{failed})"
        out[col] = {m: _fmt(r[f"{m}_mean"], r[f"{m}_ci95"], 0 if m.startswith(("params", "tokens", "mem")) else 1)
                    for m in metrics}
    return pd.DataFrame(out)


def milestone_table(ms: pd.DataFrame, metric_suffix: str = "_acc") -> pd.DataFrame:
    """Median first step reaching each accuracy threshold, per protocol x label x split."""
    sel = ms[ms.metric.str.endswith(metric_suffix) & ~ms.metric.str.contains("dur")]
    t = sel.groupby(["protocol", "label", "split", "threshold"])["step"].median().unstack("threshold")
    return t


# ---------------------------------------------------------------- all phases

def load_results(results_dir, profile: str | None = None) -> dict[str, pd.DataFrame]:
    """Every results/<phase>/{runs,curves,milestones,positions}.csv, concatenated (filtered to one profile)."""
    from pathlib import Path
    out = {}
    for name in ("runs", "curves", "milestones", "positions"):
        frames = [pd.read_csv(p) for p in sorted(Path(results_dir).glob(f"phase*/{name}.csv"))]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["phase", "profile"])
        out[name] = df[df.profile == profile] if profile is not None and len(df) else df
    return {**out, "runs": with_milestone_columns(out["runs"], out["milestones"])}


def with_milestone_columns(runs: pd.DataFrame, ms: pd.DataFrame) -> pd.DataFrame:
    """Add `<split>_step_to_<threshold>` for every token-accuracy milestone (NaN: not reached)."""
    sel = ms[ms.metric.isin(["train_acc", "val_acc"])] if len(ms) else ms
    if not len(sel) or not len(runs):
        return runs
    wide = sel.assign(col=sel.metric.str.replace("_acc", "") + "_step_to_" + sel.threshold.astype(int).astype(str)) \
        .pivot_table(index="run_id", columns="col", values="step", aggfunc="first", dropna=False)
    runs = runs.drop(columns=[c for c in wide.columns if c in runs.columns])
    return runs.merge(wide, left_on="run_id", right_index=True, how="left")


def learning_curves(curves: pd.DataFrame, metric: str = "acc"):
    """One panel per phase x protocol: train (solid) and validation (dashed) accuracy, mean and 95 % CI band."""
    long = curves.melt(id_vars=["phase", "protocol", "label", "seed", "step"],
                       value_vars=[f"train_{metric}", f"val_{metric}"], var_name="scored_on", value_name=metric)
    long["panel"] = long.phase + " / " + long.protocol
    g = sns.relplot(data=long, x="step", y=metric, hue="label", style="scored_on", col="panel",
                    col_wrap=min(3, long.panel.nunique()),
                    kind="line", errorbar=("ci", 95), seed=0, facet_kws={"sharex": False, "sharey": False},
                    height=2.8, aspect=1.35)
    g.set_titles("{col_name}")
    return g.figure


def milestone_heatmap(ms: pd.DataFrame, metric: str = "train_acc"):
    """Median first step reaching each threshold of `metric` (blank: not reached), rows phase/protocol/label."""
    sel = ms[ms.metric == metric]
    t = sel.groupby(["phase", "protocol", "label", "threshold"])["step"].median().unstack("threshold")
    t.index = [" / ".join(map(str, i)) for i in t.index]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * t.shape[1], 0.9 + 0.3 * t.shape[0]))
    sns.heatmap(t, annot=True, fmt=".0f", cmap="viridis_r", cbar_kws={"label": "step"}, ax=ax, annot_kws={"size": 7})
    ax.set_title(f"first step with {metric} >= threshold (median over seeds)")
    ax.set_xlabel("threshold (%)")
    return fig


def cost_vs_params(runs: pd.DataFrame):
    """ms/step and peak memory against parameter count, one point per run (per phase x protocol)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, y in zip(axes, ("step_ms", "mem_peak_mb")):
        sns.scatterplot(data=runs, x="params_total", y=y, hue="phase", style="protocol", ax=ax)
        ax.set_xscale("log")
    fig.tight_layout()
    return fig


def pareto_front(df: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """Rows not dominated by any other (lower-or-equal cost and higher-or-equal score, one strictly)."""
    keep = []
    for i, r in df.iterrows():
        dominated = ((df[cost] <= r[cost]) & (df[score] >= r[score]) &
                     ((df[cost] < r[cost]) | (df[score] > r[score]))).any()
        if not dominated:
            keep.append(i)
    return df.loc[keep].sort_values(cost)


def pareto_plot(runs: pd.DataFrame, cost: str = "train_wall_s", score: str = "best_val_acc"):
    """Mean score vs mean cost per label (error bars: 95 % CI over seeds), Pareto front joined."""
    s = summarize(runs, ["label"], [cost, score])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.errorbar(s[f"{cost}_mean"], s[f"{score}_mean"], xerr=s[f"{cost}_ci95"], yerr=s[f"{score}_ci95"], fmt="o")
    for _, r in s.iterrows():
        ax.annotate(r["label"], (r[f"{cost}_mean"], r[f"{score}_mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    front = pareto_front(s, f"{cost}_mean", f"{score}_mean")
    ax.plot(front[f"{cost}_mean"], front[f"{score}_mean"], "--", color="gray", label="Pareto front")
    ax.set_xlabel(cost), ax.set_ylabel(score), ax.legend()
    return fig


def bench_scaling(scaling: pd.DataFrame):
    """Forward+backward time and peak memory vs sequence length (log-log), from results/bench/scaling.csv."""
    ok = scaling[scaling.status == "ok"]
    ok = ok.assign(width=ok.d_model.astype(str) + " x E" + ok.expand.astype(str))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, y in zip(axes, ("ms", "peak_mb")):
        sns.lineplot(data=ok, x="length", y=y, hue="method", style="width", marker="o", ax=ax)
        ax.set_xscale("log", base=2), ax.set_yscale("log")
    fig.tight_layout()
    return fig


def chunk_positions(pos: pd.DataFrame):
    """Phase 4: token accuracy and SSM state RMS by chunk position at the last evaluation, per protocol."""
    last = pos[pos.step == pos.groupby("run_id").step.transform("max")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    sns.lineplot(data=last, x="chunk", y="acc", hue="protocol", style="split", errorbar=("ci", 95), seed=0, ax=axes[0])
    sns.lineplot(data=last, x="chunk", y="state_rms", hue="protocol", style="split", errorbar=("ci", 95), seed=0, ax=axes[1])
    axes[0].set_ylabel("token accuracy (%)"), axes[1].set_ylabel("SSM state RMS after the chunk")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- generated speech

SAMPLE_MEASURES = ["acc_free_running", "acc_teacher_forced", "dur_mae_frames", "total_frames_error", "mcd_db",
                   "mcd_true_durations_db", "mcd_codec_floor_db", "rtf_tokens", "rtf_decode", "ms_per_frame_median"]


def samples_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Mean of each objective measure per model over the rendered sentences (n = sentences)."""
    cols = [c for c in SAMPLE_MEASURES if c in samples.columns]
    t = samples.groupby("model", sort=False)[cols].mean().round(3)
    t.insert(0, "sentences", samples.groupby("model", sort=False).size())
    return t


def samples_to_play(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per WAV to listen to (generated, true-duration and codec round trip), with a one-line measure."""
    rows = []
    for _, r in samples.iterrows():
        if r.model == "ground_truth":
            rows.append({"model": "codec round trip (floor)", "uid": r.uid, "text": r.text, "wav": r.wav,
                         "measures": f"MCD vs original {r.mcd_codec_floor_db:.2f} dB"})
            continue
        if isinstance(r.wav, str) and r.wav:
            rows.append({"model": r.model, "uid": r.uid, "text": r.text, "wav": r.wav,
                         "measures": f"MCD {r.mcd_db:.2f} dB; duration MAE {r.dur_mae_frames:.2f} frames; "
                                     f"RTF {r.rtf_tokens:.2f}"})
        rows.append({"model": f"{r.model} (true durations)", "uid": r.uid, "text": r.text,
                     "wav": r.wav_true_durations,
                     "measures": f"MCD {r.mcd_true_durations_db:.2f} dB; free-running token acc {r.acc_free_running:.1f} % "
                                 f"(teacher-forced {r.acc_teacher_forced:.1f} %)"})
    return pd.DataFrame(rows)


def audio_player(path):
    """An embedded (base64) audio player: the exported HTML plays it offline."""
    from IPython.display import Audio
    return Audio(filename=str(path), embed=True)


def frame_cost_plot(cost: pd.DataFrame, window: int = 25):
    """ms per generated frame vs position (rolling median over `window` frames), one line per model."""
    cost = cost.sort_values(["model", "position"])
    cost = cost.assign(ms_smooth=cost.groupby("model").ms.transform(lambda s: s.rolling(window, min_periods=1).median()))
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=cost, x="position", y="ms_smooth", hue="model", ax=ax)
    ax.set_xlabel("frame position"), ax.set_ylabel(f"ms per frame (rolling median of {window})")
    return fig
