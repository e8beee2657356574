"""Flax parity: Flax's own recurrent cells, their parameters copied into the seqjax layout.

Flax 0.12.8's layouts (read from ``flax/nnx/nn/recurrent.py`` and ``flax/linen/recurrent.py``):

* ``nnx.SimpleCell``: ``dense_i`` (kernel, bias) + ``dense_h`` (kernel, no bias); carry ``h``.
* ``nnx.LSTMCell``: eight Linears ``ii, if_, ig, io`` (no bias) and ``hi, hf, hg, ho`` (bias);
  carry ``(c, h)``, the reverse of seqjax's ``LSTMState(h, c)``.
* ``nnx.OptimizedLSTMCell``: fused ``dense_i`` [d, 4h] (no bias) and ``dense_h`` [h, 4h] (bias),
  gate order ``i, f, g, o``.
* ``nnx.GRUCell``: fused ``dense_i`` [d, 3h] (bias) and ``dense_h`` [h, 3h] (*no* bias), gate
  order ``r, z, n``; so ``b_hn = 0``.
* ``linen.GRUCell``: six Denses ``ir, iz, in`` (bias) and ``hr, hz`` (no bias), ``hn`` (bias):
  four bias vectors, mapping to seqjax's ``b = [b_ir, b_iz, b_in]`` and ``b_hn``.

Flax initialises biases to zero and recurrent kernels orthogonally; every parameter is overwritten
with random values so biases and the layout of every block are exercised. Flax is stepped by hand
over the batch; seqjax runs ``rnn`` from the same nonzero initial carry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from seqjax.cells import LSTMState, elman, gru, lstm
from seqjax.recurrence import rnn

ATOL = RTOL = 1e-5
B, T, D, H = 3, 6, 5, 8


def randomise(module: nnx.Module, seed: int, scale: float = 0.4) -> None:
    """Overwrite every ``nnx.Param`` of ``module`` with N(0, scale^2) values."""
    rng = np.random.default_rng(seed)
    for _, param in nnx.iter_graph(module):
        if isinstance(param, nnx.Param):
            param[...] = jnp.asarray(rng.normal(size=param.shape) * scale, jnp.float32)


def data(seed: int):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    h0 = jnp.asarray(rng.normal(size=(B, H)) * 0.5, jnp.float32)
    c0 = jnp.asarray(rng.normal(size=(B, H)) * 0.5, jnp.float32)
    return xs, h0, c0


def step_flax(flax_cell, carry, xs):
    """Apply a flax cell (module or bound callable) step by step; returns carry and ``[b, t, h]``."""
    ys = []
    for t in range(xs.shape[1]):
        carry, y = flax_cell(carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=ATOL, rtol=RTOL)


def test_simple_cell():
    cell = nnx.SimpleCell(D, H, rngs=nnx.Rngs(0))
    randomise(cell, 1)
    params = {
        "w_i": cell.dense_i.kernel[...],
        "w_h": cell.dense_h.kernel[...],
        "b": cell.dense_i.bias[...],
    }
    assert cell.dense_h.bias is None
    xs, h0, _ = data(2)
    h_flax, ys_flax = step_flax(cell, h0, xs)
    h_sj, ys_sj = rnn(elman("tanh"), params, xs, initial_carry=h0, return_carry=True)
    close(ys_sj, ys_flax)
    close(h_sj, h_flax)


def test_simple_cell_relu():
    cell = nnx.SimpleCell(D, H, activation_fn=nnx.relu, rngs=nnx.Rngs(0))
    randomise(cell, 3)
    params = {"w_i": cell.dense_i.kernel[...], "w_h": cell.dense_h.kernel[...], "b": cell.dense_i.bias[...]}
    xs, h0, _ = data(4)
    h_flax, ys_flax = step_flax(cell, h0, xs)
    h_sj, ys_sj = rnn(elman("relu"), params, xs, initial_carry=h0, return_carry=True)
    assert np.any(np.asarray(ys_flax) == 0.0) and np.any(np.asarray(ys_flax) > 0.0)
    close(ys_sj, ys_flax)
    close(h_sj, h_flax)


def test_lstm_cell():
    cell = nnx.LSTMCell(D, H, rngs=nnx.Rngs(0))
    randomise(cell, 5)
    gates_i = [cell.ii, cell.if_, cell.ig, cell.io]
    gates_h = [cell.hi, cell.hf, cell.hg, cell.ho]
    assert all(g.bias is None for g in gates_i)
    params = {
        "w_i": jnp.concatenate([g.kernel[...] for g in gates_i], axis=1),
        "w_h": jnp.concatenate([g.kernel[...] for g in gates_h], axis=1),
        "b": jnp.concatenate([g.bias[...] for g in gates_h]),
    }
    xs, h0, c0 = data(6)
    (c_flax, h_flax), ys_flax = step_flax(cell, (c0, h0), xs)
    carry, ys_sj = rnn(lstm(), params, xs, initial_carry=LSTMState(h0, c0), return_carry=True)
    close(ys_sj, ys_flax)
    close(carry.h, h_flax)
    close(carry.c, c_flax)


def test_optimized_lstm_cell():
    cell = nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0))
    randomise(cell, 7)
    assert cell.dense_i.bias is None
    params = {"w_i": cell.dense_i.kernel[...], "w_h": cell.dense_h.kernel[...], "b": cell.dense_h.bias[...]}
    xs, h0, c0 = data(8)
    (c_flax, h_flax), ys_flax = step_flax(cell, (c0, h0), xs)
    carry, ys_sj = rnn(lstm(), params, xs, initial_carry=LSTMState(h0, c0), return_carry=True)
    close(ys_sj, ys_flax)
    close(carry.h, h_flax)
    close(carry.c, c_flax)


def test_nnx_gru_cell():
    cell = nnx.GRUCell(D, H, rngs=nnx.Rngs(0))
    randomise(cell, 9)
    assert cell.dense_h.bias is None  # flax 0.12.8's NNX GRUCell has no b_hn
    params = {
        "w_i": cell.dense_i.kernel[...],
        "w_h": cell.dense_h.kernel[...],
        "b": cell.dense_i.bias[...],
        "b_hn": jnp.zeros((H,), jnp.float32),
    }
    xs, h0, _ = data(10)
    h_flax, ys_flax = step_flax(cell, h0, xs)
    h_sj, ys_sj = rnn(gru(), params, xs, initial_carry=h0, return_carry=True)
    close(ys_sj, ys_flax)
    close(h_sj, h_flax)


def test_linen_gru_cell_four_biases():
    """Linen's GRUCell keeps ``b_hn`` inside the reset product: seqjax's ``b_hn``."""
    module = linen.GRUCell(features=H)
    xs, h0, _ = data(12)
    variables = module.init(jax.random.key(0), h0, xs[:, 0])
    rng = np.random.default_rng(11)
    variables = jax.tree.map(lambda v: jnp.asarray(rng.normal(size=v.shape) * 0.4, jnp.float32), variables)
    p = variables["params"]
    assert set(p) == {"ir", "iz", "in", "hr", "hz", "hn"}
    assert "bias" not in p["hr"] and "bias" in p["hn"]
    params = {
        "w_i": jnp.concatenate([p["ir"]["kernel"], p["iz"]["kernel"], p["in"]["kernel"]], axis=1),
        "w_h": jnp.concatenate([p["hr"]["kernel"], p["hz"]["kernel"], p["hn"]["kernel"]], axis=1),
        "b": jnp.concatenate([p["ir"]["bias"], p["iz"]["bias"], p["in"]["bias"]]),
        "b_hn": p["hn"]["bias"],
    }
    h_flax, ys_flax = step_flax(lambda c, x: module.apply(variables, c, x), h0, xs)
    h_sj, ys_sj = rnn(gru(), params, xs, initial_carry=h0, return_carry=True)
    close(ys_sj, ys_flax)
    close(h_sj, h_flax)


@pytest.mark.parametrize("flax_cls", [nnx.OptimizedLSTMCell, nnx.GRUCell], ids=["lstm", "gru"])
def test_padded_batch_matches_flax_on_each_prefix(flax_cls):
    """With ``seq_lengths``, seqjax's final carry is flax's carry after exactly ``L`` steps."""
    cell = flax_cls(D, H, rngs=nnx.Rngs(0))
    randomise(cell, 13)
    if flax_cls is nnx.GRUCell:
        params = {"w_i": cell.dense_i.kernel[...], "w_h": cell.dense_h.kernel[...],
                  "b": cell.dense_i.bias[...], "b_hn": jnp.zeros((H,), jnp.float32)}
        sj_cell, carry0 = gru(), jnp.zeros((B, H))
        to_flax = lambda c: c  # noqa: E731
    else:
        params = {"w_i": cell.dense_i.kernel[...], "w_h": cell.dense_h.kernel[...],
                  "b": cell.dense_h.bias[...]}
        sj_cell, carry0 = lstm(), LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H)))
        to_flax = lambda c: (c.c, c.h)  # noqa: E731
    xs, _, _ = data(14)
    lengths = [6, 3, 1]
    carry, ys = rnn(sj_cell, params, xs, seq_lengths=jnp.asarray(lengths), return_carry=True)
    _, ys_flax = step_flax(cell, to_flax(carry0), xs)
    h_final = carry.h if isinstance(carry, LSTMState) else carry
    for i, length in enumerate(lengths):
        close(ys[i, :length], ys_flax[i, :length])
        np.testing.assert_array_equal(np.asarray(ys[i, length:]), 0.0)
        close(h_final[i], ys_flax[i, length - 1])
