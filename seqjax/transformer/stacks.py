"""Stacks of encoder or decoder layers: a Python loop over a list of layers or one
``jax.lax.scan`` over layers stacked on a leading axis, with an optional KV cache carried
through either.

The stack runs the layer code of :mod:`seqjax.transformer.layers` ``L`` times, then the final
LayerNorm when its parameters have one (``final_norm``: pre-LN stacks). Scan and loop give the
same numbers (each layer gets ``jax.random.split(dropout_key, L)[i]`` in both); the scan
compiles one layer body instead of ``L`` copies. With a cache (from
:func:`~seqjax.transformer.init_stack_cache`) the stack checks it once, lets each layer write
its own slot, and advances ``cache["index"]`` by ``t`` (or by ``seq_lengths`` for right-padded
prompts), so prefill and decoding steps are the same call::

    y = encoder_stack(spec, params, x)                              # training, scoring
    cache, y = encoder_stack(spec, params, prompt, cache=cache)     # prefill
    cache, y = encoder_stack(spec, params, step, cache=cache)       # one step, t = 1

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init, init_stack_cache
    >>> spec = TransformerSpec(num_heads=4, activation="gelu", norm_first=True, causal=True, dropout_rate=0.1)
    >>> params = encoder_stack_init(jax.random.key(0), 2, 16, 4, 32, final_norm=True, stacked=True)
    >>> x = jax.random.normal(jax.random.key(1), (2, 5, 16))
    >>> encoder_stack(spec, params, x, dropout_key=jax.random.key(2)).shape   # training, with dropout
    (2, 5, 16)
    >>> full = encoder_stack(spec, params, x)
    >>> cache = init_stack_cache(spec, params, batch=2, max_len=8)
    >>> cache, prefix = encoder_stack(spec, params, x[:, :4], cache=cache)
    >>> cache, last = encoder_stack(spec, params, x[:, 4:], cache=cache)
    >>> cache["index"].tolist(), bool(jnp.allclose(last, full[:, 4:], atol=1e-5))
    ([5, 5], True)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.attention.masks import combine_masks, padding_mask
from seqjax.primitives import layer_norm
from seqjax.transformer.cache import Cache, advance, capacity
from seqjax.transformer.layers import (check_layer_inputs, check_mask, check_memory, decoder_layer_body,
                                      encoder_layer_body, with_attention)
from seqjax.transformer.position_bias import stack_bias
from seqjax.transformer.layout import DECODER_KEYS, ENCODER_KEYS, layer_view, stack_layers, stack_of, unstack_layers
from seqjax.transformer.spec import TransformerSpec

Params = dict[str, Any]


def _lengths_mask(name: str, lengths: Any, batch: int, time: int) -> jax.Array | None:
    if lengths is None:
        return None
    return padding_mask(_checks.seq_lengths(name, lengths, batch=batch, time=time), time)


def _run(layer_fn: Callable, params: Params, x: jax.Array, cache: Cache | None, *, steps: Any, spec: TransformerSpec,
         scan: bool | None, unroll: int, dropout_key: jax.Array | None, return_attention: bool = False):
    """Loop or scan ``layer_fn(layer_params, x, cache, i, key) -> (cache, x, attention)`` over the
    layers, then the final norm and the index advance. Returns ``(cache or None, y, attention)``,
    each attention array stacked on a leading layer axis (None unless ``return_attention``)."""
    layers, n = stack_of(params)
    _checks.positive_int("unroll", unroll)
    is_stacked = isinstance(layers, Mapping)
    scan = is_stacked if scan is None else bool(scan)
    keys = None if dropout_key is None else jax.random.split(dropout_key, n)
    if scan:
        def body(carry, xs):
            h, c = carry
            layer_params, i, key = xs
            c, h, a = layer_fn(layer_params, h, c, i, key)
            return (h, c), (a if return_attention else None)

        stacked = layers if is_stacked else stack_layers(layers)
        (x, cache), attention = jax.lax.scan(body, (x, cache), (stacked, jnp.arange(n, dtype=jnp.int32), keys),
                                             unroll=unroll)
    else:
        per_layer = []
        for i, layer_params in enumerate(unstack_layers(layers) if is_stacked else layers):
            cache, x, a = layer_fn(layer_params, x, cache, i, None if keys is None else keys[i])
            per_layer.append(a)
        attention = jax.tree.map(lambda *w: jnp.stack(w), *per_layer) if return_attention else None
    if "final_norm" in params:
        x = layer_norm(params["final_norm"], x, eps=spec.eps)
    return (None if cache is None else advance(cache, steps)), x, attention


def encoder_stack(
    spec: TransformerSpec,
    params: Params,
    x: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    seq_lengths: jax.Array | None = None,
    cache: Cache | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    dropout_key: jax.Array | None = None,
    return_attention: bool = False,
):
    """A stack of encoder layers (:func:`~seqjax.transformer.encoder_layer`), then ``final_norm``
    if present, on ``x`` ``[b, t, d]``.

    Args:
      spec: the options of every layer (:class:`~seqjax.transformer.TransformerSpec`).
      params: from :func:`~seqjax.transformer.encoder_stack_init` (or
        :func:`seqjax.interop.torch_transformer.from_torch_encoder`).
      x: ``[b, t, d]``; with a cache, the embeddings of positions ``index .. index + t - 1``.
      mask, bias: as :func:`~seqjax.transformer.encoder_layer`; the same for every layer.
      seq_lengths: ``[b]`` valid lengths of a right-padded ``x``. Without a cache they mask the
        padded keys; with one, ``index`` advances by them (default ``t``), so the padded
        positions are overwritten by the next steps (a causal query never reads a later key).
      cache: None (full forward) or a KV cache (:func:`~seqjax.transformer.init_stack_cache`).
      scan: run the layers with ``jax.lax.scan`` (one compiled layer body; a list is stacked on
        the fly) or a Python loop (``False``). Default: scan for stacked parameters, loop for a list.
      unroll: the scan's ``unroll``.
      dropout_key: split into one key per layer (``jax.random.split(key, L)``) in both modes.
      return_attention: also return ``{"self": [L, b, h, t, s]}``, every layer's attention
        weights (the softmax before dropout: rows sum to 1, masked and padded keys get 0; with a
        cache ``s`` is its capacity), the same from the loop and the scan.

    Returns:
      ``y`` ``[b, t, d]``; with a cache ``(cache, y)``, ``cache["index"]`` advanced; with
      ``return_attention`` the attention dict appended: ``(y, attention)`` / ``(cache, y, attention)``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init
        >>> params = encoder_stack_init(jax.random.key(0), 3, 16, 4, 32)
        >>> x = jax.random.normal(jax.random.key(1), (2, 5, 16))
        >>> y, attention = encoder_stack(TransformerSpec(num_heads=4), params, x, seq_lengths=jnp.array([5, 3]),
        ...                              return_attention=True)
        >>> w = attention["self"]
        >>> w.shape, bool(jnp.allclose(w.sum(-1), 1.0)), float(w[:, 1, :, :, 3:].max())
        ((3, 2, 4, 5, 5), True, 0.0)
    """
    layers, n = stack_of(params)
    spec, x, cache = check_layer_inputs(spec, layer_view(layers), ENCODER_KEYS, "encoder_stack_init", x, cache, n)
    b, t, _ = x.shape
    steps = t
    if cache is None:
        mask = combine_masks(check_mask("mask", mask, spec, b, t, t), _lengths_mask("seq_lengths", seq_lengths, b, t))
    elif seq_lengths is not None:
        steps = _checks.seq_lengths("seq_lengths", seq_lengths, batch=b, time=t)

    bias = stack_bias(spec, params, bias, cache, b, t, t if cache is None else capacity(cache))

    def layer_fn(layer_params, h, c, i, key):
        return encoder_layer_body(spec, layer_params, h, mask=mask, bias=bias, cache=c, layer=i, dropout_key=key)

    new_cache, y, attention = _run(layer_fn, params, x, cache, steps=steps, spec=spec, scan=scan, unroll=unroll,
                                   dropout_key=dropout_key, return_attention=return_attention)
    return with_attention(y if cache is None else (new_cache, y), attention)


def decoder_stack(
    spec: TransformerSpec,
    params: Params,
    x: jax.Array,
    memory: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    memory_mask: jax.Array | None = None,
    tgt_lengths: jax.Array | None = None,
    src_lengths: jax.Array | None = None,
    cache: Cache | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    dropout_key: jax.Array | None = None,
    return_attention: bool = False,
):
    """A stack of decoder layers (:func:`~seqjax.transformer.decoder_layer`) on ``x``
    ``[b, t, d]`` reading ``memory`` ``[b, s, d_mem]``, then ``final_norm`` if present.

    Args:
      spec, params, x, mask, cache, scan, unroll, dropout_key: as :func:`encoder_stack`
        (params from :func:`~seqjax.transformer.decoder_stack_init`).
      memory: encoder output ``[b, s, d_mem]``; None when ``cache`` holds the cross-attention
        keys and values (:func:`~seqjax.transformer.init_stack_cache` with ``memory``).
      memory_mask: cross-attention mask, rank 4 broadcastable to ``[b, h, t, s]``.
      tgt_lengths: ``[b]`` valid target lengths (``seq_lengths`` of :func:`encoder_stack`).
      src_lengths: ``[b]`` valid source lengths: mask the padded memory positions (with a cache
        holding the cross-attention entries, ``cache["memory_valid"]`` does it instead).
      return_attention: also return ``{"self": [L, b, h, t, t_kv], "cross": [L, b, h, t, s]}``
        (pre-dropout weights, as :func:`encoder_stack`).

    Returns:
      ``y`` ``[b, t, d]``; with a cache ``(cache, y)``, ``cache["index"]`` advanced; with
      ``return_attention`` the attention dict appended.
    """
    layers, n = stack_of(params)
    view = layer_view(layers)
    spec, x, cache = check_layer_inputs(spec, view, DECODER_KEYS, "decoder_stack_init", x, cache, n)
    b, t, _ = x.shape
    memory = check_memory(spec, memory, cache, b, view["cross_attn"]["w_k"].shape[0])
    if memory is None and src_lengths is not None:
        raise ValueError("src_lengths was given, but the cache's memory_valid already holds the source padding.")
    if memory is not None:
        s = memory.shape[1]
        memory_mask = combine_masks(check_mask("memory_mask", memory_mask, spec, b, t, s),
                                    _lengths_mask("src_lengths", src_lengths, b, s))
    steps = t
    if cache is None:
        mask = combine_masks(check_mask("mask", mask, spec, b, t, t), _lengths_mask("tgt_lengths", tgt_lengths, b, t))
    elif tgt_lengths is not None:
        steps = _checks.seq_lengths("tgt_lengths", tgt_lengths, batch=b, time=t)

    bias = stack_bias(spec, params, None, cache, b, t, t if cache is None else capacity(cache))

    def layer_fn(layer_params, h, c, i, key):
        return decoder_layer_body(spec, layer_params, h, memory, mask=mask, memory_mask=memory_mask, cache=c,
                                  layer=i, dropout_key=key, bias=bias)

    new_cache, y, attention = _run(layer_fn, params, x, cache, steps=steps, spec=spec, scan=scan, unroll=unroll,
                                   dropout_key=dropout_key, return_attention=return_attention)
    return with_attention(y if cache is None else (new_cache, y), attention)
