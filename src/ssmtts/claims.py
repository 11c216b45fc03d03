"""The claims table of the pre-registered design: each claim's primary outcome, decided by ssmtts.verdicts.

Reads only CSVs. For every claim of a phase that has been re-run under the `speech` protocol
(`results/<phase>/speech/runs.csv`), `data/claims.csv`'s `primary_outcome` names where its values
come from:

    parameters                    speech runs, `params_total` (exact)
    step / forward / backward ms  the timing pass, `results/<phase>/timing.csv` (paired by round:
    and working memory            the configurations ran interleaved, round by round)
    judge PER on unseen text      speech runs, `per` with predicted durations (paired by seed)
    first step with PER <= 30 %   speech runs, `step_to_per_30` in listening intervals; never reached
                                  = censored one interval past the budget ("not reached by step N")
    Phase 4's carried-state effect  chunk positions (`positions.csv`, validation, last evaluation): per seed,
                                  the stateful-minus-stateless codebook-0 CE of each chunk, averaged over
                                  chunks >= 1, minus the same at chunk 0 (no state carried yet); against 0

Claims about token *accuracy* become claims about judge *error* (docs/preregistration.md), so
their direction flips ("reaches a higher accuracy" -> "a lower PER"). "Reaches 100 %" becomes
"speaks": PER at most SPEAKS_BOUND. Each row says what ran (config @ width), the effect with its
95 % CI, the Holm-adjusted p within the claim's family, the verdict, the seed pairs a conclusive
test would need, the commit that pre-registered the outcome and the commits of the results.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from .first_design import resolve_label
from .verdicts import Comparison, claim_verdict, compare, decide, magnitude

# The look-ahead re-runs (docs/preregistration.md, deviations 10 and 13): Phases 3-5 with mamba_bidirectional, in
# results/<LOOKAHEAD_DIR>/<phase>/speech/, judged as a second tally beside the first
LOOKAHEAD_DIR = "lookahead"
LOOKAHEAD_DEVIATION = "10. **A look-ahead re-run of Phases 4 and 5"
# which deviation pre-registered each phase's look-ahead runs (results/lookahead/<phase>)
LOOKAHEAD_DEVIATIONS = {"phase4": LOOKAHEAD_DEVIATION, "phase5": LOOKAHEAD_DEVIATION,
                        "phase3": "13. **A look-ahead re-run of Phase 3"}
SPEAKS_BOUND = 25.0     # PER (%) at or under which a model "speaks" (docs/preregistration.md)
MIN_SEEDS = 3           # the pre-registered design's seeds per configuration
MILESTONE = 30          # the speed-of-learning milestone: first listening with PER <= 30 %

# primary_outcome (its start) -> (source, column); the scale comes from margin_unit
OUTCOMES = {"params_total": ("speech", "params_total"),
            "step_ms (timing pass)": ("timing", "step_ms"),
            "fwd_ms (timing pass)": ("timing", "fwd_ms"),
            "bwd_ms (timing pass)": ("timing", "bwd_ms"),
            "model peak working memory": ("timing", "work_mb"),
            "judge PER (%)": ("speech", "per"),
            f"first training step with judge PER <= {MILESTONE} %": ("speech", f"step_to_per_{MILESTONE}"),
            "paired per-chunk difference of val codebook-0 CE": ("positions", "carry_effect")}


def outcome_of(claim) -> tuple[str, str] | None:
    for prefix, where in OUTCOMES.items():
        if str(claim.primary_outcome).startswith(prefix):
            return where
    return None


def scale_of(claim) -> str:
    unit = str(claim.margin_unit)
    return "exact" if unit == "parameters" else "ratio" if unit.startswith("ratio") else "difference"


def expect_of(claim, column: str) -> str:
    """The claimed direction on the primary outcome: accuracy claims flip when judged by error rate."""
    if column == "per" and "acc" in str(claim.metric):
        return "lower" if claim.expect == "higher" else "higher"
    return claim.expect


def load(results_dir, phase: str, min_seeds: int = MIN_SEEDS) -> dict[str, pd.DataFrame]:
    """A phase's re-run tables: speech runs (predicted durations) and the timing pass, each with `group`."""
    d = Path(results_dir) / phase
    out = {}
    if (d / "speech" / "runs.csv").is_file():
        r = pd.read_csv(d / "speech" / "runs.csv")
        r = r[r.durations == "predicted"]
        r = r.assign(group=r.label if "label" in r else r.model, unit=r.seed)
        if complete(r, min_seeds):
            out["speech"] = r
    if (d / "positions.csv").is_file():
        effects = carry_effects(pd.read_csv(d / "positions.csv"))
        if len(effects) and "git_commit" not in effects and (d / "runs.csv").is_file():
            runs = pd.read_csv(d / "runs.csv")       # positions.csv names no commit: its stateful runs' rows do
            if {"protocol", "git_commit"} <= set(runs):
                stateful = runs[runs.protocol == "stateful"].drop_duplicates("seed").set_index("seed")
                effects["git_commit"] = effects.seed.map(stateful.git_commit)
        if len(effects):
            out["positions"] = effects
    if (d / "timing.csv").is_file():
        t = pd.read_csv(d / "timing.csv")
        chunked = t.protocol.isin(["stateless", "stateful"]) if "protocol" in t else pd.Series(False, index=t.index)
        if chunked.any():       # Phase 4 compares its two chunk protocols of one configuration
            out["timing"] = t[chunked].assign(group=t.protocol, unit=t["round"])
        else:
            if "protocol" in t:
                t = t[t.protocol == "speech"] if (t.protocol == "speech").any() else t.iloc[0:0]
            out["timing"] = t.assign(group=t.label, unit=t["round"])
    return out


