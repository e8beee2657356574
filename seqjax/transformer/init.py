"""Initial parameters of transformer feed-forwards, layers and stacks, in the layout of
:mod:`seqjax.transformer.layout`.

Weight matrices are Xavier (Glorot) uniform ``U(+-sqrt(6 / (fan_in + fan_out)))`` by default,
or ``weight_init=std``: normal with that standard deviation (BERT and GPT-2: 0.02), or any
``init(key, shape, dtype)``; biases zero; LayerNorm scales one. ``output_scale`` multiplies the
initial output projections of the residual branches (attention ``w_o``, FFN ``w_2``): GPT-2 uses
``1 / sqrt(2 * num_layers)``. A stack's layer ``i`` is initialised from
``jax.random.split(key, num_layers)[i]``, as a list or stacked on a leading axis with the same
numbers.

Example::

    >>> import jax
    >>> from seqjax.transformer import decoder_stack_init
    >>> params = decoder_stack_init(jax.random.key(0), 2, 16, 4, 32, num_kv_heads=2, stacked=True)
    >>> params["layers"]["self_attn"]["w_k"].shape, params["layers"]["ffn"]["w_1"].shape
    ((2, 16, 8), (2, 16, 32))
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.primitives import WeightInit, init_weights, layer_norm_init

Params = dict[str, Any]


def zero_bias(n: int) -> jax.Array:
    """A float32 zero vector ``[n]``, made on the host and transferred (no compiled kernel)."""
    return jnp.asarray(np.zeros((n,), np.float32))


def _ffn_params(w_1: jax.Array, w_2: jax.Array, use_bias: bool) -> Params:
    params = {"w_1": w_1, "w_2": w_2}
    if use_bias:
        params |= {"b_1": zero_bias(w_1.shape[1]), "b_2": zero_bias(w_2.shape[1])}
    return params


def feed_forward_init(
    key: jax.Array, d_model: int, d_ff: int, *, use_bias: bool = True,
    weight_init: WeightInit | float | None = None, output_scale: float = 1.0,
) -> Params:
    """Position-wise FFN parameters ``{"w_1": [d, d_ff], "b_1": [d_ff], "w_2": [d_ff, d], "b_2": [d]}``
    (``weight_init`` as :func:`init_weights`; ``w_2`` multiplied by ``output_scale``)."""
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("d_ff", d_ff)
    w_1, w_2 = init_weights(key, [(d_model, d_ff), (d_ff, d_model)], weight_init, scales=(1.0, output_scale))
    return _ffn_params(w_1, w_2, use_bias)


def _attention_shapes(d_model: int, num_heads: int, num_kv_heads: int | None,
                      kv_features: int) -> list[tuple[int, int]]:
    _checks.positive_int("num_heads", num_heads)
    _checks.divides("num_heads", num_heads, "d_model", d_model)
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    _checks.positive_int("num_kv_heads", num_kv_heads)
    _checks.divides("num_kv_heads", num_kv_heads, "num_heads", num_heads)
    kv_width = num_kv_heads * (d_model // num_heads)
    return [(d_model, d_model), (kv_features, kv_width), (kv_features, kv_width), (d_model, d_model)]


def _attention_params(weights: Sequence[jax.Array], use_bias: bool) -> Params:
    params = {f"w_{n}": w for n, w in zip("qkvo", weights)}
    if use_bias:
        params |= {f"b_{n}": zero_bias(w.shape[1]) for n, w in zip("qkvo", weights)}
    return params


def encoder_layer_init(
    key: jax.Array,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    num_kv_heads: int | None = None,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """Encoder-layer parameters ``{"self_attn", "ffn", "norm_1", "norm_2"}``
    (:mod:`seqjax.transformer.layout`).

    Args:
      key: PRNG key.
      d_model: model width ``d``; ``num_heads`` must divide it.
      num_heads: ``h`` (head width ``d_k = d_model / h``).
      d_ff: FFN inner width.
      num_kv_heads: ``h_kv`` key/value heads (default ``h``), dividing ``h``.
      use_bias: biases on every projection and LayerNorm (PyTorch's ``bias=``).
      weight_init: the weight matrices' init (:func:`init_weights`): None = Xavier uniform, a
        float = normal with that std, or a callable ``init(key, shape, dtype)``.
      output_scale: multiplies the initial output projections of the residual branches
        (attention ``w_o``, FFN ``w_2``); GPT-2 uses ``1 / sqrt(2 * num_layers)``.
    """
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("d_ff", d_ff)
    shapes = _attention_shapes(d_model, num_heads, num_kv_heads, d_model) + [(d_model, d_ff), (d_ff, d_model)]
    w = init_weights(key, shapes, weight_init, scales=(1, 1, 1, output_scale, 1, output_scale))
    return {
        "self_attn": _attention_params(w[:4], use_bias),
        "ffn": _ffn_params(w[4], w[5], use_bias),
        "norm_1": layer_norm_init(d_model, use_bias=use_bias),
        "norm_2": layer_norm_init(d_model, use_bias=use_bias),
    }


def decoder_layer_init(
    key: jax.Array,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    num_kv_heads: int | None = None,
    memory_features: int | None = None,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """Decoder-layer parameters ``{"self_attn", "cross_attn", "ffn", "norm_1", "norm_2", "norm_3"}``.

    ``memory_features``: the encoder output width (default ``d_model``); the other arguments as
    :func:`encoder_layer_init` (``num_kv_heads`` applies to both attentions).
    """
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("d_ff", d_ff)
    memory_features = d_model if memory_features is None else memory_features
    _checks.positive_int("memory_features", memory_features)
    shapes = (_attention_shapes(d_model, num_heads, num_kv_heads, d_model)
              + _attention_shapes(d_model, num_heads, num_kv_heads, memory_features)
              + [(d_model, d_ff), (d_ff, d_model)])
    c = output_scale
    w = init_weights(key, shapes, weight_init, scales=(1, 1, 1, c, 1, 1, 1, c, 1, c))
    return {
        "self_attn": _attention_params(w[:4], use_bias),
        "cross_attn": _attention_params(w[4:8], use_bias),
        "ffn": _ffn_params(w[8], w[9], use_bias),
        "norm_1": layer_norm_init(d_model, use_bias=use_bias),
        "norm_2": layer_norm_init(d_model, use_bias=use_bias),
        "norm_3": layer_norm_init(d_model, use_bias=use_bias),
    }


def _stack_init(layer_init: Callable[[jax.Array], Params], key: jax.Array, n_layers: int, d_model: int,
                *, final_norm: bool, stacked: bool, use_bias: bool) -> Params:
    _checks.positive_int("num_layers", n_layers)
    keys = jax.random.split(key, n_layers)
    if stacked:  # one vmapped init: the same numbers as the per-layer inits, stacked
        layers = jax.vmap(layer_init)(keys)
    else:
        layers = [layer_init(k) for k in keys]
    params: Params = {"layers": layers}
    if final_norm:
        params["final_norm"] = layer_norm_init(d_model, use_bias=use_bias)
    return params


def encoder_stack_init(
    key: jax.Array,
    num_layers: int,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    num_kv_heads: int | None = None,
    final_norm: bool = False,
    stacked: bool = False,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """``{"layers": ..., "final_norm": ...}`` for ``num_layers`` independently initialised encoder
    layers (layer ``i`` from ``jax.random.split(key, num_layers)[i]``): a list
    (``stacked=False``) or one dict with a leading ``[num_layers]`` axis (``stacked=True``), with
    the same numbers. ``final_norm`` adds the final LayerNorm a pre-LN stack needs; the other
    arguments as :func:`encoder_layer_init`."""
    init = functools.partial(encoder_layer_init, d_model=d_model, num_heads=num_heads, d_ff=d_ff,
                             num_kv_heads=num_kv_heads, use_bias=use_bias, weight_init=weight_init,
                             output_scale=output_scale)
    return _stack_init(init, key, num_layers, d_model, final_norm=final_norm, stacked=stacked, use_bias=use_bias)


def decoder_stack_init(
    key: jax.Array,
    num_layers: int,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    num_kv_heads: int | None = None,
    memory_features: int | None = None,
    final_norm: bool = False,
    stacked: bool = False,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """As :func:`encoder_stack_init`, for decoder layers (:func:`decoder_layer_init`)."""
    init = functools.partial(decoder_layer_init, d_model=d_model, num_heads=num_heads, d_ff=d_ff,
                             num_kv_heads=num_kv_heads, memory_features=memory_features,
                             use_bias=use_bias, weight_init=weight_init, output_scale=output_scale)
    return _stack_init(init, key, num_layers, d_model, final_norm=final_norm, stacked=stacked, use_bias=use_bias)
