"""Scaled dot-product attention (Vaswani et al. 2017), with masks, bias, dropout and grouped heads.

Layout: ``[b, t, h, d]`` (batch, time, heads, head features), as
:func:`jax.nn.dot_product_attention` and Flax; the weights come back as ``[b, h, t, s]``. For
each batch element and head::

    z_ij  = scale * q_i . k_j + bias_ij            scale = 1 / sqrt(d) by default
    w_ij  = softmax_j(z_ij over keys with mask_ij)  (float32; 0 where masked; rows with no key: 0)
    out_i = sum_j dropout(w)_ij v_j

Grouped-query attention (Ainslie et al. 2023): ``key`` and ``value`` may have ``h_kv`` heads with
``h_kv`` dividing ``h``; query head ``n`` reads kv head ``n // (h / h_kv)`` (each kv head is
*repeated* for ``h / h_kv`` consecutive query heads, as ``jnp.repeat``, PyTorch's
``enable_gqa`` and ``jax.nn.dot_product_attention``). ``h_kv = 1`` is multi-query attention. No
copy of the kv heads is made: the query heads are grouped instead.

Dropout (rate ``dropout_rate``) acts on the weights, scaled by ``1 / (1 - rate)``, and only when a
``dropout_key`` is given (no key: evaluation mode, as everywhere in seqjax). The returned weights
are the pre-dropout ones, for visualisation (a heatmap of dropped weights shows the dropout
mask, not what the model attends to).
"""

from __future__ import annotations

import functools
import math
import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.attention.masks import masked_softmax


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    bias: jax.Array | None = None,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    return_weights: bool = False,
    scale: float | None = None,
):
    """Scaled dot-product attention ``softmax(Q K^T / sqrt(d) + bias, masked) V`` per head.

    Args:
      query: ``[b, t, h, d]`` (or unbatched ``[t, h, d]``).
      key: ``[b, s, h_kv, d]``, ``h_kv`` dividing ``h``.
      value: ``[b, s, h_kv, d_v]``.
      mask: boolean, True = may attend, of rank 4 broadcastable to ``[b, h, t, s]`` (rank 3
        ``[h, t, s]`` unbatched): size-1 axes must be explicit, so a bare ``[b, s]`` padding
        mask, which would read as ``[t, s]`` when ``b == t``, is refused. Build masks with
        :mod:`seqjax.attention.masks` (``padding_mask`` ``[b, 1, 1, s]``, ``causal_mask``
        ``[1, 1, t, s]``). A query row with no allowed key outputs
        zeros.
      bias: float, added to the scaled logits, of the rank of ``mask`` and broadcastable like it (ALiBi, relative
        position biases). Use finite values; blocked positions belong in ``mask``.
      dropout_rate: attention-weight dropout in ``[0, 1)``; active only with ``dropout_key``.
      dropout_key: PRNG key for the dropout.
      return_weights: also return the (pre-dropout) weights ``[b, h, t, s]``.
      scale: multiplies the logits; default ``1 / sqrt(d)``.

    Returns:
      ``out`` ``[b, t, h, d_v]`` in the inputs' (promoted) dtype, and with ``return_weights``
      ``(out, weights)``; the weights have the same dtype as ``out``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.attention import dot_product_attention, causal_mask
        >>> q = k = v = jnp.ones((2, 5, 4, 8))
        >>> out, w = dot_product_attention(q, k, v, mask=causal_mask(5), return_weights=True)
        >>> out.shape, w.shape
        ((2, 5, 4, 8), (2, 4, 5, 5))
    """
    query, key, value, unbatched = _checks.attention_inputs(query, key, value)
    b, t, h, _ = query.shape
    s = key.shape[1]
    # Unbatched inputs take an unbatched [h, t, s] mask; batched ones an explicit rank-4 mask.
    target = (h, t, s) if unbatched else (b, h, t, s)
    target_layout = "[heads, q_len, kv_len]" if unbatched else "[batch, heads, q_len, kv_len]"
    if mask is not None:
        mask = _checks.boolean_mask("mask", mask, target, target_layout)
        mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
    if bias is not None:
        bias = _checks.broadcastable_float("bias", bias, target, target_layout)
        bias = bias.reshape((1,) * (4 - bias.ndim) + tuple(bias.shape))
    _checks.probability("dropout_rate", dropout_rate)

    dtype = query.dtype
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if dropout_key is None:
        dropout_rate = 0.0
    out, weights = _attention(
        query.astype(dtype), key.astype(dtype), value.astype(dtype), mask, bias, dropout_key,
        jnp.asarray(scale, jnp.float32), dropout_rate=float(dropout_rate),
    )
    if unbatched:
        out, weights = out[0], weights[0]
    return (out, weights) if return_weights else out


@functools.partial(jax.jit, static_argnames=("dropout_rate",))
def _attention(query, key, value, mask, bias, dropout_key, scale, *, dropout_rate: float):
    """The computation behind :func:`dot_product_attention` on validated ``[b, t, h, d]`` inputs
    (jitted: one compilation per shape, also when called eagerly)."""
    b, t, h, d = query.shape
    s, h_kv = key.shape[1], key.shape[2]
    groups = h // h_kv
    # Group the query heads by the kv head they read: no repeated copy of the keys and values.
    q = query.reshape(b, t, h_kv, groups, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", q, key, preferred_element_type=jnp.float32)
    logits = logits.reshape(b, h, t, s) * scale
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    weights = masked_softmax(logits, mask)

    probs = weights
    if dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    probs = probs.astype(value.dtype).reshape(b, h_kv, groups, t, s)
    out = jnp.einsum("bkgts,bskv->btkgv", probs, value).reshape(b, t, h, value.shape[-1])
    return out, weights.astype(value.dtype)


def repeat_kv_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """Repeat the kv heads of ``x`` ``[b, s, h_kv, d]`` to ``[b, s, num_heads, d]`` (head ``n``
    gets kv head ``n // (num_heads / h_kv)``): the explicit form of grouped-query attention."""
    x = _checks.floating_array("x", x, ndim=4, layout="[batch, kv_time, kv_heads, head_dim]")
    _checks.positive_int("num_heads", num_heads)
    _checks.divides("the number of key/value heads", x.shape[2], "num_heads", num_heads)
    return jnp.repeat(x, num_heads // x.shape[2], axis=2)
