"""Repeated stratified k-fold cross-validation splits (numpy, seeded).

For a small labelled set (gensim's 200 polarity sentences, say) one train/test split gives a
noisy number; k-fold cross-validation repeated with different shuffles gives ``k x repeats``
test scores whose mean and spread are the result (Kohavi 1995 recommends stratified 10-fold).
**Stratified**: every fold holds each class in (almost exactly) the proportion of the whole set:
the indices of each class are shuffled and dealt round-robin into the ``k`` folds, so the counts
of a class in two folds differ by at most one.

Example::

    >>> labels = [0] * 6 + [1] * 4
    >>> splits = list(stratified_k_fold(labels, k=2, repeats=1, seed=0))
    >>> [(len(train), len(test)) for train, test in splits]
    [(5, 5), (5, 5)]
    >>> sorted(int(sum(labels[i] for i in test)) for _, test in splits)
    [2, 2]
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from seqjax import _checks

__all__ = ["stratified_k_fold"]


def stratified_k_fold(labels: Sequence, k: int = 5, *, repeats: int = 1,
                      seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``k * repeats`` pairs ``(train_indices, test_indices)`` (sorted int arrays): repeat ``r``
    partitions the indices into ``k`` stratified test folds with its own shuffle."""
    labels = np.asarray(labels)
    _checks.positive_int("k", k)
    _checks.positive_int("repeats", repeats)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence; got shape {labels.shape}.")
    if k < 2:
        raise ValueError(f"k must be at least 2; got {k}.")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < k:
        raise ValueError(f"every class needs at least k = {k} examples; class {classes[counts.argmin()]!r} "
                         f"has {counts.min()}.")
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        fold_of = np.empty(labels.size, dtype=int)
        start = 0
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            # Deal round-robin, continuing where the previous class stopped so fold sizes balance.
            fold_of[members] = (start + np.arange(members.size)) % k
            start = (start + members.size) % k
        for f in range(k):
            yield np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
