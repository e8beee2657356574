"""Key/value caches for incremental (autoregressive) transformer decoding, as explicit pytrees:
creating them, checking them, writing into them, and the cross-attention keys and values computed
once from the encoder output.

A causal layer's keys and values for positions already decoded do not change, so decoding step
``n`` only needs the new token's projections: append its ``k, v`` to a cache and attend over the
cache. The layers themselves are those of training (:mod:`seqjax.transformer.layers`), called
with ``cache=``; this module holds only the cache. The cache is a plain dict passed in and
returned (as the Flax NNX gemma example), so decoding loops carry it through
``jax.lax.while_loop``::

    cache = {"k":     [b, L, T, h_kv, d_k],    per layer l: cache["k"][:, l] is [b, T, h_kv, d_k]
             "v":     [b, L, T, h_kv, d_v],
             "index": int32 [b]}               positions already written (per sequence)
    decoder stacks add the cross-attention keys and values, computed once from the encoder output:
             "cross_k": [b, L, s, h_kv, d_k], "cross_v": [b, L, s, h_kv, d_v],
             "memory_valid": bool [b, s]       (True at real source positions)

``T = cache["k"].shape[2]`` is the capacity (``max_len``), ``L`` the number of layers. Every leaf
has the batch as its leading axis, so a beam search reorders the whole cache with one gather
(``jax.tree.map(lambda x: x[idx], cache)``); layers sit on axis 1 so that a ``jax.lax.scan``
over stacked layers carries the cache and writes only the new entries.

For new inputs ``x`` ``[b, t, d]`` (a prompt, then one token per step) a layer writes its
``k, v`` at positions ``index[b] .. index[b] + t - 1`` and lets the query at absolute position
``p = index[b] + i`` attend the keys ``j <= p`` (:func:`decoding_mask`). Stale entries beyond
``p`` (never written, or padding written by a padded prefill) are masked out and overwritten by
later steps. The stack then advances ``index`` by ``t``, or by ``seq_lengths`` for a right-padded
prompt. Positions at or beyond ``T`` cannot be written (``dynamic_update_slice`` would clamp
them): :func:`check_cache` refuses them when the index is concrete; under ``jit`` the caller
checks (the decoding loops do).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import TransformerSpec, decoder_stack_init, init_stack_cache
    >>> spec = TransformerSpec(num_heads=4, causal=True)
    >>> params = decoder_stack_init(jax.random.key(0), 2, 16, 4, 32)
    >>> cache = init_stack_cache(spec, params, batch=2, max_len=10, memory=jnp.ones((2, 7, 16)))
    >>> cache["k"].shape, cache["cross_k"].shape, cache["index"].tolist()
    ((2, 2, 10, 4, 4), (2, 2, 7, 4, 4), [0, 0])
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.attention.multi_head import head_dims, project_kv
from seqjax.transformer.layout import first_layer, stack_of
from seqjax.transformer.spec import TransformerSpec, check_spec

Params = dict[str, Any]
Cache = dict[str, jax.Array]

SELF_KEYS = ("k", "v", "index")
CROSS_KEYS = ("cross_k", "cross_v", "memory_valid")


# --- creating caches ---------------------------------------------------------------------------------


def init_kv_cache(
    batch: int,
    max_len: int,
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    *,
    value_head_dim: int | None = None,
    dtype: Any = jnp.float32,
) -> Cache:
    """An empty self-attention cache ``{"k", "v", "index"}`` (zeros, ``index`` 0), the layout of
    the module docstring, for ``num_layers`` layers of ``max_len`` positions."""
    for name, value in (("batch", batch), ("max_len", max_len), ("num_layers", num_layers),
                        ("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
        _checks.positive_int(name, value)
    value_head_dim = head_dim if value_head_dim is None else value_head_dim
    _checks.positive_int("value_head_dim", value_head_dim)
    return {
        "k": jnp.zeros((batch, num_layers, max_len, num_kv_heads, head_dim), dtype),
        "v": jnp.zeros((batch, num_layers, max_len, num_kv_heads, value_head_dim), dtype),
        "index": jnp.zeros((batch,), jnp.int32),
    }


def attention_sizes(spec: TransformerSpec, layers: Any, sublayer: str) -> tuple[int, int, int]:
    """``(d_k, h_kv, d_v)`` of ``sublayer`` in every layer of a stack, read from the parameter
    shapes with ``spec.num_heads``; the parameters' ``h_kv`` must be ``spec.kv_heads``."""
    d_k, h_kv, d_v = head_dims(first_layer(layers, sublayer), spec.num_heads)
    if h_kv != spec.kv_heads:
        raise ValueError(
            f"the {sublayer} parameters have {h_kv} key/value heads but the spec has num_kv_heads = "
            f"{spec.kv_heads} (num_heads = {spec.num_heads}); build the spec the parameters were made with."
        )
    return d_k, h_kv, d_v


