"""Elman RNN cell (Elman 1990; ``torch.nn.RNN``).

Equations, for input ``x_t`` of shape ``[d]`` and state ``h`` of shape ``[h]``::

    h_t = phi(x_t W_i + h_{t-1} W_h + b)        phi = tanh (default) or relu
    y_t = h_t

Textbooks write the column-vector form ``h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)``; here weights
are stored transposed (row-vector convention), so ``W_i = W_xh^T``.

Parameter layout::

    w_i: [d, h]    input weights
    w_h: [h, h]    recurrent weights
    b:   [h]       one bias (PyTorch's b_ih + b_hh)

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import elman
    >>> cell = elman()
    >>> params = cell.init(jax.random.key(0), 3, 5)
    >>> h, y = cell.step(params, cell.zero_carry(params, jnp.float32), jnp.ones(3))
    >>> y.shape
    (5,)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import Cell, Params, check_sizes, recurrent_input, recurrent_weights, uniform

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def elman_init(
    key: jax.Array,
    in_features: int,
    hidden_features: int,
    *,
    recurrent_scale: float | None = None,
) -> Params:
    """PyTorch's default init, U(±1/sqrt(h)) for every weight and bias.

    ``recurrent_scale``: if given, ``w_h`` is instead an orthogonal matrix times this value, so
    its spectral radius is exactly ``recurrent_scale`` (used to study gradient flow).
    """
    check_sizes(in_features, hidden_features, recurrent_scale)
    k_i, k_h, k_b = jax.random.split(key, 3)
    bound = 1.0 / math.sqrt(hidden_features)
    w_h = recurrent_weights(k_h, hidden_features, 1, recurrent_scale)
    return {
        "w_i": uniform(k_i, (in_features, hidden_features), bound),
        "w_h": w_h,
        "b": uniform(k_b, (hidden_features,), bound),
    }


def elman_step(params: Params, h: jax.Array, x: jax.Array, *, activation: str = "tanh"):
    """One step: ``h' = phi(x W_i + h W_h + b)``; returns ``(h', h')``."""
    pre = x @ params["w_i"] + recurrent_input(params, h) @ params["w_h"] + params["b"]
    h = ACTIVATIONS[activation](pre)
    return h, h


def elman_zero_carry(params: Params, dtype=jnp.float32) -> jax.Array:
    return jnp.zeros(params["w_h"].shape[:1], dtype)


def elman(activation: str = "tanh", *, recurrent_scale: float | None = None) -> Cell:
    """The Elman cell with ``activation`` in ``{"tanh", "relu"}``; ``recurrent_scale`` as in
    :func:`elman_init`."""
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    return Cell(
        init=functools.partial(elman_init, recurrent_scale=recurrent_scale),
        step=functools.partial(elman_step, activation=activation),
        zero_carry=elman_zero_carry,
        name=f"elman_{activation}",
    )
