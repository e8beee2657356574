"""Pure transformer blocks: LayerNorm and FFN against numpy references, the two residual
placements, scan == Python loop for stacks (with dropout), dropout driven by one explicit key,
bfloat16, the spec validated once, and clear errors on bad input."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import causal_mask, padding_mask
from seqjax.primitives import layer_norm
from seqjax.transformer import (
    TransformerSpec,
    decoder_stack,
    decoder_stack_init,
    encoder_layer,
    encoder_layer_init,
    encoder_stack,
    encoder_stack_init,
    feed_forward,
    feed_forward_init,
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

    spec = TransformerSpec(num_heads=H, norm_first=True, activation="gelu", dropout_rate=0.2)

    def run(p, key, scan):
        return encoder_stack(spec, p, X, mask=mask, dropout_key=key, scan=scan)

    run = jax.jit(run, static_argnames="scan")
    key = rbg_key(4)  # one key per layer in both modes: the same dropout masks
    loop = run(params, key, False)
    chex.assert_trees_all_close(run(stacked, key, True), loop, atol=1e-5)
    # (gradients then agree as well: the scan body is the loop body)


def test_decoder_stack_scan_equals_loop():
    params = decoder_stack_init(jax.random.key(5), 2, E, H, F, final_norm=True, stacked=True)
    spec = TransformerSpec(num_heads=H, causal=True)
    opts = dict(src_lengths=jnp.array([6, 2]))
    loop = decoder_stack(spec, {**params, "layers": unstack_layers(params["layers"])}, X, MEMORY, **opts)
    chex.assert_trees_all_close(decoder_stack(spec, params, X, MEMORY, **opts), loop, atol=1e-5)
    # the causal spec equals an explicit causal mask, src_lengths an explicit padding mask
    explicit = decoder_stack(TransformerSpec(num_heads=H), params, X, MEMORY, mask=causal_mask(T),
                             memory_mask=padding_mask(jnp.array([6, 2]), S))
    chex.assert_trees_all_close(explicit, loop, atol=1e-5)


def test_dropout_is_driven_by_one_explicit_key():
    params = encoder_layer_init(jax.random.key(7), E, H, F)

    def run(dropout_key=None, **rates):
        return encoder_layer(TransformerSpec(num_heads=H, **rates), params, X, dropout_key=dropout_key)

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
    spec = TransformerSpec(num_heads=H, norm_first=True)
    out = encoder_stack(spec.replace(dtype=jnp.bfloat16), params, X)
    assert out.dtype == jnp.bfloat16
    ref = encoder_stack(spec, params, X)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.1)


def test_clear_errors():
    params = encoder_layer_init(jax.random.key(11), E, H, F)
    spec = TransformerSpec(num_heads=H)
    with pytest.raises(ValueError, match="features"):
        encoder_layer(spec, params, jnp.ones((B, T, E + 1)))
    with pytest.raises(ValueError, match="rank 3"):
        encoder_layer(spec, params, jnp.ones((T, E)))
    with pytest.raises(ValueError, match="missing"):
        encoder_layer(spec, {k: v for k, v in params.items() if k != "ffn"}, X)
    with pytest.raises(ValueError, match="rank 4"):  # a bare [b, s] padding mask
        encoder_layer(spec, params, X, mask=jnp.ones((B, T), bool))
    with pytest.raises(ValueError, match="rank 4"):  # ... also where it is combined with the causal mask
        encoder_stack(spec.replace(causal=True), {"layers": [params]}, X, mask=jnp.ones((B, T), bool))
    with pytest.raises(ValueError, match="TransformerSpec"):
        encoder_layer(H, params, X)
    with pytest.raises(ValueError, match="num_kv_heads = 2"):  # the spec must describe the parameters
        encoder_layer(spec.replace(num_kv_heads=2), params, X)
    with pytest.raises(ValueError, match="divide"):
        encoder_layer_init(jax.random.key(0), E, 3, F)
    with pytest.raises(ValueError, match="leading"):
        stacked = stack_layers([params, params])
        stacked["ffn"] = dict(stacked["ffn"], b_2=jnp.zeros((3, E)))
        encoder_stack(spec, {"layers": stacked}, X)
    with pytest.raises(TypeError):  # no second list of options next to the spec
        encoder_stack(spec, {"layers": [params]}, X, norm_first=True)


@pytest.mark.parametrize("options, message", [
    (dict(num_heads=0), "num_heads"),
    (dict(num_heads=True), "num_heads"),
    (dict(num_heads=4, num_kv_heads=3), "divide"),
    (dict(num_heads=4, activation="swish"), "activation"),
    (dict(num_heads=4, norm_first="pre"), "norm_first"),
    (dict(num_heads=4, causal=1), "causal"),
    (dict(num_heads=4, eps=0.0), "eps"),
    (dict(num_heads=4, positional="sinusoidal"), "positional"),  # alibi and relative are schemes now
    (dict(num_heads=4, dtype=jnp.int32), "dtype"),
    (dict(num_heads=4, dropout_rate=1.0), "dropout_rate"),
    (dict(num_heads=4, attention_dropout_rate=-0.1), "attention_dropout_rate"),
    (dict(num_heads=4, activation_dropout_rate="0.1"), "activation_dropout_rate"),
])
def test_spec_is_validated_once(options, message):
    with pytest.raises(ValueError, match=message):
        TransformerSpec(**options)


def test_spec_is_frozen_and_hashable():
    spec = TransformerSpec(num_heads=4, dtype="bfloat16", dropout_rate=0.1, attention_dropout_rate=0.0)
    assert spec.dtype == jnp.bfloat16 and hash(spec) == hash(TransformerSpec(num_heads=4, dtype=jnp.bfloat16,
                                                                             dropout_rate=0.1, attention_dropout_rate=0.0))
    assert spec.dropout_rates() == (0.1, 0.0, 0.1)
    with pytest.raises(AttributeError):
        spec.num_heads = 2
