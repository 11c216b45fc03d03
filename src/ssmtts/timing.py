"""The timing pass: every cost claim's numbers, measured side by side, apart from the learning runs.

Learning runs may share the cores (two at a time, or on a cluster), so their own step times are
not evidence for a speed claim. The timing pass measures a phase's configurations at their training
shapes, threads fixed, nothing else of the study running, in rounds of fresh interpreters:

    step_ms, fwd_ms, bwd_ms, opt_ms   one process per round builds every configuration and steps them
                                      in turn, the order reversed every step (A B B A ...) and rotated
                                      every round; medians of `steps` training steps after `warmup`,
                                      timed as run_training times them (same batches for every
                                      configuration). Between processes the same configuration's median
                                      ranges 146-295 ms on a shared 2-core host; neighbouring steps of one
                                      process see the same machine (docs/preregistration.md, deviation 4)
    work_mb                           the step's own working memory, one process per configuration (every
                                      round, order swapped every round; `--memory-only` re-measures it
                                      for an existing pass, peak RSS counting bytes, not seconds): peak RSS
                                      minus RSS just before the first step (model and optimizer built,
                                      data loaded), with freed memory kept by the allocator
                                      (ssmtts.runtime), so the peak is what the step needed, in a process
                                      that ran nothing before; CUDA: peak allocated minus allocated before
                                      the first step

    python -m ssmtts.timing --phase phase1 [--profile cpu] [--rounds 3] [--threads 2] [--out results]
        -> results/<phase>/timing.csv (one row per configuration x protocol x round)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .runtime import child_env, current


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


def _arm(phase: str, profile: str, label: str, protocol: str, steps: int, warmup: int, corpus) -> dict:
    """One configuration x protocol ready to train: model, optimizer and its warmup + steps batches, drawn as
    run_training draws them (the same batches for every configuration of a phase)."""
    import torch
    from .models import TTSModel
    from .phases import PHASES, for_protocol
    from .train.data import train_batch
    from .train.loop import datasets
    models, trains = PHASES[phase](profile)
    mc, tc = for_protocol(dict(models)[label], protocol), trains[protocol]
    stateful = protocol == "stateful"
    if tc.chunked:         # Phase 4: chunks of long samples as run_training draws them, state carried if stateful
        items = datasets(corpus, tc)[0]
        batches = [(items.batch(pairs, mc.style_frames), stateful and pairs[0][1] > 0)
                   for pairs in (items.train_pairs(stateful, tc.batch_size, 0, s) for s in range(warmup + steps))]
    else:
        train = corpus.split("train")
        batches = [(train_batch(train, tc.batch_size, 0, s, mc.style_frames, tc.crop_frames, train), False)
                   for s in range(warmup + steps)]
    torch.manual_seed(0)
    model = TTSModel(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
    return {"label": label, "protocol": protocol, "mc": mc, "tc": tc, "model": model, "opt": opt,
            "batches": batches, "stateful": stateful, "carry": None, "times": []}


def _step(arm: dict, i: int, warmup: int) -> None:
    """One training step of an arm, timed as run_training times it (forward, backward, optimizer)."""
    from .models.state import detach_state
    from .train.loop import train_step
    b, carried = arm["batches"][i]
    out = train_step(arm["model"], arm["opt"], b, arm["tc"], "cpu", arm["carry"] if carried else None)
    arm["carry"] = detach_state(out["state"]) if arm["stateful"] else None
    t3 = time.perf_counter()
    if i >= warmup:
        arm["times"].append((out["t1"] - out["t0"], out["t2"] - out["t1"], t3 - out["t2"], t3 - out["t0"]))


def _medians(arm: dict) -> dict:
    med = 1000 * np.median(np.array(arm["times"]), axis=0)
    return {"config": arm["mc"].name, "params_total": sum(p.numel() for p in arm["model"].parameters()),
            "fwd_ms": med[0], "bwd_ms": med[1], "opt_ms": med[2], "step_ms": med[3],
            "batch_size": arm["tc"].batch_size, "crop_frames": arm["tc"].crop_frames}


def measure_one(phase: str, profile: str, label: str, protocol: str, steps: int, warmup: int) -> dict:
    """In this (fresh) process: one configuration alone, its step times and its working memory."""
    import torch
    from .corpus.build import build_corpus
    from .runtime import keep_freed_memory
    keep_freed_memory()
    arm = _arm(phase, profile, label, protocol, steps, warmup, build_corpus(codec=current().codec))
    base = _rss_mb()
    for i in range(warmup + steps):
        _step(arm, i, warmup)
    return {**_medians(arm), "work_mb": _peak_rss_mb() - base, "rss_before_mb": base,
            "threads": torch.get_num_threads()}


def measure_interleaved(phase: str, profile: str, arms: list, steps: int, warmup: int) -> list[dict]:
    """In this (fresh) process: every (label, protocol) arm built, then one step of each in turn, the order
    reversed every step (A B B A ...). The machine's speed drifts by 20 % between processes on a shared host
    (docs/preregistration.md, deviation 4); within one process, neighbouring steps see the same machine, so
    the ratio of two arms' medians is what their code costs."""
    import torch
    from .corpus.build import build_corpus
    corpus = build_corpus(codec=current().codec)
    built = [_arm(phase, profile, label, protocol, steps, warmup, corpus) for label, protocol in arms]
    for i in range(warmup + steps):
        for arm in (built if i % 2 == 0 else built[::-1]):
            _step(arm, i, warmup)
    return [{**_medians(arm), "threads": torch.get_num_threads()} for arm in built]


