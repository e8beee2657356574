"""Masked-language-model data rule (BERT, Devlin et al. 2019) and its loss, as pure functions.

Given token ids ``[b, t]``, each *eligible* position (not a special token, not padding) is
selected independently with probability ``mask_prob`` (0.15), as HF's
``DataCollatorForLanguageModeling``. A selected position becomes::

    [MASK]           with probability 0.8   (mask_token_frac)
    a random token   with probability 0.1   (random_token_frac; uniform over [0, vocab_size),
                                             as BERT and HF: it may equal the original)
    itself           with probability 0.1   (the rest)

and the loss is taken on the selected positions only (``weights``). Textbook summaries often
give only the 15%; the 80/10/10 split is BERT's (Devlin et al. 2019, section 3.1).

Only about 15% of the positions are scored, so the output projection (``H x V`` per position,
the largest product of a small BERT) need not run at the other 85%: :func:`selected_positions`
lists the selected positions of a batch, padded to a multiple so that few shapes compile, and
``BertForMaskedLM(..., positions=)`` computes logits there only (BERT's own pre-training code
gathers its ``max_predictions_per_seq`` positions the same way).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import mlm_masking
    >>> ids = jnp.array([[101, 7, 8, 9, 102, 0]])
    >>> inputs, labels, weights = mlm_masking(jax.random.key(0), ids, vocab_size=200,
    ...     mask_token_id=103, special_ids=(0, 101, 102, 103))
    >>> inputs.shape, labels.shape, weights.dtype
    ((1, 6), (1, 6), dtype('float32'))
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks


def mlm_masking(
    key: jax.Array,
    input_ids: jax.Array,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_ids: Sequence[int] = (),
    token_mask: jax.Array | None = None,
    mask_prob: float = 0.15,
    mask_token_frac: float = 0.8,
    random_token_frac: float = 0.1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Apply the 15% / 80-10-10 MLM corruption with an explicit key.

    Args:
      key: PRNG key; the same key gives the same corruption.
      input_ids: ``[b, t]`` integer token ids.
      vocab_size: random replacements are drawn uniformly from ``[0, vocab_size)``.
      mask_token_id: the ``[MASK]`` id.
      special_ids: ids never selected (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ...).
      token_mask: optional ``[b, t]`` boolean, True at real tokens; False positions (padding) are
        never selected.
      mask_prob: selection probability of an eligible position.
      mask_token_frac, random_token_frac: the split of the selected positions; the remaining
        ``1 - mask_token_frac - random_token_frac`` stay unchanged.

    Returns:
      ``(inputs, labels, weights)``: the corrupted ids ``[b, t]``, the labels (the original ids,
      ``[b, t]``; only meaningful where weighted) and ``weights`` ``[b, t]`` float32, 1 at the
      selected positions and 0 elsewhere. Use with :func:`mlm_loss`.
    """
    input_ids = _checks.integer_array("input_ids", input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape [batch, time]; got {tuple(input_ids.shape)}.")
    _checks.positive_int("vocab_size", vocab_size)
    if not isinstance(mask_token_id, (int, np.integer)) or not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id must be an integer in [0, {vocab_size}); got {mask_token_id!r}.")
    for name, value in (("mask_prob", mask_prob), ("mask_token_frac", mask_token_frac),
                        ("random_token_frac", random_token_frac)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {value}.")
    if mask_token_frac + random_token_frac > 1.0 + 1e-12:
        raise ValueError(
            f"mask_token_frac + random_token_frac must be <= 1; got {mask_token_frac} + {random_token_frac}."
        )
    eligible = jnp.ones(input_ids.shape, bool)
    if len(special_ids):
        eligible = ~jnp.isin(input_ids, jnp.asarray(list(special_ids), input_ids.dtype))
    if token_mask is not None:
        token_mask = jnp.asarray(token_mask)
        if token_mask.shape != input_ids.shape or token_mask.dtype != jnp.bool_:
            raise ValueError(
                f"token_mask must be boolean with the shape of input_ids {tuple(input_ids.shape)} "
                f"(True at real tokens); got dtype {token_mask.dtype}, shape {tuple(token_mask.shape)}."
            )
        eligible = eligible & token_mask

    return _corrupt(key, input_ids, eligible, vocab_size=int(vocab_size), mask_token_id=int(mask_token_id),
                    mask_prob=float(mask_prob), mask_token_frac=float(mask_token_frac),
                    random_token_frac=float(random_token_frac))


@functools.partial(jax.jit, static_argnames=("vocab_size", "mask_token_id", "mask_prob", "mask_token_frac", "random_token_frac"))
def _corrupt(key, input_ids, eligible, *, vocab_size, mask_token_id, mask_prob, mask_token_frac, random_token_frac):
    """The random part of :func:`mlm_masking` on validated inputs (jitted: one compilation per
    shape, also when called eagerly)."""
    k_select, k_split, k_random = jax.random.split(key, 3)
    selected = eligible & jax.random.bernoulli(k_select, mask_prob, input_ids.shape)
    u = jax.random.uniform(k_split, input_ids.shape)
    to_mask = selected & (u < mask_token_frac)
    to_random = selected & (u >= mask_token_frac) & (u < mask_token_frac + random_token_frac)
    random_ids = jax.random.randint(k_random, input_ids.shape, 0, vocab_size, input_ids.dtype)
    inputs = jnp.where(to_mask, jnp.asarray(mask_token_id, input_ids.dtype), input_ids)
    inputs = jnp.where(to_random, random_ids, inputs)
    return inputs, input_ids, selected.astype(jnp.float32)


def selected_positions(weights, *, multiple: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each row's positions with nonzero weight, padded to a common length.

    Args:
      weights: ``[b, t]`` (the MLM selection of :func:`mlm_masking`), concrete (a host array or
        an un-traced JAX array): the largest count in a row fixes the output shape.
      multiple: that count is rounded up to a multiple of this, so that batches whose counts
        differ a little share one compiled program.

    Returns:
      ``(positions, valid)``, both ``[b, k]``: ``positions`` int32 time indices, in increasing
      order, then padding entries pointing at position 0; ``valid`` float32, the weights at the
      listed positions and 0 at the padding. ``k`` is the largest row count rounded up to
      ``multiple`` (at least ``multiple``). Gathering a ``[b, t]`` array along time with
      ``positions`` and weighting by ``valid`` gives the same weighted sums as weighting the whole
      array by ``weights``, so ``mlm_loss(gathered logits, gathered labels, valid)`` is the loss.

    Example::

        >>> import numpy as np
        >>> from seqjax.transformer.mlm import selected_positions
        >>> positions, valid = selected_positions(np.array([[0, 1, 0], [1, 0, 1]]), multiple=2)
        >>> positions.tolist(), valid.tolist()
        ([[1, 0], [0, 2]], [[1.0, 0.0], [1.0, 1.0]])
    """
    weights = np.asarray(weights)
    if weights.ndim != 2:
        raise ValueError(f"weights must have shape [batch, time]; got {weights.shape}.")
    _checks.positive_int("multiple", multiple)
    chosen = weights != 0
    counts = chosen.sum(1)
    k = max(multiple, -(-int(counts.max(initial=0)) // multiple) * multiple)
    # A stable sort of "not chosen" puts each row's chosen positions first, in time order.
    order = np.argsort(~chosen, axis=1, kind="stable")[:, :k]
    slot = np.arange(k)[None] < counts[:, None]
    positions = np.where(slot, order, 0).astype(np.int32)
    valid = np.where(slot, np.take_along_axis(weights, order, 1), 0).astype(np.float32)
    return positions, valid


def mlm_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean token cross-entropy ``sum(w * CE) / max(sum(w), 1)``.

    Args:
      logits: ``[b, t, V]``.
      labels: ``[b, t]`` integer ids.
      weights: ``[b, t]`` (the MLM selection of :func:`mlm_masking`).
    """
    logits = _checks.floating_array("logits", logits, ndim=3, layout="[batch, time, vocab]")
    labels = _checks.integer_array("labels", labels, shape=logits.shape[:2], layout="[batch, time]")
    weights = jnp.asarray(weights, jnp.float32)
    if weights.shape != labels.shape:
        raise ValueError(f"weights must have shape {tuple(labels.shape)}; got {tuple(weights.shape)}.")
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return jnp.sum(weights * nll) / jnp.maximum(jnp.sum(weights), 1.0)
