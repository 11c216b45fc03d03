"""Model package: state in/out, generation equivalence, no leakage, parameter formulas, config errors."""
import pytest
import torch
import torch.nn.functional as F

from ssmtts.corpus.text import TextError
from ssmtts.models import ModelConfig, TTSModel
from ssmtts.models.blocks import Backbone
from ssmtts.models.config import ConfigError
from ssmtts.models.mamba import _SplitLinear
from ssmtts.models.mamba2 import Mamba2Layer
from ssmtts.models.state import HybridState, KVCache, MambaState
from ssmtts.models.tts import length_regulate

BACKBONES = ["transformer", "hybrid", "mamba", "mamba2"]


def small(backbone, **kw):
    # the autoregressive decoder unless a test says otherwise (the tests of causality and state need it)
    base = dict(backbone=backbone, n_layers=2, n_enc_layers=1, d_model=32, expand=1.5, n_heads=4,
                mamba2_head_dim=16, conv_kernels=(3, 5), decoder_input="prev_codes", decoder_causal=True)
    if backbone == "mamba2":
        base["expand"] = 2
    return ModelConfig(**{**base, **kw})


def inputs(B=2, S=15, T=70, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 80, (B, S), generator=g)
    dur = torch.randint(2, 7, (B, S), generator=g)
    dur[:, -1] += T - dur.sum(1)  # exactly T frames
    dur = dur.clamp_min(0)
    return ids, dur, torch.randint(0, 1024, (B, 8, T), generator=g), torch.randint(0, 1024, (B, 8, 150), generator=g)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_chunks_with_carried_state_equal_one_pass(backbone):
    torch.manual_seed(0)
    cfg = small(backbone)
    dec = Backbone(cfg, 3, causal=True).eval()
    x = torch.randn(2, 101, cfg.d_model)
    full, _ = dec(x)
    state, outs = None, []
    for a, b in [(0, 37), (37, 38), (38, 90), (90, 101)]:  # uneven chunks, one of length 1
        y, state = dec(x[:, a:b], state)
        outs.append(y)
    assert torch.allclose(torch.cat(outs, 1), full, atol=2e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frame_by_frame_generation_equals_teacher_forced_pass(backbone):
    torch.manual_seed(0)
    model = TTSModel(small(backbone)).eval()
    ids, dur, codes, ref = inputs()
    with torch.no_grad():
        logits, _ = model(ids, dur, codes, ref)
        enc, _ = model.encode_text(ids)
        reg, style, prev = length_regulate(enc, dur, codes.shape[2]), model.style_vector(ref), model.shift_codes(codes)
        state, steps = model.allocate_decoder_state(ids.shape[0]), []
        for t in range(codes.shape[2]):
            out, state = model.decode_step(reg[:, t:t + 1], style, prev[:, :, t:t + 1], t, state)   # explicit step
            steps.append(out)
        chunks, carried = [], None
        for a, b in [(0, 1), (1, 17), (17, codes.shape[2])]:        # the sequence path with a carried state
            out, carried = model.decode(reg[:, a:b], style, prev[:, :, a:b], a, carried)
            chunks.append(out)
    assert torch.allclose(torch.cat(steps, 1), logits, atol=5e-5)
    assert torch.allclose(torch.cat(chunks, 1), logits, atol=5e-5)
    kinds = {"transformer": KVCache, "mamba": MambaState, "mamba2": MambaState, "hybrid": HybridState}
    assert all(type(s) is kinds[backbone] for s in state) and len(state) == model.cfg.n_layers


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_mixer_steps_from_its_allocated_state_like_its_sequence_pass(backbone):
    """mixer.step from allocate_state, frame by frame = mixer.forward over the whole sequence."""
    torch.manual_seed(0)
    mixer = Backbone(small(backbone), 1, causal=True).blocks[0].mixer.eval()
    x = torch.randn(2, 9, small(backbone).d_model)
    with torch.no_grad():
        full, _ = mixer(x)
        state, ys = mixer.allocate_state(2), []
        for t in range(9):
            y, state = mixer.step(x[:, t:t + 1], state)
            ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), full, atol=2e-5, rtol=1e-4)


