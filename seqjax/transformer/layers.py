"""Encoder and decoder layers, written once for both uses: the full forward pass (training,
scoring: ``cache=None``) and incremental decoding with a KV cache (prefill and one step at a
time: ``cache=`` a pytree of :mod:`seqjax.transformer.cache`).

Equations (Vaswani et al. 2017, "Attention Is All You Need", section 3), for ``x`` ``[b, t, d]``
and the options of a :class:`~seqjax.transformer.TransformerSpec`::

    encoder layer:  x = Res_1(x, SelfAttn),   x = Res_2(x, FFN)
    decoder layer:  x = Res_1(x, SelfAttn),   x = Res_2(x, CrossAttn(memory)),   x = Res_3(x, FFN)
    Res_i(x, F)  =  LN_i(x + Dropout(F(x)))       post-LN (norm_first=False: Vaswani, BERT)
                 =  x + Dropout(F(LN_i(x)))       pre-LN  (norm_first=True: GPT-2)

``SelfAttn`` is multi-head (or grouped-query) attention of :mod:`seqjax.attention` with
``mask`` (and the causal mask when ``spec.causal``). With ``spec.positional == "rope"`` the
queries and keys are rotated by their absolute positions (Su et al. 2021) before the scores.
**With a cache** the self-attention is the same code plus two steps: the new keys and values are
written into the layer's slot of the cache, and the queries (at absolute positions
``cache["index"] + i``) attend every cached key up to their own position; the cross-attention
reads the keys and values precomputed from the encoder output (``cache["cross_k"]``,
``cache["cross_v"]``, source padding ``cache["memory_valid"]``) instead of projecting
``memory`` again. Everything else (residuals, norms, FFN, dropout) is shared line for line.

**Dropout** sits where ``torch.nn.TransformerEncoderLayer`` puts it: on the attention weights,
after the FFN activation and on each residual branch (:meth:`TransformerSpec.dropout_rates`).
One explicit ``dropout_key`` drives everything: a layer splits it into one key per use (4 for an
encoder layer, 6 for a decoder layer). No key: evaluation mode.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import TransformerSpec, encoder_layer, encoder_layer_init, init_kv_cache
    >>> spec = TransformerSpec(num_heads=4, norm_first=True, causal=True)
    >>> params = encoder_layer_init(jax.random.key(0), 16, 4, 32)
    >>> x = jax.random.normal(jax.random.key(1), (2, 5, 16))
    >>> full = encoder_layer(spec, params, x)                       # training: no cache
    >>> cache = init_kv_cache(2, 8, 1, 4, 4)
    >>> cache, first = encoder_layer(spec, params, x[:, :3], cache=cache)
    >>> cache = {**cache, "index": cache["index"] + 3}             # (a stack advances it)
    >>> cache, rest = encoder_layer(spec, params, x[:, 3:], cache=cache)
    >>> bool(jnp.allclose(jnp.concatenate([first, rest], 1), full, atol=1e-5))
    True
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.attention.dot_product import dot_product_attention
from seqjax.attention.masks import causal_mask, combine_masks
from seqjax.attention.multi_head import output_projection, project_qkv, project_queries
from seqjax.attention.positional import apply_rope
from seqjax.primitives import split_key
from seqjax.transformer.adapter import adapted
from seqjax.transformer.cache import (
    Cache,
    attention_sizes,
    check_cache,
    decoding_mask,
    layer_entries,
    query_positions,
    write_kv,
)
from seqjax.transformer.feed_forward import feed_forward, residual
from seqjax.transformer.layout import DECODER_KEYS, ENCODER_KEYS, require_keys
from seqjax.transformer.position_bias import check_layer_positional
from seqjax.transformer.spec import TransformerSpec, check_spec

Params = dict[str, Any]
MASK_LAYOUT = "[batch, heads, q_len, kv_len]"


# --- inputs ------------------------------------------------------------------------------------------


def layer_input(spec: TransformerSpec, name: str, x: Any, features: int) -> jax.Array:
    """``x`` checked as ``[b, t, features]`` floating point and cast to ``spec.dtype``."""
    x = _checks.floating_array(name, x, ndim=3, layout="[batch, time, features]")
    _checks.feature_size(name, x, features)
    return x if spec.dtype is None else x.astype(spec.dtype)


def check_mask(name: str, mask: Any, spec: TransformerSpec, batch: int, q_len: int, kv_len: int) -> jax.Array | None:
    """A boolean attention mask of rank 4 broadcasting to ``[b, h, t, s]`` (None passes): checked
    *before* it is combined with the causal or padding masks, whose broadcasting would otherwise
    turn a bare ``[b, s]`` mask into a silently wrong ``[t, s]`` one."""
    if mask is None:
        return None
    return _checks.boolean_mask(name, mask, (batch, spec.num_heads, q_len, kv_len), MASK_LAYOUT)


def _kv_len(x: jax.Array, cache: Cache | None) -> int:
    return x.shape[1] if cache is None else cache["k"].shape[2]


# --- sublayers ---------------------------------------------------------------------------------------


def _self_attention(spec, params, h, mask, bias, cache, layer, key):
    """Self-attention of ``h`` ``[b, t, d]``; with a cache, over the cached keys (see module)."""
    b, t, _ = h.shape
    mask = check_mask("mask", mask, spec, b, t, _kv_len(h, cache))
    q, k, v = project_qkv(params, h, h, h, num_heads=spec.num_heads)
    if cache is None:
        positions = jnp.arange(t)
        mask = combine_masks(mask, causal_mask(t) if spec.causal else None)
    else:
        positions = query_positions(cache, t)
        mask = combine_masks(mask, decoding_mask(cache, t))
    if spec.positional == "rope":
        q = apply_rope(q, positions, base=spec.rope_base)
        k = apply_rope(k, positions, base=spec.rope_base)
    if cache is not None:
        cache = write_kv(cache, k, v, layer)
        k = layer_entries(cache["k"], layer).astype(q.dtype)
        v = layer_entries(cache["v"], layer).astype(q.dtype)
    heads, weights = dot_product_attention(q, k, v, mask=mask, bias=bias, dropout_rate=spec.dropout_rates()[1],
                                           dropout_key=key, return_weights=True)
    return output_projection(params, heads), (cache, weights)


def _cross_attention(spec, params, h, memory, mask, cache, layer, key):
    """Attention of ``h`` to the encoder output: ``memory`` projected now, or (with a cache that
    holds them) the keys and values precomputed by :func:`~seqjax.transformer.cross_attention_cache`."""
    if has_cross_entries(cache):
        q = project_queries(params, h, num_heads=spec.num_heads)
        k = layer_entries(cache["cross_k"], layer).astype(q.dtype)
        v = layer_entries(cache["cross_v"], layer).astype(q.dtype)
        mask = combine_masks(check_mask("memory_mask", mask, spec, h.shape[0], h.shape[1], k.shape[1]),
                             cache["memory_valid"][:, None, None, :])
    else:
        mask = check_mask("memory_mask", mask, spec, h.shape[0], h.shape[1], memory.shape[1])
        q, k, v = project_qkv(params, h, memory, memory, num_heads=spec.num_heads)
    heads, weights = dot_product_attention(q, k, v, mask=mask, dropout_rate=spec.dropout_rates()[1], dropout_key=key,
                                           return_weights=True)
    return output_projection(params, heads), weights


def _ffn(spec, params, key):
    return lambda h: feed_forward(params, h, activation=spec.activation, dropout_rate=spec.dropout_rates()[2],
                                  dropout_key=key)


def _residual_options(spec):
    return dict(norm_first=spec.norm_first, eps=spec.eps, dropout_rate=spec.dropout_rates()[0])


# --- layer bodies (inputs already checked; the stacks call these) -------------------------------------


def encoder_layer_body(spec, params, x, *, mask, bias, cache, layer, dropout_key):
    """The encoder layer on checked inputs: ``(cache or None, y, attention)``, ``attention =
    {"self": [b, h, t, s]}`` the pre-dropout weights (unused ones cost nothing under ``jax.jit``)."""
    k_att, k_res1, k_act, k_res2 = split_key(dropout_key, 4)
    res = _residual_options(spec)
    attn = adapted(lambda h: _self_attention(spec, params["self_attn"], h, mask, bias, cache, layer, k_att), params,
                   "adapter_attn", has_aux=True)  # Houlsby et al. adapters, where the layer holds them
    x, (cache, w_self) = residual(x, attn, params["norm_1"], dropout_key=k_res1, has_aux=True, **res)
    x = residual(x, adapted(_ffn(spec, params["ffn"], k_act), params, "adapter_ffn"), params["norm_2"],
                 dropout_key=k_res2, **res)
    return cache, x, {"self": w_self}


def decoder_layer_body(spec, params, x, memory, *, mask, memory_mask, cache, layer, dropout_key, bias=None):
    """The decoder layer on checked inputs: ``(cache or None, y, attention)``, ``attention =
    {"self": [b, h, t, t_kv], "cross": [b, h, t, s]}`` (pre-dropout weights); ``bias`` on the
    self-attention logits."""
    k_self, k_res1, k_cross, k_res2, k_act, k_res3 = split_key(dropout_key, 6)
    res = _residual_options(spec)
    x, (cache, w_self) = residual(x, lambda h: _self_attention(spec, params["self_attn"], h, mask, bias, cache, layer, k_self),
                        params["norm_1"], dropout_key=k_res1, has_aux=True, **res)
    x, w_cross = residual(
        x, lambda h: _cross_attention(spec, params["cross_attn"], h, memory, memory_mask, cache, layer, k_cross),
        params["norm_2"], dropout_key=k_res2, has_aux=True, **res)
    x = residual(x, _ffn(spec, params["ffn"], k_act), params["norm_3"], dropout_key=k_res3, **res)
    return cache, x, {"self": w_self, "cross": w_cross}


def check_memory(spec: TransformerSpec, memory: Any, cache: Cache | None, batch: int, features: int) -> jax.Array | None:
    """The decoder's encoder output: ``[b, s, features]`` (cast to ``spec.dtype``), or None when
    ``cache`` holds the cross-attention keys and values (then ``memory`` must not be given)."""
    if has_cross_entries(cache):
        if memory is not None:
            raise ValueError(
                "memory was given, but the cache already holds the cross-attention keys and values "
                "(cross_k, cross_v); pass memory=None or a cache without them."
            )
        return None
    if memory is None:
        raise ValueError("memory [batch, source_time, features] is required (the cache holds no cross_k, cross_v).")
    memory = layer_input(spec, "memory", memory, features)
    if memory.shape[0] != batch:
        raise ValueError(f"memory must have the batch size of x, {batch}; got shape {tuple(memory.shape)}.")
    return memory


def with_attention(result: Any, attention: dict | None) -> Any:
    """``result`` (``y`` or ``(cache, y)``) with ``attention`` appended when it is not None:
    ``(y, attention)`` / ``(cache, y, attention)``."""
    if attention is None:
        return result
    return (*result, attention) if isinstance(result, tuple) else (result, attention)


def has_cross_entries(cache: Any) -> bool:
    """True when ``cache`` is a dict holding precomputed cross-attention keys and values."""
    return isinstance(cache, Mapping) and "cross_k" in cache


def check_layer_cache(spec: TransformerSpec, cache: Any, x: jax.Array, sizes: tuple, *, cross: bool) -> Cache | None:
    """None, or ``cache`` checked for ``x`` (``sizes`` as :func:`~seqjax.transformer.check_cache`);
    a cache needs a causal spec."""
    if cache is None:
        return None
    if not spec.causal:
        raise ValueError("a KV cache decodes left to right: the spec must have causal=True.")
    return check_cache(cache, batch=x.shape[0], new_positions=x.shape[1], sizes=sizes, cross=cross)


def check_layer_inputs(spec: Any, layer: Params, keys: tuple, what: str, x: Any, cache: Any,
                       num_layers: int | None = None) -> tuple[TransformerSpec, jax.Array, Cache | None]:
    """``(spec, x, cache)`` checked for a layer with parameters ``layer`` (or the
    :func:`~seqjax.transformer.layout.layer_view` of a stack of ``num_layers``): the spec type,
    the parameter keys, the heads the spec claims, ``x`` ``[b, t, d]`` (cast to ``spec.dtype``) and
    the cache's shapes and room."""
    spec = check_spec(spec)
    require_keys("params", layer, keys, what)
    x = layer_input(spec, "x", x, layer["norm_1"]["scale"].shape[-1])
    d_k, h_kv, d_v = attention_sizes(spec, [layer], "self_attn")
    if "cross_attn" in keys:
        attention_sizes(spec, [layer], "cross_attn")
    cache = check_layer_cache(spec, cache, x, (num_layers, h_kv, d_k, d_v), cross=has_cross_entries(cache))
    return spec, x, cache


