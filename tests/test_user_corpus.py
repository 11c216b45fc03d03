"""A user's own LJSpeech-style corpus, end to end: checked up front, built in its own folder, trained on."""
import shutil
from dataclasses import replace

import numpy as np
import pytest

from ssmtts import runtime
from ssmtts.corpus.build import (DEFAULT_BUILD, USER_MIN_UTTERANCES, UserCorpusError, build_corpus, user_build_dir,
                                 user_sources)


def ljspeech(folder, corpus, n: int):
    """An LJSpeech-style folder made of the shipped corpus's training audio and its transcripts."""
    (folder / "wavs").mkdir(parents=True)
    utts = corpus.split("train")[:n]
    for i, u in enumerate(utts):
        shutil.copyfile(corpus.audio_paths[u.uid], folder / "wavs" / f"LJ{i:03d}.wav")
    (folder / "metadata.csv").write_text("".join(f"LJ{i:03d}|{u.text}|{u.text}\n" for i, u in enumerate(utts)),
                                         encoding="utf-8")
    return folder


def test_every_problem_of_a_corpus_folder_is_listed_in_one_error_before_anything_is_built(corpus, tmp_path):
    d = ljspeech(tmp_path / "mine", corpus, USER_MIN_UTTERANCES + 2)
    (d / "wavs" / "LJ003.wav").write_bytes(b"RIFF not really a wav")
    (d / "wavs" / "LJ005.wav").unlink()
    with open(d / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("LJ900|Ten znak \u2603 jest nieznany\nonly-an-id\n")
    with pytest.raises(UserCorpusError) as e:
        user_sources(d)
    msg = str(e.value)
    assert msg.startswith("4 problem(s)")
    assert "LJ003.wav is not readable audio" in msg and "LJ005.wav does not exist" in msg
    assert "\u2603" in msg and "expected `id|text`" in msg


def test_too_small_a_corpus_is_refused_with_the_minimum(corpus, tmp_path):
    d = ljspeech(tmp_path / "tiny", corpus, 14)
    with pytest.raises(UserCorpusError, match=f"has 14 utterance.*at least {USER_MIN_UTTERANCES}"):
        user_sources(d)


def test_a_user_corpus_builds_in_its_own_folder_and_a_smoke_phase_trains_on_it(corpus, tmp_path, monkeypatch):
    from ssmtts.phases import run_phase
    shipped_before = sorted(p.name for p in DEFAULT_BUILD.glob("manifest-*.json"))
    d = ljspeech(tmp_path / "mine", corpus, 24)
    build = tmp_path / "build"
    # the CORPUS variable selects it (as `CORPUS=<dir> make phase1` does); the build folder is its own
    monkeypatch.setattr(runtime, "_CURRENT", replace(runtime.current(), corpus=str(d)))
    assert user_build_dir(d).parent.name == "build-user" and user_build_dir(d) != DEFAULT_BUILD
    mine = build_corpus(codec="melkmeans", build_dir=build)
    assert {u.split for u in mine.utterances} == {"train", "val", "test"} and len(mine.utterances) == 24
    assert len(mine.split("val")) == 1 and len(mine.split("test")) == 1
    assert all(int(u.durations.sum()) == u.codes.shape[1] for u in mine.utterances)
    assert (build / f"manifest-{mine.codec_id}.json").is_file()
    assert sorted(p.name for p in DEFAULT_BUILD.glob("manifest-*.json")) == shipped_before
    res = run_phase("phase1", mine, "smoke", seeds=(0,), out_dir=tmp_path / "results", progress=False)
    runs, sp = res["runs"], res["speech_runs"]
    assert set(runs.status) == {"finished"} and set(runs.corpus_hash) == {mine.corpus_hash}
    assert set(sp.label) == {"transformer", "hybrid"} and np.isfinite(sp.per).all()
