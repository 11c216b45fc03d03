"""Training speed of this tree against a baseline commit, and paper-size generation on this CPU.

Three measurements, each in a fresh interpreter, rounds interleaved so that machine noise hits
the two trees alike (the baseline is checked out with `git worktree` next to the system's temp
dir, sharing this checkout's data/build/):

  step      median training-step time (forward, loss, backward, clip, optimizer) as run_training
            times it, for every backbone at the Phase 1 cpu shape (H128, 4 decoder layers,
            batch 8 x 192 frames) and the Phase 3 cpu shape (L4_H768_E1.5 @ H96, batch 8 x 96)
            -> results/bench/train_step.csv
  run       wall time of one whole Phase 3 cpu run (L4_H768_E1.5 @ H96, held-out, 80 steps with
            its evaluations; set-up included, corpus loading not) -> results/bench/train_run.csv
  generate  this tree only: frame-by-frame generation of 2000 frames by the paper-size
            L4_H768_E1.5 pure Mamba and a Transformer of the same depth and width (random
            weights; greedy), per-frame latency by position and real-time factor
            (time / audio duration at 75 frames/s) -> results/bench/generation_paper.csv

    python benchmarks/train_bench.py [--baseline 54469e3] [--new HEAD] [--rounds 5] [--gen-rounds 3] [--what step,run,generate]

`--new REF` measures a commit (a worktree like the baseline's) instead of this working tree, so
that editing the checkout while it runs cannot change what is measured.

The ratios (baseline / this tree) are medians over rounds of each round's own pair.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if "--one" not in sys.argv:   # a child imports the tree its PYTHONPATH names (this one or the baseline)
    sys.path.insert(0, str(ROOT / "src"))

BACKBONES = ("transformer", "hybrid", "mamba", "mamba2")
SHAPES = ("phase1", "phase3")
GEN_FRAMES = 2000
FRAME_RATE = 75


def shape_configs(shape: str, profile: str):
    """(label, ModelConfig, TrainConfig) of every backbone at a phase's cpu training shape."""
    from ssmtts.phases import PHASES
    models, trains = PHASES[shape](profile)
    tc = trains["heldout"]
    base = dict(models)["hybrid" if shape == "phase1" else "L4_H768_E1.5"]
    out = []
    for bk in BACKBONES:
        kw = dict(backbone=bk)
        if bk == "mamba2" and base.d_inner % base.mamba2_head_dim:
            kw["mamba2_head_dim"] = base.d_inner // 3       # H96 E1.5: 144 channels -> 3 heads of 48
        label = "hybrid" if shape == "phase1" else "L4_H768_E1.5"
        out.append((f"{label}:{bk}", replace(base, **kw), tc))
    return out


# ---------------------------------------------------------------- one measurement (child process)
def known_fields(cls, values: dict):
    """cls(**values) with the fields this tree's cls knows, and the rest: a newer tree's config carries fields
    an older one lacks; check_dropped (parent) accepts only those left at their default."""
    from dataclasses import fields
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names}), {k: v for k, v in values.items() if k not in names}


def check_dropped(tree: Path, dropped: dict):
    """A baseline that ignores a field must be training the same model: the field must be at its default here."""
    from dataclasses import MISSING, fields
    from ssmtts.models import ModelConfig
    from ssmtts.train.loop import TrainConfig
    for kind, cls in (("model", ModelConfig), ("train", TrainConfig)):
        defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        for k, v in dropped.get(kind, {}).items():
            if k not in defaults or defaults[k] != v:
                raise RuntimeError(f"{tree.name} has no {kind} field {k!r}, and this configuration sets it to {v!r} "
                                   f"(default {defaults.get(k, 'none')!r}): the trees would train different models")


def measure(what: str, shape: str, backbone: str, steps: int) -> dict:
    import torch
    from ssmtts.corpus.build import build_corpus
    from ssmtts.models import ModelConfig
    from ssmtts.train.loop import run_training
    corpus = build_corpus(codec=os.environ.get("CODEC", "auto"))
    # configurations come from this (new) tree, as dicts, so that both trees train the same model
    import ssmtts
    cfg = json.loads(os.environ["BENCH_CONFIG"])
    from ssmtts.train.loop import TrainConfig
    (mc, dropped_model), (tc, dropped_train) = known_fields(ModelConfig, cfg["model"]), known_fields(TrainConfig, cfg["train"])
    if what == "step":   # a short run: `steps` timed steps after the warm-up, one tiny evaluation at the end
        tc = replace(tc, steps=tc.timing_warmup + steps, eval_every=10**6, eval_train_items=1, eval_val_items=1,
                     checkpoint_every=10**6)
    t0 = time.perf_counter()
    res = run_training(mc, tc, corpus, 0, "bench", None, "cpu", progress=False)
    wall = time.perf_counter() - t0
    s = res["summary"]
    out = {"config": mc.name, "params": int(s["params_total"]), "step_ms": s["step_ms"], "fwd_ms": s["fwd_ms"],
           "bwd_ms": s["bwd_ms"], "opt_ms": s["opt_ms"], "run_wall_s": wall, "train_wall_s": s["train_wall_s"],
           "threads": torch.get_num_threads(), "package": str(Path(ssmtts.__file__).parents[2]),
           "dropped": {"model": dropped_model, "train": dropped_train}}
    if what == "run":
        out["final_val_acc"] = s["final_val_acc"]
        out["final_train_loss_ce"] = float(res["curve"].train_loss_ce.iloc[-1])
    return out


