"""Build (once, cached) and load the C++ CPU kernels in `csrc/`: the selective scan, its one-step
update, the fused causal depthwise convolution, and the codebook head's cross-entropy.

`cpu_ext()` returns the extension module, or None when it cannot be built (no compiler, no
ninja, or the runtime config's `cpu_kernel=False`, SSMTTS_NO_CPU_KERNEL=1); callers then use their
PyTorch fallbacks, which compute the same thing more slowly. `kernel_cflags`
(SSMTTS_CPU_KERNEL_CFLAGS) adds compiler flags (e.g. -mno-avx512f builds the 8-lane AVX2 code that
CPUs without AVX-512 run; the tests check both).
"""
from __future__ import annotations

import contextlib
import hashlib
import shlex
import warnings
from pathlib import Path

from ..runtime import current

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ["bindings.cpp", "selective_scan.cpp", "causal_conv.cpp", "group_xent.cpp"]
_EXT = None
_FAILED = False


def extension_name() -> tuple[str, list[str]]:
    """The cache name of this checkout's build with the current flags, and the flags."""
    flags = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]
    flags += shlex.split(current().kernel_cflags)
    # one cache entry per checkout and flags: torch rebuilds when a name points elsewhere
    key = f"{_CSRC.resolve()} {' '.join(flags)}"
    return "ssmtts_cpu_kernels_" + hashlib.sha1(key.encode()).hexdigest()[:8], flags


@contextlib.contextmanager
def _build_lock(name: str):
    """An OS-level lock around torch's build of `name`, released even if its holder is killed.

    torch marks a build in progress with a plain `lock` file in the build folder and waits for it
    to disappear; a build killed mid-way (Ctrl-C, a killed test run) leaves it behind and every
    later process then waits forever. Every build of these kernels goes through this flock first,
    so whoever holds the flock is the only possible builder: a `lock` file found then is stale.
    """
    try:
        import fcntl
    except ImportError:   # not POSIX: torch's own lock only
        yield
        return
    from torch.utils.cpp_extension import _get_build_directory
    folder = Path(_get_build_directory(name, False))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "ssmtts.flock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        stale = folder / "lock"
        if stale.exists():
            warnings.warn(f"removing {stale}, left by a kernel build that was killed")
            stale.unlink()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cpu_ext():
    """Compile (first call, ~1-2 min) or load the cached extension; None if it cannot be built."""
    global _EXT, _FAILED
    if _EXT is None and not _FAILED:
        if not current().cpu_kernel:
            _FAILED = True
            return None
        try:
            from torch.utils.cpp_extension import load
            # -fopenmp: at::parallel_for is OpenMP in torch's CPU builds and runs serially without
            # it; the extension then shares torch's libgomp (same soname), so one thread pool.
            name, flags = extension_name()
            with _build_lock(name):
                _EXT = load(name, [str(_CSRC / s) for s in _SOURCES], extra_cflags=flags,
                            extra_ldflags=["-fopenmp"], verbose=False)
        except Exception as e:  # no compiler / ninja: slower but correct
            _FAILED = True
            warnings.warn(f"CPU kernels unavailable ({type(e).__name__}: {e}); falling back to PyTorch "
                          "(mambapy's parallel scan, unfused convolution: slower, more memory)")
    return _EXT


def kernel_isa() -> str:
    """The vector instruction set the C++ kernels were compiled for ("none" when they are not in use)."""
    if cpu_ext() is None:
        return "none (PyTorch fallback)"
    import torch
    isa = torch.backends.cpu.get_cpu_capability()      # what -march=native gives on this CPU
    if "-mno-avx512f" in current().kernel_cflags and isa.startswith("AVX512"):
        isa = "AVX2 (-mno-avx512f)"
    return isa
