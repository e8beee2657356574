"""GRU cells in the two conventions in use: reset after the recurrent product (PyTorch, cuDNN,
Flax) and before it (Cho et al. 2014).

Both use gate order ``r, z, n`` (PyTorch's) and the same update-gate direction, in which
``z`` close to 1 *keeps the old state*::

    r_t = sigmoid(x W_ir + h_{t-1} W_hr + b_r)
    z_t = sigmoid(x W_iz + h_{t-1} W_hz + b_z)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

They differ in where the reset gate acts on the candidate ``n_t``:

* :func:`gru` (``"reset_after"``: PyTorch, cuDNN, Flax)::

      n_t = tanh(x W_in + b_in + r_t * (h_{t-1} W_hn + b_hn))

* :func:`gru_cho` (``"reset_before"``: Cho et al. 2014, and the GRU of most textbooks)::

      n_t = tanh(x W_in + (r_t * h_{t-1}) W_hn + b_n)

Seeds 000 and 001 write the interpolation the other way round, ``h_t = (1 - z) h_{t-1} + z n_t``
(``z`` close to 1 *takes the new candidate*). That is the same function with ``z -> 1 - z``,
i.e. with the update gate's weights and bias negated (:func:`flip_update_gate` does it).

Parameter layouts (``h`` hidden, ``d`` input)::

    gru:      w_i: [d, 3h]  w_h: [h, 3h]  b: [3h] (= b_ir+b_hr, b_iz+b_hz, b_in)  b_hn: [h]
    gru_cho:  w_i: [d, 3h]  w_h: [h, 3h]  b: [3h]

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import gru
    >>> cell = gru()
    >>> params = cell.init(jax.random.key(0), 3, 5)
    >>> h, y = cell.step(params, cell.zero_carry(params, jnp.float32), jnp.ones(3))
    >>> y.shape
    (5,)
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import (
    CHRONO_KEY,
    Cell,
    Params,
    check_sizes,
    chrono_bias,
    recurrent_input,
    recurrent_weights,
    uniform,
)


def _init(key, in_features, hidden_features, recurrent_scale, reset_after: bool, chrono=None) -> Params:
    check_sizes(in_features, hidden_features, recurrent_scale)
    h = hidden_features
    k_i, k_h, k_b, k_n = jax.random.split(key, 4)
    bound = 1.0 / math.sqrt(h)
    w_h = recurrent_weights(k_h, h, 3, recurrent_scale)
    params = {
        "w_i": uniform(k_i, (in_features, 3 * h), bound),
        "w_h": w_h,
        "b": uniform(k_b, (3 * h,), bound),
    }
    if reset_after:
        params["b_hn"] = uniform(k_n, (h,), bound)
    if chrono is not None:
        # z gates the OLD state here (h = (1 - z) n + z h_prev): z plays the LSTM forget gate's
        # part, so its bias takes the chrono draw with a plus sign.
        b_z = chrono_bias(jax.random.fold_in(key, CHRONO_KEY), h, chrono)
        params["b"] = params["b"].at[h : 2 * h].set(b_z)
    return params


def gru_init(key, in_features, hidden_features, *, recurrent_scale=None, chrono=None) -> Params:
    """U(±1/sqrt(h)) for every weight and bias (PyTorch's default); ``recurrent_scale`` as in
    :func:`seqjax.cells.lstm.lstm_init`.

    ``chrono``: if given (``T_max > 2``), the chrono initialisation of Tallec & Ollivier 2018 for
    the update gate. In seqjax's convention ``h_t = (1 - z_t) n_t + z_t h_{t-1}``, ``z`` close to
    1 *keeps the old state* (the forget gate's role), so its bias is set to
    ``b_z ~ +log(U[1, T_max - 1])`` (:func:`seqjax.cells.base.chrono_bias`); the paper writes the
    GRU with ``z`` taking the new candidate, where the same init reads ``b_z = -log(U[...])``.
    Every other parameter is the default draw (the chrono draw uses ``fold_in(key, CHRONO_KEY)``).

    Example::

        >>> import jax, math
        >>> p = gru_init(jax.random.key(0), 2, 3, chrono=50)
        >>> b_z = p["b"][3:6]
        >>> bool((b_z >= 0).all() and (b_z <= math.log(49)).all())
        True
    """
    return _init(key, in_features, hidden_features, recurrent_scale, reset_after=True, chrono=chrono)


def gru_cho_init(key, in_features, hidden_features, *, recurrent_scale=None, chrono=None) -> Params:
    """As :func:`gru_init`, without ``b_hn``."""
    return _init(key, in_features, hidden_features, recurrent_scale, reset_after=False, chrono=chrono)


class GRUGates(NamedTuple):
    """The gate activations of one GRU step, each ``[h]``: reset ``r`` and update ``z``
    (sigmoids; ``z`` close to 1 keeps the old state) and the candidate ``n`` (tanh)."""

    r: jax.Array
    z: jax.Array
    n: jax.Array


def gru_gates(params: Params, h: jax.Array, x: jax.Array) -> tuple[jax.Array, GRUGates]:
    """Reset-after GRU step returning its gates: ``(h', GRUGates(r, z, n))``; :func:`gru_step`
    is this function with the gates dropped."""
    x_r, x_z, x_n = jnp.split(x @ params["w_i"] + params["b"], 3, axis=-1)
    h_r, h_z, h_n = jnp.split(recurrent_input(params, h) @ params["w_h"], 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + params["b_hn"]))
    h = (1.0 - z) * n + z * h
    return h, GRUGates(r, z, n)


def gru_step(params: Params, h: jax.Array, x: jax.Array):
    """Reset-after GRU step (PyTorch/Flax); returns ``(h', h')``."""
    h, _ = gru_gates(params, h, x)
    return h, h


def gru_cho_gates(params: Params, h: jax.Array, x: jax.Array) -> tuple[jax.Array, GRUGates]:
    """Reset-before GRU step (Cho et al. 2014) returning its gates: ``(h', GRUGates(r, z, n))``.

    The candidate needs ``r`` first, so the recurrent product is split in two: the ``r, z``
    columns, then the ``n`` columns applied to ``r * h``.
    """
    hidden = h.shape[-1]
    x_r, x_z, x_n = jnp.split(x @ params["w_i"] + params["b"], 3, axis=-1)
    h_in = recurrent_input(params, h)
    h_r, h_z = jnp.split(h_in @ params["w_h"][:, : 2 * hidden], 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + (r * h_in) @ params["w_h"][:, 2 * hidden :])
    h = (1.0 - z) * n + z * h
    return h, GRUGates(r, z, n)


def gru_cho_step(params: Params, h: jax.Array, x: jax.Array):
    """Reset-before GRU step (Cho et al. 2014); returns ``(h', h')`` (:func:`gru_cho_gates`
    without the gates)."""
    h, _ = gru_cho_gates(params, h, x)
    return h, h


def gru_zero_carry(params: Params, dtype=jnp.float32) -> jax.Array:
    return jnp.zeros(params["w_h"].shape[:1], dtype)


def flip_update_gate(params: Params) -> Params:
    """Negate the update gate's weights and bias, turning ``z`` into ``1 - z``.

    Use it to load weights trained with the opposite ``h = (1 - z) h_prev + z n`` convention (common in textbooks).
    """
    hidden = params["w_h"].shape[0]
    z = slice(hidden, 2 * hidden)
    return params | {k: params[k].at[..., z].multiply(-1.0) for k in ("w_i", "w_h", "b")}


def gru(*, recurrent_scale: float | None = None, chrono: float | None = None) -> Cell:
    """The reset-after GRU (PyTorch, cuDNN, Flax ``GRUCell``); options as :func:`gru_init`."""
    return Cell(
        init=functools.partial(gru_init, recurrent_scale=recurrent_scale, chrono=chrono),
        step=gru_step,
        zero_carry=gru_zero_carry,
        gates=gru_gates,
        name="gru",
    )


def gru_cho(*, recurrent_scale: float | None = None, chrono: float | None = None) -> Cell:
    """The reset-before GRU (Cho et al. 2014); options as :func:`gru_init`."""
    return Cell(
        init=functools.partial(gru_cho_init, recurrent_scale=recurrent_scale, chrono=chrono),
        step=gru_cho_step,
        zero_carry=gru_zero_carry,
        gates=gru_cho_gates,
        name="gru_cho",
    )
