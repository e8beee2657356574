"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling, trained in JAX.

Both use :mod:`seqjax.text.embeddings.corpus` for the word2vec/gensim preprocessing (frequent-word
subsampling, reduced windows, unigram^0.75 noise, linear learning-rate decay) and the one SGNS step
of :mod:`seqjax.text.embeddings.sgns`:

* **skip-gram**: every ``(center, context)`` pair is an example; the input is the center word's
  row of ``E``, the target the context word's row of ``O``.
* **CBOW**: every center word is an example; the input is the mean of its context words' rows
  (``cbow_mean=1``, gensim's default), each context row receiving the full gradient of that mean
  (as gensim and word2vec.c do), the target the center word.

The word vectors are the rows of ``E`` (``syn0``). The settings follow gensim's defaults
(``alpha=0.025`` decaying linearly to ``min_alpha=1e-4``, ``sample=1e-3``, ``negative=5``,
``window=5``), so gensim's ``Word2Vec`` with the same arguments is the like-for-like baseline.

Example::

    >>> sentences = [["the", "cat", "sat", "on", "the", "mat"]] * 20
    >>> wv = train_word2vec(sentences, Word2VecConfig(dim=8, min_count=1, epochs=2, batch_size=16))
    >>> len(wv), wv.dim
    (5, 8)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from seqjax.text.embeddings.corpus import (
    build_vocab, keep_probabilities, noise_distribution, subsample, window_examples,
)
from seqjax.text.embeddings.sgns import SGNSConfig, init_params, train_sgns
from seqjax.text.embeddings.vectors import WordVectors

__all__ = ["Word2VecConfig", "train_word2vec"]


@dataclasses.dataclass(frozen=True)
class Word2VecConfig(SGNSConfig):
    """The settings of a word2vec run: :class:`~seqjax.text.embeddings.sgns.SGNSConfig`'s, plus
    ``sg`` (skip-gram if True, else CBOW) and the noise exponent."""

    sg: bool = True
    ns_exponent: float = 0.75


def examples_fn(ids: Sequence[np.ndarray], keep: np.ndarray, window: int, sg: bool):
    """``rng -> (inputs, input_mask, targets, target_mask)``: one epoch of subsampled windows,
    skip-gram (input = center, targets = its contexts) or CBOW (input = the context bag,
    target = the center)."""

    def epoch(rng):
        centers, contexts, mask = window_examples(subsample(ids, keep, rng), window, rng)
        one = np.ones((len(centers), 1), bool)
        if sg:
            return centers[:, None], one, contexts, mask
        return contexts, mask, centers[:, None], one

    return epoch


def train_word2vec(sentences: Sequence[Sequence[str]], config: Word2VecConfig = Word2VecConfig(), *,
                   desc: str | None = None) -> WordVectors:
    """Train skip-gram (``config.sg``) or CBOW on tokenized ``sentences``; the vectors of the
    words seen ``min_count`` times, most frequent first."""
    vocab = build_vocab(sentences, min_count=config.min_count)
    ids = vocab.encode(sentences)
    keep = keep_probabilities(vocab.counts, config.sample)
    params = init_params(jax.random.key(config.seed), num_inputs=len(vocab), num_outputs=len(vocab), dim=config.dim)
    params, _ = train_sgns(
        params, examples_fn(ids, keep, config.window, config.sg), noise=noise_distribution(vocab.counts, config.ns_exponent),
        epochs=config.epochs, negative=config.negative, batch_size=config.batch_size, alpha=config.alpha,
        min_alpha=config.min_alpha, seed=config.seed, input_gradient="sum", desc=desc,
    )
    return WordVectors(vocab.words, np.asarray(params["input"]))
