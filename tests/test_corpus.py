import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ssmtts.corpus import build as B
from ssmtts.corpus.codec import CodecWeightsMissing, EncodecCodec, MelKMeansCodec
from ssmtts.corpus.durations import HOP, frame_durations, n_frames_for
from ssmtts.corpus.synth import synthesize
from ssmtts.corpus.text import UnknownCharacterError


def test_corpus_size_and_sentence_lengths(corpus):
    assert len(corpus.utterances) >= 600
    secs = np.array([u.n_frames / 75 for u in corpus.utterances if u.split != "unseen"])
    assert secs.min() >= 4.0 and secs.max() <= 15.0
    unseen = np.array([u.n_frames / 75 for u in corpus.split("unseen")])   # shorter sentences, other topics
    assert unseen.min() >= 2.0 and unseen.max() <= 15.0


def test_durations_sum_exactly_to_frame_counts(corpus):
    for u in corpus.utterances:
        assert u.durations.sum() == u.n_frames, u.uid
        assert (u.durations >= 0).all() and len(u.durations) == len(u.text_ids)


def test_durations_follow_speech_not_an_even_split():
    t = "Żołnierze zapowiedzieli, że wrócą jutro rano."
    s = synthesize(t)
    wav24 = round(len(s.audio) * 24000 / 22050)
    d = frame_durations(t, s, wav24)
    assert d.sum() == n_frames_for(wav24)
    # the comma is followed by a pause in eSpeak's phoneme events: it gets real frames
    assert d[1 + t.index(",")] >= 3
    assert len(set(d.tolist())) > 4


def test_splits_are_disjoint_and_fixed(corpus):
    splits = {name: corpus.split(name) for name in B.SPLITS}
    assert all(len(v) > 20 for v in splits.values())
    uids = [set(u.uid for u in v) for v in splits.values()]
    texts = [set(u.text for u in v) for v in splits.values()]
    for a in range(len(splits)):
        for b in range(a + 1, len(splits)):
            assert not uids[a] & uids[b] and not texts[a] & texts[b]
    for u in corpus.utterances:  # the split is a function of the text alone (the unseen set is its own file)
        assert u.split == ("unseen" if u.uid.startswith("un") else B.split_of(u.text))


def test_codes_in_range_and_every_codebook_diverse(corpus):
    for u in corpus.utterances[:50]:
        assert u.codes.shape[0] == 8 and u.codes.min() >= 0 and u.codes.max() < 1024
    unique = corpus.unique_codes_per_codebook("val")
    assert len(unique) == 8 and min(unique) >= 300, unique


def test_cached_codes_are_byte_identical_when_recomputed(corpus):
    if not corpus.codec_id.startswith("melkmeans"):
        pytest.skip("corpus made with EnCodec")
    # the build folder may hold other corpora's fits too (e.g. one built with --extra-text): load the corpus's own
    fits = [MelKMeansCodec.load(p) for p in sorted((corpus.build_dir / "codecs").glob("melkmeans-fit-*.pt"))]
    codec = next((c for c in fits if c.codec_id == corpus.codec_id), None)
    assert codec is not None, f"no fitted codec in {corpus.build_dir / 'codecs'} has the corpus's id {corpus.codec_id}"
    manifest = B.json.loads((corpus.build_dir / f"manifest-{corpus.codec_id}.json").read_text())
    for e in manifest["utterances"][:5]:
        wav = B.read_wav(corpus.build_dir / "audio" / f"{e['key']}.wav")
        cached = (corpus.build_dir / "codes" / corpus.codec_id / f"{e['key']}.npy").read_bytes()
        assert B._npy_bytes(codec.encode(wav)) == cached


def test_offline_codec_decodes_the_same_codes_to_the_same_waveform(corpus):
    """Griffin-Lim's starting phases are seeded: samples and their MCD are reproducible."""
    if not corpus.codec_id.startswith("melkmeans"):
        pytest.skip("corpus made with EnCodec")
    codec = MelKMeansCodec.load(next((corpus.build_dir / "codecs").glob("melkmeans-fit-*.pt")))
    codes = corpus.split("val")[0].codes[:, :40]
    first, second = codec.decode(codes, n_iter=4), codec.decode(codes, n_iter=4)
    assert first.shape == (40 * 320,) and np.abs(first).max() > 0
    np.testing.assert_array_equal(first, second)


def test_offline_codec_needs_enough_training_audio():
    import torch
    from ssmtts.corpus.codec import kmeans
    with pytest.raises(ValueError, match="at least 1024 training frames"):
        kmeans(torch.randn(100, 80), 1024, iters=1, seed=0)


def test_small_build_is_reproducible_and_invalidates_only_what_changed(tmp_path):
    srcs = [s for s in B.shipped_sources() if B.split_of(s.text) == "train"][:4]
    c1 = B.build_corpus(srcs, tmp_path / "a", codec="melkmeans")
    c2 = B.build_corpus(srcs, tmp_path / "b", codec="melkmeans")
    assert c1.codec_id == c2.codec_id and c1.corpus_hash == c2.corpus_hash
    for u1, u2 in zip(c1.utterances, c2.utterances):
        assert np.array_equal(u1.codes, u2.codes) and np.array_equal(u1.durations, u2.durations)
    # editing one sentence changes one key only
    edited = [B.Source(s.uid, s.text + " Koniec." if i == 1 else s.text, s.voice, s.rate) for i, s in enumerate(srcs)]
    assert [a.key == b.key for a, b in zip(srcs, edited)] == [True, False, True, True]


