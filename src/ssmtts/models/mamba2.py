"""Mamba-2 layer (SSD: scalar decay per head, chunked matrix form), with the state in and out.

An extra backbone beside Mamba-1, never a replacement: A is one scalar per head instead of a
per-channel (Din x N) matrix. The chunked algorithm follows `ssd_minimal_discrete` from the
Mamba-2 paper (Dao & Gu, 2024): quadratic attention-like form inside chunks of `chunk`
steps, a linear recurrence between chunks.

    x (B, L, H) -> in_proj -> [z (Din), xBC (Din + 2N), dt (heads)]
    xBC -> causal depthwise conv -> SiLU -> [x (heads x P), B (N), C (N)]
    y = SSD(x * dt, A * dt, B, C) + D x;  y = norm(y * silu(z)) -> out_proj
State: `MambaState(conv (B, d_conv - 1, Din + 2N), ssm_state (B, heads, P, N))`; `step` is a
one-frame `forward` (a chunk of one step).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .conv import causal_conv
from .state import MambaState


def segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T) with out[i, j] = sum(x[j+1..i]) for j <= i, -inf above the diagonal."""
    T = x.size(-1)
    x = x[..., None].expand(*x.shape, T)
    x = x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), -1), 0)
    out = torch.cumsum(x, dim=-2)
    return out.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device)), -torch.inf)


