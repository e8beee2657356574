"""The fused LSTM path (seqjax/recurrence/fused_lstm.py) against the generic scan.

``rnn`` takes the fused path by default for the plain LSTM cell; ``fused=False`` forces the
generic per-example scan of ``lstm_step``. The two must agree in values and in derivatives of
every order and mode, with padding, reversal, ``keep_order`` and an initial carry.
"""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax.cells import LSTMState, lstm
from seqjax.recurrence import rnn
from seqjax.recurrence.fused_lstm import fused_lstm

B, T, D, H = 3, 6, 4, 5
TOL = dict(atol=2e-5, rtol=2e-5)
LENGTHS = np.array([6, 2, 0], np.int32)  # full, partial and empty sequences

OPTIONS = [
    dict(reverse=reverse, keep_order=keep_order, seq_lengths=lengths)
    for reverse, keep_order, lengths in itertools.product([False, True], [False, True], [None, LENGTHS])
    if keep_order <= reverse
]


def _ids(opts):
    return "-".join(f"{k}={'L' if k == 'seq_lengths' and v is not None else v}" for k, v in opts.items())


def setup(dtype=jnp.float32):
    cell = lstm()
    params = cell.init(jax.random.key(0), D, H)
    params = {k: v + 0.1 * jax.random.normal(jax.random.key(9), v.shape) for k, v in params.items()}
    xs = jax.random.normal(jax.random.key(1), (B, T, D), dtype)
    carry = LSTMState(
        0.5 * jax.random.normal(jax.random.key(2), (B, H), dtype),
        0.5 * jax.random.normal(jax.random.key(3), (B, H), dtype),
    )
    return cell, params, xs, carry


def loss_fn(cell, opts, fused):
    """A scalar touching every output: outputs and both parts of the final carry."""

    def loss(params, xs, carry):
        (h, c), ys = rnn(cell, params, xs, initial_carry=carry, return_carry=True, fused=fused, **opts)
        w = jnp.arange(1, ys.size + 1, dtype=ys.dtype).reshape(ys.shape) / ys.size
        return jnp.sum(w * jnp.sin(ys)) + jnp.sum(h * h) + jnp.sum(jnp.tanh(c))

    return loss


def uses_fused(cell, params, xs, **kwargs) -> bool:
    jaxpr = jax.make_jaxpr(lambda p, x: rnn(cell, p, x, **kwargs))(params, xs)
    return "custom_jvp_call" in str(jaxpr)


@pytest.mark.parametrize("opts", OPTIONS, ids=_ids)
@pytest.mark.parametrize("with_carry", [False, True])
def test_values_and_gradients_match_generic_scan(opts, with_carry):
    cell, params, xs, carry = setup()
    carry = carry if with_carry else None
    argnums = (0, 1, 2) if with_carry else (0, 1)

    @jax.jit  # one compiled program for both paths (eager dispatch of the scans costs more)
    def values_and_grads(params, xs, carry):
        return {
            fused: (
                rnn(cell, params, xs, initial_carry=carry, return_carry=True, fused=fused, **opts),
                jax.grad(loss_fn(cell, opts, fused), argnums)(params, xs, carry),
            )
            for fused in (True, False)
        }

    out = values_and_grads(params, xs, carry)
    assert uses_fused(cell, params, xs, initial_carry=carry, **opts)
    chex.assert_trees_all_close(out[True][0], out[False][0], **TOL)
    chex.assert_trees_all_close(out[True][1], out[False][1], **TOL)


# Reversal and keep_order only flip the inputs and outputs around the fused kernel (every
# combination is checked to first order above); the second-order rules see a mask or none.
@pytest.mark.parametrize("opts", OPTIONS[:2] + [pytest.param(OPTIONS[-1], marks=pytest.mark.slow)], ids=_ids)
def test_forward_mode_and_second_order_match_generic_scan(opts):
    cell, params, xs, carry = setup()
    tangents = jax.tree.map(lambda a: jax.random.normal(jax.random.key(5), a.shape, a.dtype), (params, xs, carry))

    @jax.jit  # one compiled program instead of an op-by-op dispatch of every derivative's scans
    def derivatives(params, xs, carry, tangents):
        results = {}
        for fused in (True, False):
            loss = loss_fn(cell, opts, fused)
            primal_out, tangent_out = jax.jvp(loss, (params, xs, carry), tangents)
            # Hessian-vector product: forward over reverse.
            hvp = jax.jvp(jax.grad(loss, (0, 1, 2)), (params, xs, carry), tangents)[1]
            # Reverse over reverse.
            grad_norm = lambda p, x, c: sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss, (0, 1, 2))(p, x, c)))
            rr = jax.grad(grad_norm, (0, 1, 2))(params, xs, carry)
            results[fused] = (primal_out, tangent_out, hvp, rr)
        return results

    results = derivatives(params, xs, carry, tangents)
    chex.assert_trees_all_close(results[True], results[False], atol=1e-4, rtol=1e-4)


