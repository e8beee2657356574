"""Houlsby adapters: the function against numpy, near-identity init, the sublayer transformation in
a small post-LN encoder layer (checked equal to seqjax's own layer without adapters), insertion
into stack parameters, and training only the adapter set."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.attention.multi_head import multi_head_attention
from seqjax.train.finetune.adapters import (
    adapter,
    adapter_init,
    adapter_param_count,
    adapter_trainable_mask,
    insert_adapters,
    with_adapter,
)
from seqjax.train.finetune.freezing import count_trainable, freeze
from seqjax.train.optim import param_paths
from seqjax.train.step import make_train_step
from seqjax.transformer import TransformerSpec, encoder_layer, encoder_stack_init, feed_forward, residual

D, H, FF, M = 16, 2, 32, 4
SPEC = TransformerSpec(num_heads=H, activation="gelu", norm_first=False, dropout_rate=0.0)


def np_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def test_adapter_against_numpy():
    p = adapter_init(jax.random.key(0), D, M, init_std=0.5)
    h = np.asarray(jax.random.normal(jax.random.key(1), (3, 5, D)))
    pn = {k: np.asarray(v, np.float64) for k, v in p.items()}
    want = h + np_gelu(h @ pn["w_down"] + pn["b_down"]) @ pn["w_up"] + pn["b_up"]
    np.testing.assert_allclose(adapter(p, jnp.asarray(h)), want, rtol=1e-5, atol=1e-5)


def test_init_is_houlsby_near_identity():
    p = adapter_init(jax.random.key(0), 256, 64)
    w = np.asarray(p["w_down"])
    assert np.abs(w).max() <= 2e-2 + 1e-7                    # truncated at two standard deviations
    assert w.std() == pytest.approx(1e-2 * 0.88, rel=0.05)    # std of N(0,1) truncated at +-2: 0.880
    assert not np.any(p["b_down"]) and not np.any(p["b_up"])
    h = jax.random.normal(jax.random.key(1), (4, 256))
    rel = float(jnp.linalg.norm(adapter(p, h) - h) / jnp.linalg.norm(h))
    assert 0 < rel < 1e-2                                      # ~0.005 for d=256, m=64
    exact = adapter_init(jax.random.key(0), 8, 2, zero_up=True)
    np.testing.assert_array_equal(adapter(exact, h[:, :8]), h[:, :8])
    assert sum(x.size for x in p.values()) == adapter_param_count(256, 64) == 2 * 256 * 64 + 256 + 64


def adapted_layer(params, x):
    """A post-LN encoder layer written from seqjax's public pieces, applying the adapters that
    insert_adapters put in the layer's parameters (the hook the transformer layer needs)."""
    attn = lambda h: multi_head_attention(params["self_attn"], h, num_heads=H)
    ffn = lambda h: feed_forward(params["ffn"], h, activation="gelu")
    if "adapter_attn" in params:
        attn = with_adapter(attn, params["adapter_attn"])
    if "adapter_ffn" in params:
        ffn = with_adapter(ffn, params["adapter_ffn"])
    x = residual(x, attn, params["norm_1"], eps=SPEC.eps)
    return residual(x, ffn, params["norm_2"], eps=SPEC.eps)


def model(stack, x):
    for layer in stack["layers"]:
        x = adapted_layer(layer, x)
    return x


@pytest.fixture(scope="module")
def stack():
    return encoder_stack_init(jax.random.key(0), 2, D, H, FF, final_norm=False)


def test_standalone_layer_is_seqjax_layer_and_adapters_start_near_identity(stack):
    x = jax.random.normal(jax.random.key(1), (2, 5, D))
    layer = stack["layers"][0]
    np.testing.assert_allclose(adapted_layer(layer, x), encoder_layer(SPEC, layer, x), rtol=1e-5, atol=1e-5)
    exact = insert_adapters(jax.random.key(2), stack, M, zero_up=True)
    np.testing.assert_allclose(model(exact, x), model(stack, x), rtol=1e-6, atol=1e-6)
    near = insert_adapters(jax.random.key(2), stack, M)
    diff = float(jnp.abs(model(near, x) - model(stack, x)).max())
    assert 0 < diff < 1e-2


def test_insert_adapters_looped_and_stacked(stack):
    looped = insert_adapters(jax.random.key(0), stack, M)
    assert set(looped["layers"][1]) == set(stack["layers"][1]) | {"adapter_attn", "adapter_ffn"}
    assert "adapter_attn" not in stack["layers"][0]          # the input is not modified
    scanned = encoder_stack_init(jax.random.key(0), 3, D, H, FF, stacked=True)
    s = insert_adapters(jax.random.key(0), scanned, M, slots=("adapter_ffn",))
    assert s["layers"]["adapter_ffn"]["w_down"].shape == (3, D, M)
    with pytest.raises(ValueError, match="'layers'"):
        insert_adapters(jax.random.key(0), {"w": 1}, M)


def test_training_only_adapters_and_norms(stack):
    params = {"stack": insert_adapters(jax.random.key(3), stack, M), "head": {"w": jnp.ones((D, 1)) * 0.1}}
    mask = adapter_trainable_mask(params, also="head/*")
    paths = jax.tree.leaves(param_paths(params))
    trainable = {p for p, m in zip(paths, jax.tree.leaves(mask)) if m}
    assert trainable == {p for p in paths if "adapter" in p or "/norm_" in p or p.startswith("head/")}
    assert count_trainable(params, mask) == 2 * 2 * adapter_param_count(D, M) + 2 * 2 * 2 * D + D
    x = jax.random.normal(jax.random.key(4), (4, 5, D))
    y = jnp.arange(4.0)

    def loss(p, batch, key):
        return jnp.mean((model(p["stack"], batch[0]).mean(1) @ p["head"]["w"] - batch[1][:, None]) ** 2)

    opt = freeze(optax.adam(1e-2), mask=mask)
    step = make_train_step(loss, opt, donate=False)
    state, new = opt.init(params), params
    losses = []
    for _ in range(5):
        new, state, metrics = step(new, state, (x, y), None)
        losses.append(float(metrics["loss"]))
    changed = {p for p, a, b in zip(paths, jax.tree.leaves(params), jax.tree.leaves(new)) if not np.array_equal(a, b)}
    assert changed == trainable and losses[-1] < losses[0]


def test_with_adapter_passes_aux_and_checks():
    p = adapter_init(jax.random.key(0), 4, 2)
    y, aux = with_adapter(lambda h: (h, "cache"), p, has_aux=True)(jnp.ones((1, 4)))
    assert aux == "cache" and y.shape == (1, 4)
    with pytest.raises(ValueError, match="lack"):
        adapter({"w_down": p["w_down"]}, jnp.ones((1, 4)))
    with pytest.raises(ValueError, match="bottleneck"):
        adapter_init(jax.random.key(0), 4, 0)
