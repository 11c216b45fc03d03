"""The CPU selective-scan kernel and the parallel scan against independent references."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssmtts.models.mamba import MambaLayer
from ssmtts.models.cpu_ext import cpu_ext
from ssmtts.models.scan import selective_scan, selective_scan_ref, selective_state_update

NAMES = "u delta A B C D z delta_bias h0".split()


def make_inputs(Bsz, L, D, N, seed=0, with_z=True, with_h0=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    return [r(Bsz, L, D), r(Bsz, L, D) * 0.5 - 1, -torch.rand(D, N, generator=g, dtype=torch.float64) * 4 - 0.5,
            r(Bsz, L, N), r(Bsz, L, N), r(D), r(Bsz, L, D) if with_z else None, r(D) * 0.1,
            r(Bsz, D, N) if with_h0 else None]


def grads(backend, args64, dtype):
    args = [a.detach().to(dtype).requires_grad_(True) if a is not None else None for a in args64]
    y, h = selective_scan(*args, backend=backend)
    # a loss that weights every output and the final state differently
    w = torch.linspace(-1, 1, y.numel(), dtype=dtype).view_as(y)
    (y * w).sum().add((h ** 2).sum()).backward()
    return y.double(), h.double(), [a.grad.double() if a is not None else None for a in args]


@pytest.mark.parametrize("backend", ["cpu", "pscan"])
@pytest.mark.parametrize("L", [1, 63, 64, 65, 131])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_matches_float64_reference(backend, L, with_h0):
    if backend == "cpu" and cpu_ext() is None:
        pytest.skip("no C++ compiler: CPU kernel not built")
    args = make_inputs(2, L, 24, 16, seed=L, with_h0=with_h0)
    y0, h0, g0 = grads("ref", args, torch.float64)
    y1, h1, g1 = grads(backend, args, torch.float32)
    assert torch.allclose(y1, y0, rtol=1e-4, atol=1e-4 * y0.abs().max().item())
    assert torch.allclose(h1, h0, rtol=1e-4, atol=1e-4 * h0.abs().max().item())
    for name, a, b in zip(NAMES, g1, g0):
        if b is None:
            continue
        rel = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()  # dA is exactly 0 when L=1 and no h0
        assert rel < 1e-4, f"{backend} d{name}: relative error {rel:.2e}"


needs_kernel = pytest.mark.skipif(cpu_ext() is None, reason="no C++ compiler: CPU kernel not built")


@needs_kernel
def test_kernel_with_ragged_channels_several_groups_and_extreme_inputs():
    """262 channels = 16 full lane blocks of 16 (32 of 8) and a 6-lane one, i.e. three backward
    groups of 8 blocks or more (dB, dC summed across them); delta from -30 to 30 (softplus' linear and exponential ends) and A down to -80
    (exp(dt A) underflows): the inline exp/softplus/sigmoid must hold float32 accuracy there too."""
    args = make_inputs(2, 37, 262, 16, seed=3)
    args[1] = torch.linspace(-30, 30, args[1].numel(), dtype=torch.float64).view_as(args[1])
    args[2] = args[2] * 20
    y0, h0, g0 = grads("ref", args, torch.float64)
    y1, h1, g1 = grads("cpu", args, torch.float32)
    assert torch.allclose(y1, y0, rtol=1e-4, atol=1e-4 * y0.abs().max().item())
    assert torch.allclose(h1, h0, rtol=1e-4, atol=1e-4 * h0.abs().max().item())
    for name, a, b in zip(NAMES, g1, g0):
        rel = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        assert rel < 1e-4, f"d{name}: relative error {rel:.2e}"


@needs_kernel
def test_kernel_gives_identical_bits_with_one_and_two_threads():
    """Work is split across threads (OpenMP); every reduction has a fixed order, so the result
    must not depend on the thread count."""
    args = make_inputs(3, 600, 80, 16, seed=5)   # long enough that the work is split across threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1, h1, g1 = grads("cpu", args, torch.float32)
        torch.set_num_threads(2)
        y2, h2, g2 = grads("cpu", args, torch.float32)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(y1, y2) and torch.equal(h1, h2)
    for name, a, b in zip(NAMES, g1, g2):
        assert torch.equal(a, b), f"d{name} differs between 1 and 2 threads"


@needs_kernel
@pytest.mark.parametrize("N", [4, 8, 12, 32])
@pytest.mark.parametrize("with_z", [False, True])
def test_kernel_every_state_size_path(N, with_z):
    """d_state 8, 16, 32, 64 are compiled for (the backward keeps 8 or 16 state indices in
    registers); any other size takes the generic path. Gradients included, 65 steps (two chunks)."""
    args = make_inputs(2, 65, 20, N, seed=N, with_z=with_z)
    y0, h0, g0 = grads("ref", args, torch.float64)
    y1, h1, g1 = grads("cpu", args, torch.float32)
    assert torch.allclose(y1, y0, rtol=1e-4, atol=1e-4 * y0.abs().max().item())
    assert torch.allclose(h1, h0, rtol=1e-4, atol=1e-4 * h0.abs().max().item())
    for name, a, b in zip(NAMES, g1, g0):
        if b is not None:
            rel = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
            assert rel < 1e-4, f"N={N} d{name}: relative error {rel:.2e}"


@needs_kernel
def test_inline_exp_holds_float32_accuracy():
    """The scan's exp (simd.h) against float64 over the whole clamped range: relative error
    below 3.1e-7 (the float32 input's own rounding is not counted: both sides see it)."""
    x = torch.linspace(-87.0, 88.0, 2_000_003)
    ref = torch.exp(x.double())
    rel = ((cpu_ext().inline_exp(x).double() - ref).abs() / ref).max().item()
    assert rel < 3.1e-7, rel


@needs_kernel
def test_kernel_without_avx512_8_lanes():
    """CPUs without AVX-512 run 8-lane code (simd.h); build it here too (-mno-avx512f, cached
    apart) and rerun the reference comparisons, the state-size paths and the fused conv with it."""
    env = {**os.environ, "SSMTTS_CPU_KERNEL_CFLAGS": "-mno-avx512f"}
    lanes = subprocess.run([sys.executable, "-c", "from ssmtts.models.cpu_ext import cpu_ext; print(cpu_ext().lanes)"],
                           env=env, capture_output=True, text=True, timeout=900, check=True).stdout.split()[-1]
    assert lanes == "8"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                          str(Path(__file__).with_name("test_conv.py")), "-k",
                          "matches_float64_reference or every_state_size or ragged or fused_conv or inline_exp"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout.splitlines()[-1] and "skipped" not in out.stdout.splitlines()[-1]


def test_scan_without_gate():
    args = make_inputs(1, 40, 8, 4, with_z=False)
    y0, _, _ = grads("ref", args, torch.float64)
    y1, _, _ = grads("cpu" if cpu_ext() else "pscan", args, torch.float32)
    assert torch.allclose(y1, y0, atol=1e-4)


def test_against_mamba_ssm_selective_scan_ref_if_installed():
    ops = pytest.importorskip("mamba_ssm.ops.selective_scan_interface")
    args = make_inputs(2, 33, 16, 8)
    u, dt, A, Bm, Cm, D, z, bias, _ = args
    y_ref = ops.selective_scan_ref(u.transpose(1, 2), dt.transpose(1, 2), A, Bm.transpose(1, 2),
                                   Cm.transpose(1, 2), D, z.transpose(1, 2), bias, delta_softplus=True)
    y, _ = selective_scan(*[a.float() for a in args[:8]], backend="cpu" if cpu_ext() else "pscan")
    assert torch.allclose(y.double(), y_ref.transpose(1, 2), atol=1e-4)


def test_mamba_layer_matches_mambapy_block_outputs_and_gradients():
    """mambapy's MambaBlock is an independent implementation with mamba-ssm's parameter names."""
    from mambapy.mamba import MambaBlock, MambaConfig
    torch.manual_seed(0)
    H, E = 32, 2
    ours = MambaLayer(H, E * H, d_state=16, d_conv=4)
    theirs = MambaBlock(MambaConfig(d_model=H, n_layers=1, d_state=16, expand_factor=E, d_conv=4, pscan=True))
    theirs.load_state_dict(ours.state_dict())  # same names and shapes: loads without remapping
    x = torch.randn(2, 77, H)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1, _ = ours(x1)
    y2 = theirs(x2)
    assert torch.allclose(y1, y2, atol=2e-5), (y1 - y2).abs().max()
    y1.square().sum().backward()
    y2.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-3)
    for (n, p1), p2 in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-4, rtol=1e-3), n