def test_jacfwd_equals_jacrev_on_the_outputs():
    cell, params, xs, _ = setup()
    f = lambda x: rnn(cell, params, x, seq_lengths=LENGTHS)
    chex.assert_trees_all_close(jax.jacfwd(f)(xs), jax.jacrev(f)(xs), **TOL)


@pytest.mark.slow  # float64 numerical gradients of the whole scan: ~25 s; the default suite checks the rule against autodiff
def test_check_grads_float64():
    """Finite differences in float64 on the fused function itself (both modes, order 2)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        t, b, d, h = 4, 2, 3, 2
        args = [rng.normal(size=s) * 0.5 for s in [(d, 4 * h), (h, 4 * h), (4 * h,), (t, b, d), (b, h), (b, h)]]
        valid = jnp.asarray(np.arange(t)[:, None] < np.array([4, 2])[None, :])
        for mask in (None, valid):
            check_grads(lambda *a: fused_lstm(*a, mask), args, order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_only_the_plain_lstm_is_fused():
    cell, params, xs, _ = setup()
    assert uses_fused(cell, params, xs)
    assert not uses_fused(cell, params, xs, fused=False)
    for variant in (lstm(peephole=True), lstm(layer_norm=True)):
        p = variant.init(jax.random.key(0), D, H)
        assert not uses_fused(variant, p, xs)
    # Recurrent dropout adds a mask to the parameters: the generic path handles it.
    assert not uses_fused(cell, params, xs, recurrent_dropout_rate=0.5, dropout_key=jax.random.key(0))
    # A rate of zero (or no key) means no dropout: still the plain LSTM.
    assert uses_fused(cell, params, xs, recurrent_dropout_rate=0.0, dropout_key=jax.random.key(0))


def test_bfloat16_matches_generic_scan():
    cell, params, xs, _ = setup(jnp.bfloat16)
    out = rnn(cell, params, xs, seq_lengths=LENGTHS)
    ref = rnn(cell, params, xs, seq_lengths=LENGTHS, fused=False)
    assert out.dtype == ref.dtype == jnp.bfloat16
    chex.assert_trees_all_close(out.astype(jnp.float32), ref.astype(jnp.float32), atol=2e-2, rtol=2e-2)
    g = lambda fused: jax.grad(lambda p: jnp.sum(rnn(cell, p, xs, dtype=jnp.bfloat16, fused=fused).astype(jnp.float32) ** 2))(params)
    chex.assert_trees_all_close(g(True), g(False), atol=5e-2, rtol=5e-2)


def test_under_jit_and_vmap_over_parameter_sets():
    cell, params, xs, _ = setup()
    stacked = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a]), params)
    f = lambda fused: jax.jit(jax.vmap(jax.grad(lambda p: jnp.sum(rnn(cell, p, xs, seq_lengths=LENGTHS, fused=fused) ** 2))))(stacked)
    chex.assert_trees_all_close(f(True), f(False), **TOL)


def test_empty_time_axis():
    cell, params, _, carry = setup()
    xs = jnp.zeros((B, 0, D))
    out_carry, ys = rnn(cell, params, xs, initial_carry=carry, return_carry=True)
    chex.assert_shape(ys, (B, 0, H))
    chex.assert_trees_all_equal(out_carry, carry)
    grads = jax.grad(lambda p, c: jnp.sum(rnn(cell, p, xs, initial_carry=c, return_carry=True)[0].h), (0, 1))(params, carry)
    chex.assert_trees_all_equal(grads[0], jax.tree.map(jnp.zeros_like, params))
