""":func:`stacked`: layer chaining, dropout between layers, residual connections, bidirectional
stacks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrence_refs import (
    B, D, LENGTHS, T, assert_padding_zero, inputs, jbidirectional, jstacked, random_carry,
    run, setup, with_garbage,
)
from seqjax.cells import elman
from seqjax.recurrence import stacked, stacked_init

TOL = dict(atol=1e-5, rtol=1e-5)
H = 5


def layers_for(name, num_layers=2, in_features=D, **kw):
    cell, _ = setup(name)
    return cell, stacked_init(cell, jax.random.key(42), in_features, H, num_layers, **kw)


@pytest.mark.parametrize("name", ["elman", "lstm", "min_gru"])  # gru: the bidirectional test
def test_stacked_equals_chaining_rnn(name):
    cell, layers = layers_for(name)
    xs = with_garbage(inputs(), LENGTHS)
    inits = [random_carry(cell, p, seed=10 + i) for i, p in enumerate(layers)]
    carries, ys = jstacked(cell, layers, xs, seq_lengths=LENGTHS, initial_carry=inits,
                           return_carry=True)
    h, expected = xs, []
    for p, init in zip(layers, inits):
        carry, h = run(cell, p, h, LENGTHS, init)
        expected.append(carry)
    chex.assert_shape(ys, (B, T, H))
    assert len(carries) == 2
    chex.assert_trees_all_close(ys, h, **TOL)
    chex.assert_trees_all_close(carries, expected, **TOL)
    assert_padding_zero(ys, LENGTHS)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_stack_shapes_and_chaining(merge):
    cell, layers = layers_for("gru", 2, bidirectional=True, merge=merge)
    width = 2 * H if merge == "concat" else H
    chex.assert_shape(layers[0]["forward"]["w_i"], (D, 3 * H))
    chex.assert_shape([layers[1]["forward"]["w_i"], layers[1]["backward"]["w_i"]],
                      (width, 3 * H))
    xs = with_garbage(inputs(), LENGTHS)
    carries, ys = jstacked(cell, layers, xs, seq_lengths=LENGTHS, return_carry=True, merge=merge)
    chex.assert_shape(ys, (B, T, width))
    h = xs
    for p in layers:
        h = jbidirectional(cell, p, h, seq_lengths=LENGTHS, merge=merge)
    chex.assert_trees_all_close(ys, h, **TOL)
    assert len(carries) == 2 and all(len(c) == 2 for c in carries)
    assert_padding_zero(ys, LENGTHS)


def relu_probe():
    """Layer 0: a ReLU Elman layer (outputs >= 0). Layer 1: identity input weights, no recurrence,
    no bias, so its output is exactly its (dropped-out) input."""
    cell = elman("relu")
    first = cell.init(jax.random.key(0), D, H)
    first = first | {"b": jnp.abs(first["b"]) + 0.5}  # keep most units active
    identity = {"w_i": jnp.eye(H), "w_h": jnp.zeros((H, H)), "b": jnp.zeros(H)}
    return cell, [first, identity]


P = 0.4


def test_dropout_between_layers_zeroes_and_rescales():
    cell, layers = relu_probe()
    xs = with_garbage(inputs(), LENGTHS)
    clean = np.asarray(run(cell, layers[0], xs, LENGTHS)[1])
    out = np.asarray(jstacked(cell, layers, xs, seq_lengths=LENGTHS, dropout_rate=P,
                              dropout_key=jax.random.key(0)))
    assert_padding_zero(out, LENGTHS)
    valid = (np.arange(T)[None, :] < LENGTHS[:, None])[..., None] & (clean > 1e-3)
    kept = np.isclose(out, clean / (1 - P), rtol=1e-5, atol=1e-6)
    dropped = out == 0.0
    assert np.all((kept | dropped)[np.broadcast_to(valid, out.shape)])
    rate = dropped[np.broadcast_to(valid, out.shape)].mean()
    assert 0.15 < rate < 0.65, rate
    # A fresh mask per element: the pattern is not one fixed mask over time.
    seq0 = dropped[0][clean[0] > 1e-3].reshape(-1)
    assert 0 < seq0.sum() < seq0.size
    assert not all(np.array_equal(dropped[0, t], dropped[0, 0]) for t in range(1, T))


def test_dropout_same_key_same_result_different_key_differs():
    cell, layers = layers_for("lstm", 2)
    xs = inputs()
    f = lambda k: jstacked(cell, layers, xs, seq_lengths=LENGTHS, dropout_rate=P, dropout_key=k)
    a, b, c = f(jax.random.key(1)), f(jax.random.key(1)), f(jax.random.key(2))
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a, c)


def test_dropout_without_key_is_evaluation():
    cell, layers = layers_for("lstm", 2)
    xs = inputs()
    eval_out = jstacked(cell, layers, xs, seq_lengths=LENGTHS)
    no_key = jstacked(cell, layers, xs, seq_lengths=LENGTHS, dropout_rate=P)
    chex.assert_trees_all_equal(no_key, eval_out)
    with_key = jstacked(cell, layers, xs, seq_lengths=LENGTHS, dropout_rate=P,
                        dropout_key=jax.random.key(0))
    assert not np.allclose(with_key, eval_out)


def test_last_layer_output_never_dropped():
    cell, layers = layers_for("gru", 1)
    xs = inputs()
    out = jstacked(cell, layers, xs, seq_lengths=LENGTHS, dropout_rate=P,
                   dropout_key=jax.random.key(0))
    chex.assert_trees_all_equal(out, jstacked(cell, layers, xs, seq_lengths=LENGTHS))


@pytest.mark.parametrize("name", ["elman", "lstm"])
def test_residual_equals_manual_skip_connections(name):
    cell, layers = layers_for(name, 2, in_features=H)
    xs = with_garbage(inputs(d=H), LENGTHS)
    ys = jstacked(cell, layers, xs, seq_lengths=LENGTHS, residual=True)
    valid = (np.arange(T)[None, :] < LENGTHS[:, None])[..., None]
    h = xs
    for p in layers:
        h = run(cell, p, h, LENGTHS)[1] + np.where(valid, h, 0.0)
    chex.assert_trees_all_close(ys, h, **TOL)
    assert_padding_zero(ys, LENGTHS)  # the garbage input is not added back into the padding


def test_residual_width_mismatch_raises():
    cell, layers = layers_for("gru", 2)  # input width D=3 != hidden 5
    with pytest.raises(ValueError, match=r"residual=True.*output width \(5\).*input width \(3\)"):
        stacked(cell, layers, inputs(), residual=True)


def test_initial_carry_count_and_empty_stack_raise():
    cell, layers = layers_for("gru", 2)
    with pytest.raises(ValueError, match=r"initial_carry must hold one carry per layer \(2\)"):
        stacked(cell, layers, inputs(), initial_carry=[random_carry(cell, layers[0])])
    with pytest.raises(ValueError, match=r"layers must hold at least one layer"):
        stacked(cell, [], inputs())
