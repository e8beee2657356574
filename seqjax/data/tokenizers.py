"""Tokenizers with vocabularies that round-trip: characters, words, and byte-pair encoding.

Pure Python and NumPy. Every tokenizer has ``encode(text) -> int32 array``,
``decode(ids) -> str``, ``vocab`` (a :class:`Vocabulary`), ``len(tokenizer)`` (the vocabulary
size) and ``save(path)`` / ``load(path)`` as JSON (:func:`load_tokenizer` reads any of them).

* :class:`CharTokenizer`: one id per character. ``decode(encode(text)) == text`` for every text
  whose characters are in the vocabulary. Fitted vocabularies are sorted by code point, so the
  same text always gives the same ids (a vocabulary built as ``list(set(text))`` depends on
  ``PYTHONHASHSEED``).
* :class:`WordTokenizer`: lower-casing and punctuation splitting (BERT's basic tokenizer, rules
  in :func:`split_words`). Whitespace is not kept, so ``decode`` joins tokens with one space:
  ``decode(encode(text)) == " ".join(tokenize(text))``, which is ``text`` itself for text that is
  already normalised (lower case, tokens separated by single spaces, as the Pang-Lee corpus).
* :class:`BPETokenizer`: byte-pair encoding (Sennrich, Haddow & Birch 2016) learned from a local
  corpus: start from characters, repeatedly merge the most frequent adjacent pair (counted over
  word frequencies) up to a vocabulary size or merge count. Whitespace is kept (attached to the
  front of the following word), so ``decode(encode(text)) == text`` for any text made of
  characters seen in training.

Unknown input: a tokenizer whose vocabulary has an ``unk_token`` maps anything unknown to it (the
round trip then shows ``[UNK]``); one without raises ``ValueError`` naming what was unknown.

Example::

    >>> from seqjax.data.tokenizers import CharTokenizer, WordTokenizer, BPETokenizer
    >>> chars = CharTokenizer.fit("hello world! ")
    >>> chars.vocab.tokens
    (' ', '!', 'd', 'e', 'h', 'l', 'o', 'r', 'w')
    >>> chars.encode("hello").tolist(), chars.decode(chars.encode("hello"))
    ([4, 3, 5, 5, 6], 'hello')
    >>> WordTokenizer.fit(["The cat sat."]).tokenize("The cat, sat!")
    ['the', 'cat', ',', 'sat', '!']
    >>> bpe = BPETokenizer.train("low low low lower lowest", num_merges=3)
    >>> bpe.tokenize(" lowest")
    [' low', 'e', 's', 't</w>']
"""

from __future__ import annotations

import collections
import heapq
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "Vocabulary",
    "WordTokenizer",
    "is_punctuation",
    "load_tokenizer",
    "split_words",
]

UNK = "[UNK]"
PAD = "[PAD]"
END_OF_WORD = "</w>"


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
    kind = ""

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
_PRETOKENIZE = re.compile(r"\s*\S+|\s+")


def _pretokenize(text: str) -> list[str]:
    return _PRETOKENIZE.findall(text)


