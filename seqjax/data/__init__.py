"""Data: synthetic tasks with exact generators (and, later, tokenizers, batching and loaders)."""

from seqjax.data.synthetic import (
    COPY_VOCAB,
    adding_baseline_mse,
    adding_problem,
    copy_baseline,
    copy_memory,
    delayed_match_to_sample,
    ends_with_pattern,
    noisy_sines,
    sequence_reversal,
)

__all__ = [
    "COPY_VOCAB",
    "adding_baseline_mse",
    "adding_problem",
    "copy_baseline",
    "copy_memory",
    "delayed_match_to_sample",
    "ends_with_pattern",
    "noisy_sines",
    "sequence_reversal",
]
