"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates read only the input, so the recurrence is linear in the state::

    h_t = a_t * h_{t-1} + b_t

minGRU::

    z_t = sigmoid(x_t W_z + b_z)        h~_t = x_t W_h + b_h
    a_t = 1 - z_t                       b_t  = z_t * h~_t

minLSTM (forget and input gates normalised to sum to one)::

    f_t = sigmoid(x_t W_f + b_f)        i_t = sigmoid(x_t W_i + b_i)        h~_t = x_t W_h + b_h
    a_t = f_t / (f_t + i_t)             b_t  = i_t / (f_t + i_t) * h~_t

Because ``(a, b)`` compose associatively, ``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``, the
whole sequence can be computed with :func:`jax.lax.associative_scan` in ``O(log T)`` depth
(the sequence engine's ``parallel=True``). This is the paper's non-log-space form: ``h~`` is a
plain linear map, without the ``g`` activation of its log-space variant.

Parameter layout (``h`` hidden, ``d`` input)::

    min_gru:  w: [d, 2h] (z, h~ columns)      b: [2h]
    min_lstm: w: [d, 3h] (f, i, h~ columns)   b: [3h]

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import min_gru
    >>> cell = min_gru()
    >>> params = cell.init(jax.random.key(0), 3, 5)
    >>> a, b = cell.linear_coefficients(params, jnp.ones((7, 3)))
    >>> a.shape
    (7, 5)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax.cells.base import Cell, Params, check_sizes, uniform


def _init(key, in_features, hidden_features, blocks) -> Params:
    check_sizes(in_features, hidden_features)
    k_w, k_b = jax.random.split(key)
    bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default
    return {
        "w": uniform(k_w, (in_features, blocks * hidden_features), bound),
        "b": uniform(k_b, (blocks * hidden_features,), bound),
    }


def min_gru_init(key, in_features, hidden_features) -> Params:
    return _init(key, in_features, hidden_features, 2)


def min_lstm_init(key, in_features, hidden_features) -> Params:
    return _init(key, in_features, hidden_features, 3)


def min_gru_coefficients(params: Params, x: jax.Array):
    """``(a, b)`` with ``h_t = a * h_{t-1} + b`` for inputs ``x`` ``[..., d]``; each ``[..., h]``."""
    z_pre, candidate = jnp.split(x @ params["w"] + params["b"], 2, axis=-1)
    z = jax.nn.sigmoid(z_pre)
    return 1.0 - z, z * candidate


def min_lstm_coefficients(params: Params, x: jax.Array):
    """``(a, b)`` for minLSTM; ``f / (f + i)`` is computed as ``sigmoid(log f - log i)``, stably."""
    f_pre, i_pre, candidate = jnp.split(x @ params["w"] + params["b"], 3, axis=-1)
    # f/(f+i) = 1 / (1 + i/f) = sigmoid(log f - log i), with log sigmoid for stability.
    log_ratio = jax.nn.log_sigmoid(f_pre) - jax.nn.log_sigmoid(i_pre)
    forget = jax.nn.sigmoid(log_ratio)
    return forget, (1.0 - forget) * candidate


def _linear_step(coefficients):
    def step(params: Params, h: jax.Array, x: jax.Array):
        a, b = coefficients(params, x)
        h = a * h + b
        return h, h

    return step


def _zero_carry(blocks: int):
    def zero_carry(params: Params, dtype=jnp.float32) -> jax.Array:
        return jnp.zeros(params["b"].shape[0] // blocks, dtype)

    return zero_carry


min_gru_step = _linear_step(min_gru_coefficients)
min_lstm_step = _linear_step(min_lstm_coefficients)


def min_gru() -> Cell:
    return Cell(
        init=min_gru_init,
        step=min_gru_step,
        zero_carry=_zero_carry(2),
        linear_coefficients=min_gru_coefficients,
        name="min_gru",
    )


def min_lstm() -> Cell:
    return Cell(
        init=min_lstm_init,
        step=min_lstm_step,
        zero_carry=_zero_carry(3),
        linear_coefficients=min_lstm_coefficients,
        name="min_lstm",
    )
