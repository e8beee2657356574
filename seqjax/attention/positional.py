"""Positional information: sinusoidal and learned tables (added to embeddings), rotary embeddings
(RoPE, applied to queries and keys) and ALiBi (a bias on the attention logits).

**Sinusoidal** (Vaswani et al. 2017, section 3.5), interleaved sin/cos per frequency::

    PE(pos, 2i)   = sin(pos / base^(2i / d))        base = 10000
    PE(pos, 2i+1) = cos(pos / base^(2i / d))        i = 0 .. d/2 - 1

It is a fixed constant, never a parameter (a textbook Transformer that registers the table as a
parameter has it overwritten by its Xavier init). For each frequency ``w_i`` the pair ``(sin, cos)`` at ``pos + k`` is
the pair at ``pos`` rotated by the angle ``k w_i``, so ``PE(pos + k)`` is a linear function of
``PE(pos)`` (the property Vaswani et al. cite for choosing it); the tests check this.

**Learned** (BERT, GPT): a ``[max_len, d]`` table initialised N(0, 0.02^2) and trained.

**RoPE** (Su et al. 2021, RoFormer): rotate each feature pair of ``q`` and ``k`` at position ``p``
by the angle ``p theta_i``, ``theta_i = base^(-2i/d)``::

    [x'_a, x'_b] = [x_a cos(p theta_i) - x_b sin(p theta_i),  x_a sin(p theta_i) + x_b cos(p theta_i)]

so ``q_m . k_n`` depends only on ``m - n``. Pairs are ``(2i, 2i+1)`` (``interleaved=True``, the
paper and the seed notes) or ``(i, i + d/2)`` (``interleaved=False``, GPT-NeoX/LLaMA "rotate
half"); the two differ by a fixed permutation of the features.

**ALiBi** (Press et al. 2022): no embeddings; head ``n`` adds ``-m_n |i - j|`` to the logit of
query ``i`` and key ``j`` (for causal attention, ``-m_n (i - j)`` on the allowed ``j <= i``). The
slopes are the geometric sequence ``m_n = 2^(-8 n / h)``, ``n = 1..h``, for ``h`` a power of two,
and for other ``h`` the slopes of the nearest lower power of two followed by every other slope of
the next power of two (the authors' code).

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.attention import sinusoidal_table, add_positions, apply_rope, alibi_bias
    >>> x = add_positions(jnp.zeros((2, 5, 8)), sinusoidal_table(16, 8))
    >>> apply_rope(jnp.ones((2, 5, 4, 8))).shape
    (2, 5, 4, 8)
    >>> alibi_bias(8, 5).shape
    (1, 8, 5, 5)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks


def _even(name: str, value: int, what: str) -> None:
    _checks.positive_int(name, value)
    if value % 2:
        raise ValueError(
            f"{name} must be even ({what} works on feature pairs); got {value}. Use an even size "
            "or pad the features."
        )


def sinusoidal_table(max_len: int, d_model: int, *, base: float = 10000.0, dtype: Any = jnp.float32) -> jax.Array:
    """The sinusoidal table ``[max_len, d_model]``, rows ``PE(0) .. PE(max_len - 1)``.

    Computed in float64 (numpy) and cast to ``dtype``; a constant under ``jit``. ``d_model`` must
    be even (each frequency fills a sin/cos pair).

    Example::

        >>> from seqjax.attention import sinusoidal_table
        >>> [round(float(v), 3) for v in sinusoidal_table(3, 6)[2]]  # position 2, d = 6
        [0.909, -0.416, 0.093, 0.996, 0.004, 1.0]
    """
    _checks.nonnegative_int("max_len", max_len)
    _even("d_model", d_model, "the sinusoidal encoding")
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    freq = base ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # [d/2]
    angles = pos * freq
    table = np.empty((max_len, d_model), np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return jnp.asarray(table, dtype)


def learned_positional_init(key: jax.Array, max_len: int, d_model: int, *, stddev: float = 0.02) -> dict[str, jax.Array]:
    """``{"table": [max_len, d_model]}`` drawn N(0, stddev^2) (BERT's and GPT-2's 0.02)."""
    _checks.positive_int("max_len", max_len)
    _checks.positive_int("d_model", d_model)
    return {"table": stddev * jax.random.normal(key, (max_len, d_model), jnp.float32)}


def add_positions(x: jax.Array, table: jax.Array, *, offset: int | jax.Array = 0) -> jax.Array:
    """``x + table[offset : offset + t]`` for ``x`` ``[b, t, d]`` (or ``[t, d]``).

    ``table`` is a sinusoidal table or a learned ``params["table"]``, ``[max_len, d]``;
    ``offset`` (positions already decoded) shifts the positions; a concrete offset is range
    checked, a traced one (under ``jit``) cannot be and is clamped into the table as
    :func:`jax.lax.dynamic_slice` does. The sum is in ``x``'s dtype.
    """
    x = _checks.floating_array("x", x, ndim=(2, 3), layout="[batch, time, features]")
    table = _checks.floating_array("table", table, ndim=2, layout="[max_len, features]")
    _checks.feature_size("x", x, table.shape[1])
    t = x.shape[-2]
    if not isinstance(offset, jax.core.Tracer):
        if int(offset) < 0 or int(offset) + t > table.shape[0]:
            raise ValueError(
                f"positions offset .. offset + time = {int(offset)} .. {int(offset) + t} must lie in "
                f"the table's [0, {table.shape[0]}] (max_len); build a longer table."
            )
    rows = jax.lax.dynamic_slice_in_dim(table, offset, t, axis=0)
    return x + rows.astype(x.dtype)


def rope_angles(positions: jax.Array, head_dim: int, *, base: float = 10000.0) -> jax.Array:
    """``positions[..., None] * theta`` with ``theta_i = base^(-2i/head_dim)``: ``[..., head_dim/2]``."""
    _even("head_dim", head_dim, "RoPE")
    theta = jnp.asarray(base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim), jnp.float32)
    return positions.astype(jnp.float32)[..., None] * theta


def apply_rope(
    x: jax.Array,
    positions: jax.Array | None = None,
    *,
    base: float = 10000.0,
    interleaved: bool = True,
) -> jax.Array:
    """Rotary position embedding of ``x`` ``[..., t, h, d]`` (queries or keys, each head alike).

    Args:
      x: ``[b, t, h, d]`` (any leading axes), ``d`` even.
      positions: ``[t]`` or ``[b, t]`` (broadcast against the leading axes) integer or float
        positions; default ``0 .. t-1``. With a cache, pass the absolute positions.
      base: ``10000`` in the paper.
      interleaved: pairs ``(2i, 2i+1)`` (True) or ``(i, i + d/2)`` (False).

    The rotation runs in float32; the result has ``x``'s dtype.
    """
    x = _checks.floating_array("x", x, ndim=(3, 4, 5), layout="[batch, time, heads, head_dim]")
    t, d = x.shape[-3], x.shape[-1]
    _even("head_dim (x.shape[-1])", d, "RoPE")
    if positions is None:
        positions = jnp.arange(t)
    positions = jnp.asarray(positions)
    if positions.ndim < 1 or positions.shape[-1] != t or positions.ndim > x.ndim - 2:
        raise ValueError(
            f"positions must have shape [time] or [batch, time] with time = {t}; got "
            f"{tuple(positions.shape)}."
        )
    angles = rope_angles(positions, d, base=base)[..., None, :]  # [..., t, 1, d/2]
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    x32 = x.astype(jnp.float32)
    if interleaved:
        a, b = x32[..., 0::2], x32[..., 1::2]
        out = jnp.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(x.shape)
    else:
        a, b = x32[..., : d // 2], x32[..., d // 2 :]
        out = jnp.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    return out.astype(x.dtype)


def alibi_slopes(num_heads: int) -> jax.Array:
    """The ALiBi head slopes ``[h]`` (float32): ``2^(-8/h), 2^(-16/h), ..., 2^-8`` for ``h`` a
    power of two; for 8 heads ``1/2, 1/4, ..., 1/256``."""
    _checks.positive_int("num_heads", num_heads)
    return jnp.asarray(_alibi_slopes(num_heads), jnp.float32)


def _alibi_slopes(n: int) -> list[float]:
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + _alibi_slopes(2 * closest)[0::2][: n - closest]


def alibi_bias(num_heads: int, q_len: int, kv_len: int | None = None, *, offset: int = 0) -> jax.Array:
    """ALiBi logit bias ``[1, h, t, s]``: ``-m_n |(i + offset) - j|`` (Press et al. 2022), with
    the explicit leading batch axis the attention functions require.

    Pass it as ``bias=`` to :func:`dot_product_attention`; for a causal model also pass
    :func:`causal_mask` with the same ``offset`` (then the bias is ``-m_n (i - j)`` wherever it
    counts). ``kv_len`` defaults to ``q_len``; query ``i`` sits at position ``i + offset``.
    """
    _checks.nonnegative_int("q_len", q_len)
    kv_len = q_len if kv_len is None else kv_len
    _checks.nonnegative_int("kv_len", kv_len)
    if not isinstance(offset, (int, np.integer)):
        raise ValueError(f"offset must be an integer; got {offset!r}.")
    distance = jnp.abs(jnp.arange(q_len)[:, None] + offset - jnp.arange(kv_len)[None, :])
    return (-alibi_slopes(num_heads)[:, None, None] * distance.astype(jnp.float32))[None]
