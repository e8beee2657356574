"""One id per character: :class:`CharTokenizer`."""

from __future__ import annotations

import collections
from typing import Any, Iterable, Sequence

import numpy as np

from seqjax.data.tokenizers.base import _check_text, _ids, _specials, _texts, _Tokenizer
from seqjax.data.tokenizers.vocabulary import Vocabulary


class CharTokenizer(_Tokenizer):
    """One id per character (code point); see the module docstring."""

    kind = "char"

    @classmethod
    def fit(
        cls,
        texts: str | Iterable[str],
        *,
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
        min_count: int = 1,
    ) -> "CharTokenizer":
        """The characters of ``texts`` seen at least ``min_count`` times, sorted by code point,
        after ``special_tokens`` (and ``unk_token``, added to them if missing). Rarer characters
        then encode as ``unk_token``, which ``min_count > 1`` therefore needs."""
        if min_count > 1 and unk_token is None:
            raise ValueError("min_count > 1 drops characters: give an unk_token to map them to.")
        counts = collections.Counter()
        for text in _texts(texts):
            counts.update(text)
        specials = _specials(special_tokens, unk_token)
        chars = sorted(c for c, n in counts.items() if n >= min_count and c not in specials)
        return cls(Vocabulary(chars, special_tokens=specials, unk_token=unk_token))

    def encode(self, text: str) -> np.ndarray:
        """``[len(text)]`` int32 ids (special-token strings in ``text`` are plain characters)."""
        _check_text(text)
        index, unk = self.vocab.token_to_index, self.vocab.unk_id
        try:
            return np.fromiter((index[c] for c in text), np.int32, len(text))
        except KeyError:
            if unk is None:
                bad = sorted({c for c in text if c not in index})
                raise ValueError(
                    f"characters {bad[:10]} are not in the vocabulary and it has no unk_token."
                ) from None
        return np.fromiter((index.get(c, unk) for c in text), np.int32, len(text))

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        """The text of ``ids``; special tokens as their strings unless ``skip_special``."""
        specials = self.vocab.special_ids
        return "".join(self.vocab.lookup(i) for i in _ids(ids) if not (skip_special and i in specials))


# --- words ----------------------------------------------------------------------------------
