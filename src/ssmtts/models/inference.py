"""Generation with half-precision weights in the one-frame matrix-vector products.

A frame of the paper-size L4_H768_E1.5 decoder reads every decoder and head weight once:
17.6 M floats, 70 MB, far more than the last-level cache, for ~36 MFLOP of work. On a 2-core
CPU that is memory-bound (a float32 matrix-vector product streams ~9-25 GB/s here), so the
cost of a frame is the bytes of its weights. `half_weights(model)` returns a copy whose large
linear layers keep a float16 copy of their weight and use it for inputs of a few rows (the
frame-by-frame decoder): half the bytes per frame. Activations, states, the scan and the
many-row passes (text encoder, style, a non-autoregressive decoder) stay float32. The tokens
can differ from the float32 model's where two logits are within float16 rounding of each other;
benchmarks/train_bench.py reports how often the greedy tokens agree.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_WEIGHTS = 1 << 16   # smaller layers (dt_proj, duration head) are not worth a second copy
MAX_ROWS = 8            # inputs with more rows use the float32 weight (CPU float16 GEMM has no fast kernel)


class HalfWeightLinear(nn.Module):
    """nn.Linear with a second, low-precision copy of its weight for few-row inputs."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features   # read by the mixers
        self.weight, self.bias = linear.weight, linear.bias          # float32, for many-row inputs
        self.register_buffer("weight_low", linear.weight.detach().to(dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() // x.shape[-1] > MAX_ROWS:
            return F.linear(x, self.weight, self.bias)
        y = F.linear(x.to(self.weight_low.dtype), self.weight_low).to(x.dtype)
        return y + self.bias if self.bias is not None else y


def half_weights(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """An inference copy of `model` whose linear layers of >= MIN_WEIGHTS weights use `dtype` weights
    for few-row inputs (see the module docstring). The model passed in is not changed."""
    fast = copy.deepcopy(model).eval()
    for module in list(fast.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child.weight.numel() >= MIN_WEIGHTS:
                setattr(module, name, HalfWeightLinear(child, dtype))
    return fast