def test_hybrid_checkpoints_written_before_the_hybrid_mixer_still_load():
    """Old checkpoints kept the hybrid's conv branches on the block (`convs.*`, `combine.*`, Mamba as `mixer.*`)."""
    torch.manual_seed(0)
    model = TTSModel(small("hybrid")).eval()
    legacy = {}
    for k, v in model.state_dict().items():
        k = k.replace(".mixer.convs.", ".convs.").replace(".mixer.combine.", ".combine.").replace(".mixer.mamba.", ".mixer.")
        legacy[k] = v
    assert any(".blocks.0.combine." in k for k in legacy)
    fresh = TTSModel(small("hybrid")).eval()
    fresh.load_state_dict(legacy)
    ids, dur, codes, ref = inputs()
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, dur, codes, ref)[0], model(ids, dur, codes, ref)[0])


def test_decoder_states_survive_a_weights_only_checkpoint(tmp_path):
    """A stateful chunk run's carried state goes into its checkpoint as plain data and comes back typed."""
    from ssmtts.models.state import from_plain, to_plain
    torch.manual_seed(0)
    for backbone in BACKBONES:
        dec = Backbone(small(backbone), 2, causal=True).eval()
        _, state = dec(torch.randn(1, 5, small(backbone).d_model))
        torch.save({"carry": to_plain(state)}, tmp_path / "c.pt")
        back = from_plain(torch.load(tmp_path / "c.pt", weights_only=True)["carry"])
        assert [type(s) for s in back] == [type(s) for s in state]
        assert all(torch.equal(a.ssm, b.ssm) for a, b in zip(back, state) if a.ssm is not None)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_no_leakage_from_current_or_future_frames(backbone):
    """Changing audio frames t..T must not change logits of frames < t (nor of frame t itself:
    frame t predicts its own codes from frames < t)."""
    torch.manual_seed(0)
    model = TTSModel(small(backbone)).eval()
    ids, dur, codes, ref = inputs()
    t = 31
    changed = codes.clone()
    changed[:, :, t:] = torch.randint(0, 1024, changed[:, :, t:].shape)
    with torch.no_grad():
        a, _ = model(ids, dur, codes, ref)
        b, _ = model(ids, dur, changed, ref)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])  # the test can see a change where one is allowed


def test_style_reference_is_never_the_target(corpus):
    from ssmtts.train.data import fragment, train_batch
    train = corpus.split("train")
    for step in range(20):
        b = train_batch(train, 8, seed=0, step=step, ref_frames=150, crop=192, ref_pool=train)
        assert all(u != r for u, r in zip(b.uids, b.ref_uids))
    frag = [fragment(train[0], 300)]
    b = train_batch(frag, 1, seed=0, step=0, ref_frames=150, crop=None, ref_pool=train)
    assert b.ref_uids[0].split("[")[0] != train[0].uid


@pytest.mark.parametrize("d_embed", [64, 96])
def test_embedding_parameter_counts_follow_the_formulas(d_embed):
    cfg = small("mamba", d_model=96, d_embed=d_embed)
    counts = TTSModel(cfg).param_counts()
    assert counts["emb_audio"] == 8 * 1024 * d_embed
    assert counts["emb_pos"] == 2048 * d_embed
    assert counts["emb_text"] == cfg.vocab_size * d_embed
    assert counts["emb_proj"] == (0 if d_embed == 96 else d_embed * 96 + 96)


def test_invalid_configs_raise_clear_errors():
    with pytest.raises(ConfigError, match="unknown backbone 'lstm'"):
        ModelConfig(backbone="lstm")
    with pytest.raises(ConfigError, match="expand E must be > 0"):
        ModelConfig(expand=0)
    with pytest.raises(ConfigError, match="not divisible by n_heads"):
        ModelConfig(backbone="transformer", d_model=100, n_heads=8)
    with pytest.raises(ConfigError, match="whole number of channels"):
        ModelConfig(d_model=33, expand=1.5)
    with pytest.raises(ConfigError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"layers": 3})


def test_config_roundtrips_through_csv_row():
    cfg = small("hybrid", conv_kernels=(9, 11))
    row = cfg.to_row(prefix="")
    assert row["conv_kernels"] == "9-11"
    assert ModelConfig.from_dict(row) == cfg


def test_text_longer_than_max_positions_is_rejected():
    model = TTSModel(small("mamba", max_positions=64))
    ids, dur, codes, ref = inputs(S=65, T=60)
    with pytest.raises(TextError, match="max_positions=64"):
        model(ids, dur, codes, ref)


