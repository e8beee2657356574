"""A stack of leaky rate layers with one time constant per layer, fixed or learned.

Layer ``l`` (``l = 1 .. L``) is the leaky rate network of :mod:`seqjax.cells.rate` driven by the
rates of the layer below (layer 1 by the input), at the same step::

    h^l_t = (1 - alpha_l) h^l_{t-1} + alpha_l (W_l f(h^l_{t-1}) + U_l r^{l-1}_t + b_l)
            + sqrt(2 alpha_l) sigma xi^l_t
    r^l_t = f(h^l_t),      r^0_t = u_t,      alpha_l = dt / tau_l

(the noise scaling of :mod:`seqjax.cells.rate`: stationary std ``sigma`` for ``W = 0``). The
time constants are stored as logits, ``alpha_l = sigmoid(alpha_logit_l)``, so that ``tau_l >= dt``
always; with ``learn_tau=False`` the logits are held fixed (``stop_gradient``) at the given
``taus``, with ``learn_tau=True`` they are trained with the weights, starting from ``taus``.
:func:`time_constants` reads ``tau_l = dt / alpha_l`` off the parameters.

The step's output is every layer's rates, concatenated, ``[L * h]`` (layer 1 first); the carry is
``h`` ``[L, h]``. With ``noise_std > 0`` the step reads ``x = [u, xi]`` (``d + L h`` features, ``xi``
layer-major; :func:`seqjax.cells.rate.append_noise` with ``L * h``).

Parameter layout (layer ``l``'s weights are :func:`seqjax.cells.rate.rate_init`'s, stacked)::

    w_i: [d, h]          layer 1's input weights
    w_ff: [L - 1, h, h]  layer l's weights from layer l - 1 (l = 2 .. L)
    w_h: [L, h, h]       recurrent weights
    b: [L, h]            biases
    alpha_logit: [L]

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells.leaky_stack import leaky_stack, time_constants
    >>> from seqjax.recurrence import rnn
    >>> cell = leaky_stack((2.0, 8.0, 32.0))
    >>> params = cell.init(jax.random.key(0), 1, 16)
    >>> rnn(cell, params, jnp.ones((4, 50, 1))).shape
    (4, 50, 48)
    >>> [round(t, 3) for t in time_constants(params).tolist()]
    [2.0, 8.0, 32.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import Cell, Params, check_sizes
from seqjax.cells.rate import ACTIVATIONS, rate_init, rate_step


def time_constants(params: Params, dt: float = 1.0) -> jax.Array:
    """``[L]`` the layers' time constants ``tau_l = dt / sigmoid(alpha_logit_l)``."""
    return dt / jax.nn.sigmoid(params["alpha_logit"])


def leaky_stack(
    taus: Sequence[float],
    *,
    dt: float = 1.0,
    activation: str = "tanh",
    learn_tau: bool = False,
    noise_std: float = 0.0,
    recurrent_scale: float = 0.5,
) -> Cell:
    """The stacked leaky rate cell (module docstring); ``taus`` (one per layer, each ``> dt``: the
    logit of ``alpha = 1`` is infinite) and ``dt`` in the same unit."""
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    _checks.positive_float("dt", dt)
    taus = tuple(float(t) for t in taus) if isinstance(taus, (list, tuple)) else taus
    if not (isinstance(taus, tuple) and taus and all(math.isfinite(t) and t > dt for t in taus)):
        raise ValueError(f"taus must be a non-empty sequence of time constants > dt = {dt}; got {taus!r}.")
    if not (isinstance(noise_std, (int, float)) and noise_std >= 0):
        raise ValueError(f"noise_std must be a number >= 0; got {noise_std!r}.")
    n_layers, f = len(taus), ACTIVATIONS[activation]
    logits = [math.log(dt / t) - math.log1p(-dt / t) for t in taus]

    def init(key, in_features, hidden_features):
        check_sizes(in_features, hidden_features, recurrent_scale)
        keys = jax.random.split(key, n_layers)
        layers = [rate_init(k, in_features if l == 0 else hidden_features, hidden_features,
                            recurrent_scale=recurrent_scale) for l, k in enumerate(keys)]
        return {
            "w_i": layers[0]["w_i"],
            "w_ff": jnp.stack([p["w_i"] for p in layers[1:]]) if n_layers > 1
            else jnp.zeros((0, hidden_features, hidden_features), jnp.float32),
            "w_h": jnp.stack([p["w_h"] for p in layers]),
            "b": jnp.stack([p["b"] for p in layers]),
            "alpha_logit": jnp.asarray(logits, jnp.float32),
        }

    def step(params, carry, x):
        d = params["w_i"].shape[0]
        hidden = carry.shape[-1]
        logit = params["alpha_logit"] if learn_tau else jax.lax.stop_gradient(params["alpha_logit"])
        alpha = jax.nn.sigmoid(logit)
        below, states, rates = x[:d], [], []
        for l in range(n_layers):
            layer = {"w_i": params["w_i"] if l == 0 else params["w_ff"][l - 1], "w_h": params["w_h"][l], "b": params["b"][l]}
            h, r = rate_step(layer, carry[l], below, activation=activation, alpha=alpha[l])
            if noise_std:
                h = h + jnp.sqrt(2 * alpha[l]) * noise_std * x[d + l * hidden : d + (l + 1) * hidden]
                r = f(h)
            states.append(h)
            rates.append(r)
            below = r
        return jnp.stack(states), jnp.concatenate(rates)

    def zero_carry(params, dtype=jnp.float32):
        return jnp.zeros(params["b"].shape, dtype)

    def step_input_features(params):
        d, h = params["w_i"].shape
        return d + n_layers * h if noise_std else d

    return Cell(init=init, step=step, zero_carry=zero_carry,
                name=f"leaky_stack_{activation}" + ("_learned_tau" if learn_tau else ""),
                step_input_features=step_input_features)
