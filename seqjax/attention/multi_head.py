"""Multi-head attention as pure functions: projections, head split/merge, attention, output.

For inputs ``x_q`` ``[b, t, d_q]`` (queries) and ``x_k``, ``x_v`` ``[b, s, d_kv]`` (keys, values;
all three the same tensor for self-attention)::

    Q = x_q W_q + b_q    -> split into h heads      [b, t, h, d_k]
    K = x_k W_k + b_k    -> split into h_kv heads   [b, s, h_kv, d_k]
    V = x_v W_v + b_v    -> split into h_kv heads   [b, s, h_kv, d_v]
    head_n = softmax(Q_n K_{g(n)}^T / sqrt(d_k), masked) V_{g(n)}      g(n) = n // (h / h_kv)
    MultiHead = Concat(head_1, ..., head_h) W_o + b_o                   [b, t, d_out]

(Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2). ``h_kv = h`` is standard multi-head
attention, ``h_kv < h`` grouped-query attention (each kv head serves ``h / h_kv`` consecutive query
heads), ``h_kv = 1`` multi-query attention. The attention itself is
:func:`seqjax.attention.dot_product_attention`.

Parameter layout (row-vector convention; head ``n`` owns columns ``n*d_k : (n+1)*d_k``, the
same packing as PyTorch, so a converted ``nn.MultiheadAttention`` is a transpose away)::

    w_q: [d_q,  h    * d_k]   b_q: [h    * d_k]
    w_k: [d_kv, h_kv * d_k]   b_k: [h_kv * d_k]
    w_v: [d_kv, h_kv * d_v]   b_v: [h_kv * d_v]
    w_o: [h * d_v, d_out]     b_o: [d_out]
    (biases absent with use_bias=False)

Only ``num_heads`` must be passed at call time: ``d_k``, ``h_kv`` and ``d_v`` follow from the
shapes. Init: Xavier (Glorot) uniform per matrix, zero biases. PyTorch's
``nn.MultiheadAttention`` applies Xavier to the *packed* ``[3E, E]`` in-projection (so its bound
is ``sqrt(6 / 4E)``, not ``sqrt(6 / 2E)``) and Kaiming-uniform to the output projection;
convert its weights with :func:`seqjax.interop.torch_attention.from_torch_mha` for parity.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.attention import multi_head_init, self_attention, causal_mask
    >>> params = multi_head_init(jax.random.key(0), 16, num_heads=4, num_kv_heads=2)
    >>> x = jnp.ones((2, 5, 16))
    >>> out, w = self_attention(params, x, num_heads=4, mask=causal_mask(5), return_weights=True)
    >>> out.shape, w.shape
    ((2, 5, 16), (2, 4, 5, 5))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.primitives import init_weights
from seqjax.attention.dot_product import dot_product_attention
from seqjax.primitives import dense

Params = dict[str, jax.Array]
_WEIGHTS = ("w_q", "w_k", "w_v", "w_o")


def multi_head_init(
    key: jax.Array,
    d_model: int,
    num_heads: int,
    *,
    num_kv_heads: int | None = None,
    head_dim: int | None = None,
    value_head_dim: int | None = None,
    kv_features: int | None = None,
    out_features: int | None = None,
    use_bias: bool = True,
) -> Params:
    """Parameters in the layout of the module docstring.

    Args:
      key: PRNG key.
      d_model: query input features ``d_q``.
      num_heads: ``h``.
      num_kv_heads: ``h_kv`` (default ``h``), must divide ``h``.
      head_dim: ``d_k`` (default ``d_model // h``; then ``h`` must divide ``d_model``).
      value_head_dim: ``d_v`` (default ``d_k``).
      kv_features: key/value input features ``d_kv`` (default ``d_model``).
      out_features: ``d_out`` (default ``d_model``).
      use_bias: create zero biases ``b_q, b_k, b_v, b_o``.
    """
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("num_heads", num_heads)
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    _checks.positive_int("num_kv_heads", num_kv_heads)
    _checks.divides("num_kv_heads", num_kv_heads, "num_heads", num_heads)
    if head_dim is None:
        _checks.divides("num_heads", num_heads, "d_model", d_model)
        head_dim = d_model // num_heads
    _checks.positive_int("head_dim", head_dim)
    value_head_dim = head_dim if value_head_dim is None else value_head_dim
    _checks.positive_int("value_head_dim", value_head_dim)
    kv_features = d_model if kv_features is None else kv_features
    _checks.positive_int("kv_features", kv_features)
    out_features = d_model if out_features is None else out_features
    _checks.positive_int("out_features", out_features)

    shapes = (
        ("q", (d_model, num_heads * head_dim)),
        ("k", (kv_features, num_kv_heads * head_dim)),
        ("v", (kv_features, num_kv_heads * value_head_dim)),
        ("o", (num_heads * value_head_dim, out_features)),
    )
    weights = init_weights(key, [shape for _, shape in shapes])
    params = {f"w_{n}": w for (n, _), w in zip(shapes, weights)}
    if use_bias:
        params |= {f"b_{n}": jnp.zeros((shape[1],), jnp.float32) for n, shape in shapes}
    return params


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """``[..., t, h * d] -> [..., t, h, d]`` (head ``n`` takes features ``n*d : (n+1)*d``)."""
    _checks.positive_int("num_heads", num_heads)
    if x.ndim < 1 or x.shape[-1] % num_heads:
        raise ValueError(
            f"x has {x.shape[-1] if x.ndim else 0} features (shape {tuple(x.shape)}), which "
            f"num_heads = {num_heads} does not divide."
        )
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: jax.Array) -> jax.Array:
    """``[..., t, h, d] -> [..., t, h * d]``, the inverse of :func:`split_heads`."""
    if x.ndim < 2:
        raise ValueError(f"x must have a heads axis and a features axis; got shape {tuple(x.shape)}.")
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def head_dims(params: Params, num_heads: int) -> tuple[int, int, int]:
    """``(d_k, h_kv, d_v)`` read from the parameter shapes; validates the layout."""
    missing = [name for name in _WEIGHTS if name not in params]
    if missing:
        raise ValueError(
            f"params is missing {missing}; expected the keys of multi_head_init "
            f"({list(_WEIGHTS)} and optionally b_q, b_k, b_v, b_o)."
        )
    _checks.positive_int("num_heads", num_heads)
    q_cols = params["w_q"].shape[1]
    if q_cols % num_heads:
        raise ValueError(
            f"params['w_q'] has {q_cols} columns (shape {tuple(params['w_q'].shape)}), which "
            f"num_heads = {num_heads} does not divide."
        )
    d_k = q_cols // num_heads
    k_cols, v_cols = params["w_k"].shape[1], params["w_v"].shape[1]
    if k_cols % d_k or num_heads % (k_cols // d_k):
        raise ValueError(
            f"params['w_k'] has {k_cols} columns; expected h_kv * d_k with d_k = {d_k} and h_kv "
            f"dividing num_heads = {num_heads}."
        )
    h_kv = k_cols // d_k
    if v_cols % h_kv or params["w_o"].shape[0] != num_heads * (v_cols // h_kv):
        raise ValueError(
            f"params['w_v'] ({tuple(params['w_v'].shape)}) and params['w_o'] "
            f"({tuple(params['w_o'].shape)}) must be [d_kv, h_kv * d_v] and [h * d_v, d_out] with "
            f"h = {num_heads}, h_kv = {h_kv}."
        )
    return d_k, h_kv, v_cols // h_kv


def _project(params: Params, name: str, x: jax.Array) -> jax.Array:
    return dense(x, params[f"w_{name}"], params.get(f"b_{name}"))


def project_queries(params: Params, query: jax.Array, *, num_heads: int) -> jax.Array:
    """The query projection split into heads: ``q [b, t, h, d_k]``."""
    head_dims(params, num_heads)
    return split_heads(_project(params, "q", query), num_heads)


def project_kv(params: Params, key: jax.Array, value: jax.Array, *, num_heads: int) -> tuple[jax.Array, jax.Array]:
    """The key and value projections split into heads: ``k [b, s, h_kv, d_k]``,
    ``v [b, s, h_kv, d_v]`` (what a KV cache stores)."""
    _, h_kv, _ = head_dims(params, num_heads)
    return split_heads(_project(params, "k", key), h_kv), split_heads(_project(params, "v", value), h_kv)


def project_qkv(
    params: Params,
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    num_heads: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input projections, split into heads: ``q [b, t, h, d_k]``, ``k [b, s, h_kv, d_k]``,
    ``v [b, s, h_kv, d_v]``."""
    return (project_queries(params, query, num_heads=num_heads),
            *project_kv(params, key, value, num_heads=num_heads))


def output_projection(params: Params, heads: jax.Array) -> jax.Array:
    """Concatenate the heads ``[b, t, h, d_v]`` and apply ``W_o, b_o``: ``[b, t, d_out]``."""
    return _project(params, "o", merge_heads(heads))


def multi_head_attention(
    params: Params,
    query: jax.Array,
    key: jax.Array | None = None,
    value: jax.Array | None = None,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    return_weights: bool = False,
    scale: float | None = None,
    dtype: Any = None,
):
    """Multi-head (or grouped-query) attention; see the module docstring for the equations.

    Args:
      params: from :func:`multi_head_init` (or a converter).
      query: ``[b, t, d_q]``.
      key: ``[b, s, d_kv]``; default ``query`` (self-attention).
      value: ``[b, s, d_kv]``; default ``key``.
      num_heads: ``h``.
      mask: boolean, True = may attend, broadcastable to ``[b, h, t, s]``.
      bias: float logit bias broadcastable to ``[b, h, t, s]`` (ALiBi, ...).
      dropout_rate, dropout_key: attention-weight dropout, active only with a key.
      return_weights: also return the pre-dropout weights ``[b, h, t, s]`` per head (PyTorch's
        ``average_attn_weights=True`` is their mean over axis 1).
      scale: logit scale, default ``1 / sqrt(d_k)``.
      dtype: computation dtype (default: the query's); parameters are cast to it, the softmax
        stays float32.

    Returns:
      ``[b, t, d_out]``, or ``(output, weights)`` with ``return_weights``.
    """
    query = _checks.floating_array("query", query, ndim=3, layout="[batch, time, features]")
    key = query if key is None else _checks.floating_array("key", key, ndim=3, layout="[batch, kv_time, features]")
    value = key if value is None else _checks.floating_array("value", value, ndim=3, layout="[batch, kv_time, features]")
    head_dims(params, num_heads)
    _checks.feature_size("query", query, params["w_q"].shape[0])
    _checks.feature_size("key", key, params["w_k"].shape[0])
    _checks.feature_size("value", value, params["w_v"].shape[0])
    if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
        raise ValueError(
            "key and value must be [batch, kv_time, features] with the same batch and kv_time, and "
            f"the batch of query; got query {tuple(query.shape)}, key {tuple(key.shape)}, value "
            f"{tuple(value.shape)}."
        )
    dtype = jnp.dtype(dtype or query.dtype)
    query, key, value = query.astype(dtype), key.astype(dtype), value.astype(dtype)
    q, k, v = project_qkv(params, query, key, value, num_heads=num_heads)
    heads, weights = dot_product_attention(
        q, k, v, mask=mask, bias=bias, dropout_rate=dropout_rate, dropout_key=dropout_key,
        return_weights=True, scale=scale,
    )
    out = output_projection(params, heads)
    return (out, weights) if return_weights else out


def self_attention(params: Params, x: jax.Array, *, num_heads: int, **options: Any):
    """:func:`multi_head_attention` with queries, keys and values all from ``x`` ``[b, t, d]``."""
    return multi_head_attention(params, x, x, x, num_heads=num_heads, **options)


def cross_attention(params: Params, x: jax.Array, memory: jax.Array, *, num_heads: int, **options: Any):
    """:func:`multi_head_attention` with queries from ``x`` ``[b, t, d_q]`` and keys and values
    from ``memory`` ``[b, s, d_kv]`` (the encoder output)."""
    return multi_head_attention(params, x, memory, memory, num_heads=num_heads, **options)
