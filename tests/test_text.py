import pytest

from ssmtts.corpus import text

POLISH = "aąbcćdeęfghijklłmnńoóprsśtuwyzźż"


def test_every_polish_letter_is_its_own_symbol_in_both_cases():
    for ch in POLISH + POLISH.upper():
        assert ch in text.SYMBOL_TO_ID, ch
    ids = [text.SYMBOL_TO_ID[c] for c in POLISH + POLISH.upper()]
    assert len(set(ids)) == 2 * len(POLISH)


def test_vocabulary_is_stable():
    # ids are part of every checkpoint: changing the order silently breaks old models
    assert text.SYMBOLS[:3] == ["<pad>", "<bos>", " "]
    assert text.SYMBOL_TO_ID["ą"] == 18 and text.SYMBOL_TO_ID["Ż"] == 83
    assert text.VOCAB_SIZE == 87


def test_roundtrip_and_bos():
    s = "Żółć gęślą jaźń, ĄĘŁŃÓŚŹŻĆ!"
    ids = text.encode(s)
    assert ids[0] == text.BOS_ID and text.decode(ids) == s


def test_normalisation_is_documented_and_lossless():
    assert text.normalize("  a\u0328  b\t\nc ") == "ą b c"        # combining ogonek -> ą, whitespace
    assert text.normalize("“tak” – ’no’…") == "”tak” — 'no'..."


def test_unknown_character_names_char_and_position():
    with pytest.raises(text.UnknownCharacterError, match=r"'ß'.*position 3"):
        text.encode("abcß")
    with pytest.raises(text.UnknownCharacterError, match="Write numbers in words"):
        text.encode("mam 5 kotów")


def test_empty_and_too_long_text():
    with pytest.raises(text.TextError, match="empty"):
        text.encode("   ")
    with pytest.raises(text.TextError, match="limit 10"):
        text.encode("a" * 10, max_len=10)
