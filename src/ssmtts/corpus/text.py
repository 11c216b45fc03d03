"""Character vocabulary for Polish text.

Every character the model sees is its own symbol: all 35 Polish letters (plus q, v, x for
loanwords) in both cases, so `ą` and `a` are different ids, and a small punctuation set.
The vocabulary is a fixed, ordered list in this file, so ids are stable across runs and
machines. `normalize` does only what is documented below; anything else outside the
vocabulary raises `UnknownCharacterError`, never a silent drop.

Normalisation (documented, lossless for the shipped corpus):
  * Unicode NFC (a combining ogonek becomes the precomposed letter);
  * runs of whitespace become one space, leading/trailing whitespace is stripped;
  * typographic variants map to their vocabulary form: ’‘ -> ', “ -> ”, « -> „, » -> ”,
    – (en dash) -> — (em dash), … -> ...
Digits are *not* spelled out automatically (Polish numerals inflect with case and gender);
they raise an error asking the user to write the number in words.
"""
from __future__ import annotations

import re
import unicodedata

PAD, BOS = "<pad>", "<bos>"
LETTERS_LOWER = "aąbcćdeęfghijklłmnńoóprsśtuwyzźżqvx"
PUNCTUATION = " .,?!;:-—()\"'„”"
SYMBOLS: list[str] = [PAD, BOS] + list(PUNCTUATION) + list(LETTERS_LOWER) + list(LETTERS_LOWER.upper())
SYMBOL_TO_ID = {s: i for i, s in enumerate(SYMBOLS)}
PAD_ID, BOS_ID = SYMBOL_TO_ID[PAD], SYMBOL_TO_ID[BOS]
VOCAB_SIZE = len(SYMBOLS)

_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "“": "”", "«": "„", "»": "”", "–": "—"})


class TextError(ValueError):
    """Text the pipeline cannot take (empty, unknown characters, too long)."""


class UnknownCharacterError(TextError):
    def __init__(self, char: str, position: int, text: str):
        hint = " Write numbers in words." if char.isdigit() else ""
        super().__init__(
            f"unknown character {char!r} (U+{ord(char):04X}) at position {position} in "
            f"{text!r}; allowed: Polish letters, space and {PUNCTUATION.strip()!r}.{hint}")
        self.char, self.position = char, position


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_TYPOGRAPHIC).replace("…", "...")
    return re.sub(r"\s+", " ", text).strip()


def encode(text: str, max_len: int | None = None) -> list[int]:
    """Normalised text -> ids, with BOS first (BOS carries the leading silence).

    Raises TextError for empty or over-long text and UnknownCharacterError naming the
    first character outside the vocabulary and its position.
    """
    norm = normalize(text)
    if not norm:
        raise TextError("empty text: nothing to speak")
    for i, ch in enumerate(norm):
        if ch not in SYMBOL_TO_ID:
            raise UnknownCharacterError(ch, i, norm)
    ids = [BOS_ID] + [SYMBOL_TO_ID[c] for c in norm]
    if max_len is not None and len(ids) > max_len:
        raise TextError(f"text has {len(ids)} symbols (with BOS), more than the limit {max_len}")
    return ids


def decode(ids) -> str:
    return "".join(SYMBOLS[i] for i in ids if i not in (PAD_ID, BOS_ID))
