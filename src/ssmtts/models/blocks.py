"""Residual blocks and the backbone stack.

One residual block wraps one mixer (`MIXERS[cfg.backbone]`):

    x + ls * mixer(norm(x))                        every backbone
    x + ls2 * MLP(norm2(x))                        transformer only (its second sub-layer)

    transformer: Attention                          state KVCache
    mamba:       MambaLayer                         state MambaState
                 BidirectionalMamba (mamba_bidirectional, stacks that are not causal; no state)
    mamba2:      Mamba2Layer                        state MambaState
    hybrid:      Linear([Mamba(h), Conv_k1(h), Conv_k2(h)])   state HybridState

Every mixer has the same three entry points, and so do the block and the stack:
`forward(x, state=None, mask=None)` over a sequence (training, chunks), `step(x, state)` for one
frame (generation), `allocate_state(batch)` for a fresh sequence. `causal=True` (audio decoder)
makes every block read only past frames: attention is masked, convolutions are padded on the left
and carry their last inputs as state. The text encoder uses `causal=False`: attention and the
hybrid's convolutions look both ways (its Mamba branches still run forward in time; pure Mamba
looks both ways only with `mamba_bidirectional`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import MLP, Attention
from .config import ModelConfig
from .conv import causal_conv, centred_conv
from .mamba import MambaLayer
from .mamba2 import Mamba2Layer
from .state import HybridState


class ConvBranch(nn.Module):
    """Depthwise convolution with kernel k, GELU. Causal (left padded, its last k-1 inputs as state) or centred."""

    def __init__(self, d_model: int, kernel: int, causal: bool):
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.conv = nn.Conv1d(d_model, d_model, kernel, groups=d_model, padding=0)

    def forward(self, x, prefix=None):
        """x (B, L, H), prefix (B, k-1, H) or None -> (y (B, L, H), new prefix; None when centred)."""
        if self.causal:
            return causal_conv(x, self.conv.weight, self.conv.bias, prefix, activation="gelu")
        return centred_conv(x, self.conv.weight, self.conv.bias, activation="gelu"), None


class HybridMixer(nn.Module):
    """A forward Mamba branch beside depthwise conv branches (kernels cfg.conv_kernels), combined by a linear layer."""

    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        H = cfg.d_model
        self.mamba = MambaLayer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)
        self.convs = nn.ModuleList(ConvBranch(H, k, causal) for k in cfg.conv_kernels)
        self.combine = nn.Linear((1 + len(cfg.conv_kernels)) * H, H)

    def allocate_state(self, batch: int, device=None, dtype=torch.float32) -> HybridState:
        H = self.combine.out_features
        return HybridState(self.mamba.allocate_state(batch, device, dtype),
                           tuple(torch.zeros(batch, c.kernel - 1, H, device=device, dtype=dtype) for c in self.convs))

    def _combine(self, m, h, state: HybridState | None):
        prefixes = state.convs if state is not None else (None,) * len(self.convs)
        outs = [conv(h, p) for conv, p in zip(self.convs, prefixes)]                     # (B, L, H), prefix
        return self.combine(torch.cat([m] + [o for o, _ in outs], dim=-1)), tuple(p for _, p in outs)  # (B, L, H)

    def forward(self, x, state: HybridState | None = None, mask=None):
        """x (B, L, H) -> (y (B, L, H), HybridState). `mask` is not needed: the stack zeroes padded frames."""
        m, m_state = self.mamba(x, state.mamba if state is not None else None)           # (B, L, H)
        y, prefixes = self._combine(m, x, state)
        return y, HybridState(m_state, prefixes)

    @torch.no_grad()
    def step(self, x, state: HybridState):
        """One frame x (B, 1, H) -> (y (B, 1, H), new HybridState)."""
        m, m_state = self.mamba.step(x, state.mamba)                                     # (B, 1, H)
        y, prefixes = self._combine(m, x, state)
        return y, HybridState(m_state, prefixes)


def reverse_index(mask, batch: int, length: int, device=None) -> torch.Tensor:
    """(B, L) indices that reverse each row within its valid frames and leave its padding in place:
    row b of length n reads n-1, ..., 0, n, ..., L-1. Applying it twice gives the identity."""
    t = torch.arange(length, device=device)                                               # (L,)
    n = mask.sum(1, keepdim=True) if mask is not None else torch.full((batch, 1), length, device=device)
    return torch.where(t < n, n - 1 - t, t)                                               # (B, L)


class BidirectionalMamba(nn.Module):
    """Pure Mamba that looks both ways: one Mamba layer reads the sequence forwards, a second reads it
    backwards (each row reversed within its valid frames, so padding never enters a valid frame), and
    their outputs are summed (Vim's bidirectional Mamba, with separate layers). Only for stacks that
    may look ahead (the text encoder; a decoder that reads no codes); it reads whole sequences and
    carries no state, so it cannot stream."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H = cfg.d_model
        self.forwards = MambaLayer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)
        self.backwards = MambaLayer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)

    def forward(self, x, state=None, mask=None):
        """x (B, L, H), mask (B, L) True = valid or None -> (y (B, L, H), None)."""
        if state is not None:
            raise ValueError("a bidirectional Mamba stack reads whole sequences: it takes no state")
        B, L, H = x.shape
        idx = reverse_index(mask, B, L, x.device)[..., None].expand(B, L, H)                 # (B, L, H)
        y_fwd, _ = self.forwards(x)                                                         # (B, L, H)
        y_bwd, _ = self.backwards(x.gather(1, idx))                                         # (B, L, H), reversed time
        return y_fwd + y_bwd.gather(1, idx), None

    _NO_STEPS = "a bidirectional Mamba stack cannot run frame by frame (it reads the future)"

    def allocate_state(self, batch: int, device=None, dtype=torch.float32):
        raise ValueError(self._NO_STEPS)

    def step(self, x, state):
        raise ValueError(self._NO_STEPS)


