"""Does more varied training text lower the error on unseen text? Two models x two judges (deviation 16).

A diagnostic (exploratory, not a claim). The shipped training text has 628 word types; a speech model trained on
it says its training sentences almost perfectly and unseen sentences at ~12 % PER (benchmarks/seen_text_gap.py).
This script scores, on the 70 unseen sentences with predicted durations, a model trained on the shipped corpus
and the same recipe trained on the shipped corpus plus `--extra-text` (another corpus: its own codec fit, judge
and corpus hash), each by both corpora's judges, beside each judge's ground truth and each codec's round trip.
The study's judge (trained on the shipped corpus) is the fixed yardstick; the other judge heard more text too.

    python benchmarks/more_text.py --extra-text data/text/more_sentences_pl.txt \\
        --model "shipped text=results/speech/toward10/models/<run>.pt" \\
        --model "shipped + more text=results/speech/moretext/models/<run>.pt" --out results/speech/moretext/judged.csv

Rows already in --out from an earlier call are kept (a later seed's model joins them); rows of the same
(training text, judge, model, checkpoint) are replaced.
"""
import argparse
import re
from pathlib import Path

import pandas as pd
import torch

from ssmtts.corpus.build import DEFAULT_TEXT, UNSEEN_TEXT, build_corpus
from ssmtts.judge import judge_for
from ssmtts.speech import baselines, eval_sentences, load_model, measure, style_references, summarize_speech
from ssmtts.train.results import git_commit, upsert_rows


def words(files) -> list[str]:
    return [w.lower() for f in files for line in Path(f).read_text("utf-8").splitlines()
            for w in re.findall(r"[^\W\d_]+", line)]


def unseen_word_coverage(text_files) -> dict:
    """How many of the unseen sentences' words the training text has (tokens and types), and its vocabulary."""
    vocab, unseen = set(words(text_files)), words([UNSEEN_TEXT])
    return {"train_word_types": len(vocab), "unseen_tokens_in_train": sum(w in vocab for w in unseen) / len(unseen),
            "unseen_types_in_train": len(set(unseen) & vocab) / len(set(unseen))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--extra-text", type=Path, required=True, help="the sentences added to the shipped text")
    p.add_argument("--model", action="append", required=True, metavar="TEXT=PATH",
                   help="an exported model and its training text: 'shipped text' or 'shipped + more text' (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    texts = {"shipped text": [DEFAULT_TEXT], "shipped + more text": [DEFAULT_TEXT, a.extra_text]}
    corpora = {name: build_corpus(extra_text=files[1:]) for name, files in texts.items()}    # files[0]: the shipped text
    judges = {name: judge_for(c, "cpu") for name, c in corpora.items()}
    models = [tuple(m.split("=", 1)) for m in a.model]          # (training text, exported model), seeds repeat a text
    if not {text for text, _ in models} <= set(corpora):
        p.error(f"--model names its training text, one of {sorted(corpora)}")
    rows = []
    for judge_text, judge in judges.items():
        for train_text, corpus in corpora.items():      # each codec's ceiling (and the ground truth) for this judge
            utts = eval_sentences(corpus)
            heard = baselines(corpus, judge, utts).query("model in ['ground truth', 'codec round trip']")
            if train_text != "shipped text":
                heard = heard.query("model == 'codec round trip'")     # the same ground-truth audio: once
            rows.append(summarize_speech(heard, by=("model",)).assign(training_text=train_text, judge=judge_text))
        for train_text, path in models:
            corpus = corpora[train_text]
            utts = eval_sentences(corpus)
            model = load_model(Path(path))
            generated = measure(model, corpus, judge, utts, style_references(corpus, utts), modes=("predicted",),
                                with_mcd=False)
            s = summarize_speech(generated.assign(model=model.cfg.name), by=("model",))
            rows.append(s.assign(training_text=train_text, judge=judge_text, checkpoint=Path(path).name))
            print(rows[-1][["training_text", "judge", "model", "per", "per_lo", "per_hi"]].round(2).to_string(index=False),
                  flush=True)
    out = pd.concat(rows, ignore_index=True)
    out["judge_id"] = out.judge.map({k: j.judge_id for k, j in judges.items()})
    for col in ("codec_id", "corpus_hash"):
        out[col] = out.training_text.map({k: getattr(c, col) for k, c in corpora.items()})
    cover = pd.DataFrame([{"training_text": k, **unseen_word_coverage(f)} for k, f in texts.items()])
    out = out.merge(cover, on="training_text")
    out["git_commit"] = git_commit()
    cols = ["training_text", "judge", "model", "checkpoint", "n", "per", "per_lo", "per_hi", "cer", "cer_lo", "cer_hi"]
    # rows of earlier calls stay (another seed's model scored later joins the same file); the same rows are replaced
    upsert_rows(a.out, out[cols + [c for c in out if c not in cols]], key=("training_text", "judge", "model", "checkpoint"))


if __name__ == "__main__":
    main()
