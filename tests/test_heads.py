"""The fused codebook head + cross-entropy (models/heads.py, csrc/group_xent.cpp) against the plain path."""
import pytest
import torch
import torch.nn.functional as F

from ssmtts.models import TTSModel
from ssmtts.models.cpu_ext import cpu_ext
from ssmtts.models.heads import (_group_xent_torch, codebook_cross_entropy, codebook_scores, group_xent,
                                 plain_cross_entropy)
from ssmtts.models.tts import length_regulate, window
from ssmtts.train.data import Batch
from ssmtts.train.metrics import accuracy_counts, head_losses, head_scores, losses

from test_model import BACKBONES, inputs, small


def _grads(fn, *leaves):
    for t in leaves:
        t.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), [t.grad.clone() for t in leaves]


@pytest.mark.parametrize("groups,K,N", [(8, 1024, 300), (3, 37, 50), (1, 5, 1)])
def test_fused_loss_and_gradients_equal_the_plain_path(groups, K, N):
    torch.manual_seed(0)
    H = 24
    h = torch.randn(N, H, requires_grad=True)
    lin = torch.nn.Linear(H, groups * K)
    target = torch.randint(0, K, (N, groups))
    w = torch.rand(N)
    args = (lin.weight, lin.bias, target, groups, w)
    ref, ref_g = _grads(lambda: plain_cross_entropy(h, *args), h, lin.weight, lin.bias)
    new, new_g = _grads(lambda: codebook_cross_entropy(h, *args) * 3.0, h, lin.weight, lin.bias)   # upstream grad 3
    torch.testing.assert_close(new, 3.0 * ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(new_g, ref_g):
        torch.testing.assert_close(a, 3.0 * b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


@pytest.mark.skipif(cpu_ext() is None, reason="C++ kernels not built")
def test_kernel_equals_its_pytorch_fallback_and_argmax():
    torch.manual_seed(1)
    z = torch.randn(64, 8 * 100) * 4
    z[3, 5] = z[3, 7] = 50.0                      # a tie: the first index wins, as torch.argmax
    target = torch.randint(0, 100, (64, 8))
    w = torch.rand(64)
    ce_k, arg_k, _ = group_xent(z.clone(), target, w, 8, grad=False)
    ce_t, arg_t, _ = _group_xent_torch(z.clone(), target, w, 8, grad=False)
    torch.testing.assert_close(ce_k, ce_t, rtol=1e-5, atol=1e-5)
    assert torch.equal(arg_k, arg_t) and arg_k[3, 0] == 5
    zk, zt = z.clone(), z.clone()
    group_xent(zk, target, w, 8, grad=True)
    _group_xent_torch(zt, target, w, 8, grad=True)
    torch.testing.assert_close(zk, zt, rtol=1e-5, atol=1e-7)
    # with a bias: logits z + b, and the bias' gradient summed in the kernel, whatever the thread count
    b = torch.randn(8 * 100)
    zk, zt = z.clone(), z.clone()
    ce_k, _, db_k = group_xent(zk, target, w, 8, grad=True, bias=b)
    ce_t, _, db_t = _group_xent_torch(zt, target, w, 8, grad=True, bias=b)
    torch.testing.assert_close(ce_k, ce_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(zk, zt, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(db_k, db_t, rtol=1e-5, atol=1e-6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, _, db_1 = group_xent(z.clone(), target, w, 8, grad=True, bias=b)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(db_1, db_k)


@pytest.mark.skipif(cpu_ext() is None, reason="C++ kernels not built")
def test_kernel_rejects_bad_targets_and_shapes():
    z = torch.randn(4, 16)
    with pytest.raises(RuntimeError, match="outside"):
        group_xent(z, torch.full((4, 2), 8), torch.ones(4), 2, grad=True)
    with pytest.raises(RuntimeError, match="groups"):
        group_xent(z, torch.zeros(4, 3, dtype=torch.long), torch.ones(4), 3, grad=True)
    with pytest.raises(RuntimeError, match="bias"):
        group_xent(z, torch.zeros(4, 2, dtype=torch.long), torch.ones(4), 2, grad=True, bias=torch.zeros(15))


def test_scores_equal_full_logits():
    torch.manual_seed(2)
    h, lin = torch.randn(70, 16), torch.nn.Linear(16, 8 * 64)
    target = torch.randint(0, 64, (70, 8))
    ce, hits, ce_cb = codebook_scores(h, lin.weight, lin.bias, target, 8, chunk=32)
    logits = lin(h).view(70, 8, 64)
    ref = F.cross_entropy(logits.transpose(1, 2), target, reduction="sum").detach()
    assert abs(ce - float(ref)) < 1e-3 * abs(float(ref))
    ref_cb0 = F.cross_entropy(logits[:, 0], target[:, 0], reduction="sum").detach()
    assert abs(float(ce_cb[0]) - float(ref_cb0)) < 1e-3 * abs(float(ref_cb0)) and abs(float(ce_cb.sum()) - ce) < 1e-2
    assert torch.equal(hits, (logits.argmax(-1) == target).sum(0))


def _batch(ids, dur, codes, ref, crop=None, start=None):
    B, T = codes.shape[0], codes.shape[2]
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, T - 9:] = False                         # item 0 is shorter: padding must not be scored
    return Batch(ids, dur, codes, mask, ref, start if start is not None else torch.zeros(B, dtype=torch.long),
                 crop or T, ["a", "b"], ["c", "d"])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_training_losses_and_gradients_equal_the_logits_path(backbone):
    """What run_training computes (states -> fused head + CE) equals the plain path it replaced:
    full logits, then `losses` (the formula every committed learning curve was made with)."""
    torch.manual_seed(0)
    model = TTSModel(small(backbone))
    ids, dur, codes, ref = inputs(T=70)
    b = _batch(ids, dur, codes, ref, crop=40, start=torch.tensor([3, 20]))
    params = [p for p in model.parameters()]

    def old():
        logits, ld = model(b.text_ids, b.durations, b.codes, b.ref_codes, b.crop_start, b.crop_len)
        ce, dl, _, _ = losses(logits, ld, b)
        return ce + dl

    def new():
        h, ld = model.states(b.text_ids, b.durations, b.codes, b.ref_codes, b.crop_start, b.crop_len)
        ce, dl, _, _ = head_losses(model, h, ld, b)
        return ce + dl

    ref_loss, ref_g = _grads(old, *params)
    new_loss, new_g = _grads(new, *params)
    torch.testing.assert_close(new_loss, ref_loss, rtol=1e-6, atol=1e-6)
    for a, g in zip(new_g, ref_g):
        torch.testing.assert_close(a, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backbone", ["hybrid", "transformer"])
def test_evaluation_counts_equal_the_logits_path(backbone):
    torch.manual_seed(0)
    model = TTSModel(small(backbone)).eval()
    b = _batch(*inputs(T=60))
    with torch.no_grad():
        logits, ld = model(b.text_ids, b.durations, b.codes, b.ref_codes)
        ce_ref, _, target, mask = losses(logits, ld, b)
        counts_ref = accuracy_counts(logits, target, mask, ld, b)
        h, ld2 = model.states(b.text_ids, b.durations, b.codes, b.ref_codes)
        ce, counts = head_scores(model, h, ld2, b)
        cb0 = F.cross_entropy(logits[..., 0, :][mask], target[:, 0][mask], reduction="sum")   # codebook 0's CE
    ce_cb0 = counts.pop("ce_sum_cb0")
    assert counts == counts_ref
    assert abs(ce_cb0 - float(cb0)) < 1e-4 * float(cb0)
    assert abs(ce - float(ce_ref)) < 1e-5 * float(ce_ref)


def test_windowed_length_regulation_equals_regulate_then_window():
    ids, dur, codes, _ = inputs(T=70)
    enc = torch.randn(2, ids.shape[1], 8)
    start = torch.tensor([0, 33])
    full = window(length_regulate(enc, dur, 70), start, 37, dim=1)
    assert torch.equal(length_regulate(enc, dur, 37, start=start), full)