def test_mamba2_chunked_ssd_matches_a_step_by_step_recurrence():
    torch.manual_seed(0)
    layer = Mamba2Layer(32, 64, d_state=8, head_dim=16, chunk=16).eval()
    x = torch.randn(1, 45, 32)
    with torch.no_grad():
        full, last = layer(x)
        state, outs = None, []
        for t in range(45):
            y, state = layer(x[:, t:t + 1], state)
            outs.append(y)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)
    assert torch.allclose(state.ssm_state, last.ssm_state, atol=1e-5)


@pytest.mark.parametrize("b,l,h,p,n,chunk,with_h0", [(2, 96, 3, 48, 16, 48, False), (1, 45, 4, 16, 8, 15, True),
                                                      (1, 1, 2, 8, 4, 1, True)])
def test_ssd_in_batched_matmuls_equals_the_papers_minimal_ssd(b, l, h, p, n, chunk, with_h0):
    """The training path's ssd (batched matmuls, exp of A_cum differences, a loop over chunks) computes what the
    Mamba-2 paper's ssd_minimal_discrete does: outputs, final state and every gradient, in float64 to 1e-10
    and in float32 to rounding, with decays as large as the layer's initialisation gives (A up to -16, dt up to 0.1)."""
    from ssmtts.models.mamba2 import ssd, ssd_minimal
    g = torch.Generator().manual_seed(l)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        X = torch.randn(b, l, h, p, generator=g, dtype=dtype)
        dt = F.softplus(torch.randn(b, l, h, generator=g, dtype=dtype) - 3)
        A = -torch.empty(h, dtype=dtype).uniform_(1, 16, generator=g) * dt
        Bm, Cm = torch.randn(b, l, n, generator=g, dtype=dtype), torch.randn(b, l, n, generator=g, dtype=dtype)
        h0 = torch.randn(b, h, p, n, generator=g, dtype=dtype) if with_h0 else None
        results = []
        for fn in (ssd, ssd_minimal):
            leaves = [t.clone().requires_grad_(True) for t in (X, A, Bm, Cm) + ((h0,) if with_h0 else ())]
            y, state = fn(*leaves[:4], chunk, leaves[4] if with_h0 else None)
            (y.sin().sum() + state.cos().sum()).backward()
            results.append([y.detach(), state.detach()] + [t.grad for t in leaves])
        for new, ref in zip(*results):
            torch.testing.assert_close(new, ref, rtol=tol, atol=tol * max(1.0, float(ref.abs().max())))


