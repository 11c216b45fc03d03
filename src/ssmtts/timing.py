"""The timing pass: every cost claim's numbers, measured side by side, apart from the learning runs.

Learning runs may share the cores (two at a time, or on a cluster), so their own step times are
not evidence for a speed claim. The timing pass measures each of a phase's configurations at its
training shape in a fresh interpreter, configurations interleaved round by round (machine noise
hits all alike), threads fixed, nothing else of the study running:

    step_ms, fwd_ms, bwd_ms, opt_ms   medians of `steps` training steps after `warmup`, timed as
                                      run_training times them (same batches for every configuration)
    work_mb                           the step's own working memory: peak RSS of the process minus
                                      its RSS just before the first step (model and optimizer built,
                                      data loaded), with freed memory kept by the allocator
                                      (ssmtts.runtime), so the peak is what the step needed, in a
                                      process that ran nothing before; CUDA: peak allocated minus
                                      allocated before the first step

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


def measure_one(phase: str, profile: str, label: str, protocol: str, steps: int, warmup: int) -> dict:
    """In this (fresh) process: time `steps` training steps of one configuration and its working memory."""
    import torch
    from .corpus.build import build_corpus
    from .models import TTSModel
    from .phases import PHASES, for_protocol
    from .runtime import keep_freed_memory
    from .models.state import detach_state
    from .train.data import train_batch
    from .train.loop import datasets, train_step
    keep_freed_memory()
    models, trains = PHASES[phase](profile)
    mc, tc = for_protocol(dict(models)[label], protocol), trains[protocol]
    corpus = build_corpus(codec=current().codec)
    train = corpus.split("train")
    stateful = protocol == "stateful"
    if tc.chunked:         # Phase 4: chunks of long samples as run_training draws them, state carried if stateful
        items = datasets(corpus, tc)[0]
        batches = [(items.batch(pairs, mc.style_frames), stateful and pairs[0][1] > 0)
                   for pairs in (items.train_pairs(stateful, tc.batch_size, 0, s) for s in range(warmup + steps))]
    else:
        batches = [(train_batch(train, tc.batch_size, 0, s, mc.style_frames, tc.crop_frames, train), False)
                   for s in range(warmup + steps)]
    torch.manual_seed(0)
    model = TTSModel(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
    base = _rss_mb()
    times, carry = [], None
    for i, (b, carried) in enumerate(batches):
        out = train_step(model, opt, b, tc, "cpu", carry if carried else None)
        carry = detach_state(out["state"]) if stateful else None
        t3 = time.perf_counter()
        if i >= warmup:
            times.append((out["t1"] - out["t0"], out["t2"] - out["t1"], t3 - out["t2"], t3 - out["t0"]))
    med = 1000 * np.median(np.array(times), axis=0)
    return {"config": mc.name, "params_total": sum(p.numel() for p in model.parameters()),
            "fwd_ms": med[0], "bwd_ms": med[1], "opt_ms": med[2], "step_ms": med[3],
            "work_mb": _peak_rss_mb() - base, "rss_before_mb": base, "threads": torch.get_num_threads(),
            "batch_size": tc.batch_size, "crop_frames": tc.crop_frames}


def timing_pass(phase: str, profile: str = "cpu", rounds: int = 3, steps: int = 10, warmup: int = 3,
                threads: int = 2, out_dir: str | Path = "results", protocols=None, labels=None) -> pd.DataFrame:
    """Every configuration of a phase, one fresh process each, rounds interleaved; writes <phase>/timing.csv.
    protocols None: `speech` for a re-run phase (SPEECH_PHASES), Phase 4's chunk protocols (stateless, stateful:
    chunks as run_training draws them, the state carried between a stateful pass's chunks), else `heldout`."""
    from .phases import PHASES, SPEECH_PHASES
    _, trains = PHASES[phase](profile)
    protocols = protocols or (("speech",) if phase in SPEECH_PHASES else
                              tuple(p for p in trains if trains[p].chunked) or ("heldout",))
    from .train.results import atomic_write_csv, environment_row
    models, _ = PHASES[phase](profile)
    labels = labels or [label for label, _ in models]
    env = {**child_env(threads=threads), "OMP_NUM_THREADS": str(threads)}
    rows = []
    for rnd in range(rounds):
        order = labels if rnd % 2 == 0 else labels[::-1]      # first and last swap every round
        for protocol in protocols:
            for pos, label in enumerate(order):
                cmd = [sys.executable, "-m", "ssmtts.timing", "--one", json.dumps(
                    [phase, profile, label, protocol, steps, warmup])]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    raise RuntimeError(f"timing {label}: {out.stderr.strip()[-1500:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"phase": phase, "profile": profile, "protocol": protocol, "label": label,
                             "round": rnd, "position": pos, **r})
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
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        import torch
        torch.set_num_threads(current().threads or torch.get_num_threads())
        print(json.dumps(measure_one(*json.loads(a.one))))
        return
    df = timing_pass(a.phase, a.profile, a.rounds, a.steps, threads=a.threads, out_dir=a.out)
    print(df.groupby("label", sort=False)[["step_ms", "fwd_ms", "bwd_ms", "work_mb"]].median().round(1).to_string())


if __name__ == "__main__":
    main()
