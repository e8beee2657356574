"""Key/value caches for incremental (autoregressive) transformer decoding, as explicit pytrees.

A causal layer's keys and values for positions already decoded do not change, so decoding step
``n`` only needs the new token's projections: append its ``k, v`` to a cache and attend over the
cache. The cache is a plain dict passed in and returned (as the Flax NNX gemma example), so the
decoding loops of :mod:`seqjax.decoding` carry it through ``jax.lax.while_loop``::

    cache = {"k":     [b, L, T, h_kv, d_k],    per layer l: cache["k"][:, l] is [b, T, h_kv, d_k]
             "v":     [b, L, T, h_kv, d_v],
             "index": int32 [b]}               positions already written (per sequence)
    decoder stacks add the cross-attention keys and values, computed once from the encoder output:
             "cross_k": [b, L, s, h_kv, d_k], "cross_v": [b, L, s, h_kv, d_v],
             "memory_valid": bool [b, s]       (True at real source positions)

``T`` is the cache capacity (``max_len``), ``L`` the number of layers. Every leaf has the batch as
its leading axis, so a beam search reorders the whole cache with one gather
(``jax.tree.map(lambda x: x[idx], cache)``); layers sit on axis 1 so that a ``jax.lax.scan``
over stacked layers carries the cache and writes only the new entries.

For new inputs ``x`` ``[b, t, d]`` (a prompt, then one token per step) a layer computes
``q, k, v`` from ``x``, writes ``k, v`` at positions ``index[b] .. index[b] + t - 1`` and lets the
query at absolute position ``p = index[b] + i`` attend the keys ``j <= p``: the causal mask with
offset ``index`` (:func:`seqjax.attention.causal_mask` with ``offset``), per sequence. Stale
entries beyond ``p`` (never written, or padding written by a padded prefill) are masked out and
overwritten by later steps. The stack then advances ``index`` by ``t``, or by ``seq_lengths``
for a right-padded prompt. Positions at or beyond ``T`` cannot be written (``dynamic_update_slice``
clamps them): concrete indices are checked, traced ones are the caller's responsibility.

The numbers equal the full forward pass of :func:`seqjax.transformer.encoder_stack` (causal
mask) and :func:`seqjax.transformer.decoder_stack` (the tests check it to 1e-5). The cached
path is for inference: it has no dropout.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import encoder_stack_init, init_stack_cache, encoder_stack_cached
    >>> params = encoder_stack_init(jax.random.key(0), 2, 16, 4, 32, final_norm=True)
    >>> cache = init_stack_cache(params, batch=2, max_len=10, num_heads=4)
    >>> y, cache = encoder_stack_cached(params, jnp.ones((2, 3, 16)), cache, num_heads=4,
    ...                                 norm_first=True)   # a prompt of 3 positions
    >>> y, cache = encoder_stack_cached(params, jnp.ones((2, 1, 16)), cache, num_heads=4,
    ...                                 norm_first=True)   # one more step
    >>> cache["k"].shape, cache["index"].tolist()
    ((2, 2, 10, 4, 4), [4, 4])
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.attention.dot_product import dot_product_attention
from seqjax.attention.multi_head import head_dims, output_projection, project_qkv, split_heads
from seqjax.transformer import blocks
from seqjax.transformer.blocks import feed_forward, layer_norm, num_layers, stack_layers, unstack_layers

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


def _layers(params: Params) -> Any:
    blocks._require("params", params, ("layers",), "encoder_stack_init / decoder_stack_init")
    layers = params["layers"]
    if not isinstance(layers, (Mapping, list, tuple)) or not len(layers):
        raise ValueError("params['layers'] must be a non-empty list of layer dicts or a stacked dict.")
    return layers


def _layer_view(layers: Any, sublayer: str) -> dict:
    """The parameter shapes of one layer's ``sublayer`` (stacked layers: the leading axis dropped)."""
    if isinstance(layers, Mapping):
        if sublayer not in layers:
            raise ValueError(f"the stack's layers have no {sublayer!r} parameters.")
        return {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in layers[sublayer].items()}
    if sublayer not in layers[0]:
        raise ValueError(f"the stack's layers have no {sublayer!r} parameters.")
    return layers[0][sublayer]


def _dense(params: Params, name: str, x: jax.Array) -> jax.Array:
    y = x @ params[f"w_{name}"].astype(x.dtype)
    b = params.get(f"b_{name}")
    return y if b is None else y + b.astype(x.dtype)


