"""ssmtts.runtime: the runtime config (defaults from the environment, recorded in rows); freed memory kept
for reuse, and handed back on request (glibc only)."""
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ssmtts import runtime
from ssmtts.runtime import _glibc

# In a child process: the settings are process-wide and must not leak into the test session.
PROBE = """
import json, psutil, torch
from ssmtts.runtime import keep_freed_memory, release_freed_memory
rss = lambda: psutil.Process().memory_info().rss / 2**20
applied = keep_freed_memory()
base = rss()
x = torch.ones(2**24)   # 64 MiB, every page touched
del x
after_free = rss() - base
released = release_freed_memory()
print(json.dumps({"applied": applied, "after_free": after_free, "after_trim": rss() - base, "released": released}))
"""


def probe(**env) -> dict:
    # glibc's own defaults: without the Makefile's MALLOC_* settings (a padded heap top would
    # serve the 64 MiB block from the heap whatever ssmtts.runtime does)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="malloc is not glibc's")
def test_freed_tensor_memory_is_kept_then_released():
    r = probe()
    assert r["applied"] and r["released"]
    assert r["after_free"] > 48, r          # the 64 MiB stay in the heap for the next tensor
    assert r["after_trim"] < 16, r          # malloc_trim hands them back


@pytest.mark.skipif(_glibc() is None, reason="malloc is not glibc's")
def test_switched_off_leaves_glibc_default():
    r = probe(SSMTTS_KEEP_FREED_MEMORY="0")
    assert not r["applied"]
    assert r["after_free"] < 16, r          # glibc mapped the block itself and unmapped it on free


def test_a_build_lock_left_by_a_killed_build_does_not_hang_the_next_process():
    """torch waits forever on the `lock` file of a build that was killed mid-way; ours is removed under an
    OS-level lock that dies with its holder (models/cpu_ext.py)."""
    from torch.utils.cpp_extension import _get_build_directory
    from ssmtts.models.cpu_ext import cpu_ext, extension_name
    if cpu_ext() is None:
        pytest.skip("C++ kernels not built")
    folder = _get_build_directory(extension_name()[0], False)
    open(os.path.join(folder, "lock"), "w").close()          # what a killed build leaves
    out = subprocess.run([sys.executable, "-c", "from ssmtts.models.cpu_ext import cpu_ext; print(cpu_ext() is not None)"],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True" and "left by a kernel build that was killed" in out.stderr
    assert not os.path.exists(os.path.join(folder, "lock"))


def test_every_result_row_names_the_scan_path_that_ran(monkeypatch):
    """A silent fallback to a slower path would otherwise reach the claims table unnoticed."""
    from ssmtts.models.cpu_ext import cpu_ext
    from ssmtts.models.scan import scan_path
    from ssmtts.train.results import environment_row
    expected = "cpu (C++ kernel)" if cpu_ext() is not None else "pscan (fallback: no C++ kernel)"
    row = environment_row("cpu")
    assert row["scan_path"] == expected and row["scan_backend"] == "auto" and row["dtype"] == "float32"
    assert row["kernel_isa"] and row["malloc"] and row["torch_threads"] >= 1
    monkeypatch.setattr(runtime, "_CURRENT", replace(runtime.current(), scan_backend="pscan"))
    assert scan_path("cpu") == "pscan (forced by the runtime config)"
    assert environment_row("cpu")["scan_backend"] == "pscan"


def test_the_runtime_config_reads_its_defaults_from_the_environment_and_checks_them():
    cfg = runtime.RuntimeConfig.from_env({"SSMTTS_SCAN_BACKEND": "pscan", "SSMTTS_NO_CPU_KERNEL": "1", "SSMTTS_THREADS": "3",
                                          "CODEC": "melkmeans", "SSMTTS_NO_DOWNLOAD": "1", "CORPUS": "/x"})
    assert (cfg.scan_backend, cfg.cpu_kernel, cfg.threads, cfg.codec, cfg.allow_download, cfg.corpus) == \
        ("pscan", False, 3, "melkmeans", False, "/x")
    assert runtime.RuntimeConfig.from_env(cfg.to_env()) == cfg                      # a child process gets the same
    assert runtime.RuntimeConfig.from_env({}) == runtime.RuntimeConfig()
    with pytest.raises(ValueError, match="unknown scan backend 'fast'"):
        runtime.RuntimeConfig(scan_backend="fast")
    with pytest.raises(ValueError, match="unknown codec"):
        runtime.RuntimeConfig.from_env({"CODEC": "mp3"})


def test_a_forced_scan_backend_is_the_one_that_runs(monkeypatch):
    """configure(scan_backend=...) reaches the layers: the forced pscan gives the kernel's numbers by another path."""
    import torch

    from ssmtts.models.mamba import MambaLayer
    torch.manual_seed(0)
    layer, x = MambaLayer(16, 24).eval(), torch.randn(2, 20, 16)
    with torch.no_grad():
        auto, _ = layer(x)
        monkeypatch.setattr(runtime, "_CURRENT", replace(runtime.current(), scan_backend="pscan"))
        forced, _ = layer(x)
    torch.testing.assert_close(auto, forced, atol=1e-5, rtol=1e-4)


def test_no_switch_is_read_outside_the_runtime_config_and_no_mode_is_guessed():
    """The package reads environment variables in ssmtts/runtime.py only; models dispatch on no grad mode."""
    src = Path(__file__).resolve().parents[1] / "src" / "ssmtts"
    readers = [p.relative_to(src).as_posix() for p in src.rglob("*.py")
               if re.search(r"os\.environ|os\.getenv", p.read_text()) and p.name != "runtime.py"]
    assert readers == []
    assert not [p.name for p in (src / "models").glob("*.py") if "is_grad_enabled" in p.read_text()]
