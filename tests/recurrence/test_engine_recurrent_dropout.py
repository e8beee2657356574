"""Recurrent (variational) dropout: ``rnn(..., recurrent_dropout_rate=p, dropout_key=k)``."""

import chex
import jax
import numpy as np
import pytest

from recurrence_refs import (
    B, LENGTHS, RECURRENT, T, assert_padding_zero, inputs, jstacked, random_carry, reference,
    run, setup, with_garbage,
)
from seqjax.recurrence import rnn, stacked_init

TOL = dict(atol=1e-5, rtol=1e-5)
P = 0.5
H = 5


def diagonal_elman():
    """An Elman cell whose recurrent matrix only connects unit j to itself, so whether unit j's
    recurrent input was dropped at a step is visible in unit j's own output."""
    cell, params = setup("elman")
    return cell, params | {"w_h": 0.9 * np.eye(H, dtype=np.float32)}


def infer_mask(ys, xs, params, lengths):
    """For each (sequence, unit), decide from the outputs alone whether its recurrent input was
    kept (scaled by 1/(1-P)) or dropped at *every* valid step; fail if neither explains it."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    drive = xs @ np.asarray(params["w_i"], np.float64) + np.asarray(params["b"], np.float64)
    mask = np.zeros((ys.shape[0], H), bool)
    for i, n in enumerate(lengths):
        memoryless = np.tanh(drive[i, :n])
        kept, h = [], np.zeros(H)
        for t in range(n):
            h = np.tanh(drive[i, t] + 0.9 * h / (1 - P))
            kept.append(h)
        kept = np.array(kept).reshape(n, H)
        for j in range(H):
            is_kept = np.allclose(ys[i, :n, j], kept[:, j], atol=1e-5)
            is_dropped = np.allclose(ys[i, :n, j], memoryless[:, j], atol=1e-5)
            assert is_kept != is_dropped, (i, j)  # one fixed choice for all steps
            mask[i, j] = is_kept
    return mask


def regenerate_masks(key):
    """The engine's masks, drawn as it draws them: ``bernoulli(key, 1 - p, [b, h]) / (1 - p)``."""
    return np.asarray(jax.random.bernoulli(key, 1 - P, (B, H))).astype(np.float32) / (1 - P)


def test_one_mask_per_sequence_same_at_every_step_and_different_across_batch():
    cell, params = diagonal_elman()
    lengths = np.array([T, T, T, 6], np.int32)
    xs = with_garbage(inputs(), lengths)
    key = jax.random.key(3)
    _, ys = run(cell, params, xs, lengths, recurrent_dropout_rate=P, dropout_key=key)
    mask = infer_mask(ys, xs, params, lengths)
    assert 0.2 < mask.mean() < 0.8, mask.mean()
    assert len({row.tobytes() for row in mask}) > 1, "every sequence got the same mask"
    assert_padding_zero(ys, lengths)
    # The mask inferred from behaviour is the one the manual-loop test below regenerates.
    np.testing.assert_array_equal(mask, regenerate_masks(key) > 0)


@pytest.mark.parametrize(
    "name, reverse", [(n, False) for n in RECURRENT] + [("lstm", True), ("gru", True)]
)
def test_matches_manual_loop_with_one_fixed_mask(name, reverse):
    """The engine's masks, regenerated (:func:`regenerate_masks`), are fed to the cell through its
    documented ``recurrent_dropout_mask`` parameter in a plain per-sequence loop, with padding,
    reverse and an initial carry. The structural test above checks the mask semantics without
    relying on how the masks are drawn."""
    cell, params = setup(name)
    key = jax.random.key(5)
    xs = with_garbage(inputs(), LENGTHS)
    init = random_carry(cell, params)
    out = run(cell, params, xs, LENGTHS, init, reverse=reverse, keep_order=reverse,
              recurrent_dropout_rate=P, dropout_key=key)
    ref = reference(cell, params, xs, LENGTHS, initial_carry=init, reverse=reverse,
                    keep_order=True, masks=regenerate_masks(key))
    chex.assert_trees_all_close(out, ref, **TOL)
    assert_padding_zero(out[1], LENGTHS)
    no_dropout = reference(cell, params, xs, LENGTHS, initial_carry=init, reverse=reverse,
                           keep_order=True)
    assert not np.allclose(out[1], no_dropout[1], atol=1e-4)


def test_no_key_or_zero_rate_means_no_dropout():
    cell, params = setup("lstm")
    xs = with_garbage(inputs(), LENGTHS)
    plain = run(cell, params, xs, LENGTHS)
    chex.assert_trees_all_equal(run(cell, params, xs, LENGTHS, recurrent_dropout_rate=P), plain)
    chex.assert_trees_all_close(
        run(cell, params, xs, LENGTHS, recurrent_dropout_rate=0.0, dropout_key=jax.random.key(0)),
        plain, **TOL,
    )
    a = run(cell, params, xs, LENGTHS, recurrent_dropout_rate=P, dropout_key=jax.random.key(1))
    b = run(cell, params, xs, LENGTHS, recurrent_dropout_rate=P, dropout_key=jax.random.key(1))
    c = run(cell, params, xs, LENGTHS, recurrent_dropout_rate=P, dropout_key=jax.random.key(2))
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a[1], c[1])


def test_stacked_passes_recurrent_dropout_to_each_layer():
    cell, _ = setup("gru")
    layers = stacked_init(cell, jax.random.key(0), 3, H, 2)
    xs = inputs()
    plain = jstacked(cell, layers, xs, seq_lengths=LENGTHS)
    key = jax.random.key(0)
    a = jstacked(cell, layers, xs, seq_lengths=LENGTHS, recurrent_dropout_rate=P, dropout_key=key)
    b = jstacked(cell, layers, xs, seq_lengths=LENGTHS, recurrent_dropout_rate=P, dropout_key=key)
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a, plain)
    assert_padding_zero(a, LENGTHS)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_cells_without_recurrent_matrix_raise(name):
    cell, params = setup(name)
    with pytest.raises(ValueError, match=r"recurrent_dropout_rate needs a cell with a recurrent weight"):
        rnn(cell, params, inputs(), recurrent_dropout_rate=P, dropout_key=jax.random.key(0))


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1])
def test_rate_out_of_range_raises(rate):
    cell, params = setup("lstm")
    with pytest.raises(ValueError, match=r"recurrent_dropout_rate must lie in \[0, 1\)"):
        rnn(cell, params, inputs(), recurrent_dropout_rate=rate, dropout_key=jax.random.key(0))


def test_rate_out_of_range_raises_without_key_too():
    """BUG (minor, seqjax/recurrence/scan.py, rnn): ``recurrent_dropout_rate`` is validated only inside
    ``_recurrent_mask``, i.e. only when a ``dropout_key`` is given, so ``recurrent_dropout_rate=1.5``
    passes silently at evaluation time (``stacked`` checks its ``dropout`` unconditionally).
    Fix: call ``_checks.probability("recurrent_dropout_rate", recurrent_dropout_rate)`` at the top of
    ``rnn``."""
    cell, params = setup("lstm")
    with pytest.raises(ValueError, match=r"recurrent_dropout_rate must lie in \[0, 1\)"):
        rnn(cell, params, inputs(), recurrent_dropout_rate=1.5)
