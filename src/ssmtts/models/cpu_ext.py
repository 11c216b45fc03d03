"""Build (once, cached) and load the C++ CPU kernels in `csrc/`: the selective scan, its one-step
update, the fused causal depthwise convolution, and the codebook head's cross-entropy.

`cpu_ext()` returns the extension module, or None when it cannot be built (no compiler, no
ninja, or SSMTTS_NO_CPU_KERNEL=1); callers then use their PyTorch fallbacks, which compute
the same thing more slowly. SSMTTS_CPU_KERNEL_CFLAGS adds compiler flags (e.g. -mno-avx512f
builds the 8-lane AVX2 code that CPUs without AVX-512 run; the tests check both).
"""
from __future__ import annotations

import hashlib
import os
import shlex
import warnings
from pathlib import Path

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ["bindings.cpp", "selective_scan.cpp", "causal_conv.cpp", "group_xent.cpp"]
_EXT = None
_FAILED = False


def cpu_ext():
    """Compile (first call, ~1-2 min) or load the cached extension; None if it cannot be built."""
    global _EXT, _FAILED
    if _EXT is None and not _FAILED:
        if os.environ.get("SSMTTS_NO_CPU_KERNEL") == "1":
            _FAILED = True
            return None
        try:
            from torch.utils.cpp_extension import load
            # -fopenmp: at::parallel_for is OpenMP in torch's CPU builds and runs serially without
            # it; the extension then shares torch's libgomp (same soname), so one thread pool.
            flags = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]
            flags += shlex.split(os.environ.get("SSMTTS_CPU_KERNEL_CFLAGS", ""))
            # one cache entry per checkout and flags: torch rebuilds when a name points elsewhere
            key = f"{_CSRC.resolve()} {' '.join(flags)}"
            name = "ssmtts_cpu_kernels_" + hashlib.sha1(key.encode()).hexdigest()[:8]
            _EXT = load(name, [str(_CSRC / s) for s in _SOURCES], extra_cflags=flags,
                        extra_ldflags=["-fopenmp"], verbose=False)
        except Exception as e:  # no compiler / ninja: slower but correct
            _FAILED = True
            warnings.warn(f"CPU kernels unavailable ({type(e).__name__}: {e}); falling back to PyTorch "
                          "(mambapy's parallel scan, unfused convolution: slower, more memory)")
    return _EXT
