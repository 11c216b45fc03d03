"""Sequence-length scaling of one layer, forward + backward, measured side by side in one run.

Methods (same width d, expand E, d_state 16, batch 4):
  mamba-cpu     Mamba-1 layer with the C++ selective-scan kernel (ssmtts default on CPU)
  mamba-pscan   the same layer with mambapy's parallel scan
  mamba-ref     the same layer with the per-step reference loop (capped early: it is slow)
  mamba2-ssd    Mamba-2 layer, chunked SSD in PyTorch
  attention     causal multi-head attention (PyTorch SDPA), same width
  scan-cpu      (target points only) the selective scan alone, C++ kernel, on the layer's shapes
  scan-pscan    (target points only) the same with mambapy's pscan: with the layer times, how much
                of the layer is the scan, and what ratio to pscan a free scan would allow
Each (method, length) is timed as the median of `repeats` runs after one warm-up (one run
if the warm-up took over 5 s); a method
stops at the first length whose single run exceeds `--time-cap` seconds (recorded as
`capped`) or fails (e.g. out of memory). Each measurement runs in a fresh interpreter; peak
memory is its RSS sampled every 2 ms during the runs, minus the RSS just before them (layer
and input already allocated), so it is the working memory of forward + backward. Also: the machine's float32 matmul peak (GFLOP/s), each method's achieved
GFLOP/s from analytic FLOP counts, and per-frame generation cost versus position (Mamba
state update vs a KV-cache attention layer). First, the target points (d 512, E 2, L 1024 and
8192) are timed interleaved, each point in one fresh process, round by round (`targets.csv`): single timings on
this shared machine move by up to 50 % between runs. Every process keeps freed memory for
reuse (ssmtts.runtime, as training does); targets.csv also has the target points measured
without it (column `malloc`: kept / default, i.e. malloc as the environment sets it up: under
make, the Makefile's MALLOC_* settings).

    python benchmarks/scan_bench.py [--quick] [--out results/bench]     (make bench)
    python benchmarks/scan_bench.py --summarize                          (ratios.csv from scaling.csv)
    python benchmarks/scan_bench.py --targets-only                       (targets.csv only, ~2 min)
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from ssmtts.models.attention import Attention  # noqa: E402
from ssmtts.models.mamba import MambaLayer  # noqa: E402
from ssmtts.models.mamba2 import Mamba2Layer  # noqa: E402
from ssmtts.models.scan import selective_scan  # noqa: E402
from ssmtts.models.cpu_ext import cpu_ext  # noqa: E402
from ssmtts.runtime import keep_freed_memory  # noqa: E402
from ssmtts.train.results import atomic_write_csv, environment_row  # noqa: E402

N_STATE, BATCH = 16, 4


class PeakRSS:
    """Peak resident memory above the starting point, sampled in a background thread."""

    def __enter__(self):
        self.proc, self.stop = psutil.Process(), False
        self.base = self.peak = self.proc.memory_info().rss
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.stop = True
        self.t.join()
        self.mb = (self.peak - self.base) / 2**20


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / np.median(times) / 1e9


class ScanOnly(torch.nn.Module):
    """The selective scan of a Mamba layer (d, E) alone: its inputs are fixed leaves of the
    layer's shapes, made once per length, so a run times the scan's forward + backward only."""

    def __init__(self, d: int, d_inner: int):
        super().__init__()
        self.layer = MambaLayer(d, d_inner, N_STATE)   # A_log, D and dt bias as initialised there
        self.inputs = None

    def forward(self, x, scan_backend):
        Bsz, L, Din, N = x.shape[0], x.shape[1], self.layer.d_inner, N_STATE
        if self.inputs is None or self.inputs[0].shape[1] != L:
            g = torch.Generator().manual_seed(L)
            shapes = [(Bsz, L, Din), (Bsz, L, Din), (Bsz, L, N), (Bsz, L, N), (Bsz, L, Din)]   # u, dt, B, C, z
            self.inputs = [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]
        for t in self.inputs:
            t.grad = None
        u, dt, Bm, Cm, z = self.inputs
        A = -torch.exp(self.layer.A_log)
        return selective_scan(u, dt, A, Bm, Cm, self.layer.D, z=z, delta_bias=self.layer.dt_proj.bias,
                              backend=scan_backend)


def make_layer(method: str, d: int, expand: float):
    d_inner = int(round(d * expand))
    if method.startswith("scan-"):
        return ScanOnly(d, d_inner), method.split("-")[1]
    if method.startswith("mamba-"):
        return MambaLayer(d, d_inner, N_STATE), method.split("-")[1]
    if method == "mamba2-ssd":
        return Mamba2Layer(d, d_inner, N_STATE, head_dim=64 if d_inner % 64 == 0 else 32), None
    return Attention(d, n_heads=d // 64, causal=True), None


def flops_fwd_bwd(method: str, d: int, expand: float, L: int) -> float:
    """Analytic multiply-add FLOPs x 3 (backward ~ 2 x forward)."""
    di, B = int(round(d * expand)), BATCH
    if method == "attention":
        fwd = 2 * B * L * d * 4 * d + 2 * 2 * B * L * L * d / 2          # projections + causal QK^T, AV
    elif method == "mamba2-ssd":
        fwd = 2 * B * L * d * (2 * di + 2 * N_STATE + di // 64) + 2 * B * L * di * d + 2 * B * L * 64 * (di + N_STATE)
    else:
        R = -(-d // 16)
        fwd = 2 * B * L * (d * 2 * di + di * (R + 2 * N_STATE) + R * di + di * d) + 9 * B * L * di * N_STATE
    return 3 * fwd


def run_once(layer, backend, x):
    x = x.detach().requires_grad_(True)
    t = time.perf_counter()
    y, _ = layer(x, scan_backend=backend) if backend else layer(x)
    y.sum().backward()
    return time.perf_counter() - t


def measure_here(method, d, expand, L, repeats, time_cap) -> dict:
    """Time and peak memory of one configuration, in this (fresh) process."""
    torch.manual_seed(0)
    layer, backend = make_layer(method, d, expand)
    if backend == "cpu" and cpu_ext() is None:  # compile/load once, outside the timed runs
        raise RuntimeError("the CPU scan kernel could not be built")
    x = torch.randn(BATCH, L, d)
    with PeakRSS() as mem:
        first = run_once(layer, backend, x)
        n = 0 if first > time_cap else 1 if first > 5 else repeats  # long runs: one timed repeat
        times = [run_once(layer, backend, x) for _ in range(n)] or [first]
    return {"ms": 1000 * float(np.median(times)), "peak_mb": mem.mb, "capped": first > time_cap}


def measure(method, d, expand, L, repeats, time_cap) -> dict:
    """Run measure_here in a new interpreter: RSS then starts from a clean heap, so the peak
    reflects this configuration alone (the allocator keeps freed memory for reuse)."""
    cmd = [sys.executable, __file__, "--one", f"{method},{d},{expand},{L},{repeats},{time_cap}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600, 20 * time_cap))
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling(widths, lengths, methods, repeats, time_cap, ref_max_len):
    rows, stopped = [], set()
    for d, expand in widths:
        for L in lengths:
            for method in methods:
                key = (d, expand, method)
                row = {"d_model": d, "expand": expand, "length": L, "method": method, "batch": BATCH}
                if key in stopped or (method == "mamba-ref" and L > ref_max_len):
                    rows.append({**row, "status": "capped"})
                    continue
                r = measure(method, d, expand, L, repeats, time_cap)
                if "error" in r:  # e.g. out of memory: recorded, and the method stops growing
                    rows.append({**row, "status": "error: " + r["error"]})
                    stopped.add(key)
                    continue
                gf = flops_fwd_bwd(method, d, expand, L) / (r["ms"] / 1000) / 1e9
                rows.append({**row, "status": "ok", "ms": r["ms"], "peak_mb": r["peak_mb"], "gflops": gf})
                print(f"d={d} E={expand} L={L:6d} {method:12s} {r['ms']:10.1f} ms  {r['peak_mb']:8.1f} MB  {gf:6.1f} GFLOP/s", flush=True)
                if r["capped"]:
                    stopped.add(key)
    return pd.DataFrame(rows)


@torch.no_grad()
def generation(d, expand, max_pos, probes):
    """ms per generated frame at each probe position: Mamba's one-frame state update (`mamba-step`,
    what generation uses), the same layer through the scan kernel with L = 1 (`mamba-cpu`), and
    attention with a KV cache."""
    rows = []
    for method in ("mamba-step", "mamba-cpu", "attention"):
        torch.manual_seed(0)
        layer, backend = make_layer(method, d, expand)
        x = torch.randn(1, 1, d)
        state = layer.allocate_state(1)
        samples = {}
        for pos in range(max_pos):
            t = time.perf_counter()
            if method == "mamba-step":
                _, state = layer.step(x, state)
            else:
                _, state = layer(x, state, scan_backend=backend) if backend else layer(x, state)
            dt = time.perf_counter() - t
            for p in probes:
                if p <= pos < p + 32:
                    samples.setdefault(p, []).append(dt)
        for p, v in samples.items():
            rows.append({"method": method, "d_model": d, "expand": expand, "position": p, "ms_per_frame": 1000 * np.median(v)})
    return pd.DataFrame(rows)


# The targets, at d = 512, E = 2: Mamba (C++ kernel) vs attention at 1024 and 8192 frames,
# and vs mambapy's pscan at 1024; there also the scan alone, both ways (what bounds the pscan ratio).
TARGETS = [(512, 2.0, 1024, ["mamba-cpu", "attention", "mamba-pscan", "scan-cpu", "scan-pscan"], 9),
           (512, 2.0, 8192, ["mamba-cpu", "attention"], 4)]


def interleaved(targets, quick: bool = False) -> pd.DataFrame:
    """The target ratios, measured robustly against machine noise: all methods of a point are
    built in one fresh process (what an earlier point allocated does not linger in the heap),
    warmed up, then timed in alternation (A B C A B C ...), so a slow spell on the shared
    machine hits every method alike; each round gives its own ratios."""
    frames = []
    for i in range(len(targets)):
        cmd = [sys.executable, __file__, "--target-point", str(i)] + ["--quick"] * quick
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
        print(out.stderr.strip(), flush=True)
        frames.append(pd.read_json(io.StringIO(out.stdout.strip().splitlines()[-1]), orient="records"))
    return pd.concat(frames, ignore_index=True)


def interleaved_here(targets) -> pd.DataFrame:
    rows = []
    for d, expand, L, methods, rounds in targets:
        torch.manual_seed(0)
        x = torch.randn(BATCH, L, d)
        layers = {m: make_layer(m, d, expand) for m in methods}
        for layer, backend in layers.values():
            run_once(layer, backend, x)
        for r in range(rounds):
            ms = {m: 1000 * run_once(layer, backend, x) for m, (layer, backend) in layers.items()}
            for m in methods:
                rows.append({"d_model": d, "expand": expand, "length": L, "round": r, "method": m, "ms": ms[m],
                             "over_mamba_cpu": ms[m] / ms["mamba-cpu"]})
            print(f"d={d} E={expand} L={L:6d} round {r}: " +
                  "  ".join(f"{m} {ms[m]:.0f} ms" for m in methods), file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def target_summary(tg: pd.DataFrame) -> pd.DataFrame:
    """Median (min, max) over rounds of each ratio at the target points: every method / the
    Mamba layer with the C++ kernel (for scan-cpu: the scan's share of that layer); where the scan
    alone was timed both ways, pscan / kernel on the scan alone, and `pscan_layer_over_scan_free_layer`: the pscan
    layer / the kernel's layer minus its scan, i.e. the most any scan kernel could give there."""
    wide = tg.pivot_table(index=["malloc", "d_model", "expand", "length", "round"], columns="method", values="ms")
    out = wide.div(wide["mamba-cpu"], axis=0).drop(columns="mamba-cpu").add_suffix("_over_mamba_cpu")
    if {"scan-cpu", "scan-pscan", "mamba-pscan"} <= set(wide.columns):
        out["scan_pscan_over_scan_cpu"] = wide["scan-pscan"] / wide["scan-cpu"]
        out["pscan_layer_over_scan_free_layer"] = wide["mamba-pscan"] / (wide["mamba-cpu"] - wide["scan-cpu"])
    long = out.reset_index().melt(id_vars=wide.index.names, var_name="ratio").dropna()
    return long.groupby(["malloc", "d_model", "expand", "length", "ratio"]).value.describe()[["min", "50%", "max"]] \
        .rename(columns={"50%": "median"})


def slopes(df: pd.DataFrame, value: str) -> pd.DataFrame:
    out = []
    for (d, e, m), g in df[df.status == "ok"].groupby(["d_model", "expand", "method"]):
        g = g[g.length >= 1024] if (g.length >= 1024).sum() >= 2 else g
        if len(g) >= 2 and (g[value] > 0).all():
            out.append({"d_model": d, "expand": e, "method": m, f"slope_{value}": np.polyfit(np.log(g.length), np.log(g[value]), 1)[0]})
    return pd.DataFrame(out)


def ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Side-by-side ratios from one run: time of each method / time of mamba-cpu, per width and length."""
    ok = df[df.status == "ok"].pivot_table(index=["d_model", "expand", "length"], columns="method", values="ms")
    out = ok.div(ok["mamba-cpu"], axis=0).drop(columns="mamba-cpu")
    out.columns = [f"{m}_over_mamba_cpu" for m in out.columns]
    return out.reset_index()


def plot(df, gen, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    ok = df[df.status == "ok"].assign(config=lambda t: "d=" + t.d_model.astype(str) + " E=" + t.expand.astype(str))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    sns.lineplot(data=ok, x="length", y="ms", hue="method", style="config", marker="o", ax=axes[0])
    sns.lineplot(data=ok[ok.peak_mb > 0], x="length", y="peak_mb", hue="method", style="config", marker="o", ax=axes[1])
    sns.lineplot(data=gen, x="position", y="ms_per_frame", hue="method", marker="o", ax=axes[2])
    for ax, title in zip(axes, ["fwd+bwd time (ms), batch 4", "peak RSS above baseline (MB)", "generation: ms per frame"]):
        ax.set(xscale="log", yscale="log", title=title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (tests / CI)")
    ap.add_argument("--time-cap", type=float, default=30.0)
    ap.add_argument("--summarize", action="store_true", help="only recompute ratios.csv from scaling.csv in --out")
    ap.add_argument("--targets-only", action="store_true", help="only the interleaved target ratios (targets.csv)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: method,d,expand,L,repeats,cap
    ap.add_argument("--target-point", type=int, help=argparse.SUPPRESS)  # internal: index into the targets
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    malloc = "kept" if keep_freed_memory() else "default"   # ssmtts.runtime; every method alike
    targets = [(64, 1.5, 64, TARGETS[0][3], 1)] if a.quick else TARGETS
    if a.one:
        m, d, e, L, rep, cap = a.one.split(",")
        print(json.dumps(measure_here(m, int(d), float(e), int(L), int(rep), float(cap))))
        return
    if a.target_point is not None:
        print(interleaved_here([targets[a.target_point]]).to_json(orient="records"))
        return
    methods = ["mamba-cpu", "mamba-pscan", "mamba-ref", "mamba2-ssd", "attention"]
    if a.quick:
        widths, lengths, probes, max_pos, repeats, ref_max = [(64, 1.5)], [64, 128], [1, 8, 64], 96, 1, 128
    else:
        widths = [(256, 1.5), (512, 2.0)]
        lengths = [256, 512, 1024, 2048, 4096, 8192, 16384]
        probes, max_pos, repeats, ref_max = [1, 8, 64, 512, 2048, 8160], 8192, 5, 1024
    out = Path(a.out)
    if a.summarize:
        r = ratios(pd.read_csv(out / "scaling.csv"))
        atomic_write_csv(r, out / "ratios.csv")
        print(r.to_markdown(index=False, floatfmt=".2f"))
        return
    out.mkdir(parents=True, exist_ok=True)
    env = environment_row("cpu")
    tg = interleaved(targets, a.quick).assign(**{**env, "malloc": malloc})   # this pass's malloc label
    if malloc == "kept":   # the same points in a child process without ssmtts.runtime's setting
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, __file__, "--targets-only", "--out", tmp] + ["--quick"] * a.quick,
                           env={**os.environ, "SSMTTS_KEEP_FREED_MEMORY": "0"}, check=True)
            tg = pd.concat([tg, pd.read_csv(Path(tmp) / "targets.csv")], ignore_index=True)
    atomic_write_csv(tg, out / "targets.csv")
    summary = target_summary(tg)
    atomic_write_csv(summary.reset_index(), out / "target_ratios.csv")
    print(summary.to_string())
    if a.targets_only:
        return
    peak = matmul_peak_gflops(512 if a.quick else 2048)
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s")
    df = scaling(widths, lengths, methods, repeats, a.time_cap, ref_max).assign(matmul_peak_gflops=peak, **env)
    df["share_of_peak"] = df["gflops"] / peak
    atomic_write_csv(df, out / "scaling.csv")
    gen = generation(*widths[-1], max_pos, probes).assign(**env)
    atomic_write_csv(gen, out / "generation.csv")
    sl = slopes(df, "ms").merge(slopes(df, "peak_mb"), how="outer")
    atomic_write_csv(sl, out / "slopes.csv")
    atomic_write_csv(ratios(df), out / "ratios.csv")
    plot(df, gen, out / "scaling.png")
    print(sl.to_string(index=False))
    print(gen.pivot_table(index="position", columns="method", values="ms_per_frame").to_string())


if __name__ == "__main__":
    main()
