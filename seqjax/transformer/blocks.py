"""Transformer blocks as pure functions: position-wise feed-forward, residual + LayerNorm (post-LN
and pre-LN), encoder and decoder layers, and stacks of them (Python loop or ``jax.lax.scan``).

Equations (Vaswani et al. 2017; seed 000 M10-M16), for ``x`` ``[b, t, d]``::

    LN(x)      = scale * (x - mean(x)) / sqrt(var(x) + eps) + bias     over the features (float32 stats)
    FFN(x)     = Dropout_act(act(x W_1 + b_1)) W_2 + b_2                act: relu | gelu | gelu_tanh
    post-LN:     x <- LN(x + Dropout(Sublayer(x)))      (the seeds, Vaswani, BERT; norm_first=False)
    pre-LN:      x <- x + Dropout(Sublayer(LN(x)))      (GPT-2; norm_first=True; a stack then ends
                                                         with a final LN, ``final_norm``)
    encoder layer:  Sublayer_1 = SelfAttention(mask),           Sublayer_2 = FFN
    decoder layer:  Sublayer_1 = SelfAttention(mask: causal & target padding),
                    Sublayer_2 = CrossAttention(memory, memory_mask),  Sublayer_3 = FFN

Attention is :func:`seqjax.attention.multi_head_attention` (scale ``1 / sqrt(d_k)``). ``gelu`` is the
exact ``x Phi(x)`` (erf) of BERT and PyTorch's ``'gelu'``; ``gelu_tanh`` the tanh approximation of
GPT-2 (HF ``gelu_new``).

**Dropout** sits where ``torch.nn.TransformerEncoderLayer`` puts it: on the attention weights
(``attention_dropout_rate``), after the FFN activation (``activation_dropout_rate``) and on each
residual branch (``dropout_rate``); the first two default to ``dropout_rate``. Set them to 0 for
the seeds' hand-written layer (seed 000 B33: residual dropout only). One explicit
``dropout_key`` drives everything: a layer splits it into one key per use (4 for an encoder
layer, 6 for a decoder layer), a stack into one key per layer (``jax.random.split(key,
num_layers)``, so the loop and the scan see the same keys). No key: evaluation mode.

**Parameter layout** (plain dicts of float32 arrays; row-vector convention ``y = x W + b``)::

    layer norm     {"scale": [d], "bias": [d]}                   ones / zeros ("bias" absent: use_bias=False)
    feed-forward   {"w_1": [d, d_ff], "b_1": [d_ff], "w_2": [d_ff, d], "b_2": [d]}
    encoder layer  {"self_attn": MHA, "ffn": FFN, "norm_1": LN, "norm_2": LN}
    decoder layer  {"self_attn": MHA, "cross_attn": MHA, "ffn": FFN, "norm_1": LN, "norm_2": LN, "norm_3": LN}
    stack          {"layers": [layer_0, ..., layer_{L-1}]   (a list: Python loop)
                              or one layer dict whose arrays have a leading [L] axis (stacked: scan),
                    "final_norm": LN}                       (only with final_norm=True)

``MHA`` is the layout of :func:`seqjax.attention.multi_head_init` (``w_q, w_k, w_v, w_o`` and
``b_*``). ``norm_i`` is the norm of sublayer ``i`` in either placement, as PyTorch's ``norm1..3``,
so :mod:`seqjax.interop.torch_transformer` converts by renaming and transposing. Init: weight
matrices Xavier-uniform (or ``weight_init=0.02``: normal with that std, as BERT and GPT-2; or any
``init(key, shape, dtype)``), biases zero, LayerNorm scale one.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.attention import causal_mask
    >>> from seqjax.transformer import encoder_stack_init, encoder_stack
    >>> params = encoder_stack_init(jax.random.key(0), 2, 16, 4, 32, final_norm=True, stacked=True)
    >>> x = jnp.ones((2, 5, 16))
    >>> y = encoder_stack(params, x, num_heads=4, mask=causal_mask(5), norm_first=True,
    ...                   activation="gelu", dropout_rate=0.1, dropout_key=jax.random.key(1))
    >>> y.shape
    (2, 5, 16)
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.attention.multi_head import multi_head_attention

Params = dict[str, Any]
WeightInit = Callable[..., jax.Array]  # init(key, shape, dtype), as jax.nn.initializers

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
}

ENCODER_KEYS = ("self_attn", "ffn", "norm_1", "norm_2")
DECODER_KEYS = ("self_attn", "cross_attn", "ffn", "norm_1", "norm_2", "norm_3")


# --- small pieces ----------------------------------------------------------------------------------


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout: zero each entry with probability ``rate``, scale the rest by
    ``1 / (1 - rate)``; the identity when ``key`` is None or ``rate == 0`` (evaluation)."""
    _checks.probability("rate", rate)
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _split(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


def init_weights(
    key: jax.Array,
    shapes: Sequence[tuple[int, int]],
    weight_init: WeightInit | float | None = None,
    *,
    scales: Sequence[float] | None = None,
) -> list[jax.Array]:
    """Float32 matrices of the given ``[fan_in, fan_out]`` shapes, each multiplied by its
    ``scales`` entry (default 1).

    ``weight_init``: None = Xavier (Glorot) uniform ``U(+-sqrt(6 / (fan_in + fan_out)))``; a float
    ``std`` = ``N(0, std^2)`` (BERT, GPT-2: 0.02); or a callable ``init(key, shape, dtype)`` (one
    call per matrix). The first two draw every matrix from one random kernel, cut into pieces: on
    CPU, compiling the random kernel dominates small inits.
    """
    shapes = tuple((int(a), int(b)) for a, b in shapes)
    scales = (1.0,) * len(shapes) if scales is None else tuple(float(c) for c in scales)
    if len(scales) != len(shapes):
        raise ValueError(f"scales must have one entry per shape ({len(shapes)}); got {len(scales)}.")
    if callable(weight_init):
        keys = jax.random.split(key, len(shapes))
        return [jnp.asarray(weight_init(k, shape, jnp.float32), jnp.float32) * c
                for k, shape, c in zip(keys, shapes, scales)]
    if weight_init is None:
        return list(_draw(key, shapes, scales, None))
    if isinstance(weight_init, (int, float, np.floating)) and not isinstance(weight_init, bool) and weight_init >= 0:
        return list(_draw(key, shapes, scales, float(weight_init)))
    raise ValueError(
        "weight_init must be None (Xavier uniform), a non-negative float (normal std) or a callable "
        f"init(key, shape, dtype); got {weight_init!r}."
    )


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw(key, shapes, scales, std):
    sizes = [a * b for a, b in shapes]
    if std is None:
        flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    else:
        flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    out, start = [], 0
    for (fan_in, fan_out), size, scale in zip(shapes, sizes, scales):
        bound = math.sqrt(6.0 / (fan_in + fan_out)) if std is None else std
        out.append((bound * scale) * flat[start : start + size].reshape(fan_in, fan_out))
        start += size
    return tuple(out)


def _zeros(n: int) -> jax.Array:
    return jnp.asarray(np.zeros((n,), np.float32))  # a transfer, not a compiled kernel


def _dense(x: jax.Array, w: jax.Array, b: jax.Array | None) -> jax.Array:
    y = x @ w.astype(x.dtype)
    return y if b is None else y + b.astype(x.dtype)


def _require(name: str, params: Any, keys: Sequence[str], what: str) -> None:
    if not isinstance(params, Mapping):
        raise ValueError(f"{name} must be a dict of parameters ({what}); got {type(params).__name__}.")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{name} is missing {missing}; expected the keys {list(keys)} ({what}).")


def _positive_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


def _check_options(activation: str, norm_first: Any, eps: float, *rates: tuple[str, float | None]) -> None:
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    if not isinstance(norm_first, (bool, np.bool_)):
        raise ValueError(f"norm_first must be a bool (False: post-LN, True: pre-LN); got {norm_first!r}.")
    _positive_float("eps", eps)
    for name, rate in rates:
        if rate is not None:
            _checks.probability(name, rate)


# --- layer norm, feed-forward, residual --------------------------------------------------------------


def layer_norm_init(d_model: int, *, use_bias: bool = True) -> Params:
    """``{"scale": ones [d], "bias": zeros [d]}`` (no ``"bias"`` with ``use_bias=False``)."""
    _checks.positive_int("d_model", d_model)
    params = {"scale": jnp.asarray(np.ones((d_model,), np.float32))}
    if use_bias:
        params["bias"] = _zeros(d_model)
    return params


def layer_norm(params: Params, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """``scale * (x - mean) / sqrt(var + eps) + bias`` over the last axis (biased variance, as
    PyTorch). Statistics in float32; the result has ``x``'s dtype. ``eps``: PyTorch 1e-5 (default),
    BERT 1e-12, Flax 1e-6.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.transformer import layer_norm, layer_norm_init
        >>> y = layer_norm(layer_norm_init(4), jnp.arange(8.0).reshape(2, 4))
        >>> [round(float(v), 3) for v in y[0]]
        [-1.342, -0.447, 0.447, 1.342]
    """
    _require("params", params, ("scale",), "layer_norm_init")
    _positive_float("eps", eps)
    x = _checks.floating_array("x", x, ndim=tuple(range(1, 6)), layout="[..., features]")
    _checks.feature_size("x", x, params["scale"].shape[-1])
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * params["scale"].astype(jnp.float32)
    if "bias" in params:
        y = y + params["bias"].astype(jnp.float32)
    return y.astype(x.dtype)


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


def _ffn_params(w_1, w_2, use_bias):
    params = {"w_1": w_1, "w_2": w_2}
    if use_bias:
        params |= {"b_1": _zeros(w_1.shape[1]), "b_2": _zeros(w_2.shape[1])}
    return params


def feed_forward(
    params: Params,
    x: jax.Array,
    *,
    activation: str = "relu",
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> jax.Array:
    """``FFN(x) = Dropout(act(x W_1 + b_1)) W_2 + b_2`` on ``x`` ``[..., d]`` (each position alike).

    ``activation``: ``"relu"`` (Vaswani), ``"gelu"`` (exact erf form: BERT, PyTorch ``'gelu'``) or
    ``"gelu_tanh"`` (GPT-2). The dropout after the activation is active only with ``dropout_key``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.transformer import feed_forward, feed_forward_init
        >>> params = feed_forward_init(jax.random.key(0), 8, 32)
        >>> feed_forward(params, jnp.ones((2, 3, 8)), activation="gelu").shape
        (2, 3, 8)
    """
    _require("params", params, ("w_1", "w_2"), "feed_forward_init")
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    x = _checks.floating_array("x", x, ndim=tuple(range(1, 6)), layout="[..., features]")
    _checks.feature_size("x", x, params["w_1"].shape[0])
    if params["w_2"].shape[0] != params["w_1"].shape[1]:
        raise ValueError(
            f"params['w_1'] {tuple(params['w_1'].shape)} and params['w_2'] {tuple(params['w_2'].shape)} "
            "must be [d, d_ff] and [d_ff, d_out]."
        )
    h = ACTIVATIONS[activation](_dense(x, params["w_1"], params.get("b_1")))
    h = dropout(h, dropout_rate, dropout_key)
    return _dense(h, params["w_2"], params.get("b_2"))


def residual(
    x: jax.Array,
    sublayer: Callable[[jax.Array], jax.Array],
    norm: Params,
    *,
    norm_first: bool = False,
    eps: float = 1e-5,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> jax.Array:
    """Residual connection with LayerNorm ``norm`` in either placement::

        norm_first=False (post-LN):  LN(x + Dropout(sublayer(x)))
        norm_first=True  (pre-LN):   x + Dropout(sublayer(LN(x)))
    """
    if norm_first:
        return x + dropout(sublayer(layer_norm(norm, x, eps=eps)), dropout_rate, dropout_key)
    return layer_norm(norm, x + dropout(sublayer(x), dropout_rate, dropout_key), eps=eps)


# --- layers ------------------------------------------------------------------------------------------


def _attention_shapes(d_model: int, num_heads: int, kv_features: int) -> list[tuple[int, int]]:
    _checks.positive_int("num_heads", num_heads)
    _checks.divides("num_heads", num_heads, "d_model", d_model)
    return [(d_model, d_model), (kv_features, d_model), (kv_features, d_model), (d_model, d_model)]


def _attention_params(weights: Sequence[jax.Array], use_bias: bool) -> Params:
    params = {f"w_{n}": w for n, w in zip("qkvo", weights)}
    if use_bias:
        params |= {f"b_{n}": _zeros(w.shape[1]) for n, w in zip("qkvo", weights)}
    return params


def encoder_layer_init(
    key: jax.Array,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """Encoder-layer parameters ``{"self_attn", "ffn", "norm_1", "norm_2"}`` (module docstring).

    Args:
      key: PRNG key.
      d_model: model width ``d``; ``num_heads`` must divide it.
      num_heads: ``h``.
      d_ff: FFN inner width.
      use_bias: biases on every projection and LayerNorm (PyTorch's ``bias=``).
      weight_init: the weight matrices' init (:func:`init_weights`): None = Xavier uniform, a
        float = normal with that std, or a callable ``init(key, shape, dtype)``.
      output_scale: multiplies the initial output projections of the residual branches
        (attention ``w_o``, FFN ``w_2``); GPT-2 uses ``1 / sqrt(2 * num_layers)``.
    """
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("d_ff", d_ff)
    shapes = _attention_shapes(d_model, num_heads, d_model) + [(d_model, d_ff), (d_ff, d_model)]
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
    memory_features: int | None = None,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """Decoder-layer parameters ``{"self_attn", "cross_attn", "ffn", "norm_1", "norm_2", "norm_3"}``.

    ``memory_features``: the encoder output width (default ``d_model``); the other arguments as
    :func:`encoder_layer_init`.
    """
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("d_ff", d_ff)
    memory_features = d_model if memory_features is None else memory_features
    _checks.positive_int("memory_features", memory_features)
    shapes = (_attention_shapes(d_model, num_heads, d_model) + _attention_shapes(d_model, num_heads, memory_features)
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


def _rates(dropout_rate, attention_dropout_rate, activation_dropout_rate):
    attn = dropout_rate if attention_dropout_rate is None else attention_dropout_rate
    act = dropout_rate if activation_dropout_rate is None else activation_dropout_rate
    return float(dropout_rate), float(attn), float(act)


def _check_x(name: str, x: Any, params: Params, dtype: Any) -> jax.Array:
    x = _checks.floating_array(name, x, ndim=3, layout="[batch, time, features]")
    _checks.feature_size(name, x, params["norm_1"]["scale"].shape[-1])
    return x if dtype is None else x.astype(dtype)


def encoder_layer(
    params: Params,
    x: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dropout_rate: float = 0.0,
    attention_dropout_rate: float | None = None,
    activation_dropout_rate: float | None = None,
    dropout_key: jax.Array | None = None,
    dtype: Any = None,
) -> jax.Array:
    """One encoder layer: self-attention then FFN, each in a residual with LayerNorm::

        post-LN:  x = LN_1(x + Dropout(SelfAttn(x))),      x = LN_2(x + Dropout(FFN(x)))
        pre-LN:   x = x + Dropout(SelfAttn(LN_1(x))),      x = x + Dropout(FFN(LN_2(x)))

    As ``torch.nn.TransformerEncoderLayer(batch_first=True)`` with ``norm_first``.

    Args:
      params: from :func:`encoder_layer_init` or
        :func:`seqjax.interop.torch_transformer.from_torch_encoder_layer`.
      x: ``[b, t, d]``.
      num_heads: ``h``.
      mask: boolean, True = may attend, broadcastable to ``[b, h, t, t]`` (a padding mask
        :func:`~seqjax.attention.padding_mask`, :func:`~seqjax.attention.causal_mask`, both with ``&``).
      bias: float attention-logit bias broadcastable to ``[b, h, t, t]`` (ALiBi ...).
      activation: ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"``.
      norm_first: False = post-LN (Vaswani, BERT, the seeds), True = pre-LN (GPT-2).
      eps: LayerNorm epsilon.
      dropout_rate: residual-branch dropout; ``attention_dropout_rate`` (attention weights) and
        ``activation_dropout_rate`` (after the FFN activation) default to it.
      dropout_key: enables dropout; split into 4 keys (attention, residual 1, activation,
        residual 2).
      dtype: computation dtype (default ``x``'s); statistics and softmax stay float32.

    Returns:
      ``[b, t, d]``.
    """
    _require("params", params, ENCODER_KEYS, "encoder_layer_init")
    x = _check_x("x", x, params, dtype)
    _check_options(activation, norm_first, eps, ("dropout_rate", dropout_rate),
                   ("attention_dropout_rate", attention_dropout_rate),
                   ("activation_dropout_rate", activation_dropout_rate))
    p_res, p_att, p_act = _rates(dropout_rate, attention_dropout_rate, activation_dropout_rate)
    k_att, k_res1, k_act, k_res2 = _split(dropout_key, 4)
    norm = dict(norm_first=norm_first, eps=eps, dropout_rate=p_res)

    def attend(h):
        return multi_head_attention(
            params["self_attn"], h, h, h, num_heads=num_heads, mask=mask, bias=bias,
            dropout_rate=p_att, dropout_key=k_att,
        )

    def ffn(h):
        return feed_forward(params["ffn"], h, activation=activation, dropout_rate=p_act, dropout_key=k_act)

    x = residual(x, attend, params["norm_1"], dropout_key=k_res1, **norm)
    return residual(x, ffn, params["norm_2"], dropout_key=k_res2, **norm)


def decoder_layer(
    params: Params,
    x: jax.Array,
    memory: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    memory_mask: jax.Array | None = None,
    activation: str = "relu",
    norm_first: bool = False,
    eps: float = 1e-5,
    dropout_rate: float = 0.0,
    attention_dropout_rate: float | None = None,
    activation_dropout_rate: float | None = None,
    dropout_key: jax.Array | None = None,
    dtype: Any = None,
) -> jax.Array:
    """One decoder layer: masked self-attention, cross-attention to ``memory``, FFN::

        post-LN:  x = LN_1(x + Dropout(SelfAttn(x, mask)))
                  x = LN_2(x + Dropout(CrossAttn(x, memory, memory_mask)))
                  x = LN_3(x + Dropout(FFN(x)))
        pre-LN:   x = x + Dropout(SelfAttn(LN_1(x), mask)), ... likewise with LN_2, LN_3

    As ``torch.nn.TransformerDecoderLayer(batch_first=True)``. The layer does not add a causal
    mask by itself (as PyTorch): pass ``mask = causal_mask(t) & padding_mask(tgt_lengths, t)``.

    Args:
      params: from :func:`decoder_layer_init` or
        :func:`seqjax.interop.torch_transformer.from_torch_decoder_layer`.
      x: target ``[b, t, d]``.
      memory: encoder output ``[b, s, d_mem]``.
      mask: self-attention mask broadcastable to ``[b, h, t, t]`` (causal & target padding).
      memory_mask: cross-attention mask broadcastable to ``[b, h, t, s]`` (source padding).
      dropout_key: split into 6 keys (self-attention weights, residual 1, cross-attention weights,
        residual 2, activation, residual 3).
      Other arguments as :func:`encoder_layer`.

    Returns:
      ``[b, t, d]``.
    """
    _require("params", params, DECODER_KEYS, "decoder_layer_init")
    x = _check_x("x", x, params, dtype)
    memory = _checks.floating_array("memory", memory, ndim=3, layout="[batch, source_time, features]")
    if dtype is not None:
        memory = memory.astype(dtype)
    if memory.shape[0] != x.shape[0]:
        raise ValueError(
            f"memory must have the batch size of x, {x.shape[0]}; got shape {tuple(memory.shape)}."
        )
    _check_options(activation, norm_first, eps, ("dropout_rate", dropout_rate),
                   ("attention_dropout_rate", attention_dropout_rate),
                   ("activation_dropout_rate", activation_dropout_rate))
    p_res, p_att, p_act = _rates(dropout_rate, attention_dropout_rate, activation_dropout_rate)
    k_self, k_res1, k_cross, k_res2, k_act, k_res3 = _split(dropout_key, 6)
    norm = dict(norm_first=norm_first, eps=eps, dropout_rate=p_res)

    def self_attend(h):
        return multi_head_attention(
            params["self_attn"], h, h, h, num_heads=num_heads, mask=mask,
            dropout_rate=p_att, dropout_key=k_self,
        )

    def cross_attend(h):
        return multi_head_attention(
            params["cross_attn"], h, memory, memory, num_heads=num_heads, mask=memory_mask,
            dropout_rate=p_att, dropout_key=k_cross,
        )

    def ffn(h):
        return feed_forward(params["ffn"], h, activation=activation, dropout_rate=p_act, dropout_key=k_act)

    x = residual(x, self_attend, params["norm_1"], dropout_key=k_res1, **norm)
    x = residual(x, cross_attend, params["norm_2"], dropout_key=k_res2, **norm)
    return residual(x, ffn, params["norm_3"], dropout_key=k_res3, **norm)


# --- stacks ------------------------------------------------------------------------------------------


def stack_layers(layers: Sequence[Params]) -> Params:
    """Per-layer parameter dicts -> one dict whose arrays have a leading ``[L]`` axis (for scan)."""
    if isinstance(layers, Mapping) or not len(layers):
        raise ValueError("layers must be a non-empty list of per-layer parameter dicts.")
    structures = {jax.tree.structure(layer) for layer in layers}
    if len(structures) != 1:
        raise ValueError("all layers must have the same parameter structure to be stacked.")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *layers)


def unstack_layers(stacked: Params) -> list[Params]:
    """The inverse of :func:`stack_layers`: a list of ``L`` per-layer dicts."""
    n = num_layers(stacked)
    return [jax.tree.map(lambda a: a[i], stacked) for i in range(n)]


def num_layers(layers: Sequence[Params] | Params) -> int:
    """The number of layers of a per-layer list or a stacked dict."""
    if isinstance(layers, Mapping):
        sizes = {a.shape[0] if a.ndim else None for a in jax.tree.leaves(layers)}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                f"stacked layer parameters must all share a leading [num_layers] axis; got leading sizes {sorted(map(str, sizes))}."
            )
        return sizes.pop()
    return len(layers)


def _stack_init(
    layer_init: Callable[[jax.Array], Params],
    key: jax.Array,
    n_layers: int,
    d_model: int,
    *,
    final_norm: bool,
    stacked: bool,
    use_bias: bool,
) -> Params:
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
                             use_bias=use_bias, weight_init=weight_init, output_scale=output_scale)
    return _stack_init(init, key, num_layers, d_model, final_norm=final_norm, stacked=stacked, use_bias=use_bias)


def decoder_stack_init(
    key: jax.Array,
    num_layers: int,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    memory_features: int | None = None,
    final_norm: bool = False,
    stacked: bool = False,
    use_bias: bool = True,
    weight_init: WeightInit | float | None = None,
    output_scale: float = 1.0,
) -> Params:
    """As :func:`encoder_stack_init`, for decoder layers."""
    init = functools.partial(decoder_layer_init, d_model=d_model, num_heads=num_heads, d_ff=d_ff,
                             memory_features=memory_features, use_bias=use_bias,
                             weight_init=weight_init, output_scale=output_scale)
    return _stack_init(init, key, num_layers, d_model, final_norm=final_norm, stacked=stacked, use_bias=use_bias)


def _run_stack(layer_fn, params: Params, x: jax.Array, *, scan: bool | None, unroll: int,
               dropout_key: jax.Array | None, eps: float, dtype: Any) -> jax.Array:
    _require("params", params, ("layers",), "encoder_stack_init / decoder_stack_init")
    layers = params["layers"]
    is_stacked = isinstance(layers, Mapping)
    if not is_stacked and not isinstance(layers, (list, tuple)):
        raise ValueError(
            f"params['layers'] must be a list of layer dicts or a stacked dict; got {type(layers).__name__}."
        )
    n = num_layers(layers)
    if n == 0:
        raise ValueError("params['layers'] is empty; a stack needs at least one layer.")
    _checks.positive_int("unroll", unroll)
    scan = is_stacked if scan is None else bool(scan)
    if dtype is not None:
        x = jnp.asarray(x).astype(dtype)
    keys = None if dropout_key is None else jax.random.split(dropout_key, n)
    if scan:
        stacked = layers if is_stacked else stack_layers(layers)

        def body(h, xs):
            layer, key = xs
            return layer_fn(layer, h, key), None

        x, _ = jax.lax.scan(body, x, (stacked, keys), unroll=unroll)
    else:
        per_layer = unstack_layers(layers) if is_stacked else layers
        for i, layer in enumerate(per_layer):
            x = layer_fn(layer, x, None if keys is None else keys[i])
    if "final_norm" in params:
        x = layer_norm(params["final_norm"], x, eps=eps)
    return x


def encoder_stack(
    params: Params,
    x: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    dropout_key: jax.Array | None = None,
    eps: float = 1e-5,
    dtype: Any = None,
    **layer_options: Any,
) -> jax.Array:
    """A stack of encoder layers (then ``final_norm`` if present) on ``x`` ``[b, t, d]``.

    Args:
      params: from :func:`encoder_stack_init` (or
        :func:`seqjax.interop.torch_transformer.from_torch_encoder`).
      x: ``[b, t, d]``.
      num_heads, mask: as :func:`encoder_layer`; the same mask for every layer.
      scan: run the layers with ``jax.lax.scan`` (one compiled layer body; parameters stacked on a
        leading axis, stacking a list on the fly) or a Python loop (``False``: one traced copy per
        layer). Default: scan for stacked parameters, loop for a list. Both give the same numbers.
      unroll: the scan's ``unroll``.
      dropout_key: split into one key per layer (``jax.random.split(key, L)``) in both modes.
      eps: LayerNorm epsilon of the layers and the final norm.
      dtype: computation dtype.
      **layer_options: ``activation``, ``norm_first``, ``bias``, ``dropout_rate``,
        ``attention_dropout_rate``, ``activation_dropout_rate`` of :func:`encoder_layer`.

    Returns:
      ``[b, t, d]``.
    """
    def layer_fn(layer, h, key):
        return encoder_layer(layer, h, num_heads=num_heads, mask=mask, dropout_key=key, eps=eps, **layer_options)

    return _run_stack(layer_fn, params, x, scan=scan, unroll=unroll, dropout_key=dropout_key, eps=eps, dtype=dtype)


def decoder_stack(
    params: Params,
    x: jax.Array,
    memory: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    memory_mask: jax.Array | None = None,
    scan: bool | None = None,
    unroll: int = 1,
    dropout_key: jax.Array | None = None,
    eps: float = 1e-5,
    dtype: Any = None,
    **layer_options: Any,
) -> jax.Array:
    """A stack of decoder layers on ``x`` ``[b, t, d]`` reading ``memory`` ``[b, s, d_mem]``; the
    arguments as :func:`encoder_stack` and :func:`decoder_layer`."""
    def layer_fn(layer, h, key):
        return decoder_layer(layer, h, memory, num_heads=num_heads, mask=mask, memory_mask=memory_mask,
                             dropout_key=key, eps=eps, dtype=dtype, **layer_options)

    return _run_stack(layer_fn, params, x, scan=scan, unroll=unroll, dropout_key=dropout_key, eps=eps, dtype=dtype)

