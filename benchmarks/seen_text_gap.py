"""Where a speech model's judge error comes from: text it trained on, recombined text, or new text.

A diagnostic (not a claim): one trained model generates, with predicted durations, 70 training sentences
(every k-th of the training split, so all voices), the validation split (held-out audio whose text shares
most of its word 4-grams with training) and the 70 unseen sentences; the judge scores each, beside the
judge's own error on the same sentences' ground truth and codec round trip. A model far better on training
text than on unseen text is limited by how much text it has seen, not by the codec or the judge.

The study's judge trained on the training split too, so it may hear training sentences well from unclear
audio. The training-text sentences are therefore also scored by a second judge, the same recipe trained
without those 70 utterances (cached in data/build/judge like the first): it has never heard their text.

    python benchmarks/seen_text_gap.py results/speech/toward10/models/<run>.pt --out results/speech/toward10/seen_text_gap.csv
"""
import argparse
from pathlib import Path

import pandas as pd
import torch

from ssmtts.corpus.build import build_corpus
from ssmtts.files import atomic_write_csv
from ssmtts.judge import JUDGE_PROFILES, build_judge, judge_for
from ssmtts.speech import baselines, eval_sentences, load_model, measure, style_references, summarize_speech


def text_sets(corpus, n: int = 70) -> dict[str, list]:
    train = sorted(corpus.split("train"), key=lambda u: u.uid)
    step = max(1, len(train) // n)
    return {"training text": train[::step][:n],
            "validation (recombined text)": sorted(corpus.split("val"), key=lambda u: u.uid),
            "unseen text": eval_sentences(corpus)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="an exported model (results/**/models/*.pt)")
    p.add_argument("--out", type=Path, required=True, help="the summary CSV")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    corpus = build_corpus()
    judge, model = judge_for(corpus, "cpu"), load_model(a.model)
    sets = text_sets(corpus)
    unheard = build_judge(corpus, JUDGE_PROFILES["cpu"], exclude=frozenset(u.uid for u in sets["training text"]))
    plan = [("training text", "study judge", judge),
            ("training text", "judge that never heard these sentences", unheard),
            ("validation (recombined text)", "study judge", judge),
            ("unseen text", "study judge", judge)]
    rows = []
    for name, judge_name, j in plan:
        utts = sets[name]
        refs = style_references(corpus, utts)
        generated = measure(model, corpus, j, utts, refs, modes=("predicted",), with_mcd=False)
        heard = pd.concat([generated.assign(model=model.cfg.name),
                           baselines(corpus, j, utts).query("model in ['ground truth', 'codec round trip']")])
        s = summarize_speech(heard, by=("model",)).assign(text=name, judge=judge_name, judge_id=j.judge_id)
        rows.append(s[["text", "judge", "model", "n", "per", "per_lo", "per_hi", "cer", "cer_lo", "cer_hi", "judge_id"]])
        print(rows[-1].round(2).to_string(index=False), flush=True)
    out = pd.concat(rows, ignore_index=True).assign(checkpoint=a.model.name, codec_id=corpus.codec_id,
                                                    corpus_hash=corpus.corpus_hash)
    atomic_write_csv(out, a.out)


if __name__ == "__main__":
    main()
