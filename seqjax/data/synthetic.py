"""Synthetic long-range tasks with exact generators and their chance baselines.

Every generator is a pure function of a PRNG key (the same key gives the same batch) and returns
batch-major arrays: inputs ``[b, t, d]`` float32 and targets.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax import _checks


def adding_problem(key: jax.Array, batch: int, length: int) -> tuple[jax.Array, jax.Array]:
    """The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

    Each step carries two features: a value ``u_t ~ U(0, 1)`` and a marker in ``{0, 1}``. Exactly
    two steps are marked, one uniformly in the first half and one in the second half; the target
    is the sum of the two marked values. Predicting the constant 1 (the mean of the target) gives
    MSE ``Var(u_a + u_b) = 2 / 12 = 1/6 ~ 0.167`` (:func:`adding_baseline_mse`).

    Returns ``xs`` ``[b, length, 2]`` and ``ys`` ``[b]``.
    """
    _checks.positive_int("batch", batch)
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2 (one marker per half); got {length!r}.")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (batch, length))
    first = jax.random.randint(k_first, (batch,), 0, half)
    second = jax.random.randint(k_second, (batch,), half, length)
    steps = jnp.arange(length)
    markers = (steps == first[:, None]) | (steps == second[:, None])
    xs = jnp.stack([values, markers.astype(jnp.float32)], axis=-1)
    ys = jnp.sum(values * markers, axis=1)
    return xs, ys


def adding_baseline_mse() -> float:
    """MSE of always predicting 1 on the adding problem: the variance of a sum of two U(0, 1)."""
    return 2.0 / 12.0


COPY_SYMBOLS = 8  # data symbols 1..8; 0 is blank, 9 the delimiter (Arjovsky et al. 2016)
COPY_VOCAB = COPY_SYMBOLS + 2


def copy_memory(
    key: jax.Array, batch: int, lag: int, *, num_symbols: int = 10
) -> tuple[jax.Array, jax.Array]:
    """The copy-memory task (Arjovsky et al. 2016) as token ids.

    Input (length ``lag + 2 * num_symbols``): ``num_symbols`` symbols drawn uniformly from
    ``1..8``, then ``lag - 1`` blanks (0), a delimiter (9) and ``num_symbols`` blanks. Target: blanks
    everywhere except the last ``num_symbols`` steps, which must reproduce the first ones. A
    memoryless model that predicts blanks and then a uniform guess over the 8 symbols scores
    ``num_symbols * log(8) / (lag + 2 * num_symbols)`` nats per step (:func:`copy_baseline`).

    Returns ``tokens`` ``[b, t]`` and ``targets`` ``[b, t]``, both int32 in ``[0, 10)``; use
    ``jax.nn.one_hot(tokens, COPY_VOCAB)`` as inputs.
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("lag", lag)
    _checks.positive_int("num_symbols", num_symbols)
    symbols = jax.random.randint(key, (batch, num_symbols), 1, COPY_SYMBOLS + 1)
    blanks = jnp.zeros((batch, lag - 1), jnp.int32)
    delimiter = jnp.full((batch, 1), COPY_SYMBOLS + 1, jnp.int32)
    tail = jnp.zeros((batch, num_symbols), jnp.int32)
    tokens = jnp.concatenate([symbols, blanks, delimiter, tail], axis=1)
    targets = jnp.concatenate(
        [jnp.zeros((batch, lag + num_symbols), jnp.int32), symbols], axis=1
    )
    return tokens, targets


def copy_baseline(lag: int, num_symbols: int = 10) -> float:
    """Cross-entropy (nats per step) of the memoryless copy-task strategy described above."""
    return num_symbols * math.log(COPY_SYMBOLS) / (lag + 2 * num_symbols)
