"""seqjax.data.synthetic.random_sines, neighbour_comparison_tagging and left_to_right_ceiling, against numpy references."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from seqjax.data import left_to_right_ceiling, neighbour_comparison_tagging, random_sines


def test_random_sines_are_sines_in_the_ranges():
    dt = 10 / 44
    clean, noisy = (np.asarray(a, np.float64) for a in random_sines(jax.random.key(0), 64, 45))
    # A sampled sine obeys s_{i+1} + s_{i-1} = 2 cos(w dt) s_i; read w off, check its range.
    num = np.sum((clean[:, 2:] + clean[:, :-2]) * clean[:, 1:-1], 1)
    cos_wdt = num / (2 * np.sum(clean[:, 1:-1] ** 2, 1))
    omega = np.arccos(np.clip(cos_wdt, -1, 1)) / dt
    assert np.all((omega > 0.1 - 1e-3) & (omega < 0.5 + 1e-3))
    t = np.arange(45) * dt
    for row, w in zip(clean[:8], omega[:8]):
        basis = np.stack([np.sin(w * t), np.cos(w * t)], 1)
        coef, *_ = np.linalg.lstsq(basis, row, rcond=None)
        assert np.max(np.abs(basis @ coef - row)) < 1e-3
        assert 0.5 - 1e-3 <= np.hypot(*coef) <= 1.5 + 1e-3
    assert (noisy - clean).std() == pytest.approx(0.05, rel=0.1)
    again = random_sines(jax.random.key(0), 64, 45)
    np.testing.assert_array_equal(np.asarray(again[1]), noisy.astype(np.float32))
    with pytest.raises(ValueError, match="frequency"):
        random_sines(jax.random.key(0), 2, 5, frequency=(1.0, 0.5))


def test_neighbour_comparison_tags_equal_a_python_loop_and_the_ceiling_is_exact():
    tokens, tags, mask = (np.asarray(a) for a in neighbour_comparison_tagging(jax.random.key(1), 16, 9, vocab_size=5))
    assert tokens.shape == tags.shape == mask.shape == (16, 9)
    for b in range(16):
        for t in range(9):
            if 0 < t < 8:
                assert mask[b, t] and tags[b, t] == int(tokens[b, t + 1] > tokens[b, t - 1])
            else:
                assert not mask[b, t] and tags[b, t] == 0
    # The best left-to-right guess, by brute force over (x_{t-1}, x_{t+1}) pairs.
    for v in (2, 3, 4, 7):
        best = 0.0
        for a in range(v):
            ones = sum(c > a for c in range(v))
            best += max(ones, v - ones) / v / v
        assert left_to_right_ceiling(v) == pytest.approx(best)
    assert left_to_right_ceiling(4) == 0.75
    # Measured: a reader that knows x_{t-1} exactly and guesses optimally reaches the ceiling.
    big_tokens, big_tags, _ = (np.asarray(a) for a in neighbour_comparison_tagging(jax.random.key(2), 20000, 3, vocab_size=4))
    guess = (big_tokens[:, 0] < 2).astype(int)  # x_{t+1} > a is likelier for a in {0, 1}
    assert np.mean(guess == big_tags[:, 1]) == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ValueError, match="length"):
        neighbour_comparison_tagging(jax.random.key(0), 2, 2)
    with pytest.raises(ValueError, match="vocab_size"):
        neighbour_comparison_tagging(jax.random.key(0), 2, 5, vocab_size=1)
