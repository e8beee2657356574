""":func:`truncated_bptt`: forward equals :func:`rnn`; gradients stop at chunk boundaries."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrence_refs import (
    B, CORE, assert_padding_zero, inputs, jtbptt, random_carry, run, setup, with_garbage,
    zero_carry,
)
from seqjax.recurrence import rnn, truncated_bptt

TOL = dict(atol=1e-5, rtol=1e-5)
T10 = 10
LENGTHS10 = np.array([10, 7, 2, 0], np.int32)


def xs10(seed=1):
    return with_garbage(inputs(seed=seed, t=T10), LENGTHS10)


@pytest.mark.parametrize("name, k", [(n, 3) for n in CORE] + [("gru", k) for k in (1, 10)])
def test_forward_equals_rnn(name, k):
    cell, params = setup(name)
    xs = xs10()
    init = random_carry(cell, params)
    carry, ys = jtbptt(cell, params, xs, k, seq_lengths=LENGTHS10, initial_carry=init,
                       return_carry=True)
    ref_carry, ref_ys = run(cell, params, xs, LENGTHS10, init)
    chex.assert_shape(ys, (B, T10, 5))
    chex.assert_trees_all_close((carry, ys), (ref_carry, ref_ys), **TOL)
    assert_padding_zero(ys, LENGTHS10)


def test_forward_without_seq_lengths_t_not_divisible():
    cell, params = setup("lstm")
    xs = inputs(t=T10)
    carry, ys = jtbptt(cell, params, xs, 4, return_carry=True)
    chex.assert_trees_all_close((carry, ys), run(cell, params, xs), **TOL)


def loss_all(ys, carry):
    leaves = jax.tree.leaves(carry)
    weights = jnp.linspace(0.5, 1.5, ys.shape[-1])
    return jnp.sum(jnp.sin(ys) * weights) + sum(jnp.sum(c ** 2) for c in leaves)


# The gradient tests below pass an explicit (zero) initial carry: without one, truncated_bptt
# builds it with a zero-length rnn call, which currently breaks differentiation of the fused
# LSTM path; that is tested on its own (test_gradient_with_default_initial_carry).


@pytest.mark.parametrize("name, k", [("lstm", T10 + 3), ("min_gru", T10)])
def test_param_gradients_equal_full_bptt_when_chunk_covers_sequence(name, k):
    cell, params = setup(name)
    xs = xs10()
    init = random_carry(cell, params)

    @jax.jit
    def grads(p):
        full = jax.grad(lambda p: loss_all(*run(cell, p, xs, LENGTHS10, init)[::-1]))(p)
        tbptt = jax.grad(lambda p: loss_all(*truncated_bptt(
            cell, p, xs, k, seq_lengths=LENGTHS10, initial_carry=init, return_carry=True)[::-1]))(p)
        return tbptt, full

    g, full = grads(params)
    chex.assert_trees_all_close(g, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["lstm", "elman"])
def test_gradient_with_default_initial_carry(name):
    """BUG (lstm only; seqjax/recurrence/fused_lstm.py ``_fused_lstm_jvp``, reached through
    truncated.py's zero-length ``rnn`` call that builds the default carry): differentiating
    ``truncated_bptt`` with ``initial_carry=None`` for the plain LSTM raises ZeroDivisionError
    (``u.reshape(time, batch, -1)`` with ``time * batch * ... == 0``). Fix: build the zero carry
    from ``cell.zero_carry`` in truncated_bptt, and make the fused JVP handle ``t == 0`` (e.g.
    return zero tangents / fall back to the generic scan when ``time == 0``)."""
    cell, params = setup(name)
    xs = xs10()
    init = zero_carry(cell, params)
    loss = lambda p, c: jnp.sum(jnp.sin(truncated_bptt(cell, p, xs, 4, seq_lengths=LENGTHS10,
                                                       initial_carry=c)))
    grads = jax.jit(lambda p: (jax.grad(loss)(p, None), jax.grad(loss)(p, init)))
    g_default, g_explicit = grads(params)
    chex.assert_trees_all_close(g_default, g_explicit, **TOL)


@pytest.mark.parametrize("name", ["lstm"])
def test_param_gradients_are_the_sum_of_per_chunk_gradients(name):
    """Explicit gradient structure for k < T: TBPTT's gradient equals the gradient of a sum of
    per-chunk losses in which each chunk starts from a *constant* carry (the forward value)."""
    cell, params = setup(name)
    k = 4
    xs = inputs(t=T10)  # no padding: the carry reaching each chunk is an ordinary state

    def chunked(p):
        carry, total = zero_carry(cell, p), 0.0
        for start in range(0, T10, k):
            carry, ys = run(cell, p, xs[:, start:start + k], None, jax.lax.stop_gradient(carry))
            total = total + jnp.sum(jnp.sin(ys))
        return total

    @jax.jit
    def grads(p):
        tbptt = jax.grad(lambda p: jnp.sum(jnp.sin(
            truncated_bptt(cell, p, xs, k, initial_carry=zero_carry(cell, p)))))(p)
        full = jax.grad(lambda p: jnp.sum(jnp.sin(run(cell, p, xs)[1])))(p)
        return tbptt, jax.grad(chunked)(p), full

    g, g_ref, g_full = grads(params)
    chex.assert_trees_all_close(g, g_ref, atol=1e-5, rtol=1e-4)
    assert not np.allclose(g["w_h"], g_full["w_h"], atol=1e-6)  # truncation does change it


def dependency(jacobian):
    """``|d out[b, t, :] / d in[b, s, ...]|`` summed: ``[b, t, s]`` (same-sequence blocks)."""
    j = np.abs(np.asarray(jacobian)).sum((2, 5))  # [b, t, b', s]
    assert np.all(j.transpose(0, 2, 1, 3)[~np.eye(B, dtype=bool)] == 0.0)  # sequences never mix
    return np.stack([j[i, :, i] for i in range(B)])


@pytest.mark.parametrize("name", CORE)
def test_input_gradients_stop_at_chunk_boundaries(name):
    cell, params = setup(name)
    k = 4  # chunks: steps 0-3 | 4-7 | 8-9
    xs = inputs(t=T10)

    init = zero_carry(cell, params)
    jacobian = jax.jit(jax.jacrev(lambda x: truncated_bptt(cell, params, x, k, initial_carry=init)))
    dep = dependency(jacobian(xs))  # [b, t (output), s (input)]
    chunk = np.arange(T10) // k
    same_chunk = chunk[:, None] == chunk[None, :]
    causal = np.arange(T10)[None, :] <= np.arange(T10)[:, None]
    assert np.all(dep[:, ~(same_chunk & causal)] == 0.0)  # exactly zero across boundaries
    assert np.all(dep[:, same_chunk & causal] > 0.0)  # nonzero within a chunk
    if name == "lstm":  # full BPTT, for contrast, reaches every earlier step
        dep_full = dependency(jax.jit(jax.jacrev(lambda x: run(cell, params, x)[1]))(xs))
        assert np.all(dep_full[:, causal] > 0.0)
        assert np.all(dep_full[:, ~causal] == 0.0)


@pytest.mark.parametrize("name", ["lstm"])
def test_initial_carry_gradient_only_through_chunk_zero(name):
    cell, params = setup(name)
    k = 4
    xs = inputs(t=T10)
    init = random_carry(cell, params)

    @jax.jit
    def jacobians(c):
        tbptt = jax.jacrev(lambda c: truncated_bptt(cell, params, xs, k, initial_carry=c))(c)
        full = jax.jacrev(lambda c: run(cell, params, xs, None, c)[1])(c)
        return tbptt, full

    jac, jac_full = jacobians(init)
    for leaf, leaf_full in zip(jax.tree.leaves(jac), jax.tree.leaves(jac_full)):
        per_step = np.abs(np.asarray(leaf)).sum((0, 2, 3, 4))  # [t]
        assert np.all(per_step[:k] > 0.0), per_step  # chunk 0
        assert np.all(per_step[k:] == 0.0), per_step  # later chunks: exactly zero
        np.testing.assert_allclose(np.asarray(leaf)[:, :k], np.asarray(leaf_full)[:, :k],
                                   atol=1e-5, rtol=1e-4)


def test_final_carry_gradient_of_short_sequence():
    """BUG (seqjax/recurrence/truncated.py, ``chunk``): the carry is stop-gradient'ed at every
    chunk boundary even for sequences whose last valid step lies in an earlier chunk. Their
    returned carry is the state after step L-1 (computed in L-1's chunk), but it comes back
    through later zero-length chunks as a stopped value, so a loss on the final carry (e.g.
    classification from the last state) sends *no* gradient at all to that sequence: here
    L = 2, k = 4, T = 10 and d carry / d x_1 == 0, whereas the docstring promises gradient to
    the steps of the loss's own chunk (and full BPTT gives nonzero). Fix: after each chunk keep
    the un-stopped incoming carry for sequences with chunk length 0, e.g.
    ``carry = where(lengths > 0, new_carry, incoming_carry)`` with ``incoming_carry`` taken
    before the stop_gradient."""
    cell, params = setup("elman")
    xs = xs10()

    def loss(x, k):
        carry, _ = truncated_bptt(cell, params, x, k, seq_lengths=LENGTHS10, return_carry=True)
        return jnp.sum(carry[2] ** 2)  # sequence 2 has length 2

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g_full = np.abs(np.asarray(grad(xs, T10))[2]).sum(-1)
    assert np.all(g_full[:2] > 0)  # k >= T: fine
    g = np.abs(np.asarray(grad(xs, 4))[2]).sum(-1)
    assert np.all(g[:2] > 0), f"d carry / d x for the short sequence is {g[:2]} (expected nonzero)"


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_parallel_without_initial_carry(name):
    """BUG (seqjax/recurrence/truncated.py, the ``initial_carry is None`` branch, with
    scan.py ``_associative``): the zero carry is built by running ``rnn`` on a zero-length time
    axis; with ``parallel=True`` that reaches ``hs[-1]`` on an empty array and raises
    IndexError. Fix: build it from ``cell.zero_carry`` (broadcast to the batch, in the
    computation dtype), and/or make ``_associative`` return ``h0`` when ``T == 0``."""
    cell, params = setup(name)
    xs = xs10()
    ys = truncated_bptt(cell, params, xs, 3, seq_lengths=LENGTHS10, parallel=True)
    chex.assert_trees_all_close(ys, run(cell, params, xs, LENGTHS10)[1], **TOL)


def test_bfloat16_with_float32_initial_carry():
    """BUG (seqjax/recurrence/truncated.py): with ``dtype=jnp.bfloat16`` and a float32
    ``initial_carry`` (which ``rnn`` accepts and casts), the outer ``lax.scan`` gets a float32
    carry in and a bfloat16 carry out and raises TypeError. Fix: cast ``initial_carry`` to the
    computation dtype before the scan, as ``rnn`` does."""
    cell, params = setup("lstm")
    xs = xs10()
    init = random_carry(cell, params)
    ys = truncated_bptt(cell, params, xs, 4, seq_lengths=LENGTHS10, initial_carry=init,
                        dtype=jnp.bfloat16)
    ref = rnn(cell, params, xs, seq_lengths=LENGTHS10, initial_carry=init, dtype=jnp.bfloat16)
    chex.assert_trees_all_close(ys.astype(jnp.float32), ref.astype(jnp.float32), atol=2e-2)


def test_reverse_is_rejected():
    cell, params = setup("gru")
    with pytest.raises(ValueError, match=r"truncated_bptt runs forwards.*reverse=True"):
        truncated_bptt(cell, params, xs10(), 4, reverse=True)


def test_recurrent_dropout_mask_is_the_same_across_chunks():
    """One mask per sequence for the whole sequence, not one per chunk: equals ``rnn``."""
    cell, params = setup("gru")
    xs = xs10()
    key = jax.random.key(7)
    init = random_carry(cell, params)
    kw = dict(seq_lengths=LENGTHS10, initial_carry=init, return_carry=True, recurrent_dropout_rate=0.5,
              dropout_key=key)
    chex.assert_trees_all_close(jtbptt(cell, params, xs, 3, **kw),
                                run(cell, params, xs, LENGTHS10, init, recurrent_dropout_rate=0.5,
                                    dropout_key=key), **TOL)
