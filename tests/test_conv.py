"""The fused CPU causal-conv kernel against the PyTorch definition: outputs, new prefix, and the
gradients of x, weight, bias and the prefix."""
import pytest
import torch
import torch.nn.functional as F

from ssmtts.models.conv import ACTIVATIONS, causal_conv, causal_depthwise_conv, centred_conv
from ssmtts.models.cpu_ext import cpu_ext

pytestmark = pytest.mark.skipif(cpu_ext() is None, reason="no C++ compiler: CPU kernels not built")


def run(fn, x_full, w, b, prefix, act):
    """Conv of the first half of x_full's channels (a strided view, as MambaLayer passes it)."""
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x_full, w, b, prefix)]
    xf, w_, b_, p_ = leaves
    x = xf[..., : xf.shape[-1] // 2]
    if fn == "fused":
        y, new_prefix = causal_conv(x, w_, b_, p_, activation=act)
    else:
        y, new_prefix = causal_depthwise_conv(x, w_, b_, p_)
        y = ACTIVATIONS[act][1](y)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    ((y * weights).sum() + (new_prefix ** 2).sum()).backward()
    return y, new_prefix, [t.grad if t is not None else None for t in leaves]


@pytest.mark.parametrize("L", [1, 2, 3, 5, 64])
@pytest.mark.parametrize("K", [2, 4, 5])
@pytest.mark.parametrize("with_prefix", [False, True])
@pytest.mark.parametrize("act", [None, "silu", "gelu"])
def test_fused_conv_matches_pytorch(L, K, with_prefix, act):
    g = torch.Generator().manual_seed(100 * L + K)
    C = 21   # full lane blocks (of 16 or 8) and a ragged one
    x = torch.randn(2, L, 2 * C, generator=g)
    w = torch.randn(C, 1, K, generator=g)
    b = torch.randn(C, generator=g)
    prefix = torch.randn(2, K - 1, C, generator=g) if with_prefix else None
    y0, p0, g0 = run("torch", x, w, b, prefix, act)
    y1, p1, g1 = run("fused", x, w, b, prefix, act)
    torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p1, p0)
    for name, a, r in zip(["x", "weight", "bias", "prefix"], g1, g0):
        if r is None:
            assert a is None
            continue
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5, msg=lambda m: f"d{name}: {m}")


def test_fused_conv_in_chunks_equals_one_pass():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 50, 20, generator=g), torch.randn(20, 1, 4, generator=g), torch.randn(20, generator=g)
    y, _ = causal_conv(x, w, b, activation="silu")
    y1, p = causal_conv(x[:, :17], w, b, activation="silu")
    y2, p = causal_conv(x[:, 17:18], w, b, p, activation="silu")
    y3, _ = causal_conv(x[:, 18:], w, b, p, activation="silu")
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), y, atol=0, rtol=0)


@pytest.mark.parametrize("K", [1, 2, 3, 5, 9])
def test_centred_conv_equals_nn_conv1d_padded_both_ways(K):
    """The look-both-ways conv (encoder; bidirectional decoder) through the causal kernel equals the
    nn.Conv1d form it replaced, GELU and gradients included."""
    torch.manual_seed(K)  # the conv's init too: the result must not depend on which tests ran before
    x = torch.randn(3, 40, 21, requires_grad=True)
    conv = torch.nn.Conv1d(21, 21, K, groups=21)
    left = (K - 1) // 2
    ref = F.gelu(conv(F.pad(x.transpose(1, 2), (left, K - 1 - left))).transpose(1, 2))
    weights = torch.linspace(-1, 1, ref.numel()).view_as(ref)
    gr = torch.autograd.grad((ref * weights).sum(), [x, conv.weight, conv.bias])
    y = centred_conv(x, conv.weight, conv.bias, activation="gelu")
    gy = torch.autograd.grad((y * weights).sum(), [x, conv.weight, conv.bias])
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    # Gradients are sums over 120 positions, accumulated in another order by each path: float32 noise
    # there is ~1e-5 relative (CI saw 1.4e-5 on a bias gradient of 0.25), so the bound is 1e-4.
    for a, r in zip(gy, gr):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)
