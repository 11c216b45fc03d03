"""Training-step time of a phase's Mamba model with each CPU path, side by side in one run.

The "before / after" of the C++ kernels at the level that matters for the phases: one full
training step (forward, backward, optimizer) of the TTS model with
  cpu      the C++ kernels (selective scan + fused causal conv), the default
  pytorch  no C++ at all (SSMTTS_NO_CPU_KERNEL=1): mambapy's parallel scan and the conv in
           PyTorch ops, i.e. the path before the kernels
  pscan    the fused conv, but mambapy's parallel scan (the scan kernel's share)
  ref      the fused conv, and the per-step reference loop for the scan
and any of them with "+glibc-malloc": glibc as the environment sets it up, without
ssmtts.runtime (SSMTTS_KEEP_FREED_MEMORY=0; under make, the Makefile's MALLOC_* settings keep
blocks under 32 MiB, larger freed tensors go back to the OS and are faulted in again next
step); otherwise all freed memory is kept for reuse, as run_training does.
Each backend runs in a fresh interpreter, on the same seeded batches, rounds interleaved so
machine noise hits all backends alike. Rows of other (phase, label, profile) already in the
CSV are kept.

    python benchmarks/step_bench.py [--phase phase3 --label L4_H768_E1.5 --profile cpu] [--out results/bench]
    python benchmarks/step_bench.py --phase phase1 --label hybrid        (Phase 1's Mamba model)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def measure_here(phase: str, label: str, profile: str, steps: int) -> dict:
    from ssmtts.corpus.build import build_corpus
    from ssmtts.models import TTSModel
    from ssmtts.phases import PHASES
    from ssmtts.runtime import keep_freed_memory
    from ssmtts.train.data import train_batch
    from ssmtts.train.metrics import losses
    models, trains = PHASES[phase](profile)
    mc, tc = dict(models)[label], trains["heldout"]
    corpus = build_corpus(codec=os.environ.get("CODEC", "auto"))
    train = corpus.split("train")
    keep_freed_memory()   # as run_training does (a no-op with SSMTTS_KEEP_FREED_MEMORY=0)
    torch.manual_seed(0)
    model = TTSModel(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr)
    times = []
    for step in range(steps + 2):                          # 2 warm-up steps (kernel load, allocator)
        batch = train_batch(train, tc.batch_size, 0, step, mc.style_frames, tc.crop_frames, train)
        t = time.perf_counter()
        logits, log_dur = model(batch.text_ids, batch.durations, batch.codes, batch.ref_codes,
                                batch.crop_start, batch.crop_len)
        ce, dl, _, _ = losses(logits, log_dur, batch)
        opt.zero_grad()
        (ce + dl).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return {"config": mc.name, "batch_size": tc.batch_size, "crop_frames": tc.crop_frames,
            "step_ms": 1000 * float(np.median(times[2:])), "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", default="phase3")
    ap.add_argument("--label", default="L4_H768_E1.5")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--backends", default="cpu,cpu+glibc-malloc,pytorch,pytorch+glibc-malloc,pscan,ref")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure_here(a.phase, a.label, a.profile, a.steps)))
        return
    from ssmtts.train.results import atomic_write_csv, environment_row
    rows = []
    for rnd in range(a.rounds):
        for backend in a.backends.split(","):
            cmd = [sys.executable, __file__, "--one", "1", "--phase", a.phase, "--label", a.label,
                   "--profile", a.profile, "--steps", str(a.steps)]
            path, _, malloc = backend.partition("+")
            env = {**os.environ, "SSMTTS_NO_CPU_KERNEL": "1"} if path == "pytorch" else \
                {**os.environ, "SSMTTS_SCAN_BACKEND": path}
            if malloc == "glibc-malloc":
                env["SSMTTS_KEEP_FREED_MEMORY"] = "0"
            elif malloc:
                raise ValueError(f"unknown backend {backend!r}")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise RuntimeError(f"{backend}: {out.stderr.strip().splitlines()[-1]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"phase": a.phase, "label": a.label, "profile": a.profile, "backend": backend, "round": rnd, **r})
            print(f"round {rnd} {backend:20s} {r['step_ms']:8.1f} ms/step", flush=True)
    df = pd.DataFrame(rows).assign(**environment_row("cpu"))
    summary = df.groupby("backend", sort=False).step_ms.median()
    df["step_ms_over_cpu_kernel"] = df.backend.map(summary / summary["cpu"]) if "cpu" in summary else np.nan
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / "phase_step.csv"
    if path.exists():   # keep the rows of other models
        old = pd.read_csv(path)
        same = (old.phase == a.phase) & (old.label == a.label) & (old.profile == a.profile)
        df = pd.concat([old[~same], df], ignore_index=True)
    atomic_write_csv(df, path)
    print((summary / summary.get("cpu", np.nan)).rename("median step time / cpu kernel").to_string())


if __name__ == "__main__":
    main()