def make_mixer(cfg: ModelConfig, causal: bool) -> nn.Module:
    H = cfg.d_model
    if cfg.backbone == "transformer":
        return Attention(H, cfg.n_heads, causal, cfg.dropout)
    if cfg.backbone == "mamba2":
        return Mamba2Layer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.mamba2_head_dim)
    if cfg.backbone == "hybrid":
        return HybridMixer(cfg, causal)
    if cfg.mamba_bidirectional and not causal:
        return BidirectionalMamba(cfg)
    return MambaLayer(H, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)


class Block(nn.Module):
    """x + ls * mixer(norm(x)), then (transformer) x + ls2 * MLP(norm2(x))."""

    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        H = cfg.d_model
        self.norm = nn.LayerNorm(H)
        self.drop = nn.Dropout(cfg.dropout)
        self.ls = nn.Parameter(torch.full((H,), cfg.layer_scale_init))
        self.mixer = make_mixer(cfg, causal)
        self.norm2 = self.mlp = self.ls2 = None
        if cfg.backbone == "transformer":        # attention's position-wise second sub-layer
            self.norm2, self.mlp = nn.LayerNorm(H), MLP(H, cfg.mlp_ratio, cfg.dropout)
            self.ls2 = nn.Parameter(torch.full((H,), cfg.layer_scale_init))
        self._register_load_state_dict_pre_hook(_legacy_hybrid_keys)

    def _mlp(self, x):
        return x if self.mlp is None else x + self.ls2 * self.mlp(self.norm2(x))

    def allocate_state(self, batch: int, device=None, dtype=torch.float32):
        return self.mixer.allocate_state(batch, device, dtype)

    def forward(self, x, state=None, mask=None):
        """x (B, L, H), the mixer's state or None, mask (B, L) True = valid -> (x (B, L, H), new state)."""
        y, new_state = self.mixer(self.norm(x), state, mask=mask)                        # (B, L, H)
        return self._mlp(x + self.ls * self.drop(y)), new_state

    @torch.no_grad()
    def step(self, x, state):
        """One frame x (B, 1, H) -> (x (B, 1, H), new state)."""
        y, new_state = self.mixer.step(self.norm(x), state)                              # (B, 1, H)
        return self._mlp(x + self.ls * y), new_state


def _legacy_hybrid_keys(state_dict, prefix, *args):
    """Checkpoints written before HybridMixer existed kept the hybrid's branches on the block
    (`convs.*`, `combine.*`, the Mamba branch as `mixer.*`): renamed in place so they still load."""
    if not any(k.startswith(prefix + "combine.") for k in state_dict):
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.startswith(("convs.", "combine.")):
            state_dict[prefix + "mixer." + rest] = state_dict.pop(key)
        elif rest.startswith("mixer."):
            state_dict[prefix + "mixer.mamba." + rest[len("mixer."):]] = state_dict.pop(key)


class Backbone(nn.Module):
    """A stack of blocks and a final norm; its state is a list with one mixer state per block."""

    def __init__(self, cfg: ModelConfig, n_layers: int, causal: bool):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, causal) for _ in range(n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def allocate_state(self, batch: int, device=None, dtype=torch.float32) -> list:
        return [block.allocate_state(batch, device, dtype) for block in self.blocks]

    def forward(self, x, state: list | None = None, mask=None):
        """x (B, L, H); mask (B, L) True = valid (zeroes padding so it cannot leak into convs)."""
        state = state if state is not None else [None] * len(self.blocks)
        new_state = []
        for block, s in zip(self.blocks, state):
            if mask is not None:
                x = x * mask[..., None]                                                  # (B, L, H)
            x, s = block(x, s, mask)
            new_state.append(s)
        return self.norm(x), new_state

    @torch.no_grad()
    def step(self, x, state: list):
        """One frame x (B, 1, H) through every block -> (y (B, 1, H), new state list)."""
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s)
            new_state.append(s)
        return self.norm(x), new_state
