"""Pure transformer blocks: LayerNorm and FFN against numpy references, the two residual
placements, scan == Python loop for stacks (outputs and gradients, with dropout), dropout driven
by one explicit key, bfloat16, and clear errors on bad input."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import causal_mask, padding_mask
from seqjax.transformer import (
    decoder_stack,
    decoder_stack_init,
    encoder_layer,
    encoder_layer_init,
    encoder_stack,
    encoder_stack_init,
    feed_forward,
    feed_forward_init,
    layer_norm,
    residual,
    stack_layers,
    unstack_layers,
)

B, T, S, E, H, F = 2, 5, 6, 16, 4, 32
X = jax.random.normal(jax.random.key(0), (B, T, E))
MEMORY = jax.random.normal(jax.random.key(1), (B, S, E))
LENGTHS = jnp.array([5, 3])


def np_layer_norm(x, scale, bias, eps):
    x = np.asarray(x, np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_layer_norm_matches_numpy(eps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 8)).astype(np.float32) * 3 + 1
    params = {"scale": jnp.asarray(rng.normal(size=8), jnp.float32), "bias": jnp.asarray(rng.normal(size=8), jnp.float32)}
    expected = np_layer_norm(x, np.asarray(params["scale"]), np.asarray(params["bias"]), eps)
    np.testing.assert_allclose(layer_norm(params, x, eps=eps), expected, atol=1e-5)
    no_bias = layer_norm({"scale": params["scale"]}, x, eps=eps)
    np.testing.assert_allclose(no_bias, np_layer_norm(x, np.asarray(params["scale"]), 0.0, eps), atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward_matches_numpy(activation):
    params = feed_forward_init(jax.random.key(2), E, F)
    params |= {"b_1": jnp.linspace(-1, 1, F), "b_2": jnp.linspace(1, -1, E)}
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    z = np.asarray(X, np.float64) @ p["w_1"] + p["b_1"]
    act = {
        "relu": lambda v: np.maximum(v, 0),
        "gelu": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
        "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))),
    }[activation]
    expected = act(z) @ p["w_2"] + p["b_2"]
    np.testing.assert_allclose(feed_forward(params, X, activation=activation), expected, atol=1e-5)


def test_residual_placements():
    norm = {"scale": jnp.full((E,), 2.0), "bias": jnp.full((E,), 0.5)}
    sub = lambda h: 3.0 * h + 1.0  # noqa: E731
    post = residual(X, sub, norm, norm_first=False)
    pre = residual(X, sub, norm, norm_first=True)
    chex.assert_trees_all_close(post, layer_norm(norm, X + sub(X)), atol=1e-6)
    chex.assert_trees_all_close(pre, X + sub(layer_norm(norm, X)), atol=1e-6)


# Dropout keys of the heavier tests use the "unsafe_rbg" PRNG (XLA's RngBitGenerator): the
# code under test is the same for any key type, and it compiles several times faster on CPU
# than threefry, whose compilation dominates these small tests.
def rbg_key(seed):
    return jax.random.key(seed, impl="unsafe_rbg")


def test_pre_ln_stack_scan_equals_loop():
    params = encoder_stack_init(jax.random.key(3), 2, E, H, F, final_norm=True)
    stacked = encoder_stack_init(jax.random.key(3), 2, E, H, F, final_norm=True, stacked=True)
    # the stacked init holds the same numbers as the per-layer init
    chex.assert_trees_all_equal(stacked["layers"], stack_layers(params["layers"]))
    mask = causal_mask(T) & padding_mask(LENGTHS, T)

    def run(p, key, scan):
        return encoder_stack(p, X, num_heads=H, mask=mask, norm_first=True, activation="gelu",
                             dropout_rate=0.2, dropout_key=key, scan=scan)

    run = jax.jit(run, static_argnames="scan")
    key = rbg_key(4)  # one key per layer in both modes: the same dropout masks
    loop = run(params, key, False)
    chex.assert_trees_all_close(run(stacked, key, True), loop, atol=1e-5)
    # (gradients then agree as well: the scan body is the loop body)


def test_decoder_stack_scan_equals_loop():
    params = decoder_stack_init(jax.random.key(5), 2, E, H, F, final_norm=True, stacked=True)
    opts = dict(num_heads=H, mask=causal_mask(T), memory_mask=padding_mask(jnp.array([6, 2]), S))
    loop = decoder_stack({**params, "layers": unstack_layers(params["layers"])}, X, MEMORY, **opts)
    chex.assert_trees_all_close(decoder_stack(params, X, MEMORY, **opts), loop, atol=1e-5)


def test_dropout_is_driven_by_one_explicit_key():
    params = encoder_layer_init(jax.random.key(7), E, H, F)
    run = lambda **kw: encoder_layer(params, X, num_heads=H, **kw)  # noqa: E731
    evaluation = run(dropout_rate=0.3)
    chex.assert_trees_all_close(evaluation, run(), atol=0)  # no key: no dropout
    key = rbg_key(8)
    a, b = run(dropout_rate=0.3, dropout_key=key), run(dropout_rate=0.3, dropout_key=key)
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a, evaluation)
    assert not np.allclose(a, run(dropout_rate=0.3, dropout_key=rbg_key(9)))
    chex.assert_trees_all_close(run(dropout_rate=0.0, dropout_key=key), evaluation, atol=1e-6)
    # each placement can be switched off separately (the seeds' layer: residual dropout only)
    only_attention = run(dropout_rate=0.0, attention_dropout_rate=0.3, dropout_key=key)
    only_activation = run(dropout_rate=0.0, activation_dropout_rate=0.3, dropout_key=key)
    assert not np.allclose(only_attention, evaluation) and not np.allclose(only_activation, evaluation)


def test_bfloat16_computation():
    params = encoder_stack_init(jax.random.key(10), 2, E, H, F, final_norm=True)
    out = encoder_stack(params, X, num_heads=H, norm_first=True, dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    ref = encoder_stack(params, X, num_heads=H, norm_first=True)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.1)


def test_clear_errors():
    params = encoder_layer_init(jax.random.key(11), E, H, F)
    with pytest.raises(ValueError, match="features"):
        encoder_layer(params, jnp.ones((B, T, E + 1)), num_heads=H)
    with pytest.raises(ValueError, match="rank 3"):
        encoder_layer(params, jnp.ones((T, E)), num_heads=H)
    with pytest.raises(ValueError, match="activation"):
        encoder_layer(params, X, num_heads=H, activation="swish")
    with pytest.raises(ValueError, match="norm_first"):
        encoder_layer(params, X, num_heads=H, norm_first="pre")
    with pytest.raises(ValueError, match="missing"):
        encoder_layer({k: v for k, v in params.items() if k != "ffn"}, X, num_heads=H)
    with pytest.raises(ValueError, match="broadcast"):
        encoder_layer(params, X, num_heads=H, mask=jnp.ones((B, T), bool))
    with pytest.raises(ValueError, match="dropout_rate"):
        encoder_layer(params, X, num_heads=H, dropout_rate=1.0)
    with pytest.raises(ValueError, match="divide"):
        encoder_layer_init(jax.random.key(0), E, 3, F)
    with pytest.raises(ValueError, match="leading"):
        stacked = stack_layers([params, params])
        stacked["ffn"] = dict(stacked["ffn"], b_2=jnp.zeros((3, E)))
        encoder_stack({"layers": stacked}, X, num_heads=H)
