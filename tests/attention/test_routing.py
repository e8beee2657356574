"""The routes of ``memory_efficient_attention`` and the lean dense kernel against references.

References: a numpy loop over (batch, head, query) for the values, and jax autodiff of a plain
jnp form (kv heads repeated explicitly, masked entries -inf, empty rows zeroed by hand) for the
gradients; a finite-difference check of the dense kernel's hand-written VJP. The ``"auto"``
rule is tested as a function of the sizes (never by timing).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax.attention import chunked as chunked_module
from seqjax.attention import dense_attention, dot_product_attention
from seqjax.attention.chunked import (
    CPU_DENSE_MAX_BYTES,
    CPU_DENSE_MAX_SCORES,
    auto_implementation,
    memory_efficient_attention,
)

ROUTES = ("auto", "chunked", "dense", "xla")


def numpy_attention(q, k, v, allowed, scale):
    """Loop reference: ``q [b, t, h, d]``, ``k, v [b, s, h_kv, .]``, ``allowed [b, h, t, s]``."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b, t, h, _ = q.shape
    g = h // k.shape[2]
    out = np.zeros((b, t, h, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                ok = allowed[bi, hi, i]
                if not ok.any():
                    continue
                z = scale * k[bi, :, hi // g] @ q[bi, i, hi]
                w = np.exp(z[ok] - z[ok].max())
                out[bi, i, hi] = (w / w.sum()) @ v[bi, ok, hi // g]
    return out


def jnp_attention(q, k, v, allowed, scale):
    """The same function in jnp, differentiable (the gradient reference)."""
    g = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
    z = jnp.where(allowed, scale * jnp.einsum("bthd,bshd->bhts", q, k), -jnp.inf)
    m = jax.lax.stop_gradient(jnp.max(z, -1, keepdims=True))
    e = jnp.exp(z - jnp.where(jnp.isfinite(m), m, 0.0))
    total = e.sum(-1, keepdims=True)
    w = jnp.where(total > 0, e / jnp.where(total > 0, total, 1.0), 0.0)
    return jnp.einsum("bhts,bshd->bthd", w, v)


def inputs(seed, t, s, h, h_kv, b=2, d=8, dv=8):
    rng = np.random.default_rng(seed)
    shapes = ((b, t, h, d), (b, s, h_kv, d), (b, s, h_kv, dv), (b, t, h, dv))
    return tuple(jnp.asarray(rng.normal(size=x).astype(np.float32)) for x in shapes)


def allowed_of(mask, causal, b, h, t, s):
    allowed = np.ones((b, h, t, s), bool)
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask), (b, h, t, s))
    if causal:
        allowed &= np.tril(np.ones((t, s), bool))
    return allowed


def masks(h, t, s):
    rng = np.random.default_rng(3)
    random = rng.random((2, h, t, s)) < 0.35
    random[0, 0, 1] = False  # a row with no allowed key
    padding = np.ones((2, 1, 1, s), bool)
    padding[1, ..., s // 2:] = False
    per_head = rng.random((1, h, 1, s)) < 0.5
    return {"none": None, "random": random, "padding": padding, "per_head": per_head}


def _value_and_grads(fn, q, k, v, ct):
    @jax.jit
    def run(q, k, v, ct):
        out, pullback = jax.vjp(fn, q, k, v)
        return out, pullback(ct)

    return run(q, k, v, ct)


CASES = [  # (h, h_kv, mask, causal, scale): each mask kind, grouped heads, causal, scale
    (4, 4, "none", False, None),
    (4, 2, "random", True, 0.4),
    (4, 1, "padding", False, 0.4),
    (4, 2, "per_head", True, None),
]


@pytest.mark.parametrize("h, h_kv, mask_name, causal, scale", CASES)
def test_every_route_matches_the_references(h, h_kv, mask_name, causal, scale):
    t, s = 7, 9
    q, k, v, ct = inputs(h * 10 + h_kv, t, s, h, h_kv)
    mask = masks(h, t, s)[mask_name]
    sc = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    allowed = allowed_of(mask, causal, 2, h, t, s)
    want = numpy_attention(q, k, v, allowed, sc)
    jmask = None if mask is None else jnp.asarray(mask)

    def every_route(q, k, v):  # one compilation for all the routes and the reference
        outs = [memory_efficient_attention(q, k, v, mask=jmask, causal=causal, scale=scale,
                                           implementation=route, q_chunk=4, k_chunk=4)
                for route in ROUTES]
        return jnp.stack([jnp_attention(q, k, v, allowed, sc), *outs])

    @jax.jit
    def values_and_grads(q, k, v, ct):
        outs, pullback = jax.vjp(every_route, q, k, v)
        n = outs.shape[0]
        cotangents = jnp.zeros((n, *outs.shape), outs.dtype).at[jnp.arange(n), jnp.arange(n)].set(ct)
        return outs, jax.vmap(pullback)(cotangents)  # grads[j][i]: input j, output i

    outs, grads = values_and_grads(q, k, v, ct)
    grads = [[g[i] for g in grads] for i in range(outs.shape[0])]
    np.testing.assert_allclose(outs[0], want, atol=2e-5, rtol=2e-5)
    for i, route in enumerate(ROUTES, start=1):
        np.testing.assert_allclose(outs[i], want, atol=2e-5, rtol=2e-5, err_msg=route)
        for g, w in zip(grads[i], grads[0]):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=2e-5, err_msg=route)
            assert np.isfinite(np.asarray(g)).all()


def test_rows_with_no_key_give_zero_output_and_zero_gradient():
    q, k, v, ct = inputs(1, 5, 6, 2, 2)
    mask = np.ones((2, 2, 5, 6), bool)
    mask[:, :, 2] = False
    out, (dq, dk, dv) = _value_and_grads(lambda q, k, v: dense_attention(q, k, v, mask=jnp.asarray(mask)), q, k, v, ct)
    assert np.all(np.asarray(out)[:, 2] == 0) and np.all(np.asarray(dq)[:, 2] == 0)
    # a key is read by the other rows only: dropping row 2's cotangent changes nothing
    ct0 = ct.at[:, 2].set(0.0)
    _, (_, dk0, dv0) = _value_and_grads(lambda q, k, v: dense_attention(q, k, v, mask=jnp.asarray(mask)), q, k, v, ct0)
    np.testing.assert_allclose(dk, dk0, atol=1e-6)
    np.testing.assert_allclose(dv, dv0, atol=1e-6)


def test_dense_gradient_by_finite_differences():
    q, k, v, _ = inputs(2, 4, 5, 2, 1, b=1, d=3, dv=2)
    q, k, v = (x.astype(jnp.float64) for x in (q, k, v)) if jax.config.jax_enable_x64 else (q, k, v)
    mask = jnp.asarray(np.random.default_rng(0).random((1, 2, 4, 5)) < 0.7)
    fn = lambda q, k, v: dense_attention(q, k, v, mask=mask, causal=True, scale=0.7)
    check_grads(fn, (q, k, v), order=1, modes=("rev",), atol=2e-2, rtol=2e-2, eps=1e-2)


def test_dense_traced_scale_gets_its_gradient():
    q, k, v, ct = inputs(4, 6, 6, 4, 2)
    allowed = allowed_of(None, True, 2, 4, 6, 6)
    fns = [lambda sc: jnp_attention(q, k, v, allowed, sc),
           lambda sc: dense_attention(q, k, v, causal=True, scale=sc)] + [
        lambda sc, r=r: memory_efficient_attention(q, k, v, causal=True, scale=sc, implementation=r)
        for r in ("auto", "chunked", "xla")]
    grads = jax.jit(jax.grad(lambda sc: jnp.stack([jnp.sum(f(sc[i]) * ct) for i, f in enumerate(fns)]).sum()))(
        jnp.full(len(fns), 0.6))
    np.testing.assert_allclose(grads[1:], np.full(len(fns) - 1, grads[0]), rtol=1e-5)


def test_dense_equals_dot_product_attention_unbatched_bfloat16_and_vmap():
    q, k, v, _ = inputs(5, 6, 8, 4, 2)
    mask = jnp.asarray(np.random.default_rng(1).random((4, 6, 8)) < 0.6)  # [h, t, s], unbatched
    np.testing.assert_allclose(dense_attention(q[0], k[0], v[0], mask=mask),
                               dot_product_attention(q[0], k[0], v[0], mask=mask), atol=1e-6)
    batched = jax.vmap(lambda q, k, v: dense_attention(q, k, v, causal=True))(q, k, v)
    np.testing.assert_allclose(batched, dense_attention(q, k, v, causal=True), atol=1e-6)
    low = dense_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)), causal=True)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(low.astype(jnp.float32), dense_attention(q, k, v, causal=True), atol=3e-2)


