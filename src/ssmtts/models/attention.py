"""Multi-head self-attention (PyTorch SDPA) with a KV cache as its state."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.causal, self.dropout = n_heads, causal, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, state=None, key_mask: torch.Tensor | None = None):
        """x (B, L, H); state: (k, v) each (B, heads, T_past, H/heads) or None; key_mask (B, L) True = valid."""
        Bsz, L, H = x.shape
        q, k, v = self.qkv(x).view(Bsz, L, 3, self.n_heads, H // self.n_heads).permute(2, 0, 3, 1, 4)
        past = 0
        if state is not None:
            past = state[0].shape[2]
            k, v = torch.cat([state[0], k], dim=2), torch.cat([state[1], v], dim=2)
        mask = None
        if self.causal and past == 0:
            attn = dict(is_causal=L > 1)
        elif self.causal:  # queries sit at positions past..past+L-1 of the keys
            mask = torch.arange(past + L, device=x.device)[None] <= (past + torch.arange(L, device=x.device))[:, None]
            attn = dict(attn_mask=mask)
        else:
            attn = dict(attn_mask=key_mask[:, None, None, :] if key_mask is not None else None)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, **attn)
        new_state = (k, v) if self.causal else None
        return self.out(y.transpose(1, 2).reshape(Bsz, L, H)), new_state


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: float, dropout: float = 0.0):
        super().__init__()
        hidden = int(d_model * ratio)
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)
