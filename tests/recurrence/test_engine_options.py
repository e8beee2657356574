"""``initial_carry``, ``return_carry``, ``unroll``, ``parallel`` and ``dtype`` of :func:`rnn`."""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrence_refs import (
    ALL, B, CORE, LENGTHS, LINEAR, T, assert_padding_zero, inputs, jrnn, random_carry,
    reference, run, setup, with_garbage,
)
from seqjax.cells import LSTMState
from seqjax.recurrence import rnn

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CORE)
def test_initial_carry_is_used(name):
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)
    carry, ys = run(cell, params, xs, LENGTHS, init)
    ref = reference(cell, params, xs, LENGTHS, initial_carry=init)
    chex.assert_trees_all_close((carry, ys), ref, **TOL)
    # ... and it matters: the zero-carry run differs at the first step of every non-empty sequence.
    _, ys_zero = run(cell, params, xs, LENGTHS)
    for i, n in enumerate(LENGTHS):
        if n:
            assert not np.allclose(ys[i, 0], ys_zero[i, 0], atol=1e-3), i


@pytest.mark.parametrize("name", ALL)
def test_return_carry_structure_and_shapes(name):
    cell, params = setup(name)
    xs = inputs()
    carry, ys = run(cell, params, xs, LENGTHS)
    chex.assert_shape(ys, (B, T, 5))
    chex.assert_tree_all_finite((carry, ys))
    zero = cell.zero_carry(params, jnp.float32)
    assert jax.tree.structure(carry) == jax.tree.structure(zero)
    chex.assert_trees_all_equal_shapes(carry, jax.tree.map(lambda z: np.zeros((B, *z.shape)), zero))
    if name == "lstm":
        assert isinstance(carry, LSTMState)
        chex.assert_shape([carry.h, carry.c], (B, 5))


def test_return_carry_false_returns_only_outputs():
    cell, params = setup("lstm")
    xs = inputs()
    only_ys = rnn(cell, params, xs, seq_lengths=LENGTHS)
    assert isinstance(only_ys, jax.Array)
    chex.assert_trees_all_close(only_ys, run(cell, params, xs, LENGTHS)[1], **TOL)


@pytest.mark.parametrize("name, unroll", [("lstm", 2), ("lstm", 3), ("gru", 2), ("min_gru", 2)])
def test_unroll_does_not_change_results(name, unroll):
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)
    chex.assert_trees_all_close(
        run(cell, params, xs, LENGTHS, init, reverse=True, unroll=unroll),
        run(cell, params, xs, LENGTHS, init, reverse=True), **TOL
    )


@pytest.mark.parametrize(
    "name, reverse, keep_order",
    [(n, False, False) for n in LINEAR] + [(n, True, True) for n in LINEAR]
    + [("min_gru", True, False)],
)
def test_parallel_equals_sequential(name, reverse, keep_order):
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)
    kw = dict(reverse=reverse, keep_order=keep_order)
    carry_p, ys_p = run(cell, params, xs, LENGTHS, init, parallel=True, **kw)
    carry_s, ys_s = run(cell, params, xs, LENGTHS, init, **kw)
    chex.assert_trees_all_close((carry_p, ys_p), (carry_s, ys_s), **TOL)
    assert_padding_zero(ys_p, LENGTHS)
    chex.assert_trees_all_close(
        (carry_p, ys_p),
        reference(cell, params, xs, LENGTHS, initial_carry=init, reverse=reverse,
                  keep_order=keep_order),
        **TOL,
    )


@pytest.mark.parametrize("name", LINEAR)
def test_parallel_without_seq_lengths(name):
    cell, params = setup(name)
    xs = inputs()
    chex.assert_trees_all_close(
        jrnn(cell, params, xs, parallel=True, return_carry=True),
        jrnn(cell, params, xs, return_carry=True), **TOL,
    )


def test_bfloat16_computation():
    cell, params = setup("lstm")
    xs = with_garbage(inputs(), LENGTHS)
    carry, ys = run(cell, params, xs, LENGTHS, dtype=jnp.bfloat16)
    assert ys.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(carry))
    ref_carry, ref_ys = reference(cell, params, xs, LENGTHS)
    chex.assert_trees_all_close(ys.astype(jnp.float32), ref_ys, atol=5e-2)
    assert_padding_zero(ys.astype(jnp.float32), LENGTHS)


def test_eager_equals_jit():
    cell, params = setup("gru")
    xs = with_garbage(inputs(), LENGTHS)
    chex.assert_trees_all_close(
        rnn(cell, params, xs, seq_lengths=LENGTHS, return_carry=True, reverse=True),
        run(cell, params, xs, LENGTHS, reverse=True), **TOL,
    )


@pytest.mark.skipif("fused" not in inspect.signature(rnn).parameters,
                    reason="rnn has no fused LSTM path")
def test_fused_lstm_path_equals_generic_scan():
    """The plain LSTM's fused path (custom JVP) gives the generic scan's values and gradients,
    with padding, reverse/keep_order and an initial carry."""
    cell, params = setup("lstm")
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)

    def loss(p, x, c, fused):
        carry, ys = rnn(cell, p, x, seq_lengths=LENGTHS, initial_carry=c, return_carry=True,
                        reverse=True, keep_order=True, fused=fused)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(carry.h ** 2) + jnp.sum(carry.c ** 2), (carry, ys)

    @jax.jit
    def both(p, x, c):
        return [jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(p, x, c, fused)
                for fused in (True, False)]

    fused, generic = both(params, xs, init)
    chex.assert_trees_all_close(fused, generic, atol=1e-5, rtol=1e-4)
