"""Padding (``seq_lengths``): the engine must equal running every sequence alone, unpadded."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recurrence_refs import (
    ALL, B, CORE, D, LENGTHS, LINEAR, T, assert_padding_zero, inputs, jrnn, random_carry,
    reference, run, setup, with_garbage,
)
from seqjax.recurrence import rnn

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_matches_each_sequence_run_alone(name):
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    carry, ys = run(cell, params, xs, LENGTHS)
    ref_carry, ref_ys = reference(cell, params, xs, LENGTHS)
    chex.assert_shape(ys, (B, T, 5))
    chex.assert_trees_all_close(ys, ref_ys, **TOL)
    chex.assert_trees_all_close(carry, ref_carry, **TOL)
    assert_padding_zero(ys, LENGTHS)


@pytest.mark.parametrize("name", CORE)
def test_appending_garbage_padding_changes_nothing(name):
    cell, params = setup(name)
    short = with_garbage(inputs(), LENGTHS, seed=11)
    # Four more steps, and the old padding replaced by different garbage of a different scale.
    longer = with_garbage(np.concatenate([inputs(), inputs(seed=5, t=4)], axis=1), LENGTHS,
                          seed=12, scale=1e3)
    carry_s, ys_s = run(cell, params, short, LENGTHS)
    carry_l, ys_l = run(cell, params, longer, LENGTHS)
    chex.assert_trees_all_close(ys_l[:, :T], ys_s, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(carry_l, carry_s, atol=1e-6, rtol=1e-6)
    assert_padding_zero(ys_l, LENGTHS)
    chex.assert_tree_all_finite((ys_l, carry_l))


def test_carry_is_the_one_after_the_last_valid_step():
    """The returned carry equals the carry of the same sequence run unpadded by the engine."""
    cell, params = setup("lstm")
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)
    carry, _ = run(cell, params, xs, LENGTHS, init)
    for i, n in enumerate(LENGTHS):
        init_i = jax.tree.map(lambda c: c[i : i + 1], init)
        alone, _ = run(cell, params, xs[i : i + 1, :n], None, init_i)
        chex.assert_trees_all_close(
            jax.tree.map(lambda c: c[i], carry), jax.tree.map(lambda c: c[0], alone), **TOL
        )


@pytest.mark.parametrize(
    "name, parallel", [(n, False) for n in CORE] + [(n, True) for n in LINEAR]
)
def test_length_zero_returns_initial_carry_and_zero_outputs(name, parallel):
    cell, params = setup(name)
    init = random_carry(cell, params)
    xs = with_garbage(inputs(), np.zeros(B, np.int32))
    carry, ys = run(cell, params, xs, np.zeros(B, np.int32), init, parallel=parallel)
    chex.assert_trees_all_equal(carry, init)
    chex.assert_trees_all_equal(ys, np.zeros((B, T, 5), np.float32))


@pytest.mark.parametrize("name", ["lstm", "min_gru"])
def test_no_seq_lengths_equals_all_full_length(name):
    cell, params = setup(name)
    xs = inputs()
    full = jnp.full((B,), T, jnp.int32)
    out_none = jrnn(cell, params, xs, return_carry=True)
    out_full = run(cell, params, xs, full)
    chex.assert_trees_all_close(out_none, out_full, **TOL)
    chex.assert_trees_all_close(out_none, reference(cell, params, xs), **TOL)


@pytest.mark.parametrize("name", ["lstm", "min_gru"])
def test_empty_time_axis_sequential(name):
    cell, params = setup(name)
    init = random_carry(cell, params)
    carry, ys = rnn(cell, params, jnp.zeros((B, 0, D)), initial_carry=init, return_carry=True)
    chex.assert_shape(ys, (B, 0, 5))
    chex.assert_trees_all_equal(carry, init)


@pytest.mark.parametrize("name", LINEAR)
def test_empty_time_axis_parallel(name):
    """BUG (seqjax/recurrence/scan.py, _associative): ``hs[-1]`` on a zero-length time axis
    raises IndexError instead of returning the initial carry as the sequential path does."""
    cell, params = setup(name)
    init = random_carry(cell, params)
    carry, ys = rnn(cell, params, jnp.zeros((B, 0, D)), initial_carry=init, return_carry=True,
                    parallel=True)
    chex.assert_shape(ys, (B, 0, 5))
    chex.assert_trees_all_equal(carry, init)


@settings(max_examples=20, deadline=None, database=None)
@given(
    name=st.sampled_from(CORE),
    lengths=st.lists(st.integers(0, T), min_size=B, max_size=B),
    garbage_seed=st.integers(0, 2**16),
    reverse=st.booleans(),
)
def test_property_padding_invariance(name, lengths, garbage_seed, reverse):
    cell, params = setup(name)
    lengths = np.asarray(lengths, np.int32)
    xs = with_garbage(inputs(), lengths, seed=garbage_seed)
    carry, ys = run(cell, params, xs, lengths, reverse=reverse, keep_order=True)
    ref_carry, ref_ys = reference(cell, params, xs, lengths, reverse=reverse, keep_order=True)
    chex.assert_trees_all_close((carry, ys), (ref_carry, ref_ys), **TOL)
    assert_padding_zero(ys, lengths)