def cross_attention_cache(
    spec: TransformerSpec,
    params: Params,
    memory: jax.Array,
    *,
    memory_valid: jax.Array | None = None,
    dtype: Any = None,
) -> Cache:
    """The cross-attention keys and values of every decoder layer, computed once from the
    encoder output: ``{"cross_k": [b, L, s, h_kv, d_k], "cross_v": [b, L, s, h_kv, d_v],
    "memory_valid": [b, s]}`` (merge into a self-attention cache with ``|``).

    Args:
      spec: the decoder stack's :class:`~seqjax.transformer.TransformerSpec`.
      params: a decoder stack (:func:`seqjax.transformer.decoder_stack_init`).
      memory: encoder output ``[b, s, d_mem]``.
      memory_valid: ``[b, s]`` True at real source positions (default all True).
      dtype: storage dtype (default ``spec.dtype``, else ``memory``'s).
    """
    spec = check_spec(spec)
    layers, _ = stack_of(params)
    memory = _checks.floating_array("memory", memory, ndim=3, layout="[batch, source_time, features]")
    attention_sizes(spec, layers, "cross_attn")
    _checks.feature_size("memory", memory, first_layer(layers, "cross_attn")["w_k"].shape[0])
    dtype = spec.dtype if dtype is None else dtype
    if dtype is not None:
        memory = memory.astype(dtype)
    b, s, _ = memory.shape
    if memory_valid is None:
        memory_valid = jnp.ones((b, s), bool)
    memory_valid = jnp.asarray(memory_valid)
    if memory_valid.shape != (b, s) or memory_valid.dtype != jnp.bool_:
        raise ValueError(
            f"memory_valid must be a boolean [batch, source_time] = {(b, s)} array; got "
            f"{memory_valid.dtype} {tuple(memory_valid.shape)}."
        )

    def project(p):
        return project_kv(p, memory, memory, num_heads=spec.num_heads)

    if isinstance(layers, Mapping):
        k, v = jax.vmap(project, out_axes=1)(layers["cross_attn"])
    else:
        pairs = [project(layer["cross_attn"]) for layer in layers]
        k, v = jnp.stack([p[0] for p in pairs], axis=1), jnp.stack([p[1] for p in pairs], axis=1)
    return {"cross_k": k, "cross_v": v, "memory_valid": memory_valid}


def init_stack_cache(
    spec: TransformerSpec,
    params: Params,
    batch: int,
    max_len: int,
    *,
    memory: jax.Array | None = None,
    memory_valid: jax.Array | None = None,
    dtype: Any = None,
) -> Cache:
    """An empty cache for the stack ``params`` run with ``spec`` (sizes read from its
    self-attention parameters); with ``memory`` (a decoder stack) also the cross-attention keys
    and values (:func:`cross_attention_cache`). ``dtype``: storage dtype (default
    ``spec.dtype``, else float32). The spec must be causal: a cache decodes left to right."""
    spec = check_spec(spec)
    if not spec.causal:
        raise ValueError("a KV cache decodes left to right: the spec must have causal=True.")
    layers, n = stack_of(params)
    d_k, h_kv, d_v = attention_sizes(spec, layers, "self_attn")
    if dtype is None:
        dtype = jnp.float32 if spec.dtype is None else spec.dtype
    cache = init_kv_cache(batch, max_len, n, h_kv, d_k, value_head_dim=d_v, dtype=dtype)
    if memory is not None:
        cache |= cross_attention_cache(spec, params, memory, memory_valid=memory_valid, dtype=dtype)
        if cache["cross_k"].shape[0] != batch:
            raise ValueError(f"memory must have batch size {batch}; got shape {tuple(memory.shape)}.")
    elif memory_valid is not None:
        raise ValueError("memory_valid needs memory.")
    return cache


# --- checking ----------------------------------------------------------------------------------------


def capacity(cache: Cache) -> int:
    """The number of positions the cache holds, ``T = cache["k"].shape[2]`` (its ``max_len``)."""
    return int(cache["k"].shape[2])


