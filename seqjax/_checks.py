"""Input validation at the public boundary.

Every check raises ``ValueError`` naming the argument, what it received and what was expected, so
a user never meets a shape error from deep inside XLA, a silent broadcast or a NaN. Checks read
only static information (shapes, dtypes) unless the value is concrete, so they are free under
``jax.jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def floating_array(name: str, x: Any, *, ndim: int | tuple[int, ...], layout: str) -> jax.Array:
    """Return ``x`` as an array after checking that it is floating point and has rank ``ndim``.

    ``layout`` names the axes for the message, for example ``"[batch, time, features]"``.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in allowed:
        raise ValueError(
            f"{name} must have rank {' or '.join(map(str, allowed))} with layout {layout}; "
            f"got shape {tuple(x.shape)} (rank {x.ndim})."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating-point array (float32, bfloat16, ...); got dtype {x.dtype}. "
            "Embed token ids first, or cast with x.astype(jnp.float32)."
        )
    return x


def feature_size(name: str, x: jax.Array, expected: int) -> None:
    """Check that the last axis of ``x`` has ``expected`` features."""
    if x.shape[-1] != expected:
        raise ValueError(
            f"{name} has {x.shape[-1]} features on its last axis (shape {tuple(x.shape)}), "
            f"but the parameters expect {expected}."
        )


def seq_lengths(name: str, lengths: Any, *, batch: int, time: int) -> jax.Array:
    """Validate right-padding lengths: integer, shape ``[batch]``, each in ``[0, time]``.

    Range checks run when the lengths are concrete (outside ``jit``); under ``jit`` only the
    shape and dtype can be checked.
    """
    if not hasattr(lengths, "shape"):
        lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(
            f"{name} must have shape [batch] = ({batch},); got shape {tuple(lengths.shape)}."
        )
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integers; got dtype {lengths.dtype}.")
    if not isinstance(lengths, jax.core.Tracer):
        values = np.asarray(lengths)
        if values.size and (values.min() < 0 or values.max() > time):
            bad = values[(values < 0) | (values > time)]
            raise ValueError(
                f"{name} must lie in [0, {time}] (the padded sequence length); got {bad.tolist()}."
            )
    return lengths.astype(jnp.int32)


def choice(name: str, value: Any, allowed: tuple) -> None:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")


def probability(name: str, value: float) -> None:
    """Check that a rate lies in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1); got {value}.")


def positive_int(name: str, value: Any) -> None:
    """Check that ``value`` is an integer >= 1 (a bool is not an integer here)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def positive_float(name: str, value: Any) -> None:
    """Check that ``value`` is a real number > 0 (an epsilon, a temperature, a scale)."""
    if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_))
            or not value > 0 or not np.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")


def nonnegative_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")


def divides(name: str, value: int, other_name: str, other: int) -> None:
    """Check that ``value`` divides ``other`` (for example kv heads dividing query heads)."""
    if other % value != 0:
        raise ValueError(
            f"{name} = {value} must divide {other_name} = {other}; got remainder {other % value}."
        )


