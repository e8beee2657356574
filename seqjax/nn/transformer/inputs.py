"""Input checks shared by the NNX transformer models: padding read from lengths or a pad id,
sequence lengths against position tables, and decoding caches against them.

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.nn.transformer.inputs import key_padding, token_validity
    >>> valid = token_validity(jnp.array([[5, 6, 0, 0]]), None, 0, "seq_lengths")
    >>> valid.tolist(), key_padding(valid).shape
    ([[True, True, False, False]], (1, 1, 1, 4))
"""

from __future__ import annotations

from typing import Any, Mapping

import jax

from seqjax import _checks
from seqjax.attention.masks import sequence_mask
from seqjax.transformer.cache import capacity


def token_validity(tokens: jax.Array, lengths: Any, pad_id: int | None, name: str) -> jax.Array | None:
    """``[b, t]`` True at real tokens: from ``lengths`` (right padding; argument ``name``),
    else ``tokens != pad_id``; None when neither is given."""
    b, t = tokens.shape
    if lengths is not None:
        return sequence_mask(_checks.seq_lengths(name, lengths, batch=b, time=t), t)
    if pad_id is not None:
        return tokens != pad_id
    return None


def key_padding(valid: jax.Array | None) -> jax.Array | None:
    """``[b, s]`` valid positions -> the key-padding mask ``[b, 1, 1, s]`` (None passes)."""
    return None if valid is None else valid[:, None, None, :]


def check_length(t: int, limit: int, what: str) -> None:
    """Refuse a sequence of ``t`` positions longer than the model's ``what = limit``."""
    if t > limit:
        raise ValueError(f"sequence length {t} exceeds {what} = {limit}; build the model with a longer one.")


def check_decoding_cache(cache: Any, limit: int, what: str) -> None:
    """Check that ``cache`` is a KV cache (the dict of ``init_cache``) whose capacity fits the
    model's position table ``what = limit``: positions past it have no encoding."""
    if not isinstance(cache, Mapping) or "k" not in cache or "index" not in cache:
        got = sorted(cache) if isinstance(cache, Mapping) else type(cache).__name__
        raise ValueError(f"cache must be the dict of init_cache (keys 'k', 'v', 'index', ...); got {got}.")
    if capacity(cache) > limit:
        raise ValueError(
            f"the cache holds max_len = {capacity(cache)} positions but the model has {what} = {limit}: "
            f"decoding past position {limit} has no position encoding; build the cache with max_len <= {limit}."
        )
