"""`make gpu-check`'s logic on the CPU (the GPU run itself needs CUDA): without CUDA it says so and exits 0."""
import subprocess
import sys

import pytest
import torch

from ssmtts import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the full check would run")
def test_without_cuda_one_line_and_exit_0(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ssmtts.gpu_check", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().count("\n") == 0 and "no CUDA device" in out.stdout
    assert not any(tmp_path.iterdir())


def test_scan_agreement_finds_the_cpu_kernel_and_pscan_at_float32_rounding():
    df = gpu_check.scan_agreement("cpu", backends=("cpu", "pscan"), L=64, D=16, N=8)
    assert set(df.backend) == {"cpu", "pscan"} and set(df.initial_state) == {False, True}
    errs = df.filter(like="err_")
    assert errs.shape[1] == 9 and (errs < 1e-4).all().all() and (errs >= 0).all().all()


def test_scan_agreement_would_catch_a_wrong_backend(monkeypatch):
    """A backend that is off by a little must show up in the errors, or the check proves nothing."""
    from ssmtts.models import scan
    real = scan.selective_scan

    def wrong(*a, **k):
        y, last = real(*a, **k)
        return y * 1.01, last
    monkeypatch.setattr(scan, "selective_scan", wrong)
    df = gpu_check.scan_agreement("cpu", backends=("cpu",), L=32, D=8, N=4)
    assert (df.err_y > 5e-3).all()


def test_generation_agreement_and_training_timing_rows(corpus):
    gen = gpu_check.generation_agreement("cpu", frames=24)
    assert set(gen.backbone) == {"mamba", "hybrid", "transformer"} and (gen.argmax_agreement == 1.0).all()
    from ssmtts.phases import phase1
    models, trains = phase1("smoke")
    jobs = [(label, mc, trains["heldout"]) for label, mc in models]
    t = gpu_check.train_timing("cpu", jobs, corpus, steps=2, warmup=1, rounds=2)
    assert len(t) == 4 and list(t.label[:2]) == ["transformer", "hybrid"] and list(t.label[2:]) == ["hybrid", "transformer"]
    assert (t[["fwd_ms", "bwd_ms", "opt_ms", "step_ms"]] > 0).all().all() and (t.autocast == "none").all()


def test_the_paper_jobs_are_phase1_and_l4_h768_at_paper_size():
    jobs = gpu_check.paper_models()
    assert [j[0] for j in jobs] == ["phase1 transformer", "phase1 hybrid", "phase3 L4_H768_E1.5"]
    assert jobs[2][1].d_model == 768 and jobs[0][1].d_model == 256
