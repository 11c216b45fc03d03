"""Multi-head self-attention (PyTorch SDPA) with a KV cache as its state (causal attention only)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .state import KVCache


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.causal, self.dropout = n_heads, causal, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def allocate_state(self, batch: int, device=None, dtype=torch.float32) -> KVCache:
        """An empty cache (no past frames)."""
        H = self.qkv.in_features
        empty = torch.zeros(batch, self.n_heads, 0, H // self.n_heads, device=device, dtype=dtype)
        return KVCache(empty, empty)

    def forward(self, x: torch.Tensor, state: KVCache | None = None, mask: torch.Tensor | None = None):
        """x (B, L, H), the cache of past frames (causal only) -> (y (B, L, H), the cache with these
        frames appended; None when not causal); mask (B, L) True = valid keys (bidirectional only)."""
        Bsz, L, H = x.shape
        q, k, v = self.qkv(x).view(Bsz, L, 3, self.n_heads, H // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, h, L, H/h)
        past = 0
        if state is not None:
            past = state.k.shape[2]
            k, v = torch.cat([state.k, k], dim=2), torch.cat([state.v, v], dim=2)         # (B, h, past + L, H/h)
        if self.causal and past == 0:
            attn = dict(is_causal=L > 1)
        elif self.causal:  # queries sit at positions past..past+L-1 of the keys
            seen = torch.arange(past + L, device=x.device)[None] <= (past + torch.arange(L, device=x.device))[:, None]
            attn = dict(attn_mask=seen)                                                     # (L, past + L)
        else:
            attn = dict(attn_mask=mask[:, None, None, :] if mask is not None else None)   # (B, 1, 1, L)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, **attn)
        new_state = KVCache(k, v) if self.causal else None
        return self.out(y.transpose(1, 2).reshape(Bsz, L, H)), new_state                    # (B, L, H)

    def step(self, x: torch.Tensor, state: KVCache):
        """One frame x (B, 1, H) against the cache -> (y (B, 1, H), the cache one frame longer)."""
        return self.forward(x, state)


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: float, dropout: float = 0.0):
        super().__init__()
        hidden = int(d_model * ratio)
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)
