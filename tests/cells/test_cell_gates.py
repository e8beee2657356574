"""cell.gates: the gate activations of LSTM and GRU steps, from the step itself. Checked against
a numpy computation of the gates, against the step's outputs (scanned gates give the states that
``seqjax.recurrence.rnn`` computes, its fused LSTM path included), and their ranges."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells import gru, gru_cho, lstm
from seqjax.recurrence import rnn


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_lstm_gates(p, h, c, x):
    z = x @ p["w_i"] + h @ p["w_h"] + p["b"]
    zi, zf, zg, zo = np.split(z, 4)
    i, f, g, o = _sig(zi), _sig(zf), np.tanh(zg), _sig(zo)
    c = f * c + i * g
    return (o * np.tanh(c), c), (i, f, g, o)


def _numpy_gru_gates(p, h, x, reset_after):
    H = h.shape[0]
    xr, xz, xn = np.split(x @ p["w_i"] + p["b"], 3)
    hr, hz, hn = np.split(h @ p["w_h"], 3)
    r, z = _sig(xr + hr), _sig(xz + hz)
    n = np.tanh(xn + r * (hn + p["b_hn"])) if reset_after else np.tanh(xn + (r * h) @ p["w_h"][:, 2 * H:])
    return (1 - z) * n + z * h, (r, z, n)


def test_lstm_gates_equal_numpy_and_the_step():
    cell = lstm(forget_bias=1.0)
    params = cell.init(jax.random.key(0), 3, 5)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs = np.asarray(jax.random.normal(jax.random.key(1), (9, 3)))
    carry, gates = jax.lax.scan(functools.partial(cell.gates, params), cell.zero_carry(params, jnp.float32), xs)
    h, c = np.zeros(5), np.zeros(5)
    for t in range(9):
        (h, c), ref = _numpy_lstm_gates(p, h, c, xs[t])
        for name, value in zip("ifgo", ref):
            np.testing.assert_allclose(np.asarray(getattr(gates, name)[t]), value, atol=1e-5)
    np.testing.assert_allclose(np.asarray(carry.h), h, atol=1e-5)
    # the states of the scanned gates are what rnn (fused path) computes
    ys = rnn(cell, params, jnp.asarray(xs)[None])[0]
    step_carry, step_y = cell.step(params, cell.zero_carry(params, jnp.float32), jnp.asarray(xs[0]))
    gate_carry, _ = cell.gates(params, cell.zero_carry(params, jnp.float32), jnp.asarray(xs[0]))
    np.testing.assert_array_equal(np.asarray(step_y), np.asarray(gate_carry.h))
    np.testing.assert_array_equal(np.asarray(step_carry.c), np.asarray(gate_carry.c))
    h_seq = np.asarray(jax.lax.scan(lambda c, x: (cell.gates(params, c, x)[0],) * 2, cell.zero_carry(params, jnp.float32),
                                    jnp.asarray(xs))[1].h)
    np.testing.assert_allclose(h_seq, np.asarray(ys), atol=1e-6)


@pytest.mark.parametrize("variant", ["peephole", "layer_norm"])
def test_lstm_variants_gates_match_step(variant):
    cell = lstm(**{variant: True})
    params = cell.init(jax.random.key(2), 4, 6)
    carry = cell.zero_carry(params, jnp.float32)
    x = jnp.ones(4)
    (_, y), (c2, g) = cell.step(params, carry, x), cell.gates(params, carry, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(c2.h))
    assert all(np.all((np.asarray(v) > 0) & (np.asarray(v) < 1)) for v in (g.i, g.f, g.o))
    assert np.all(np.abs(np.asarray(g.g)) < 1)


@pytest.mark.parametrize("make, reset_after", [(gru, True), (gru_cho, False)])
def test_gru_gates_equal_numpy_and_the_step(make, reset_after):
    cell = make()
    params = cell.init(jax.random.key(3), 3, 4)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs = np.asarray(jax.random.normal(jax.random.key(4), (6, 3)))
    h_last, gates = jax.lax.scan(functools.partial(cell.gates, params), cell.zero_carry(params, jnp.float32), xs)
    h = np.zeros(4)
    for t in range(6):
        h, ref = _numpy_gru_gates(p, h, xs[t], reset_after)
        for name, value in zip("rzn", ref):
            np.testing.assert_allclose(np.asarray(getattr(gates, name)[t]), value, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h_last), h, atol=1e-5)
    np.testing.assert_allclose(np.asarray(rnn(cell, params, jnp.asarray(xs)[None])[0, -1]), h, atol=1e-5)


def test_cells_without_gates():
    from seqjax.cells import elman

    assert elman("tanh").gates is None and lstm().gates is not None
