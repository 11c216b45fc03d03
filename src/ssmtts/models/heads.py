"""The 8-codebook output head and its cross-entropy, fused.

    h (N, H) decoder states of the scored frames -> logits z (N, 8 * 1024) -> CE per codebook

Written plainly (`heads(h)`, then `F.cross_entropy` on the logits permuted to (B, K, T, 8)),
a cpu-profile training step (8 x 192 frames) writes a 50 MB logit tensor, copies it into the
permuted layout, writes the log-probabilities as a second one, and reads them back in backward:
at H = 96-128 that traffic (and two full-range exps per logit) cost as much as the backbone.
`codebook_cross_entropy` computes the same loss as

    z = h @ W.T                                     one matmul, (N, C*K)
    ce, z <- w * (softmax(z + b) - onehot), db      csrc/group_xent.cpp: per group of 1024
                                                    logits, in L1, one exp each, in place; the
                                                    bias added and its gradient summed there too
    backward: dh = dz @ W, dW = dz.T @ h

The loss is the only consumer of the logits, so their gradient is formed in the forward pass,
in the logits' own memory; backward only multiplies. Without the C++ extension (or off CPU
float32) the same steps run in PyTorch ops (`_group_xent_torch`); under autocast (CUDA bf16) it
is the plain path. Values and gradients equal the plain path's up to float32
summation order (tests/test_heads.py). `codebook_scores` evaluates in row chunks with argmax
hits, so a validation batch's full logits are never in memory at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .cpu_ext import cpu_ext


def _group_xent_torch(z: torch.Tensor, target: torch.Tensor, row_weight: torch.Tensor, groups: int, grad: bool,
                      bias: torch.Tensor | None = None):
    """csrc/group_xent.cpp in PyTorch ops (no compiler, or not CPU float32): same contract."""
    if bias is not None:
        z.add_(bias)
    z3 = z.view(z.shape[0], groups, -1)                                        # (N, C, K)
    lse = torch.logsumexp(z3, dim=-1)                                          # (N, C)
    ce = lse - z3.gather(-1, target[..., None]).squeeze(-1)
    if not grad:
        return ce, z3.argmax(-1), None
    z3.sub_(lse[..., None]).exp_()                                             # softmax, in place
    z3.scatter_add_(-1, target[..., None], z3.new_full((*target.shape, 1), -1.0))
    z.mul_(row_weight[:, None])
    return ce, None, (z.sum(0) if bias is not None else None)


def group_xent(z: torch.Tensor, target: torch.Tensor, row_weight: torch.Tensor, groups: int, grad: bool,
               bias: torch.Tensor | None = None):
    """Per (row, codebook) CE of logits z + bias (z (N, C*K), bias (C*K,) or None), as (ce (N, C), argmax (N, C)
    without grad, dloss/dbias (C*K,) with grad and a bias); with grad, z becomes dloss/dz in place."""
    ext = cpu_ext() if z.device.type == "cpu" and z.dtype == torch.float32 else None
    if ext is None or (bias is not None and bias.dtype != z.dtype):
        return _group_xent_torch(z, target, row_weight, groups, grad, bias)
    ce, arg, dbias = ext.group_xent(z, target, row_weight, groups, grad,
                                    bias.contiguous() if bias is not None else z.new_empty(0))
    return ce, (None if grad else arg), (dbias if grad and bias is not None else None)


class _FusedHeadCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target, row_weight, n_codebooks: int):
        # h (N, H); weight (C*K, H); bias (C*K,); target (N, C) long; row_weight (N,) float
        z = h @ weight.T                                                         # (N, C*K) logits less the bias
        ce, _, db = group_xent(z, target, row_weight, n_codebooks, grad=True, bias=bias)   # z <- dloss/dz
        ctx.save_for_backward(h, weight, z, db)
        return (ce.sum(-1) * row_weight).sum()

    @staticmethod
    def backward(ctx, g):
        h, weight, dz, db = ctx.saved_tensors
        need = ctx.needs_input_grad
        dh = (dz @ weight) * g if need[0] else None                            # (N, H)
        dW = (dz.T @ h) * g if need[1] else None                               # (C*K, H)
        return dh, dW, (db * g if need[2] else None), None, None, None


def codebook_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor,
                           n_codebooks: int, row_weight: torch.Tensor | None = None) -> torch.Tensor:
    """sum over rows n and codebooks c of row_weight[n] * CE(h[n] @ W.T + b, target[n, c]).

    h (N, H); weight (C*K, H), bias (C*K,) as in nn.Linear(H, C*K); target (N, C) ids in [0, K);
    row_weight (N,) (default 1 / (N * C): the mean over rows and codebooks).
    """
    N = h.shape[0]
    if row_weight is None:
        row_weight = h.new_full((N,), 1.0 / max(1, N * n_codebooks))
    if h.dtype != weight.dtype:   # autocast (CUDA bf16): the plain path, which autocast handles
        return plain_cross_entropy(h, weight, bias, target, n_codebooks, row_weight)
    return _FusedHeadCE.apply(h.contiguous(), weight, bias, target.contiguous(), row_weight.to(h.dtype).contiguous(),
                              n_codebooks)


def plain_cross_entropy(h, weight, bias, target, n_codebooks: int, row_weight):
    """The same loss the straightforward way (the reference for the fused one)."""
    logits = F.linear(h, weight, bias).view(h.shape[0], n_codebooks, -1).float()      # (N, C, K)
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")               # (N, C)
    return (ce.sum(-1) * row_weight).sum()


@torch.no_grad()
def codebook_scores(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor,
                    n_codebooks: int, chunk: int = 2048) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Evaluation: (CE summed over rows and codebooks, argmax hits per codebook (C,), CE summed over rows per
    codebook (C,)), in row chunks so that a whole validation batch's logits are never all in memory."""
    ce, hits, ce_cb = 0.0, torch.zeros(n_codebooks, dtype=torch.long), torch.zeros(n_codebooks, dtype=torch.float64)
    for s in range(0, h.shape[0], chunk):
        z = F.linear(h[s:s + chunk], weight, bias).float().contiguous()                # (n, C*K)
        tc = target[s:s + chunk].contiguous()
        c, arg, _ = group_xent(z, tc, z.new_ones(z.shape[0]), n_codebooks, grad=False)  # (n, C) each
        ce += float(c.sum())
        hits += (arg == tc).sum(0).cpu()
        ce_cb += c.sum(0).double().cpu()
    return ce, hits, ce_cb
