"""Attention score functions for one query, as in the recurrent encoder-decoder
(Bahdanau et al. 2015; Luong et al. 2015).

A score compares a query ``q`` ``[d_q]`` (the decoder state ``s_{i-1}``) with every key ``k_j``
(the encoder states ``h_j``, ``keys`` ``[s, d_k]``) and gives logits ``e`` ``[s]``; :func:`attend`
turns them into weights and a context vector::

    dot          e_j = q . k_j                              (d_q = d_k)
    scaled_dot   e_j = q . k_j / sqrt(d_k)                  (d_q = d_k)
    general      e_j = q^T W k_j                            (Luong et al. 2015, "general"/bilinear)
    additive     e_j = v^T tanh(W_q q + W_k k_j + b)        (Bahdanau et al. 2015; Luong's "concat")

    a_j = exp(e_j) / sum_{l: mask_l} exp(e_l)   (0 where masked),   c = sum_j a_j v_j

The general score is not in the seeds (their notes flag it as an extension). The additive score
with one matrix on the concatenation, ``v^T tanh(W [q; k])``, is the same function with
``W = [W_q, W_k]``.

Each score is a :class:`Score`: ``init(key, query_features, key_features, ...) -> params``,
``prepare(params, keys)`` (the part that does not depend on the query, computed once per source
sequence) and ``score(params, query, prepared) -> [s]``. Calling the bundle,
``score_fn(params, query, keys)``, does both; a recurrent decoder calls ``prepare`` once outside
its scan and passes ``score_fn.score`` with the prepared keys to :func:`attend` at every step.

Parameter layouts (row-vector convention, ``x @ W``)::

    dot, scaled_dot:  {}                                   (no parameters)
    general:          w: [d_q, d_k]
    additive:         w_query: [d_q, a], w_key: [d_k, a], v: [a], and b: [a] if bias=True

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.attention import additive, attend
    >>> score = additive()
    >>> params = score.init(jax.random.key(0), 4, 6, attention_features=8)
    >>> keys = jnp.ones((5, 6))
    >>> context, weights = attend(score, params, jnp.ones(4), keys, keys, jnp.arange(5) < 3)
    >>> context.shape, weights.shape
    ((6,), (5,))
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.primitives import init_weights
from seqjax.attention.masks import masked_softmax

Params = dict[str, jax.Array]
ScoreFn = Callable[[Params, jax.Array, jax.Array], jax.Array]


class Score(NamedTuple):
    """A score function as pure pieces (see the module docstring); callable as
    ``score_fn(params, query [d_q], keys [s, d_k]) -> logits [s]``."""

    init: Callable[..., Params]
    prepare: Callable[[Params, jax.Array], jax.Array]
    score: ScoreFn
    name: str = "score"

    def __call__(self, params: Params, query: jax.Array, keys: jax.Array) -> jax.Array:
        return self.score(params, query, self.prepare(params, keys))


def _check_query(query: jax.Array, features: int | None) -> jax.Array:
    query = _checks.floating_array("query", query, ndim=1, layout="[query_features]")
    if features is not None:
        _checks.feature_size("query", query, features)
    return query


def _check_keys(keys: jax.Array, features: int | None, name: str = "keys") -> jax.Array:
    keys = _checks.floating_array(name, keys, ndim=2, layout="[kv_time, key_features]")
    if features is not None:
        _checks.feature_size(name, keys, features)
    return keys


# --- dot and scaled dot ------------------------------------------------------------------------


def no_params_init(key: jax.Array, query_features: int, key_features: int) -> Params:
    """The (empty) parameters of the dot and scaled-dot scores; checks ``d_q == d_k``."""
    if query_features != key_features:
        raise ValueError(
            f"dot-product scores need query_features == key_features; got {query_features} and "
            f"{key_features}. Use general() or additive() for different sizes."
        )
    return {}


def _identity_prepare(params: Params, keys: jax.Array) -> jax.Array:
    return _check_keys(keys, None)


def dot_score(params: Params, query: jax.Array, keys: jax.Array) -> jax.Array:
    """``e_j = q . k_j``; ``query`` ``[d]``, ``keys`` ``[s, d]`` -> ``[s]`` (``params`` unused)."""
    query = _check_query(query, None)
    keys = _check_keys(keys, query.shape[-1])
    return keys @ query


def scaled_dot_score(params: Params, query: jax.Array, keys: jax.Array) -> jax.Array:
    """``e_j = q . k_j / sqrt(d)``; ``query`` ``[d]``, ``keys`` ``[s, d]`` -> ``[s]``."""
    logits = dot_score(params, query, keys)
    return logits / math.sqrt(keys.shape[-1])


# --- general (Luong, bilinear) -----------------------------------------------------------------


def general_init(key: jax.Array, query_features: int, key_features: int) -> Params:
    """``w`` ``[d_q, d_k]``, Xavier (Glorot) uniform."""
    _checks.positive_int("query_features", query_features)
    _checks.positive_int("key_features", key_features)
    return {"w": init_weights(key, [(query_features, key_features)])[0]}


def general_prepare(params: Params, keys: jax.Array) -> jax.Array:
    """``W k_j`` for all keys: ``[s, d_q]`` (independent of the query)."""
    keys = _check_keys(keys, params["w"].shape[1])
    return keys @ params["w"].T.astype(keys.dtype)


def general_score(params: Params, query: jax.Array, prepared: jax.Array) -> jax.Array:
    """``e_j = q^T W k_j`` from ``prepared = general_prepare(params, keys)`` ``[s, d_q]``."""
    query = _check_query(query, params["w"].shape[0])
    prepared = _check_keys(prepared, params["w"].shape[0], "prepared keys")
    return prepared @ query


# --- additive (Bahdanau, concat) ---------------------------------------------------------------


def additive_init(
    key: jax.Array,
    query_features: int,
    key_features: int,
    *,
    attention_features: int | None = None,
    bias: bool = False,
) -> Params:
    """Xavier-uniform ``w_query`` ``[d_q, a]``, ``w_key`` ``[d_k, a]``, ``v`` ``[a]`` (as an
    ``[a, 1]`` matrix); ``b`` ``[a]`` zero if ``bias``. ``a`` defaults to ``key_features``."""
    _checks.positive_int("query_features", query_features)
    _checks.positive_int("key_features", key_features)
    a = key_features if attention_features is None else attention_features
    _checks.positive_int("attention_features", a)
    w_query, w_key, v = init_weights(key, [(query_features, a), (key_features, a), (a, 1)])
    params = {"w_query": w_query, "w_key": w_key, "v": v[:, 0]}
    if bias:
        params["b"] = jnp.zeros((a,), jnp.float32)
    return params


def additive_prepare(params: Params, keys: jax.Array) -> jax.Array:
    """``W_k k_j + b`` for all keys: ``[s, a]`` (independent of the query)."""
    keys = _check_keys(keys, params["w_key"].shape[0])
    projected = keys @ params["w_key"].astype(keys.dtype)
    if "b" in params:
        projected = projected + params["b"].astype(keys.dtype)
    return projected


def additive_score(params: Params, query: jax.Array, prepared: jax.Array) -> jax.Array:
    """``e_j = v^T tanh(W_q q + prepared_j)`` from ``prepared = additive_prepare(params, keys)``."""
    query = _check_query(query, params["w_query"].shape[0])
    prepared = _check_keys(prepared, params["w_query"].shape[1], "prepared keys")
    hidden = jnp.tanh(query @ params["w_query"].astype(query.dtype) + prepared)
    return hidden @ params["v"].astype(hidden.dtype)


# --- the bundles -------------------------------------------------------------------------------


def dot() -> Score:
    """``e_j = q . k_j`` (no parameters)."""
    return Score(no_params_init, _identity_prepare, dot_score, "dot")


def scaled_dot() -> Score:
    """``e_j = q . k_j / sqrt(d)`` (no parameters)."""
    return Score(no_params_init, _identity_prepare, scaled_dot_score, "scaled_dot")


def general() -> Score:
    """Luong's general (bilinear) score ``e_j = q^T W k_j``."""
    return Score(general_init, general_prepare, general_score, "general")


