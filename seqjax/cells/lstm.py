"""LSTM cell with fused gates, optional peepholes and an optional layer-normalised variant.

Gate order is ``i, f, g, o`` (PyTorch's and Flax's), so one product per input computes all four
gates. For input ``x`` ``[d]`` and carry ``(h, c)`` each ``[h]``::

    z            = x W_i + h_{t-1} W_h + b                       # [4h], split into z_i z_f z_g z_o
    i_t          = sigmoid(z_i + p_i * c_{t-1})                  # input gate  (the course notes' "learn gate")
    f_t          = sigmoid(z_f + p_f * c_{t-1})                  # forget gate
    g_t          = tanh(z_g)                                     # candidate C~_t (the course notes' N_t)
    c_t          = f_t * c_{t-1} + i_t * g_t                     # the course notes' "remember gate"
    o_t          = sigmoid(z_o + p_o * c_t)                      # output gate (the course notes' "use gate")
    h_t          = o_t * tanh(c_t)

The peephole terms ``p_*`` (Gers & Schmidhuber 2000) are present only when ``params`` has the key
``"peephole"``. With ``layer_norm=True`` (Ba et al. 2016) the two products are normalised
separately and the cell state before its ``tanh``::

    z   = LN(x W_i; gamma_x) + LN(h W_h; gamma_h) + b
    h_t = o_t * tanh(LN(c_t; gamma_c, beta_c))

Seed 001 (C-2) names the same computation "forget / learn / remember / use gates"; see
:func:`gate_formulation_step`, which is a renaming, not another cell.

Parameter layout (``h`` hidden, ``d`` input)::

    w_i: [d, 4h]   w_h: [h, 4h]   b: [4h]      (b = PyTorch's b_ih + b_hh)
    peephole: [3, h]                           (optional: rows p_i, p_f, p_o)
    ln_x_scale, ln_h_scale: [4h]; ln_c_scale, ln_c_bias: [h]   (optional, layer-norm variant)

The carry is :class:`LSTMState` ``(h, c)``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import lstm
    >>> cell = lstm(forget_bias=1.0)
    >>> params = cell.init(jax.random.key(0), 3, 5)
    >>> carry, y = cell.step(params, cell.zero_carry(params, jnp.float32), jnp.ones(3))
    >>> carry.c.shape
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
from seqjax.primitives import layer_norm


class LSTMState(NamedTuple):
    h: jax.Array
    c: jax.Array


def lstm_init(
    key: jax.Array,
    in_features: int,
    hidden_features: int,
    *,
    forget_bias: float = 1.0,
    peephole: bool = False,
    layer_norm: bool = False,
    recurrent_scale: float | None = None,
    chrono: float | None = None,
) -> Params:
    """Weights U(±1/sqrt(h)) as PyTorch; biases zero except the forget gate's, ``forget_bias``.

    ``recurrent_scale``: if given, each gate's ``[h, h]`` block of ``w_h`` is an orthogonal matrix
    times this value (spectral radius exactly ``recurrent_scale``).

    ``chrono``: if given (``T_max > 2``), the chrono initialisation of Tallec & Ollivier 2018
    replaces ``forget_bias``: per unit ``b_f ~ log(U[1, T_max - 1])`` and the input gate's bias
    ``b_i = -b_f`` (:func:`seqjax.cells.base.chrono_bias`; the other biases stay zero). The
    forget gate starts at ``sigmoid(b_f)``, unit ``j`` keeping its cell state for about
    ``exp(b_f[j])`` steps, between 1 and ``T_max - 1``. The draw uses its own key
    (``fold_in(key, CHRONO_KEY)``): the weights are those of the default init.

    Example::

        >>> import jax
        >>> p = lstm_init(jax.random.key(0), 2, 3, chrono=100)
        >>> b_i, b_f = p["b"][:3], p["b"][3:6]
        >>> bool((b_i == -b_f).all()), bool((p["b"][6:] == 0).all())
        (True, True)
    """
    check_sizes(in_features, hidden_features, recurrent_scale)
    h = hidden_features
    k_i, k_h, k_p = jax.random.split(key, 3)
    bound = 1.0 / math.sqrt(h)
    w_h = recurrent_weights(k_h, h, 4, recurrent_scale)
    params = {
        "w_i": uniform(k_i, (in_features, 4 * h), bound),
        "w_h": w_h,
        "b": jnp.zeros((4 * h,), jnp.float32).at[h : 2 * h].set(forget_bias),
    }
    if chrono is not None:
        b_f = chrono_bias(jax.random.fold_in(key, CHRONO_KEY), h, chrono)
        params["b"] = params["b"].at[:h].set(-b_f).at[h : 2 * h].set(b_f)
    if peephole:
        params["peephole"] = uniform(k_p, (3, h), bound)
    if layer_norm:
        params |= {
            "ln_x_scale": jnp.ones((4 * h,), jnp.float32),
            "ln_h_scale": jnp.ones((4 * h,), jnp.float32),
            "ln_c_scale": jnp.ones((h,), jnp.float32),
            "ln_c_bias": jnp.zeros((h,), jnp.float32),
        }
    return params


class LSTMGates(NamedTuple):
    """The gate activations of one LSTM step, each ``[h]``: input ``i``, forget ``f``, output
    ``o`` (sigmoids, in ``(0, 1)``) and the candidate ``g`` (tanh, in ``(-1, 1)``)."""

    i: jax.Array
    f: jax.Array
    g: jax.Array
    o: jax.Array


def lstm_gates(params: Params, carry: LSTMState, x: jax.Array) -> tuple[LSTMState, LSTMGates]:
    """One LSTM step returning its gate activations: ``(carry, LSTMGates(i, f, g, o))``.

    :func:`lstm_step` is this function with the gates dropped, so scanning it gives the gates of
    the computation the model runs (module docstring for the equations).

    Example::

        >>> import functools, jax, jax.numpy as jnp
        >>> from seqjax.cells import lstm
        >>> cell = lstm()
        >>> params = cell.init(jax.random.key(0), 3, 5)
        >>> carry, gates = jax.lax.scan(functools.partial(cell.gates, params),
        ...                             cell.zero_carry(params, jnp.float32), jnp.ones((7, 3)))
        >>> gates.f.shape, bool(((gates.f > 0) & (gates.f < 1)).all())
        ((7, 5), True)
    """
    h_prev, c_prev = carry
    x_part = x @ params["w_i"]
    h_part = recurrent_input(params, h_prev) @ params["w_h"]
    normalised = "ln_x_scale" in params
    if normalised:
        x_part = layer_norm({"scale": params["ln_x_scale"]}, x_part)  # no shift: the gate bias follows
        h_part = layer_norm({"scale": params["ln_h_scale"]}, h_part)
    z_i, z_f, z_g, z_o = jnp.split(x_part + h_part + params["b"], 4, axis=-1)
    if "peephole" in params:
        p_i, p_f, p_o = params["peephole"]
        z_i = z_i + p_i * c_prev
        z_f = z_f + p_f * c_prev
    i, f, g = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_g)
    c = f * c_prev + i * g
    if "peephole" in params:
        z_o = z_o + p_o * c
    c_out = layer_norm({"scale": params["ln_c_scale"], "bias": params["ln_c_bias"]}, c) if normalised else c
    o = jax.nn.sigmoid(z_o)
    h = o * jnp.tanh(c_out)
    return LSTMState(h, c), LSTMGates(i, f, g, o)


def lstm_step(params: Params, carry: LSTMState, x: jax.Array) -> tuple[LSTMState, jax.Array]:
    """One LSTM step; the variant (peephole, layer norm) follows from the keys in ``params``
    (:func:`lstm_gates` without the gates)."""
    carry, _ = lstm_gates(params, carry, x)
    return carry, carry.h


def lstm_zero_carry(params: Params, dtype=jnp.float32) -> LSTMState:
    zeros = jnp.zeros(params["w_h"].shape[:1], dtype)
    return LSTMState(zeros, zeros)


def lstm(
    *,
    forget_bias: float = 1.0,
    peephole: bool = False,
    layer_norm: bool = False,
    recurrent_scale: float | None = None,
    chrono: float | None = None,
) -> Cell:
    """The LSTM cell; the options choose what :func:`lstm_init` creates (the step reads them back
    from the parameter keys)."""
    return Cell(
        init=functools.partial(
            lstm_init,
            forget_bias=forget_bias,
            peephole=peephole,
            layer_norm=layer_norm,
            recurrent_scale=recurrent_scale,
            chrono=chrono,
        ),
        step=lstm_step,
        zero_carry=lstm_zero_carry,
        gates=lstm_gates,
        name="lstm" + ("_peephole" if peephole else "") + ("_layernorm" if layer_norm else ""),
    )


# --- Seed 001 (C-2): the "forget / learn / remember / use gate" formulation -------------------


def gate_formulation_params(
    *, W_f, b_f, W_i, b_i, W_N, b_N, W_o, b_o, hidden_features: int
) -> Params:
    """Map the per-gate weights of the "forget / learn / remember / use gate" formulation (the
    course notes' introduction to LSTMs) onto the fused LSTM layout.

    That formulation writes each gate as ``sigma(W [h_{t-1}, x_t] + b)`` with ``W`` of shape
    ``[h, h + d]`` acting on the concatenation *hidden first*. The learn gate is ``i_t`` with its
    candidate ``N_t`` (our ``g``), the remember gate is the cell update (no parameters) and the use
    gate is the output gate. Stacking the row blocks in the order ``i, f, N, o`` and splitting the
    columns into the hidden and input parts gives exactly :func:`lstm_step`'s parameters.
    """
    h = hidden_features
    stacked = jnp.concatenate([W_i, W_f, W_N, W_o], axis=0)  # [4h, h + d]
    return {
        "w_h": stacked[:, :h].T,
        "w_i": stacked[:, h:].T,
        "b": jnp.concatenate([b_i, b_f, b_N, b_o]),
    }


def gate_formulation_step(params: Params, carry: LSTMState, x: jax.Array):
    """Seed 001's gates, written out literally (used to test that it is the LSTM, nothing more).

    ``params`` holds ``W_f, b_f, W_i, b_i, W_N, b_N, W_o, b_o`` in that formulation's layout.
    """
    stm, ltm = carry  # short-term memory = h, long-term memory = C
    hx = jnp.concatenate([stm, x])
    forget = jax.nn.sigmoid(params["W_f"] @ hx + params["b_f"])
    learn = jax.nn.sigmoid(params["W_i"] @ hx + params["b_i"]) * jnp.tanh(
        params["W_N"] @ hx + params["b_N"]
    )
    remember = ltm * forget + learn
    use = jax.nn.sigmoid(params["W_o"] @ hx + params["b_o"]) * jnp.tanh(remember)
    return LSTMState(use, remember), use
