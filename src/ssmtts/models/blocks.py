"""Residual blocks and the backbone stack; every block maps (x, state) -> (y, new_state).

    transformer: x + ls1 * Attention(norm(x));  x + ls2 * MLP(norm(x))
    mamba:       x + ls  * Mamba(norm(x))
    mamba2:      x + ls  * Mamba2(norm(x))
    hybrid:      x + ls  * Linear([Mamba(h), Conv_k1(h), Conv_k2(h)]),  h = norm(x)

`causal=True` (audio decoder) makes every block read only past frames: attention is masked,
convolutions are padded on the left and carry their last inputs as state. The text encoder
uses `causal=False`: attention and the hybrid's convolutions look both ways (its Mamba
branches still run forward in time).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import MLP, Attention
from .config import ModelConfig
from .conv import causal_conv, centred_conv
from .mamba import MambaLayer
from .mamba2 import Mamba2Layer


class ConvBranch(nn.Module):
    """Depthwise convolution with kernel k, GELU. Causal (left padded, stateful) or centred."""

    def __init__(self, d_model: int, kernel: int, causal: bool):
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.conv = nn.Conv1d(d_model, d_model, kernel, groups=d_model, padding=0)

    def forward(self, x, prefix=None):
        if self.causal:
            return causal_conv(x, self.conv.weight, self.conv.bias, prefix, activation="gelu")
        return centred_conv(x, self.conv.weight, self.conv.bias, activation="gelu"), prefix


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        self.kind, self.causal = cfg.backbone, causal
        H = cfg.d_model
        self.norm = nn.LayerNorm(H)
        self.drop = nn.Dropout(cfg.dropout)
        self.ls = nn.Parameter(torch.full((H,), cfg.layer_scale_init))
        if self.kind == "transformer":
            self.mixer = Attention(H, cfg.n_heads, causal, cfg.dropout)
            self.norm2, self.mlp = nn.LayerNorm(H), MLP(H, cfg.mlp_ratio, cfg.dropout)
            self.ls2 = nn.Parameter(torch.full((H,), cfg.layer_scale_init))
        elif self.kind == "mamba2":
            self.mixer = Mamba2Layer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.mamba2_head_dim)
        else:
            self.mixer = MambaLayer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)
        if self.kind == "hybrid":
            self.convs = nn.ModuleList(ConvBranch(H, k, causal) for k in cfg.conv_kernels)
            self.combine = nn.Linear(3 * H, H)

    def forward(self, x, state=None, mask=None):
        h = self.norm(x)
        if self.kind == "transformer":
            y, new_state = self.mixer(h, state, key_mask=mask)
            x = x + self.ls * self.drop(y)
            return x + self.ls2 * self.mlp(self.norm2(x)), new_state
        if self.kind == "hybrid":
            m_state, c_states = state if state is not None else (None, (None, None))
            m, m_state = self.mixer(h, m_state)
            outs = [conv(h, s) for conv, s in zip(self.convs, c_states)]
            y = self.combine(torch.cat([m] + [o for o, _ in outs], dim=-1))
            new_state = (m_state, tuple(s for _, s in outs))
        else:
            y, new_state = self.mixer(h, state)
        return x + self.ls * self.drop(y), new_state


class Backbone(nn.Module):
    """A stack of blocks; state is a list with one entry per block."""

    def __init__(self, cfg: ModelConfig, n_layers: int, causal: bool):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, causal) for _ in range(n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x, state=None, mask=None):
        """x (B, L, H); mask (B, L) True = valid (zeroes padding so it cannot leak into convs)."""
        state = state if state is not None else [None] * len(self.blocks)
        new_state = []
        for block, s in zip(self.blocks, state):
            if mask is not None:
                x = x * mask[..., None]
            x, s = block(x, s, mask)
            new_state.append(s)
        return self.norm(x), new_state