# --- layers ------------------------------------------------------------------------------------------


def encoder_layer(
    spec: TransformerSpec,
    params: Params,
    x: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    cache: Cache | None = None,
    layer: int | jax.Array = 0,
    dropout_key: jax.Array | None = None,
    return_attention: bool = False,
):
    """One encoder layer: self-attention then FFN, each in a residual with LayerNorm::

        post-LN:  x = LN_1(x + Dropout(SelfAttn(x))),      x = LN_2(x + Dropout(FFN(x)))
        pre-LN:   x = x + Dropout(SelfAttn(LN_1(x))),      x = x + Dropout(FFN(LN_2(x)))

    As ``torch.nn.TransformerEncoderLayer(batch_first=True)`` with ``norm_first``; with
    ``spec.causal`` the body of a decoder-only (GPT) model.

    Args:
      spec: the layer's options (:class:`~seqjax.transformer.TransformerSpec`).
      params: from :func:`~seqjax.transformer.encoder_layer_init` or
        :func:`seqjax.interop.torch_transformer.from_torch_encoder_layer`.
      x: ``[b, t, d]`` (with a cache: the ``t`` new positions).
      mask: boolean, True = may attend, rank 4 broadcastable to ``[b, h, t, s]`` (``s = t``, or
        the cache capacity ``T``): :func:`~seqjax.attention.padding_mask`,
        :func:`~seqjax.attention.causal_mask`, combined with ``&``. A bare ``[b, s]`` mask is refused.
      bias: float attention-logit bias of rank 4 broadcastable to ``[b, h, t, s]`` (ALiBi ...).
      cache: None (full forward), or a KV cache (:func:`~seqjax.transformer.init_stack_cache`)
        whose layer ``layer`` receives the new keys and values; ``cache["index"]`` is not advanced.
      layer: which layer of the cache this is.
      dropout_key: enables dropout; split into 4 keys (attention, residual 1, activation,
        residual 2).
      return_attention: also return ``{"self": [b, h, t, s]}``, the attention weights (the
        softmax, before dropout; rows sum to 1, masked keys 0).

    Returns:
      ``y`` ``[b, t, d]``; with a cache ``(cache, y)``; with ``return_attention`` the attention
      dict appended: ``(y, attention)`` / ``(cache, y, attention)``.
    """
    spec, x, cache = check_layer_inputs(spec, params, ENCODER_KEYS, "encoder_layer_init", x, cache)
    check_layer_positional(spec, bias, "encoder_layer")
    new_cache, y, attention = encoder_layer_body(spec, params, x, mask=mask, bias=bias, cache=cache, layer=layer,
                                                 dropout_key=dropout_key)
    return with_attention(y if cache is None else (new_cache, y), attention if return_attention else None)


