"""seqjax.data.article_passages against a brute-force reading of its rule."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.data.article_passages import article_passages


def _articles(sizes):
    return [(f"t{a}", " ".join(f"w{a}_{i}" for i in range(n))) for a, n in enumerate(sizes)]


@pytest.mark.parametrize("words,fraction,gap", [(5, 0.2, 1), (7, 0.35, 0), (3, 0.1, 2)])
def test_split_is_the_tail_of_each_article_with_a_gap_and_no_shared_words(words, fraction, gap):
    sizes = [101, 64, 250]
    data = article_passages(_articles(sizes), words_per_passage=words, test_fraction=fraction, gap=gap)
    for label, n_words in enumerate(sizes):
        n = n_words // words
        n_test = max(1, round(fraction * n))
        train = [t for t, y in zip(data.train_texts, data.train_labels) if y == label]
        test = [t for t, y in zip(data.test_texts, data.test_labels) if y == label]
        assert (len(train), len(test)) == data.counts[label] == (n - n_test - gap, n_test)
        positions = lambda texts: [int(w.split("_")[1]) for t in texts for w in t.split()]
        tr, te = positions(train), positions(test)
        assert all(len(t.split()) == words for t in train + test)
        assert tr == list(range(len(tr)))                     # consecutive from the start
        assert te == list(range((n - n_test) * words, n * words))  # the last whole passages
        assert min(te) - max(tr) - 1 == gap * words           # the dropped gap
        assert not set(tr) & set(te)
    majority = np.argmax(np.bincount(data.train_labels))
    assert data.majority_test_accuracy() == pytest.approx(np.mean(data.test_labels == majority))


def test_bad_input_names_the_argument():
    arts = _articles([40, 40])
    with pytest.raises(ValueError, match="test_fraction"):
        article_passages(arts, test_fraction=1.0)
    with pytest.raises(ValueError, match="gap"):
        article_passages(arts, gap=-1)
    with pytest.raises(ValueError, match="at least two"):
        article_passages(arts[:1])
    with pytest.raises(ValueError, match="too few"):
        article_passages(_articles([40, 9]), words_per_passage=5)
    with pytest.raises(ValueError, match="words_per_passage"):
        article_passages(arts, words_per_passage=0)
