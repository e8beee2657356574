"""Autoregressive decoding as pure, jit-compiled loops over a step function
``step_fn(state, tokens [b]) -> (state, logits [b, V])`` (any pytree state with a leading batch
axis: an RNN carry, a transformer KV cache): :func:`greedy`, :func:`sample` (temperature, top-k,
top-p, repetition penalty) and batched :func:`beam_search` (Hugging Face ``generate``'s beam
search: ``k`` live beams, a separate finished set, length penalty, early stopping), plus the
logits processors as small pure functions. See :mod:`seqjax.decoding.search` for the contract
and the conventions.
"""

from seqjax.decoding.processors import (
    MASKED,
    repetition_penalty,
    seen_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from seqjax.decoding.search import (
    EARLY_STOPPING,
    BeamSearchResult,
    Generation,
    beam_search,
    gather_beams,
    greedy,
    sample,
    tile_beams,
)

__all__ = [
    "EARLY_STOPPING",
    "MASKED",
    "BeamSearchResult",
    "Generation",
    "beam_search",
    "gather_beams",
    "greedy",
    "repetition_penalty",
    "sample",
    "seen_tokens",
    "temperature_scale",
    "tile_beams",
    "top_k_filter",
    "top_p_filter",
]
