"""Chunked (memory-efficient) attention against independent references, values *and* gradients.

References: a plain einsum + softmax written here (kv heads repeated explicitly, masked entries set
to -inf and fully masked rows zeroed by hand), and :func:`seqjax.attention.dot_product_attention`.
Small chunk sizes make every case cross several blocks: clean, masked, skipped (causal) and padded.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax.attention import causal_mask, dot_product_attention, padding_mask
from seqjax.attention.chunked import (
    _auto_implementation,
    chunked_attention,
    memory_efficient_attention,
)

ATOL = RTOL = 1e-5
B, D = 2, 8


def reference_attention(q, k, v, mask=None, causal=False, scale=None):
    """softmax(q k^T * scale, masked) v with the kv heads repeated; rows with no key give 0."""
    t, h, s = q.shape[-3], q.shape[-2], k.shape[-3]
    groups = h // k.shape[-2]
    k, v = jnp.repeat(k, groups, axis=-2), jnp.repeat(v, groups, axis=-2)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = jnp.einsum("...thd,...shd->...hts", q, k).astype(jnp.float32) * scale
    allowed = jnp.ones((t, s), bool)
    if causal:
        allowed = allowed & jnp.tril(jnp.ones((t, s), bool))
    if mask is not None:
        allowed = allowed & mask
    logits = jnp.where(allowed, logits, -jnp.inf)
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(logits - jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0)))
    total = e.sum(-1, keepdims=True)
    w = jnp.where(total > 0, e / jnp.where(total > 0, total, 1.0), 0.0)
    return jnp.einsum("...hts,...shd->...thd", w.astype(v.dtype), v)


def qkv(seed, t, s, h, h_kv, d=D, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(
        jnp.asarray(rng.normal(size=shape).astype(dtype))
        for shape in ((B, t, h, d), (B, s, h_kv, d), (B, s, h_kv, d), (B, t, h, d))
    )  # q, k, v and an output cotangent


def value_and_vjp(fn, q, k, v, cotangent):
    """``(fn(q, k, v), (dq, dk, dv))`` for the output cotangent, in one jitted call (one
    compilation instead of an op-by-op dispatch per primitive: keeps the tests fast)."""

    @jax.jit
    def run(q, k, v, cotangent):
        out, pullback = jax.vjp(fn, q, k, v)
        return out, pullback(cotangent)

    return run(q, k, v, cotangent)


def assert_close(got, want, atol=ATOL, rtol=RTOL):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), atol=atol, rtol=rtol)


def make_mask(kind, t, s, h, seed=0):
    rng = np.random.default_rng(100 + seed)
    if kind is None:
        return None
    if kind == "padding":  # [b, 1, 1, s]; lengths not multiples of the chunk
        return padding_mask(jnp.array([s - 2, 5]), s)
    if kind == "random":  # [b, h, t, s], some rows empty
        m = rng.random((B, h, t, s)) < 0.6
        m[0, 1, 2] = False
        m[1, 0, t - 1] = False
        return jnp.asarray(m)
    if kind == "time":  # [b, 1, t, s]: varies over time but not heads (broadcast across a group)
        return jnp.asarray(rng.random((B, 1, t, s)) < 0.7)
    if kind == "heads":  # [1, h, 1, s]: varies over heads only
        return jnp.asarray(rng.random((1, h, 1, s)) < 0.7)
    raise AssertionError(kind)


CASES = {
    # name: (t, s, h, h_kv, q_chunk, k_chunk, causal, mask kind, head_chunk)
    "exact_blocks": (16, 16, 2, 2, 8, 8, False, None, None),
    "ragged_lengths": (13, 11, 2, 2, 4, 3, False, None, None),
    "causal": (19, 19, 2, 2, 8, 4, True, None, None),
    "causal_per_head_steps": (19, 19, 2, 2, 8, 4, True, None, 1),
    "causal_more_keys": (7, 12, 2, 2, 3, 5, True, None, None),
    "causal_more_queries_padding": (12, 7, 2, 2, 5, 3, True, "padding", None),
    "padding_mask_per_head_steps": (10, 13, 2, 2, 4, 5, False, "padding", 1),
    "random_mask": (9, 10, 2, 2, 4, 4, False, "random", None),
    "gqa_causal_time_mask": (11, 9, 4, 2, 4, 4, True, "time", None),
    "gqa_time_mask_two_heads_per_step": (11, 9, 4, 2, 4, 4, False, "time", 2),
    "mqa_head_mask_per_head_steps": (9, 11, 4, 1, 4, 4, False, "heads", 1),
}


# head_chunk=1 (one head per step) is also covered by the padding and MQA cases.
SLOW_CASES = {"causal_per_head_steps"}
# The second reference, seqjax's dense attention, on one case of each mask kind (each comparison
# is one more compiled program; the einsum reference above is checked on every case).
DENSE_CASES = {"ragged_lengths", "causal_more_queries_padding", "random_mask", "gqa_causal_time_mask",
               "mqa_head_mask_per_head_steps"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES]
)
def test_values_and_gradients_match_references(name):
    t, s, h, h_kv, q_chunk, k_chunk, causal, kind, head_chunk = CASES[name]
    q, k, v, ct = qkv(len(name), t, s, h, h_kv)
    mask = make_mask(kind, t, s, h)

    got = value_and_vjp(
        lambda q, k, v: chunked_attention(
            q, k, v, mask=mask, causal=causal, q_chunk=q_chunk, k_chunk=k_chunk, head_chunk=head_chunk
        ),
        q, k, v, ct,
    )
    want = value_and_vjp(lambda q, k, v: reference_attention(q, k, v, mask, causal), q, k, v, ct)
    chex.assert_shape(got[0], (B, t, h, D))
    chex.assert_tree_all_finite(got)
    assert_close(got, want)
    if name not in DENSE_CASES and name not in SLOW_CASES:
        return

    full = mask
    if causal:
        full = causal_mask(t, s) if mask is None else (mask & causal_mask(t, s))
    plain = value_and_vjp(lambda q, k, v: dot_product_attention(q, k, v, mask=full), q, k, v, ct)
    assert_close(got, plain)


def test_fully_masked_rows_give_zero_values_and_gradients():
    t, s, h = 6, 9, 2
    q, k, v, ct = qkv(3, t, s, h, h)
    mask = np.ones((B, h, t, s), bool)
    mask[0, :, 2] = False  # one query row sees nothing
    mask[1] = False  # a whole sequence sees nothing (e.g. length 0)
    mask = jnp.asarray(mask)
    fn = lambda q, k, v: chunked_attention(q, k, v, mask=mask, q_chunk=4, k_chunk=4)
    out, (dq, dk, dv) = value_and_vjp(fn, q, k, v, ct)
    chex.assert_tree_all_finite((out, dq, dk, dv))
    np.testing.assert_array_equal(out[0, 2], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(dq[0, 2], 0.0)
    for grad in (dq, dk, dv):
        np.testing.assert_array_equal(grad[1], 0.0)
    assert_close((out, dq, dk, dv), value_and_vjp(lambda *a: reference_attention(*a, mask), q, k, v, ct))


def test_padded_keys_get_zero_gradient():
    q, k, v, ct = qkv(4, 8, 10, 2, 2)
    mask = padding_mask(jnp.array([10, 6]), 10)
    _, (_, dk, dv) = value_and_vjp(lambda q, k, v: chunked_attention(q, k, v, mask=mask, q_chunk=4, k_chunk=4), q, k, v, ct)
    np.testing.assert_array_equal(dk[1, 6:], 0.0)
    np.testing.assert_array_equal(dv[1, 6:], 0.0)


def test_check_grads_tiny():
    q, k, v, _ = qkv(5, 5, 6, 2, 1, d=4)
    mask = jnp.asarray(np.random.default_rng(0).random((1, 1, 5, 6)) < 0.8)
    fn = lambda q, k, v: chunked_attention(q, k, v, mask=mask, causal=True, q_chunk=2, k_chunk=4)
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(x, jnp.float64) for x in (q, k, v))
        assert fn(*args).dtype == jnp.float64
        check_grads(fn, args, order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_scale_argument_and_its_gradient():
    q, k, v, ct = qkv(6, 7, 7, 2, 2)
    assert_close(chunked_attention(q, k, v, scale=0.3, q_chunk=4, k_chunk=4),
                 reference_attention(q, k, v, scale=0.3))
    loss = lambda fn: jax.jit(jax.value_and_grad(lambda c: jnp.sum(fn(c) * ct)))
    got = loss(lambda c: chunked_attention(q, k, v, scale=c, q_chunk=4, k_chunk=4))(0.3)
    want = loss(lambda c: reference_attention(q, k, v, scale=c))(0.3)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_bfloat16_close_to_float32():
    t, s, h = 24, 24, 2
    q, k, v, ct = qkv(7, t, s, h, h)
    fn = lambda q, k, v: chunked_attention(q, k, v, causal=True, q_chunk=8, k_chunk=8)
    out32, grads32 = value_and_vjp(fn, q, k, v, ct)
    bf = lambda x: x.astype(jnp.bfloat16)
    out16, grads16 = value_and_vjp(fn, bf(q), bf(k), bf(v), bf(ct))
    assert out16.dtype == jnp.bfloat16
    assert all(g.dtype == jnp.bfloat16 for g in grads16)
    chex.assert_tree_all_finite((out16, grads16))
    assert_close(out16, out32, atol=3e-2, rtol=3e-2)
    assert_close(grads16, grads32, atol=6e-2, rtol=6e-2)


def test_vmap_and_unbatched():
    q, k, v, ct = qkv(8, 9, 10, 2, 2)
    fn = lambda q, k, v: chunked_attention(q, k, v, causal=True, q_chunk=4, k_chunk=4)
    # vmap over the batch of unbatched [t, h, d] calls equals the batched call
    assert_close(jax.vmap(fn)(q, k, v), fn(q, k, v))
    # vmap of the gradient (per-example gradients) equals the gradient of the summed loss
    grad = jax.grad(lambda q, k, v, c: jnp.sum(fn(q, k, v) * c), argnums=(0, 1, 2))
    assert_close(jax.jit(jax.vmap(grad))(q, k, v, ct), jax.jit(grad)(q, k, v, ct))


def test_unbatched_mask():
    q, k, v, _ = qkv(9, 6, 7, 2, 2)
    mask = jnp.asarray(np.random.default_rng(1).random((2, 6, 7)) < 0.7)  # [h, t, s]
    got = chunked_attention(q[0], k[0], v[0], mask=mask, q_chunk=4, k_chunk=4)
    assert_close(got, reference_attention(q[0], k[0], v[0], mask))


def test_xla_route_agrees_and_zeroes_empty_rows():
    t, s, h = 9, 9, 4
    q, k, v, ct = qkv(10, t, s, h, 2)
    mask = make_mask("random", t, s, h)  # has fully masked rows: jax.nn alone would average them
    want = value_and_vjp(lambda *a: reference_attention(*a, mask, True), q, k, v, ct)
    for impl in ("chunked", "xla"):
        got = value_and_vjp(
            lambda q, k, v: memory_efficient_attention(q, k, v, mask=mask, causal=True, implementation=impl, q_chunk=4, k_chunk=4),
            q, k, v, ct,
        )
        assert_close(got, want)


def test_auto_rule_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU branch of the rule")
    q = jnp.zeros((1, 8, 2, 4))
    assert _auto_implementation(q, q, q) == "dense"  # short: the dense route (tests/attention/test_routing.py)
    q = jnp.zeros((1, 1024, 2, 4))
    assert _auto_implementation(q, q, q) == "chunked"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mask=jnp.ones((B, 1, 1, 7), jnp.int32)), "boolean"),
        (dict(mask=jnp.ones((B, 3, 1, 7), bool)), "broadcast"),
        (dict(q_chunk=0), "q_chunk"),
        (dict(k_chunk=2.5), "k_chunk"),
        (dict(causal=1), "causal"),
        (dict(implementation="flash"), "implementation"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    q, k, v, _ = qkv(11, 5, 7, 2, 2)
    with pytest.raises(ValueError, match=match):
        memory_efficient_attention(q, k, v, **{"implementation": "chunked", **kwargs})


def test_bad_shapes_raise():
    q, k, v, _ = qkv(12, 5, 7, 4, 4)
    with pytest.raises(ValueError, match="must divide"):
        chunked_attention(q, k[:, :, :3], v[:, :, :3])
    with pytest.raises(ValueError, match="head_dim"):
        chunked_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="kv_time"):
        chunked_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="floating"):
        chunked_attention(q.astype(jnp.int32), k, v)
    with pytest.raises(ValueError, match="at least one"):
        chunked_attention(q[:, :0], k, v)


def _temp_bytes(fn, *shapes):
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        pytest.skip("memory_analysis is unavailable on this backend")
    return stats.temp_size_in_bytes


def _forward_backward(attention):
    def fn(q, k, v, ct):
        out, pullback = jax.vjp(attention, q, k, v)
        return pullback(ct)

    return fn


def test_memory_is_linear_and_far_below_the_plain_form():
    """Compiled temp memory of forward + backward (no execution): b1 h4 d64.

    The plain form holds [b, h, n, n] logits and weights (64 MiB each at n = 2048); the chunked
    form holds O(n d) arrays plus a few [q_chunk, k_chunk] blocks (4 MiB each at the default
    1024 x 1024, one head per step).
    """
    h, d = 4, 64
    chunked = _forward_backward(lambda q, k, v: chunked_attention(q, k, v))  # default chunks
    plain = _forward_backward(lambda q, k, v: reference_attention(q, k, v))
    seqjax_plain = _forward_backward(lambda q, k, v: dot_product_attention(q, k, v))
    temp = {n: _temp_bytes(chunked, *[(1, n, h, d)] * 4) for n in (2048, 4096)}
    plain_2048 = _temp_bytes(plain, *[(1, 2048, h, d)] * 4)
    seqjax_2048 = _temp_bytes(seqjax_plain, *[(1, 2048, h, d)] * 4)
    assert temp[2048] < plain_2048 / 4, (temp, plain_2048)
    assert temp[2048] < seqjax_2048 / 4, (temp, seqjax_2048)
    assert temp[4096] / temp[2048] < 2.5, temp  # ~2 (linear), not ~4 (quadratic)
