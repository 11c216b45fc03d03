"""Generation: the streamed, stateful decoder reproduces the teacher-forced model; seeds, errors, WAVs."""
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ssmtts.corpus.text import TextError, UnknownCharacterError
from ssmtts.models import ModelConfig, TTSModel
from ssmtts.models.generate import generate, generate_from_text
from ssmtts.samples import make_samples, mcd

from test_model import BACKBONES, inputs, small


DEFAULT_RECIPE = {k: getattr(ModelConfig, k) for k in ("decoder_input", "decoder_causal")}  # dataclass defaults


@pytest.mark.parametrize("recipe", ["prev_codes", "default"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_generation_is_what_the_teacher_forced_model_predicts_on_the_same_tokens(backbone, recipe):
    """Greedy generation (frame by frame with state carried and fed its own tokens, or in one pass for
    a decoder that reads no codes) picks, at every frame, the argmax of a single teacher-forced pass
    over the tokens it generated: for the original decoder and for ModelConfig's default recipe."""
    torch.manual_seed(0)
    model = TTSModel(small(backbone, **(DEFAULT_RECIPE if recipe == "default" else {}))).eval()
    ids, dur, _, ref = inputs(B=1, T=70)
    g = generate(model, ids[0], ref[0], durations=dur[0])
    assert g.codes.shape == (8, 70) and len(g.ms_per_frame) == 70
    with torch.no_grad():
        logits, _ = model(ids, dur, torch.from_numpy(g.codes)[None], ref)
    assert np.array_equal(logits[0].argmax(-1).T.numpy(), g.codes)


def test_sampling_is_reproducible_with_a_seed():
    torch.manual_seed(0)
    model = TTSModel(small("mamba")).eval()
    ids, dur, _, ref = inputs(B=1, T=70)
    a = generate(model, ids[0], ref[0], durations=dur[0], temperature=1.0, top_k=20, seed=7)
    b = generate(model, ids[0], ref[0], durations=dur[0], temperature=1.0, top_k=20, seed=7)
    c = generate(model, ids[0], ref[0], durations=dur[0], temperature=1.0, top_k=20, seed=8)
    assert np.array_equal(a.codes, b.codes) and not np.array_equal(a.codes, c.codes)


def test_predicted_durations_set_the_length():
    torch.manual_seed(0)
    model = TTSModel(small("hybrid")).eval()
    with torch.no_grad():
        model.duration[-1].bias.fill_(np.log1p(3.0))       # every symbol predicted at ~3 frames
        model.duration[-1].weight.zero_()
    g = generate_from_text(model, "Żółć", torch.zeros(8, 10, dtype=torch.long))
    assert g.n_frames == 3 * 5 and list(g.durations) == [3] * 5      # BOS + 4 letters


def test_bad_text_gives_the_documented_errors():
    model = TTSModel(small("mamba", max_positions=64)).eval()
    ref = torch.zeros(8, 10, dtype=torch.long)
    with pytest.raises(TextError, match="empty"):
        generate_from_text(model, "   ", ref)
    with pytest.raises(UnknownCharacterError, match="'#'"):
        generate_from_text(model, "Zażółć # jaźń", ref)
    with pytest.raises(TextError, match="more than the limit"):
        generate_from_text(model, "a" * 100, ref)
    with pytest.raises(TextError, match="frames"):                  # fits the table, not the frame limit
        generate(model, [1, 5, 6], ref, durations=[30, 30, 30])


@pytest.mark.parametrize("backbone", ["mamba", "transformer"])
def test_bad_style_references_are_errors_not_crashes(backbone):
    """An empty reference used to kill the process (SIGFPE in the scan kernel); out-of-range ids gave an
    opaque IndexError, negative ones were read silently."""
    model = TTSModel(small(backbone)).eval()
    with pytest.raises(ValueError, match="no frames"):
        generate_from_text(model, "Ala", np.zeros((8, 0)), durations=[1, 2, 2, 2])
    for bad in (-1, 5000):
        with pytest.raises(ValueError, match=r"ids in \[0, 1024\)"):
            generate_from_text(model, "Ala", np.full((8, 10), bad), durations=[1, 2, 2, 2])
    with pytest.raises(ValueError, match="shape"):
        generate_from_text(model, "Ala", np.zeros((3, 10)), durations=[1, 2, 2, 2])


def test_kernels_refuse_empty_and_mismatched_inputs():
    from ssmtts.models.cpu_ext import cpu_ext
    from ssmtts.models.scan import selective_scan
    if cpu_ext() is None:
        pytest.skip("C++ kernels not built")
    D, N = 8, 4
    A = -torch.ones(D, N)
    for L in (0, 5):
        u = torch.randn(2, L, D)
        Bm = torch.randn(2, L, N if L else N)
        if L == 0:
            with pytest.raises(RuntimeError, match="non-empty"):
                selective_scan(u, u.clone(), A, Bm, Bm.clone(), torch.ones(D), backend="cpu")
        else:
            with pytest.raises(RuntimeError, match="B and C"):
                selective_scan(u, u.clone(), A, Bm[:, :, :2], Bm[:, :, :2], torch.ones(D), backend="cpu")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_half_weight_generation_matches_float32_tokens_mostly(backbone, monkeypatch):
    """The float16-weight copy (models/inference.py) changes only the one-frame products, leaves the
    model passed in untouched, and picks (nearly) the same greedy tokens, for every backbone (the
    Transformer's KV cache reads its projection's sizes: a replaced layer must still tell them)."""
    from ssmtts.models import inference
    from ssmtts.models.inference import HalfWeightLinear, half_weights
    monkeypatch.setattr(inference, "MIN_WEIGHTS", 1024)     # replace the mixers' projections too at this size
    torch.manual_seed(0)
    model = TTSModel(small(backbone, d_model=64)).eval()
    fast = half_weights(model)
    assert isinstance(fast.heads, HalfWeightLinear) and isinstance(model.heads, torch.nn.Linear)
    assert sum(isinstance(m, HalfWeightLinear) for m in fast.decoder.modules()) >= 2
    ids, dur, _, ref = inputs(B=1, T=70)
    a = generate(model, ids[0], ref[0], durations=dur[0])
    b = generate(fast, ids[0], ref[0], durations=dur[0])
    assert (a.codes == b.codes).mean() > 0.9


def test_mcd_is_zero_for_identical_audio_and_grows_with_distortion():
    t = np.arange(24000) / 24000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    noisy = wav + 0.05 * np.random.default_rng(0).standard_normal(len(wav)).astype(np.float32)
    assert mcd(wav, wav) == pytest.approx(0.0, abs=1e-6) and mcd(noisy, wav) > 1.0


def test_make_samples_writes_valid_24khz_wavs_and_measures(corpus, tmp_path):
    res = make_samples(corpus, tmp_path / "results", models=[("phase1", "hybrid")], profile="smoke",
                       n_sentences=1, cost_frames=30)
    s = res["samples"]
    gen = s[s.model == "hybrid"].iloc[0]
    wavs = [(f"hybrid/{gen.uid}_true_durations.wav", gen.true_frames),
            (f"ground_truth/{gen.uid}_codec.wav", gen.true_frames), (f"ground_truth/{gen.uid}_original.wav", gen.true_frames)]
    if gen.status == "ok":       # 6 smoke steps may predict 0 frames: a row saying so, not a crash
        wavs.append((gen.wav, gen.generated_frames))
    else:
        assert gen.status.startswith("failed: the predicted duration")
    for rel, frames in wavs:
        info = sf.info(tmp_path / "results" / "samples" / rel)
        assert info.samplerate == 24000 and info.channels == 1 and info.frames == frames * 320
    assert 0 <= gen.acc_free_running <= 100 and 0 <= gen.acc_teacher_forced <= 100
    assert np.isfinite([gen.mcd_true_durations_db, gen.rtf_tokens, gen.ms_per_frame_median]).all()
    assert s[s.model == "ground_truth"].mcd_codec_floor_db.iloc[0] > 0
    assert gen.retrained and len(res["frame_cost"]) == 30
    assert pd.read_csv(tmp_path / "results" / "samples" / "samples.csv").shape[0] == len(s)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("causal", [True, False])
def test_non_autoregressive_generation_is_the_teacher_forced_argmax(backbone, causal):
    """The default kind of decoder (no codes read): one generation pass picks exactly the argmax of
    the teacher-forced pass, and a causal one streamed frame by frame gives the same tokens."""
    torch.manual_seed(0)
    model = TTSModel(small(backbone, decoder_input="none", decoder_causal=causal)).eval()
    ids, dur, codes, ref = inputs(B=1, T=70)
    g = generate(model, ids[0], ref[0], durations=dur[0])
    with torch.no_grad():
        logits, _ = model(ids, dur, codes, ref)
    assert np.array_equal(logits[0].argmax(-1).T.numpy(), g.codes)
    if causal:
        streamed = generate(model, ids[0], ref[0], durations=dur[0], stream=True)
        assert np.array_equal(streamed.codes, g.codes)
    else:
        with pytest.raises(ValueError, match="cannot stream"):
            generate(model, ids[0], ref[0], durations=dur[0], stream=True)


@pytest.mark.parametrize("carry", [True, False])
def test_chunked_generation_is_the_teacher_forced_chunk_pass(carry):
    """Phase 4's speech protocol generates as its models train: chunk k reads the symbols its frames overlap at
    positions 0..l-1, the state carried (stateful) or fresh; its tokens are the argmax of the chunk-by-chunk
    teacher-forced pass (TTSModel.forward_chunk), and the carried state changes them."""
    from ssmtts.corpus.build import span_symbols
    torch.manual_seed(0)
    # (full-strength residual branches: at the default small layer scale the state barely moves an untrained argmax)
    model = TTSModel(small("mamba", decoder_input="none", decoder_causal=True, layer_scale_init=1.0)).eval()
    ids, dur, codes, ref = inputs(B=1, T=70)
    C = 24
    g = generate(model, ids[0], ref[0], durations=dur[0], chunk_frames=C, carry_state=carry)
    assert g.codes.shape == (8, 70)
    expected, state = [], None
    with torch.no_grad():
        for start in range(0, 70, C):
            l = min(C, 70 - start)
            s_ids, s_dur = span_symbols(ids[0].numpy(), dur[0].numpy(), start, start + l)
            blank = torch.zeros(1, 8, l, dtype=torch.long)
            logits, _, new_state = model.forward_chunk(torch.as_tensor(s_ids)[None], torch.as_tensor(s_dur)[None],
                                                       blank, ref, state)
            state = new_state if carry else None
            expected.append(logits[0].argmax(-1).T.numpy())
    assert np.array_equal(np.concatenate(expected, axis=1), g.codes)
    other = generate(model, ids[0], ref[0], durations=dur[0], chunk_frames=C, carry_state=not carry)
    assert np.array_equal(other.codes[:, :C], g.codes[:, :C]) and not np.array_equal(other.codes, g.codes)


def test_chunked_generation_needs_a_causal_decoder_that_reads_no_codes():
    ids, dur, _, ref = inputs(B=1, T=40)
    for recipe in (dict(decoder_input="none", decoder_causal=False), dict(decoder_input="prev_codes")):
        model = TTSModel(small("mamba", **recipe)).eval()
        with pytest.raises(ValueError, match="chunk"):
            generate(model, ids[0], ref[0], durations=dur[0], chunk_frames=16)


def test_prenet_dropout_generation_is_reproducible_with_its_seed():
    torch.manual_seed(0)
    model = TTSModel(small("hybrid", decoder_input="prev_codes_dropout")).eval()
    ids, dur, _, ref = inputs(B=1, T=40)
    a, b, c = (generate(model, ids[0], ref[0], durations=dur[0], seed=s) for s in (3, 3, 4))
    assert np.array_equal(a.codes, b.codes) and not np.array_equal(a.codes, c.codes)
