"""Data: synthetic tasks, tokenizers, batching/padding, and corpora shipped by installed packages.

``synthetic`` (exact task generators, JAX), ``precedence`` (does token A come before token B?), ``reorder_translation`` (a synchronous-grammar
translation task with reordering, pure Python), ``tokenizers`` (character, word and BPE, pure
Python), ``batching`` (padding, length bucketing, stream windows for stateful training; NumPy) and
``corpora`` (text read from files that installed packages ship; gensim is an optional extra).
"""

from seqjax.data.batching import StreamBatches, bucket_by_length, bucketed_batches, pad_sequences, stream_batches
from seqjax.data.corpora import MissingOptionalDependency, available_corpora, load_text, split_held_out
from seqjax.data.precedence import precedence_task, swap_tokens
from seqjax.data.reorder_translation import sample_pair as reorder_translation_pair
from seqjax.data.reorder_translation import sample_pairs as reorder_translation_pairs
from seqjax.data.spiking_population import chapter_spike_trains, ornstein_uhlenbeck, place_cell_population, two_group_population
from seqjax.data.synthetic import (
    COPY_VOCAB,
    adding_baseline_mse,
    adding_problem,
    copy_baseline,
    copy_memory,
    delayed_match_to_sample,
    ends_with_pattern,
    left_to_right_ceiling,
    neighbour_comparison_tagging,
    noisy_sines,
    random_sines,
    sequence_reversal,
)
from seqjax.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Vocabulary,
    WordPieceTokenizer,
    WordTokenizer,
    load_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "COPY_VOCAB",
    "CharTokenizer",
    "MissingOptionalDependency",
    "StreamBatches",
    "Vocabulary",
    "WordPieceTokenizer",
    "WordTokenizer",
    "adding_baseline_mse",
    "adding_problem",
    "chapter_spike_trains", "ornstein_uhlenbeck", "place_cell_population", "two_group_population",
    "available_corpora",
    "bucket_by_length",
    "bucketed_batches",
    "copy_baseline",
    "copy_memory",
    "delayed_match_to_sample",
    "ends_with_pattern",
    "load_text",
    "load_tokenizer",
    "left_to_right_ceiling",
    "neighbour_comparison_tagging",
    "noisy_sines",
    "random_sines",
    "pad_sequences",
    "precedence_task",
    "reorder_translation_pair",
    "reorder_translation_pairs",
    "sequence_reversal",
    "split_held_out",
    "stream_batches",
    "swap_tokens",
]
