"""seqjax.train.clipping: each variant against a hand computation on a small pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.train.clipping import (
    adaptive_clip,
    clip_by_global_norm,
    clip_by_value,
    ema_norm_clip,
    make_clipping,
)

# Global norm sqrt(3^2 + 4^2 + 12^2) = 13.
GRADS = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[12.0]])}


def _apply(tx, grads, params=None):
    out, _ = tx.update(grads, tx.init(grads if params is None else params), params)
    return jax.tree.map(np.asarray, out)


def test_global_norm_scales_the_whole_gradient():
    out = _apply(clip_by_global_norm(6.5), GRADS)  # scale 6.5 / 13 = 1/2
    np.testing.assert_allclose(out["a"], [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[6.0]], rtol=1e-6)
    kept = _apply(clip_by_global_norm(20.0), GRADS)  # below the threshold: unchanged
    np.testing.assert_array_equal(kept["a"], [3.0, 4.0])


def test_global_norm_seed_worked_example():
    out = _apply(clip_by_global_norm(5.0), {"g": jnp.array([9.0, 12.0])})  # norm 15 -> scale 1/3
    np.testing.assert_allclose(out["g"], [3.0, 4.0], rtol=1e-6)


def test_value_clipping_clamps_each_element():
    out = _apply(clip_by_value(1.0), {"g": jnp.array([-3.0, 0.5, 2.0])})
    np.testing.assert_array_equal(out["g"], [-1.0, 0.5, 1.0])


def test_agc_clips_each_output_unit_against_its_weight_norm():
    # W is [in=2, out=2]; units are columns: ||W_:0|| = 5, ||W_:1|| = 1.
    params = {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]]), "b": jnp.zeros(2)}
    grads = {"w": jnp.array([[6.0, 0.001], [8.0, 0.0]]), "b": jnp.array([3e-4, 4e-4])}
    out = _apply(adaptive_clip(0.1, eps=1e-3), grads, params)
    # column 0: ||g|| = 10 > 0.1 * 5 = 0.5 -> scaled to norm 0.5: [6, 8] * 0.05 = [0.3, 0.4]
    # column 1: ||g|| = 0.001 < 0.1 * 1 -> unchanged
    np.testing.assert_allclose(out["w"], [[0.3, 0.001], [0.4, 0.0]], rtol=1e-5)
    # zero-initialised bias: limit 0.1 * max(0, 1e-3) = 1e-4; ||g|| = 5e-4 -> scale 1/5
    np.testing.assert_allclose(out["b"], [6e-5, 8e-5], rtol=1e-5)


def test_ema_norm_clip_follows_the_running_norm():
    tx = ema_norm_clip(alpha=0.5, tau0=1.0)
    state = tx.init(None)
    g1 = {"g": jnp.array([0.0, 4.0])}  # norm 4 > tau0 = 1 -> clipped to norm 1
    out, state = tx.update(g1, state)
    np.testing.assert_allclose(out["g"], [0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(state.tau, 2.5, rtol=1e-6)  # 0.5 * 1 + 0.5 * 4 (unclipped norm)
    g2 = {"g": jnp.array([0.0, 2.0])}  # norm 2 < 2.5 -> unchanged
    out, state = tx.update(g2, state)
    np.testing.assert_array_equal(out["g"], [0.0, 2.0])
    np.testing.assert_allclose(state.tau, 2.25, rtol=1e-6)  # 0.5 * 2.5 + 0.5 * 2


def test_clipping_chains_before_the_optimiser():
    tx = optax.chain(make_clipping("global_norm", 6.5), optax.sgd(1.0))
    out, _ = tx.update(GRADS, tx.init(GRADS))
    np.testing.assert_allclose(out["a"], [-1.5, -2.0], rtol=1e-6)


def test_make_clipping_by_name():
    assert _apply(make_clipping("none"), GRADS)["a"].tolist() == [3.0, 4.0]
    np.testing.assert_array_equal(_apply(make_clipping("value", 3.5), GRADS)["b"], [[3.5]])
    with pytest.raises(ValueError, match="threshold"):
        make_clipping("global_norm")
    with pytest.raises(ValueError, match="kind"):
        make_clipping("norm", 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm(0.0)
