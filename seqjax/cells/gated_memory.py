"""The textbook chapter's gated working-memory cell: a prefrontal memory with a basal-ganglia gate.

The chapter's "NeuralWorkingMemoryModel" (its PFC / basal-ganglia gating model, after O'Reilly &
Frank 2006's idea that the basal ganglia gate what enters prefrontal working memory): the memory
``m`` is either kept, through a GRU cell, or overwritten by the current input, and a sigmoid gate
computed from the input and the memory decides how much of each::

    u_t = sigmoid([x_t, m_{t-1}] W_u + b_u)            update gate ("gate the input in")
    c_t = tanh(x_t W_i + b_i)                          input representation
    k_t = GRU(input = m_{t-1}, hidden = m_{t-1})       maintenance
    m_t = (1 - u_t) * k_t + u_t * c_t

The maintenance GRU is fed the memory as both its input and its hidden state, as the chapter
writes it (``maintenance_cell(prev_memory, prev_memory)``); it is PyTorch's ``nn.GRUCell``, the
reset-after GRU of :func:`seqjax.cells.gru`. The chapter gives no readout, loss or sizes; a model
built on this cell adds its own readout of ``m``.

Parameter layout (``d`` inputs, ``m`` memory units; PyTorch's default initialisation,
``U(+-1/sqrt(fan_in))`` for every weight and bias)::

    w_i: [d, m]  b_i: [m]            input layer
    w_u: [d + m, m]  b_u: [m]        update gate (rows: x first, then m)
    gru_w_i: [m, 3m]  gru_w_h: [m, 3m]  gru_b: [3m]  gru_b_hn: [m]     maintenance GRU
                                     (the layout of :func:`seqjax.cells.gru`, prefixed)

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells.gated_memory import gated_memory
    >>> from seqjax.recurrence import rnn
    >>> cell = gated_memory()
    >>> params = cell.init(jax.random.key(0), 8, 16)
    >>> rnn(cell, params, jnp.ones((2, 10, 8))).shape
    (2, 10, 16)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax.cells.base import Cell, Params, check_sizes, uniform
from seqjax.cells.gru import gru_init, gru_step


def gated_memory_init(key: jax.Array, in_features: int, hidden_features: int) -> Params:
    """PyTorch's default draws for the chapter's ``Linear`` layers and ``GRUCell``."""
    check_sizes(in_features, hidden_features)
    d, m = in_features, hidden_features
    k_i, k_ib, k_u, k_ub, k_g = jax.random.split(key, 5)
    return {
        "w_i": uniform(k_i, (d, m), 1 / math.sqrt(d)),
        "b_i": uniform(k_ib, (m,), 1 / math.sqrt(d)),
        "w_u": uniform(k_u, (d + m, m), 1 / math.sqrt(d + m)),
        "b_u": uniform(k_ub, (m,), 1 / math.sqrt(d + m)),
        **{f"gru_{k}": v for k, v in gru_init(k_g, m, m).items()},
    }


def maintenance(params: Params) -> Params:
    """The maintenance GRU's parameters in :func:`seqjax.cells.gru`'s layout."""
    return {k[4:]: v for k, v in params.items() if k.startswith("gru_")}


def gated_memory_gate(params: Params, m: jax.Array, x: jax.Array) -> jax.Array:
    """The update gate ``u_t`` ``[m]`` of the step from memory ``m`` on input ``x``."""
    return jax.nn.sigmoid(jnp.concatenate([x, m], axis=-1) @ params["w_u"] + params["b_u"])


def gated_memory_step(params: Params, m: jax.Array, x: jax.Array):
    """One step (module docstring) on ``x`` ``[d]``; returns ``(m', m')``."""
    u = gated_memory_gate(params, m, x)
    c = jnp.tanh(x @ params["w_i"] + params["b_i"])
    kept, _ = gru_step(maintenance(params), m, m)
    m = (1.0 - u) * kept + u * c
    return m, m


def gated_memory_zero_carry(params: Params, dtype=jnp.float32) -> jax.Array:
    return jnp.zeros(params["b_u"].shape, dtype)


def gated_memory() -> Cell:
    """The gated working-memory cell (module docstring)."""
    return Cell(init=gated_memory_init, step=gated_memory_step, zero_carry=gated_memory_zero_carry,
                name="gated_memory")
