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
    mask = _checks.attention_mask("mask", mask, query.shape, s, unbatched)
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
    # Group the query heads by the kv head they read (no repeated copy of the keys and values),
    # stacked as rows: [b, h_kv, g t, .] blocks have no axis of size 1, which made XLA copy the
    # logits to another layout; [b, h_kv, g t, s] -> [b, h, t, s] is a free reshape.
    q = query.reshape(b, t, h_kv, groups, d).transpose(0, 2, 3, 1, 4).reshape(b, h_kv, groups * t, d)
    k_heads = jnp.swapaxes(key, 1, 2)  # [b, h_kv, s, d]
    logits = jnp.einsum("bkrd,bksd->bkrs", q, k_heads, preferred_element_type=jnp.float32)
    logits = logits.reshape(b, h, t, s) * scale
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    weights = masked_softmax(logits, mask)

    probs = weights
    if dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    probs = probs.astype(value.dtype).reshape(b, h_kv, groups * t, s)
    out = jnp.einsum("bkrs,bksv->bkrv", probs, jnp.swapaxes(value, 1, 2))
    out = out.reshape(b, h_kv, groups, t, -1).transpose(0, 3, 1, 2, 4).reshape(b, t, h, value.shape[-1])
    return out, weights.astype(value.dtype)



def dense_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    scale: float | jax.Array | None = None,
) -> jax.Array:
    """Dense scaled dot-product attention with one fused softmax and a hand-written gradient.

    The function of :func:`dot_product_attention` without bias, dropout or returned weights, made
    as lean as XLA allows for short sequences (the dense route of
    :func:`seqjax.attention.memory_efficient_attention`)::

        S = scale * Q K^T     P = softmax_j(S, masked)     out = P V          (per head)

    The gradient is a :func:`jax.custom_vjp` that keeps ``P`` (``[b, h, t, s]`` float32, the
    only quadratic residual) and recomputes nothing::

        D = rowsum(dout * out)      dP = dout V^T        dS = P * (dP - D)
        dV = P^T dout               dQ = scale dS K      dK = scale dS^T Q
        dscale = sum(Q * dS K)      (a traced ``scale`` gets its gradient)

    Layout inside: the ``g = h / h_kv`` query heads that share a kv head are stacked as rows,
    ``[b, h_kv, g t, s]`` blocks, so no axis of size 1 (which made XLA copy the score matrix to
    another layout) and no copy or transpose of an ``N x N`` matrix: only the ``[N, d]`` operands
    are transposed. Without a mask the softmax (scale, max, exp, sum, normalise) is one fusion
with the ``Q K^T`` product (XLA CPU, jax 0.10); a mask or ``causal`` adds a select pass. Rows with no allowed key
    give zeros and zero gradients; masked logits take the most negative finite float32.

    Reverse-mode only (``jax.grad``, ``jax.vjp``; a custom VJP has no forward mode): use
    :func:`dot_product_attention` for ``jax.jvp`` / ``jax.hessian``.

    Args:
      query: ``[b, t, h, d]`` (or unbatched ``[t, h, d]``).
      key: ``[b, s, h_kv, d]``, ``h_kv`` dividing ``h``.
      value: ``[b, s, h_kv, d_v]``.
      mask: boolean, True = may attend, broadcastable to ``[b, h, t, s]`` (``[h, t, s]``
        unbatched).
      causal: also mask the keys ``j > i`` (as ``causal_mask(t, s)``), built from indices.
      scale: multiplies the logits; default ``1 / sqrt(d)``; may be a traced array.

    Returns:
      ``[b, t, h, d_v]`` in the inputs' promoted dtype.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.attention import causal_mask, dot_product_attention
        >>> from seqjax.attention.dot_product import dense_attention
        >>> q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 6, 4, 8))
        >>> bool(jnp.allclose(dense_attention(q, k, v, causal=True),
        ...                   dot_product_attention(q, k, v, mask=causal_mask(6)), atol=1e-6))
        True
    """
    query, key, value, unbatched = _checks.attention_inputs(query, key, value)
    d = query.shape[-1]
    mask = _checks.attention_mask("mask", mask, query.shape, key.shape[1], unbatched)
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be a bool; got {causal!r}.")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    out = _dense(query, key, value, mask, jnp.asarray(scale, jnp.float32), causal)
    return out[0] if unbatched else out


_NEG = float(jnp.finfo(jnp.float32).min)


