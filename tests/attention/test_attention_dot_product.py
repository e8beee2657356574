"""Scaled dot-product attention against independent references: ``jax.nn.dot_product_attention``,
``torch.nn.functional.scaled_dot_product_attention`` (boolean mask, True = attend: our
convention) and a numpy implementation with the kv heads repeated explicitly (GQA)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (
    alibi_bias,
    causal_mask,
    dot_product_attention,
    padding_mask,
    repeat_kv_heads,
)

torch = pytest.importorskip("torch")

ATOL = RTOL = 1e-5
B, T, S, H, D = 2, 5, 7, 4, 8  # one set of shapes, so each function compiles once


def qkv(seed: int, t: int = T, s: int = S, h_kv: int = H):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(B, t, H, D)).astype(np.float32),
        rng.normal(size=(B, s, h_kv, D)).astype(np.float32),
        rng.normal(size=(B, s, h_kv, D)).astype(np.float32),
    )


def random_mask(seed: int, shape):
    """A random boolean mask with at least one True per row (torch gives NaN otherwise)."""
    mask = np.random.default_rng(seed).random(shape) < 0.6
    mask[..., 0] = True
    return mask


def torch_sdpa(q, k, v, mask=None, is_causal=False):
    """torch takes [b, h, t, d]; ours is [b, t, h, d]."""
    to = lambda x: torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 1, 2)))
    m = None if mask is None else torch.from_numpy(np.array(mask))
    out = torch.nn.functional.scaled_dot_product_attention(to(q), to(k), to(v), attn_mask=m, is_causal=is_causal)
    return np.swapaxes(out.numpy(), 1, 2)


def numpy_attention(q, k, v, mask=None, bias=None, scale=None):
    """Reference with the kv heads repeated explicitly; float64."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    groups = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = np.einsum("bthd,bshd->bhts", q, k) * scale
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    m = logits.max(-1, keepdims=True)
    e = np.exp(logits - np.where(np.isfinite(m), m, 0))
    total = e.sum(-1, keepdims=True)
    w = np.where(total > 0, e / np.where(total > 0, total, 1), 0)
    return np.einsum("bhts,bshd->bthd", w, v), w


def test_plain_matches_jax_nn_and_torch():
    q, k, v = qkv(0)
    out, w = dot_product_attention(q, k, v, return_weights=True)
    chex.assert_shape(out, (B, T, H, D))
    chex.assert_shape(w, (B, H, T, S))
    np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(out, torch_sdpa(q, k, v), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


def test_boolean_mask_matches_torch():
    q, k, v = qkv(1)
    mask = random_mask(1, (B, 1, T, S))
    out, w = dot_product_attention(q, k, v, mask=mask, return_weights=True)
    np.testing.assert_allclose(out, torch_sdpa(q, k, v, mask), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v, mask=mask), atol=ATOL, rtol=RTOL)
    assert np.all(np.asarray(w)[~np.broadcast_to(mask, w.shape)] == 0)


def test_padding_mask_matches_torch():
    q, k, v = qkv(2)
    mask = padding_mask(jnp.array([S, 3]), S)
    np.testing.assert_allclose(
        dot_product_attention(q, k, v, mask=mask), torch_sdpa(q, k, v, np.asarray(mask)), atol=ATOL, rtol=RTOL
    )


def test_causal_matches_torch_is_causal_and_jax():
    q, k, v = qkv(3, s=T)
    out = dot_product_attention(q, k, v, mask=causal_mask(T))
    np.testing.assert_allclose(out, torch_sdpa(q, k, v, is_causal=True), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v, is_causal=True), atol=ATOL, rtol=RTOL)


def test_bias_and_scale_match_jax_nn():
    q, k, v = qkv(4)
    bias = alibi_bias(H, T, S)
    out = dot_product_attention(q, k, v, bias=bias, scale=0.3)
    ref = jax.nn.dot_product_attention(q, k, v, bias=bias, scale=0.3)
    np.testing.assert_allclose(out, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("h_kv", [1, 2])
def test_grouped_query_matches_explicit_repeat(h_kv):
    q, k, v = qkv(5, h_kv=h_kv)
    mask = random_mask(5, (B, 1, T, S))
    out, w = dot_product_attention(q, k, v, mask=mask, return_weights=True)
    ref_out, ref_w = numpy_attention(q, k, v, mask)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(w, ref_w, atol=ATOL, rtol=RTOL)
    repeated = dot_product_attention(q, repeat_kv_heads(k, H), repeat_kv_heads(v, H), mask=mask)
    np.testing.assert_allclose(out, repeated, atol=ATOL, rtol=RTOL)


def test_unbatched_equals_batched():
    q, k, v = qkv(6)
    mask = random_mask(6, (H, T, S))
    batched = dot_product_attention(q, k, v, mask=mask[None])
    np.testing.assert_allclose(dot_product_attention(q[0], k[0], v[0], mask=mask), batched[0], atol=1e-6)


def test_fully_masked_rows_give_zeros_and_finite_gradients():
    q, k, v = qkv(7)
    mask = random_mask(7, (B, 1, T, S))
    mask[0, 0, 2] = False  # a query with no key at all (a padded query)
    mask[1] = False  # a whole sequence with no key
    out, w = dot_product_attention(q, k, v, mask=mask, return_weights=True)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(out[0, 2], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(w[1], 0.0)
    ref_out, _ = numpy_attention(q, k, v, mask)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=RTOL)

    loss = lambda q, k, v: jnp.sum(dot_product_attention(q, k, v, mask=mask) ** 2)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    for g in grads:
        assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(grads[0][1], 0.0)  # queries that see nothing get no gradient
    np.testing.assert_array_equal(grads[0][0, 2], 0.0)


def test_bfloat16_masked_logits_do_not_overflow():
    q, k, v = qkv(8)
    mask = random_mask(8, (B, 1, T, S))
    mask[0, 0, 1] = False
    big = 200.0  # logits ~ 1e4 * 8: far beyond float16, fine for bfloat16's range
    qb, kb, vb = (jnp.asarray(x, jnp.bfloat16) for x in (q * big, k * big, v))
    out, w = dot_product_attention(qb, kb, vb, mask=mask, return_weights=True)
    assert out.dtype == jnp.bfloat16 and w.dtype == jnp.bfloat16
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    np.testing.assert_array_equal(np.asarray(out[0, 1], np.float32), 0.0)
    ref = dot_product_attention(*(jnp.asarray(x, jnp.float32) for x in (qb, kb, vb)), mask=mask)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05, rtol=0.05)
    # A bias near bfloat16's most negative value on top of masked logits: masking replaces the
    # logit (never adds a big negative constant), so nothing reaches -inf and no row turns NaN.
    huge = jnp.full((1, 1, 1, S), jnp.finfo(jnp.bfloat16).min, jnp.bfloat16)
    out = dot_product_attention(qb, kb, vb, mask=mask, bias=huge)
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    np.testing.assert_array_equal(np.asarray(out[0, 1], np.float32), 0.0)


