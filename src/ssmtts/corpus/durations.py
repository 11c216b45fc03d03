"""Exact per-character durations in codec frames, from eSpeak NG's own events.

How a duration target is made (all boundaries are sample indices, so nothing is estimated):

1. Voiced span of each word: WORD event k starts a span that ends at WORD event k+1 (or the
   end of the audio). Inside it, the first non-pause phoneme onset starts the voiced part
   and the first pause phoneme (name starting with `_`) after it ends it.
2. Silences between voiced spans belong to the characters between the words (the space and
   punctuation); the leading silence belongs to BOS; the trailing silence to the characters
   after the last word (or, if there are none, to the last word's last letter).
3. Inside a word's voiced span the letters are spread over its phonemes: letter j of n
   starts at fractional phoneme index j*m/n (m phonemes), mapped to time through the
   phoneme onsets. Long vowels thus get more frames than short stops, and the split is
   monotone. Silences are spread evenly over the characters that share them.
4. Boundaries are rescaled to the 24 kHz output, rounded to 75 Hz frames (320 samples), and
   durations are differences of consecutive rounded boundaries, so an utterance's durations
   sum *exactly* to its frame count (first boundary 0, last boundary = n_frames).
"""
from __future__ import annotations

import numpy as np

from .synth import SYNTH_RATE, Synthesis

SAMPLE_RATE = 24000
HOP = 320  # 24 kHz / 75 Hz
FRAME_RATE = SAMPLE_RATE / HOP


def n_frames_for(n_samples_24k: int) -> int:
    """Audio is zero-padded to a whole number of frames: ceil(n / 320)."""
    return -(-n_samples_24k // HOP)


def char_boundaries(text: str, synth: Synthesis) -> np.ndarray:
    """Boundaries (len(text) + 2 values, in 22.05 kHz samples) of [BOS, text chars...]."""
    n_audio = len(synth.audio)
    if not synth.words:
        raise ValueError(f"eSpeak produced no WORD events for {text!r}")
    ph_t = np.array([p[0] for p in synth.phonemes] + [n_audio], dtype=np.float64)
    is_pause = np.array([p[1].startswith("_") for p in synth.phonemes] + [True])
    word_starts = [w[2] for w in synth.words] + [n_audio]

    n = len(text)
    owner = np.full(n, -1)  # which word a character belongs to (-1: between words)
    for k, (c0, ln, _) in enumerate(synth.words):
        owner[c0:min(c0 + ln, n)] = k
    # a word may report punctuation as part of it: keep only letters as the word's own
    owner[[not ch.isalpha() for ch in text]] = -1

    voiced = []  # (start, end) of each word's voiced part
    for k in range(len(synth.words)):
        lo, hi = word_starts[k], word_starts[k + 1]
        idx = np.nonzero((ph_t >= lo) & (ph_t < hi) & ~is_pause)[0]
        if len(idx) == 0:  # a word with no phonemes of its own: a zero-length voiced part
            voiced.append((lo, lo, np.array([lo, lo], dtype=np.float64)))
            continue
        first, last = idx[0], idx[-1]
        end = ph_t[last + 1]
        voiced.append((ph_t[first], end, np.append(ph_t[first:last + 1], end)))

    bounds = np.zeros(n + 2)  # bounds[i] .. bounds[i+1] is symbol i of [BOS] + text
    bounds[-1] = n_audio
    # letters of each word
    for k, (v0, v1, onsets) in enumerate(voiced):
        chars = np.nonzero(owner == k)[0]
        if len(chars) == 0:
            continue
        m = len(onsets) - 1
        frac = np.arange(len(chars) + 1) * m / len(chars)
        t = np.interp(frac, np.arange(m + 1), onsets)
        bounds[chars + 1] = t[:-1]
        bounds[chars[-1] + 2] = t[-1]
    # gaps: runs of non-word characters share the silence between the voiced parts around them
    i = 0
    while i < n:
        if owner[i] >= 0:
            i += 1
            continue
        j = i
        while j < n and owner[j] < 0:
            j += 1
        # the gap starts where the previous word's voiced part ended (bounds[i + 1] was set
        # to that word's end); before the first word, BOS keeps the leading silence
        prev_end = bounds[i + 1] if i > 0 else voiced[0][0]
        next_start = bounds[j + 1] if j < n else n_audio
        bounds[i + 1:j + 1] = np.linspace(prev_end, next_start, j - i + 1)[:-1]
        i = j
    bounds[1] = bounds[1] if owner[0] < 0 else voiced[0][0]  # BOS ends where speech starts
    return np.maximum.accumulate(bounds)


def frame_durations(text: str, synth: Synthesis, n_samples_24k: int) -> np.ndarray:
    """Durations in frames for [BOS] + text; they sum exactly to n_frames_for(n_samples_24k)."""
    b = char_boundaries(text, synth) * (SAMPLE_RATE / SYNTH_RATE)
    total = n_frames_for(n_samples_24k)
    fb = np.clip(np.round(b / HOP), 0, total).astype(np.int64)
    fb[0], fb[-1] = 0, total
    fb = np.maximum.accumulate(fb)
    return np.diff(fb).astype(np.int16)
