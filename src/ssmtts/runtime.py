"""Process-level memory settings for fast CPU runs (glibc's malloc).

glibc hands every block it mapped itself back to the OS when it is freed: all blocks over
32 MB, and blocks of the sizes just above its adaptive threshold (so a training step's
(B, L, D) tensors, freed and requested again at the same size every step). The next such
tensor is then faulted in and zeroed page by page again. How much that costs depends on how
much a step allocates: most for mambapy's pscan (its (B, L, D, N) tensors are 256 MiB each at
d 512, L 1024), little for the C++ kernel's layer. `make bench` measures both settings side by
side (results/bench/targets.csv, phase_step.csv; the README quotes them).

`keep_freed_memory()` makes malloc serve every block from its heap and keep what is freed
there (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB), as jemalloc or tcmalloc would; the
process's RSS then stays at its high-water mark. (The Makefile's MALLOC_* exports, read by glibc
at start-up, keep only blocks under 32 MiB, and only under make: this covers every size, in
any process, e.g. a notebook in JupyterLab.) `release_freed_memory()` hands the free part
back (malloc_trim), e.g. before each training run so that each run's RSS is its own. Both
do nothing where malloc is not glibc's, or with SSMTTS_KEEP_FREED_MEMORY=0.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's <malloc.h>


@functools.cache
def _libc():
    """glibc, looked up once per process (find_library runs ldconfig); None if malloc is another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (attribute lookups: both must exist)
    except (OSError, AttributeError):  # macOS, musl, Windows: leave malloc alone
        return None
    return libc


def _glibc():
    return None if os.environ.get("SSMTTS_KEEP_FREED_MEMORY", "1") == "0" else _libc()


def keep_freed_memory() -> bool:
    """Serve all blocks from the heap and keep freed memory for reuse; True if applied."""
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_freed_memory() -> bool:
    """Return the heap's free memory to the OS (RSS drops to what is live); True if any was."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


def user_corpus_dir() -> str | None:
    """CORPUS=<folder>: a user's LJSpeech-style corpus instead of the shipped one (every target, notebook, test
    of a phase). The one place the variable is read."""
    return os.environ.get("CORPUS") or None
