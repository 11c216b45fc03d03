"""The judge: error rates computed right, the unseen set really unseen, and a judge that listens."""
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssmtts.corpus.build import SPEAKERS, UNSEEN_TEXT, DEFAULT_TEXT, read_wav
from ssmtts.judge import (JudgeConfig, PRIMARY_METRIC, bootstrap_ci, build_judge, char_target, error_rate,
                          null_inputs, one_per_sentence)

REPO = Path(__file__).resolve().parents[1]


def test_error_rate_on_known_pairs():
    assert error_rate(["kot"], ["kot"]) == 0
    assert error_rate(["kto"], ["kot"]) == pytest.approx(200 / 3)      # a swap is two edits
    assert error_rate([""], ["ala"]) == 100                             # everything deleted
    assert error_rate(["ala ma kota"], ["ala"]) == pytest.approx(800 / 3)  # insertions can pass 100 %
    assert error_rate(["ab", "abcd"], ["ab", "abce"]) == pytest.approx(100 / 6)  # pooled, not averaged
    assert error_rate([["S", "a"]], [["S", "a", "x"]]) == pytest.approx(100 / 3)  # phoneme lists
    with pytest.raises(ValueError):
        error_rate(["a"], ["a", "b"])


def test_character_targets_keep_polish_letters_only():
    assert char_target("  Żółć, gęślą — JAŹŃ!  ") == "żółć gęślą jaźń"
    assert char_target("Hej... co?") == "hej co"


def test_bootstrap_ci_brackets_the_pooled_rate():
    edits, lens = np.array([1, 2, 0, 5, 3]), np.array([10, 10, 10, 10, 10])
    lo, hi = bootstrap_ci(edits, lens)
    assert lo <= 100 * edits.sum() / lens.sum() <= hi and lo < hi
    assert bootstrap_ci(edits, lens) == (lo, hi)                        # seeded


MORE_TEXT = DEFAULT_TEXT.parent / "more_sentences_pl.txt"     # deviation 16's added training text


def _words(s):
    return re.findall(r"[^\W\d_]+", s.lower())


@pytest.mark.parametrize("text_file", [DEFAULT_TEXT, MORE_TEXT], ids=["shipped text", "deviation 16's more text"])
def test_unseen_sentences_share_no_word_trigram_with_the_training_text(text_file):
    train = {tuple(w[i:i + 3]) for line in text_file.read_text("utf-8").splitlines()
             for w in [_words(line)] for i in range(len(w) - 2)}
    unseen = [l for l in UNSEEN_TEXT.read_text("utf-8").splitlines() if l.strip()]
    assert len(unseen) >= 60 and len(set(unseen)) == len(unseen)
    for line in unseen:
        w = _words(line)
        shared = {tuple(w[i:i + 3]) for i in range(len(w) - 2)} & train
        assert not shared, f"{line!r} shares {shared} with the training text"


def test_unseen_set_is_spoken_by_every_voice_and_never_trained_on(corpus):
    unseen = corpus.split("unseen")
    n_sent = len([l for l in UNSEEN_TEXT.read_text("utf-8").splitlines() if l.strip()])
    assert len(unseen) == n_sent * len(SPEAKERS)
    assert {u.speaker for u in unseen} == set(range(len(SPEAKERS)))
    assert not {u.text for u in unseen} & {u.text for u in corpus.split("train")}
    picked = one_per_sentence(unseen)
    assert len(picked) == n_sent and len({u.text for u in picked}) == n_sent
    assert {u.speaker for u in picked} == set(range(len(SPEAKERS)))     # voices in rotation
    assert all(corpus.phonemes[u.uid] for u in unseen)


def test_null_inputs_do_not_say_the_sentence():
    wavs = [np.full(800, 0.1, np.float32), np.linspace(-1, 1, 900, dtype=np.float32)]
    nulls = null_inputs(wavs)
    assert not nulls["silence"][0].any() and len(nulls["white noise"][1]) == 900
    assert np.array_equal(nulls["time-reversed"][1], wavs[1][::-1])
    assert nulls["another sentence"][0] is wavs[1]


def test_a_judge_that_listens_scores_what_it_heard_well_and_nulls_badly(corpus):
    """A small judge trained on a few utterances transcribes them (well below chance), while silence,
    noise, reversed speech and another sentence's audio stay near 100 % errors. Fails if the judge
    ignored its input (constant features, broken CTC decoding, scoring against the wrong text)."""
    few = corpus.split("train")[:6]
    small = replace(corpus, utterances=few + corpus.split("val")[:1])
    judge = build_judge(small, JudgeConfig(hidden=96, layers=4, steps=120, batch_size=6, roundtrips=0, spec_masks=0),
                        progress=False)
    wavs = [read_wav(corpus.audio_paths[u.uid]) for u in few]
    refs = dict(texts=[u.text for u in few], phonemes=[corpus.phonemes[u.uid] for u in few])
    heard = judge.score(wavs, **refs)
    per = 100 * heard.phoneme_edits.sum() / heard.phoneme_len.sum()
    assert per < 35, f"the judge did not learn the utterances it trained on (PER {per:.1f} %)"
    for kind, null in null_inputs(wavs).items():
        s = judge.score(null, **refs)
        assert 100 * s.phoneme_edits.sum() / s.phoneme_len.sum() >= 70, kind


def test_a_judge_never_hears_the_utterances_it_excludes(corpus):
    """`exclude` removes utterances from the judge's training list (diagnostics: a judge that never heard some
    sentences); excluding every training utterance leaves nothing to train on, which is an error."""
    small = replace(corpus, utterances=corpus.split("train")[:3])
    with pytest.raises(ValueError, match="needs training utterances"):
        build_judge(small, JudgeConfig(hidden=8, layers=1, steps=1), progress=False,
                    exclude=frozenset(u.uid for u in small.utterances))


def test_committed_judge_card_meets_its_bounds():
    """The card in results/judge/ (python -m ssmtts.judge): ground truth and codec round trips are
    heard well, every null input badly, on the primary metric."""
    card = pd.read_csv(REPO / "results" / "judge" / "card.csv")
    m = PRIMARY_METRIC
    gt = card[card.input == "ground truth"]
    assert len(gt) and (gt[m] <= 3).all(), gt
    rt = card[card.input == "codec round trip"]
    assert len(rt) and (rt[m] <= 6).all(), rt
    nulls = card[card.input.str.startswith("null")]
    assert len(nulls) == 4 and (nulls[m] >= 80).all(), nulls
