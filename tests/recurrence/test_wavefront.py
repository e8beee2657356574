""":mod:`seqjax.recurrence.wavefront`: the one-loop bidirectional layer and the wavefront stack give
the layered path's outputs, carries and gradients, with ragged lengths, initial carries, dropout
and residual connections; the schedule option's errors."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrence_refs import B, D, LENGTHS, T, assert_padding_zero, inputs, random_carry, setup, with_garbage
from seqjax.recurrence import bidirectional, stacked, stacked_init
from seqjax.recurrence.scan import reverse_prefixes
from seqjax.recurrence.wavefront import bidirectional_one_loop, wavefront_stack

H = 5
TOL = dict(atol=2e-5, rtol=2e-5)
STATIC = ("schedule", "return_carry", "dropout_rate", "recurrent_dropout_rate", "residual", "merge",
          "fused")


@functools.partial(jax.jit, static_argnums=0, static_argnames=STATIC)
def value_and_grads(cell, layers, xs, init, lengths, key=None, **options):
    """Outputs, carries and the gradients of a scalar of both, w.r.t. params, xs and the carries."""

    def loss(layers, xs, init):
        carries, ys = stacked(cell, layers, xs, seq_lengths=lengths, initial_carry=init,
                              return_carry=True, dropout_key=key, **options)
        scalar = jnp.sum(jnp.sin(3.0 * ys)) + sum(jnp.sum(jnp.cos(c)) for c in jax.tree.leaves(carries))
        return scalar, (carries, ys)

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(layers, xs, init)
    return out, grads


def make(name, num_layers, *, bidirectional_layers=False, merge="concat", d=D, seed=42):
    cell, _ = setup(name)
    layers = jax.jit(stacked_init, static_argnums=(0, 2, 3, 4),
                     static_argnames=("bidirectional", "merge"))(
        cell, jax.random.key(seed), d, H, num_layers, bidirectional=bidirectional_layers, merge=merge)
    inits = []
    for i, p in enumerate(layers):
        if bidirectional_layers:
            inits.append((random_carry(cell, p["forward"], seed=10 + i), random_carry(cell, p["backward"], seed=20 + i)))
        else:
            inits.append(random_carry(cell, p, seed=10 + i))
    return cell, layers, inits


def assert_same(a, b):
    chex.assert_trees_all_close(a, b, **TOL)


SLOW = pytest.mark.slow  # the same checks for more cells and options; the default run keeps the LSTM


@pytest.mark.parametrize("name", ["lstm", pytest.param("gru", marks=SLOW), pytest.param("elman", marks=SLOW)])
def test_wavefront_stack_equals_layered_values_carries_and_gradients(name):
    # 3 layers: layer 0 (d=3) its own group, layers 1-2 one batched group; lengths full..0
    cell, layers, inits = make(name, 3)
    xs = with_garbage(inputs(), LENGTHS)
    ref = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="layered")
    got = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="wavefront")
    assert_same(got, ref)
    (carries, ys), grads = got
    assert_padding_zero(ys, LENGTHS)
    assert len(carries) == 3
    # the empty sequence keeps every layer's initial carry; the gradient reaches every layer
    for carry, init in zip(carries, inits):
        chex.assert_trees_all_close(jax.tree.map(lambda c: c[3], carry), jax.tree.map(lambda c: c[3], init))
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads[0]))


@pytest.mark.parametrize("name,fused", [("lstm", True), pytest.param("lstm", False, marks=SLOW),
                                        pytest.param("gru", True, marks=SLOW), pytest.param("elman", True, marks=SLOW)])
def test_one_loop_bidirectional_stack_equals_layered(name, fused):
    cell, layers, inits = make(name, 2, bidirectional_layers=True)
    xs = with_garbage(inputs(), LENGTHS)
    ref = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="layered", fused=fused)
    got = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="wavefront", fused=fused)
    assert_same(got, ref)
    assert_padding_zero(got[0][1], LENGTHS)


@SLOW
def test_one_loop_sum_merge_partial_initial_carry_and_no_lengths():
    cell, layers, inits = make("gru", 1, bidirectional_layers=True, merge="sum")
    (layer,), xs = layers, inputs()
    run = jax.jit(lambda f, init, lengths: f(cell, layer, xs, seq_lengths=lengths, initial_carry=init,
                                             return_carry=True, merge="sum"), static_argnums=0)
    ref = functools.partial(bidirectional, schedule="layered")
    for init in [(inits[0][0], None), (None, inits[0][1]), None]:
        for lengths in [None, LENGTHS]:
            assert_same(run(bidirectional_one_loop, init, lengths), run(ref, init, lengths))


@pytest.mark.parametrize("bidirectional_layers", [False, pytest.param(True, marks=SLOW)])
def test_dropout_masks_are_the_layered_paths(bidirectional_layers):
    # between-layer dropout and recurrent dropout, drawn from one key: same masks, same numbers
    cell, layers, inits = make("lstm", 2 if not bidirectional_layers else 3,
                               bidirectional_layers=bidirectional_layers)
    xs = inputs()
    opts = dict(dropout_rate=0.4, recurrent_dropout_rate=0.3)
    key = jax.random.key(7)
    ref = value_and_grads(cell, layers, xs, inits, LENGTHS, key, schedule="layered", **opts)
    got = value_and_grads(cell, layers, xs, inits, LENGTHS, key, schedule="wavefront", **opts)
    assert_same(got, ref)
    other = value_and_grads(cell, layers, xs, inits, LENGTHS, jax.random.key(8), schedule="wavefront", **opts)
    assert not np.allclose(other[0][1], got[0][1])  # the masks are in use


@SLOW
def test_residual_stack_of_equal_widths_is_one_group():
    cell, layers, inits = make("elman", 3, d=H)
    xs = with_garbage(inputs(d=H), LENGTHS)
    ref = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="layered", residual=True)
    got = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="wavefront", residual=True)
    assert_same(got, ref)
    plain = value_and_grads(cell, layers, xs, inits, LENGTHS, schedule="wavefront")
    assert not np.allclose(plain[0][1], got[0][1])


def test_wavefront_gradient_matches_finite_differences():
    # a central difference along one random direction of (params, xs) against <grad, direction>
    cell, layers, _ = make("elman", 2, seed=3)
    xs, lengths = inputs(b=2, t=3), np.array([3, 2], np.int32)

    def f(layers, xs):
        return jnp.sum(jnp.sin(wavefront_stack(cell, layers, xs, seq_lengths=lengths)))

    primal = (layers, jnp.asarray(xs))
    leaves, tree = jax.tree.flatten(primal)
    rng = np.random.default_rng(5)
    direction = jax.tree.unflatten(tree, [rng.standard_normal(np.shape(x)).astype(np.float32) for x in leaves])
    moved = jax.jit(lambda e: f(*jax.tree.map(lambda p, v: p + e * v, primal, direction)))
    eps = 1e-2
    numeric = (float(moved(eps)) - float(moved(-eps))) / (2 * eps)
    grads = jax.jit(jax.grad(f, argnums=(0, 1)))(*primal)
    analytic = sum(float(jnp.vdot(g, v)) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    assert analytic == pytest.approx(numeric, rel=2e-3, abs=2e-3)


def test_reverse_prefixes_against_numpy():
    xs = np.random.default_rng(0).standard_normal((B, T, 2)).astype(np.float32)
    want = xs.copy()
    for i, n in enumerate(LENGTHS):
        want[i, :n] = xs[i, :n][::-1]
    np.testing.assert_array_equal(reverse_prefixes(xs, LENGTHS), want)
    np.testing.assert_array_equal(reverse_prefixes(xs, None), xs[:, ::-1])


@SLOW
def test_auto_takes_the_layered_path_where_the_wavefront_cannot_run():
    cell, layers, _ = make("min_gru", 2)
    xs = inputs()
    run = jax.jit(lambda sch: stacked(cell, layers, xs, seq_lengths=LENGTHS, parallel=True, schedule=sch),
                  static_argnums=0)
    assert_same(run("auto"), run("layered"))


def test_errors_name_the_argument():
    cell, layers, _ = make("lstm", 2)
    xs = np.zeros((B, T, D), np.float32)
    with pytest.raises(ValueError, match="schedule"):
        stacked(cell, layers, xs, schedule="diagonal")
    with pytest.raises(ValueError, match="parallel"):
        stacked(cell, layers, xs, schedule="wavefront", parallel=True)
    with pytest.raises(ValueError, match="reverse"):
        stacked(cell, layers, xs, schedule="wavefront", reverse=True)
    with pytest.raises(ValueError, match="residual=True needs layer 0"):
        wavefront_stack(cell, layers, xs, residual=True)
    with pytest.raises(ValueError, match="initial_carry must hold one carry per layer"):
        wavefront_stack(cell, layers, xs, initial_carry=[None])
    with pytest.raises(ValueError, match="layer 1's parameters expect"):
        wavefront_stack(cell, [layers[0], layers[0]], xs)
    with pytest.raises(ValueError, match="unidirectional layers only"):
        wavefront_stack(cell, [{"forward": layers[0], "backward": layers[0]}], xs)
    uneven = {"forward": layers[0], "backward": layers[1]}
    with pytest.raises(ValueError, match="equal shapes"):
        bidirectional_one_loop(cell, uneven, xs)
    with pytest.raises(ValueError, match="equal shapes"):
        bidirectional(cell, uneven, xs, schedule="wavefront")
    with pytest.raises(ValueError, match="reverse cannot be given"):
        bidirectional_one_loop(cell, {"forward": layers[0], "backward": layers[0]}, xs, reverse=True)


def test_auto_follows_the_backend_table(monkeypatch):
    from seqjax.recurrence import layers as layers_module

    calls = []
    monkeypatch.setattr(layers_module, "wavefront_stack", lambda *a, **k: calls.append("wavefront") or "w")
    monkeypatch.setattr(layers_module, "bidirectional_one_loop", lambda *a, **k: calls.append("one_loop") or "b")
    cell, layers, _ = make("elman", 2)
    (bi,) = make("elman", 1, bidirectional_layers=True)[1]
    xs = np.zeros((B, T, D), np.float32)
    backend = jax.default_backend()
    monkeypatch.setitem(layers_module.AUTO_SCHEDULE, backend, "wavefront")
    assert stacked(cell, layers, xs) == "w" and bidirectional(cell, bi, xs) == "b"
    assert calls == ["wavefront", "one_loop"]
    stacked(cell, layers, xs, parallel=False, reverse=True)  # the wavefront cannot reverse: layered
    assert calls == ["wavefront", "one_loop"]
    monkeypatch.setitem(layers_module.AUTO_SCHEDULE, backend, "layered")
    stacked(cell, layers, xs)
    bidirectional(cell, bi, xs)
    assert calls == ["wavefront", "one_loop"]
