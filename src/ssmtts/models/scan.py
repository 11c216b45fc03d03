"""Selective scan (Mamba-1): h_t = exp(dt_t * A) h_{t-1} + dt_t B_t u_t,  y_t = C_t h_t + D u_t.

Three implementations of the same maths behind `selective_scan(...)`:

* `cuda`  - mamba-ssm's fused kernel (`selective_scan_fn`) when CUDA and mamba-ssm exist
            and no initial state is passed (the fused kernel takes none).
* `cpu`   - a C++ kernel (csrc/selective_scan.cpp) compiled once through torch's
            cpp_extension and cached: 8 neighbouring channels are the SIMD lanes, the state
            stays in registers/L1, nothing of size (B, L, D, N) is stored, and the backward
            recomputes 64-step chunks from checkpoints. Only softplus-dt is supported (as used).
* `pscan` - mambapy's Blelloch parallel scan in plain PyTorch (materialises (B, L, D, N));
            the fallback when no compiler is available, and the path for CUDA with a state.
* `ref`   - a per-step loop, the readable definition, used by tests.

`selective_state_update` is the one-frame step used in generation (no gradient, state carried).

Shapes (this package's layout, time-major like the rest of the model):
    u, delta, z: (B, L, D)   A: (D, N)   Bm, Cm: (B, L, N)   Dskip, delta_bias: (D,)
    h0 / returned state: (B, D, N)      y: (B, L, D)
`delta` is raw: `softplus(delta + delta_bias)` is applied inside, as in mamba-ssm.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ..runtime import current
from .cpu_ext import cpu_ext


def cuda_kernels_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
        return True
    except Exception:
        return False


class _CpuScan(torch.autograd.Function):
    """Autograd wrapper of the C++ kernel; it works in the model's (B, L, D) layout, no copies."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dskip, z, delta_bias, h0):
        ext = cpu_ext()
        u, delta, A, Bm, Cm, Dskip, delta_bias = (t.contiguous() for t in (u, delta, A, Bm, Cm, Dskip, delta_bias))
        # z may stay a strided view (the gate half of in_proj's output): the kernel takes row strides
        z_ = (z if z.stride(-1) == 1 else z.contiguous()) if z is not None else u.new_empty(0)
        h0_ = h0.contiguous() if h0 is not None else u.new_empty(0)
        out, h_last, ckpt = ext.fwd(u, delta, A, Bm, Cm, Dskip, z_, delta_bias, h0_, z is not None, h0 is not None)
        ctx.save_for_backward(u, delta, A, Bm, Cm, Dskip, z_, delta_bias, h0_, ckpt)
        ctx.flags = (z is not None, h0 is not None)
        return out, h_last

    @staticmethod
    def backward(ctx, dy, dh_last):
        u, delta, A, Bm, Cm, Dskip, z_, delta_bias, h0_, ckpt = ctx.saved_tensors
        has_z, has_h0 = ctx.flags
        dhl = dh_last.contiguous() if dh_last is not None else u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
        du, ddt, dA, dB, dC, dD, dz, dbias, dh0 = cpu_ext().bwd(
            u, delta, A, Bm, Cm, Dskip, z_, delta_bias, h0_, ckpt, dy.contiguous(), dhl, has_z, has_h0)
        return du, ddt, dA, dB, dC, dD, dz if has_z else None, dbias, dh0 if has_h0 else None


def _pscan(u, delta, A, Bm, Cm, Dskip, z, delta_bias, h0):
    from mambapy.pscan import pscan
    dt = F.softplus(delta + delta_bias)                                  # (B, L, D)
    dA = torch.exp(dt.unsqueeze(-1) * A)                                 # (B, L, D, N)
    dBu = dt.unsqueeze(-1) * Bm.unsqueeze(2) * u.unsqueeze(-1)           # (B, L, D, N)
    if h0 is not None:  # h_0 = dA_0 h0 + dBu_0: fold the initial state into the first input
        dBu = torch.cat([dBu[:, :1] + dA[:, :1] * h0.unsqueeze(1), dBu[:, 1:]], dim=1)
    hs = pscan(dA, dBu)                                                  # (B, L, D, N)
    y = (hs @ Cm.unsqueeze(-1)).squeeze(-1) + Dskip * u
    if z is not None:
        y = y * F.silu(z)
    return y, hs[:, -1]


