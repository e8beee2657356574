"""Logits processors: small pure functions on next-token logits ``[..., V]``.

Each returns float32 logits of the same shape; a removed token gets the most negative finite
float32 (:data:`MASKED`), never ``-inf``, so nothing overflows and a softmax gives it exactly 0::

    temperature_scale:   z / T                                     (T > 0; T -> 0 tends to argmax)
    top_k_filter:        keep the k largest z (ties: the lower token id first, exactly k kept)
    top_p_filter:        keep the nucleus: the smallest set of most probable tokens whose
                         probability sums to >= p (Holtzman et al. 2020); p >= 1 keeps all
    repetition_penalty:  z / r if z > 0 else z * r, for tokens already seen (CTRL, Keskar et al.
                         2019; HF's RepetitionPenaltyLogitsProcessor); r > 1 discourages repeats

:func:`seqjax.decoding.sample` applies them in the order repetition penalty, temperature, top-k,
top-p (as Hugging Face ``generate``).

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.decoding import MASKED, top_k_filter, top_p_filter, repetition_penalty
    >>> logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    >>> (top_p_filter(logits, 0.7) > MASKED).tolist()
    [True, True, False, False]
    >>> (top_k_filter(logits, 3) > MASKED).tolist()
    [True, True, True, False]
    >>> repetition_penalty(jnp.array([2.0, -2.0, 1.0]), jnp.array([True, True, False]), 2.0).tolist()
    [1.0, -4.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MASKED = float(np.finfo(np.float32).min)
"""The logit of a removed token: the most negative finite float32."""


def _logits(logits: Any) -> jax.Array:
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(
            f"logits must be a floating-point array [..., vocab]; got {logits.dtype} {tuple(logits.shape)}."
        )
    return logits.astype(jnp.float32)


def _concrete(value: Any) -> float | None:
    if isinstance(value, jax.core.Tracer):
        return None
    value = np.asarray(value)
    return float(value) if value.size == 1 else None


def temperature_scale(logits: jax.Array, temperature: float | jax.Array) -> jax.Array:
    """``logits / temperature`` (``temperature > 0``; a concrete value is checked)."""
    t = _concrete(temperature)
    if t is not None and not t > 0:
        raise ValueError(f"temperature must be > 0; got {t}. Use greedy decoding for the limit T -> 0.")
    return _logits(logits) / jnp.asarray(temperature, jnp.float32)


def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """Keep the ``k`` largest logits of the last axis, set the others to :data:`MASKED`.

    Exactly ``k`` survive: among equal logits the lower token id wins (``jax.lax.top_k``), so
    ``k = 1`` keeps exactly the argmax token.
    """
    logits = _logits(logits)
    vocab = logits.shape[-1]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= vocab:
        raise ValueError(f"top_k must be an integer in [1, vocab = {vocab}]; got {k!r}.")
    if k == vocab:
        return logits
    _, idx = jax.lax.top_k(logits, int(k))
    keep = jnp.put_along_axis(jnp.zeros(logits.shape, bool), idx, True, axis=-1, inplace=False)
    return jnp.where(keep, logits, MASKED)


def top_p_filter(logits: jax.Array, p: float | jax.Array) -> jax.Array:
    """Nucleus filter: keep the smallest set of most probable tokens whose probability sums to at
    least ``p`` (``0 < p <= 1``), set the others to :data:`MASKED`.

    A token is kept iff the probability of the tokens ranked before it is ``< p``; the most
    probable token is always kept, and ``p >= 1`` keeps every token (the logits are returned
    unchanged: a float32 cumulative sum can reach 1 before the last token, which must not remove
    it). Ranking ties: the lower token id first.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.decoding import MASKED, top_p_filter
        >>> logits = jnp.array([0.0, -30.0])      # p(1) = 1e-13: the sum reaches 1.0 in float32
        >>> (top_p_filter(logits, 1.0) > MASKED).tolist()
        [True, True]
    """
    logits = _logits(logits)
    value = _concrete(p)
    if value is not None and not 0.0 < value <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1]; got {value}.")
    if value is not None and value >= 1.0:
        return logits
    p = jnp.asarray(p, jnp.float32)
    order = jnp.argsort(-logits, axis=-1, stable=True)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (before < p) | (jnp.arange(logits.shape[-1]) == 0)  # never the most probable
    keep = jnp.put_along_axis(jnp.zeros(logits.shape, bool), order, keep_sorted, axis=-1, inplace=False)
    return jnp.where((keep | (p >= 1.0)), logits, MASKED)


def repetition_penalty(logits: jax.Array, seen: jax.Array, penalty: float | jax.Array) -> jax.Array:
    """CTRL's repetition penalty: for tokens with ``seen`` True, ``z / penalty`` if ``z > 0`` else
    ``z * penalty``; other logits unchanged.

    Args:
      logits: ``[..., V]``.
      seen: boolean ``[..., V]`` (True at tokens already in the sequence; see :func:`seen_tokens`).
      penalty: ``> 0``; ``1`` is the identity, ``> 1`` discourages repeats (CTRL: 1.2).
    """
    logits = _logits(logits)
    seen = jnp.asarray(seen)
    if seen.dtype != jnp.bool_ or seen.shape != logits.shape:
        raise ValueError(
            f"seen must be a boolean array of the logits' shape {tuple(logits.shape)}; got "
            f"{seen.dtype} {tuple(seen.shape)}."
        )
    value = _concrete(penalty)
    if value is not None and not value > 0:
        raise ValueError(f"repetition_penalty must be > 0; got {value}.")
    r = jnp.asarray(penalty, jnp.float32)
    return jnp.where(seen, jnp.where(logits > 0, logits / r, logits * r), logits)


def seen_tokens(tokens: jax.Array, vocab_size: int) -> jax.Array:
    """Boolean ``[b, V]``: True at every id occurring in ``tokens`` ``[b, t]`` (or ``[b]``)."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim == 1:
        tokens = tokens[:, None]
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be integer ids [batch, time]; got {tokens.dtype} {tuple(tokens.shape)}.")
    rows = jnp.arange(tokens.shape[0])[:, None]
    return jnp.zeros((tokens.shape[0], vocab_size), bool).at[rows, tokens].set(True, mode="drop")