def measure_generation(backbone: str, frames: int) -> list[dict]:
    """Both weight precisions of one random model in one process, alternated over three passes."""
    import torch
    from ssmtts.models import ModelConfig, TTSModel
    from ssmtts.models.generate import generate
    from ssmtts.models.inference import half_weights
    cfg = json.loads(os.environ["BENCH_CONFIG"])["model"]
    torch.manual_seed(0)
    mc, dropped = known_fields(ModelConfig, cfg)
    model = TTSModel(mc).eval()
    variants = {"float32": model, "float16": half_weights(model, torch.float16)}
    S = 100
    text = np.r_[1, np.arange(S - 1) % 30 + 5]                       # BOS + ordinary letters
    dur = np.full(S, frames // S)                                     # `frames` in all
    ref = np.random.default_rng(0).integers(0, 1024, (8, 150))
    runs = {k: [] for k in variants}
    for m in variants.values():
        generate(m, text[:10], ref, durations=np.full(10, 5))         # warm-up (kernels, allocator)
    for _ in range(3):
        for k, m in variants.items():
            runs[k].append(generate(m, text, ref, durations=dur))
    rows = []
    for k, gens in runs.items():
        ms = np.median([g.ms_per_frame for g in gens], axis=0)       # (frames,) median over passes
        encode_ms = float(np.median([g.encode_ms for g in gens]))
        total_s = (ms.sum() + encode_ms) / 1000
        agree = float((gens[0].codes == runs["float32"][0].codes).mean())
        summary = {"config": model.cfg.name, "weights": k, "params": model.param_counts()["total"],
                   "frames": len(ms), "ms_per_frame_median": float(np.median(ms)), "encode_ms": encode_ms,
                   "rtf": total_s / (len(ms) / FRAME_RATE),
                   "slope_ms_per_1000_positions": float(np.polyfit(np.arange(len(ms)), ms, 1)[0] * 1000),
                   "greedy_tokens_equal_to_float32": agree, "threads": torch.get_num_threads(),
                   "dropped": {"model": dropped}}
        for idx in np.array_split(np.arange(len(ms)), 8):   # eight bins of positions
            rows.append({**summary, "positions": f"{idx[0]}-{idx[-1]}", "ms_per_frame": float(np.median(ms[idx]))})
    return rows


# ---------------------------------------------------------------- driver
def worktree(ref: str) -> Path:
    """A worktree of commit `ref` in the temp dir, its data/build/ pointing at this checkout's."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"ssmtts-tree-{sha[:12]}"
    if not (path / "src").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    build = path / "data" / "build"
    if not build.exists():
        build.symlink_to(ROOT / "data" / "build")
    return path


def child(tree: Path, args: list[str], config: dict) -> dict | list:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "BENCH_CONFIG": json.dumps(config)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", *args], capture_output=True,
                         text=True, env=env, cwd=tree)
    if out.returncode != 0:
        raise RuntimeError(f"{tree.name} {args}: {out.stderr.strip()[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if isinstance(res, dict) and Path(res.pop("package")).resolve() != tree.resolve():
        raise RuntimeError(f"the child for {tree} imported ssmtts from elsewhere")
    for row in (res if isinstance(res, list) else [res]):
        check_dropped(tree, row.pop("dropped"))
    return res


def commit_of(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="54469e3", help="commit to compare with (the parent of the speed work)")
    ap.add_argument("--new", default=None, help="commit to measure (default: this working tree as it is)")
    ap.add_argument("--profile", default="cpu", help="shapes of this profile (smoke: for the tests)")
    ap.add_argument("--what", default="step,run,generate")
    # one fresh process per measurement: the same step's median varies by up to ~1.5x between processes on a
    # shared 2-core machine, so a ratio needs more rounds than the in-process timing pass does
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the step and run measurements")
    ap.add_argument("--gen-rounds", type=int, default=3, help="rounds of the generation measurement")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per step measurement")
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--one", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        what = a.one[0]
        res = measure_generation(a.one[1], int(a.one[2])) if what == "generate" else \
            measure(what, a.one[1], a.one[2], int(a.one[3]))
        print(json.dumps(res))
        return

    from ssmtts.phases import PHASES, _mamba
    from ssmtts.train.results import atomic_write_csv, environment_row
    whats, backbones = a.what.split(","), a.backbones.split(",")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment_row("cpu")
    trees = {"baseline": worktree(a.baseline), "new": worktree(a.new) if a.new else ROOT}
    commits = {k: commit_of(t) for k, t in trees.items()}
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=trees["new"],
                           capture_output=True, text=True).stdout.strip()
    commits["new"] += "+dirty" if dirty else ""
    print(f"baseline {commits['baseline']} vs new {commits['new']}", flush=True)

    jobs = []   # (kind, label, config dict, args)
    if "step" in whats:
        for shape in SHAPES:
            for label, mc, tc in shape_configs(shape, a.profile):
                if mc.backbone in backbones:
                    jobs.append(("step", shape, label, {"model": mc.to_dict(), "train": tc.__dict__.copy()},
                                 ["step", shape, mc.backbone, str(a.steps)]))
    if "run" in whats:
        models, trains = PHASES["phase3"](a.profile)
        mc = dict(models)["L4_H768_E1.5"]
        jobs.append(("run", "phase3", "L4_H768_E1.5", {"model": mc.to_dict(), "train": trains["heldout"].__dict__.copy()},
                     ["run", "phase3", "mamba", "0"]))
    for name, tree in trees.items():   # builds (first time) and loads each tree's C++ kernels outside the timings
        child(tree, ["step", "phase3", "mamba", "1"], jobs[0][3] if jobs else
              {"model": _mamba(a.profile).to_dict(), "train": PHASES["phase3"](a.profile)[1]["heldout"].__dict__.copy()})
    rows = {"step": [], "run": []}
    for rnd in range(a.rounds):
        for kind, shape, label, config, args in jobs:
            for tree_name in (("baseline", "new") if rnd % 2 == 0 else ("new", "baseline")):
                r = child(trees[tree_name], args, config)
                rows[kind].append({"shape": shape, "label": label, "tree": tree_name, "commit": commits[tree_name],
                                   "round": rnd, **r})
                key = "step_ms" if kind == "step" else "run_wall_s"
                print(f"round {rnd} {kind:4s} {label:24s} {tree_name:8s} {r[key]:9.1f}", flush=True)
    for kind, name in (("step", "train_step.csv"), ("run", "train_run.csv")):
        if not rows[kind]:
            continue
        df = pd.DataFrame(rows[kind]).assign(**env)
        key = "step_ms" if kind == "step" else "run_wall_s"
        wide = df.pivot_table(index=["label", "round"], columns="tree", values=key)
        speedup = (wide["baseline"] / wide["new"]).groupby("label").median()
        df["speedup_median"] = df.label.map(speedup)
        atomic_write_csv(df, out / name)
        print(speedup.rename(f"{key}: baseline / new (median over rounds)").to_string(), flush=True)

    if "generate" in whats:
        paper = _mamba("smoke" if a.profile == "smoke" else "paper")   # L4_H768_E1.5, as the phases build it
        frames = 100 if a.profile == "smoke" else GEN_FRAMES
        gen_rows = []
        transformer = replace(paper, backbone="transformer", n_heads=max(2, paper.d_model // 64))
        for rnd in range(a.gen_rounds):
            for bk, mc in (("mamba", paper), ("transformer", transformer)):
                for r in child(trees["new"], ["generate", bk, str(frames)], {"model": mc.to_dict()}):
                    gen_rows.append({"label": f"L4_H768_E1.5 @ H{paper.d_model}", "backbone": bk, "round": rnd,
                                     "commit": commits["new"], **r})
                print(f"round {rnd} generate {bk:12s} rtf {r['rtf']:.3f} ({r['weights']})", flush=True)
        df = pd.DataFrame(gen_rows).assign(**env)
        atomic_write_csv(df, out / "generation_paper.csv")
        print(df.groupby(["backbone", "weights", "positions"], sort=False).ms_per_frame.median().unstack([0, 1]).to_string())
        print(df.groupby(["backbone", "weights"]).rtf.median().rename("real-time factor (median of rounds)").to_string())


if __name__ == "__main__":
    main()
