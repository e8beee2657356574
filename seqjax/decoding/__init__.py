"""Autoregressive decoding as pure, jit-compiled loops over a step function
``step_fn(state, tokens [b]) -> (logits [b, V], state)`` (any pytree state with a leading batch
axis: an RNN carry, a transformer KV cache): :func:`greedy`, :func:`sample` (temperature, top-k,
top-p, repetition penalty) and batched :func:`beam_search` (GNMT length penalty, EOS handling),
plus the logits processors as small pure functions. See :mod:`seqjax.decoding.search` for the
contract and the conventions.
"""

from seqjax.decoding.processors import (
    MASKED,
    length_penalty,
    repetition_penalty,
    seen_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from seqjax.decoding.search import (
    BeamSearchResult,
    Generation,
    beam_search,
    gather_beams,
    greedy,
    sample,
    tile_beams,
)

__all__ = [
    "MASKED",
    "BeamSearchResult",
    "Generation",
    "beam_search",
    "gather_beams",
    "greedy",
    "length_penalty",
    "repetition_penalty",
    "sample",
    "seen_tokens",
    "temperature_scale",
    "tile_beams",
    "top_k_filter",
    "top_p_filter",
]