def integer_array(name: str, x: Any, *, shape: tuple[int, ...] | None = None, layout: str = "") -> jax.Array:
    """Return ``x`` as an integer array, optionally of exactly ``shape``."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integers; got dtype {x.dtype}.")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {layout} = {tuple(shape)}; got {tuple(x.shape)}.")
    return x


def boolean_mask(name: str, mask: Any, target: tuple[int, ...], layout: str) -> jax.Array:
    """Check that ``mask`` is boolean, has exactly the rank of ``target`` and broadcasts to it.

    The rank rule is what makes the classic mistake impossible: broadcasting aligns from the
    right, so a ``[batch, kv_len]`` padding mask given for ``[batch, heads, q_len, kv_len]``
    would be read as ``[q_len, kv_len]`` whenever ``batch == q_len``. A lower-rank mask is
    therefore refused outright; give size-1 axes explicitly (``padding_mask`` gives
    ``[b, 1, 1, s]``, ``causal_mask`` ``[1, 1, t, s]``, a ``[t, s]`` array ``m[None, None]``).
    """
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise ValueError(
            f"{name} must be a boolean array (True = may attend); got dtype {mask.dtype}. "
            "Convert PyTorch masks with seqjax.attention.from_torch_additive_mask / "
            "from_torch_key_padding_mask, or compare an integer mask with != 0."
        )
    _explicit_rank(name, mask, target, layout)
    return mask


def attention_mask(name: str, mask: Any, shape: tuple[int, int, int, int], kv_len: int, unbatched: bool):
    """An attention ``mask`` checked against queries of ``shape`` ``(b, t, h, d)`` and ``kv_len``
    keys (:func:`boolean_mask`: ``[h, t, s]`` for unbatched inputs, else ``[b, h, t, s]``, each
    axis full or 1) and returned with rank 4; ``None`` stays ``None``."""
    if mask is None:
        return None
    b, t, h, _ = shape
    target = (h, t, kv_len) if unbatched else (b, h, t, kv_len)
    layout = "[heads, q_len, kv_len]" if unbatched else "[batch, heads, q_len, kv_len]"
    mask = boolean_mask(name, mask, target, layout)
    return mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))


def _explicit_rank(name: str, x: jax.Array, target: tuple[int, ...], layout: str) -> None:
    shape = tuple(x.shape)
    if len(shape) != len(target):
        hint = (" A bare [batch, kv_len] mask would be misread as [q_len, kv_len]: build a key-padding "
                "mask with padding_mask (shape [b, 1, 1, s]), a causal one with causal_mask "
                "([1, 1, t, s]), or add the missing axes with m[None, None]." if len(target) == 4 else
                " Add the missing size-1 axes explicitly (m[None], m[:, None], ...).")
        raise ValueError(
            f"{name} must have rank {len(target)}, {layout} with size-1 axes where it broadcasts; "
            f"got shape {shape} (rank {len(shape)}).{hint}"
        )
    if not all(m in (1, t) for m, t in zip(shape, target)):
        raise ValueError(f"{name} with shape {shape} does not broadcast to {layout} = {tuple(target)}.")


def broadcastable_float(name: str, x: Any, target: tuple[int, ...], layout: str) -> jax.Array:
    """Check that ``x`` is floating point, of the rank of ``target``, broadcasting to it (as
    :func:`boolean_mask`: an attention-logit bias such as ALiBi)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array; got dtype {x.dtype}.")
    _explicit_rank(name, x, target, layout)
    return x


def token_ids(name: str, ids: Any, vocab_size: int, *, ndim: int = 2, layout: str = "[batch, time]") -> jax.Array:
    """Return ``ids`` as an integer array of rank ``ndim`` after checking (when concrete) that
    every id lies in ``[0, vocab_size)``: an out-of-range id would silently read a clipped
    embedding row under ``jit``."""
    ids = integer_array(name, ids)
    if ids.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout} (integer ids); got shape {tuple(ids.shape)}.")
    if not isinstance(ids, jax.core.Tracer) and ids.size:
        values = np.asarray(ids)
        if values.min() < 0 or values.max() >= vocab_size:
            raise ValueError(
                f"{name} must hold ids in [0, {vocab_size}); got values in [{values.min()}, {values.max()}]."
            )
    return ids


def attention_inputs(query: Any, key: Any, value: Any) -> tuple[jax.Array, jax.Array, jax.Array, bool]:
    """Validate ``query [b, t, h, d]``, ``key [b, s, h_kv, d]``, ``value [b, s, h_kv, d_v]`` (or
    all three without the batch axis) for the attention functions.

    Returns the three as rank-4 arrays in one promoted dtype and ``unbatched`` (True when the
    inputs had no batch axis; a leading axis of 1 was added).
    """
    query = floating_array("query", query, ndim=(3, 4), layout="[batch, time, heads, head_dim]")
    unbatched = query.ndim == 3
    layout = "[kv_time, heads, head_dim]" if unbatched else "[batch, kv_time, heads, head_dim]"
    key = floating_array("key", key, ndim=query.ndim, layout=layout)
    value = floating_array("value", value, ndim=query.ndim, layout=layout)
    if unbatched:
        query, key, value = query[None], key[None], value[None]
    b, t, h, d = query.shape
    h_kv = key.shape[2]
    if key.shape[0] != b or value.shape[0] != b:
        raise ValueError(
            f"query, key and value must share the batch size; got shapes {tuple(query.shape)}, "
            f"{tuple(key.shape)} and {tuple(value.shape)}."
        )
    if key.shape[-1] != d:
        raise ValueError(
            f"key has head_dim {key.shape[-1]} (shape {tuple(key.shape)}) but query has {d} "
            f"(shape {tuple(query.shape)}); they must match for q . k."
        )
    if value.shape[1:3] != key.shape[1:3]:
        raise ValueError(
            f"value must have the kv_time and heads of key, {tuple(key.shape[1:3])}; got shape "
            f"{tuple(value.shape)}."
        )
    divides("the number of key/value heads", h_kv, "the number of query heads", h)
    dtype = jnp.result_type(query, key, value)
    return query.astype(dtype), key.astype(dtype), value.astype(dtype), unbatched
