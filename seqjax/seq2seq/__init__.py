"""Sequence-to-sequence models as pure functions.

:mod:`seqjax.seq2seq.recurrent`: the recurrent encoder-decoder (bidirectional LSTM/GRU encoder, a
learned bridge, and a decoder with Bahdanau or Luong attention, or none: the bottleneck baseline),
with a teacher-forced forward pass and a per-step ``step_fn(state, tokens) -> (state, logits)``
for greedy, sampling and beam-search decoding.
"""

from seqjax.seq2seq.recurrent import (
    ATTENTIONS,
    CELLS,
    SCORES,
    DecodeState,
    Seq2SeqSpec,
    bridge,
    decode,
    decode_step,
    decoder_state,
    encode,
    forward,
    init_decode_state,
    make_step_fn,
    seq2seq_init,
)

__all__ = [
    "ATTENTIONS",
    "CELLS",
    "SCORES",
    "DecodeState",
    "Seq2SeqSpec",
    "bridge",
    "decode",
    "decode_step",
    "decoder_state",
    "encode",
    "forward",
    "init_decode_state",
    "make_step_fn",
    "seq2seq_init",
]
