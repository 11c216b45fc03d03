"""Tables and figures of the speech measures, from results/speech/*.csv only (nothing here trains)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .judge import PRIMARY_METRIC, pooled_rate, resample
from .speech import DECODER_RECIPES, summarize_speech, wav_folder

METRIC_NAME = {"per": "phoneme error rate (%)", "cer": "character error rate (%)"}


def recipe_of(row) -> str:
    """The decoder recipe a run row used, by its name in DECODER_RECIPES."""
    for name, kw in DECODER_RECIPES.items():
        if all(str(row.get(f"model_{k}", "")) == str(v) for k, v in kw.items()):
            return name
    return "?"


def speech_table(runs: pd.DataFrame, baselines: pd.DataFrame, durations: str | None = None) -> pd.DataFrame:
    """One row per model and duration mode, plus the baselines (ground truth, codec ceiling, nulls):
    judge error rates with 95 % CIs, MCD with its CI, duration error and RTF, what ran (`config`)."""
    base = summarize_speech(baselines).assign(config="-")
    rows = pd.concat([base, runs], ignore_index=True)
    if durations:
        rows = rows[rows.durations.isin([durations, "-"])]
    ci = lambda m: rows.apply(lambda r: f"{r[m]:.1f} [{r[m + '_lo']:.1f}, {r[m + '_hi']:.1f}]", axis=1)
    out = pd.DataFrame({"model": rows.model, "config": rows.config, "durations": rows.durations, "n": rows.n,
                        "PER % [95 % CI]": ci("per"), "CER % [95 % CI]": ci("cer"),
                        "MCD dB [95 % CI]": rows.apply(lambda r: f"{r.mcd_db:.2f} [{r.mcd_lo:.2f}, {r.mcd_hi:.2f}]"
                                                       if pd.notna(r.get("mcd_lo")) else f"{r.mcd_db:.2f}", axis=1)})
    for c, name in (("dur_mae_frames", "duration MAE (frames)"), ("abs_total_frames_error", "|total length error| (frames)"),
                    ("rtf_tokens", "RTF tokens"), ("rtf_decode", "RTF decode"), ("train_minutes", "training min"),
                    (f"step_to_{PRIMARY_METRIC}_30", f"step to {PRIMARY_METRIC.upper()} <= 30 %"),
                    (f"step_to_{PRIMARY_METRIC}_10", f"step to {PRIMARY_METRIC.upper()} <= 10 %")):
        if c in rows:
            out[name] = rows[c].round(2)
    return out.fillna("").reset_index(drop=True)


def error_curves(curve: pd.DataFrame, baselines: pd.DataFrame, metric: str = PRIMARY_METRIC, label: str = "model"):
    """Judge error on the listening subset vs training step and vs training minutes, one line per model,
    with the ground truth's and the codec round trip's error on the same sentences as floors."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    uids = None
    for key, g in curve.groupby(label, sort=False):
        if "run_id" in g and g.run_id.nunique() > 1:
            # several seeds: the mean over seeds, shaded between the lowest and highest seed, seeds as dots
            agg = g.groupby("step").agg(y=(metric, "mean"), lo=(metric, "min"), hi=(metric, "max"),
                                        train_minutes=("train_minutes", "mean")).reset_index()
            for ax, x in zip(axes, ("step", "train_minutes")):
                line, = ax.plot(agg[x], agg.y, marker="o", label=f"{key} (mean of {g.run_id.nunique()} seeds)")
                ax.fill_between(agg[x], agg.lo, agg.hi, alpha=0.15, color=line.get_color())
                ax.scatter(g[x], g[metric], s=8, color=line.get_color(), alpha=0.6)
            uids = g.get("n").iloc[0] if "n" in g else None
            continue
        g = g.sort_values("step")
        for ax, x in zip(axes, ("step", "train_minutes")):
            ax.plot(g[x], g[metric], marker="o", label=key)
            ax.fill_between(g[x], g[f"{metric}_lo"], g[f"{metric}_hi"], alpha=0.15)
        uids = g.get("n").iloc[0] if "n" in g else None
    base = summarize_speech(baselines.groupby("model").head(int(uids) if uids else None))
    for _, b in base.iterrows():
        for ax in axes:
            if b.model in ("ground truth", "codec round trip"):
                ax.axhline(b[metric], ls="--" if b.model == "ground truth" else ":", color="grey", lw=1)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training minutes (this machine)")
    axes[0].set_ylabel(f"judge {METRIC_NAME[metric]}")
    axes[0].set_ylim(0, min(110, max(105, float(curve[metric].max()) + 5)))
    axes[1].legend(fontsize=8)
    fig.suptitle("Free-running speech on unseen sentences, as the judge hears it (dashed: ground truth, dotted: codec)")
    fig.tight_layout()
    return fig