def complete(runs: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> bool:
    """A phase's speech runs are judged only once complete: every configuration has the same >= `min_seeds`
    seeds (a re-run in progress is written run by run, seed after seed; docs/preregistration.md, deviation 3).
    Seeds beyond those every configuration has (a second stage for some configurations, deviation 9) are
    allowed: comparisons pair their two groups on their common seeds."""
    seeds = runs.groupby("group").unit.agg(frozenset)
    if len(seeds) == 0:
        return False
    return len(frozenset.intersection(*seeds)) >= min_seeds


def carry_effects(pos: pd.DataFrame) -> pd.DataFrame:
    """Phase 4's pre-registered estimand, one row per seed (runs that recorded `ce_cb0` per chunk only):
    d_k = CE_cb0(stateful, chunk k) - CE_cb0(stateless, chunk k) on the validation samples at the last
    evaluation; effect = mean(d_k, k >= 1) - d_0. Negative: the carried state lowers the error beyond
    whatever separates the two trained models where no state is carried (chunk 0)."""
    if "ce_cb0" not in pos or pos.ce_cb0.isna().all():
        return pd.DataFrame()
    val = pos[(pos.split == "val") & pos.ce_cb0.notna()]
    val = val[val.step == val.groupby("run_id").step.transform("max")]
    wide = val.pivot_table(index=["seed", "chunk"], columns="protocol", values="ce_cb0")
    if not {"stateful", "stateless"} <= set(wide.columns):
        return pd.DataFrame()
    d = (wide["stateful"] - wide["stateless"]).rename("d").reset_index().dropna()
    rows = []
    for seed, g in d.groupby("seed"):
        later, first = g[g.chunk >= 1].d, g[g.chunk == 0].d
        if len(later) and len(first):
            rows.append({"seed": seed, "carry_effect": float(later.mean() - first.iloc[0]),
                         "d_chunk0": float(first.iloc[0]), "d_later": float(later.mean())})
    meta = val[val.protocol == "stateful"].drop_duplicates("seed").set_index("seed")
    out = pd.DataFrame(rows)
    for col in ("config", "label", "git_commit"):
        if col in meta:
            out[col] = out.seed.map(meta[col])
    return out.assign(group="stateful", unit=out.seed)


def _series(df: pd.DataFrame, group: str, column: str) -> pd.Series:
    g = df[df.group == group]
    return pd.Series(g[column].to_numpy(float), index=g.unit.to_numpy())


def _reported_ratio(text: str) -> float:
    m = re.search(r"([\d.]+)x\)", str(text))
    return float(m.group(1)) if m else np.nan


def comparisons(claims: pd.DataFrame, tables: dict[str, dict[str, pd.DataFrame]]) -> tuple[list[Comparison], dict]:
    """Every comparison of every claim whose phase has re-run tables; also what each group's values were."""
    comps, seen = [], {}
    for c in claims.itertuples():
        where = outcome_of(c)
        phase_tables = tables.get(c.phase, {})
        if where is None or where[0] not in phase_tables:
            continue
        source, column = where
        df = phase_tables[source]
        a = [resolve_label(x, df) for x in str(c.a).split("|")]
        if source == "positions":  # the stateful runs' carried-state effect against no effect
            pairs = [("stateful", "bound 0")]
        elif c.kind == "reach":    # each named group against the bound
            pairs = [(g, f"bound {SPEAKS_BOUND:g}") for g in a]
        elif c.kind == "best":
            pairs = [(a[0], g) for g in sorted(df.group.unique()) if g != a[0]]
        else:
            pairs = [(x, resolve_label(y, df)) for x in a for y in str(c.b).split("|")]
        scale, expect = scale_of(c), expect_of(c, column) if c.kind != "reach" else "lower"
        present = set(df.group)
        # a configuration the claim names that has no runs yet (a re-run in progress): no verdict, not "inconclusive"
        if any(g not in present for pair in pairs for g in pair if not g.startswith("bound")):
            continue
        for ga, gb in pairs:
            va = _series(df, ga, column)
            if gb.startswith("bound"):
                vb = pd.Series(float(gb.split()[1]), index=va.index)
            else:
                vb = _series(df, gb, column)
            censored = ""
            if column.startswith("step_to_"):
                every = df["listen_every"].iloc[0] if "listen_every" in df else 1
                budget = df.steps.iloc[0]
                miss = {g: int(v.isna().sum()) for g, v in ((ga, va), (gb, vb)) if v.isna().any()}
                censored = "; ".join(f"{g}: {n} of {len(df[df.group == g])} seeds not reached by step {budget}"
                                     for g, n in miss.items())
                va, vb = va.fillna(budget + every) / every, vb.fillna(budget + every) / every
            cmp = compare(Comparison(c.claim_id, c.family, ga, gb, expect, scale, float(c.equivalence_margin),
                                     hypothesis=f"{column}: {' vs '.join(sorted((ga, gb)))}"), va, vb)
            if column.startswith("step_to_") and miss.get(ga) == len(va) and miss.get(gb) == len(vb):
                # neither reaches the milestone within the budget: no order between them, and no equivalence either
                cmp.p = cmp.p_equiv = np.nan
                censored = f"neither reaches the milestone by step {budget} ({censored})"
            cmp.censored = censored
            comps.append(cmp)
            seen[(c.claim_id, ga)], seen[(c.claim_id, gb)] = va, vb
    return comps, seen


def _describe(v: pd.Series, column: str) -> str:
    v = v.dropna()
    if v.empty:
        return "n/a"
    fmt = "{:,.0f}" if column == "params_total" else "{:.3f}" if column == "carry_effect" else "{:.1f}"
    return (fmt.format(v.mean()) + (f" (sd {v.std(ddof=1):.2g}" if len(v) > 1 else " (") + f", n={len(v)})")


def _magnitude(d: pd.DataFrame, claim, verdict: str) -> str:
    """A ratio claim's effect beside the reported ratio, and whether the 95 % CI excludes the reported one."""
    reported = _reported_ratio(claim.reported)
    if scale_of(claim) != "ratio" or len(d) != 1 or not np.isfinite(reported):
        return ""
    r = d.iloc[0]
    text = magnitude(r.effect, reported, "ratio", verdict)
    if np.isfinite(r.ci_lo) and not r.ci_lo <= reported <= r.ci_hi:
        text += f"; the reported {reported:.2f}x lies outside the 95 % CI"
    return text


def provenance(repo=None, added: str | None = None) -> str:
    """The commit that pre-registered the outcomes (the one that added docs/preregistration.md), or with `added`
    the first commit whose docs/preregistration.md contains that text (a deviation, e.g. LOOKAHEAD_DEVIATION). The
    pathspec is anchored at the repository's top (`:(top)`), so the answer does not depend on the working
    directory (the report notebook runs in notebooks/)."""
    which = ["--diff-filter=A"] if added is None else [f"-S{added}"]
    try:
        out = subprocess.run(["git", "log", *which, "--format=%h", "--", ":(top)docs/preregistration.md"],
                             capture_output=True, text=True, cwd=repo, timeout=20)
        return out.stdout.split()[-1] if out.returncode == 0 and out.stdout.split() else "unknown (no git history)"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git history)"


