"""Batches from the corpus: padding, seeded random crops, style references from other utterances.

Data order is a pure function of (seed, step): batch s draws from a generator seeded with
(seed, s), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..corpus.build import Utterance, span_symbols
from ..corpus.text import PAD_ID


@dataclass
class Batch:
    text_ids: torch.Tensor     # (B, S) PAD-padded
    durations: torch.Tensor    # (B, S) frames per symbol, 0 on padding
    codes: torch.Tensor        # (B, 8, T) full utterances, padded with 0
    frame_mask: torch.Tensor   # (B, T) True on real frames
    ref_codes: torch.Tensor    # (B, 8, R) style reference: a *different* utterance
    crop_start: torch.Tensor   # (B,) first frame of the trained window
    crop_len: int              # frames per item in the window (T if no crop)
    uids: list
    ref_uids: list
    prev_codes: torch.Tensor | None = None  # (B, 8, l) decoder inputs when not simply shifted codes (chunks)

    def to(self, device):
        for k in ("text_ids", "durations", "codes", "frame_mask", "ref_codes", "crop_start", "prev_codes"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self


def pick_reference(utt: Utterance, pool: list[Utterance], rng: np.random.Generator) -> Utterance:
    """Another utterance of the same speaker (any speaker if none), never the target itself.

    A fragment "pl0001[:300]" and its source "pl0001" count as the same utterance.
    """
    base = lambda uid: uid.split("[")[0]
    same = [u for u in pool if u.speaker == utt.speaker and base(u.uid) != base(utt.uid)]
    others = same or [u for u in pool if base(u.uid) != base(utt.uid)]
    if not others:
        raise ValueError(f"no style reference for {utt.uid}: the pool has no other utterance")
    return others[rng.integers(len(others))]


def collate(utts: list[Utterance], refs: list[Utterance], ref_frames: int,
            crop: int | None = None, rng: np.random.Generator | None = None) -> Batch:
    B = len(utts)
    S, T = max(len(u.text_ids) for u in utts), max(u.n_frames for u in utts)
    text = torch.full((B, S), PAD_ID, dtype=torch.long)
    dur = torch.zeros(B, S, dtype=torch.long)
    codes = torch.zeros(B, 8, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    ref = torch.zeros(B, 8, ref_frames, dtype=torch.long)
    start = torch.zeros(B, dtype=torch.long)
    for i, (u, r) in enumerate(zip(utts, refs)):
        text[i, :len(u.text_ids)] = torch.from_numpy(u.text_ids)
        dur[i, :len(u.durations)] = torch.from_numpy(u.durations)
        codes[i, :, :u.n_frames] = torch.from_numpy(u.codes)
        mask[i, :u.n_frames] = True
        rc = torch.from_numpy(r.codes[:, :ref_frames])
        ref[i, :, :rc.shape[1]] = rc
        if crop is not None and u.n_frames > crop:
            start[i] = int(rng.integers(u.n_frames - crop + 1))
    return Batch(text, dur, codes, mask, ref, start, crop if crop is not None else T,
                 [u.uid for u in utts], [r.uid for r in refs])


def text_span(utt: Utterance, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Symbols overlapping frames [start, end) and their durations clipped to it (they sum to end - start)."""
    return span_symbols(utt.text_ids, utt.durations, start, end)


def fragment(utt: Utterance, n_frames: int) -> Utterance:
    """The first n_frames of an utterance, with its text cut at the symbol the cut falls in."""
    ids, dur = text_span(utt, 0, n_frames)
    return Utterance(f"{utt.uid}[:{n_frames}]", utt.text, utt.speaker, utt.split,
                     ids.copy(), dur, utt.codes[:, :n_frames].copy())


def train_batch(utts: list[Utterance], batch_size: int, seed: int, step: int, ref_frames: int,
                crop: int | None, ref_pool: list[Utterance]) -> Batch:
    rng = np.random.default_rng([seed, step])
    if batch_size >= len(utts):
        chosen = list(utts)  # tiny fixed set (the "reported" protocol): every item, every step
    else:
        chosen = [utts[i] for i in rng.choice(len(utts), batch_size, replace=False)]
    refs = [pick_reference(u, ref_pool, rng) for u in chosen]
    return collate(chosen, refs, ref_frames, crop, rng)


def eval_batches(utts: list[Utterance], ref_pool: list[Utterance], batch_size: int, ref_frames: int, seed: int = 0):
    """Whole utterances in fixed order with fixed references (the same for every evaluation)."""
    rng = np.random.default_rng([seed, 10**9])
    refs = [pick_reference(u, ref_pool, rng) for u in utts]
    for i in range(0, len(utts), batch_size):
        yield collate(utts[i:i + batch_size], refs[i:i + batch_size], ref_frames)
