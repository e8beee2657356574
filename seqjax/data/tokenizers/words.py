"""Words and punctuation split by BERT's basic rules: :func:`split_words`, :class:`WordTokenizer`."""

from __future__ import annotations

import collections
import unicodedata
from typing import Any, Iterable, Sequence

import numpy as np

from seqjax.data.tokenizers.base import _check_text, _ids, _specials, _texts, _Tokenizer
from seqjax.data.tokenizers.vocabulary import PAD, UNK, Vocabulary


def is_punctuation(char: str) -> bool:
    """BERT's rule: every non-alphanumeric printable ASCII character (``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``)
    and every character of a Unicode punctuation category (``P*``)."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def split_words(text: str, *, lowercase: bool = True, split_punctuation: bool = True) -> list[str]:
    """Split ``text`` into word tokens.

    Rules, in order: ``str.lower()`` if ``lowercase`` (no accent stripping); split on whitespace
    (``str.split()``, any run of Unicode whitespace); then, if ``split_punctuation``, every
    punctuation character (:func:`is_punctuation`) becomes a token of its own, so
    ``"don't."`` gives ``don ' t .`` and ``"u.s."`` gives ``u . s .`` (as BERT's basic tokenizer).
    """
    _check_text(text)
    if lowercase:
        text = text.lower()
    words = text.split()
    if not split_punctuation:
        return words
    out = []
    for word in words:
        start = 0
        for i, c in enumerate(word):
            if is_punctuation(c):
                if i > start:
                    out.append(word[start:i])
                out.append(c)
                start = i + 1
        if start < len(word):
            out.append(word[start:])
    return out


class WordTokenizer(_Tokenizer):
    """Word-level tokens (:func:`split_words`) with a frequency-ranked vocabulary."""

    kind = "word"

    def __init__(self, vocab: Vocabulary, *, lowercase: bool = True, split_punctuation: bool = True):
        super().__init__(vocab)
        self.lowercase = lowercase
        self.split_punctuation = split_punctuation

    @classmethod
    def _from_dict(cls, vocab: Vocabulary, data: dict[str, Any]) -> "WordTokenizer":
        return cls(vocab, lowercase=data["lowercase"], split_punctuation=data["split_punctuation"])

    def _config(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase, "split_punctuation": self.split_punctuation}

    @classmethod
    def fit(
        cls,
        texts: str | Iterable[str],
        *,
        max_size: int | None = None,
        min_count: int = 1,
        special_tokens: Sequence[str] = (PAD, UNK),
        unk_token: str | None = UNK,
        lowercase: bool = True,
        split_punctuation: bool = True,
    ) -> "WordTokenizer":
        """Vocabulary of the words of ``texts``: special tokens first (``[PAD]`` gets id 0 by
        default), then words seen at least ``min_count`` times, most frequent first (ties in
        string order), at most ``max_size`` ids in all."""
        specials = _specials(special_tokens, unk_token)
        counts = collections.Counter()
        for text in _texts(texts):
            counts.update(split_words(text, lowercase=lowercase, split_punctuation=split_punctuation))
        words = sorted((w for w, n in counts.items() if n >= min_count and w not in specials),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size < len(specials):
                raise ValueError(f"max_size={max_size} leaves no room for the {len(specials)} special tokens.")
            words = words[: max_size - len(specials)]
        return cls(Vocabulary(words, special_tokens=specials, unk_token=unk_token),
                   lowercase=lowercase, split_punctuation=split_punctuation)

    def tokenize(self, text: str) -> list[str]:
        """The word tokens of ``text`` (before the vocabulary lookup)."""
        return split_words(text, lowercase=self.lowercase, split_punctuation=self.split_punctuation)

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of :meth:`tokenize`'s tokens; unknown words as ``unk_token``."""
        return np.asarray([self.vocab.token_to_id(w) for w in self.tokenize(text)], np.int32)

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        """The tokens of ``ids`` joined by single spaces."""
        return " ".join(self.vocab.lookup(i) for i in _ids(ids)
                        if not (skip_special and i in self.vocab.special_ids))


# --- byte-pair encoding ---------------------------------------------------------------------

# A word is a run of non-space characters with the whitespace before it; a run of whitespace at
# the end of the text is a word of its own. Concatenating the words gives the text back exactly.