bilinear = general


def additive() -> Score:
    """Bahdanau's additive (MLP, concat) score ``e_j = v^T tanh(W_q q + W_k k_j + b)``."""
    return Score(additive_init, additive_prepare, additive_score, "additive")


# --- attend ------------------------------------------------------------------------------------


def attend(
    score_fn: ScoreFn,
    params: Params,
    query: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Attention for one query: ``(context [d_v], weights [s])``.

    Args:
      score_fn: ``(params, query, keys) -> logits [s]``: a :class:`Score`, one of the
        ``*_score`` functions, or any function with that signature.
      params: the score's parameters.
      query: ``[d_q]``.
      keys: ``[s, d_k]`` (or keys already prepared for ``score_fn``).
      values: ``[s, d_v]``.
      mask: ``[s]`` boolean, True = may attend; with no allowed key, context and weights are 0.

    The softmax runs in float32; context and weights come back in the values' dtype.
    """
    keys = _checks.floating_array("keys", keys, ndim=2, layout="[kv_time, key_features]")
    values = _checks.floating_array("values", values, ndim=2, layout="[kv_time, value_features]")
    s = keys.shape[0]
    if values.shape[0] != s:
        raise ValueError(
            f"values has {values.shape[0]} positions (shape {tuple(values.shape)}) but keys has {s}."
        )
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_ or mask.shape != (s,):
            raise ValueError(
                f"mask must be boolean with shape [kv_time] = ({s},) (True = may attend); got "
                f"shape {tuple(mask.shape)} and dtype {mask.dtype}."
            )
    logits = score_fn(params, query, keys)
    if logits.shape != (s,):
        raise ValueError(f"score_fn must return logits of shape ({s},); got {tuple(logits.shape)}.")
    weights = masked_softmax(logits, mask).astype(values.dtype)
    return weights @ values, weights


def attend_sequence(
    score_fn: ScoreFn,
    params: Params,
    queries: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """:func:`attend` for a batch of query sequences: ``(context [b, t, d_v], weights [b, t, s])``.

    Args:
      queries: ``[b, t, d_q]``.
      keys: ``[b, s, d_k]``.
      values: ``[b, s, d_v]``.
      mask: boolean broadcastable to ``[b, t, s]`` (for key padding use
        ``sequence_mask(lengths, s)[:, None, :]``).

    With a :class:`Score`, its ``prepare`` runs once per sequence, not once per query.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.attention import general, attend_sequence
        >>> score = general()
        >>> params = score.init(jax.random.key(0), 3, 4)
        >>> ctx, w = attend_sequence(score, params, jnp.ones((2, 5, 3)), jnp.ones((2, 7, 4)),
        ...                          jnp.ones((2, 7, 4)))
        >>> ctx.shape, w.shape
        ((2, 5, 4), (2, 5, 7))
    """
    queries = _checks.floating_array("queries", queries, ndim=3, layout="[batch, time, query_features]")
    keys = _checks.floating_array("keys", keys, ndim=3, layout="[batch, kv_time, key_features]")
    values = _checks.floating_array("values", values, ndim=3, layout="[batch, kv_time, value_features]")
    b, t, _ = queries.shape
    s = keys.shape[1]
    if keys.shape[0] != b or values.shape[:2] != (b, s):
        raise ValueError(
            f"keys and values must be [batch, kv_time, ...] with batch {b} and the same kv_time; got "
            f"queries {tuple(queries.shape)}, keys {tuple(keys.shape)}, values {tuple(values.shape)}."
        )
    if mask is None:
        mask = jnp.ones((b, t, s), bool)
    else:
        mask = _checks.boolean_mask("mask", mask, (b, t, s), "[batch, time, kv_time]")
        mask = jnp.broadcast_to(mask, (b, t, s))

    if isinstance(score_fn, Score):
        prepare, score = score_fn.prepare, score_fn.score
    else:
        prepare, score = (lambda p, k: k), score_fn

    def one_sequence(q_seq, k_seq, v_seq, m_seq):
        prepared = prepare(params, k_seq)
        return jax.vmap(lambda q, m: attend(score, params, q, prepared, v_seq, m))(q_seq, m_seq)

    return jax.vmap(one_sequence)(queries, keys, values, mask)
