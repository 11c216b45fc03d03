"""Losses, accuracies and milestones."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models.heads import codebook_cross_entropy, codebook_scores
from ..models.tts import window

ACC_THRESHOLDS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99)
DUR_THRESHOLDS = tuple(range(10, 101, 10))


def targets(batch):
    """The window's target codes (B, 8, l) and real-frame mask (B, l)."""
    target = window(batch.codes, batch.crop_start, batch.crop_len, dim=2)       # (B, 8, l)
    mask = window(batch.frame_mask, batch.crop_start, batch.crop_len, dim=1)    # (B, l)
    return target, mask


def duration_loss(log_dur, batch):
    """MSE on log(1 + duration) over real symbols."""
    sym = batch.text_ids != 0
    return ((log_dur - torch.log1p(batch.durations.float())) ** 2 * sym).sum() / sym.sum()


def scored_rows(h, target, mask):
    """Decoder states and targets of the real frames only: h (B, l, H) -> (n, H), target (B, 8, l) -> (n, 8)."""
    keep = mask.reshape(-1)
    return h.reshape(-1, h.shape[-1])[keep], target.transpose(1, 2).reshape(-1, target.shape[1])[keep]


def losses(logits, log_dur, batch):
    """CE over the 8 codebooks on real frames of the window + MSE on log(1 + duration), from full
    logits (B, l, 8, 1024): the plain reference for `head_losses`."""
    target, mask = targets(batch)
    ce = F.cross_entropy(logits.permute(0, 3, 1, 2), target.transpose(1, 2), reduction="none")  # (B, l, 8)
    ce = (ce * mask[..., None]).sum() / (mask.sum() * logits.shape[2])
    return ce, duration_loss(log_dur, batch), target, mask


def head_losses(model, h, log_dur, batch):
    """The same losses from the decoder states (B, l, H), through the fused head + CE (models/heads.py):
    padding frames never reach the heads, and the logits never exist as one (B, l, 8, 1024) tensor."""
    target, mask = targets(batch)
    rows, row_target = scored_rows(h, target, mask)
    ce = codebook_cross_entropy(rows, model.heads.weight, model.heads.bias, row_target, model.cfg.n_codebooks)
    return ce, duration_loss(log_dur, batch), target, mask


@torch.no_grad()
def head_scores(model, h, log_dur, batch) -> tuple[float, dict]:
    """Evaluation from decoder states: (the batch's mean CE per frame and codebook, counts as `accuracy_counts`)."""
    target, mask = targets(batch)
    rows, row_target = scored_rows(h.float(), target, mask)
    ce_sum, hits, ce_cb = codebook_scores(rows, model.heads.weight.float(), model.heads.bias.float(), row_target,
                                          model.cfg.n_codebooks)
    counts = duration_counts(log_dur, batch) | {"frames": int(mask.sum())}
    counts |= {f"hits_cb{c}": int(n) for c, n in enumerate(hits)}
    counts["ce_sum_cb0"] = float(ce_cb[0])      # codebook 0's CE (the coarsest code; Phase 4's estimand)
    return ce_sum / (counts["frames"] * model.cfg.n_codebooks), counts


def duration_counts(log_dur, batch) -> dict:
    sym = batch.text_ids != 0
    pred = torch.clamp(torch.round(torch.expm1(log_dur)), min=0)
    err = (pred - batch.durations).abs()
    return {"symbols": int(sym.sum()), "dur_hits": int(((err <= 1) & sym).sum()), "dur_abs_err": float((err * sym).sum())}


@torch.no_grad()
def accuracy_counts(logits, target, mask, log_dur, batch) -> dict:
    """Counts (summed over batches, then divided) so a dataset's accuracy is exact, not a mean of means."""
    hit = (logits.argmax(-1) == target.transpose(1, 2)) & mask[..., None]       # (B, l, 8)
    out = {"frames": int(mask.sum()), **duration_counts(log_dur, batch)}
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
