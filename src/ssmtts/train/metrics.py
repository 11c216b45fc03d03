"""Losses, accuracies and milestones."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models.tts import window

ACC_THRESHOLDS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99)
DUR_THRESHOLDS = tuple(range(10, 101, 10))


def losses(logits, log_dur, batch):
    """CE over the 8 codebooks on real frames of the window + MSE on log(1 + duration)."""
    target = window(batch.codes, batch.crop_start, batch.crop_len, dim=2)       # (B, 8, l)
    mask = window(batch.frame_mask, batch.crop_start, batch.crop_len, dim=1)    # (B, l)
    ce = F.cross_entropy(logits.permute(0, 3, 1, 2), target.transpose(1, 2), reduction="none")  # (B, l, 8)
    ce = (ce * mask[..., None]).sum() / (mask.sum() * logits.shape[2])
    sym = batch.text_ids != 0
    dur = ((log_dur - torch.log1p(batch.durations.float())) ** 2 * sym).sum() / sym.sum()
    return ce, dur, target, mask


@torch.no_grad()
def accuracy_counts(logits, target, mask, log_dur, batch) -> dict:
    """Counts (summed over batches, then divided) so a dataset's accuracy is exact, not a mean of means."""
    hit = (logits.argmax(-1) == target.transpose(1, 2)) & mask[..., None]       # (B, l, 8)
    sym = batch.text_ids != 0
    pred = torch.clamp(torch.round(torch.expm1(log_dur)), min=0)
    err = (pred - batch.durations).abs()
    out = {"frames": int(mask.sum()), "symbols": int(sym.sum()),
           "dur_hits": int(((err <= 1) & sym).sum()), "dur_abs_err": float((err * sym).sum())}
    for c in range(hit.shape[2]):
        out[f"hits_cb{c}"] = int(hit[..., c].sum())
    return out


def finish_counts(c: dict, n_codebooks: int = 8) -> dict:
    out = {"acc": 100 * sum(c[f"hits_cb{i}"] for i in range(n_codebooks)) / (c["frames"] * n_codebooks),
           "dur_acc": 100 * c["dur_hits"] / c["symbols"], "dur_mae": c["dur_abs_err"] / c["symbols"]}
    for i in range(n_codebooks):
        out[f"acc_cb{i}"] = 100 * c[f"hits_cb{i}"] / c["frames"]
    return out


def milestones(curve: pd.DataFrame, metric: str, thresholds=ACC_THRESHOLDS) -> list[dict]:
    """First logged step (and wall-clock seconds) at which `metric` >= each threshold.

    curve: rows with columns step, wall_s, <metric>, in step order. Unreached thresholds
    get step NaN, so a milestone table always has one row per threshold.
    """
    rows = []
    steps, walls, vals = curve["step"].to_numpy(), curve["wall_s"].to_numpy(), curve[metric].to_numpy()
    for th in thresholds:
        hit = np.nonzero(vals >= th)[0]
        rows.append({"metric": metric, "threshold": th,
                     "step": float(steps[hit[0]]) if len(hit) else np.nan,
                     "wall_s": float(walls[hit[0]]) if len(hit) else np.nan})
    return rows
