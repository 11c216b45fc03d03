"""The runtime configuration (how the code computes, never what), and process-level memory settings.

`RuntimeConfig` holds every switch that changes the path a computation takes: the selective-scan
backend, whether the C++ kernels are built and with which extra flags, malloc's mode, threads, the
codec choice, downloads, the user's corpus. Environment variables set its defaults **here only**
(`RuntimeConfig.from_env`, read once per process); code and notebooks that want another setting
call `configure(...)`. `runtime_row(device)` is what every result row records: the backend that was
asked for and the one that actually ran (a fallback says so), the kernels' instruction set,
threads, malloc mode, device and dtype.

Memory (glibc's malloc):

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
from dataclasses import dataclass, replace

SCAN_BACKENDS = ("auto", "cpu", "pscan", "cuda", "ref")
EXECUTORS = ("serial", "ray")          # ssmtts.executors


@dataclass(frozen=True)
class RuntimeConfig:
    scan_backend: str = "auto"        # SSMTTS_SCAN_BACKEND: auto (best available) | cpu | pscan | cuda | ref
    cpu_kernel: bool = True           # SSMTTS_NO_CPU_KERNEL=1 -> False: never build the C++ kernels (PyTorch paths)
    kernel_cflags: str = ""           # SSMTTS_CPU_KERNEL_CFLAGS: extra compiler flags (e.g. -mno-avx512f)
    keep_freed_memory: bool = True    # SSMTTS_KEEP_FREED_MEMORY=0 -> False: leave glibc's malloc as it is
    threads: int = 0                  # SSMTTS_THREADS: torch CPU threads; 0 = torch's default
    codec: str = "auto"               # CODEC: auto | encodec | melkmeans
    encodec_dir: str | None = None    # ENCODEC_DIR: a folder holding EnCodec's weights
    allow_download: bool = True       # SSMTTS_NO_DOWNLOAD=1 -> False: never fetch EnCodec's weights
    corpus: str | None = None         # CORPUS: a user's LJSpeech-style folder instead of the shipped corpus
    executor: str = "serial"          # EXECUTOR: serial | ray (a phase's runs as Ray tasks, ssmtts.executors)
    ray_address: str | None = None    # RAY_ADDRESS: a running Ray cluster (None: start a local one)
    checkpoint_dir: str | None = None # SSMTTS_CHECKPOINTS: run checkpoints on a path every worker sees

    def __post_init__(self):
        if self.scan_backend not in SCAN_BACKENDS:
            raise ValueError(f"unknown scan backend {self.scan_backend!r}: choose from {SCAN_BACKENDS}")
        if self.codec not in ("auto", "encodec", "melkmeans"):
            raise ValueError(f"unknown codec {self.codec!r}: choose auto, encodec or melkmeans")
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}: choose from {EXECUTORS}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")

    @classmethod
    def from_env(cls, env=None) -> "RuntimeConfig":
        """The defaults, from the environment (the one place in the package that reads it)."""
        env = os.environ if env is None else env
        return cls(scan_backend=env.get("SSMTTS_SCAN_BACKEND", "auto") or "auto",
                   cpu_kernel=env.get("SSMTTS_NO_CPU_KERNEL", "") != "1",
                   kernel_cflags=env.get("SSMTTS_CPU_KERNEL_CFLAGS", ""),
                   keep_freed_memory=env.get("SSMTTS_KEEP_FREED_MEMORY", "1") != "0",
                   threads=int(env.get("SSMTTS_THREADS", "0") or 0),
                   codec=env.get("CODEC", "auto") or "auto",
                   encodec_dir=env.get("ENCODEC_DIR") or None,
                   allow_download=env.get("SSMTTS_NO_DOWNLOAD", "") != "1",
                   corpus=env.get("CORPUS") or None,
                   executor=env.get("EXECUTOR", "serial") or "serial",
                   ray_address=env.get("RAY_ADDRESS") or None,
                   checkpoint_dir=env.get("SSMTTS_CHECKPOINTS") or None)

    def to_env(self) -> dict:
        """This configuration as the variables `from_env` reads (for a child process to start with it)."""
        env = {"SSMTTS_SCAN_BACKEND": self.scan_backend, "SSMTTS_NO_CPU_KERNEL": "" if self.cpu_kernel else "1",
               "SSMTTS_CPU_KERNEL_CFLAGS": self.kernel_cflags,
               "SSMTTS_KEEP_FREED_MEMORY": "1" if self.keep_freed_memory else "0",
               "SSMTTS_THREADS": str(self.threads), "CODEC": self.codec, "ENCODEC_DIR": self.encodec_dir or "",
               "SSMTTS_NO_DOWNLOAD": "" if self.allow_download else "1", "CORPUS": self.corpus or "",
               "EXECUTOR": self.executor, "RAY_ADDRESS": self.ray_address or "",
               "SSMTTS_CHECKPOINTS": self.checkpoint_dir or ""}
        return env


_CURRENT: RuntimeConfig | None = None


def current() -> RuntimeConfig:
    """This process's runtime configuration (from the environment until `configure` changes it)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = RuntimeConfig.from_env()
    return _CURRENT


def configure(**changes) -> RuntimeConfig:
    """Change this process's runtime configuration, e.g. `configure(scan_backend="pscan", threads=1)`.
    Threads take effect at once; a kernel setting before the kernels are first built."""
    global _CURRENT
    _CURRENT = replace(current(), **changes)
    if _CURRENT.threads:
        import torch
        torch.set_num_threads(_CURRENT.threads)
    return _CURRENT


def child_env(**changes) -> dict:
    """The environment for a child process that should run with this configuration (plus `changes`)."""
    return {**os.environ, **replace(current(), **changes).to_env()}


def malloc_mode() -> str:
    """What malloc does with freed memory in this process (as result rows record it)."""
    if _libc() is None:
        return "not glibc"
    if _KEPT:
        return "glibc, freed memory kept (mallopt)"
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    return f"glibc, MALLOC_MMAP_THRESHOLD_={threshold}" if threshold else "glibc defaults"


def runtime_row(device="cpu") -> dict:
    """The runtime columns of a result row: the scan backend asked for and the path that ran, the kernels'
    instruction set, torch threads, malloc mode, device and dtype."""
    import torch

    from .models.cpu_ext import kernel_isa
    from .models.scan import scan_path
    dev = torch.device(device)
    cfg = current()
    return {"device": str(device), "scan_backend": cfg.scan_backend, "scan_path": scan_path(dev),
            "kernel_isa": kernel_isa() if dev.type == "cpu" else "", "torch_threads": torch.get_num_threads(),
            "malloc": malloc_mode(), "dtype": "bf16 autocast" if dev.type == "cuda" else "float32"}

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
    return _libc() if current().keep_freed_memory else None


_KEPT = False


def keep_freed_memory() -> bool:
    """Serve all blocks from the heap and keep freed memory for reuse; True if applied."""
    global _KEPT
    libc = _glibc()
    _KEPT = _KEPT or bool(libc and libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _KEPT


def release_freed_memory() -> bool:
    """Return the heap's free memory to the OS (RSS drops to what is live); True if any was."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


def user_corpus_dir() -> str | None:
    """CORPUS=<folder>: a user's LJSpeech-style corpus instead of the shipped one (every target, notebook, test
    of a phase)."""
    return current().corpus
