"""Speak any Polish sentence with a trained model.

    python -m ssmtts.speak "Dowolne zdanie po polsku." -o out.wav [--voice 2] [--model path.pt]

From a notebook: `from ssmtts.speak import speak; wav, info = speak("Dzień dobry.")`.

The default model is results/speech/speaker.pt, the speech run's best backbone (written by
`make speech`). The voice is one of the corpus's voices (0-4 for the shipped corpus), given to the
model as a style reference: a training utterance of that voice. The tokens are decoded with the
corpus's codec; with the offline codec that is Griffin-Lim, so the audio sounds phasey whatever
the model. Bad text raises the text front end's errors (empty, unknown character, too long).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .corpus.build import REPO_ROOT, Corpus, build_corpus
from .corpus.durations import FRAME_RATE
from .models.generate import generate_from_text
from .runtime import current
from .speech import load_model, write_wav

DEFAULT_SPEAKER = REPO_ROOT / "results" / "speech" / "speaker.pt"


class NoSpeakerError(FileNotFoundError):
    pass


class CodecMismatchError(ValueError):
    """The model predicts another codec's tokens than the corpus decodes with (e.g. a speaker.pt trained on another
    machine's offline-codec fit, or on EnCodec): its speech would decode to noise."""


def voice_reference(corpus: Corpus, voice: int, frames: int):
    """The style reference for a voice: its first training utterance long enough to fill `frames`."""
    voices = sorted({u.speaker for u in corpus.split("train")})
    if voice not in voices:
        raise ValueError(f"voice {voice} is not in this corpus: choose from {voices}")
    pool = sorted((u for u in corpus.split("train") if u.speaker == voice), key=lambda u: u.uid)
    ref = next((u for u in pool if u.n_frames >= frames), pool[0])
    return ref.codes[:, :frames], ref.uid


def speak(text: str, voice: int = 0, model_path: str | Path | None = None, corpus: Corpus | None = None,
          temperature: float = 0.0, seed: int = 0, device: str = "cpu"):
    """Text -> (24 kHz float32 waveform, info dict). Raises NoSpeakerError naming the command that
    makes the default model, CodecMismatchError for a model of another codec's tokens, TextError /
    UnknownCharacterError for text it cannot speak."""
    path = Path(model_path) if model_path else DEFAULT_SPEAKER
    if not path.is_file():
        raise NoSpeakerError(f"no trained model at {path}: `make speech` trains the speech models and writes "
                             f"{DEFAULT_SPEAKER.relative_to(REPO_ROOT)} (or pass a model file)")
    corpus = corpus or build_corpus(codec=current().codec)
    meta = path.with_suffix(".json")         # written beside speaker.pt by `make speech`: the run it came from
    trained = json.loads(meta.read_text()) if meta.is_file() else {}
    if trained.get("codec_id", corpus.codec_id) != corpus.codec_id:
        raise CodecMismatchError(f"{path} was trained on tokens of codec {trained['codec_id']}, but this corpus "
                                 f"decodes codec {corpus.codec_id}: its speech would be noise. `make speech` trains "
                                 f"a model on this machine's codec (or pass --model, or CODEC=... for that codec)")
    model = load_model(path, device)
    ref, ref_uid = voice_reference(corpus, voice, model.cfg.style_frames)
    t0 = time.perf_counter()
    g = generate_from_text(model, text, ref, temperature=temperature, seed=seed)
    gen_s = time.perf_counter() - t0
    wav = corpus.codec.decode(g.codes)
    audio_s = g.n_frames / FRAME_RATE
    info = {"model": str(path), "config": model.cfg.name, "voice": voice, "reference": ref_uid, "frames": g.n_frames,
            "seconds": audio_s, "rtf_tokens": gen_s / audio_s, "rtf_total": (time.perf_counter() - t0) / audio_s,
            "codec_id": corpus.codec_id}
    if trained:
        info["trained_run"] = trained.get("run_id")
    return np.asarray(wav, np.float32), info


def main(argv=None):
    p = argparse.ArgumentParser(description="Speak a Polish sentence with a trained model.")
    p.add_argument("text")
    p.add_argument("-o", "--out", default="out.wav")
    p.add_argument("--voice", type=int, default=0, help="voice index of the corpus (shipped corpus: 0-4)")
    p.add_argument("--model", default=None, help=f"model file (default: {DEFAULT_SPEAKER.relative_to(REPO_ROOT)})")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from .corpus.text import TextError
    try:
        wav, info = speak(a.text, a.voice, a.model, temperature=a.temperature, seed=a.seed)
    except (NoSpeakerError, TextError, ValueError) as e:
        raise SystemExit(f"speak: {e}")
    write_wav(Path(a.out), wav)
    print(f"wrote {a.out}: {info['seconds']:.2f} s, model {info['config']}, voice {info['voice']}, "
          f"RTF {info['rtf_total']:.2f} (tokens {info['rtf_tokens']:.3f})")


if __name__ == "__main__":
    main()
