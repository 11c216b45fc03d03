"""Where one Mamba layer's forward + backward time goes, by operator (torch profiler, CPU).

    python benchmarks/profile_layer.py [--length 8192] [--d-model 512] [--expand 2.0]

Batch 4, d_state 16, as in scan_bench.py; two warm-up runs, then one profiled run. Prints the
profiler table and the split into matmuls (aten::mm, aten::addmm) and everything else.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from ssmtts.models.mamba import MambaLayer  # noqa: E402
from ssmtts.runtime import keep_freed_memory  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--expand", type=float, default=2.0)
    a = ap.parse_args()
    keep_freed_memory()   # as training and scan_bench.py do (ssmtts.runtime)
    torch.manual_seed(0)
    layer = MambaLayer(a.d_model, int(round(a.d_model * a.expand)), 16)
    x = torch.randn(4, a.length, a.d_model, requires_grad=True)

    def run():
        y, _ = layer(x)
        y.sum().backward()

    for _ in range(2):   # warm-up: with freed memory kept, the heap reaches its steady size on run 2
        run()
    with torch.autograd.profiler.profile() as prof:
        run()
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    mm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm")) / 1e3
    print(f"L={a.length} d={a.d_model} E={a.expand}: total {total:.0f} ms, matmuls {mm:.0f} ms, "
          f"everything else {total - mm:.0f} ms")


if __name__ == "__main__":
    main()
