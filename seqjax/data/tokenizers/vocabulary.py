"""The token <-> id table every tokenizer holds, and the special tokens' default spellings."""

from __future__ import annotations

import collections
from typing import Any, Mapping, Sequence

UNK = "[UNK]"
PAD = "[PAD]"


class Vocabulary:
    """A fixed token <-> id table: ``special_tokens`` first (ids ``0..s-1``), then ``tokens``.

    ``unk_token`` (one of the special tokens, or ``None``) is what unknown tokens map to; without
    one, looking up an unknown token raises ``ValueError``.
    """

    def __init__(self, tokens: Sequence[str], *, special_tokens: Sequence[str] = (), unk_token: str | None = None):
        special_tokens = tuple(special_tokens)
        tokens = tuple(tokens)
        table = special_tokens + tokens
        for t in table:
            if not isinstance(t, str) or not t:
                raise ValueError(f"tokens must be non-empty strings; got {t!r}.")
        counts = collections.Counter(table)
        repeated = sorted(t for t, c in counts.items() if c > 1)
        if repeated:
            raise ValueError(f"a vocabulary may not repeat a token; repeated: {repeated[:10]}.")
        if unk_token is not None and unk_token not in special_tokens:
            raise ValueError(f"unk_token {unk_token!r} must be one of special_tokens {special_tokens}.")
        self.special_tokens = special_tokens
        self.tokens = tokens
        self.unk_token = unk_token
        self.id_to_token = table
        self.token_to_index = {t: i for i, t in enumerate(table)}
        self.unk_id = None if unk_token is None else self.token_to_index[unk_token]
        self.special_ids = frozenset(range(len(special_tokens)))

    def __len__(self) -> int:
        return len(self.id_to_token)

    def __contains__(self, token: str) -> bool:
        return token in self.token_to_index

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, special_tokens={self.special_tokens}, unk_token={self.unk_token!r})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; unknown: the ``unk_token``'s id, or ``ValueError`` without one."""
        index = self.token_to_index.get(token)
        if index is not None:
            return index
        if self.unk_id is None:
            raise ValueError(
                f"token {token!r} is not in the vocabulary ({len(self)} tokens) and it has no "
                "unk_token; fit with unk_token='[UNK]' to map unknown input to it."
            )
        return self.unk_id

    def lookup(self, index: int) -> str:
        """The token with id ``index`` (``ValueError`` outside ``[0, len)``)."""
        if not 0 <= index < len(self.id_to_token):
            raise ValueError(f"id {index} is outside the vocabulary [0, {len(self)}).")
        return self.id_to_token[index]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "special_tokens": list(self.special_tokens), "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Vocabulary":
        return cls(data["tokens"], special_tokens=data.get("special_tokens", ()), unk_token=data.get("unk_token"))
