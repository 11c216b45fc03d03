"""`python -m ssmtts.corpus [--codec auto|encodec|melkmeans] [--user-corpus DIR]`: build and describe the corpus."""
import argparse
import os
import time

from .build import DEFAULT_BUILD, build_corpus, shipped_sources, user_sources


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--codec", default=os.environ.get("CODEC", "auto"), choices=["auto", "encodec", "melkmeans"])
    ap.add_argument("--encodec-dir", default=os.environ.get("ENCODEC_DIR") or None,
                    help="folder holding encodec_24khz-d7cc33bc.th")
    ap.add_argument("--user-corpus", default=None, help="LJSpeech-style folder (metadata.csv + wavs/)")
    ap.add_argument("--build-dir", default=str(DEFAULT_BUILD))
    a = ap.parse_args()
    t0 = time.time()
    sources = user_sources(a.user_corpus) if a.user_corpus else shipped_sources()
    corpus = build_corpus(sources, a.build_dir, a.codec, a.encodec_dir)
    print(f"codec {corpus.codec_id}, corpus hash {corpus.corpus_hash}, {time.time() - t0:.1f} s")
    print(corpus.stats().to_string(index=False))
    print("unique codes per codebook (val):", corpus.unique_codes_per_codebook("val"))


if __name__ == "__main__":
    main()
