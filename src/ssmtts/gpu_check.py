"""`make gpu-check`: the CUDA path on real hardware, in one script (about 5 minutes on one GPU; installs nothing).

Without CUDA it says so in one line and exits 0 (CI runs it that way). With CUDA it writes
results/gpu/ (device, versions, and):

    scan.csv       the selective scan on CUDA (mamba-ssm's fused kernel when importable, else the PyTorch
                   parallel scan; column `backend` says which ran) and the CPU kernel against the float64
                   reference: max |error| of y, the last state and every gradient, with and without an
                   initial state (the fused kernel takes none: those rows run the parallel scan)
    generation.csv one-frame generation on CUDA (state carried frame by frame, fed its own tokens) against
                   the teacher-forced pass over the same tokens: share of frames whose argmax agrees
    train.csv      training-step time (fwd, bwd, opt; median after warm-up), its spread, and CUDA peak
                   allocated memory of a step, under bf16 autocast as run_training uses it: Phase 1 at
                   paper size (Transformer vs hybrid: the seeds' 17.22 vs 11.07 ms/step, 224 vs 183 MB were
                   GPU numbers) and the paper-size L4_H768_E1.5 pure Mamba; configurations interleaved

Every function takes the device, so the logic runs on the CPU in the tests.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def scan_agreement(device: str, backends=("auto",), B: int = 2, L: int = 256, D: int = 64, N: int = 16,
                   seed: int = 0) -> pd.DataFrame:
    """Max |error| of each backend's y, last state and gradients against the float64 reference."""
    from .models.scan import pick_backend, selective_scan, selective_scan_ref
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g)
    base = {"u": rnd(B, L, D), "delta": rnd(B, L, D) * 0.5, "A": -torch.rand(D, N, generator=g) - 0.5,
            "Bm": rnd(B, L, N), "Cm": rnd(B, L, N), "Dskip": rnd(D), "z": rnd(B, L, D), "delta_bias": rnd(D) * 0.1}
    rows = []
    for with_h0 in (False, True):
        h0 = rnd(B, D, N) * 0.1 if with_h0 else None

        def run(backend, dev, dtype):
            t = {k: v.detach().to(dev, dtype).clone().requires_grad_(k != "delta_bias") for k, v in base.items()}
            h = h0.to(dev, dtype) if h0 is not None else None
            y, last = selective_scan(**t, h0=h, backend=backend) if backend != "ref" else \
                selective_scan_ref(**t, h0=h)
            (y.float().square().mean() + last.float().square().mean()).backward()
            return {"y": y.detach().cpu().double(), "last": last.detach().cpu().double(),
                    **{f"d{k}": t[k].grad.cpu().double() for k in ("u", "delta", "A", "Bm", "Cm", "Dskip", "z")}}
        ref = run("ref", "cpu", torch.float64)
        for backend in backends:
            used = pick_backend(torch.device(device), with_h0) if backend == "auto" else backend
            out = run(used, device, torch.float32)
            rows.append({"device": device, "backend": used, "initial_state": with_h0,
                         **{f"err_{k}": float((out[k] - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-12))
                            for k in ref}})
    return pd.DataFrame(rows)


