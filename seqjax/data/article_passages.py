"""Passage classification: which of K articles a short passage comes from, with a train/test split
that never puts neighbouring text on both sides.

Each article's words (``text.split()``) are cut into consecutive, non-overlapping passages of
``words_per_passage`` words (a last partial block is dropped). Of an article's ``n`` passages the
**last** ``n_test = max(1, round(test_fraction * n))`` are test passages, the ``gap`` passages
before them are dropped, and the first ``n - n_test - gap`` are training passages. A test passage
therefore shares no word with any training passage and is at least ``gap * words_per_passage``
words away from the nearest one (a random split of adjacent passages would put the two halves of
a sentence on both sides). The label of a passage is the index of its article.

Example::

    >>> from seqjax.data.article_passages import article_passages
    >>> arts = [("a", " ".join(f"a{i}" for i in range(20))), ("b", " ".join(f"b{i}" for i in range(12)))]
    >>> data = article_passages(arts, words_per_passage=4, test_fraction=0.25, gap=1)
    >>> data.train_texts[:2], data.test_texts
    (['a0 a1 a2 a3', 'a4 a5 a6 a7'], ['a16 a17 a18 a19', 'b8 b9 b10 b11'])
    >>> data.train_labels.tolist(), data.majority_test_accuracy()
    ([0, 0, 0, 1], 0.5)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from seqjax import _checks


@dataclasses.dataclass(frozen=True)
class ArticlePassages:
    """The passages and labels of :func:`article_passages`; ``titles[label]`` names a class, and
    ``counts`` gives ``(train, test)`` passages per class."""

    titles: tuple[str, ...]
    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    counts: tuple[tuple[int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.titles)

    def majority_test_accuracy(self) -> float:
        """The test accuracy of always predicting the most frequent *training* class."""
        majority = int(np.argmax(np.bincount(self.train_labels, minlength=self.num_classes)))
        return float(np.mean(self.test_labels == majority))


def article_passages(
    articles: Sequence[tuple[str, str]], *, words_per_passage: int = 30, test_fraction: float = 0.2, gap: int = 1,
) -> ArticlePassages:
    """Cut ``articles`` (``(title, text)`` pairs; label = position) into passages and split them
    (module docstring).

    Args:
      articles: at least two ``(title, text)`` pairs.
      words_per_passage: words per passage.
      test_fraction: the fraction of each article's passages, taken from its end, that are test
        passages (in ``(0, 1)``).
      gap: passages dropped between an article's training and test passages (``>= 0``).
    """
    _checks.positive_int("words_per_passage", words_per_passage)
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction!r}.")
    if not (isinstance(gap, int) and gap >= 0):
        raise ValueError(f"gap must be an integer >= 0; got {gap!r}.")
    articles = list(articles)
    if len(articles) < 2:
        raise ValueError(f"articles must hold at least two (title, text) pairs; got {len(articles)}.")
    titles, train, train_y, test, test_y, counts = [], [], [], [], [], []
    for label, item in enumerate(articles):
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise ValueError(f"articles[{label}] must be a (title, text) pair of strings; got {type(item).__name__}.")
        title, text = item
        words = text.split()
        n = len(words) // words_per_passage
        n_test = max(1, round(test_fraction * n))
        n_train = n - n_test - gap
        if n_train < 1:
            raise ValueError(
                f"article {title!r} has {len(words)} words: {n} passages of {words_per_passage}, too few for "
                f"{n_test} test passage(s), a gap of {gap} and at least one training passage."
            )
        passages = [" ".join(words[i * words_per_passage:(i + 1) * words_per_passage]) for i in range(n)]
        titles.append(title)
        train += passages[:n_train]
        test += passages[n - n_test:]
        train_y += [label] * n_train
        test_y += [label] * n_test
        counts.append((n_train, n_test))
    return ArticlePassages(tuple(titles), train, np.asarray(train_y, np.int32), test, np.asarray(test_y, np.int32),
                           tuple(counts))
