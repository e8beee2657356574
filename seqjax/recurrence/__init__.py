"""The sequence engine: scan any cell over padded batches, in either direction, stacked, or in
truncated-BPTT chunks."""

from seqjax.recurrence.layers import bidirectional, is_bidirectional, stacked, stacked_init
from seqjax.recurrence.scan import reverse_prefixes, rnn, scan_sequence, zero_padding
from seqjax.recurrence.truncated import truncated_bptt
from seqjax.recurrence.wavefront import bidirectional_one_loop, wavefront_stack

__all__ = [
    "bidirectional",
    "bidirectional_one_loop",
    "is_bidirectional",
    "reverse_prefixes",
    "rnn",
    "scan_sequence",
    "stacked",
    "stacked_init",
    "truncated_bptt",
    "wavefront_stack",
    "zero_padding",
]