class BPETokenizer(_Tokenizer):
    """Byte-pair encoding (Sennrich et al. 2016) over characters; see :meth:`train`."""

    kind = "bpe"

    def __init__(self, vocab: Vocabulary, merges: Sequence[tuple[str, str]], *, end_of_word: str = END_OF_WORD):
        super().__init__(vocab)
        if not end_of_word:
            raise ValueError("end_of_word must be a non-empty marker string.")
        self.end_of_word = end_of_word
        self.merges = [tuple(m) for m in merges]
        for a, b in self.merges:
            if a + b not in vocab:
                raise ValueError(f"merge ({a!r}, {b!r}) makes {a + b!r}, which is not in the vocabulary.")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    def _config(self) -> dict[str, Any]:
        return {"merges": [list(m) for m in self.merges], "end_of_word": self.end_of_word}

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str] | Mapping[str, int],
        *,
        vocab_size: int | None = None,
        num_merges: int | None = None,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = (),
        unk_token: str | None = UNK,
        end_of_word: str = END_OF_WORD,
    ) -> "BPETokenizer":
        """Learn merges from ``texts`` (a string, strings, or a ``{word: count}`` mapping).

        Algorithm (Sennrich et al. 2016, Algorithm 1): split the text into words (a word keeps the
        whitespace before it, so nothing is lost), count them, and write each as its characters
        with ``end_of_word`` appended to the last one (``" low"`` -> `` ``, ``l``, ``o``,
        ``w</w>``). Then repeatedly count every adjacent symbol pair, weighted by word counts, and
        merge the most frequent pair everywhere into one new symbol. **Ties** go to the smallest
        ``(left, right)`` pair in Python string order, so training is deterministic.

        Stops after ``num_merges`` merges, when the vocabulary reaches ``vocab_size`` tokens, or
        when no pair occurs ``min_frequency`` times, whichever comes first (at least one of
        ``vocab_size`` and ``num_merges`` must be given). The vocabulary is: the special tokens
        (``unk_token`` added to them), every training character both plain and word-final
        (``c`` and ``c</w>``, sorted), then the merged symbols in merge order. Pair counts are
        updated incrementally (only the words containing the merged pair are revisited), with a
        heap for the maximum.
        """
        if vocab_size is None and num_merges is None:
            raise ValueError("give vocab_size or num_merges (or both) to bound the number of merges.")
        if num_merges is not None and (not isinstance(num_merges, int) or num_merges < 0):
            raise ValueError(f"num_merges must be an integer >= 0; got {num_merges!r}.")
        if not isinstance(min_frequency, int) or min_frequency < 1:
            raise ValueError(f"min_frequency must be an integer >= 1; got {min_frequency!r}.")
        if isinstance(texts, Mapping):
            counts = collections.Counter()
            for word, n in texts.items():
                _check_text(word)
                if not isinstance(n, (int, np.integer)) or n < 0:
                    raise ValueError(f"word counts must be integers >= 0; got {word!r}: {n!r}.")
                for piece in _pretokenize(word):
                    counts[piece] += int(n)
        else:
            counts = collections.Counter()
            for text in _texts(texts):
                counts.update(_pretokenize(text))
        for word in counts:
            if end_of_word in word:
                raise ValueError(f"the training text contains the end-of-word marker {end_of_word!r}; choose another end_of_word.")

        specials = _specials(special_tokens, unk_token)
        chars = sorted({c for word in counts for c in word})
        base = [c for c in chars if c not in specials] + [c + end_of_word for c in chars if c + end_of_word not in specials]
        tokens = list(base)
        known = set(tokens) | set(specials)
        if vocab_size is not None and vocab_size < len(specials) + len(tokens):
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the special tokens and base characters "
                f"({len(specials)} + {len(tokens)})."
            )

        # Words as mutable symbol lists, in a fixed order (by first appearance in sorted order).
        items = sorted(counts.items())
        words = [list(w[:-1]) + [w[-1] + end_of_word] for w, _ in items]
        freqs = [n for _, n in items]
        pair_counts: dict[tuple[str, str], int] = collections.defaultdict(int)
        where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
        for i, symbols in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
        heap = [(-n, a, b) for (a, b), n in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[str, str]] = []
        while True:
            if num_merges is not None and len(merges) >= num_merges:
                break
            if vocab_size is not None and len(specials) + len(tokens) >= vocab_size:
                break
            best = None
            while heap:
                negative, a, b = heap[0]
                if pair_counts.get((a, b), 0) == -negative and -negative > 0:
                    best = (a, b)
                    break
                heapq.heappop(heap)  # stale: that pair's count has changed since it was pushed
            if best is None or pair_counts[best] < min_frequency:
                break
            a, b = best
            merged = a + b
            merges.append(best)
            if merged not in known:
                tokens.append(merged)
                known.add(merged)
            changed = set()
            for i in sorted(where[best]):
                symbols, n = words[i], freqs[i]
                for pair in zip(symbols, symbols[1:]):
                    pair_counts[pair] -= n
                    where[pair].discard(i)
                    changed.add(pair)
                out, j = [], 0
                while j < len(symbols):
                    if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                        out.append(merged)
                        j += 2
                    else:
                        out.append(symbols[j])
                        j += 1
                words[i] = out
                for pair in zip(out, out[1:]):
                    pair_counts[pair] += n
                    where[pair].add(i)
                    changed.add(pair)
            for pair in changed:
                n = pair_counts.get(pair, 0)
                if n > 0:
                    heapq.heappush(heap, (-n, *pair))
                else:
                    pair_counts.pop(pair, None)
                    where.pop(pair, None)
        vocab = Vocabulary(tokens, special_tokens=specials, unk_token=unk_token)
        return cls(vocab, merges, end_of_word=end_of_word)

    def _symbols(self, word: str) -> list[str]:
        """Apply the merges to one pre-tokenized word: repeatedly merge the adjacent pair with the
        lowest merge rank (all its occurrences, left to right) until no pair has a rank."""
        symbols = list(word[:-1]) + [word[-1] + self.end_of_word]
        ranks = self.ranks
        while len(symbols) > 1:
            best_rank, best = None, None
            for pair in zip(symbols, symbols[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, pair
            if best is None:
                break
            a, b = best
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            symbols = out
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """The BPE symbols of ``text`` (word-final symbols end with ``end_of_word``)."""
        _check_text(text)
        if self.end_of_word in text:
            raise ValueError(f"text contains the end-of-word marker {self.end_of_word!r}; it cannot be encoded.")
        return [s for word in _pretokenize(text) for s in self._symbols(word)]

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of ``text``; symbols not in the vocabulary (unseen characters) become
        ``unk_token``."""
        _check_text(text)
        if self.end_of_word in text:
            raise ValueError(f"text contains the end-of-word marker {self.end_of_word!r}; it cannot be encoded.")
        out: list[int] = []
        for word in _pretokenize(text):
            ids = self._cache.get(word)
            if ids is None:
                ids = [self.vocab.token_to_id(s) for s in self._symbols(word)]
                if len(self._cache) < 100_000:
                    self._cache[word] = ids
            out.extend(ids)
        return np.asarray(out, np.int32)

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        """Concatenate the symbols of ``ids``, removing the end-of-word markers."""
        eow, specials = self.end_of_word, self.vocab.special_ids
        out = []
        for i in _ids(ids):
            token = self.vocab.lookup(i)
            if i in specials:
                if not skip_special:
                    out.append(token)
            else:
                out.append(token[: -len(eow)] if token.endswith(eow) else token)
        return "".join(out)


_KINDS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def load_tokenizer(path: str | os.PathLike) -> CharTokenizer | WordTokenizer | BPETokenizer:
    """Read any tokenizer written by ``save`` (the JSON's ``"type"`` says which)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = data.get("type")
    if kind == "wordpiece":  # defined in seqjax.text.wordpiece, which imports this module
        from seqjax.text.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer(Vocabulary.from_dict(data["vocab"]), prefix=data["prefix"], lowercase=data["lowercase"],
                                  max_input_chars_per_word=data["max_input_chars_per_word"])
    if kind not in _KINDS:
        raise ValueError(f"{path}: unknown tokenizer type {kind!r}; expected one of {sorted(_KINDS) + ['wordpiece']}.")
    vocab = Vocabulary.from_dict(data["vocab"])
    if kind == "char":
        return CharTokenizer(vocab)
    if kind == "word":
        return WordTokenizer(vocab, lowercase=data["lowercase"], split_punctuation=data["split_punctuation"])
    return BPETokenizer(vocab, [tuple(m) for m in data["merges"]], end_of_word=data["end_of_word"])
