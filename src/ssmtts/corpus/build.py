"""Build, cache and load the corpus: text ids, exact durations and codec tokens.

Layout under `data/build/` (git-ignored, rebuilt by `make data`):

    audio/<key>.wav                 24 kHz mono PCM16, zero-padded to whole 320-sample frames
    durations/<key>.npy             int16 frames per symbol of [BOS] + text
    phonemes/<key>.txt              the phonemes eSpeak NG spoke (stress marks and pauses removed)
    codecs/<codec_id>.pt            fitted offline codebooks (with checksum)
    codes/<codec_id>/<key>.npy      int16 (8, n_frames)
    manifest-<codec_id>.json        one entry per utterance with content hashes

`key` hashes everything that determines the audio (normalised text, voice, rate, synth
version), so editing one sentence re-synthesises only that sentence. Codes are stored per
codec id; for the offline codec the id hashes the fitted codebooks, which depend on the
training audio, so a changed training sentence refits the codebooks (and re-encodes), while
a changed held-out sentence re-encodes only itself.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from ..files import atomic_write_bytes
from . import text as textlib
from .codec import CodecWeightsMissing, EncodecCodec, MelKMeansCodec, find_encodec_weights
from .durations import FRAME_RATE, HOP, SAMPLE_RATE, frame_durations, n_frames_for
from .synth import SYNTH_RATE, map_isolated, synthesize_in_this_process

SYNTH_VERSION = "espeak-ng-events-v2"  # v2: each utterance in a fresh process, fixed seed
# extra "speakers": eSpeak NG voice variants at different rates (words per minute)
SPEAKERS = [("pl", 170), ("pl+f3", 160), ("pl+m3", 180), ("pl+f2", 150), ("pl+m2", 190)]
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEXT = REPO_ROOT / "data" / "text" / "sentences_pl.txt"
# sentences written apart from the training text (no word 3-gram in common), each spoken by every
# voice, never trained on: the test set of every generation measure (split "unseen")
UNSEEN_TEXT = REPO_ROOT / "data" / "text" / "unseen_pl.txt"
SPLITS = ("train", "val", "test", "unseen")
DEFAULT_BUILD = REPO_ROOT / "data" / "build"


class CorruptAudioError(ValueError):
    pass


@dataclass
class Utterance:
    """One utterance ready for training. Arrays: text_ids (S,), durations (S,), codes (8, T)."""
    uid: str
    text: str
    speaker: int
    split: str
    text_ids: np.ndarray
    durations: np.ndarray
    codes: np.ndarray

    @property
    def n_frames(self) -> int:
        return self.codes.shape[1]


@dataclass
class Corpus:
    utterances: list[Utterance]
    codec_id: str
    corpus_hash: str
    build_dir: Path
    codec: object = None                                # the codec that made the tokens (decodes them)
    audio_paths: dict = field(default_factory=dict)    # uid -> the utterance's 24 kHz wav
    phonemes: dict = field(default_factory=dict)       # uid -> list of phoneme names eSpeak NG spoke

    def split(self, name: str) -> list[Utterance]:
        return [u for u in self.utterances if u.split == name]

    def stats(self):
        """Table of utterances, hours, frames and symbols per split (pandas DataFrame)."""
        import pandas as pd
        rows = []
        for name in SPLITS:
            us = self.split(name)
            frames = sum(u.n_frames for u in us)
            rows.append({"split": name, "utterances": len(us), "hours": frames / FRAME_RATE / 3600,
                         "frames": frames, "symbols": sum(len(u.text_ids) for u in us),
                         "speakers": len({u.speaker for u in us})})
        return pd.DataFrame(rows)

    def unique_codes_per_codebook(self, split: str = "val") -> list[int]:
        codes = np.concatenate([u.codes for u in self.split(split)], axis=1)
        return [len(np.unique(c)) for c in codes]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_of(text: str, val_pct: int = 5, test_pct: int = 5) -> str:
    """Fixed split by utterance text: stable when sentences are added or removed."""
    bucket = zlib.crc32(text.encode("utf-8")) % 100
    return "val" if bucket < val_pct else "test" if bucket < val_pct + test_pct else "train"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def read_wav(path: Path) -> np.ndarray:
    """Any soundfile-readable file -> float32 mono at 24 kHz; a clear error if unreadable."""
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise CorruptAudioError(f"cannot read audio {path}: {e}") from e
    if wav.shape[0] == 0:
        raise CorruptAudioError(f"audio {path} is empty")
    wav = wav.mean(axis=1)
    if not np.isfinite(wav).all():
        raise CorruptAudioError(f"audio {path} contains NaN or inf samples")
    return soxr.resample(wav, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else wav


def _pad_to_frames(wav: np.ndarray) -> np.ndarray:
    return np.pad(wav, (0, n_frames_for(len(wav)) * HOP - len(wav)))


def _synthesize_utterance_here(text: str, voice: str, rate: int):
    s = synthesize_in_this_process(text, voice, rate)
    wav = soxr.resample(s.audio.astype(np.float32) / 32768.0, SYNTH_RATE, SAMPLE_RATE).astype(np.float32)
    durations = frame_durations(text, s, len(wav))
    return _pad_to_frames(wav), durations


def spoken_phonemes(synth) -> list[str]:
    """eSpeak NG's PHONEME events -> phoneme names, without pauses (`_...`) and stress marks ('),
    (stress is prosody; the judge's phoneme targets are the segments)."""
    names = (name.replace("'", "").replace(",", "") for _, name in synth.phonemes if not name.startswith("_"))
    return [n for n in names if n]


def _phonemes_here(text: str, voice: str, rate: int) -> list[str]:
    return spoken_phonemes(synthesize_in_this_process(text, voice if voice != "user" else "pl", rate or 175))


def synthesize_utterance(text: str, voice: str, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Text -> (24 kHz float32 wav padded to whole frames, exact durations of [BOS] + text)."""
    return next(map_isolated(_synthesize_utterance_here, [(text, voice, rate)], processes=1))


def _make_audio(text: str, voice: str, rate: int, wav_path: str):
    """(wav, durations) for one source: synthesised, or a user's recording with fallback durations."""
    if wav_path:
        wav = _pad_to_frames(read_wav(Path(wav_path)))
        return wav, _user_durations_here(text, len(wav))
    return _synthesize_utterance_here(text, voice, rate)


def _user_durations_here(text: str, n_samples_24k: int) -> np.ndarray:
    """Fallback durations for recorded speech without synthesiser events.

    eSpeak NG speaks the same text; its exact per-symbol durations are rescaled to the
    recording's length (boundaries stretched linearly, then rounded to frames), so they sum
    to the recording's frame count. An approximation, recorded as `durations=espeak-scaled`.
    """
    s = synthesize_in_this_process(text)
    ref = frame_durations(text, s, round(len(s.audio) * SAMPLE_RATE / SYNTH_RATE)).astype(np.float64)
    total = n_frames_for(n_samples_24k)
    bounds = np.round(np.concatenate([[0], np.cumsum(ref)]) * total / ref.sum()).astype(np.int64)
    return np.diff(bounds).astype(np.int16)


@dataclass
class Source:
    """What defines one utterance before it is built."""
    uid: str
    text: str
    voice: str
    rate: int
    wav_path: str = ""   # a user's recording; empty for synthesised speech
    split: str = ""      # fixed split ("unseen"); empty: train / val / test by `split_of(text)`

    @property
    def split_name(self) -> str:
        return self.split or split_of(self.text)

    @property
    def key(self) -> str:
        origin = self.wav_path and _sha(Path(self.wav_path).read_bytes())
        return _sha(f"{SYNTH_VERSION}|{self.text}|{self.voice}|{self.rate}|{origin}".encode())[:16]


def _read_sentences(text_file: Path) -> list[str]:
    if not Path(text_file).is_file():
        raise textlib.TextError(f"no such file: {text_file} (a text file holds one sentence per line)")
    lines = [textlib.normalize(l) for l in Path(text_file).read_text("utf-8").splitlines()]
    for line in lines:
        if line:
            textlib.encode(line)  # fail early, naming the character and the sentence
    return [l for l in lines if l]


def shipped_sources(text_file: Path = DEFAULT_TEXT, unseen_file: Path | None = UNSEEN_TEXT,
                    extra_text: Sequence[Path] = ()) -> list[Source]:
    """The shipped corpus: each training-text sentence in one voice (round robin), and each unseen
    sentence in every voice (uids `un<sentence>-<voice index>`, split "unseen").

    extra_text: more sentence files after the shipped text, numbered and voiced on from its last
    sentence (so the shipped sentences keep their uids, voices and splits): a corpus with more text,
    built beside the shipped one (its codec fit, codes and judge differ, and so does its corpus hash)."""
    out = []
    lines = [line for f in (text_file, *extra_text) for line in _read_sentences(f)]
    for i, line in enumerate(lines):
        voice, rate = SPEAKERS[i % len(SPEAKERS)]
        out.append(Source(f"pl{i:04d}", line, voice, rate))
    if unseen_file is not None:
        for i, line in enumerate(_read_sentences(unseen_file)):
            out += [Source(f"un{i:03d}-{k}", line, voice, rate, split="unseen") for k, (voice, rate) in enumerate(SPEAKERS)]
    return out


USER_MIN_UTTERANCES = 20    # a user's corpus: enough for a validation and a test utterance beside training


class UserCorpusError(ValueError):
    """A user's corpus folder that cannot be built: every problem found is listed in the message."""


def user_sources(folder: Path) -> list[Source]:
    """LJSpeech layout: folder/metadata.csv (`id|text[|normalised text]`) and folder/wavs/<id>.wav.

    Checked up front, before anything is built: every bad row, missing or unreadable wav is listed
    in one UserCorpusError, and a corpus under USER_MIN_UTTERANCES is refused. Splits: the
    utterances ranked by a hash of their text; the first 5 % (at least one) are validation, the
    next 5 % (at least one) test, the rest training (fixed by the text, like the shipped corpus)."""
    folder = Path(folder)
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise UserCorpusError(f"{meta} not found (expected an LJSpeech-style folder: metadata.csv with `id|text` "
                              f"lines, and wavs/<id>.wav)")
    out, problems = [], []
    with meta.open(encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if len(row) < 2 or not row[0].strip():
                problems.append(f"{meta}:{n}: expected `id|text`, got {'|'.join(row)!r}")
                continue
            text = textlib.normalize(row[-1])
            try:
                textlib.encode(text)
            except textlib.TextError as e:
                problems.append(f"{meta}:{n}: {e}")
                continue
            wav = folder / "wavs" / f"{row[0]}.wav"
            if not wav.is_file():
                problems.append(f"{meta}:{n}: {wav} does not exist")
                continue
            try:
                info = sf.info(str(wav))
                if info.frames == 0:
                    raise ValueError("no samples")
            except Exception as e:
                problems.append(f"{meta}:{n}: {wav} is not readable audio ({str(e).strip() or type(e).__name__})")
                continue
            out.append(Source(row[0], text, "user", 0, str(wav)))
    if problems:
        raise UserCorpusError(f"{len(problems)} problem(s) in {folder}:\n  " + "\n  ".join(problems))
    if len(out) < USER_MIN_UTTERANCES:
        raise UserCorpusError(f"{folder} has {len(out)} utterance(s); a corpus needs at least {USER_MIN_UTTERANCES} "
                              f"(training, plus at least one validation and one test utterance)")
    ranked = sorted(range(len(out)), key=lambda i: (zlib.crc32(out[i].text.encode("utf-8")), out[i].uid))
    k = max(1, round(0.05 * len(out)))
    for rank, i in enumerate(ranked):
        out[i].split = "val" if rank < k else "test" if rank < 2 * k else "train"
    return out


def user_build_dir(folder: Path) -> Path:
    """A user's corpus builds beside the shipped one, never into it: data/build-user/<folder name>-<hash of its metadata>."""
    folder = Path(folder)
    return DEFAULT_BUILD.parent / "build-user" / f"{folder.resolve().name}-{_sha((folder / 'metadata.csv').read_bytes())[:8]}"


def corpus_sources(user_corpus: str | Path | None = None, extra_text: Sequence[Path] = ()) -> tuple[list[Source], Path]:
    """(sources, build folder) of the shipped corpus (with `extra_text` files, if any), or of a user's folder
    (argument, else the CORPUS variable)."""
    from ..runtime import user_corpus_dir
    user_corpus = user_corpus or user_corpus_dir()
    if user_corpus:
        if extra_text:
            raise UserCorpusError("extra text adds synthesised sentences to the shipped corpus; a user's corpus "
                                  "brings its own recordings (add them to its metadata.csv instead)")
        return user_sources(Path(user_corpus)), user_build_dir(Path(user_corpus))
    return shipped_sources(extra_text=extra_text), DEFAULT_BUILD


def resolve_codec(name: str, train_wavs, build_dir: Path, weights_dir: str | None = None, seed: int = 0):
    """`auto`: EnCodec if its weights load, else the offline codec (with a message saying so)."""
    if name in ("auto", "encodec"):
        try:
            from ..runtime import current
            return EncodecCodec(pretrained=True, weights_dir=weights_dir or current().encodec_dir,
                                allow_download=current().allow_download)
        except CodecWeightsMissing as e:
            if name == "encodec":
                raise
            print(f"[corpus] {e}\n[corpus] -> using the offline mel k-means codec instead")
    elif name != "melkmeans":
        raise ValueError(f"unknown codec {name!r}: choose auto, encodec or melkmeans")
    train_wavs = list(train_wavs)
    key = _sha("|".join(k for k, _ in train_wavs).encode() + f"|seed={seed}".encode())[:12]
    path = build_dir / "codecs" / f"melkmeans-fit-{key}.pt"
    if path.is_file():
        return MelKMeansCodec.load(path)
    print(f"[corpus] fitting the offline codec on {len(train_wavs)} training utterances ...")
    codec = MelKMeansCodec.fit((read_wav(p) for _, p in tqdm(train_wavs, desc="log-mel")), seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec.save(path)
    return codec


def build_corpus(sources: list[Source] | None = None, build_dir: Path | None = None,
                 codec: str = "auto", weights_dir: str | None = None, seed: int = 0,
                 user_corpus: str | Path | None = None, extra_text: Sequence[Path] = ()) -> Corpus:
    """Synthesise (or read), align and tokenise every utterance, reusing whatever is cached.

    sources None: the shipped corpus (with `extra_text` sentence files, if any), or a user's LJSpeech-style
    folder (`user_corpus`, else the CORPUS variable; see `corpus_sources`), each in its own build folder
    unless `build_dir` is given."""
    if sources is None:
        sources, default_dir = corpus_sources(user_corpus, extra_text)
    else:
        default_dir = DEFAULT_BUILD
    build_dir = Path(build_dir or default_dir)
    for sub in ("audio", "durations", "phonemes"):
        (build_dir / sub).mkdir(parents=True, exist_ok=True)
    keys = {s.uid: s.key for s in sources}

    todo = [s for s in sources if not ((build_dir / "audio" / f"{keys[s.uid]}.wav").is_file()
                                       and (build_dir / "durations" / f"{keys[s.uid]}.npy").is_file())]
    made = map_isolated(_make_audio, [(s.text, s.voice, s.rate, s.wav_path) for s in todo])
    for s, (wav, dur) in tqdm(zip(todo, made), total=len(todo), desc="synthesise", mininterval=1.0):
        wav_p, dur_p = build_dir / "audio" / f"{keys[s.uid]}.wav", build_dir / "durations" / f"{keys[s.uid]}.npy"
        buf = io.BytesIO()
        sf.write(buf, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        atomic_write_bytes(wav_p, buf.getvalue())
        atomic_write_bytes(dur_p, _npy_bytes(dur))

    # phonemes of the text (what the judge's phoneme error rate compares with); for a user's
    # recording, those eSpeak NG would speak for its transcript
    ph_path = {s.uid: build_dir / "phonemes" / f"{keys[s.uid]}.txt" for s in sources}
    todo = [s for s in sources if not ph_path[s.uid].is_file()]
    made = map_isolated(_phonemes_here, [(s.text, s.voice, s.rate) for s in todo])
    for s, names in tqdm(zip(todo, made), total=len(todo), desc="phonemes", mininterval=1.0):
        atomic_write_bytes(ph_path[s.uid], " ".join(names).encode("utf-8"))

    train = [(keys[s.uid], build_dir / "audio" / f"{keys[s.uid]}.wav") for s in sources if s.split_name == "train"]
    cdc = resolve_codec(codec, train, build_dir, weights_dir, seed)
    code_dir = build_dir / "codes" / cdc.codec_id
    code_dir.mkdir(parents=True, exist_ok=True)

    utts, entries = [], []
    for s in tqdm(sources, desc=f"encode ({cdc.codec_id})", mininterval=1.0):
        k = keys[s.uid]
        wav_p, code_p = build_dir / "audio" / f"{k}.wav", code_dir / f"{k}.npy"
        if not code_p.is_file():
            atomic_write_bytes(code_p, _npy_bytes(cdc.encode(read_wav(wav_p))))
        codes = np.load(code_p)
        dur = np.load(build_dir / "durations" / f"{k}.npy")
        if int(dur.sum()) != codes.shape[1]:
            raise RuntimeError(f"{s.uid}: durations sum to {dur.sum()} but there are {codes.shape[1]} frames")
        ids = np.array(textlib.encode(s.text), dtype=np.int64)
        speaker = [v for v, _ in SPEAKERS].index(s.voice) if s.voice != "user" else 0
        utts.append(Utterance(s.uid, s.text, speaker, s.split_name, ids, dur.astype(np.int64), codes.astype(np.int64)))
        entries.append({**asdict(s), "key": k, "split": utts[-1].split, "n_frames": codes.shape[1],
                        "durations": "espeak-scaled" if s.wav_path else "espeak-events",
                        "sha256_wav": _sha(wav_p.read_bytes()), "sha256_codes": _sha(code_p.read_bytes()),
                        "sha256_durations": _sha(dur.tobytes())})
    corpus_hash = _sha(json.dumps([(e["key"], e["split"], e["sha256_codes"]) for e in entries]).encode())[:12]
    manifest = {"codec_id": cdc.codec_id, "corpus_hash": corpus_hash, "synth_version": SYNTH_VERSION,
                "sample_rate": SAMPLE_RATE, "frame_rate": SAMPLE_RATE / HOP, "utterances": entries}
    atomic_write_bytes(build_dir / f"manifest-{cdc.codec_id}.json",
                  json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    return Corpus(utts, cdc.codec_id, corpus_hash, build_dir, cdc,
                  {s.uid: build_dir / "audio" / f"{keys[s.uid]}.wav" for s in sources},
                  {s.uid: ph_path[s.uid].read_text("utf-8").split() for s in sources})


def long_samples(utts: list[Utterance], n_samples: int) -> list[Utterance]:
    """Concatenate consecutive utterances into `n_samples` long recordings (round-robin by order).

    BOS symbols of the later utterances stay in place: they carry the silence between
    sentences, so durations still sum exactly to the frame count.
    """
    groups = [utts[i::n_samples] for i in range(n_samples)]
    return [Utterance(f"long{i}", " ".join(u.text for u in g), g[0].speaker, g[0].split,
                      np.concatenate([u.text_ids for u in g]), np.concatenate([u.durations for u in g]),
                      np.concatenate([u.codes for u in g], axis=1)) for i, g in enumerate(groups)]


def span_symbols(text_ids: np.ndarray, durations: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """The symbols overlapping frames [start, end) and their durations clipped to it (they sum to end - start);
    a zero-duration symbol counts where it sits. What a chunk of a long recording is trained on (Phase 4) and
    what chunked generation reads."""
    ends = np.cumsum(durations)
    starts = ends - durations
    keep = (starts < end) & ((ends > start) | ((durations == 0) & (starts >= start)))
    return text_ids[keep], np.minimum(ends[keep], end) - np.maximum(starts[keep], start)


def chunk_bounds(n_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """Consecutive fixed-length chunks [start, end) of a long sample; the short tail is dropped."""
    return [(s, s + chunk_frames) for s in range(0, n_frames - chunk_frames + 1, chunk_frames)]