def test_one_step_state_update_matches_the_scan_step_by_step():
    """selective_state_update (generation's one-frame step) = the reference recurrence, frame by frame."""
    u, delta, A, Bm, Cm, Dskip, z, bias, h0 = make_inputs(2, 9, 24, 16)
    y_ref, h_ref = selective_scan_ref(u, delta, A, Bm, Cm, Dskip, z, bias, h0)
    h, ys = h0.clone(), []
    for t in range(u.shape[1]):
        ys.append(selective_state_update(h, u[:, t], delta[:, t], A, Bm[:, t], Cm[:, t], Dskip, z[:, t], bias))
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)


def test_mamba_layer_uses_the_step_in_generation_and_agrees_with_the_kernel():
    torch.manual_seed(0)
    layer = MambaLayer(32, 48).eval()
    x = torch.randn(2, 12, 32)
    with torch.no_grad():
        _, state = layer(x[:, :11])
        y_step, s1 = layer.step(x[:, 11:], state)                          # generation's one-frame step
        y_scan, s2 = layer(x[:, 11:], state, scan_backend="cpu" if cpu_ext() else "pscan")
    torch.testing.assert_close(y_step, y_scan, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s1.ssm_state, s2.ssm_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s1.conv, s2.conv)
    assert not torch.equal(state.ssm_state, s1.ssm_state)                 # the caller's state is not mutated
