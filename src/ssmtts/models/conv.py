"""Causal depthwise convolution along time (the short conv in Mamba-1/2 and the hybrid's conv branch).

    x (B, L, C), weight (C, 1, K) as in nn.Conv1d, prefix (B, K-1, C): the K-1 inputs before x
    y[:, t] = bias + sum_k weight[:, 0, k] * [prefix ; x][:, t + k]          -> (B, L, C)

`causal_conv(x, weight, bias, prefix, activation)` returns (activation(y), new prefix), the
activation None, "silu" (Mamba) or "gelu" (the hybrid's conv branches). On CPU in float32 it runs
the fused C++ kernel (csrc/causal_conv.cpp: one pass forward and one backward, x may be a
strided view); elsewhere, or without a compiler, `causal_depthwise_conv` in PyTorch.
`centred_conv` is the look-both-ways convolution of the same kernel size, through the same path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .cpu_ext import cpu_ext


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          prefix: torch.Tensor | None):
    """The definition in PyTorch ops: K shifted multiply-adds (any length, any device).

    Returns (y (B, L, C), new prefix (B, K-1, C)).
    """
    K, L = weight.shape[-1], x.shape[1]
    if prefix is None:
        prefix = x.new_zeros(x.shape[0], K - 1, x.shape[2])
    xp = torch.cat([prefix, x], dim=1)                                 # (B, K-1+L, C)
    w = weight[:, 0, :].T                                              # (K, C)
    y = xp[:, 0:L] * w[0]
    for k in range(1, K):
        y = y + xp[:, k:k + L] * w[k]
    if bias is not None:
        y = y + bias
    return y, xp[:, xp.shape[1] - (K - 1):]


def _new_prefix(x, prefix, K):
    """The last K-1 rows of [prefix ; x] without building the concatenation."""
    L = x.shape[1]
    if L >= K - 1:
        return x[:, L - (K - 1):]
    if prefix is None:
        prefix = x.new_zeros(x.shape[0], K - 1, x.shape[2])
    return torch.cat([prefix[:, L:], x], dim=1)


ACTIVATIONS = {None: (0, lambda y: y), "silu": (1, F.silu), "gelu": (2, F.gelu)}   # kernel code, PyTorch op


class _CpuCausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, prefix, act: int):
        w = weight[:, 0, :].contiguous()                               # (C, K)
        x_ = x if x.stride(2) == 1 else x.contiguous()
        p_ = prefix.contiguous() if prefix is not None else x.new_empty(0)
        ctx.save_for_backward(x_, w, bias, p_)
        ctx.flags = (prefix is not None, act)
        return cpu_ext().conv_fwd(x_, w, bias, p_, prefix is not None, act)

    @staticmethod
    def backward(ctx, dy):
        x_, w, bias, p_ = ctx.saved_tensors
        has_prefix, act = ctx.flags
        dx, dprefix, dw, dbias = cpu_ext().conv_bwd(x_, w, bias, p_, dy, has_prefix, act)
        return dx, dw[:, None, :], dbias, dprefix if has_prefix else None, None


def causal_conv(x, weight, bias, prefix=None, activation: str | None = None):
    """(activation(conv(x)), new prefix); the fused CPU kernel when it applies."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    code, op = ACTIVATIONS[activation]
    fused = (x.device.type == "cpu" and x.dtype == torch.float32 and bias is not None
             and x.shape[1] > 0 and cpu_ext() is not None)
    if fused:
        y = _CpuCausalConv.apply(x, weight, bias, prefix, code)
        return y, _new_prefix(x, prefix, weight.shape[-1])
    y, new_prefix = causal_depthwise_conv(x, weight, bias, prefix)
    return op(y), new_prefix


def centred_conv(x, weight, bias, activation: str | None = None):
    """Depthwise conv looking both ways, as nn.Conv1d over x padded by (K-1)//2 on the left and the
    rest on the right: y[t] = sum_j w[j] x[t - left + j]. That is the causal conv of x padded on the
    right by `right` = K-1-left zeros, read from position `right` on, so it runs through the same
    fused kernel (x (B, L, C) -> (B, L, C), no transposes)."""
    right = weight.shape[-1] - 1 - (weight.shape[-1] - 1) // 2
    y, _ = causal_conv(F.pad(x, (0, 0, 0, right)) if right else x, weight, bias, None, activation)
    return y[:, right:]
