"""Mamba-1 layer (selective SSM), with the state in and out.

Parameter names and shapes match `mamba_ssm.Mamba` (in_proj, conv1d, x_proj, dt_proj, A_log,
D, out_proj), so a checkpoint trained on a GPU with the fused kernels loads here and back.

    x (B, L, H) -> in_proj -> [x_in, z] (B, L, Din) each, Din = E * H
    x_in -> causal depthwise conv (width d_conv) -> SiLU -> x_c
    x_c -> x_proj -> [dt (rank R), B (N), C (N)];  dt -> dt_proj -> (B, L, Din)
    selective scan(x_c, dt, A = -exp(A_log), B, C, D, gate z) -> out_proj -> (B, L, H)

State: `MambaState(conv (B, d_conv - 1, Din), ssm_state (B, Din, N))`. Passing the state returned
for one chunk into the next gives exactly the output of one pass over both. `forward` runs a
sequence (any L, the parallel scan); `step` runs one frame (the one-step state update, what
generation calls); `allocate_state` gives the zero state of a fresh sequence.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .conv import causal_conv
from .scan import selective_scan, selective_state_update
from .state import MambaState


class _SplitLinear(torch.autograd.Function):
    """x @ W.T returned as its two halves (x @ W[:n].T, x @ W[n:].T), each contiguous.

    `in_proj(x).chunk(2)` gives two strided views; autograd then joins their gradients with a
    `cat` into a fresh (B, L, 2 Din) tensor before the matmuls (at L = 8192 that copy took a
    tenth of the layer's time, mostly first-touching the new memory). Here each half's gradient
    goes into the matmuls as it is: dx = dx1 @ W[:n] + dx2 @ W[n:], dW = [dx1.T @ x ; dx2.T @ x].
    Same numbers as the single matmul up to float32 summation order.
    """

    @staticmethod
    def forward(ctx, x, weight, n):
        ctx.save_for_backward(x, weight)
        ctx.n = n
        return x @ weight[:n].T, x @ weight[n:].T

    @staticmethod
    def backward(ctx, d1, d2):
        x, weight = ctx.saved_tensors
        n = ctx.n
        d1 = d1 if d1 is not None else x.new_zeros(*x.shape[:-1], n)
        d2 = d2 if d2 is not None else x.new_zeros(*x.shape[:-1], weight.shape[0] - n)
        x2, d1, d2 = x.reshape(-1, x.shape[-1]), d1.reshape(-1, n), d2.reshape(-1, weight.shape[0] - n)
        dx = dW = None
        if ctx.needs_input_grad[0]:
            dx = torch.addmm(d1 @ weight[:n], d2, weight[n:]).view(x.shape)
        if ctx.needs_input_grad[1]:
            dW = torch.empty_like(weight)
            torch.mm(d1.T, x2, out=dW[:n])
            torch.mm(d2.T, x2, out=dW[n:])
        return dx, dW, None


class MambaLayer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, d_state: int = 16, d_conv: int = 4, dt_rank: int | None = None,
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # S4D-real init A = -(1..N); dt bias so that softplus(bias) is log-uniform in [dt_min, dt_max]
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            std = self.dt_rank ** -0.5
            self.dt_proj.weight.uniform_(-std, std)

    def allocate_state(self, batch: int, device=None, dtype=torch.float32) -> MambaState:
        """The zero state of a fresh sequence (what `forward` starts from when given none)."""
        k = self.conv1d.weight.shape[-1]
        return MambaState(torch.zeros(batch, k - 1, self.d_inner, device=device, dtype=dtype),   # (B, d_conv-1, Din)
                          torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype))  # (B, Din, N)

    def forward(self, x: torch.Tensor, state: MambaState | None = None, mask=None, scan_backend: str = "auto"):
        """x (B, L, H), state from the previous chunk (None: zeros) -> (y (B, L, H), MambaState).
        `mask` is not needed (a forward scan never reads later, padded frames; the stack zeroes them)."""
        conv_state, ssm_state = (state.conv, state.ssm_state) if state is not None else (None, None)
        x_in, z = _SplitLinear.apply(x, self.in_proj.weight, self.d_inner)  # (B, L, Din) each
        x_c, conv_state = causal_conv(x_in, self.conv1d.weight, self.conv1d.bias, conv_state, activation="silu")
        dt, Bm, Cm = self.x_proj(x_c).split([self.dt_rank, self.d_state, self.d_state], dim=-1)  # (B, L, R / N / N)
        dt = dt @ self.dt_proj.weight.T                                # (B, L, Din); bias goes in the scan
        A = -torch.exp(self.A_log.float())                             # (Din, N)
        y, ssm_state = selective_scan(x_c, dt, A, Bm, Cm, self.D, z=z, delta_bias=self.dt_proj.bias,
                                      h0=ssm_state, backend=scan_backend)   # (B, L, Din), (B, Din, N)
        return self.out_proj(y), MambaState(conv_state, ssm_state)

    def _step_A(self) -> torch.Tensor:
        """A = -exp(A_log) (Din, N), computed once per version of A_log (a frame would redo it per layer)."""
        key = (self.A_log.data_ptr(), self.A_log._version)
        if getattr(self, "_A_key", None) != key:
            self._A, self._A_key = -torch.exp(self.A_log.detach().float()), key
        return self._A

    @torch.no_grad()
    def step(self, x: torch.Tensor, state: MambaState):
        """One frame: x (B, 1, H), state -> (y (B, 1, H), new MambaState). Inference only (no graph).

        The projections are module calls (one matrix-vector product each; `inference.half_weights`
        can swap them), the SSM update is the one-step kernel. The state passed in is not modified.
        """
        conv_state, ssm_state = state.conv, state.ssm_state
        x_in, z = self.in_proj(x).chunk(2, dim=-1)                     # (B, 1, Din) each
        x_c, conv_state = causal_conv(x_in, self.conv1d.weight, self.conv1d.bias, conv_state, activation="silu")
        dt, Bm, Cm = self.x_proj(x_c[:, 0]).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)                         # (B, Din); bias goes in the update
        h = ssm_state.clone()
        y = selective_state_update(h, x_c[:, 0], dt, self._step_A(), Bm, Cm, self.D, z[:, 0],
                                   self.dt_proj.bias)                  # (B, Din); h updated in place
        return self.out_proj(y[:, None]), MambaState(conv_state, h)             # (B, 1, H)
