"""Data: synthetic tasks with exact generators (and, later, tokenizers, batching and loaders)."""

from seqjax.data.synthetic import (
    COPY_VOCAB,
    adding_baseline_mse,
    adding_problem,
    copy_baseline,
    copy_memory,
)

__all__ = ["COPY_VOCAB", "adding_baseline_mse", "adding_problem", "copy_baseline", "copy_memory"]
