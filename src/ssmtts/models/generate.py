"""Autoregressive speech-token generation: text -> durations -> frame-by-frame decoding of 8 codebooks.

    text ids (S,) -> encode_text -> predicted durations (or given ones) -> regulated (T, H)
    reference codes (8, R) -> style (H)
    for t in 0..T-1:  decode(regulated[t], style, codes[t-1], position t, state) -> logits (8, 1024) -> codes[t]

Every decoder layer carries its state between frames (`models/state.py`: SSM state for Mamba and
the hybrid's Mamba branch, the last k-1 inputs for convolutions, a KV cache for attention) through
`TTSModel.decode_step`, so a frame costs the same at any position for the SSM backbones and grows
with position for attention.

A decoder that reads no codes (`decoder_input="none"`) needs no loop: all frames come from one
pass over the regulated text (`stream=False`, the default). A causal one can still be streamed
frame by frame with the same states (`stream=True`), with the same result.
Chunked generation (`chunk_frames`, Phase 4's speech protocol) decodes a sentence as its chunk-trained
models were trained: chunk k reads only the symbols its frames overlap, at positions 0..l-1, the
decoder state left by chunk k-1 carried in (`carry_state=True`, a stateful model) or fresh.
The stop rule is the predicted total duration, capped by `max_frames` and the model's
positional table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..corpus import text as textlib
from ..corpus.build import span_symbols
from ..corpus.durations import FRAME_RATE
from ..corpus.text import TextError
from .tts import START, TTSModel, length_regulate


@dataclass
class Generated:
    codes: np.ndarray          # (8, T) generated tokens
    durations: np.ndarray      # (S,) frames per symbol used for decoding (predicted unless given)
    ms_per_frame: np.ndarray   # (T,) wall-clock of each frame's decoder step and sampling
    encode_ms: float           # text encoder + duration predictor + style, once per utterance

    @property
    def n_frames(self) -> int:
        return self.codes.shape[1]


def predicted_durations(log_dur: torch.Tensor) -> torch.Tensor:
    """log(1 + frames) -> whole frames >= 0 (the inverse of the training target)."""
    return torch.clamp(torch.round(torch.expm1(log_dur)), min=0).long()


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None):
    """logits (..., K) -> ids (...): greedy when temperature == 0, else top-k sampling at `temperature`."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(probs.shape[:-1])


def checked_durations(durations) -> np.ndarray:
    """Given durations as int64 frames per symbol: finite, whole and >= 0, or a ValueError saying which is not."""
    d = np.asarray(durations)
    if d.ndim != 1:
        raise ValueError(f"durations must be one number of frames per symbol, got shape {d.shape}")
    if d.dtype == object or not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
        raise ValueError(f"durations must be numbers, got dtype {d.dtype}")
    if not np.isfinite(d).all() or (d != np.round(d)).any() or (d < 0).any() or (d > 2**31).any():
        raise ValueError(f"durations must be whole numbers of frames, 0 .. 2^31, got {d.tolist()[:20]}")
    return d.astype(np.int64)


