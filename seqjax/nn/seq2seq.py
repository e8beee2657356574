"""Flax NNX recurrent seq2seq models: thin modules around :mod:`seqjax.seq2seq.recurrent`.

:class:`RecurrentSeq2Seq` owns the parameters (``nnx.Param`` in nested ``nnx.data`` dicts laid
out as :func:`seqjax.seq2seq.seq2seq_init` documents, so ``nnx.split(model, nnx.Param)`` yields
exactly the pure pytree) and calls the pure functions. :class:`BahdanauSeq2Seq`,
:class:`LuongSeq2Seq` and :class:`BottleneckSeq2Seq` fix ``attention=``. Equations: see
:mod:`seqjax.seq2seq.recurrent`.

* Training (teacher forcing): ``model(src_tokens, src_lengths, tgt_in_tokens) -> logits
  [b, t, V]`` (with ``return_attention=True`` also the weights ``[b, t, s]``, None without
  attention).
* Inference: ``state = model.init_decode_state(src_tokens, src_lengths)``, then
  ``state, logits = model.decode_step(state, tokens)``, the contract
  ``step_fn(state, tokens [b]) -> (state, logits [b, V])`` of :mod:`seqjax.decoding`; every leaf
  of ``state`` has the batch as leading axis, so beams are reordered with
  ``jax.tree.map(lambda x: x[idx], state)``. For the functional pattern, ``model.step_fn()``
  binds the current parameter values.
* ``model.pure_params()``: the parameters as the plain pytree the pure functions take.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.seq2seq import LuongSeq2Seq
    >>> model = LuongSeq2Seq(10, 12, embed_features=8, hidden_features=8, rngs=nnx.Rngs(0))
    >>> src, tgt = jnp.ones((2, 5), jnp.int32), jnp.ones((2, 4), jnp.int32)
    >>> logits, weights = model(src, jnp.array([5, 3]), tgt, return_attention=True)
    >>> logits.shape, weights.shape
    ((2, 4, 12), (2, 4, 5))
    >>> state = model.init_decode_state(src, jnp.array([5, 3]))
    >>> state, step_logits = model.decode_step(state, tgt[:, 0])
    >>> step_logits.shape
    (2, 12)
    >>> from seqjax.decoding import greedy
    >>> greedy(model.step_fn(), model.init_decode_state(src), jnp.array([1, 1]), 6).sequences.shape
    (2, 6)
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from seqjax.nn.params import as_params, values
from seqjax.seq2seq import recurrent as core
from seqjax.seq2seq.recurrent import DecodeState, Seq2SeqSpec


class RecurrentSeq2Seq(nnx.Module):
    """Recurrent encoder-decoder: bidirectional LSTM/GRU encoder, ``tanh`` bridge, and a decoder
    with ``attention="bahdanau"``, ``"luong"`` or ``"none"`` (the bottleneck baseline).

    Arguments after ``rngs`` are the fields of :class:`seqjax.seq2seq.Seq2SeqSpec`
    (``embed_features``, ``hidden_features`` per encoder direction, ``decoder_features``
    (default ``2 * hidden_features``), ``cell``, ``attention``, ``score``, ``input_feeding``,
    ``attention_features``, ``dropout_rate``, ``dtype``, ``unroll``).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, **options: Any):
        self.spec = Seq2SeqSpec(src_vocab_size, tgt_vocab_size, **options)
        params = core.seq2seq_init(rngs.params(), self.spec)
        self.param_names = tuple(params)
        for name, value in params.items():
            setattr(self, name, as_params(value))

    def pure_params(self) -> dict[str, Any]:
        """The parameters as the plain pytree the pure functions take (the layout of
        :func:`seqjax.seq2seq.seq2seq_init`)."""
        return {name: values(getattr(self, name)) for name in self.param_names}

    def __call__(
        self,
        src_tokens: jax.Array,
        src_lengths: jax.Array | None,
        tgt_in_tokens: jax.Array,
        *,
        return_attention: bool = False,
        dropout_key: jax.Array | None = None,
    ):
        """Teacher-forced logits ``[b, t, V_tgt]`` for ``src_tokens`` ``[b, s]`` (``src_lengths``
        ``[b]`` or None) and the shifted target ``tgt_in_tokens`` ``[b, t]``; with
        ``return_attention``, ``(logits, weights [b, t, s] or None)``. Dropout only with a key."""
        logits, weights = core.forward(
            self.spec, self.pure_params(), src_tokens, src_lengths, tgt_in_tokens,
            dropout_key=dropout_key,
        )
        return (logits, weights) if return_attention else logits

    def encode(self, src_tokens: jax.Array, src_lengths: jax.Array | None = None):
        """``(memory [b, s, 2h], mask [b, s], (forward_carry, backward_carry))``."""
        return core.encode(self.spec, self.pure_params(), src_tokens, src_lengths)

    def init_decode_state(self, src_tokens: jax.Array, src_lengths: jax.Array | None = None) -> DecodeState:
        """The :class:`seqjax.seq2seq.DecodeState` before the first target token."""
        return core.init_decode_state(self.spec, self.pure_params(), src_tokens, src_lengths)

    def decode_step(self, state: DecodeState, tokens: jax.Array) -> tuple[DecodeState, jax.Array]:
        """``tokens`` ``[b]`` (previous outputs, BOS first) -> ``(state, logits [b, V_tgt])``."""
        return core.decode_step(self.spec, self.pure_params(), state, tokens)

    def step_fn(self):
        """A pure ``step_fn(state, tokens) -> (state, logits)`` with the current parameter values
        bound as arrays (a ``functools.partial``: no module inside, and :mod:`seqjax.decoding`
        traces the arrays, so new parameter values do not recompile)."""
        return core.make_step_fn(self.spec, self.pure_params())


class BahdanauSeq2Seq(RecurrentSeq2Seq):
    """:class:`RecurrentSeq2Seq` with ``attention="bahdanau"`` (additive score by default)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, **options: Any):
        super().__init__(src_vocab_size, tgt_vocab_size, rngs=rngs, attention="bahdanau", **options)


class LuongSeq2Seq(RecurrentSeq2Seq):
    """:class:`RecurrentSeq2Seq` with ``attention="luong"`` (general score and input feeding by
    default)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, **options: Any):
        super().__init__(src_vocab_size, tgt_vocab_size, rngs=rngs, attention="luong", **options)


class BottleneckSeq2Seq(RecurrentSeq2Seq):
    """:class:`RecurrentSeq2Seq` with ``attention="none"``: the decoder sees the source only
    through its initial state, bridged from the encoder's final states."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, **options: Any):
        super().__init__(src_vocab_size, tgt_vocab_size, rngs=rngs, attention="none", **options)
