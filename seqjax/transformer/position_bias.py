"""Position biases on the self-attention logits of a stack: ALiBi and T5's bucketed relative
position bias, computed once per stack call (for the full forward and for cached decoding alike)
and added to every layer's logits.

**ALiBi** (Press et al. 2022, "Train Short, Test Long"): head ``n`` adds ``-m_n |i - j|`` to the
logit of the query at position ``i`` and the key at ``j`` (slopes
:func:`~seqjax.attention.alibi_slopes`); no position embeddings at all.

**T5 relative position bias** (Raffel et al. 2020, section 2.1): a learned scalar per head and
bucket of the relative position ``r = j - i`` (key minus query), shared by every layer of a
stack (T5 stores it in the first layer and reuses it)::

    logits_hij += table[bucket(j - i), h]                     table [num_buckets, h]

Buckets (T5's ``_relative_position_bucket``): bidirectional attention gives half the buckets to
``r > 0``; causal attention only looks back and uses ``-min(r, 0)``. Of each half, the first
``n / 2`` buckets hold the distances ``0 .. n/2 - 1`` exactly, the rest grow logarithmically up
to ``max_distance``; farther distances share the last bucket::

    bucket(d) = d                                                              d < n/2
              = min(n - 1, n/2 + floor(log(d / (n/2)) / log(max_distance / (n/2)) * (n - n/2)))

(``n`` the buckets of a half). Unlike T5, seqjax's attention keeps the ``1 / sqrt(d_k)`` scaling
of the logits (T5 folds it into the init); the bias is added after it.

Both depend only on the absolute positions of queries and keys, so a KV cache stays valid: with a
cache the queries sit at ``cache["index"] + i`` and the keys at ``0 .. T - 1`` (the slots), and
the stack computes the ``[b, h, t, T]`` bias from them. The stacks
(:func:`~seqjax.transformer.encoder_stack`, :func:`~seqjax.transformer.decoder_stack`) call
:func:`position_bias` for ``spec.positional`` in ``("alibi", "relative")``; the stack parameters
of a ``"relative"`` spec hold ``"relative_bias"`` (:func:`relative_bias_init`) beside
``"layers"``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init, init_stack_cache
    >>> from seqjax.transformer.position_bias import relative_bias_init, relative_position_bucket
    >>> relative_position_bucket(jnp.array([-3, -1, 0, 1, 3, 200]), num_buckets=8, max_distance=16).tolist()
    [2, 1, 0, 5, 6, 7]
    >>> spec = TransformerSpec(num_heads=2, norm_first=True, causal=True, positional="relative", relative_buckets=8)
    >>> params = encoder_stack_init(jax.random.key(0), 2, 8, 2, 16, final_norm=True)
    >>> params["relative_bias"] = relative_bias_init(jax.random.key(1), spec)
    >>> x = jax.random.normal(jax.random.key(2), (1, 5, 8))
    >>> stack = jax.jit(encoder_stack, static_argnums=0)  # the spec is static
    >>> cache, y = stack(spec, params, x[:, :3], cache=init_stack_cache(spec, params, 1, 5))
    >>> cache, z = stack(spec, params, x[:, 3:], cache=cache)
    >>> bool(jnp.allclose(jnp.concatenate([y, z], 1), stack(spec, params, x), atol=1e-5))
    True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.attention.positional import alibi_slopes
from seqjax.transformer.cache import query_positions
from seqjax.transformer.spec import TransformerSpec

BIAS_SCHEMES = ("alibi", "relative")
"""The values of ``TransformerSpec.positional`` that add a bias to the attention logits."""


def relative_position_bucket(relative_position: jax.Array, *, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> jax.Array:
    """T5's bucket of each relative position ``r = key - query`` (module docstring), int32 of
    ``relative_position``'s shape, in ``[0, num_buckets)``.

    Args:
      relative_position: integer array of ``j - i``.
      bidirectional: half the buckets for ``r > 0`` (encoders); False: only ``r <= 0`` counts
        (causal decoders; every ``r > 0`` is bucket 0, masked anyway).
      num_buckets: all buckets (T5: 32); must leave at least 2 per half.
      max_distance: the distance from which on every position shares the last bucket (T5: 128).
    """
    _checks.positive_int("num_buckets", num_buckets)
    _checks.positive_int("max_distance", max_distance)
    n = num_buckets // 2 if bidirectional else num_buckets
    if n < 2:
        raise ValueError(f"num_buckets = {num_buckets} is too few: need at least {4 if bidirectional else 2} "
                         f"({'2 per direction' if bidirectional else 'an exact and a logarithmic one'}).")
    r = jnp.asarray(relative_position).astype(jnp.int32)
    buckets = jnp.zeros_like(r)
    if bidirectional:
        buckets = buckets + (r > 0).astype(jnp.int32) * n
        d = jnp.abs(r)
    else:
        d = -jnp.minimum(r, 0)
    max_exact = n // 2
    if max_distance <= max_exact:
        raise ValueError(f"max_distance = {max_distance} must exceed the exact buckets ({max_exact}).")
    log_ratio = jnp.log(jnp.maximum(d, 1).astype(jnp.float32) / max_exact) / math.log(max_distance / max_exact)
    large = jnp.minimum(max_exact + (log_ratio * (n - max_exact)).astype(jnp.int32), n - 1)
    return buckets + jnp.where(d < max_exact, d, large)


def relative_bias_init(key: jax.Array, spec: TransformerSpec, *, stddev: float = 0.02) -> jax.Array:
    """The learned table ``[spec.relative_buckets, spec.num_heads]`` of a ``"relative"`` spec,
    drawn N(0, stddev^2)."""
    _checks.positive_float("stddev", stddev)
    return stddev * jax.random.normal(key, (spec.relative_buckets, spec.num_heads), jnp.float32)


def _positions(q_positions: Any) -> jax.Array:
    q = jnp.asarray(q_positions)
    if q.ndim not in (1, 2):
        raise ValueError(f"q_positions must have shape [time] or [batch, time]; got {tuple(q.shape)}.")
    return q if q.ndim == 2 else q[None]


def alibi_position_bias(num_heads: int, q_positions: Any, kv_len: int) -> jax.Array:
    """``-m_h |i - j|`` ``[b or 1, h, t, s]`` for queries at ``q_positions`` (``[t]`` or
    ``[b, t]``) and keys at ``0 .. kv_len - 1``; equals
    :func:`~seqjax.attention.alibi_bias` for ``q_positions = offset + arange(t)``."""
    q = _positions(q_positions)
    distance = jnp.abs(q[:, :, None] - jnp.arange(kv_len)[None, None, :]).astype(jnp.float32)
    return -alibi_slopes(num_heads)[None, :, None, None] * distance[:, None]


def relative_position_bias(table: jax.Array, q_positions: Any, kv_len: int, *, bidirectional: bool,
                           max_distance: int = 128) -> jax.Array:
    """``table[bucket(j - i), h]`` as ``[b or 1, h, t, s]`` for queries at ``q_positions``
    (``[t]`` or ``[b, t]``) and keys at ``0 .. kv_len - 1``."""
    table = _checks.floating_array("relative_bias", table, ndim=2, layout="[num_buckets, heads]")
    q = _positions(q_positions)
    relative = jnp.arange(kv_len)[None, None, :] - q[:, :, None]
    buckets = relative_position_bucket(relative, bidirectional=bidirectional, num_buckets=table.shape[0],
                                       max_distance=max_distance)
    return jnp.moveaxis(table[buckets], -1, 1)  # [b, t, s, h] -> [b, h, t, s]


def position_bias(spec: TransformerSpec, params: Any, q_positions: Any, kv_len: int) -> jax.Array | None:
    """The bias that ``spec.positional`` adds to every layer's self-attention logits (None for
    ``"absolute"`` and ``"rope"``): ``[b or 1, h, t, kv_len]``; ``params`` are the stack's (the
    ``"relative_bias"`` table of a ``"relative"`` spec). T5's buckets are bidirectional unless
    ``spec.causal``."""
    if spec.positional == "alibi":
        return alibi_position_bias(spec.num_heads, q_positions, kv_len)
    if spec.positional != "relative":
        return None
    if "relative_bias" not in params:
        raise ValueError("a spec with positional='relative' needs the stack parameter 'relative_bias' "
                         "[relative_buckets, num_heads] (seqjax.transformer.position_bias.relative_bias_init).")
    table = params["relative_bias"]
    if tuple(table.shape) != (spec.relative_buckets, spec.num_heads):
        raise ValueError(f"params['relative_bias'] must have shape [relative_buckets, num_heads] = "
                         f"{(spec.relative_buckets, spec.num_heads)}; got {tuple(table.shape)}.")
    return relative_position_bias(table, q_positions, kv_len, bidirectional=not spec.causal,
                                  max_distance=spec.relative_max_distance)


def check_layer_positional(spec: TransformerSpec, bias: Any, what: str) -> None:
    """Refuse a single layer call with a bias scheme and no ``bias``: the stacks add it (the T5
    table is a stack parameter); a layer alone would silently run without positions."""
    if spec.positional in BIAS_SCHEMES and bias is None:
        raise ValueError(f"{what} with positional={spec.positional!r}: the position bias is added by the stacks "
                         "(encoder_stack / decoder_stack); call a stack, or pass bias=position_bias(...) yourself.")


def stack_bias(spec: TransformerSpec, params: Any, bias: Any, cache: Any, batch: int, q_len: int,
               kv_len: int) -> jax.Array | None:
    """The logit bias a stack passes to each of its layers: the caller's ``bias`` (checked as
    rank 4 broadcastable to ``[b, h, t, s]``) plus :func:`position_bias` at the query positions
    ``0 .. t-1`` (no cache) or ``cache["index"] + 0 .. t-1`` (with one)."""
    if bias is not None:
        bias = _checks.broadcastable_float("bias", bias, (batch, spec.num_heads, q_len, kv_len),
                                           "[batch, heads, q_len, kv_len]")
    if spec.positional not in BIAS_SCHEMES:
        return bias
    positions = jnp.arange(q_len) if cache is None else query_positions(cache, q_len)
    extra = position_bias(spec, params, positions, kv_len)
    return extra if bias is None else bias + extra
