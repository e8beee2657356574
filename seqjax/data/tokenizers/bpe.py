"""Byte-pair encoding (Sennrich, Haddow & Birch 2016): :class:`BPETokenizer`."""

from __future__ import annotations

import collections
import heapq
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from seqjax.data.tokenizers.base import _apply_merge, _check_text, _ids, _specials, _texts, _Tokenizer
from seqjax.data.tokenizers.vocabulary import UNK, Vocabulary

END_OF_WORD = "</w>"

_PRETOKENIZE = re.compile(r"\s*\S+|\s+")


def pretokenize(text: str) -> list[str]:
    """The words BPE learns from and encodes: each run of non-space characters with the
    whitespace before it (so whitespace round-trips)."""
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

    @classmethod
    def _from_dict(cls, vocab: Vocabulary, data: dict[str, Any]) -> "BPETokenizer":
        return cls(vocab, [tuple(m) for m in data["merges"]], end_of_word=data["end_of_word"])

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
                for piece in pretokenize(word):
                    counts[piece] += int(n)
        else:
            counts = collections.Counter()
            for text in _texts(texts):
                counts.update(pretokenize(text))
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
                out = _apply_merge(symbols, a, b, merged)
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
        return [s for word in pretokenize(text) for s in self._symbols(word)]

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of ``text``; symbols not in the vocabulary (unseen characters) become
        ``unk_token``."""
        _check_text(text)
        if self.end_of_word in text:
            raise ValueError(f"text contains the end-of-word marker {self.end_of_word!r}; it cannot be encoded.")
        out: list[int] = []
        for word in pretokenize(text):
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
