"""The ``generate()`` of the NNX language models: one dispatch from a method name to the decoding
functions of :mod:`seqjax.decoding` (no decoding logic of its own).

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.nn.transformer.generation import run_decoding
    >>> step_fn = lambda state, tokens: (state, jnp.eye(3)[(tokens + 1) % 3])   # 0 -> 1 -> 2 -> 0
    >>> run_decoding(step_fn, jnp.zeros((1,)), jnp.array([0]), 4).sequences.tolist()
    [[1, 2, 0, 1]]
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from seqjax import _checks
from seqjax.decoding import BeamSearchResult, Generation, beam_search, greedy, sample

METHODS = ("greedy", "sample", "beam")
"""``generate()``'s methods: :func:`~seqjax.decoding.greedy`, :func:`~seqjax.decoding.sample`,
:func:`~seqjax.decoding.beam_search`."""


def run_decoding(step_fn: Callable, state: Any, first_tokens: jax.Array, max_new_tokens: int, *,
                 method: str = "greedy", key: jax.Array | None = None, beam_size: int = 4,
                 eos_id: int | None = None, pad_id: int = 0, **options: Any) -> Generation | BeamSearchResult:
    """``method`` (a name of :data:`METHODS`) run on ``step_fn`` from ``state``, feeding
    ``first_tokens`` ``[b]`` first; ``options`` go to the sampler (``temperature``, ``top_k``,
    ``top_p``, ``repetition_penalty``, ``context_tokens``) or the beam search (``length_penalty``,
    ``early_stopping``, ``num_return_sequences``); greedy takes none."""
    _checks.choice("method", method, METHODS)
    if method == "greedy":
        if options:
            raise ValueError(f"method='greedy' takes no options; got {sorted(options)} (sampling or beam options?).")
        return greedy(step_fn, state, first_tokens, max_new_tokens, eos_id=eos_id, pad_id=pad_id)
    if method == "sample":
        if key is None:
            raise ValueError("method='sample' needs a jax.random key: key=jax.random.key(0).")
        return sample(step_fn, state, first_tokens, max_new_tokens, key, eos_id=eos_id, pad_id=pad_id, **options)
    return beam_search(step_fn, state, first_tokens, max_new_tokens, beam_size, eos_id=eos_id, pad_id=pad_id,
                       **options)
