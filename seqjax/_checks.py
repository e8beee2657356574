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
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def nonnegative_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
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
    """Check that ``mask`` is boolean and broadcasts to ``target`` (axes named by ``layout``).

    Only the size-1-or-equal rule of broadcasting is allowed, aligned from the right, and the rank
    may not exceed ``len(target)``: a ``[batch, kv_len]`` padding mask given where
    ``[batch, heads, q_len, kv_len]`` is meant is refused unless its axes happen to fit, so build
    padding masks with :func:`seqjax.attention.padding_mask`.
    """
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise ValueError(
            f"{name} must be a boolean array (True = may attend); got dtype {mask.dtype}. "
            "Convert PyTorch masks with seqjax.attention.from_torch_additive_mask / "
            "from_torch_key_padding_mask, or compare an integer mask with != 0."
        )
    shape = tuple(mask.shape)
    fits = len(shape) <= len(target) and all(
        m in (1, t) for m, t in zip(shape[::-1], target[::-1])
    )
    if not fits:
        raise ValueError(
            f"{name} with shape {shape} does not broadcast to {layout} = {tuple(target)}. "
            "Masks broadcast from the right: a key-padding mask is [batch, 1, 1, kv_len] "
            "(see padding_mask), a causal mask [1, 1, q_len, kv_len]."
        )
    return mask


def broadcastable_float(name: str, x: Any, target: tuple[int, ...], layout: str) -> jax.Array:
    """Check that ``x`` is floating point and broadcasts to ``target`` (like :func:`boolean_mask`)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array; got dtype {x.dtype}.")
    shape = tuple(x.shape)
    if len(shape) > len(target) or not all(m in (1, t) for m, t in zip(shape[::-1], target[::-1])):
        raise ValueError(
            f"{name} with shape {shape} does not broadcast to {layout} = {tuple(target)}."
        )
    return x
