"""Profiles and per-phase run grids, and the runner that writes results/<phase>/*.csv.

A phase is a list of (label, ModelConfig) pairs run under each protocol and seed with one
TrainConfig per protocol. Profiles: `smoke` (tests/CI, seconds), `cpu` (default: a 2-core
laptop, well under an hour per phase), `paper` (the reported sizes, for a GPU).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from .corpus.build import Corpus
from .models import ModelConfig
from .train.loop import TrainConfig, run_training
from .train.results import environment_row, upsert_rows

PROFILES = ("smoke", "cpu", "paper")


def phase1(profile: str):
    """Transformer core vs Mamba+Conv hybrid, same width and depth."""
    size = {"smoke": dict(n_layers=1, n_enc_layers=1, d_model=32, n_heads=2),
            "cpu": dict(n_layers=4, n_enc_layers=2, d_model=128, n_heads=4),
            "paper": dict(n_layers=6, n_enc_layers=3, d_model=256, n_heads=4)}[profile]
    models = [("transformer", ModelConfig(backbone="transformer", **size)),
              ("hybrid", ModelConfig(backbone="hybrid", expand=1.5, conv_kernels=(3, 5), **size))]
    train = {"smoke": TrainConfig(steps=6, batch_size=2, crop_frames=48, eval_every=3, eval_train_items=4,
                                  eval_val_items=4, warmup=2, checkpoint_every=3, reported_frames=96),
             "cpu": TrainConfig(steps=240, batch_size=8, crop_frames=192, eval_every=30, warmup=30,
                                lr=2e-3, checkpoint_every=30, eval_train_items=16),
             "paper": TrainConfig(steps=1000, batch_size=16, crop_frames=None, eval_every=50, warmup=100,
                                  lr=1e-3, checkpoint_every=100)}[profile]
    # "reported": the original set-up, one ~4 s fragment trained and scored on itself
    # Scoring the fragment is cheap, so it is scored every 10 steps (milestones to 10-step
    # resolution); the validation side of these curves uses 8 utterances.
    reported = replace(train, protocol="reported", reported_items=1, batch_size=1, crop_frames=None,
                       eval_every=10 if profile == "cpu" else train.eval_every,
                       eval_val_items=8 if profile == "cpu" else train.eval_val_items,
                       steps=train.steps if profile != "cpu" else 300, warmup=min(train.warmup, 20))
    return models, {"reported": reported, "heldout": train}


PHASES = {"phase1": phase1}


def run_phase(phase: str, corpus: Corpus, profile: str = "cpu", seeds=(0, 1, 2), out_dir: str | Path = "results",
              protocols=("reported", "heldout"), device: str | None = None, progress: bool = True) -> dict:
    """Run every (config, protocol, seed) not yet finished and upsert its rows into the CSVs.

    Files in out_dir/<phase>/: runs.csv (one row per run), curves.csv (one row per
    evaluation), milestones.csv (one row per run x metric x threshold). Unfinished runs
    resume from out_dir/<phase>/checkpoints/.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose from {PROFILES}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out_dir) / phase
    out.mkdir(parents=True, exist_ok=True)
    models, trains = PHASES[phase](profile)
    env = environment_row(device)
    runs_path = out / "runs.csv"
    done = set()
    if runs_path.is_file():
        prev = pd.read_csv(runs_path)
        done = set(prev.loc[prev.status.isin(["finished", "diverged"]), "run_id"])
    for protocol in protocols:
        tc = trains[protocol]
        for label, mc in models:
            for seed in seeds:
                run_id = f"{phase}-{profile}-{protocol}-{mc.name}-s{seed}"
                if run_id in done:
                    continue
                t0 = time.time()
                res = run_training(mc, tc, corpus, seed, run_id, out / "checkpoints", device, progress=progress)
                meta = {"run_id": run_id, "phase": phase, "profile": profile, "protocol": protocol, "label": label,
                        "config": mc.name, "seed": seed, "codec_id": corpus.codec_id, "corpus_hash": corpus.corpus_hash}
                upsert_rows(out / "curves.csv", res["curve"].assign(**meta))
                upsert_rows(out / "milestones.csv", res["milestones"].assign(**meta))
                row = {**meta, **res["summary"], "elapsed_s": time.time() - t0, **mc.to_row(), **tc.to_row(), **env}
                upsert_rows(runs_path, pd.DataFrame([row]))
    return {name: pd.read_csv(out / f"{name}.csv") for name in ("runs", "curves", "milestones")}
