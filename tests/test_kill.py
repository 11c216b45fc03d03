"""A run killed with SIGKILL mid-way (no cleanup, as the OOM killer or a closed laptop does) and rerun with the
same command ends with the learning rows of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

RUN = """
import sys
from dataclasses import replace
from ssmtts import phases
from ssmtts.corpus.build import build_corpus
models, trains = phases.phase1("smoke")
tc = replace(trains["heldout"], steps=40, checkpoint_every=2, eval_every=10)
phases.PHASES["phase1"] = lambda profile: (models[1:], {"heldout": tc})   # the hybrid, 40 steps
phases.run_phase("phase1", build_corpus(), "smoke", seeds=(0,), out_dir=sys.argv[1], progress=False)
"""
# what differs between two identical runs: times, memory, provenance of the process
VOLATILE = ("wall_s", "eval_s", "_ms", "elapsed", "mem_", "tokens_per_s", "git_commit", "train_wall", "eval_wall")


def learning(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in df.columns if not any(v in c for v in VOLATILE)]].reset_index(drop=True)


def test_sigkill_mid_run_then_the_same_command_gives_the_uninterrupted_rows(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = lambda out: [sys.executable, "-c", RUN, str(out)]
    subprocess.run(cmd(tmp_path / "whole"), check=True, env=env, timeout=600)
    killed = tmp_path / "killed"
    ckpt = killed / "phase1" / "checkpoints"
    p = subprocess.Popen(cmd(killed), env=env)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        files = list(ckpt.glob("*.pt")) if ckpt.is_dir() else []
        if files:
            try:
                step = torch.load(files[0], weights_only=True)["state"]["step"]
            except Exception:        # caught between the atomic rename and the read: try again
                step = 0
            if 4 <= step < 40:
                p.send_signal(signal.SIGKILL)
                break
        time.sleep(0.02)
    assert p.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    assert not (killed / "phase1" / "runs.csv").exists()          # killed before its row was written
    subprocess.run(cmd(killed), check=True, env=env, timeout=600)   # the same command again: resumes
    for name in ("runs", "curves", "milestones"):
        a, b = (pd.read_csv(d / "phase1" / f"{name}.csv") for d in (tmp_path / "whole", killed))
        pd.testing.assert_frame_equal(learning(a), learning(b))
    assert not list((killed / "phase1").glob(".*tmp"))