def generation_agreement(device: str, frames: int = 120, seed: int = 0) -> pd.DataFrame:
    """Greedy one-frame generation on `device` vs the teacher-forced pass over its own tokens, per backbone."""
    from .models import ModelConfig, TTSModel
    from .models.generate import generate
    rows = []
    for backbone in ("mamba", "hybrid", "transformer"):
        torch.manual_seed(seed)
        mc = ModelConfig(backbone=backbone, n_layers=2, n_enc_layers=1, d_model=64, n_heads=2, expand=1.5,
                         decoder_input="prev_codes", decoder_causal=True)
        model = TTSModel(mc).to(device).eval()
        ids = torch.randint(1, mc.vocab_size, (12,))
        dur = torch.full((12,), frames // 12)
        ref = torch.randint(0, mc.codebook_size, (mc.n_codebooks, mc.style_frames))
        t0 = time.perf_counter()
        gen = generate(model, ids.numpy(), ref.numpy(), durations=dur.numpy())
        ms = 1000 * (time.perf_counter() - t0) / gen.n_frames
        with torch.no_grad():
            codes = torch.from_numpy(gen.codes)[None].to(device)
            logits, _ = model(ids[None].to(device), dur[None].to(device), codes, ref[None].to(device))
        agree = float((logits[0].argmax(-1).T.cpu().numpy() == gen.codes).mean())
        rows.append({"device": device, "backbone": backbone, "frames": gen.n_frames, "argmax_agreement": agree,
                     "ms_per_frame": ms})
    return pd.DataFrame(rows)


def paper_models():
    """(label, ModelConfig, TrainConfig) of the check's training timings: Phase 1 and L4_H768_E1.5 at paper size."""
    from .phases import phase1, phase3
    m1, t1 = phase1("paper")
    m3, t3 = phase3("paper")
    return [(f"phase1 {label}", mc, t1["heldout"]) for label, mc in m1] + \
           [(f"phase3 {label}", mc, t3["heldout"]) for label, mc in m3 if label == "L4_H768_E1.5"]


def train_timing(device: str, jobs, corpus, steps: int = 20, warmup: int = 5, rounds: int = 3,
                 frames: int | None = 512) -> pd.DataFrame:
    """Training steps of each (label, ModelConfig, TrainConfig) as run_training takes them (bf16 autocast on CUDA),
    configurations interleaved round by round; per round the medians and the peak memory of a step."""
    from .models import TTSModel
    from .train.data import train_batch
    from .train.loop import train_step
    train = corpus.split("train")
    dev = torch.device(device)
    rows = []
    for rnd in range(rounds):
        for label, mc, tc in (jobs if rnd % 2 == 0 else jobs[::-1]):
            tc = replace(tc, crop_frames=tc.crop_frames or frames)   # paper runs decode whole utterances: a fixed crop
            torch.manual_seed(0)
            model = TTSModel(mc).to(dev)
            opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
            batches = [train_batch(train, tc.batch_size, 0, s, mc.style_frames, tc.crop_frames, train).to(dev)
                       for s in range(warmup + steps)]
            if dev.type == "cuda":
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for i, b in enumerate(batches):
                out = train_step(model, opt, b, tc, dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t3 = time.perf_counter()
                if i >= warmup:
                    times.append((out["t1"] - out["t0"], out["t2"] - out["t1"], t3 - out["t2"], t3 - out["t0"]))
            t = 1000 * np.array(times)
            med = np.median(t, axis=0)
            rows.append({"device": device, "label": label, "config": mc.name, "round": rnd,
                         "params_total": sum(p.numel() for p in model.parameters()),
                         "batch_size": tc.batch_size, "crop_frames": tc.crop_frames,
                         "autocast": "bf16" if dev.type == "cuda" else "none",
                         "fwd_ms": med[0], "bwd_ms": med[1], "opt_ms": med[2], "step_ms": med[3],
                         "step_ms_iqr": float(np.subtract(*np.percentile(t[:, 3], [75, 25]))),
                         "peak_mb": (torch.cuda.max_memory_allocated() - before) / 2**20 if dev.type == "cuda" else np.nan})
            del model, opt, batches
    return pd.DataFrame(rows)


def versions(device: str) -> dict:
    from .models.scan import cuda_kernels_available
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "mamba_ssm_fused": cuda_kernels_available()}
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
        try:
            import mamba_ssm
            info["mamba_ssm"] = mamba_ssm.__version__
        except ImportError:
            info["mamba_ssm"] = "not installed"
    return info


def main(argv=None) -> int:
    import argparse

    from .files import atomic_write_bytes
    from .train.results import atomic_write_csv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/gpu")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}); nothing to check")
        return 0
    from .corpus.build import build_corpus
    out = Path(a.out)
    info = versions("cuda")
    print("gpu-check:", json.dumps(info))
    scan = scan_agreement("cuda", backends=("auto", "pscan"))
    cpu = scan_agreement("cpu", backends=("cpu",))
    atomic_write_csv(pd.concat([scan, cpu], ignore_index=True), out / "scan.csv")
    print(pd.concat([scan, cpu]).round(8).to_string(index=False))
    gen = generation_agreement("cuda")
    atomic_write_csv(gen, out / "generation.csv")
    print(gen.round(4).to_string(index=False))
    train = train_timing("cuda", paper_models(), build_corpus(), rounds=a.rounds)
    atomic_write_csv(train, out / "train.csv")
    print(train.groupby("label", sort=False)[["step_ms", "fwd_ms", "bwd_ms", "peak_mb"]].median().round(2).to_string())
    atomic_write_bytes(out / "versions.json", (json.dumps(info, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