def ssd_minimal(X, A, B, C, chunk: int, h0=None):
    """`ssd_minimal_discrete` of the Mamba-2 paper, as written there (einsums, segsum): the reference `ssd` is
    tested against. X (b, l, h, p), A (b, l, h), B and C (b, l, n), h0 (b, h, p, n); l a multiple of chunk."""
    b, l, h, p = X.shape
    c = l // chunk
    X, A = X.view(b, c, chunk, h, p), A.view(b, c, chunk, h).permute(0, 3, 1, 2)   # A: (b, h, c, chunk)
    B, C = B.view(b, c, chunk, -1), C.view(b, c, chunk, -1)
    A_cum = torch.cumsum(A, dim=-1)
    Y_diag = torch.einsum("bcln,bcsn,bhcls,bcshp->bclhp", C, B, torch.exp(segsum(A)), X)
    decay = torch.exp(A_cum[..., -1:] - A_cum)
    states = torch.einsum("bcln,bhcl,bclhp->bchpn", B, decay, X)
    h0 = X.new_zeros(b, 1, h, p, B.shape[-1]) if h0 is None else h0[:, None]
    states = torch.cat([h0, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    Y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", C, states[:, :-1], torch.exp(A_cum))
    return (Y_diag + Y_off).reshape(b, l, h, p), states[:, -1]


def ssd(X, A, B, C, chunk: int, h0=None):
    """The same as `ssd_minimal` in batched matmuls, heads as a batch dimension (X, Y as (b, h, c, T, p)), the
    decay inside a chunk as exp(A_cum[i] - A_cum[j]) (as mamba-ssm's kernels form it) and the few chunks'
    recurrence as a loop: on a CPU, the einsums' broadcast products and their backward were most of a
    Mamba-2 layer's time. X (b, l, h, p), A (b, l, h), B and C (b, l, n), h0 (b, h, p, n); l a multiple of chunk."""
    b, l, h, p = X.shape
    c, T = l // chunk, chunk
    Xh = X.view(b, c, T, h, p).permute(0, 3, 1, 2, 4)                       # (b, h, c, T, p)
    A_cum = torch.cumsum(A.view(b, c, T, h).permute(0, 3, 1, 2), dim=-1)    # (b, h, c, T)
    B, C = B.view(b, c, T, -1), C.view(b, c, T, -1)                          # (b, c, T, n)
    causal = torch.ones(T, T, dtype=torch.bool, device=X.device).tril()
    # within a chunk: Y[i] = sum_{j <= i} (C_i . B_j) exp(A_cum[i] - A_cum[j]) X[j]
    seg = (A_cum[..., :, None] - A_cum[..., None, :]).masked_fill(~causal, -torch.inf)   # (b, h, c, T, T)
    Y = (torch.exp(seg) * (C @ B.transpose(-1, -2))[:, None]) @ Xh         # (b, h, c, T, p)
    # each chunk's contribution to the state at its end, as (n, p): B^T (decay * X)
    decay = torch.exp(A_cum[..., -1:] - A_cum)                               # (b, h, c, T)
    chunk_states = B.transpose(-1, -2)[:, None] @ (decay[..., None] * Xh)   # (b, h, c, n, p)
    # across chunks: the state entering chunk k, then its read-out C_i exp(A_cum[i]) state
    state = X.new_zeros(b, h, B.shape[-1], p) if h0 is None else h0.transpose(-1, -2)   # (b, h, n, p)
    chunk_decay = torch.exp(A_cum[..., -1])                                   # (b, h, c)
    entering = []
    for k in range(c):
        entering.append(state)
        state = chunk_decay[..., k, None, None] * state + chunk_states[:, :, k]
    Y = Y + (C[:, None] @ torch.stack(entering, 2)) * torch.exp(A_cum)[..., None]   # (b, h, c, T, p)
    return Y.permute(0, 2, 3, 1, 4).reshape(b, l, h, p), state.transpose(-1, -2)     # (b, l, h, p), (b, h, p, n)


class Mamba2Layer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, d_state: int = 16, d_conv: int = 4, head_dim: int = 32,
                 chunk: int = 64):
        super().__init__()
        self.d_inner, self.d_state, self.head_dim, self.chunk = d_inner, d_state, head_dim, chunk
        self.n_heads = d_inner // head_dim
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * d_state + self.n_heads, bias=False)
        self.conv1d = nn.Conv1d(d_inner + 2 * d_state, d_inner + 2 * d_state, d_conv,
                                groups=d_inner + 2 * d_state, padding=d_conv - 1)
        dt = torch.exp(torch.rand(self.n_heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.norm = nn.RMSNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def allocate_state(self, batch: int, device=None, dtype=torch.float32) -> MambaState:
        """The zero state of a fresh sequence."""
        C, k = self.conv1d.weight.shape[0], self.conv1d.weight.shape[-1]
        return MambaState(torch.zeros(batch, k - 1, C, device=device, dtype=dtype),
                          torch.zeros(batch, self.n_heads, self.head_dim, self.d_state, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor, state: MambaState | None = None, mask=None):
        """x (B, L, H), state from the previous chunk (None: zeros) -> (y (B, L, H), MambaState)."""
        conv_state, ssm_state = (state.conv, state.ssm_state) if state is not None else (None, None)
        Bsz, L, _ = x.shape
        z, xBC, dt = self.in_proj(x).split([self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], dim=-1)
        # z (B, L, Din), xBC (B, L, Din + 2N), dt (B, L, heads)
        xBC, conv_state = causal_conv(xBC, self.conv1d.weight, self.conv1d.bias, conv_state, activation="silu")  # same shape
        xs, Bm, Cm = xBC.split([self.d_inner, self.d_state, self.d_state], dim=-1)     # (B, L, Din / N / N)
        dt = F.softplus(dt + self.dt_bias)                               # (B, L, heads)
        A = -torch.exp(self.A_log)                                       # (heads,)
        xh = xs.view(Bsz, L, self.n_heads, self.head_dim)                # (B, L, heads, P)
        # the fewest chunks of at most `self.chunk` steps, as equal as possible (L = 96: two of 48, no
        # padding, where chunks of 64 would pad a third of the work); zero input and zero
        # decay-exponent in the padding leave the state unchanged
        n_chunks = -(-L // self.chunk)
        chunk = -(-L // n_chunks)
        pad = n_chunks * chunk - L
        y, ssm_state = ssd(F.pad(xh * dt[..., None], (0, 0, 0, 0, 0, pad)), F.pad(A * dt, (0, 0, 0, pad)),
                           F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad)), chunk, ssm_state)  # (B, L+pad, heads, P)
        y = y[:, :L] + xh * self.D[:, None]                                # (B, L, heads, P)
        y = self.norm(y.reshape(Bsz, L, self.d_inner) * F.silu(z))       # (B, L, Din)
        return self.out_proj(y), MambaState(conv_state, ssm_state)        # (B, L, H)

    @torch.no_grad()
    def step(self, x: torch.Tensor, state: MambaState):
        """One frame x (B, 1, H) -> (y (B, 1, H), new MambaState)."""
        return self.forward(x, state)
