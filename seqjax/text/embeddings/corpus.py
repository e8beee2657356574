"""The shared pieces of the word-embedding trainers: vocabulary, frequent-word subsampling, the
noise distribution, training batches and the learning-rate schedule, all as word2vec
(Mikolov et al. 2013) and gensim define them. NumPy, on the host.

* :func:`build_vocab`: words seen at least ``min_count`` times, most frequent first (ties in
  order of first appearance, as gensim's ``sort_by_descending_frequency``).
* :func:`keep_probabilities`: word2vec's subsampling. With ``t = sample * total`` (``total`` the
  number of in-vocabulary tokens), a token of a word seen ``c`` times is kept with probability
  ``min(1, (sqrt(c / t) + 1) * t / c)`` (the code's formula; the paper's ``1 - sqrt(t/f)`` is an
  approximation of it). ``sample = 0`` keeps everything.
* :func:`noise_distribution`: ``P_n(w) ∝ c_w^0.75``; negatives are drawn from it with
  :func:`sample_negatives`, uniform slots of word2vec's unigram table (:func:`noise_table`).
* :func:`window_examples`: for every kept token a *reduced window* ``w_i = window - b``, ``b``
  uniform in ``[0, window)`` (word2vec's dynamic window), and its contexts: the kept tokens at
  distance ``1..w_i`` in the same sentence (subsampled tokens are removed before the windows
  are taken, as in word2vec), padded to ``2 * window`` with a mask.
* :func:`linear_learning_rate`: ``lr = alpha - (alpha - min_alpha) * progress`` as gensim
  decays it from ``alpha`` to ``min_alpha`` over all epochs, ``progress`` the fraction of the
  training words processed.

Example::

    >>> sentences = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat"]]
    >>> vocab = build_vocab(sentences, min_count=2)
    >>> vocab.words, vocab.counts.tolist()
    (('the', 'cat', 'sat'), [2, 2, 2])
    >>> [s.tolist() for s in vocab.encode(sentences)]
    [[0, 1, 2], [0, 2], [1]]
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Vocab",
    "build_vocab",
    "keep_probabilities",
    "linear_learning_rate",
    "noise_distribution",
    "noise_table",
    "sample_negatives",
    "window_examples",
    "subsample",
]


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Words (most frequent first) and their corpus counts."""

    words: tuple[str, ...]
    counts: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Iterable[Sequence[str]]) -> list[np.ndarray]:
        """Each sentence as int32 ids; out-of-vocabulary words are dropped (as word2vec does)."""
        index = self.index
        return [np.fromiter((index[w] for w in s if w in index), np.int32) for s in sentences]


def build_vocab(sentences: Iterable[Sequence[str]], *, min_count: int = 5, max_size: int | None = None) -> Vocab:
    """The words seen at least ``min_count`` times, most frequent first (ties: first appearance)."""
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1; got {min_count!r}.")
    counts: collections.Counter = collections.Counter()
    for s in sentences:
        if isinstance(s, str):
            raise ValueError("sentences must be lists of tokens, not strings; tokenize first.")
        counts.update(s)
    order = {w: i for i, w in enumerate(counts)}  # Counter keeps first-appearance order
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], order[w]))
    if max_size is not None:
        words = words[:max_size]
    if not words:
        raise ValueError(f"no word occurs min_count={min_count} times.")
    return Vocab(tuple(words), np.asarray([counts[w] for w in words], np.int64))


def keep_probabilities(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """word2vec's probability of keeping each token of each word (module docstring)."""
    if sample < 0:
        raise ValueError(f"sample must be >= 0; got {sample}.")
    counts = np.asarray(counts, np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def subsample(sentences: Sequence[np.ndarray], keep: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Drop each token of id ``w`` with probability ``1 - keep[w]`` (independently)."""
    if not sentences:
        return []
    flat, sentence = _flatten(sentences)
    kept = rng.random(flat.shape[0]) < keep[flat]
    lengths = np.bincount(sentence[kept], minlength=len(sentences))
    return np.split(flat[kept], np.cumsum(lengths)[:-1])


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """``P_n(w) = c_w^exponent / sum_v c_v^exponent`` (float64)."""
    weights = np.asarray(counts, np.float64) ** exponent
    return weights / weights.sum()


def noise_table(noise: np.ndarray, size: int = 10_000_000) -> np.ndarray:
    """word2vec's unigram table: ``size`` int32 word ids, word ``w`` filling
    ``round(F_w size) - round(F_{w-1} size)`` slots (``F`` the cumulative ``noise``), so a uniform
    slot is word ``w`` with probability ``noise[w]`` up to ``1/size``."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1; got {size!r}.")
    bounds = np.round(np.cumsum(noise) * size).astype(np.int64)
    bounds[-1] = size
    return np.repeat(np.arange(len(noise), dtype=np.int32), np.diff(bounds, prepend=0))


def sample_negatives(table: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Word ids drawn from a :func:`noise_table` (int32, ``shape``): uniform slots of the table."""
    return table[rng.integers(0, table.shape[0], shape)]


def _flatten(sentences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.concatenate(sentences) if sentences else np.zeros(0, np.int32)
    sentence = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    return tokens.astype(np.int32), sentence


def _reduced_windows(n: int, window: int, rng: np.random.Generator) -> np.ndarray:
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1; got {window!r}.")
    return window - rng.integers(0, window, n)


def window_examples(sentences: Sequence[np.ndarray], window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centers [m], contexts [m, 2*window], mask [m, 2*window])`` for every kept token with at
    least one context (in corpus order; the contexts from the farthest on the left to the
    farthest on the right); padded slots hold id 0 with mask False. Skip-gram trains on every
    ``(center, context)`` pair of a row, CBOW on the row's bag."""
    tokens, sentence = _flatten(sentences)
    n = tokens.shape[0]
    reach = _reduced_windows(n, window, rng)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    other = np.arange(n)[:, None] + offsets[None, :]
    inside = (other >= 0) & (other < n)
    clipped = np.clip(other, 0, max(n - 1, 0))
    mask = inside & (sentence[clipped] == sentence[:, None]) & (np.abs(offsets)[None, :] <= reach[:, None])
    has = mask.any(axis=1)
    contexts = np.where(mask, tokens[clipped], 0).astype(np.int32)
    return tokens[has], contexts[has], mask[has]


def linear_learning_rate(alpha: float, min_alpha: float, progress: float) -> float:
    """``max(alpha - (alpha - min_alpha) * progress, min_alpha)``, gensim's linear decay."""
    return max(alpha - (alpha - min_alpha) * min(max(progress, 0.0), 1.0), min_alpha)