def cross_attention_cache(
    params: Params,
    memory: jax.Array,
    *,
    num_heads: int,
    memory_valid: jax.Array | None = None,
    dtype: Any = None,
) -> Cache:
    """The cross-attention keys and values of every decoder layer, computed once from the
    encoder output: ``{"cross_k": [b, L, s, h_kv, d_k], "cross_v": [b, L, s, h_kv, d_v],
    "memory_valid": [b, s]}`` (merge into a self-attention cache with ``|``).

    Args:
      params: a decoder stack (:func:`seqjax.transformer.decoder_stack_init`).
      memory: encoder output ``[b, s, d_mem]``.
      num_heads: ``h``.
      memory_valid: ``[b, s]`` True at real source positions (default all True).
      dtype: computation and storage dtype (default ``memory``'s).
    """
    layers = _layers(params)
    memory = _checks.floating_array("memory", memory, ndim=3, layout="[batch, source_time, features]")
    view = _layer_view(layers, "cross_attn")
    d_k, h_kv, d_v = head_dims(view, num_heads)
    _checks.feature_size("memory", memory, view["w_k"].shape[0])
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
        return split_heads(_dense(p, "k", memory), h_kv), split_heads(_dense(p, "v", memory), h_kv)

    if isinstance(layers, Mapping):
        k, v = jax.vmap(project, out_axes=1)(layers["cross_attn"])
    else:
        pairs = [project(layer["cross_attn"]) for layer in layers]
        k, v = jnp.stack([p[0] for p in pairs], axis=1), jnp.stack([p[1] for p in pairs], axis=1)
    return {"cross_k": k, "cross_v": v, "memory_valid": memory_valid}


def init_stack_cache(
    params: Params,
    batch: int,
    max_len: int,
    *,
    num_heads: int,
    memory: jax.Array | None = None,
    memory_valid: jax.Array | None = None,
    dtype: Any = None,
) -> Cache:
    """An empty cache for the stack ``params`` (sizes read from its self-attention parameters);
    with ``memory`` (a decoder stack) also the cross-attention keys and values
    (:func:`cross_attention_cache`). ``dtype``: storage dtype (default float32)."""
    layers = _layers(params)
    d_k, h_kv, d_v = head_dims(_layer_view(layers, "self_attn"), num_heads)
    dtype = jnp.float32 if dtype is None else dtype
    cache = init_kv_cache(batch, max_len, num_layers(layers), h_kv, d_k, value_head_dim=d_v, dtype=dtype)
    if memory is not None:
        cache |= cross_attention_cache(params, memory, num_heads=num_heads, memory_valid=memory_valid, dtype=dtype)
        if cache["cross_k"].shape[0] != batch:
            raise ValueError(f"memory must have batch size {batch}; got shape {tuple(memory.shape)}.")
    elif memory_valid is not None:
        raise ValueError("memory_valid needs memory.")
    return cache


# --- checks ------------------------------------------------------------------------------------------


def _check_cache(cache: Any, x: jax.Array, *, cross: bool, layers: int | None = None) -> None:
    keys = SELF_KEYS + (CROSS_KEYS if cross else ())
    if not isinstance(cache, Mapping) or any(k not in cache for k in keys):
        got = sorted(cache) if isinstance(cache, Mapping) else type(cache).__name__
        raise ValueError(
            f"cache must be a dict with the keys {list(keys)} (init_stack_cache"
            f"{' with memory' if cross else ''}); got {got}."
        )
    b, t = x.shape[0], x.shape[1]
    k, v, index = cache["k"], cache["v"], cache["index"]
    if k.ndim != 5 or v.ndim != 5 or k.shape[:4] != v.shape[:4] or k.shape[0] != b:
        raise ValueError(
            f"cache['k'] and cache['v'] must be [batch, layers, max_len, kv_heads, head_dim] with batch {b}; "
            f"got {tuple(k.shape)} and {tuple(v.shape)}."
        )
    if layers is not None and k.shape[1] != layers:
        raise ValueError(f"the cache holds {k.shape[1]} layers but the stack has {layers}.")
    if index.shape != (b,) or not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(f"cache['index'] must be an integer [batch] = ({b},) array; got {index.dtype} {tuple(index.shape)}.")
    if not isinstance(index, jax.core.Tracer):
        end = int(np.max(np.asarray(index))) + t if b else 0
        if end > k.shape[2]:
            raise ValueError(
                f"the cache is full: writing {t} position(s) after index {int(np.max(np.asarray(index)))} "
                f"needs {end} > max_len = {k.shape[2]}; build the cache with a larger max_len."
            )
    if cross:
        ck = cache["cross_k"]
        if ck.ndim != 5 or ck.shape[0] != b or ck.shape[1] != k.shape[1]:
            raise ValueError(
                f"cache['cross_k'] must be [batch, layers, source_time, kv_heads, head_dim] with batch {b} "
                f"and {k.shape[1]} layers; got {tuple(ck.shape)}."
            )


# --- attention over the cache ------------------------------------------------------------------------


