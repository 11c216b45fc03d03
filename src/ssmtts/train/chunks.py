"""Phase 4 data: long recordings cut into consecutive fixed-length chunks.

Two ways to train on the same chunks (same batch size, same chunk length):

    stateless: each step draws random (sample, chunk) pairs; every chunk starts from a fresh state.
    stateful:  step s processes chunk s mod n_chunks of *every* sample, in order; the decoder
               state left by chunk k is detached and carried into chunk k + 1 (reset at chunk 0).

A chunk is decoded at positions 0..l-1 with the text of the symbols it overlaps (durations
clipped to the chunk), and its "previous frame" codes are the true codes one frame earlier,
so frame 0 of chunk k > 0 sees the last frame of chunk k - 1 and only the state differs
between the two modes.
"""
from __future__ import annotations

import numpy as np
import torch

from ..corpus.build import Utterance, chunk_bounds, long_samples
from ..models.tts import START
from .data import Batch, pick_reference, text_span


class ChunkSet:
    """Long samples (built from consecutive utterances), their chunk grid and fixed style references.

    samples: n long utterances; n_chunks: chunks per sample (the shortest sample's count, so all
    samples advance in lockstep); refs: one style reference per sample, from `ref_pool` and never
    one of the utterances the sample is made of.
    """

    def __init__(self, utts: list[Utterance], n_samples: int, chunk_frames: int, ref_pool: list[Utterance]):
        if len(utts) < n_samples:
            raise ValueError(f"need at least {n_samples} utterances for {n_samples} long samples, got {len(utts)}")
        self.samples = long_samples(utts, n_samples)
        self.chunk_frames = chunk_frames
        self.n_chunks = min(len(chunk_bounds(s.n_frames, chunk_frames)) for s in self.samples)
        if self.n_chunks < 2:
            raise ValueError(f"long samples of {min(s.n_frames for s in self.samples)} frames give fewer than two "
                             f"chunks of {chunk_frames} frames")
        used = {u.uid for u in utts}
        pool = [u for u in ref_pool if u.uid not in used]
        rng = np.random.default_rng([len(utts), n_samples])
        # samples made of the whole pool (Phase 4's speech protocol) take their reference from another sample's
        # utterances (long_samples deals the utterances out round-robin: sample i holds utts[i::n_samples])
        own = [{u.uid for u in utts[i::n_samples]} for i in range(n_samples)]
        self.refs = [pick_reference(utts[i], pool or [u for u in ref_pool if u.uid not in own[i]], rng)
                     for i in range(n_samples)]

    def batch(self, pairs: list[tuple[int, int]], ref_frames: int) -> Batch:
        """Chunks (sample index, chunk index) -> a Batch whose codes are the chunk targets and prev_codes their inputs."""
        C, B = self.chunk_frames, len(pairs)
        texts = [text_span(self.samples[s], k * C, (k + 1) * C) for s, k in pairs]
        S = max(len(t) for t, _ in texts)
        text = torch.zeros(B, S, dtype=torch.long)
        dur = torch.zeros(B, S, dtype=torch.long)
        codes = torch.zeros(B, 8, C, dtype=torch.long)
        prev = torch.full((B, 8, C), START, dtype=torch.long)
        ref = torch.zeros(B, 8, ref_frames, dtype=torch.long)
        for i, ((s, k), (t, d)) in enumerate(zip(pairs, texts)):
            full = torch.from_numpy(self.samples[s].codes)
            text[i, :len(t)], dur[i, :len(d)] = torch.from_numpy(t), torch.from_numpy(d)
            codes[i] = full[:, k * C:(k + 1) * C]
            a = k * C
            prev[i, :, (1 if a == 0 else 0):] = full[:, max(a - 1, 0):a + C - 1]
            rc = torch.from_numpy(self.refs[s].codes[:, :ref_frames])
            ref[i, :, :rc.shape[1]] = rc
        return Batch(text, dur, codes, torch.ones(B, C, dtype=torch.bool), ref, torch.zeros(B, dtype=torch.long), C,
                     [f"{self.samples[s].uid}#{k}" for s, k in pairs], [self.refs[s].uid for s, _ in pairs], prev)

    def train_pairs(self, stateful: bool, batch_size: int, seed: int, step: int) -> list[tuple[int, int]]:
        """Which chunks step `step` trains on (a pure function of seed and step, as for utterance batches)."""
        if stateful:
            k = step % self.n_chunks
            return [(s, k) for s in range(len(self.samples))]
        rng = np.random.default_rng([seed, step])
        flat = rng.choice(len(self.samples) * self.n_chunks, batch_size, replace=False)
        return [(int(i) // self.n_chunks, int(i) % self.n_chunks) for i in flat]