def check_cache(
    cache: Any,
    *,
    batch: int,
    new_positions: int,
    sizes: tuple[int, int, int, int] | None = None,
    cross: bool = False,
) -> Cache:
    """Check that ``cache`` fits a call writing ``new_positions`` positions for ``batch``
    sequences: its keys (``cross``: also the cross-attention entries), shapes, and, when
    ``cache["index"]`` is concrete, that ``max(index) + new_positions <= capacity``.

    ``sizes``: ``(num_layers, h_kv, d_k, d_v)`` the cache must have (those of the stack;
    ``num_layers`` None for one layer of it).
    """
    keys = SELF_KEYS + (CROSS_KEYS if cross else ())
    if not isinstance(cache, Mapping) or any(k not in cache for k in keys):
        got = sorted(cache) if isinstance(cache, Mapping) else type(cache).__name__
        raise ValueError(
            f"cache must be a dict with the keys {list(keys)} (init_stack_cache"
            f"{' with memory' if cross else ''}); got {got}."
        )
    k, v, index = cache["k"], cache["v"], cache["index"]
    if k.ndim != 5 or v.ndim != 5 or k.shape[:4] != v.shape[:4] or k.shape[0] != batch:
        raise ValueError(
            f"cache['k'] and cache['v'] must be [batch, layers, max_len, kv_heads, head_dim] with batch {batch}; "
            f"got {tuple(k.shape)} and {tuple(v.shape)}."
        )
    if sizes is not None:
        n, h_kv, d_k, d_v = sizes
        n = k.shape[1] if n is None else n
        if (k.shape[1], k.shape[3], k.shape[4], v.shape[4]) != (n, h_kv, d_k, d_v):
            raise ValueError(
                f"the cache holds {k.shape[1]} layers of {k.shape[3]} key/value heads of width "
                f"{k.shape[4]} (values {v.shape[4]}), but the stack has {n} layers of {h_kv} heads of "
                f"width {d_k} (values {d_v}); build the cache with init_stack_cache for this stack."
            )
    if index.shape != (batch,) or not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(
            f"cache['index'] must be an integer [batch] = ({batch},) array; got {index.dtype} {tuple(index.shape)}."
        )
    if new_positions > capacity(cache):
        raise ValueError(
            f"the cache is too short: {new_positions} new positions do not fit in max_len = "
            f"{capacity(cache)}; build it with max_len >= {new_positions}."
        )
    if not isinstance(index, jax.core.Tracer) and batch:
        start = int(np.max(np.asarray(index)))
        end = start + new_positions
        if end > capacity(cache):
            raise ValueError(
                f"the cache is full: {new_positions} new position(s) after cache['index'] = {start} need "
                f"{end} positions, but the cache holds max_len = {capacity(cache)}; build it with "
                f"max_len >= {end}."
            )
    if cross:
        ck, cv, valid = cache["cross_k"], cache["cross_v"], cache["memory_valid"]
        if ck.ndim != 5 or ck.shape[:2] != k.shape[:2] or ck.shape[3:] != k.shape[3:] or cv.shape[:4] != ck.shape[:4]:
            raise ValueError(
                f"cache['cross_k'] / cache['cross_v'] must be [batch, layers, source_time, kv_heads, head_dim] "
                f"with batch {batch}, {k.shape[1]} layers and the heads of cache['k'] {tuple(k.shape[3:])}; "
                f"got {tuple(ck.shape)} and {tuple(cv.shape)}."
            )
        if valid.shape != ck.shape[:1] + ck.shape[2:3] or valid.dtype != jnp.bool_:
            raise ValueError(
                f"cache['memory_valid'] must be boolean [batch, source_time] = {(ck.shape[0], ck.shape[2])}; "
                f"got {valid.dtype} {tuple(valid.shape)}."
            )
    return cache


# --- reading and writing -----------------------------------------------------------------------------


def query_positions(cache: Cache, t: int) -> jax.Array:
    """``[b, t]`` absolute positions of ``t`` new queries: ``index[b] + i``."""
    return cache["index"][:, None] + jnp.arange(t, dtype=cache["index"].dtype)


def decoding_mask(cache: Cache, t: int) -> jax.Array:
    """``[b, 1, t, T]``: the query at absolute position ``p = index[b] + i`` may attend the
    cached keys ``j <= p`` (the causal mask, offset per sequence)."""
    positions = query_positions(cache, t)
    return (jnp.arange(capacity(cache))[None, None, :] <= positions[:, :, None])[:, None]


def layer_entries(buf: jax.Array, layer: int | jax.Array) -> jax.Array:
    """Layer ``layer`` of a cache buffer ``[b, L, T, h, d]``: ``[b, T, h, d]`` (a static or traced
    layer index)."""
    if isinstance(layer, (int, np.integer)):
        return buf[:, layer]
    return jax.lax.dynamic_index_in_dim(buf, layer, axis=1, keepdims=False)


def _write(buf: jax.Array, new: jax.Array, layer: int | jax.Array, index: jax.Array) -> jax.Array:
    layer = jnp.asarray(layer, jnp.int32)
    zero = jnp.zeros((), jnp.int32)

    def row(buf_row, new_row, start):
        return jax.lax.dynamic_update_slice(buf_row, new_row[None].astype(buf_row.dtype),
                                            (layer, start.astype(jnp.int32), zero, zero))

    return jax.vmap(row)(buf, new, index)


def write_kv(cache: Cache, k: jax.Array, v: jax.Array, layer: int | jax.Array) -> Cache:
    """Write the new keys ``k`` ``[b, t, h_kv, d_k]`` and values ``v`` into layer ``layer`` of
    ``cache`` at the per-sequence positions ``index[b] ..``: only the new entries move, and
    ``index`` is not advanced (the stack does it once for all layers)."""
    return {**cache, "k": _write(cache["k"], k, layer, cache["index"]),
            "v": _write(cache["v"], v, layer, cache["index"])}


def advance(cache: Cache, steps: jax.Array | int) -> Cache:
    """``cache`` with ``index`` advanced by ``steps`` (an int or ``[b]`` valid lengths)."""
    return {**cache, "index": (cache["index"] + steps).astype(cache["index"].dtype)}