@functools.partial(jax.jit, static_argnums=(5,))
def _dense(query, key, value, mask, scale, causal):
    """Validated ``[b, t, h, d]`` inputs to ``[b, t, h, d_v]``: to the row-stacked layout, kernel, back."""
    b, t, h, d = query.shape
    h_kv = key.shape[2]
    g = h // h_kv
    q = query.reshape(b, t, h_kv, g, d).transpose(0, 2, 3, 1, 4).reshape(b, h_kv, g * t, d)
    k, v = jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2)  # [b, h_kv, s, d]
    if mask is not None:
        mask = _rows_mask(mask, h_kv, g, t)
    out = _dense_kernel(q, k, v, mask, scale, causal, t)  # [b, h_kv, g t, d_v]
    return out.reshape(b, h_kv, g, t, -1).transpose(0, 3, 1, 2, 4).reshape(b, t, h, -1)


def _rows_mask(mask, h_kv, g, t):
    """A ``[mb, mh, mt, ms]`` mask (each axis 1 or full) for the ``[b, h_kv, g t, s]`` blocks."""
    mb, mh, mt, ms = mask.shape
    if g == 1 or (mh == 1 and mt == 1):
        return mask  # [mb, 1|h_kv, 1|t, ms] already broadcasts
    kv, gg = (h_kv, g) if mh > 1 else (1, 1)
    mask = jnp.broadcast_to(mask.reshape(mb, kv, gg, mt, ms), (mb, kv, g, t, ms))
    return mask.reshape(mb, kv, g * t, ms)


def _dense_valid(mask, causal, rows, s, t):
    """Boolean broadcastable to ``[b, h_kv, rows, s]`` (row r is query position ``r % t``), or None."""
    valid = mask
    if causal:
        r = jax.lax.broadcasted_iota(jnp.int32, (rows, s), 0) % t
        c = jax.lax.broadcasted_iota(jnp.int32, (rows, s), 1)
        valid = c <= r if valid is None else valid & (c <= r)
    return valid


def _dense_forward(q, k, v, mask, scale, causal, t):
    """``out [b, h_kv, rows, d_v]`` and the float32 weights ``P [b, h_kv, rows, s]``."""
    rows, s = q.shape[2], k.shape[2]
    logits = scale * jnp.einsum("bkrd,bksd->bkrs", q, k, preferred_element_type=jnp.float32)
    valid = _dense_valid(mask, causal, rows, s, t)
    if valid is not None:
        logits = jnp.where(valid, logits, _NEG)
    m = jnp.max(logits, axis=-1, keepdims=True)
    if valid is not None:
        # A row with no allowed key has m = _NEG: shift it by 0 so exp(_NEG) = 0 there.
        m = jnp.where(m == _NEG, 0.0, m)
    p = jnp.exp(logits - m)
    total = jnp.sum(p, axis=-1, keepdims=True)
    inv = 1.0 / total if valid is None else jnp.where(total > 0.0, 1.0 / total, 0.0)
    p = p * inv
    out = jnp.einsum("bkrs,bksv->bkrv", p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return out.astype(v.dtype), p


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _dense_kernel(q, k, v, mask, scale, causal, t):
    return _dense_forward(q, k, v, mask, scale, causal, t)[0]


def _dense_kernel_fwd(q, k, v, mask, scale, causal, t):
    out, p = _dense_forward(q, k, v, mask, scale, causal, t)
    return out, (q, k, v, mask, scale, out, p)


def _dense_kernel_bwd(causal, t, residuals, dout):
    q, k, v, _, scale, out, p = residuals
    f32 = jnp.float32
    dout = dout.astype(v.dtype)
    delta = jnp.sum(dout.astype(f32) * out.astype(f32), axis=-1, keepdims=True)
    dp = jnp.einsum("bkrv,bksv->bkrs", dout, v, preferred_element_type=f32)
    ds = (p * (dp - delta)).astype(q.dtype)  # dL/dlogits (before the scale)
    dq = jnp.einsum("bkrs,bksd->bkrd", ds, k, preferred_element_type=f32)
    dk = jnp.einsum("bkrs,bkrd->bksd", ds, q, preferred_element_type=f32)
    dv = jnp.einsum("bkrs,bkrv->bksv", p.astype(dout.dtype), dout, preferred_element_type=f32)
    dscale = jnp.sum(q.astype(f32) * dq).astype(scale.dtype)
    return ((scale * dq).astype(q.dtype), (scale * dk).astype(k.dtype), dv.astype(v.dtype),
            None, dscale)


_dense_kernel.defvjp(_dense_kernel_fwd, _dense_kernel_bwd)


def repeat_kv_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """Repeat the kv heads of ``x`` ``[b, s, h_kv, d]`` to ``[b, s, num_heads, d]`` (head ``n``
    gets kv head ``n // (num_heads / h_kv)``): the explicit form of grouped-query attention."""
    x = _checks.floating_array("x", x, ndim=4, layout="[batch, kv_time, kv_heads, head_dim]")
    _checks.positive_int("num_heads", num_heads)
    _checks.divides("the number of key/value heads", x.shape[2], "num_heads", num_heads)
    return jnp.repeat(x, num_heads // x.shape[2], axis=2)
