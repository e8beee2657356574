"""seqjax.data.precedence against a numpy loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from seqjax.data.precedence import precedence_task, swap_tokens

FILLERS = (4, 5, 6, 7)


def test_labels_positions_and_fillers_by_loop():
    tokens, labels = precedence_task(jax.random.key(0), 300, 7, first=2, second=3, fillers=FILLERS)
    tokens, labels = np.asarray(tokens), np.asarray(labels)
    assert tokens.shape == (300, 7) and tokens.dtype == np.int32 and labels.dtype == np.int32
    for row, label in zip(tokens, labels):
        a = [i for i, x in enumerate(row) if x == 2]
        b = [i for i, x in enumerate(row) if x == 3]
        assert len(a) == 1 and len(b) == 1
        assert label == int(a[0] < b[0])
        assert all(x in FILLERS for i, x in enumerate(row) if i not in (a[0], b[0]))
    assert 0.4 < labels.mean() < 0.6                                  # balanced


def test_deterministic_per_key_and_swap_flips_the_label():
    a = precedence_task(jax.random.key(1), 50, 5, first=2, second=3, fillers=FILLERS)
    b = precedence_task(jax.random.key(1), 50, 5, first=2, second=3, fillers=FILLERS)
    c = precedence_task(jax.random.key(2), 50, 5, first=2, second=3, fillers=FILLERS)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    swapped = np.asarray(swap_tokens(a[0], 2, 3))
    np.testing.assert_array_equal(np.sort(swapped, 1), np.sort(np.asarray(a[0]), 1))   # same multiset
    np.testing.assert_array_equal((swapped == 2).argmax(1) < (swapped == 3).argmax(1), 1 - np.asarray(a[1]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(length=1), "length"), (dict(fillers=()), "fillers"), (dict(fillers=(2, 5)), "fillers"),
    (dict(second=2), "differ"),
])
def test_bad_input(kwargs, match):
    args = dict(length=5, first=2, second=3, fillers=FILLERS) | kwargs
    with pytest.raises(ValueError, match=match):
        precedence_task(jax.random.key(0), 4, **args)