def _child(env: dict, what: str, args: list):
    out = subprocess.run([sys.executable, "-m", "ssmtts.timing", f"--{what}", json.dumps(args)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"timing {args}: {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_round(env: dict, phase: str, profile: str, arms: list, rnd: int) -> dict:
    """One round of memory: each arm alone in a fresh process (three steps), the order swapped every round."""
    memory = {}
    for pos, (label, protocol) in enumerate(arms if rnd % 2 == 0 else arms[::-1]):
        r = _child(env, "one", [phase, profile, label, protocol, 2, 1])
        memory[(label, protocol)] = {"work_mb": r["work_mb"], "rss_before_mb": r["rss_before_mb"], "position": pos}
    return memory


def memory_pass(phase: str, profile: str = "cpu", threads: int = 2, out_dir: str | Path = "results") -> pd.DataFrame:
    """(Re)measure the memory of every round of an existing <phase>/timing.csv, keeping its times. Peak RSS counts
    bytes, not seconds, so unlike the times it may be measured while other work runs."""
    from .train.results import atomic_write_csv, git_commit
    out = Path(out_dir) / phase / "timing.csv"
    df = pd.read_csv(out)
    env = {**child_env(threads=threads), "OMP_NUM_THREADS": str(threads)}
    arms = list(dict.fromkeys(zip(df.label, df.protocol)))
    for rnd in sorted(df["round"].unique()):
        for (label, protocol), m in _memory_round(env, phase, profile, arms, int(rnd)).items():
            at = (df["round"] == rnd) & (df.label == label) & (df.protocol == protocol)
            for col, v in m.items():
                df.loc[at, col] = v
    atomic_write_csv(df.assign(memory_git_commit=git_commit()), out)
    return df


def timing_pass(phase: str, profile: str = "cpu", rounds: int = 3, steps: int = 10, warmup: int = 3,
                threads: int = 2, out_dir: str | Path = "results", protocols=None, labels=None,
                memory_rounds: int | None = None) -> pd.DataFrame:
    """Every configuration of a phase, rounds of fresh processes; writes <phase>/timing.csv, one row per
    (round, protocol, label). Times: one process per round steps every configuration in turn (interleaved
    step by step, the order rotated every round). Memory (`work_mb`, every round, or the first `memory_rounds`):
    one process per configuration, the order swapped every round, so no configuration inherits another's memory.
    protocols None: Phase 4's chunk protocols (stateless, stateful: chunks as run_training draws them, the state
    carried between a stateful pass's chunks), `speech` for another re-run phase (SPEECH_PHASES), else `heldout`."""
    from .phases import PHASES, SPEECH_PHASES
    from .train.results import atomic_write_csv, environment_row
    models, trains = PHASES[phase](profile)
    protocols = protocols or (tuple(p for p in trains if trains[p].chunked) or
                              (("speech",) if phase in SPEECH_PHASES else ("heldout",)))
    labels = labels or [label for label, _ in models]
    arms = [(label, protocol) for protocol in protocols for label in labels]
    env = {**child_env(threads=threads), "OMP_NUM_THREADS": str(threads)}
    rows = []
    for rnd in range(rounds):
        k = rnd % len(arms)                                       # who steps first rotates round by round
        order = arms[k:] + arms[:k]
        timed = _child(env, "interleaved", [phase, profile, order, steps, warmup])
        memory = _memory_round(env, phase, profile, arms, rnd) if memory_rounds is None or rnd < memory_rounds else {}
        for (label, protocol), r in zip(order, timed):
            rows.append({"phase": phase, "profile": profile, "protocol": protocol, "label": label, "round": rnd,
                         "step_order": order.index((label, protocol)), "timing": "interleaved", **r,
                         **memory.get((label, protocol), {"work_mb": np.nan, "rss_before_mb": np.nan,
                                                          "position": np.nan})})
    df = pd.DataFrame(rows).assign(**environment_row("cpu"))
    out = Path(out_dir) / phase / "timing.csv"
    atomic_write_csv(df, out)
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", default="phase1")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results")
    ap.add_argument("--memory-rounds", type=int, default=None, help="rounds that also measure memory (default: all)")
    ap.add_argument("--memory-only", action="store_true",
                    help="re-measure the memory of every round of an existing timing.csv, keeping its times")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--interleaved", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one or a.interleaved:
        import torch
        torch.set_num_threads(current().threads or torch.get_num_threads())
        if a.one:
            print(json.dumps(measure_one(*json.loads(a.one))))
        else:
            phase, profile, arms, steps, warmup = json.loads(a.interleaved)
            print(json.dumps(measure_interleaved(phase, profile, [tuple(x) for x in arms], steps, warmup)))
        return
    if a.memory_only:
        df = memory_pass(a.phase, a.profile, a.threads, a.out)
    else:
        df = timing_pass(a.phase, a.profile, a.rounds, a.steps, threads=a.threads, out_dir=a.out,
                         memory_rounds=a.memory_rounds)
    print(df.groupby("label", sort=False)[["step_ms", "fwd_ms", "bwd_ms", "work_mb"]].median().round(1).to_string())


if __name__ == "__main__":
    main()