def verdict_table(claims: pd.DataFrame, results_dir, repo=None, min_seeds: int = MIN_SEEDS,
                  preregistered_by: str | dict[str, str] | None = None) -> pd.DataFrame:
    """One row per claim of a re-run phase: what ran, primary outcome, values, effect, verdict, provenance.
    A phase's speech runs count once every configuration has the same >= min_seeds seeds (`complete`).
    `preregistered_by`: text of docs/preregistration.md that pre-registered this folder's runs (a deviation;
    default: the file's first commit), or such a text per phase (e.g. LOOKAHEAD_DEVIATIONS)."""
    phases = sorted({p for p in claims.phase if str(p).startswith("phase")})
    tables = {p: t for p in phases if (t := load(results_dir, p, min_seeds))}
    comps, seen = comparisons(claims, tables)
    if not comps:
        return pd.DataFrame()
    decided = decide(comps)
    by_phase = preregistered_by if isinstance(preregistered_by, dict) else {p: preregistered_by for p in phases}
    prereg = {text: provenance(repo, text) for text in {by_phase.get(p) for p in tables}}
    rows = []
    for c in claims.itertuples():
        d = decided[decided.claim_id == c.claim_id]
        if d.empty:
            continue
        source, column = outcome_of(c)
        df = tables[c.phase][source]
        # what ran, from the speech runs (the timing pass times the same configurations)
        cfgs = tables[c.phase].get("speech", df)
        if "config" in cfgs and "model_d_model" not in cfgs:      # the width is in the configuration's name
            cfgs = cfgs.assign(model_d_model=cfgs.config.str.extract(r"_H(\d+)")[0])
        ran = "; ".join(f"{g} = {cfg} @ H{h}" for g, cfg, h in
                        cfgs[["group", "config", "model_d_model"]].drop_duplicates().itertuples(index=False)
                        if g in set(d.a) | set(d.b)) if {"config", "model_d_model"} <= set(cfgs) else ""
        digits = 3 if str(c.margin_unit) == "nats" else 2
        fmt_eff = (lambda x: f"{x:.3f}x") if scale_of(c) == "ratio" else (lambda x: f"{x:+.{digits}f}")
        interval = lambda r: "exact" if r.scale == "exact" else f"[{fmt_eff(r.ci_lo)}, {fmt_eff(r.ci_hi)}], p_holm {r.p_holm:.3g}"
        effects = "; ".join(f"{r.a} vs {r.b}: {fmt_eff(r.effect) if r.scale != 'exact' else f'{r.effect:+,.0f}'} "
                            f"{interval(r)}, {r.verdict}" for r in d.itertuples())
        verdict = claim_verdict(d.verdict)
        groups = list(dict.fromkeys(list(d.a) + list(d.b)))
        values = "; ".join(f"{g}: {_describe(seen[(c.claim_id, g)], column)}" for g in groups
                           if not g.startswith("bound"))
        need = d.seeds_needed.max()
        commits = ",".join(sorted({str(x) for x in df.get("git_commit", pd.Series(dtype=str)).dropna()}))
        rows.append({"claim": c.claim_id, "phase": c.phase, "statement": c.claim, "reported": c.reported,
                     "primary outcome": c.primary_outcome, "unit": c.margin_unit, "margin": c.equivalence_margin,
                     "what ran": ran, "ours": values, "effect [95 % CI], Holm p, verdict": effects,
                     "verdict": verdict,
                     "magnitude": _magnitude(d, c, verdict),
                     "seed pairs needed": "" if not np.isfinite(need) else int(need),
                     "censored": "; ".join(x for x in d.censored if x),
                     "pre-registered in": prereg[by_phase.get(c.phase)], "results from": commits})
    return pd.DataFrame(rows)


