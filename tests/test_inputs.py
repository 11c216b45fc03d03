"""Property-based tests (hypothesis) of what users pass in: every input ends in a correct result or a
documented error (TextError, ValueError, CorruptAudioError), never another exception or a signal."""
import io

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ssmtts.corpus.build import CorruptAudioError, read_wav
from ssmtts.corpus.codec import checked_codes
from ssmtts.corpus.durations import SAMPLE_RATE
from ssmtts.corpus.text import BOS_ID, VOCAB_SIZE, TextError, encode
from ssmtts.models import TTSModel
from ssmtts.models.generate import generate, generate_from_text

from test_model import small

# derandomize: the same inputs on every run (CI and local agree); database=None: nothing written to the repo
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
POLISH = "aąbcćdeęfghijklłmnńoóprsśtuwyzźż AĄBĆŻŹ.,?!-—()\"'„”’«»…\t\n"


@SETTINGS
@given(st.one_of(st.text(max_size=5000), st.text(alphabet=POLISH, max_size=3000)))
def test_text_front_end_gives_ids_or_a_text_error(text):
    try:
        ids = encode(text, max_len=2048)
    except TextError as e:
        assert str(e)
        event(type(e).__name__)
        return
    event("ids")
    assert ids[0] == BOS_ID and 2 <= len(ids) <= 2048 and all(0 < i < VOCAB_SIZE for i in ids)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = TTSModel(small("mamba", max_positions=256)).eval()
    with torch.no_grad():   # predicted durations ~2 frames per symbol, so predicted-duration paths generate too
        m.duration[-1].bias.fill_(float(np.log1p(2.0)))
    return m


numbers = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=POLISH, max_size=40), data=st.data(),
       ref=st.one_of(st.lists(st.integers(0, 1023), max_size=24), st.lists(st.integers(-3000, 3000), max_size=24)),
       ref_frames=st.integers(0, 3), temperature=st.sampled_from([0.0, 0.7]))
def test_generation_gives_codes_or_a_documented_error(model, text, data, ref, ref_frames, temperature):
    try:
        n_symbols = len(encode(text))
    except TextError:
        n_symbols = 1
    durations = data.draw(st.one_of(st.none(), st.lists(numbers, max_size=45),
                                    st.lists(st.integers(0, 6), min_size=n_symbols, max_size=n_symbols)))
    ref_codes = np.resize(np.asarray(ref or [0], dtype=np.int64), 8 * ref_frames).reshape(8, ref_frames)
    try:
        g = generate_from_text(model, text, ref_codes, durations=durations, temperature=temperature, max_frames=200)
    except (TextError, ValueError) as e:
        assert str(e)
        event(f"{type(e).__name__}: {str(e)[:25]}")
        return
    event("generated")
    assert g.codes.shape[0] == 8 and 1 <= g.n_frames <= 200
    assert g.codes.min() >= 0 and g.codes.max() < 1024


@SETTINGS
@given(st.one_of(
    st.lists(st.lists(st.integers(-5000, 5000), min_size=0, max_size=6), min_size=0, max_size=10),
    st.integers(0, 6).flatmap(lambda t: st.lists(st.lists(st.integers(-3, 1030), min_size=t, max_size=t),
                                                 min_size=8, max_size=8)),
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3), min_size=8, max_size=8)))
def test_codes_to_decode_are_checked(rows):
    try:
        a = np.array(rows)
    except ValueError:   # ragged lists are not an array at all: nothing to check
        return
    try:
        c = checked_codes(a)
    except ValueError as e:
        assert str(e)
        event("ValueError")
        return
    event("codes")
    assert c.shape == (8, a.shape[1]) and c.dtype == np.int64 and c.min() >= 0 and c.max() < 1024


def test_codec_decode_rejects_bad_codes(corpus):
    with pytest.raises(ValueError, match="ids in"):
        corpus.codec.decode(np.full((8, 3), -1))
    with pytest.raises(ValueError, match="no frames"):
        corpus.codec.decode(np.zeros((8, 0), dtype=np.int64))
    assert corpus.codec.decode(np.zeros((8, 2), dtype=np.int64)).shape == (640,)


SUBTYPES = [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
            ("FLAC", "PCM_16")]


@SETTINGS
@given(fmt=st.sampled_from(SUBTYPES), rate=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
       channels=st.integers(1, 3), n=st.integers(0, 3000), cut=st.one_of(st.none(), st.integers(0, 400)),
       garbage=st.booleans())
def test_audio_reader_gives_24k_mono_or_a_corrupt_audio_error(tmp_path_factory, fmt, rate, channels, n, cut, garbage):
    path = tmp_path_factory.mktemp("wav") / f"x.{fmt[0].lower()}"
    if garbage:
        path.write_bytes(np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes())
    else:
        buf = io.BytesIO()
        data = (0.5 * np.sin(np.arange(n)[:, None] * 0.01 * (1 + np.arange(channels)))).astype(np.float32)
        sf.write(buf, data, rate, format=fmt[0], subtype=fmt[1])
        raw = buf.getvalue()
        path.write_bytes(raw[:cut] if cut is not None else raw)
    try:
        wav = read_wav(path)
    except CorruptAudioError as e:
        assert str(path) in str(e)
        event("CorruptAudioError")
        return
    event("read")
    assert wav.ndim == 1 and wav.dtype == np.float32 and len(wav) > 0 and np.isfinite(wav).all()
    if not garbage and cut is None:
        assert abs(len(wav) - n * SAMPLE_RATE / rate) <= 2


def test_generation_refuses_bad_durations(model):
    ref = np.zeros((8, 5), dtype=np.int64)
    for bad in ([1, float("nan"), 2, 2], [1, -1, 2, 2], [1, 2.5, 2, 2], [1, float("inf"), 2, 2]):
        with pytest.raises(ValueError, match="durations"):
            generate(model, [1, 5, 6, 7], ref, durations=bad)