def test_dense_bad_arguments_raise():
    q, k, v, _ = inputs(6, 5, 7, 2, 2)
    with pytest.raises(ValueError, match="causal"):
        dense_attention(q, k, v, causal=1)
    with pytest.raises(ValueError, match="boolean"):
        dense_attention(q, k, v, mask=jnp.ones((2, 1, 1, 7), jnp.int32))
    with pytest.raises(ValueError, match="broadcast"):
        dense_attention(q, k, v, mask=jnp.ones((2, 3, 1, 7), bool))
    with pytest.raises(ValueError, match="head_dim"):
        dense_attention(q, k[..., :3], v)


def _square_matrix_ops(fn, n, h=2, d=8):
    x = jnp.zeros((2, n, h, d))

    def step(q, k, v, ct):
        out, pullback = jax.vjp(fn, q, k, v)
        return out, pullback(ct)

    text = jax.jit(step).lower(x, x, x, x).compile().as_text()
    entry = text[text.index("ENTRY"):]
    shape = re.compile(rf"\b{n},{n}\]")
    return [line.split(" = ")[0].strip() for line in entry.splitlines()
            if " = " in line and shape.search(line.split(" = ")[1].split("(")[0])]


def test_dense_compiles_without_copying_or_transposing_the_square_matrices(causal=True):
    """The layout claim of dense_attention's docstring, in the compiled HLO (XLA CPU)."""
    if jax.default_backend() != "cpu":
        pytest.skip("an XLA CPU layout claim")
    n = 48
    ops = _square_matrix_ops(lambda q, k, v: dense_attention(q, k, v, causal=causal), n)
    assert ops and not [op for op in ops if "copy" in op or "transpose" in op], ops
    plain = _square_matrix_ops(lambda q, k, v: dot_product_attention(q, k, v), n)
    assert not [op for op in plain if "copy" in op or "transpose" in op], plain
    # the check can fail: with a size-1 group axis, XLA copies the weights to another layout
    grouped = _square_matrix_ops(grouped_axis_attention, n)
    assert [op for op in grouped if "copy" in op or "transpose" in op], grouped