def test_unknown_character_in_corpus_text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Dobry wieczór.\nCena: 5 zł.\n", encoding="utf-8")
    with pytest.raises(UnknownCharacterError, match="'5'"):
        B.shipped_sources(p)


def test_extra_text_adds_sentences_after_the_shipped_ones_and_moves_none(tmp_path):
    extra = tmp_path / "more.txt"
    extra.write_text("Pierwsze nowe zdanie.\n\nDrugie nowe zdanie, z przecinkiem.\n", encoding="utf-8")
    shipped, more = B.shipped_sources(), B.shipped_sources(extra_text=[extra])
    n = len([s for s in shipped if s.split_name != "unseen"])
    assert [vars(s) for s in more if s.uid in {t.uid for t in shipped}] == [vars(s) for s in shipped]
    added = [s for s in more if s.uid not in {t.uid for t in shipped}]
    assert [(s.uid, s.text) for s in added] == [(f"pl{n:04d}", "Pierwsze nowe zdanie."),
                                                (f"pl{n + 1:04d}", "Drugie nowe zdanie, z przecinkiem.")]
    assert [s.voice for s in added] == [B.SPEAKERS[n % 5][0], B.SPEAKERS[(n + 1) % 5][0]]   # the round robin goes on
    extra.write_text("Cena: 5 zł.\n", encoding="utf-8")
    with pytest.raises(UnknownCharacterError, match="'5'"):
        B.shipped_sources(extra_text=[extra])
    with pytest.raises(B.UserCorpusError, match="extra text"):
        B.corpus_sources(tmp_path, extra_text=[extra])


def test_corrupt_and_empty_audio_raise(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(B.CorruptAudioError, match="bad.wav"):
        B.read_wav(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 24000)
    with pytest.raises(B.CorruptAudioError, match="empty"):
        B.read_wav(empty)


def test_user_corpus_goes_through_the_same_pipeline(tmp_path):
    (tmp_path / "wavs").mkdir()
    lines = []
    # the smallest corpus a user may bring (B.USER_MIN_UTTERANCES), as "recordings" at another sample rate
    train_sources = [s for s in B.shipped_sources() if B.split_of(s.text) == "train"][:B.USER_MIN_UTTERANCES]
    for i, s in enumerate(train_sources):
        audio = synthesize(s.text).audio
        sf.write(tmp_path / "wavs" / f"u{i}.wav", audio, 22050)  # a "recording" at another rate
        lines.append(f"u{i}|{s.text}")
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = B.build_corpus(B.user_sources(tmp_path), tmp_path / "build", codec="melkmeans")
    assert len(c.utterances) == B.USER_MIN_UTTERANCES
    assert [len(c.split(n)) for n in ("val", "test")] == [1, 1]
    for u in c.utterances:
        assert u.durations.sum() == u.n_frames
    manifest = (tmp_path / "build" / f"manifest-{c.codec_id}.json").read_text()
    assert '"durations": "espeak-scaled"' in manifest


def test_encodec_code_path_shapes_without_pretrained_weights():
    codec = EncodecCodec(pretrained=False)
    wav = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    codes = codec.encode(wav)
    assert codes.shape == (8, n_frames_for(24000)) == (8, 75)
    assert codes.min() >= 0 and codes.max() < 1024
    assert "RANDOM" in codec.codec_id  # never mistaken for the real codec


def test_missing_encodec_weights_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CodecWeightsMissing, match="encodec_24khz-d7cc33bc.th"):
        EncodecCodec(pretrained=True, weights_dir=tmp_path / "nowhere", allow_download=False)


def test_long_samples_and_chunks(corpus):
    longs = B.long_samples(corpus.split("train")[:12], n_samples=4)
    assert len(longs) == 4
    for u in longs:
        assert u.durations.sum() == u.n_frames
        bounds = B.chunk_bounds(u.n_frames, 100)
        assert bounds[0][0] == 0 and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert bounds[-1][1] <= u.n_frames < bounds[-1][1] + 100


@pytest.mark.parametrize("how", ["stdin", "file"])
def test_synthesis_from_a_script_without_a_main_guard_finishes(tmp_path, how):
    """multiprocessing re-runs the caller's __main__ in each child; an unguarded script (or one read from stdin)
    used to fail in every child while the Pool started replacements forever. map_isolated hides __main__."""
    import subprocess
    import sys
    script = 'from ssmtts.corpus.synth import synthesize\nprint("samples", len(synthesize("Ala ma kota.").audio))\n'
    path = tmp_path / "unguarded.py"
    path.write_text(script)
    cmd, stdin = ([sys.executable, "-"], script) if how == "stdin" else ([sys.executable, str(path)], None)
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("samples "), out.stderr[-800:]