def _layer_slice(buf: jax.Array, layer: int | jax.Array) -> jax.Array:
    if isinstance(layer, (int, np.integer)):
        return buf[:, layer]
    return jax.lax.dynamic_index_in_dim(buf, layer, axis=1, keepdims=False)


def _write(buf: jax.Array, new: jax.Array, layer: int | jax.Array, index: jax.Array) -> jax.Array:
    """Write ``new`` ``[b, t, h, d]`` into layer ``layer`` of ``buf`` ``[b, L, T, h, d]`` at
    per-sequence positions ``index[b] ..``: only the new entries move."""
    layer = jnp.asarray(layer, jnp.int32)
    zero = jnp.zeros((), jnp.int32)

    def row(buf_row, new_row, start):
        return jax.lax.dynamic_update_slice(buf_row, new_row[None].astype(buf_row.dtype),
                                            (layer, start.astype(jnp.int32), zero, zero))

    return jax.vmap(row)(buf, new, index)


def _cached_self_attention(params: Params, h: jax.Array, cache: Cache, layer, num_heads: int):
    q, k, v = project_qkv(params, h, h, h, num_heads=num_heads)
    keys = _write(cache["k"], k, layer, cache["index"])
    values = _write(cache["v"], v, layer, cache["index"])
    t, max_len = h.shape[1], keys.shape[2]
    positions = cache["index"][:, None] + jnp.arange(t)  # [b, t] absolute query positions
    mask = (jnp.arange(max_len)[None, None, :] <= positions[:, :, None])[:, None]  # [b, 1, t, T]
    heads = dot_product_attention(
        q, _layer_slice(keys, layer).astype(q.dtype), _layer_slice(values, layer).astype(q.dtype), mask=mask,
    )
    return output_projection(params, heads), {**cache, "k": keys, "v": values}


def _cached_cross_attention(params: Params, h: jax.Array, cache: Cache, layer, num_heads: int) -> jax.Array:
    q = split_heads(_dense(params, "q", h), num_heads)
    keys = _layer_slice(cache["cross_k"], layer).astype(q.dtype)
    values = _layer_slice(cache["cross_v"], layer).astype(q.dtype)
    mask = cache["memory_valid"][:, None, None, :]
    return output_projection(params, dot_product_attention(q, keys, values, mask=mask))


def _residual(x, sublayer: Callable, norm: Params, *, norm_first: bool, eps: float):
    """:func:`seqjax.transformer.residual` (no dropout) for a sublayer returning ``(y, aux)``."""
    if norm_first:
        y, aux = sublayer(layer_norm(norm, x, eps=eps))
        return x + y, aux
    y, aux = sublayer(x)
    return layer_norm(norm, x + y, eps=eps), aux


# --- layers ------------------------------------------------------------------------------------------


def _layer_checks(params, keys, what, x, cache, activation, norm_first, eps, dtype, cross):
    blocks._require("params", params, keys, what)
    x = blocks._check_x("x", x, params, dtype)
    blocks._check_options(activation, norm_first, eps)
    _check_cache(cache, x, cross=cross)
    return x


def encoder_layer_cached(
    params: Params,
    x: jax.Array,
    cache: Cache,
    *,
    num_heads: int,
    layer: int | jax.Array = 0,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dtype: Any = None,
) -> tuple[jax.Array, Cache]:
    """One causal encoder layer (:func:`seqjax.transformer.encoder_layer` with a causal mask)
    on new positions ``x`` ``[b, t, d]``, reading and extending layer ``layer`` of ``cache``.

    Returns ``(y [b, t, d], cache)`` with the new keys and values written; ``cache["index"]``
    is *not* advanced (the stack does it once for all layers: :func:`encoder_stack_cached`).
    """
    x = _layer_checks(params, blocks.ENCODER_KEYS, "encoder_layer_init", x, cache, activation, norm_first, eps, dtype, False)
    norm = dict(norm_first=norm_first, eps=eps)
    x, cache = _residual(x, lambda h: _cached_self_attention(params["self_attn"], h, cache, layer, num_heads),
                         params["norm_1"], **norm)
    x, _ = _residual(x, lambda h: (feed_forward(params["ffn"], h, activation=activation), None),
                     params["norm_2"], **norm)
    return x, cache