def tally(claims: pd.DataFrame, verdicts: pd.DataFrame, first_design: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim with the verdict that currently stands: the re-run's (pre-registered outcome) where its phase
    was re-run, the benchmark's for claims no phase trains (scaling), else `not re-run yet`. One row per claim."""
    rerun = verdicts.set_index("claim").verdict if len(verdicts) else pd.Series(dtype=str)
    other = first_design.set_index("claim").verdict if first_design is not None and len(first_design) else \
        pd.Series(dtype=str)
    rows = []
    for c in claims.itertuples():
        if c.claim_id in rerun.index:
            rows.append({"claim": c.claim_id, "phase": c.phase, "verdict": rerun[c.claim_id], "from": "re-run"})
        elif not str(c.phase).startswith("phase") and c.claim_id in other.index:
            rows.append({"claim": c.claim_id, "phase": c.phase, "verdict": other[c.claim_id], "from": "benchmark"})
        else:
            rows.append({"claim": c.claim_id, "phase": c.phase, "verdict": "not re-run yet", "from": ""})
    return pd.DataFrame(rows)


def best_configurations(folders: dict[str, Path | str], min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """Each re-run phase's best configuration in each results folder (lowest mean judge PER over its seeds, unseen
    sentences, predicted durations) and whether it speaks (mean PER <= SPEAKS_BOUND), the design's "every
    phase's best configuration speaks". `folders`: a name per results folder (e.g. forward-only, look-ahead).
    Phases whose speech runs are not complete (`complete`) are left out."""
    rows = []
    for name, folder in folders.items():
        for phase in sorted(p.name for p in Path(folder).glob("phase*") if p.is_dir()):
            r = load(folder, phase, min_seeds).get("speech")
            if r is None:
                continue
            per = r.groupby(["group", "config"]).per
            best = per.mean().idxmin()
            seeds = r[(r.group == best[0]) & (r.config == best[1])].sort_values("seed")
            rows.append({"phase": phase, "runs": name, "best configuration": f"{best[0]} = {best[1]}",
                         "seeds": len(seeds), "PER % (mean)": round(seeds.per.mean(), 1),
                         "PER % by seed": ", ".join(f"{v:.1f}" for v in seeds.per),
                         "next best PER %": round(per.mean().drop(best).min(), 1) if per.ngroups > 1 else np.nan,
                         f"speaks (<= {SPEAKS_BOUND:g} %)": "yes" if seeds.per.mean() <= SPEAKS_BOUND else "no"})
    return pd.DataFrame(rows)
