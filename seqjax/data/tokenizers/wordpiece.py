"""WordPiece tokenization (Schuster & Nakajima 2012; Wu et al. 2016; BERT), trained and encoded
exactly as Hugging Face ``tokenizers`` does.

**Encoding** (BERT's, and HF's ``models.WordPiece``): lower-case (if ``lowercase``) and split
into words with BERT's rule (:func:`seqjax.data.tokenizers.split_words`: whitespace, then every
punctuation character alone); each word is cut **greedily, longest match first**: the longest
vocabulary entry that starts the word, then the longest ``##``-prefixed entry that continues it,
and so on. A word that cannot be cut to the end, or longer than ``max_input_chars_per_word``
characters (100), becomes the single token ``[UNK]``.

**Training.** The original WordPiece picks, at each step, the pair that most increases the
training-data likelihood of a unigram model, i.e. the pair with the largest
``count(ab) / (count(a) count(b))``. Hugging Face's ``WordPieceTrainer`` does not: it runs its
BPE trainer with the continuing prefix ``##`` and converts the result. This module does the
same, so that the vocabularies agree with HF's (tested on a shared corpus):

1. count the words (after the split above);
2. the alphabet is every character of the words, sorted by code point (ids after the special
   tokens); each word is written as its first character followed by ``##``-prefixed characters
   (``"cat"`` -> ``c ##a ##t``), and each ``##c`` not yet in the vocabulary is appended;
3. repeatedly merge the adjacent pair with the highest count (weighted by word counts) in every
   word (left to right, non-overlapping), the new token being ``a + b`` without ``b``'s ``##``
   (``t + ##h`` -> ``th``, ``##h + ##e`` -> ``##he``); ties go to the pair with the smallest
   ``(id(a), id(b))``, as HF's heap does; a merged token already in the vocabulary is not added
   again; stop when the vocabulary holds ``vocab_size`` tokens or the best pair occurs fewer
   than ``min_frequency`` times.

**Likelihood score** (``score="likelihood"``): the original rule (Schuster & Nakajima 2012, as
the Hugging Face course describes Google's unreleased trainer): steps 1 and 2 as above, then
repeatedly merge the pair with the largest ``count(ab) / (count(a) count(b))``, every count a
symbol or pair count in the current segmentation weighted by word counts (pairs counted left to
right as in step 3). Maximising it maximises the gain in log-likelihood of the training data under
a unigram model of the symbols, to first order, so it prefers pairs whose parts rarely occur
apart, where the count rule prefers frequent pairs. Ties go to the smallest ``(id(a), id(b))``;
pairs occurring fewer than ``min_frequency`` times are not merged; scores are compared exactly
(fractions). Every step rescans the pairs (``O(merges x pairs)``), fine for vocabularies of a
few thousand. HF's ``WordPieceTrainer`` has no such option, so there is nothing of theirs to
agree with; it is tested against a from-scratch recount at every step.

HF assigns the ids of the ``##c`` tokens in the iteration order of a hash map, which changes
from process to process, so HF's own ids differ between runs, and so can its vocabulary where
two pairs tie (measured on the Lee corpus, ``vocab_size=5000``: ``mansl`` in some runs,
``##slaughter`` in others). Here they are added in sorted word order; given the order of one HF
run (``continuation_order``, read from its vocabulary), training reproduces that run's
vocabulary, ids included (tested).

Example::

    >>> wp = WordPieceTokenizer.train(["hug hug hugs pun puns bun"], vocab_size=25, min_frequency=1)
    >>> wp.tokenize("hugs buns bug")
    ['hugs', 'bun', '##s', 'b', '##u', '##g']
    >>> wp.tokenize("xyz")
    ['[UNK]']
    >>> corpus = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}  # the HF course's example
    >>> WordPieceTokenizer.train(corpus, vocab_size=13, score="likelihood").vocab.tokens[-1]  # score 5 / (20 * 5)
    '##gs'
    >>> WordPieceTokenizer.train(corpus, vocab_size=13).vocab.tokens[-1]  # by count: ##u ##g, 20 times
    '##ug'
"""

from __future__ import annotations

import collections
import heapq
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from seqjax.data.tokenizers.base import _apply_merge, _ids, _specials, _texts, _Tokenizer
from seqjax.data.tokenizers.vocabulary import UNK, Vocabulary
from seqjax.data.tokenizers.words import split_words

__all__ = ["WordPieceTokenizer"]

PREFIX = "##"
SCORES = ("count", "likelihood")