def test_dropout_explicit_key_and_pre_dropout_weights():
    q, k, v = qkv(9)
    # Values with an identity block appended: those output features are the dropped-out weights.
    eye = np.broadcast_to(np.eye(S, dtype=np.float32)[None, :, None, :], (B, S, H, S))
    v_eye = np.concatenate([v, eye], axis=-1)
    key = jax.random.key(0)
    plain, w_plain = dot_product_attention(q, k, v_eye, return_weights=True)
    out, w = dot_product_attention(q, k, v_eye, dropout_rate=0.5, dropout_key=key, return_weights=True)
    again = dot_product_attention(q, k, v_eye, dropout_rate=0.5, dropout_key=key)
    np.testing.assert_array_equal(out, again)  # same key, same numbers
    np.testing.assert_allclose(w, w_plain, atol=1e-7)  # weights returned before dropout
    dropped = np.moveaxis(np.asarray(out[..., D:]), 1, 2)  # [b, h, t, s]
    kept = dropped != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(dropped[kept], (np.asarray(w) / 0.5)[kept], rtol=1e-6)  # inverted scaling
    np.testing.assert_allclose(out[..., :D], np.einsum("bhts,bshd->bthd", dropped, v), atol=ATOL, rtol=RTOL)
    # No key: evaluation mode, no dropout.
    np.testing.assert_array_equal(dot_product_attention(q, k, v_eye, dropout_rate=0.5), plain)


def test_jit():
    q, k, v = qkv(10)
    mask = padding_mask(jnp.array([S, 2]), S)
    np.testing.assert_allclose(
        jax.jit(lambda *a: dot_product_attention(*a, mask=mask))(q, k, v),
        dot_product_attention(q, k, v, mask=mask),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda q, k, v: (q[0, 0], k, v), "query must have rank 3 or 4"),
        (lambda q, k, v: (q.astype(np.int32), k, v), "floating-point"),
        (lambda q, k, v: (q, k[..., :3], v), "head_dim"),
        (lambda q, k, v: (q, k[:, :, :3], v[:, :, :3]), "must divide"),
        (lambda q, k, v: (q, k, v[:, :3]), "value must have the kv_time"),
        (lambda q, k, v: (q, k[:1], v[:1]), "batch size"),
        (lambda q, k, v: (q, k[0], v[0]), "key must have rank 4"),
    ],
)
def test_shape_errors(change, match):
    with pytest.raises(ValueError, match=match):
        dot_product_attention(*change(*qkv(11)))


def test_mask_bias_and_rate_errors():
    q, k, v = qkv(12)
    with pytest.raises(ValueError, match="boolean"):
        dot_product_attention(q, k, v, mask=np.ones((B, 1, T, S), np.float32))
    # A [batch, kv_len] padding mask would broadcast onto [q_len, kv_len]: refused.
    with pytest.raises(ValueError, match=r"must have rank 4, \[batch, heads, q_len, kv_len\]"):
        dot_product_attention(q, k, v, mask=np.ones((B, S), bool))
    with pytest.raises(ValueError, match="must have rank 4"):
        dot_product_attention(q, k, v, mask=np.ones((1, B, 1, T, S), bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        dot_product_attention(q, k, v, mask=np.ones((B, 2, T, S), bool))
    with pytest.raises(ValueError, match="bias"):
        dot_product_attention(q, k, v, bias=np.ones((3, T, S), np.float32))
    with pytest.raises(ValueError, match=r"dropout_rate must lie in \[0, 1\)"):
        dot_product_attention(q, k, v, dropout_rate=1.0, dropout_key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_heads"):
        repeat_kv_heads(k[:, :, :3], H)