@pytest.mark.parametrize("use", ["both", "first", "second"])
def test_split_in_projection_matches_one_matmul_and_chunk(use):
    """Mamba's in_proj as two contiguous halves: same outputs and gradients as linear + chunk."""
    g = torch.Generator().manual_seed(3)
    x0, w0 = torch.randn(2, 7, 12, generator=g), torch.randn(10, 12, generator=g)
    outs = []
    for split in (True, False):
        x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        a, b = _SplitLinear.apply(x, w, 4) if split else F.linear(x, w).split([4, 6], dim=-1)
        assert a.shape == (2, 7, 4) and b.shape == (2, 7, 6)
        loss = {"both": (a * a).sum() + b.sin().sum(), "first": a.sum(), "second": b.cos().sum()}[use]
        loss.backward()
        outs.append((a, b, x.grad, w.grad))
    for split_t, ref_t in zip(*outs):
        torch.testing.assert_close(split_t, ref_t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("causal", [True, False])
def test_decoder_without_codes_never_reads_them(backbone, causal):
    """decoder_input="none": the logits do not depend on the audio codes at all (no target to read),
    causal or bidirectional; and a causal decoder's frame t does not see later text."""
    torch.manual_seed(0)
    model = TTSModel(small(backbone, decoder_input="none", decoder_causal=causal)).eval()
    ids, dur, codes, ref = inputs()
    with torch.no_grad():
        a, _ = model(ids, dur, codes, ref)
        b, _ = model(ids, dur, torch.randint(0, 1024, codes.shape), ref)
    assert torch.equal(a, b)


def test_prenet_dropout_stays_on_in_eval_mode():
    torch.manual_seed(0)
    model = TTSModel(small("mamba", decoder_input="prev_codes_dropout")).eval()
    ids, dur, codes, ref = inputs()
    with torch.no_grad():
        torch.manual_seed(1)
        a, _ = model(ids, dur, codes, ref)
        torch.manual_seed(2)
        b, _ = model(ids, dur, codes, ref)
    assert not torch.allclose(a, b)


def test_decoder_recipe_errors_and_names():
    with pytest.raises(ConfigError, match="must be causal"):
        ModelConfig(decoder_input="prev_codes", decoder_causal=False)
    with pytest.raises(ConfigError, match="unknown decoder_input"):
        ModelConfig(decoder_input="mel")
    assert ModelConfig(decoder_input="prev_codes").decoder_tag == ""
    assert small("mamba", decoder_input="none", decoder_causal=False).name.endswith("_dec-none-bidir")
    row = small("hybrid", decoder_input="none", decoder_causal=False).to_row(prefix="")
    assert ModelConfig.from_dict(row).decoder_causal is False
    old_row = {k: v for k, v in small("mamba").to_row(prefix="").items() if not k.startswith(("decoder", "prenet"))}
    assert ModelConfig.from_dict({**old_row, "decoder_input": float("nan")}).decoder_input == "prev_codes"


def test_the_position_table_scale_is_a_named_config_choice():
    from ssmtts.models.config import ConfigError
    torch.manual_seed(0)
    default, strong = TTSModel(small("transformer")), TTSModel(small("transformer", pos_emb_std=1.0))
    assert abs(float(default.pos_emb.weight.std()) - 0.02) < 0.002 and abs(float(strong.pos_emb.weight.std()) - 1.0) < 0.05
    assert "_pos" not in default.cfg.name and strong.cfg.name.endswith("_pos1")
    with pytest.raises(ConfigError, match="pos_emb_std"):
        small("transformer", pos_emb_std=0.0)


def test_bidirectional_pure_mamba_looks_ahead_only_where_allowed():
    """mamba_bidirectional: the text encoder and a decoder that reads no codes look both ways (frame 0
    changes with later text); a causal decoder stays forward-only; other backbones refuse it."""
    from ssmtts.models.blocks import BidirectionalMamba
    torch.manual_seed(0)
    cfg = small("mamba", decoder_input="none", decoder_causal=False, mamba_bidirectional=True)
    assert cfg.name.startswith("mamba_bi_L2") and ModelConfig.from_dict(cfg.to_row(prefix="")).mamba_bidirectional
    model = TTSModel(cfg).eval()
    assert all(isinstance(b.mixer, BidirectionalMamba) for b in [*model.encoder.blocks, *model.decoder.blocks])
    x = torch.randn(2, 30, 32)
    later = x.clone()
    later[:, 20:] = torch.randn(2, 10, 32)
    with torch.no_grad():
        a, _ = model.decoder(x)
        b, _ = model.decoder(later)
    assert not torch.allclose(a[:, :5], b[:, :5])         # the first frames hear the last ones
    with pytest.raises(ValueError, match="frame by frame"):
        model.allocate_decoder_state(1)
    causal = TTSModel(small("mamba", decoder_input="none", decoder_causal=True, mamba_bidirectional=True))
    assert not any(isinstance(b.mixer, BidirectionalMamba) for b in causal.decoder.blocks)
    assert all(isinstance(b.mixer, BidirectionalMamba) for b in causal.encoder.blocks)
    with pytest.raises(ConfigError, match="pure Mamba"):
        small("hybrid", mamba_bidirectional=True)


def test_bidirectional_mamba_reverses_each_row_within_its_valid_frames():
    """A padded row gives its valid frames the same output as the row alone: the backward scan starts at
    the row's last valid frame, never in its padding."""
    from ssmtts.models.blocks import BidirectionalMamba, reverse_index
    idx = reverse_index(torch.tensor([[True] * 3 + [False] * 2, [True] * 5]), 2, 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0]]
    torch.manual_seed(0)
    mixer = BidirectionalMamba(small("mamba", mamba_bidirectional=True)).eval()
    x = torch.randn(1, 12, 32)
    padded = torch.cat([x, torch.randn(1, 7, 32)], dim=1)              # garbage after frame 12
    mask = torch.arange(19)[None] < 12
    with torch.no_grad():
        alone, _ = mixer(x)
        in_batch, _ = mixer(padded, mask=mask)
    torch.testing.assert_close(in_batch[:, :12], alone, rtol=1e-5, atol=1e-5)
    flipped, _ = mixer(x.flip(1))      # swapping the two directions' roles: the model is not symmetric,
    assert not torch.allclose(flipped.flip(1), alone)   # so each direction has its own weights
