"""Flax NNX modules: thin wrappers that own parameters and call the pure cores.

* :mod:`seqjax.nn.recurrent`: :class:`RNN`, :class:`LSTM`, :class:`GRU`, :class:`MinGRU`,
  :class:`MinLSTM` (each a :class:`RecurrentLayer`), :class:`Bidirectional`, :class:`Stacked`.
* :mod:`seqjax.nn.transformer`: transformer stacks, :class:`EncoderDecoder`, BERT and GPT-2
  (:meth:`GPTLanguageModel.from_hf` loads a Hugging Face GPT-2 checkpoint).
* :mod:`seqjax.nn.seq2seq`: recurrent encoder-decoders with and without attention.
* :mod:`seqjax.nn.params`: :func:`count_params`; :func:`load_pure_params`, the inverse of every
  module's ``pure_params()``.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn import LSTM, Stacked, load_pure_params
    >>> make = lambda seed: Stacked([LSTM(3, 4, rngs=nnx.Rngs(seed)), LSTM(4, 4, rngs=nnx.Rngs(seed + 1))])
    >>> m1, m2 = make(0), make(5)
    >>> load_pure_params(m2, m1.pure_params())
    >>> xs = jnp.ones((2, 6, 3))
    >>> bool(jnp.array_equal(m1(xs), m2(xs)))
    True
"""

from seqjax.nn.params import load_pure_params
from seqjax.nn.recurrent import GRU, LSTM, RNN, Bidirectional, MinGRU, MinLSTM, RecurrentLayer, Stacked
from seqjax.nn.transformer import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    EncoderDecoder,
    GPT2Config,
    GPTLanguageModel,
    TransformerDecoder,
    TransformerEncoder,
    count_params,
)

__all__ = [
    "GRU", "LSTM", "RNN", "Bidirectional", "MinGRU", "MinLSTM", "RecurrentLayer", "Stacked",
    "BertConfig", "BertForMaskedLM", "BertForSequenceClassification", "BertModel", "EncoderDecoder",
    "GPT2Config", "GPTLanguageModel", "TransformerDecoder", "TransformerEncoder", "count_params",
    "load_pure_params",
]

from seqjax.nn.seq2seq import BahdanauSeq2Seq, BottleneckSeq2Seq, LuongSeq2Seq, RecurrentSeq2Seq

__all__ += ["BahdanauSeq2Seq", "BottleneckSeq2Seq", "LuongSeq2Seq", "RecurrentSeq2Seq"]

from seqjax.nn.transformer import BertForNextSentencePrediction, BertForTokenClassification, load_pretrained

__all__ += ["BertForNextSentencePrediction", "BertForTokenClassification", "load_pretrained"]