def decoder_layer_cached(
    params: Params,
    x: jax.Array,
    cache: Cache,
    *,
    num_heads: int,
    layer: int | jax.Array = 0,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dtype: Any = None,
) -> tuple[jax.Array, Cache]:
    """One decoder layer (:func:`seqjax.transformer.decoder_layer`, causal) on new target
    positions ``x`` ``[b, t, d]``: masked self-attention over layer ``layer`` of ``cache``,
    cross-attention to the precomputed ``cache["cross_k"], cache["cross_v"]`` (source padding
    ``cache["memory_valid"]``), FFN. Returns ``(y, cache)``; ``index`` is not advanced."""
    x = _layer_checks(params, blocks.DECODER_KEYS, "decoder_layer_init", x, cache, activation, norm_first, eps, dtype, True)
    norm = dict(norm_first=norm_first, eps=eps)
    x, cache = _residual(x, lambda h: _cached_self_attention(params["self_attn"], h, cache, layer, num_heads),
                         params["norm_1"], **norm)
    x, _ = _residual(x, lambda h: (_cached_cross_attention(params["cross_attn"], h, cache, layer, num_heads), None),
                     params["norm_2"], **norm)
    x, _ = _residual(x, lambda h: (feed_forward(params["ffn"], h, activation=activation), None),
                     params["norm_3"], **norm)
    return x, cache


# --- stacks ------------------------------------------------------------------------------------------


def _run_cached(layer_fn, params: Params, x: jax.Array, cache: Cache, *, cross: bool, seq_lengths: Any,
                scan: bool | None, unroll: int, eps: float, dtype: Any) -> tuple[jax.Array, Cache]:
    layers = _layers(params)
    is_stacked = isinstance(layers, Mapping)
    n = num_layers(layers)
    _checks.positive_int("unroll", unroll)
    x = _checks.floating_array("x", x, ndim=3, layout="[batch, time, features]")
    if dtype is not None:
        x = x.astype(dtype)
    b, t, _ = x.shape
    _check_cache(cache, x, cross=cross, layers=n)
    advance = t if seq_lengths is None else _checks.seq_lengths("seq_lengths", seq_lengths, batch=b, time=t)
    scan = is_stacked if scan is None else bool(scan)
    if scan:
        stacked = layers if is_stacked else stack_layers(layers)

        def body(carry, xs):
            h, c = carry
            layer_params, index = xs
            return layer_fn(layer_params, h, c, index), None

        (x, cache), _ = jax.lax.scan(body, (x, cache), (stacked, jnp.arange(n, dtype=jnp.int32)), unroll=unroll)
    else:
        for i, layer_params in enumerate(unstack_layers(layers) if is_stacked else layers):
            x, cache = layer_fn(layer_params, x, cache, i)
    if "final_norm" in params:
        x = layer_norm(params["final_norm"], x, eps=eps)
    return x, {**cache, "index": (cache["index"] + advance).astype(cache["index"].dtype)}


def encoder_stack_cached(
    params: Params,
    x: jax.Array,
    cache: Cache,
    *,
    num_heads: int,
    seq_lengths: jax.Array | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dtype: Any = None,
) -> tuple[jax.Array, Cache]:
    """The incremental form of a causal :func:`seqjax.transformer.encoder_stack` (the body of a
    GPT model): new positions ``x`` ``[b, t, d]`` (a prompt, or one token) against ``cache``.

    Args:
      params: from :func:`seqjax.transformer.encoder_stack_init` (list or stacked).
      x: ``[b, t, d]``, the embeddings of positions ``index .. index + t - 1``.
      cache: from :func:`init_stack_cache` or a previous call.
      num_heads: ``h``.
      seq_lengths: ``[b]`` valid lengths of a right-padded ``x``: ``index`` advances by them
        (default ``t``), so the padded positions are overwritten by the next steps.
      scan, unroll, eps, dtype, activation, norm_first: as :func:`seqjax.transformer.encoder_stack`.

    Returns:
      ``(y [b, t, d], cache)`` with ``index`` advanced.
    """
    def layer_fn(layer_params, h, c, i):
        return encoder_layer_cached(layer_params, h, c, num_heads=num_heads, layer=i, activation=activation,
                                    norm_first=norm_first, eps=eps)

    return _run_cached(layer_fn, params, x, cache, cross=False, seq_lengths=seq_lengths, scan=scan,
                       unroll=unroll, eps=eps, dtype=dtype)


def decoder_stack_cached(
    params: Params,
    x: jax.Array,
    cache: Cache,
    *,
    num_heads: int,
    seq_lengths: jax.Array | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dtype: Any = None,
) -> tuple[jax.Array, Cache]:
    """The incremental form of :func:`seqjax.transformer.decoder_stack` (causal): ``cache`` from
    :func:`init_stack_cache` with ``memory`` holds the cross-attention keys and values; the
    arguments as :func:`encoder_stack_cached`."""
    def layer_fn(layer_params, h, c, i):
        return decoder_layer_cached(layer_params, h, c, num_heads=num_heads, layer=i, activation=activation,
                                    norm_first=norm_first, eps=eps)

    return _run_cached(layer_fn, params, x, cache, cross=True, seq_lengths=seq_lengths, scan=scan,
                       unroll=unroll, eps=eps, dtype=dtype)
