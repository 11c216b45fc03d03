"""Where a training step and an evaluation spend their time, per backbone, at a phase's cpu shape.

    python benchmarks/profile_step.py [--shape phase1|phase3] [--out results/bench]

For each backbone (the phase's model with its mixer swapped, as in train_bench.py): three warm-up
steps, then the torch profiler over three training steps exactly as run_training takes them
(forward to the decoder states, fused head + loss, backward, clipping, fused AdamW) and over one
evaluation of 12 validation utterances. Writes profile_step_<shape>.txt: per backbone, the
operators by self time and the share of four groups (matrix products, the codebook head's
cross-entropy kernel, the Mamba/conv C++ kernels, everything else).
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

GROUPS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
          "head CE kernel": ("_FusedHeadCE",),
          "C++ scan/conv": ("_CpuScan", "_CpuScanBackward", "_CpuCausalConv", "_CpuCausalConvBackward")}


def table(prof, rows: int = 15) -> str:
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    shares = {g: sum(e.self_cpu_time_total for e in ev if e.key in names) / total for g, names in GROUPS.items()}
    shares["everything else"] = 1 - sum(shares.values())
    head = "  ".join(f"{g} {100 * v:.0f} %" for g, v in shares.items())
    return head + "\n" + ev.table(sort_by="self_cpu_time_total", row_limit=rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="phase1", choices=["phase1", "phase3"])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--out", default="results/bench")
    a = ap.parse_args()
    from train_bench import shape_configs
    from ssmtts.corpus.build import build_corpus
    from ssmtts.models import TTSModel
    from ssmtts.runtime import keep_freed_memory
    from ssmtts.train.data import train_batch
    from ssmtts.train.loop import evaluate, train_step
    import os
    keep_freed_memory()
    corpus = build_corpus(codec=os.environ.get("CODEC", "auto"))
    train, val = corpus.split("train"), corpus.split("val")
    out = io.StringIO()
    print(f"# {a.shape} cpu shape, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
          f"# command: python benchmarks/profile_step.py --shape {a.shape}\n", file=out)
    for label, mc, tc in shape_configs(a.shape, a.profile):
        torch.manual_seed(0)
        model = TTSModel(mc)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True)

        def step(s):
            train_step(model, opt, train_batch(train, tc.batch_size, 0, s, mc.style_frames, tc.crop_frames, train),
                       tc, "cpu")

        for s in range(3):
            step(s)
        t = time.perf_counter()
        with profile() as prof:
            for s in range(3, 6):
                step(s)
        step_ms = (time.perf_counter() - t) / 3 * 1000
        print(f"## {label} ({mc.name} @ H{mc.d_model}, batch {tc.batch_size} x {tc.crop_frames} frames): "
              f"training step, {step_ms:.0f} ms under the profiler\n" + table(prof), file=out)
        t = time.perf_counter()
        with profile() as prof:
            evaluate(model, val[:12], train, replace(tc, eval_val_items=12), "cpu")
        print(f"## {label}: one evaluation of 12 validation utterances, {1000 * (time.perf_counter() - t):.0f} ms "
              f"under the profiler\n" + table(prof, 10), file=out)
        print(f"{label}: step {step_ms:.0f} ms", flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"profile_step_{a.shape}.txt").write_text(out.getvalue())


if __name__ == "__main__":
    main()