def selective_scan_ref(u, delta, A, Bm, Cm, Dskip, z=None, delta_bias=None, h0=None):
    """The definition, one step at a time (slow; for tests and as documentation)."""
    dt = F.softplus(delta + (delta_bias if delta_bias is not None else 0))
    h = h0 if h0 is not None else u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + Dskip * u[:, t])
    y = torch.stack(ys, dim=1)
    if z is not None:
        y = y * F.silu(z)
    return y, h


def _cuda_fused(u, delta, A, Bm, Cm, Dskip, z, delta_bias):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    y, h_last = selective_scan_fn(u.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous(), A,
                                  Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), Dskip,
                                  z.transpose(1, 2).contiguous() if z is not None else None,
                                  delta_bias, delta_softplus=True, return_last_state=True)
    return y.transpose(1, 2), h_last


def selective_state_update(state, x, dt, A, Bm, Cm, Dskip, z=None, dt_bias=None):
    """One generation step, updating `state` in place (mamba-ssm's `selective_state_update`):

        state (B, D, N) <- exp(dt A) * state + dt * B x;   y (B, D) = C . state + D x   (* silu(z))

    x, dt, z: (B, D); Bm, Cm: (B, N); dt is raw (softplus(dt + dt_bias) inside). On CUDA with
    mamba-ssm its fused Triton kernel does the same; on CPU one call into the C++ extension
    (or, without it, a few element-wise torch ops). Either touches only (B, D, N) numbers, so a
    frame costs the same at any position.
    """
    if state.is_cuda and cuda_kernels_available():
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update as fused
        return fused(state, x, dt, A, Bm, Cm, Dskip, z=z, dt_bias=dt_bias, dt_softplus=True)
    ext = cpu_ext() if state.device.type == "cpu" and state.dtype == torch.float32 else None
    if ext is not None and state.is_contiguous():
        bias = dt_bias if dt_bias is not None else torch.zeros_like(Dskip)
        args = [t.contiguous() for t in (x, dt, A, Bm, Cm, Dskip)]
        return ext.step(state, *args, z.contiguous() if z is not None else x.new_empty(0), bias.contiguous(),
                        z is not None)
    dt = F.softplus(dt + dt_bias) if dt_bias is not None else F.softplus(dt)
    state.mul_(torch.exp(dt.unsqueeze(-1) * A)).add_(dt.unsqueeze(-1) * Bm.unsqueeze(1) * x.unsqueeze(-1))
    y = torch.einsum("bdn,bn->bd", state, Cm) + Dskip * x
    return y * F.silu(z) if z is not None else y


def pick_backend(device: torch.device, has_state: bool) -> str:
    if device.type == "cuda":
        return "cuda" if cuda_kernels_available() and not has_state else "pscan"
    if device.type == "cpu" and cpu_ext() is not None:
        return "cpu"
    return "pscan"


def scan_path(device: str | torch.device = "cpu") -> str:
    """Which selective scan (and convolution) path runs on `device`, as written into every result row: a run
    that fell back to a slower path says so (e.g. "pscan (fallback: no C++ kernel)")."""
    device = torch.device(device)
    forced = current().scan_backend
    if forced != "auto":
        return f"{forced} (forced by the runtime config)"
    if device.type == "cuda":
        return "cuda (mamba-ssm fused)" if cuda_kernels_available() else "pscan (fallback: mamba-ssm not importable)"
    return "cpu (C++ kernel)" if cpu_ext() is not None else "pscan (fallback: no C++ kernel)"


def selective_scan(u, delta, A, Bm, Cm, Dskip, z=None, delta_bias=None, h0=None, backend: str = "auto"):
    """Returns (y (B, L, D), last state (B, D, N)). `backend`: auto | cpu | pscan | cuda | ref."""
    if delta_bias is None:
        delta_bias = torch.zeros_like(Dskip)
    if backend == "auto":   # the runtime config may force one (for before/after comparisons)
        backend = current().scan_backend
    if backend == "auto":
        backend = pick_backend(u.device, h0 is not None)
    if backend == "cpu":
        if u.dtype != torch.float32:
            raise TypeError(f"the CPU scan kernel takes float32, got {u.dtype}")
        return _CpuScan.apply(u, delta, A, Bm, Cm, Dskip, z, delta_bias, h0)
    if backend == "pscan":
        return _pscan(u, delta, A, Bm, Cm, Dskip, z, delta_bias, h0)
    if backend == "cuda":
        return _cuda_fused(u, delta, A, Bm, Cm, Dskip, z, delta_bias)
    if backend == "ref":
        return selective_scan_ref(u, delta, A, Bm, Cm, Dskip, z, delta_bias, h0)
    raise ValueError(f"unknown scan backend {backend!r}")
