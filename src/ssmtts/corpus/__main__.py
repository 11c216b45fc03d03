"""`python -m ssmtts.corpus [--codec auto|encodec|melkmeans] [--user-corpus DIR] [--extra-text FILE]`: build and describe
the corpus."""
import argparse
import time
from pathlib import Path

from ..runtime import current
from .build import UserCorpusError, build_corpus, corpus_sources
from .text import TextError


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--codec", default=current().codec, choices=["auto", "encodec", "melkmeans"])
    ap.add_argument("--encodec-dir", default=current().encodec_dir,
                    help="folder holding encodec_24khz-d7cc33bc.th")
    ap.add_argument("--user-corpus", default=None, help="LJSpeech-style folder (metadata.csv + wavs/); default: "
                    "the CORPUS variable, else the shipped corpus")
    ap.add_argument("--extra-text", action="append", default=[], type=Path, metavar="FILE",
                    help="more training sentences (one per line) after the shipped text: another corpus beside it")
    ap.add_argument("--build-dir", default=None, help="default: data/build (a user's corpus: data/build-user/<name>-<hash>)")
    a = ap.parse_args()
    t0 = time.time()
    try:
        sources, build_dir = corpus_sources(a.user_corpus, a.extra_text)
    except (UserCorpusError, TextError) as e:
        raise SystemExit(f"error: {e}")
    corpus = build_corpus(sources, a.build_dir or build_dir, a.codec, a.encodec_dir)
    print(f"codec {corpus.codec_id}, corpus hash {corpus.corpus_hash}, {time.time() - t0:.1f} s")
    print(corpus.stats().to_string(index=False))
    print("unique codes per codebook (val):", corpus.unique_codes_per_codebook("val"))


if __name__ == "__main__":
    main()
