"""The sequence engine: scan any cell over padded batches, in either direction, stacked, or in
truncated-BPTT chunks."""

from seqjax.recurrence.layers import bidirectional, is_bidirectional, stacked, stacked_init
from seqjax.recurrence.scan import rnn, scan_sequence, zero_padding
from seqjax.recurrence.truncated import truncated_bptt

__all__ = [
    "bidirectional",
    "is_bidirectional",
    "rnn",
    "scan_sequence",
    "stacked",
    "stacked_init",
    "truncated_bptt",
    "zero_padding",
]