def ablation_plot(runs: pd.DataFrame, baselines: pd.DataFrame, metric: str = PRIMARY_METRIC):
    """Judge error per decoder recipe (predicted and true durations), with the baselines as lines."""
    runs = runs.assign(recipe=runs.apply(recipe_of, axis=1))
    fig, ax = plt.subplots(figsize=(9, 4))
    recipes = list(dict.fromkeys(runs.recipe))
    width = 0.38
    for k, mode in enumerate(("predicted", "true")):
        r = runs[runs.durations == mode].set_index("recipe").reindex(recipes)
        x = np.arange(len(recipes)) + (k - 0.5) * width
        err = np.vstack([r[metric] - r[f"{metric}_lo"], r[f"{metric}_hi"] - r[metric]])
        ax.bar(x, r[metric], width, yerr=err, capsize=3, label=f"{mode} durations")
    base = summarize_speech(baselines)
    styles = {"ground truth": "--", "codec round trip": ":", "null: time-reversed": "-.", "null: another sentence": "-"}
    for _, b in base.iterrows():
        ax.axhline(b[metric], ls=styles.get(b.model, "-"), color="grey", lw=1)
        ax.text(len(recipes) - 0.5, b[metric], f" {b.model}", va="center", fontsize=7, color="grey")
    ax.set_xticks(np.arange(len(recipes)), recipes)
    ax.set_ylabel(f"judge {METRIC_NAME[metric]}")
    ax.set_title(f"Decoder recipe ablation ({runs.config.iloc[0].split('_dec')[0]} and variants, unseen sentences)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def choose_recipe(runs: pd.DataFrame, metric: str = PRIMARY_METRIC) -> tuple[str, pd.DataFrame]:
    """The recipe with the lowest judge error on predicted durations (the full TTS path), and the ranking."""
    r = runs[runs.durations == "predicted"].assign(recipe=lambda d: d.apply(recipe_of, axis=1))
    ranking = r.sort_values(metric)[["recipe", "config", metric, f"{metric}_lo", f"{metric}_hi", "cer", "mcd_db"]]
    return ranking.recipe.iloc[0], ranking.reset_index(drop=True)


def heard_examples(sentences: pd.DataFrame, wav_dir, per_model: int = 2) -> pd.DataFrame:
    """The sentences whose generated audio was kept, with what the judge heard, per model (predicted durations):
    each transcript beside the audio of the same seed's run (the lowest seed whose audio is there)."""
    from pathlib import Path
    s = sentences[sentences.durations == "predicted"]
    s = s.sort_values("seed", kind="stable") if "seed" in s else s.assign(seed=0)
    rows = []
    for model, g in s.groupby("model", sort=False):
        for _, r in g.iterrows():
            path = Path(wav_dir) / wav_folder(model, int(r.seed)) / f"{r.uid}.wav"
            if path.is_file() and len([x for x in rows if x["model"] == model]) < per_model:
                per = 100 * r.phoneme_edits / max(1, r.phoneme_len)
                rows.append({"model": model, "uid": r.uid, "text": r.text, "heard": r.transcript,
                             "PER %": round(per, 1), "wav": str(path)})
    return pd.DataFrame(rows)


def paired_difference(sentences: pd.DataFrame, config_a: str, config_b: str, durations: str = "predicted",
                      metric: str = PRIMARY_METRIC, n: int = 2000, seed: int = 0) -> dict:
    """Judge error of `config_a` minus `config_b` on the sentences both generated (points), with a 95 % CI
    from resampling sentences; paired: each draw of sentences scores both models."""
    unit = {"per": "phoneme", "cer": "char"}[metric]
    pick = lambda c: sentences[(sentences.config == c) & (sentences.durations == durations)].set_index("uid")
    a, b = pick(config_a), pick(config_b)
    for c, s in ((config_a, a), (config_b, b)):
        if s.index.has_duplicates:
            raise ValueError(f"{c} has several runs (seeds) on the same sentences: pick one run per model")
    uids = a.index.intersection(b.index)
    if len(uids) < 2:
        raise ValueError(f"{config_a} and {config_b} share {len(uids)} sentences ({durations} durations): need >= 2")
    ea, la, eb, lb = (s.loc[uids, f"{unit}_{k}"].to_numpy(float) for s in (a, b) for k in ("edits", "len"))
    idx = resample(len(uids), n, seed)
    draws = pooled_rate(ea, la, idx) - pooled_rate(eb, lb, idx)
    return {"a": config_a, "b": config_b, "n": len(uids), "diff": float(pooled_rate(ea, la) - pooled_rate(eb, lb)),
            "lo": float(np.percentile(draws, 2.5)), "hi": float(np.percentile(draws, 97.5))}


def lookahead_table(results_dir, profile: str = "cpu", durations: str = "predicted") -> pd.DataFrame | None:
    """Deviation 7's diagnostic (docs/preregistration.md): forward-only pure Mamba beside the pure-Mamba arms
    that look ahead (mamba_bidirectional) and the hybrids, seed 0 of the speech recipe at Phase 1's size, judge
    error on the unseen sentences and each model's paired difference from forward-only pure Mamba.

    Rows come from `speech/bidirectional/` and, for a configuration it lacks, Phase 1's speech runs; only
    runs of the corpus, codec and judge of the forward-only model there (results of another codec fit are
    never pooled). None until that model exists there."""
    from pathlib import Path

    from .models import ModelConfig, TTSModel
    from .speech import speech_model
    folders = [Path(results_dir, "speech", "bidirectional"), Path(results_dir, "phase1", "speech")]
    folders = [f for f in folders if (f / "runs.csv").exists() and (f / "sentences.csv").exists()]
    if not folders or folders[0].parent.name != "speech":
        return None
    same = ["judge_id", "codec_id", "corpus_hash"]
    runs = pd.concat([pd.read_csv(f / "runs.csv") for f in folders], ignore_index=True)
    sentences = pd.concat([pd.read_csv(f / "sentences.csv") for f in folders], ignore_index=True)
    forward = speech_model("mamba", profile).name
    reference = runs[(runs.config == forward) & (runs.seed == 0)]
    if reference.empty:
        return None
    key = reference.iloc[0][same]          # the forward-only model's corpus, codec and judge
    pick = lambda df: df[(df[same] == key).all(axis=1) & (df.seed == 0)]
    runs = pick(runs)
    runs = runs[runs.durations == durations].drop_duplicates("config")    # the first folder wins
    sentences = pick(sentences).drop_duplicates(["config", "uid", "durations"])
    hybrids = [speech_model("hybrid", profile, decoder_causal=c).name for c in (True, False)]
    keep = [forward] + sorted(c for c in runs.config if c.startswith("mamba_bi_")) + hybrids
    rows = []
    for config in keep:
        r = runs[runs.config == config]
        if r.empty:
            continue
        r = r.iloc[0]
        cfg = ModelConfig.from_dict({k[len("model_"):]: v for k, v in r.items() if k.startswith("model_")})
        if cfg.backbone == "hybrid":
            ahead = "encoder (centred convolutions)"
        else:
            ahead = "encoder" if cfg.mamba_bidirectional else "nowhere"
        if ahead != "nowhere" and not cfg.decoder_causal:
            ahead += ", decoder"
        d = paired_difference(sentences, config, forward, durations) if config != forward else None
        rows.append({"config": config, "looks ahead in": ahead,
                     "params": sum(p.numel() for p in TTSModel(cfg).parameters()),
                     "PER % [95 % CI]": f"{r.per:.1f} [{r.per_lo:.1f}, {r.per_hi:.1f}]",
                     "minus forward-only pure Mamba [95 % CI]": f"{d['diff']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" if d else "-",
                     "decoder causal (can stream)": bool(cfg.decoder_causal)})
    return pd.DataFrame(rows)


def lookahead_by_seed(results_dir, profile: str = "cpu", durations: str = "predicted") -> pd.DataFrame | None:
    """Deviation 7's addendum: the bidirectional pure Mamba against Phase 1's hybrid (same size, recipe, batches,
    corpus and judge), judge PER per seed and the paired-by-seed difference with its 95 % t interval.
    None until both have >= 2 common seeds."""
    from pathlib import Path

    from .speech import speech_model
    from .verdicts import Comparison, compare
    def per_by_seed(folder: Path, config: str) -> pd.Series:
        r = pd.read_csv(folder / "runs.csv")
        return r[(r.config == config) & (r.durations == durations)].set_index("seed").per

    try:
        bi = per_by_seed(Path(results_dir, "speech", "bidirectional"),
                         speech_model("mamba", profile, mamba_bidirectional=True).name)
        hybrid = per_by_seed(Path(results_dir, "phase1", "speech"), speech_model("hybrid", profile).name)
    except FileNotFoundError:
        return None
    c = compare(Comparison("lookahead", "-", "bidirectional pure Mamba", "hybrid", "lower", "difference", 3.0), bi, hybrid)
    if c.n < 2:
        return None
    seeds = sorted(set(bi.index) & set(hybrid.index))
    return pd.DataFrame({"model": ["bidirectional pure Mamba", "hybrid (Phase 1)", "difference, paired by seed"],
                         "PER % per seed": [", ".join(f"{bi[s]:.1f}" for s in seeds),
                                            ", ".join(f"{hybrid[s]:.1f}" for s in seeds), ""],
                         "mean [95 % CI]": [f"{bi[seeds].mean():.1f}", f"{hybrid[seeds].mean():.1f}",
                                            f"{c.effect:+.1f} [{c.ci_lo:+.1f}, {c.ci_hi:+.1f}]"]})