class WordPieceTokenizer(_Tokenizer):
    """WordPiece with ``##`` continuation pieces; see the module docstring."""

    kind = "wordpiece"

    def __init__(self, vocab: Vocabulary, *, prefix: str = PREFIX, lowercase: bool = True,
                 max_input_chars_per_word: int = 100):
        super().__init__(vocab)
        if not prefix:
            raise ValueError("prefix must be a non-empty string such as '##'.")
        if vocab.unk_token is None:
            raise ValueError("a WordPiece vocabulary needs an unk_token for words it cannot split.")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be an integer >= 1; got {max_input_chars_per_word!r}.")
        self.prefix = prefix
        self.lowercase = lowercase
        self.max_input_chars_per_word = max_input_chars_per_word
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def _from_dict(cls, vocab: Vocabulary, data: dict[str, Any]) -> "WordPieceTokenizer":
        return cls(vocab, prefix=data["prefix"], lowercase=data["lowercase"],
                   max_input_chars_per_word=data["max_input_chars_per_word"])

    def _config(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "lowercase": self.lowercase,
                "max_input_chars_per_word": self.max_input_chars_per_word}

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str] | Mapping[str, int],
        *,
        vocab_size: int = 30000,
        min_frequency: int = 0,
        special_tokens: Sequence[str] = (UNK,),
        unk_token: str = UNK,
        prefix: str = PREFIX,
        lowercase: bool = True,
        max_input_chars_per_word: int = 100,
        continuation_order: Sequence[str] | None = None,
        score: str = "count",
    ) -> "WordPieceTokenizer":
        """Learn a vocabulary from ``texts`` (strings, or a ``{word: count}`` mapping of words
        already split) as Hugging Face's ``WordPieceTrainer`` does (module docstring). Defaults
        are HF's (``vocab_size=30000``, ``min_frequency=0``). ``continuation_order``: the
        ``##c`` tokens in the id order to give them (default: as they appear in sorted words);
        each must be a continuation character of the corpus, and any not listed follow.
        ``score``: ``"count"`` (HF's rule, the most frequent pair) or ``"likelihood"`` (the
        original ``count(ab) / (count(a) count(b))``; module docstring)."""
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}; got {score!r}.")
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size must be an integer >= 1; got {vocab_size!r}.")
        if not isinstance(min_frequency, int) or min_frequency < 0:
            raise ValueError(f"min_frequency must be an integer >= 0; got {min_frequency!r}.")
        counts: collections.Counter = collections.Counter()
        if isinstance(texts, Mapping):
            for word, n in texts.items():
                if not isinstance(word, str) or not word or not isinstance(n, (int, np.integer)) or n < 0:
                    raise ValueError(f"word counts must map non-empty str to int >= 0; got {word!r}: {n!r}.")
                counts[word] += int(n)
        else:
            for text in _texts(texts):
                counts.update(split_words(text, lowercase=lowercase))
        specials = _specials(special_tokens, unk_token)
        id_to_token: list[str] = list(specials)
        token_to_id = {t: i for i, t in enumerate(id_to_token)}

        def add(token: str) -> int:
            if token not in token_to_id:
                token_to_id[token] = len(id_to_token)
                id_to_token.append(token)
            return token_to_id[token]

        for c in sorted({c for word in counts for c in word}):
            add(c)
        if continuation_order is not None:
            continuing = {prefix + c for word in counts for c in word[1:]}
            for token in continuation_order:
                if token not in continuing:
                    raise ValueError(f"continuation_order: {token!r} is not {prefix!r} + a non-initial character of the corpus.")
                add(token)
        items = sorted(counts.items())
        words = [[add(c if k == 0 else prefix + c) for k, c in enumerate(w)] for w, _ in items]
        freqs = [n for _, n in items]
        if score == "likelihood":
            _merge_by_likelihood(words, freqs, id_to_token, add, vocab_size, min_frequency, prefix)
            vocab = Vocabulary(id_to_token[len(specials):], special_tokens=specials, unk_token=unk_token)
            return cls(vocab, prefix=prefix, lowercase=lowercase, max_input_chars_per_word=max_input_chars_per_word)

        pair_counts: dict[tuple[int, int], int] = collections.defaultdict(int)
        where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
        for i, symbols in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
        heap = [(-n, a, b) for (a, b), n in pair_counts.items() if n > 0]
        heapq.heapify(heap)
        while len(id_to_token) < vocab_size and heap:
            negative, a, b = heapq.heappop(heap)
            current = pair_counts.get((a, b), 0)
            if current != -negative:
                if current > 0:
                    heapq.heappush(heap, (-current, a, b))
                continue
            if current < 1 or current < min_frequency:
                break
            new = add(_merge_token(id_to_token, a, b, prefix))
            changed = set()
            for i in sorted(where.pop((a, b), ())):
                symbols, n = words[i], freqs[i]
                out = _apply_merge(symbols, a, b, new)
                if out == symbols:
                    continue
                for pair in zip(symbols, symbols[1:]):
                    pair_counts[pair] -= n
                for pair in zip(out, out[1:]):
                    pair_counts[pair] += n
                    where[pair].add(i)
                    changed.add(pair)
                words[i] = out
            pair_counts.pop((a, b), None)
            for pair in changed:
                if pair_counts.get(pair, 0) > 0:
                    heapq.heappush(heap, (-pair_counts[pair], *pair))
        vocab = Vocabulary(id_to_token[len(specials):], special_tokens=specials, unk_token=unk_token)
        return cls(vocab, prefix=prefix, lowercase=lowercase, max_input_chars_per_word=max_input_chars_per_word)

    def _pieces(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one word (``[unk]`` if it cannot be cut)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        index, unk = self.vocab.token_to_index, [self.vocab.unk_token]
        pieces = []
        if len(word) > self.max_input_chars_per_word:
            pieces = unk
        else:
            start = 0
            while start < len(word):
                end = len(word)
                found = None
                while start < end:
                    piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                    if piece in index:
                        found = piece
                        break
                    end -= 1
                if found is None:
                    pieces = unk
                    break
                pieces.append(found)
                start = end
        if len(self._cache) < 100_000:
            self._cache[word] = pieces
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``."""
        return [p for word in split_words(text, lowercase=self.lowercase) for p in self._pieces(word)]

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of :meth:`tokenize`'s tokens."""
        index = self.vocab.token_to_index
        return np.asarray([index[p] for p in self.tokenize(text)], np.int32)

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        """Tokens joined by spaces, with each ``##`` piece glued to the token before it."""
        out: list[str] = []
        for i in _ids(ids):
            if skip_special and i in self.vocab.special_ids:
                continue
            token = self.vocab.lookup(i)
            if token.startswith(self.prefix) and out:
                out[-1] += token[len(self.prefix):]
            else:
                out.append(token)
        return " ".join(out)


def _merge_token(id_to_token: list[str], a: int, b: int, prefix: str) -> str:
    """The token of merging ``a`` and ``b``: ``a + b`` without ``b``'s continuation prefix."""
    right = id_to_token[b]
    return id_to_token[a] + (right[len(prefix):] if right.startswith(prefix) else right)


def _merge_by_likelihood(words: list[list[int]], freqs: list[int], id_to_token: list[str], add, vocab_size: int,
                         min_frequency: int, prefix: str) -> None:
    """Merge in place, pair by pair, the pair of largest ``count(ab) / (count(a) count(b))``
    (module docstring) until ``vocab_size`` tokens or no pair of ``min_frequency`` occurrences;
    symbol and pair counts are kept up to date word by word."""
    units: collections.Counter = collections.Counter()
    pairs: collections.Counter = collections.Counter()
    where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
    for i, symbols in enumerate(words):
        for t in symbols:
            units[t] += freqs[i]
        for pair in _pairs(symbols):
            pairs[pair] += freqs[i]
            where[pair].add(i)
    while len(id_to_token) < vocab_size:
        best, best_key = None, None
        for (a, b), n in pairs.items():
            if n < max(1, min_frequency):
                continue
            key = (Fraction(n, units[a] * units[b]), -a, -b)
            if best_key is None or key > best_key:
                best, best_key = (a, b), key
        if best is None:
            break
        a, b = best
        new = add(_merge_token(id_to_token, a, b, prefix))
        for i in sorted(where.pop(best, ())):
            symbols, n = words[i], freqs[i]
            out = _apply_merge(symbols, a, b, new)
            if out == symbols:
                continue
            for t in symbols:
                units[t] -= n
            for pair in _pairs(symbols):
                pairs[pair] -= n
            for t in out:
                units[t] += n
            for pair in _pairs(out):
                pairs[pair] += n
                where[pair].add(i)
            words[i] = out
        for pair in [p for p, n in pairs.items() if n <= 0]:
            del pairs[pair]


def _pairs(symbols: list[int]) -> list[tuple[int, int]]:
    """Every adjacent pair of a word's symbols (``a a a`` holds ``(a, a)`` twice), as the count
    rule counts them too."""
    return list(zip(symbols, symbols[1:]))
