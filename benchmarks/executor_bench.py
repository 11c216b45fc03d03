"""Wall time of one phase run serially vs on a local Ray cluster (runs side by side), interleaved rounds.

    python benchmarks/executor_bench.py --phase phase3 --profile smoke --rounds 2 --out results/bench

Each round runs the phase's first-design protocols from scratch into a fresh folder, once with the
serial executor (one process, the machine's threads) and once with EXECUTOR=ray (one task per run,
`--task-threads` threads each, as many side by side as the cores allow), in alternating order; every
execution is a fresh process, so Ray's start-up is counted. Writes <out>/executor.csv: one row per
(round, executor) with the wall time, and the per-round ratio ray / serial.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from ssmtts.corpus.build import build_corpus
from ssmtts.phases import run_phase
phase, profile, out, executor, threads = json.loads(sys.argv[1])
res = run_phase(phase, build_corpus(codec="auto"), profile, seeds=(0, 1), out_dir=out, protocols=["heldout", "reported"],
                progress=False, executor=executor, threads=threads)
print(json.dumps({"runs": len(res["runs"]), "wall_s": time.perf_counter() - t0}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", default="phase3")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--task-threads", type=int, default=1)
    ap.add_argument("--out", default="results/bench")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ssmtts.runtime import child_env
    from ssmtts.train.results import atomic_write_csv, environment_row
    rows = []
    for rnd in range(a.rounds):
        order = ("serial", "ray") if rnd % 2 == 0 else ("ray", "serial")
        for executor in order:
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                p = subprocess.run([sys.executable, "-c", CHILD, json.dumps([a.phase, a.profile, out, executor, a.task_threads])],
                                   capture_output=True, text=True, env=child_env(executor=executor))
                if p.returncode != 0:
                    raise RuntimeError(p.stderr[-2000:])
                r = json.loads(p.stdout.strip().splitlines()[-1])
                rows.append({"phase": a.phase, "profile": a.profile, "round": rnd, "executor": executor,
                             "task_threads": a.task_threads if executor == "ray" else 0, "cores": os.cpu_count(),
                             "runs": r["runs"], "wall_s": time.perf_counter() - t0, "inner_wall_s": r["wall_s"]})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows).assign(**environment_row("cpu"))
    wide = df.pivot(index="round", columns="executor", values="wall_s")
    df["ratio_ray_over_serial"] = df["round"].map(wide["ray"] / wide["serial"])
    atomic_write_csv(df, Path(a.out) / "executor.csv")
    print(wide.assign(ratio=wide["ray"] / wide["serial"]).round(2).to_string())


if __name__ == "__main__":
    main()
