"""Boolean attention masks (True = may attend) and the masked softmax they feed.

Every mask here broadcasts to ``[b, h, t, s]`` (batch, heads, query time, key time), the shape of
the attention logits; combine masks with ``&`` or :func:`combine_masks`. A masked logit is
replaced (not offset) by the most negative finite value of the softmax dtype (float32), so nothing
overflows in bfloat16/float16, and a row with no allowed key gives all-zero weights, so its
output is zero, never NaN and never a uniform average over padding::

    w_ij = exp(z_ij) / sum_{k: m_ik} exp(z_ik)   if m_ij
    w_ij = 0                                       otherwise (in particular, if no m_ik holds)

PyTorch uses other conventions: additive float masks (0 = attend, -inf = blocked),
``key_padding_mask`` with True = *ignore*, and in ``nn.MultiheadAttention`` a boolean
``attn_mask`` with True = *not allowed*. ``F.scaled_dot_product_attention``'s boolean mask is
already ours (True = attend). Convert once, at the boundary, with the ``from_torch_*`` functions
(they take numpy or JAX arrays: pass ``tensor.numpy()``).

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.attention import padding_mask, causal_mask, combine_masks
    >>> mask = combine_masks(padding_mask(jnp.array([3, 1]), 3), causal_mask(3))
    >>> mask.shape
    (2, 1, 3, 3)
    >>> mask[1, 0].astype(int).tolist()
    [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.export import is_symbolic_dim

from seqjax import _checks


def masked_softmax(logits: jax.Array, mask: jax.Array | None = None, axis: int = -1) -> jax.Array:
    """Softmax over ``axis`` in float32 with masked entries (``mask`` False) exactly zero.

    A row whose entries are all masked gives zeros (not NaN, not uniform), and so do its
    gradients. Returns float32; ``mask`` must broadcast to ``logits``.
    """
    logits = logits.astype(jnp.float32)
    if mask is None:
        return jax.nn.softmax(logits, axis=axis)
    mask = jnp.broadcast_to(mask, logits.shape)
    # where (not +): adding the most negative value to a negative logit would overflow to -inf.
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=axis)
    # Partially masked rows are already exactly zero there (exp underflows); this zeroes the
    # rows with no allowed key, which the softmax alone would make uniform.
    return jnp.where(mask, weights, 0.0)


def sequence_mask(seq_lengths: Any, max_len: int) -> jax.Array:
    """``[b, max_len]``: True at the valid (non-padded) positions ``j < seq_lengths[b]``.

    Right padding, as ``seq_lengths`` in :func:`seqjax.recurrence.rnn`. This is a per-token
    mask, not an attention mask: attention takes :func:`padding_mask` (``[b, 1, 1, s]``).
    """
    _checks.nonnegative_int("max_len", max_len)
    seq_lengths = _lengths("seq_lengths", seq_lengths, max_len)
    return jnp.arange(max_len)[None, :] < seq_lengths[:, None]


def padding_mask(seq_lengths: Any, max_len: int) -> jax.Array:
    """Key-padding mask ``[b, 1, 1, s]``: query ``i`` may attend key ``j`` iff ``j < seq_lengths[b]``.

    Args:
      seq_lengths: ``[b]`` integers in ``[0, max_len]``, the number of valid keys per sequence.
      max_len: ``s``, the padded key length.
    """
    return sequence_mask(seq_lengths, max_len)[:, None, None, :]


def causal_mask(q_len: int, kv_len: int | None = None, *, offset: int = 0) -> jax.Array:
    """Causal mask ``[1, 1, t, s]``: query ``i`` may attend key ``j`` iff ``j <= i + offset``.

    The diagonal is allowed (a position sees itself). ``kv_len`` defaults to ``q_len``; with
    ``offset=0`` the square ``t x t`` case is PyTorch's ``is_causal`` and
    ``jnp.tril(ones((t, s)))``. For decoding with a cache of ``s`` keys whose last ``t`` are the
    current queries, use ``offset = s - t`` (query ``i`` sits at absolute position ``i + offset``).
    """
    kv_len = q_len if kv_len is None else kv_len
    for name, size in (("q_len", q_len), ("kv_len", kv_len)):
        if not is_symbolic_dim(size):  # a symbolic length (jax.export "b, t") passes
            _checks.nonnegative_int(name, size)
    if not isinstance(offset, (int, np.integer)):
        raise ValueError(f"offset must be an integer; got {offset!r}.")
    # iota rather than arange: also traces with symbolic lengths (jax.export, jax2onnx)
    rows = jax.lax.broadcasted_iota(jnp.int32, (q_len, kv_len), 0) + offset
    return (jax.lax.broadcasted_iota(jnp.int32, (q_len, kv_len), 1) <= rows)[None, None]


def cross_attention_mask(
    tgt_lengths: Any, src_lengths: Any, q_len: int, kv_len: int
) -> jax.Array:
    """``[b, 1, t, s]``: True iff query (target) ``i < tgt_lengths[b]`` and key (source)
    ``j < src_lengths[b]``.

    Padded query rows are fully masked, so their attention output is zero.
    """
    q = sequence_mask(tgt_lengths, q_len)
    k = sequence_mask(src_lengths, kv_len)
    if q.shape[0] != k.shape[0]:
        raise ValueError(
            f"tgt_lengths and src_lengths must have the same batch size; got {q.shape[0]} "
            f"and {k.shape[0]}."
        )
    return (q[:, :, None] & k[:, None, :])[:, None]


def combine_masks(*masks: Any) -> jax.Array | None:
    """Logical AND of boolean masks (``None`` entries skipped; all ``None`` gives ``None``).

    The masks broadcast against each other (numpy rules, aligned from the right, rank at most 4).
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    arrays = []
    for index, mask in enumerate(present):
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise ValueError(
                f"masks[{index}] must be boolean (True = may attend); got dtype {mask.dtype}."
            )
        if mask.ndim > 4:
            raise ValueError(
                f"masks[{index}] must have rank <= 4 ([batch, heads, q_len, kv_len]); got shape "
                f"{tuple(mask.shape)}."
            )
        arrays.append(mask)
    try:
        shape = jnp.broadcast_shapes(*(tuple(m.shape) for m in arrays))  # symbolic dims too (jax.export)
    except ValueError:
        raise ValueError(
            "masks do not broadcast together; got shapes "
            f"{[tuple(m.shape) for m in arrays]} (expected shapes broadcastable to "
            "[batch, heads, q_len, kv_len])."
        ) from None
    out = jnp.ones(shape, bool)
    for mask in arrays:
        out = out & mask
    return out


