"""The precedence task: does token ``first`` come before token ``second``? An order-only task.

Each sequence has ``length`` tokens: exactly one ``first``, exactly one ``second`` at two distinct
positions drawn uniformly, and fillers drawn uniformly from ``fillers`` elsewhere. The label is 1
if ``first`` precedes ``second``, else 0 (balanced: ``P(label = 1) = 1/2``). Swapping the two
special tokens (:func:`swap_tokens`) keeps the multiset of tokens and flips the label, so a model
that sees only the multiset (a bag of words, or self-attention without positional information,
mean-pooled) gets exactly one of each swapped pair right: accuracy exactly 1/2 on a paired test
set. Chance accuracy: 1/2.

Example::

    >>> import jax
    >>> from seqjax.data.precedence import precedence_task, swap_tokens
    >>> tokens, labels = precedence_task(jax.random.key(0), 4, 6, first=2, second=3, fillers=(4, 5, 6))
    >>> tokens.shape, labels.shape
    ((4, 6), (4,))
    >>> bool(((tokens == 2).sum(1) == 1).all() and ((tokens == 3).sum(1) == 1).all())
    True
    >>> swapped = swap_tokens(tokens, 2, 3)
    >>> bool(((swapped == 2).argmax(1) < (swapped == 3).argmax(1)).astype(int).tolist() == (1 - labels).tolist())
    True
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from seqjax import _checks

__all__ = ["precedence_task", "swap_tokens"]


def precedence_task(
    key: jax.Array, batch: int, length: int, *, first: int, second: int, fillers: Sequence[int]
) -> tuple[jax.Array, jax.Array]:
    """Tokens ``[b, t]`` int32 and labels ``[b]`` int32 (1 iff ``first`` precedes ``second``).

    Args:
      key: PRNG key; the same key gives the same batch.
      batch: ``b``.
      length: ``t >= 2``.
      first, second: the two token ids whose order is the label (distinct).
      fillers: the ids of the other positions (non-empty, without ``first`` and ``second``).
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("length", length)
    if length < 2:
        raise ValueError(f"length must be at least 2 (one first and one second token); got {length}.")
    fillers = tuple(int(f) for f in fillers)
    if not fillers:
        raise ValueError("fillers must hold at least one token id; got none.")
    if first == second:
        raise ValueError(f"first and second must differ; got {first} twice.")
    if first in fillers or second in fillers:
        raise ValueError(f"fillers must not contain first ({first}) or second ({second}); got {fillers}.")
    k_pos, k_fill = jax.random.split(key)
    # Two distinct positions per sequence: the first two of a random permutation of 0..t-1.
    order = jax.vmap(lambda k: jax.random.permutation(k, length)[:2])(jax.random.split(k_pos, batch))
    pos_a, pos_b = order[:, 0], order[:, 1]
    tokens = jnp.asarray(fillers, jnp.int32)[jax.random.randint(k_fill, (batch, length), 0, len(fillers))]
    steps = jnp.arange(length)[None, :]
    tokens = jnp.where(steps == pos_a[:, None], first, tokens)
    tokens = jnp.where(steps == pos_b[:, None], second, tokens)
    return tokens.astype(jnp.int32), (pos_a < pos_b).astype(jnp.int32)


def swap_tokens(tokens: jax.Array, first: int, second: int) -> jax.Array:
    """``tokens`` with every ``first`` replaced by ``second`` and vice versa (the same multiset of
    fillers, the opposite order of the two)."""
    tokens = jnp.asarray(tokens)
    return jnp.where(tokens == first, second, jnp.where(tokens == second, first, tokens))