@torch.inference_mode()   # no autograd bookkeeping at all: a frame is ~100 small ops
def generate(model: TTSModel, text_ids, ref_codes, *, durations=None, temperature: float = 0.0,
             top_k: int | None = 50, seed: int = 0, max_frames: int | None = None, stream: bool = False,
             chunk_frames: int | None = None, carry_state: bool = True) -> Generated:
    """Generate the 8 x T codec tokens of one utterance.

    text_ids (S,) ids with BOS first (see `generate_from_text` for raw text); ref_codes (8, R): a
    style reference (another utterance); durations (S,): use these instead of the predicted ones
    (for scoring against ground truth frame by frame); temperature 0 = greedy, else top-k
    sampling from a generator seeded with `seed` (same seed, same tokens; prenet dropout is seeded
    with it too); stream: decode frame by frame even when the decoder reads no codes (it must be causal).
    Raises TextError when the text is empty, longer than the positional table, or would need
    more frames than `max_frames` (default: the model's max_positions).
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    text_ids = torch.as_tensor(np.asarray(text_ids), dtype=torch.long, device=device)[None]      # (1, S)
    if text_ids.shape[1] == 0:
        raise TextError("empty text: nothing to speak")
    limit = min(max_frames or cfg.max_positions, cfg.max_positions)
    model.eval()
    t0 = time.perf_counter()
    enc, log_dur = model.encode_text(text_ids)                                                   # (1, S, H), (1, S)
    dur = predicted_durations(log_dur) if durations is None else \
        torch.as_tensor(checked_durations(durations), device=device)[None]
    if dur.shape != text_ids.shape:
        raise ValueError(f"durations have shape {tuple(dur.shape[1:])}, text has {text_ids.shape[1]} symbols")
    T = int(dur.sum())
    if T == 0:
        raise TextError("the predicted duration of this text is 0 frames: nothing to decode")
    if T > limit:
        raise TextError(f"this text needs {T} frames ({T / FRAME_RATE:.1f} s), more than the limit of {limit} frames "
                        f"({limit / FRAME_RATE:.1f} s): split it into shorter sentences")
    regulated = length_regulate(enc, dur, T)                                                     # (1, T, H)
    style = model.style_vector(torch.as_tensor(np.asarray(ref_codes), dtype=torch.long, device=device)[None])
    encode_ms = 1000 * (time.perf_counter() - t0)

    gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    if (stream or chunk_frames) and not cfg.decoder_causal:
        raise ValueError("a bidirectional decoder (decoder_causal=False) cannot stream or carry a state between "
                         "chunks: it reads later frames")
    if chunk_frames:
        if cfg.reads_codes or chunk_frames <= 0:
            raise ValueError("chunked generation needs a positive chunk_frames and a decoder that reads no codes")
        return _generate_chunks(model, text_ids[0], dur[0], style, chunk_frames, carry_state, temperature, top_k,
                                gen, encode_ms)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)                      # prenet dropout (prev_codes_dropout) draws from here
        if not cfg.reads_codes and not stream:       # non-autoregressive: every frame in one pass
            t1 = time.perf_counter()
            blank = torch.full((1, cfg.n_codebooks, T), START, dtype=torch.long, device=device)
            logits, _ = model.decode(regulated, style, blank)                                     # (1, T, 8, K)
            codes = sample(logits[0], temperature, top_k, gen).T                                  # (8, T)
            ms = np.full(T, 1000 * (time.perf_counter() - t1) / T)
            return Generated(codes.cpu().numpy(), dur[0].cpu().numpy(), ms, encode_ms)
        codes = torch.empty(cfg.n_codebooks, T, dtype=torch.long, device=device)
        prev = torch.full((1, cfg.n_codebooks, 1), START, dtype=torch.long, device=device)
        state, ms = model.allocate_decoder_state(1, device), np.empty(T)
        for t in range(T):
            t1 = time.perf_counter()
            logits, state = model.decode_step(regulated[:, t:t + 1], style, prev, t, state)           # (1, 1, 8, K)
            nxt = sample(logits[0, 0], temperature, top_k, gen)                                          # (8,)
            codes[:, t] = nxt
            prev = nxt.view(1, -1, 1)
            ms[t] = 1000 * (time.perf_counter() - t1)
    return Generated(codes.cpu().numpy(), dur[0].cpu().numpy(), ms, encode_ms)


def _generate_chunks(model: TTSModel, text_ids, dur, style, chunk_frames: int, carry_state: bool, temperature,
                     top_k, gen, encode_ms: float) -> Generated:
    """text_ids, dur (S,): the whole sentence and its durations -> its codes, chunk by chunk (see `generate`; runs
    under its inference mode)."""
    T, cfg = int(dur.sum()), model.cfg
    ids, dnp = text_ids.cpu().numpy(), dur.cpu().numpy()
    codes = torch.empty(cfg.n_codebooks, T, dtype=torch.long, device=text_ids.device)
    ms, state = np.empty(T), None
    for start in range(0, T, chunk_frames):
        t1 = time.perf_counter()
        l = min(chunk_frames, T - start)
        span_ids, span_dur = span_symbols(ids, dnp, start, start + l)
        enc, _ = model.encode_text(torch.as_tensor(span_ids, device=text_ids.device)[None])          # (1, s, H)
        regulated = length_regulate(enc, torch.as_tensor(span_dur, device=text_ids.device)[None], l)  # (1, l, H)
        blank = torch.full((1, cfg.n_codebooks, l), START, dtype=torch.long, device=text_ids.device)
        logits, new_state = model.decode(regulated, style, blank, 0, state)                           # (1, l, 8, K)
        state = new_state if carry_state else None
        codes[:, start:start + l] = sample(logits[0], temperature, top_k, gen).T
        ms[start:start + l] = 1000 * (time.perf_counter() - t1) / l
    return Generated(codes.cpu().numpy(), dnp, ms, encode_ms)


def generate_from_text(model: TTSModel, text: str, ref_codes, **kw) -> Generated:
    """Raw text -> tokens: normalised and checked (TextError / UnknownCharacterError name the problem)."""
    return generate(model, textlib.encode(text, max_len=model.cfg.max_positions), ref_codes, **kw)
