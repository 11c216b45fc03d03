"""Offline Polish speech from libespeak-ng's C API, with exact event timings.

eSpeak NG reports WORD events (character position, length, sample onset) and PHONEME
events (sample onset, phoneme name) through its synth callback. The phoneme onsets, with
the last one ending at the end of the audio, tile the utterance exactly, so durations
derived from them are ground truth rather than a forced aligner's guess.

The library comes from the `espeakng-loader` wheel (library + voice data, no root), or
from Debian's `espeak-ng` package (`libespeak-ng.so.1`) when the wheel is missing.

Reproducibility: libespeak-ng keeps state between utterances (the same text synthesised twice
in one process gives slightly different audio, and some voice variants draw random numbers),
so every utterance is synthesised in a freshly forked process with a fixed random seed. The
result depends only on (text, voice, rate): byte-identical in any order, on any rebuild.

The fresh processes are forked from a "forkserver", a single-threaded process that imported the
corpus modules once, never from the caller: forking a parent that already runs torch/OpenMP
thread pools (a notebook, pytest, a training run) can deadlock the child.
"""
from __future__ import annotations

import ctypes as C
import multiprocessing
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

SYNTH_RATE = 22050  # every eSpeak NG voice renders at 22.05 kHz
_EV_WORD, _EV_PHONEME, _EV_END = 1, 7, 5


class _EventId(C.Union):
    _fields_ = [("number", C.c_int), ("name", C.c_char_p), ("string", C.c_char * 8)]


class _Event(C.Structure):
    _fields_ = [("type", C.c_int), ("unique_identifier", C.c_uint), ("text_position", C.c_int),
                ("length", C.c_int), ("audio_position", C.c_int), ("sample", C.c_int),
                ("user_data", C.c_void_p), ("id", _EventId)]


_Callback = C.CFUNCTYPE(C.c_int, C.POINTER(C.c_short), C.c_int, C.POINTER(_Event))


@dataclass
class Synthesis:
    """One utterance: int16 audio at 22.05 kHz and its events (sample indices at 22.05 kHz)."""
    audio: np.ndarray
    words: list[tuple[int, int, int]] = field(default_factory=list)      # (char_start 0-based, n_chars, sample)
    phonemes: list[tuple[int, str]] = field(default_factory=list)        # (sample, name)


class EspeakError(RuntimeError):
    pass


class Espeak:
    """Thin ctypes wrapper; one process-wide instance (libespeak-ng is not re-entrant)."""
    _instance = None
    _lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader
            data_path = espeakng_loader.get_data_path()          # the wheel's voices, beside its library
            self.lib = C.CDLL(espeakng_loader.get_library_path())
        except ImportError:
            data_path = None                                      # the system library finds its own voices
            try:
                self.lib = C.CDLL("libespeak-ng.so.1")
            except OSError as e:
                raise EspeakError(
                    "libespeak-ng not found: `pip install espeakng-loader` (no root) or "
                    "`apt-get install espeak-ng`") from e
        data = data_path.encode() if data_path else None
        rate = self.lib.espeak_Initialize(2, 0, data, 1)  # SYNCHRONOUS, default buffer, PHONEME_EVENTS
        if rate != SYNTH_RATE:
            raise EspeakError(f"espeak_Initialize returned {rate}, expected {SYNTH_RATE} Hz")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple] = []
        self._cb = _Callback(self._collect)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, wav, n, ev):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while ev[i].type != 0:
            e = ev[i]
            if e.type == _EV_WORD:
                self._events.append(("W", e.text_position - 1, e.length, e.sample))
            elif e.type == _EV_PHONEME:
                self._events.append(("P", e.sample, e.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str = "pl", rate_wpm: int = 175) -> Synthesis:
        with self._lock:
            self.lib.espeak_ng_SetRandSeed(0)
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"eSpeak NG voice {voice!r} not found")
            self.lib.espeak_SetParameter(1, int(rate_wpm), 0)  # espeakRATE, absolute
            self._chunks, self._events = [], []
            b = text.encode("utf-8")
            # position_type 1 = POS_CHARACTER; flags 1 = espeakCHARS_UTF8
            if self.lib.espeak_Synth(b, len(b) + 1, 0, 1, 0, 1, None, None) != 0:
                raise EspeakError(f"espeak_Synth failed for {text!r}")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            words = [(a, b_, c) for k, a, b_, c in (e for e in self._events if e[0] == "W")]
            phonemes = [(a, b_) for k, a, b_ in (e for e in self._events if e[0] == "P")]
        return Synthesis(audio=audio, words=words, phonemes=phonemes)


def _in_fresh_process(job):
    fn, args = job
    return fn(*args)


def map_isolated(fn, jobs: list[tuple], processes: int = 2):
    """Yield fn(*job) for each job, each in its own freshly forked process (see module doc).

    `fn` must be a module-level function (it is pickled by reference).

    The parent never loads libespeak-ng, so every child starts from the same clean state.
    """
    if Espeak._instance is not None:
        raise RuntimeError("libespeak-ng was loaded in the parent process; synthesis would not be reproducible")
    ctx = multiprocessing.get_context("forkserver")
    # Children are forked from the server, which has these imported: no per-utterance import cost.
    # Only takes effect when the server starts (the first call in this process).
    ctx.set_forkserver_preload(["ssmtts.corpus.build"])
    # multiprocessing re-runs the caller's __main__ in every child. A script without an
    # `if __name__ == "__main__":` guard (or one read from stdin, whose "file" is "<stdin>") then fails
    # in every child while it starts, and the Pool starts replacements forever. The children never need
    # __main__ (fn is a module-level function of this package, pickled by reference): hidden meanwhile.
    main = sys.modules["__main__"]
    saved_file, saved_spec = getattr(main, "__file__", None), getattr(main, "__spec__", None)
    main.__spec__ = None
    if saved_file is not None:
        del main.__file__
    try:
        with ctx.Pool(processes, maxtasksperchild=1) as pool:
            yield from pool.imap(_in_fresh_process, [(fn, j) for j in jobs], chunksize=1)
    finally:
        main.__spec__ = saved_spec
        if saved_file is not None:
            main.__file__ = saved_file


def synthesize_in_this_process(text: str, voice: str = "pl", rate_wpm: int = 175) -> Synthesis:
    """For code already running inside `map_isolated` (a fresh process); elsewhere use `synthesize`."""
    return Espeak.get().synthesize(text, voice, rate_wpm)


def synthesize(text: str, voice: str = "pl", rate_wpm: int = 175) -> Synthesis:
    """One utterance, synthesised in a fresh process (reproducible byte for byte)."""
    return next(map_isolated(synthesize_in_this_process, [(text, voice, rate_wpm)], processes=1))
