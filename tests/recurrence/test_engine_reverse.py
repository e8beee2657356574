"""``reverse`` / ``keep_order`` with padding, and :func:`bidirectional`."""

import chex
import numpy as np
import pytest

from recurrence_refs import (
    B, CORE, LENGTHS, T, assert_padding_zero, inputs, jbidirectional, random_carry, reference,
    run, setup, with_garbage,
)
from seqjax.recurrence import bidirectional

TOL = dict(atol=1e-5, rtol=1e-5)


def hidden_of(carry):
    """The hidden state ``h`` of a carry (the LSTM carry is ``(h, c)``)."""
    return carry.h if hasattr(carry, "h") else carry


@pytest.mark.parametrize(
    "name, keep_order", [(n, True) for n in CORE] + [("gru", False), ("min_gru", False)]
)
def test_reverse_equals_each_valid_prefix_reversed(name, keep_order):
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    carry, ys = run(cell, params, xs, LENGTHS, reverse=True, keep_order=keep_order)
    ref = reference(cell, params, xs, LENGTHS, reverse=True, keep_order=keep_order)
    chex.assert_trees_all_close((carry, ys), ref, **TOL)
    assert_padding_zero(ys, LENGTHS)
    # The returned carry is the state after reading x_0, the last step processed.
    last = ys[:, 0] if keep_order else ys[np.arange(B), np.maximum(LENGTHS - 1, 0)]
    for i, n in enumerate(LENGTHS):
        if n:
            chex.assert_trees_all_close(hidden_of(carry)[i], last[i], **TOL)


@pytest.mark.parametrize("name", ["gru", "min_gru"])
def test_keep_order_is_the_processing_order_flipped_within_each_prefix(name):
    """Documented semantics (scan.py): ``keep_order=False`` returns outputs in processing order
    (``ys[0]`` after reading ``x_{L-1}``); ``keep_order=True`` puts output ``t`` at the position
    of ``x_t``. Either way padding stays where it is."""
    cell, params = setup(name)
    xs = with_garbage(inputs(), LENGTHS)
    _, processing = run(cell, params, xs, LENGTHS, reverse=True, keep_order=False)
    _, in_order = run(cell, params, xs, LENGTHS, reverse=True, keep_order=True)
    for i, n in enumerate(LENGTHS):
        chex.assert_trees_all_equal(in_order[i, :n], processing[i, :n][::-1])
    # Output at position L-1 (keep_order) is the state after one step from the initial carry.
    one_step = run(cell, params, xs[np.arange(B), np.maximum(LENGTHS - 1, 0)][:, None],
                   np.minimum(LENGTHS, 1))[1][:, 0]
    for i, n in enumerate(LENGTHS):
        if n:
            chex.assert_trees_all_close(in_order[i, n - 1], one_step[i], **TOL)
            chex.assert_trees_all_close(processing[i, 0], one_step[i], **TOL)


def test_reverse_without_seq_lengths_equals_flipped_input():
    cell, params = setup("gru")
    xs = inputs()
    carry, ys = run(cell, params, xs, reverse=True, keep_order=False)
    ref_carry, ref_ys = run(cell, params, xs[:, ::-1])
    chex.assert_trees_all_close((carry, ys), (ref_carry, ref_ys), **TOL)


def test_reverse_ignores_garbage_padding():
    cell, params = setup("lstm")
    a = run(cell, params, with_garbage(inputs(), LENGTHS, seed=1), LENGTHS, reverse=True,
            keep_order=True)
    b = run(cell, params, with_garbage(inputs(), LENGTHS, seed=2, scale=1e3), LENGTHS,
            reverse=True, keep_order=True)
    chex.assert_trees_all_close(a, b, atol=1e-6, rtol=1e-6)


def bi_params(name):
    cell, forward = setup(name)
    _, backward = setup(name, seed=1)
    return cell, {"forward": forward, "backward": backward}


@pytest.mark.parametrize("name, merge", [(n, "concat") for n in CORE] + [("gru", "sum")])
def test_bidirectional_equals_forward_and_backward_per_sequence(name, merge):
    cell, params = bi_params(name)
    xs = with_garbage(inputs(), LENGTHS)
    (carry_f, carry_b), ys = jbidirectional(
        cell, params, xs, seq_lengths=LENGTHS, return_carry=True, merge=merge
    )
    ref_cf, ref_yf = reference(cell, params["forward"], xs, LENGTHS)
    ref_cb, ref_yb = reference(cell, params["backward"], xs, LENGTHS, reverse=True,
                               keep_order=True)
    expected = np.concatenate([ref_yf, ref_yb], -1) if merge == "concat" else ref_yf + ref_yb
    chex.assert_shape(ys, (B, T, 10 if merge == "concat" else 5))
    chex.assert_trees_all_close(ys, expected, **TOL)
    chex.assert_trees_all_close((carry_f, carry_b), (ref_cf, ref_cb), **TOL)
    assert_padding_zero(ys, LENGTHS)
    # The backward carry is the state after reading x_0: the backward output at t = 0.
    for i, n in enumerate(LENGTHS):
        if n:
            chex.assert_trees_all_close(hidden_of(carry_b)[i], ref_yb[i, 0], **TOL)


def test_bidirectional_initial_carry_pair():
    cell, params = bi_params("lstm")
    xs = with_garbage(inputs(), LENGTHS)
    init_f = random_carry(cell, params["forward"], seed=4)
    init_b = random_carry(cell, params["backward"], seed=5)
    (carry_f, carry_b), ys = jbidirectional(
        cell, params, xs, seq_lengths=LENGTHS, initial_carry=(init_f, init_b), return_carry=True
    )
    ref_cf, ref_yf = reference(cell, params["forward"], xs, LENGTHS, initial_carry=init_f)
    ref_cb, ref_yb = reference(cell, params["backward"], xs, LENGTHS, initial_carry=init_b,
                               reverse=True, keep_order=True)
    chex.assert_trees_all_close(ys, np.concatenate([ref_yf, ref_yb], -1), **TOL)
    chex.assert_trees_all_close((carry_f, carry_b), (ref_cf, ref_cb), **TOL)


def test_bidirectional_rejects_unidirectional_params():
    cell, params = setup("gru")
    with pytest.raises(ValueError, match=r"bidirectional.*'forward'.*'backward'"):
        bidirectional(cell, params, inputs())
