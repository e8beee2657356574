"""Synthetic tasks: structure, determinism per key, and baselines that match their formulas."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.data import (
    COPY_VOCAB,
    adding_baseline_mse,
    adding_problem,
    copy_baseline,
    copy_memory,
    delayed_match_to_sample,
    ends_with_pattern,
    noisy_sines,
    sequence_reversal,
)


def test_adding_problem_structure_and_determinism():
    xs, ys = adding_problem(jax.random.key(0), 64, 50)
    chex.assert_shape((xs, ys), ((64, 50, 2), (64,)))
    markers = np.asarray(xs[..., 1])
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    np.testing.assert_allclose(ys, (xs[..., 0] * xs[..., 1]).sum(1), rtol=1e-6)
    chex.assert_trees_all_equal(adding_problem(jax.random.key(0), 64, 50), (xs, ys))
    assert not jnp.array_equal(adding_problem(jax.random.key(1), 64, 50)[1], ys)


def test_adding_baseline_matches_monte_carlo():
    _, ys = adding_problem(jax.random.key(0), 200_000, 10)
    mse = float(jnp.mean((ys - 1.0) ** 2))
    assert adding_baseline_mse() == pytest.approx(0.1667, abs=1e-4)
    assert mse == pytest.approx(adding_baseline_mse(), abs=3e-3)


def test_copy_memory_structure():
    lag, n = 30, 10
    tokens, targets = copy_memory(jax.random.key(0), 16, lag)
    chex.assert_shape((tokens, targets), ((16, lag + 2 * n), (16, lag + 2 * n)))
    np.testing.assert_array_equal(targets[:, -n:], tokens[:, :n])
    assert (tokens[:, :n] >= 1).all() and (tokens[:, :n] <= 8).all()
    assert (tokens[:, lag + n - 1] == 9).all()
    assert (tokens[:, n : lag + n - 1] == 0).all() and (tokens[:, -n:] == 0).all()
    assert (targets[:, : lag + n] == 0).all()


@pytest.mark.parametrize("lag", [50, 200])
def test_copy_baseline_is_the_memoryless_cross_entropy(lag):
    n = 10
    tokens, targets = copy_memory(jax.random.key(1), 32, lag)
    # Memoryless strategy: certain blank for the first lag + n steps, uniform over 1..8 after.
    probs = np.zeros((lag + 2 * n, COPY_VOCAB))
    probs[: lag + n, 0] = 1.0
    probs[lag + n :, 1:9] = 1.0 / 8
    picked = np.take_along_axis(np.broadcast_to(probs, (32, *probs.shape)), np.asarray(targets)[..., None], -1)
    cross_entropy = -np.log(picked).mean()
    assert cross_entropy == pytest.approx(copy_baseline(lag), rel=1e-9)
    assert copy_baseline(lag) == pytest.approx(10 * math.log(8) / (lag + 20))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adding_problem(jax.random.key(0), 4, 1), "length"),
        (lambda: adding_problem(jax.random.key(0), 0, 10), "batch"),
        (lambda: copy_memory(jax.random.key(0), 4, 0), "lag"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sequence_reversal():
    tokens, targets = sequence_reversal(jax.random.key(0), 4, 7, vocab_size=6)
    np.testing.assert_array_equal(np.asarray(targets), np.asarray(tokens)[:, ::-1])
    assert int(tokens.max()) < 6


def test_ends_with_pattern_is_balanced_and_labels_are_true():
    tokens, labels = ends_with_pattern(jax.random.key(0), 1000, 10)
    assert int(labels.sum()) == 500
    ends = np.all(np.asarray(tokens)[:, -3:] == np.array([1, 2, 3]), axis=1)
    np.testing.assert_array_equal(ends, np.asarray(labels) == 1)
    chex.assert_trees_all_equal(ends_with_pattern(jax.random.key(0), 1000, 10), (tokens, labels))


def test_noisy_sines_continue_the_window():
    xs, ys = noisy_sines(jax.random.key(0), 3, 20, noise=0.0, frequencies=(0.1,), amplitudes=(1.0,))
    chex.assert_shape((xs, ys), ((3, 20, 1), (3,)))
    # Noise-free single tone: s_{t+1} = 2 cos(w) s_t - s_{t-1} holds exactly for a sinusoid.
    np.testing.assert_allclose(ys, 2 * np.cos(0.1) * xs[:, -1, 0] - xs[:, -2, 0], atol=1e-5)


def test_delayed_match_to_sample_labels():
    xs, labels = delayed_match_to_sample(jax.random.key(0), 400, 6, features=4)
    matches = np.all(np.asarray(xs[:, -1]) == np.asarray(xs[:, 0]), axis=1)
    np.testing.assert_array_equal(matches, np.asarray(labels) == 1)
    assert 150 < int(labels.sum()) < 250
