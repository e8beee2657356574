"""Stratified k-fold splits: partitions, stratification, determinism, and sklearn's guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.data.cross_validation import stratified_k_fold


def test_each_repeat_partitions_the_data_into_stratified_folds():
    labels = np.array([0] * 37 + [1] * 23 + [2] * 11)
    splits = list(stratified_k_fold(labels, 5, repeats=3, seed=1))
    assert len(splits) == 15
    for r in range(3):
        tests = [test for _, test in splits[5 * r:5 * r + 5]]
        np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(labels.size))  # a partition
        for train, test in splits[5 * r:5 * r + 5]:
            assert not set(train) & set(test) and len(train) + len(test) == labels.size
        for c in range(3):
            per_fold = [int(np.sum(labels[t] == c)) for t in tests]
            assert max(per_fold) - min(per_fold) <= 1, (r, c, per_fold)
        sizes = [len(t) for t in tests]
        assert max(sizes) - min(sizes) <= 1
    assert not np.array_equal(splits[0][1], splits[5][1])            # repeats reshuffle
    again = list(stratified_k_fold(labels, 5, repeats=3, seed=1))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))


def test_class_counts_match_sklearn_stratified_k_fold():
    sklearn = pytest.importorskip("sklearn.model_selection")
    labels = np.array([0] * 100 + [1] * 100)
    ours = sorted(int(labels[t].sum()) for _, t in stratified_k_fold(labels, 5))
    theirs = sorted(int(labels[t].sum()) for _, t in sklearn.StratifiedKFold(5).split(np.zeros(200), labels))
    assert ours == theirs == [20] * 5


@pytest.mark.parametrize("labels, k, match", [([0, 1], 1, "at least 2"), ([0, 0, 1], 2, "at least k = 2"),
                                              ([], 2, "non-empty")])
def test_bad_input(labels, k, match):
    with pytest.raises(ValueError, match=match):
        list(stratified_k_fold(labels, k))
