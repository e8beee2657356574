"""Score functions (dot, scaled dot, Luong general, Bahdanau additive) and ``attend`` against
plain numpy."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (
    Score,
    additive,
    additive_score,
    attend,
    attend_sequence,
    bilinear,
    dot,
    dot_score,
    general,
    scaled_dot,
    scaled_dot_score,
    sequence_mask,
)

ATOL = RTOL = 1e-5
S, DQ, DK, DV, A = 6, 4, 5, 3, 7
RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=DQ).astype(np.float32)
KEYS = RNG.normal(size=(S, DK)).astype(np.float32)
SAME_KEYS = RNG.normal(size=(S, DQ)).astype(np.float32)
VALUES = RNG.normal(size=(S, DV)).astype(np.float32)
MASK = np.array([True, True, False, True, False, True])


def np_softmax(e, mask=None):
    e = np.asarray(e, np.float64)
    if mask is not None:
        e = np.where(mask, e, -np.inf)
    w = np.exp(e - e.max())
    return w / w.sum()


def test_dot_and_scaled_dot_against_numpy():
    np.testing.assert_allclose(dot()({}, QUERY, SAME_KEYS), SAME_KEYS @ QUERY, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(
        scaled_dot()({}, QUERY, SAME_KEYS), SAME_KEYS @ QUERY / np.sqrt(DQ), atol=ATOL, rtol=RTOL
    )
    np.testing.assert_allclose(dot_score({}, QUERY, SAME_KEYS), SAME_KEYS @ QUERY, atol=ATOL, rtol=RTOL)
    assert dot().init(jax.random.key(0), DQ, DQ) == {}


def test_general_against_numpy():
    score = general()
    assert bilinear is general
    params = score.init(jax.random.key(0), DQ, DK)
    chex.assert_shape(params["w"], (DQ, DK))
    w = np.asarray(params["w"], np.float64)
    expected = np.array([QUERY @ w @ k for k in KEYS])  # e_j = s^T W h_j
    np.testing.assert_allclose(score(params, QUERY, KEYS), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("bias", [False, True])
def test_additive_against_numpy(bias):
    score = additive()
    params = score.init(jax.random.key(1), DQ, DK, attention_features=A, bias=bias)
    if bias:
        params["b"] = params["b"] + 0.3
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    b = p.get("b", 0.0)
    expected = np.array([p["v"] @ np.tanh(QUERY @ p["w_query"] + k @ p["w_key"] + b) for k in KEYS])
    np.testing.assert_allclose(score(params, QUERY, KEYS), expected, atol=ATOL, rtol=RTOL)
    # Luong's "concat" form v^T tanh(W [s; h]) with W = [W_q; W_k] is the same function.
    w_cat = np.concatenate([p["w_query"], p["w_key"]], axis=0)
    concat = np.array([p["v"] @ np.tanh(np.concatenate([QUERY, k]) @ w_cat + b) for k in KEYS])
    np.testing.assert_allclose(score(params, QUERY, KEYS), concat, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("make", [dot, scaled_dot, general, additive], ids=lambda f: f.__name__)
def test_attend_against_numpy_with_mask(make):
    score = make()
    keys = SAME_KEYS if make in (dot, scaled_dot) else KEYS
    params = score.init(jax.random.key(2), DQ, keys.shape[1])
    logits = np.asarray(score(params, QUERY, keys), np.float64)
    context, weights = attend(score, params, QUERY, keys, VALUES, MASK)
    chex.assert_shape((context, weights), ((DV,), (S,)))
    ref_w = np_softmax(logits, MASK)
    np.testing.assert_allclose(weights, ref_w, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(context, ref_w @ VALUES, atol=ATOL, rtol=RTOL)
    assert np.all(np.asarray(weights)[~MASK] == 0)
    # Unmasked: weights sum to one.
    _, w_all = attend(score, params, QUERY, keys, VALUES)
    np.testing.assert_allclose(w_all, np_softmax(logits), atol=ATOL, rtol=RTOL)


def test_prepared_keys_give_the_same_result():
    score = additive()
    params = score.init(jax.random.key(3), DQ, DK)
    prepared = score.prepare(params, KEYS)
    chex.assert_shape(prepared, (S, DK))  # attention_features defaults to key_features
    full = attend(score, params, QUERY, KEYS, VALUES, MASK)
    hoisted = attend(score.score, params, QUERY, prepared, VALUES, MASK)
    chex.assert_trees_all_close(full, hoisted, atol=1e-6)
    np.testing.assert_allclose(additive_score(params, QUERY, prepared), score(params, QUERY, KEYS), atol=1e-6)


def test_fully_masked_gives_zeros_and_finite_gradients():
    score = additive()
    params = score.init(jax.random.key(4), DQ, DK)
    none = np.zeros(S, bool)
    context, weights = attend(score, params, QUERY, KEYS, VALUES, none)
    np.testing.assert_array_equal(context, 0.0)
    np.testing.assert_array_equal(weights, 0.0)
    loss = lambda p, q: jnp.sum(attend(score, p, q, KEYS, VALUES, none)[0])
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, QUERY)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf))


@pytest.mark.parametrize("make", [general, additive], ids=lambda f: f.__name__)
def test_attend_sequence_equals_loop_of_attend(make):
    score = make()
    params = score.init(jax.random.key(5), DQ, DK)
    b, t = 2, 3
    rng = np.random.default_rng(5)
    queries = rng.normal(size=(b, t, DQ)).astype(np.float32)
    keys = rng.normal(size=(b, S, DK)).astype(np.float32)
    values = rng.normal(size=(b, S, DV)).astype(np.float32)
    mask = sequence_mask(jnp.array([S, 2]), S)[:, None, :]
    context, weights = attend_sequence(score, params, queries, keys, values, mask)
    chex.assert_shape((context, weights), ((b, t, DV), (b, t, S)))
    for i in range(b):
        for j in range(t):
            c, w = attend(score, params, queries[i, j], keys[i], values[i], mask[i, 0])
            np.testing.assert_allclose(context[i, j], c, atol=1e-6)
            np.testing.assert_allclose(weights[i, j], w, atol=1e-6)
    # A plain score function (no prepare) works too.
    plain = attend_sequence(score.__call__, params, queries, keys, values, mask)
    chex.assert_trees_all_close(plain, (context, weights), atol=1e-6)


def test_attend_inside_scan_like_a_recurrent_decoder():
    score = additive()
    params = score.init(jax.random.key(6), DQ, DK)
    prepared = score.prepare(params, KEYS)  # once per source sequence, outside the scan
    queries = np.random.default_rng(6).normal(size=(4, DQ)).astype(np.float32)

    def step(carry, q):
        context, weights = attend(score.score, params, q, prepared, VALUES, MASK)
        return carry + weights, context

    total, contexts = jax.jit(lambda qs: jax.lax.scan(step, jnp.zeros(S), qs))(queries)
    chex.assert_shape(contexts, (4, DV))
    np.testing.assert_allclose(total, np.where(MASK, total, 0))
    np.testing.assert_allclose(total.sum(), 4.0, atol=1e-5)


def test_score_is_a_bundle():
    assert isinstance(additive(), Score) and additive().name == "additive"
    np.testing.assert_allclose(scaled_dot_score({}, QUERY, SAME_KEYS), scaled_dot()({}, QUERY, SAME_KEYS))


def test_errors():
    params = general().init(jax.random.key(0), DQ, DK)
    with pytest.raises(ValueError, match="query_features == key_features"):
        dot().init(jax.random.key(0), DQ, DK)
    with pytest.raises(ValueError, match="keys has 5 features"):
        dot()({}, QUERY, KEYS)
    with pytest.raises(ValueError, match="keys has 4 features"):
        general()(params, QUERY, SAME_KEYS)
    with pytest.raises(ValueError, match="query has 5 features"):
        general()(params, KEYS[0], KEYS)
    with pytest.raises(ValueError, match="query must have rank 1"):
        dot()({}, SAME_KEYS, SAME_KEYS)
    with pytest.raises(ValueError, match=r"mask must be boolean with shape \[kv_time\]"):
        attend(dot(), {}, QUERY, SAME_KEYS, VALUES, MASK.astype(np.int32))
    with pytest.raises(ValueError, match=r"mask must be boolean with shape \[kv_time\]"):
        attend(dot(), {}, QUERY, SAME_KEYS, VALUES, MASK[:3])
    with pytest.raises(ValueError, match="values has 5 positions"):
        attend(dot(), {}, QUERY, SAME_KEYS, VALUES[:5])
    with pytest.raises(ValueError, match="must have rank 3"):
        attend_sequence(dot(), {}, SAME_KEYS[None], SAME_KEYS[None], VALUES[None], np.ones((S, 2), bool))
    with pytest.raises(ValueError, match="attention_features"):
        additive().init(jax.random.key(0), DQ, DK, attention_features=0)
