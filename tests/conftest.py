import os

import pytest

from ssmtts.corpus.build import build_corpus


@pytest.fixture(scope="session")
def corpus():
    """The shipped corpus, as `make data` built it (reused from the cache, not rebuilt)."""
    return build_corpus(codec=os.environ.get("CODEC", "auto"))
