"""FastText subword vectors (Bojanowski et al. 2017): skip-gram over words written as bags of
character n-grams, trained in JAX; unseen words get vectors from their n-grams.

A word ``w`` is written ``<w>`` and cut into its character n-grams for ``n = min_n..max_n``
(3-6; :func:`char_ngrams`, the same list as fastText's ``computeSubwords`` and gensim's
``compute_ngrams``, repeats kept: ``"apple"`` gives the 14 n-grams ``<ap app ppl ple le> <app
appl pple ple> <appl apple pple> <apple apple>``, plus the word itself, ``<apple>``, as its own
row). Each n-gram is hashed to one of ``bucket`` rows (:func:`ngram_bucket`: 32-bit FNV-1a over
the UTF-8 bytes, each byte sign-extended as fastText's ``int8_t`` cast does; tested equal to
gensim's ``ft_hash_bytes``). The input table ``E`` holds ``len(vocab)`` word rows, then ``bucket``
n-gram rows; a word's input representation is the **mean** of its word row and its n-gram rows
(as fastText and gensim compute it), and each of those rows receives the full gradient of the
mean (fastText's update). The objective is SGNS skip-gram (:mod:`seqjax.text.embeddings.sgns`):
the representation of the center predicts each context word's output row.

The vector of a vocabulary word is that mean; a word outside the vocabulary gets the mean of its
n-gram rows (gensim's rule), or no vector if it has none.

Example::

    >>> char_ngrams("apple")[:5], len(char_ngrams("apple"))
    (['<ap', '<app', '<appl', '<apple', 'app'], 14)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from seqjax.text.embeddings.corpus import build_vocab, keep_probabilities, noise_distribution, subsample, window_examples
from seqjax.text.embeddings.sgns import SGNSConfig, init_params, train_sgns
from seqjax.text.embeddings.vectors import WordVectors

__all__ = ["FastTextConfig", "char_ngrams", "ngram_bucket", "subword_rows", "train_fasttext"]


def char_ngrams(word: str, min_n: int = 3, max_n: int = 6) -> list[str]:
    """The character n-grams of ``"<" + word + ">"`` for ``n`` in ``[min_n, max_n]``, left to
    right for each start position, shorter first (fastText's order)."""
    if not 1 <= min_n <= max_n:
        raise ValueError(f"need 1 <= min_n <= max_n; got min_n={min_n}, max_n={max_n}.")
    w = "<" + word + ">"
    out = []
    for i in range(len(w)):
        for n in range(min_n, max_n + 1):
            if i + n > len(w):
                break
            if n == 1 and (i == 0 or i + n == len(w)):
                continue  # fastText never uses the lone boundary symbols
            out.append(w[i:i + n])
    return out


def ngram_bucket(ngram: str, bucket: int) -> int:
    """fastText's hash of ``ngram`` modulo ``bucket`` (32-bit FNV-1a over sign-extended UTF-8 bytes)."""
    h = 2166136261
    for byte in ngram.encode("utf-8"):
        h ^= byte if byte < 128 else (byte | 0xFFFFFF00)
        h = (h * 16777619) & 0xFFFFFFFF
    return h % bucket


def subword_rows(words: Sequence[str], *, min_n: int, max_n: int, bucket: int, include_word: bool = True,
                 offset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows [v, k], mask [v, k])``: for each word its own row (``include_word``) and its n-gram
    rows ``offset + ngram_bucket(g)`` (``offset`` defaults to ``len(words)``), padded with mask False."""
    offset = len(words) if offset is None else offset
    lists = []
    for i, w in enumerate(words):
        grams = [offset + ngram_bucket(g, bucket) for g in char_ngrams(w, min_n, max_n)]
        lists.append(([i] if include_word else []) + grams)
    k = max(1, max(len(r) for r in lists))
    rows = np.zeros((len(words), k), np.int32)
    mask = np.zeros((len(words), k), bool)
    for i, r in enumerate(lists):
        rows[i, :len(r)] = r
        mask[i, :len(r)] = True
    return rows, mask


@dataclasses.dataclass(frozen=True)
class FastTextConfig(SGNSConfig):
    """:class:`~seqjax.text.embeddings.sgns.SGNSConfig`'s settings plus the n-gram range and
    ``bucket`` (smaller than fastText's 2M default to fit a small corpus in memory: pass the same
    to gensim for a like-for-like run)."""

    min_n: int = 3
    max_n: int = 6
    bucket: int = 200_000


def train_subword_skipgram(sentences, vocab, rows, mask, num_inputs: int, config, *, desc=None) -> np.ndarray:
    """SGNS skip-gram whose center is the mean of ``E[rows[w]]`` (masked); returns ``E``.
    Shared by FastText and CharNgram."""
    ids = vocab.encode(sentences)
    keep = keep_probabilities(vocab.counts, config.sample)

    def epoch(rng):
        centers, contexts, context_mask = window_examples(subsample(ids, keep, rng), config.window, rng)
        return rows[centers], mask[centers], contexts, context_mask

    params = init_params(jax.random.key(config.seed), num_inputs=num_inputs, num_outputs=len(vocab),
                         dim=config.dim, scale=1.0 / config.dim)  # gensim's FastText init: U(-1/d, 1/d)
    params, _ = train_sgns(params, epoch, noise=noise_distribution(vocab.counts), epochs=config.epochs,
                           negative=config.negative, batch_size=config.batch_size, alpha=config.alpha,
                           min_alpha=config.min_alpha, seed=config.seed, input_gradient="sum", desc=desc)
    return np.asarray(params["input"])


def train_fasttext(sentences: Sequence[Sequence[str]], config: FastTextConfig = FastTextConfig(), *,
                   desc: str | None = None) -> WordVectors:
    """Train FastText skip-gram on tokenized ``sentences``; the returned vectors compose unseen
    words from their n-grams (``WordVectors.vector``)."""
    vocab = build_vocab(sentences, min_count=config.min_count)
    rows, mask = subword_rows(vocab.words, min_n=config.min_n, max_n=config.max_n, bucket=config.bucket)
    table = train_subword_skipgram(sentences, vocab, rows, mask, len(vocab) + config.bucket, config, desc=desc)
    word_vectors = (table[rows] * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    n = len(vocab)

    def oov(word: str):
        grams = [n + ngram_bucket(g, config.bucket) for g in char_ngrams(word, config.min_n, config.max_n)]
        return table[grams].mean(axis=0) if grams else None

    return WordVectors(vocab.words, word_vectors, oov=oov)