def grouped_axis_attention(q, k, v):
    """Attention with the query heads grouped on their own axis ``[b, h_kv, g, t, s]`` (g = 1)."""
    b, t, h, d = q.shape
    logits = jnp.einsum("btkgd,bskd->bkgts", q.reshape(b, t, h, 1, d), k)
    w = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bkgts,bskv->btkgv", w, v).reshape(b, t, h, -1)


# --- the rule --------------------------------------------------------------------------------


def test_cpu_rule_dense_below_the_crossover_chunked_above():
    side = int(np.sqrt(CPU_DENSE_MAX_SCORES))
    assert auto_implementation(2, 8, 128, 128, backend="cpu") == "dense"
    assert auto_implementation(2, 8, 256, 256, backend="cpu") == "dense"
    assert auto_implementation(1, 1, side, side, backend="cpu") == "dense"
    assert auto_implementation(1, 1, side, side + 1, backend="cpu") == "chunked"  # t s too big
    assert auto_implementation(2, 8, 1024, 1024, backend="cpu") == "chunked"
    assert auto_implementation(2, 8, 4096, 4096, backend="cpu") == "chunked"
    assert auto_implementation(1, 1, 1, CPU_DENSE_MAX_SCORES, backend="cpu") == "dense"  # decoding
    # many heads: the weights' bytes, not t s, send it to the chunked route
    heads = CPU_DENSE_MAX_BYTES // (4 * 64 * 64)
    assert auto_implementation(1, heads, 64, 64, backend="cpu") == "dense"
    assert auto_implementation(1, heads + 1, 64, 64, backend="cpu") == "chunked"
    assert auto_implementation(2, 8, 256, 256, dtype=jnp.bfloat16, backend="cpu") == "dense"


def test_accelerator_rule_as_documented():
    assert auto_implementation(2, 8, 1024, 1024, dtype=jnp.bfloat16, backend="gpu") == "cudnn"
    assert auto_implementation(2, 8, 1024, 1024, dtype=jnp.float32, backend="gpu") == "xla"
    assert auto_implementation(2, 8, 1024, 1024, backend="tpu") == "xla"
    assert auto_implementation(8, 16, 4096, 4096, backend="tpu") == "chunked"  # 8 GiB of scores


def test_auto_route_calls_what_the_rule_picks(monkeypatch):
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU branch of the rule")
    calls = []
    real_dense, real_chunked = chunked_module.dense_attention, chunked_module.chunked_attention
    monkeypatch.setattr(chunked_module, "dense_attention", lambda *a, **kw: calls.append("dense") or real_dense(*a, **kw))
    monkeypatch.setattr(chunked_module, "chunked_attention", lambda *a, **kw: calls.append("chunked") or real_chunked(*a, **kw))
    short = jnp.zeros((1, 16, 2, 4))
    long = jax.ShapeDtypeStruct((1, 1024, 1, 4), jnp.float32)
    memory_efficient_attention(short, short, short)
    jax.eval_shape(lambda x: memory_efficient_attention(x, x, x), long)
    assert calls == ["dense", "chunked"]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": 0}, "batch"), ({"q_len": 2.5}, "q_len"), ({"backend": 3}, "backend"),
])
def test_rule_bad_arguments_raise(kwargs, match):
    args = {"batch": 1, "heads": 1, "q_len": 4, "kv_len": 4, "backend": "cpu"} | kwargs
    with pytest.raises(ValueError, match=match):
        auto_implementation(**args)