# --- PyTorch conventions ------------------------------------------------------------------------


def from_torch_additive_mask(mask: Any, *, num_heads: int | None = None, threshold: float = -1e4) -> jax.Array:
    """Convert a PyTorch additive float mask (0 = attend, -inf = blocked) to a boolean mask.

    Entries equal to 0 become True; ``-inf`` or anything ``<= threshold`` (the ``-1e4``/``-1e9``
    of older code) becomes False. Other values are a *bias*, not a mask: they raise ``ValueError``
    (pass them as ``bias=`` instead). That check needs a concrete array (outside ``jit``).

    Shapes: ``[t, s]`` gives ``[1, 1, t, s]``; ``[b * num_heads, t, s]`` (PyTorch's per-head
    layout) needs ``num_heads`` and gives ``[b, num_heads, t, s]``; rank 4 is kept.
    """
    mask = jnp.asarray(mask)
    if not jnp.issubdtype(mask.dtype, jnp.floating):
        raise ValueError(
            f"mask must be a floating-point additive mask (0 / -inf); got dtype {mask.dtype}. "
            "Use from_torch_attn_mask for boolean nn.MultiheadAttention masks."
        )
    if not isinstance(mask, jax.core.Tracer):
        values = np.asarray(mask, np.float64)
        stray = values[(values != 0) & ~(values <= threshold)]
        if stray.size:
            raise ValueError(
                f"mask must hold only 0 (attend) and -inf or values <= {threshold} (blocked); got "
                f"other values such as {stray[:3].tolist()}: that is an additive bias, pass it as "
                "bias= instead."
            )
    return _torch_mask_shape("mask", mask == 0, num_heads)


def from_torch_attn_mask(attn_mask: Any, *, num_heads: int | None = None) -> jax.Array:
    """Convert ``torch.nn.MultiheadAttention``'s ``attn_mask`` (bool True = *not allowed*, or
    additive float) to a boolean mask (True = may attend) broadcastable to ``[b, h, t, s]``.

    Note ``F.scaled_dot_product_attention``'s boolean mask already means True = attend: use it
    as is (do not pass it here).
    """
    attn_mask = jnp.asarray(attn_mask)
    if attn_mask.dtype == jnp.bool_:
        return _torch_mask_shape("attn_mask", ~attn_mask, num_heads)
    return from_torch_additive_mask(attn_mask, num_heads=num_heads)


def from_torch_key_padding_mask(key_padding_mask: Any) -> jax.Array:
    """Convert PyTorch's ``key_padding_mask`` ``[b, s]`` (bool True = *ignore* this key, or
    additive float) to a boolean key mask ``[b, 1, 1, s]`` (True = may attend)."""
    key_padding_mask = jnp.asarray(key_padding_mask)
    if key_padding_mask.ndim != 2:
        raise ValueError(
            f"key_padding_mask must have shape [batch, kv_len]; got {tuple(key_padding_mask.shape)}."
        )
    if key_padding_mask.dtype == jnp.bool_:
        keep = ~key_padding_mask
    else:
        keep = from_torch_additive_mask(key_padding_mask)[0, 0]
    return keep[:, None, None, :]


def _torch_mask_shape(name: str, keep: jax.Array, num_heads: int | None) -> jax.Array:
    if keep.ndim == 2:
        return keep[None, None]
    if keep.ndim == 3:
        if num_heads is None:
            raise ValueError(
                f"{name} with shape {tuple(keep.shape)} is PyTorch's [batch * heads, q_len, kv_len] "
                "layout; pass num_heads to split it."
            )
        _checks.positive_int("num_heads", num_heads)
        _checks.divides("num_heads", num_heads, f"{name}.shape[0]", keep.shape[0])
        return keep.reshape(keep.shape[0] // num_heads, num_heads, *keep.shape[1:])
    if keep.ndim == 4:
        return keep
    raise ValueError(
        f"{name} must have shape [q_len, kv_len], [batch * heads, q_len, kv_len] or "
        f"[batch, heads, q_len, kv_len]; got {tuple(keep.shape)}."
    )


def _lengths(name: str, lengths: Any, max_len: int) -> jax.Array:
    lengths = _checks.integer_array(name, lengths)
    if lengths.ndim != 1:
        raise ValueError(f"{name} must have shape [batch]; got {tuple(lengths.shape)}.")
    return _checks.seq_lengths(name, lengths, batch=lengths.shape[0], time=max_len)