def decoder_layer(
    spec: TransformerSpec,
    params: Params,
    x: jax.Array,
    memory: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    memory_mask: jax.Array | None = None,
    cache: Cache | None = None,
    layer: int | jax.Array = 0,
    dropout_key: jax.Array | None = None,
    return_attention: bool = False,
):
    """One decoder layer: masked self-attention, cross-attention to ``memory``, FFN::

        post-LN:  x = LN_1(x + Dropout(SelfAttn(x, mask)))
                  x = LN_2(x + Dropout(CrossAttn(x, memory, memory_mask)))
                  x = LN_3(x + Dropout(FFN(x)))
        pre-LN:   x = x + Dropout(SelfAttn(LN_1(x), mask)), ... likewise with LN_2, LN_3

    As ``torch.nn.TransformerDecoderLayer(batch_first=True)``, which adds no causal mask by
    itself: ``spec.causal`` adds it here (a spec with ``causal=False`` and
    ``mask = causal_mask(t) & padding_mask(tgt_lengths, t)`` is PyTorch's call).

    Args:
      spec, params, x, mask, cache, layer: as :func:`encoder_layer` (params from
        :func:`~seqjax.transformer.decoder_layer_init`).
      memory: encoder output ``[b, s, d_mem]``; None when ``cache`` holds the cross-attention
        keys and values (:func:`~seqjax.transformer.cross_attention_cache`).
      memory_mask: cross-attention mask, rank 4 broadcastable to ``[b, h, t, s]`` (source
        padding); with a cache, ``cache["memory_valid"]`` is applied as well.
      dropout_key: split into 6 keys (self-attention weights, residual 1, cross-attention weights,
        residual 2, activation, residual 3).
      return_attention: also return ``{"self": [b, h, t, t_kv], "cross": [b, h, t, s]}``
        (pre-dropout weights).

    Returns:
      ``y`` ``[b, t, d]``; with a cache ``(cache, y)``; with ``return_attention`` the attention
      dict appended.
    """
    spec, x, cache = check_layer_inputs(spec, params, DECODER_KEYS, "decoder_layer_init", x, cache)
    check_layer_positional(spec, None, "decoder_layer")
    memory = check_memory(spec, memory, cache, x.shape[0], params["cross_attn"]["w_k"].shape[0])
    new_cache, y, attention = decoder_layer_body(spec, params, x, memory, mask=mask, memory_mask=memory_mask,
                                                 cache=cache, layer=layer, dropout_key=dropout_key)
    return with_attention(y if cache is None else (new_cache, y), attention if return_attention else None)
