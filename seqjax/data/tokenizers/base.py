"""The base every tokenizer builds on (vocabulary, JSON save/load) and :func:`load_tokenizer`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from seqjax.data.tokenizers.vocabulary import Vocabulary


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str; got {type(text).__name__}.")
    return text


def _texts(texts: str | Iterable[str]) -> list[str]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    for t in texts:
        _check_text(t)
    return texts


def _specials(special_tokens: Sequence[str], unk_token: str | None) -> tuple[str, ...]:
    special_tokens = tuple(special_tokens)
    if unk_token is not None and unk_token not in special_tokens:
        special_tokens = special_tokens + (unk_token,)
    return special_tokens


def _ids(ids: Any) -> list[int]:
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D sequence of integers; got shape {array.shape}, dtype {array.dtype}.")
    return array.astype(np.int64).tolist()


class _Tokenizer:
    """What every tokenizer shares: the vocabulary, ``len``, JSON ``save``/``load``, equality.

    Each subclass names its JSON ``kind`` and rebuilds itself from a saved dict with
    ``_from_dict``; defining the subclass registers it, so :func:`load_tokenizer` reads every
    kind without this module importing any of them.
    """

    kind = ""
    _kinds: dict[str, type["_Tokenizer"]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _Tokenizer._kinds[cls.kind] = cls

    @classmethod
    def _from_dict(cls, vocab: Vocabulary, data: dict[str, Any]) -> "_Tokenizer":
        """The tokenizer whose :meth:`to_dict` gave ``data`` (``vocab`` already rebuilt)."""
        return cls(vocab)

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    def __len__(self) -> int:
        return len(self.vocab)

    def _config(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "vocab": self.vocab.to_dict(), **self._config()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer (vocabulary and options) to ``path`` as JSON (UTF-8)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a tokenizer written by :meth:`save`."""
        tokenizer = load_tokenizer(path)
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{path} holds a {type(tokenizer).__name__}, not a {cls.__name__}.")
        return tokenizer

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={len(self)})"


def load_tokenizer(path: str | os.PathLike) -> _Tokenizer:
    """Read any tokenizer written by ``save`` (the JSON's ``"type"`` says which)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = data.get("type")
    if kind not in _Tokenizer._kinds:
        raise ValueError(f"{path}: unknown tokenizer type {kind!r}; expected one of {sorted(_Tokenizer._kinds)}.")
    return _Tokenizer._kinds[kind]._from_dict(Vocabulary.from_dict(data["vocab"]), data)


def _apply_merge(symbols: list, a, b, new) -> list:
    """``symbols`` with every ``a b`` (left to right, non-overlapping) replaced by ``new``."""
    out, j = [], 0
    while j < len(symbols):
        if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
            out.append(new)
            j += 2
        else:
            out.append(symbols[j])
            j += 1
    return out
