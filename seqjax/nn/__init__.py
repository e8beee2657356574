"""Flax NNX modules: thin wrappers that own parameters and call the pure cores."""

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
]

from seqjax.nn.seq2seq import BahdanauSeq2Seq, BottleneckSeq2Seq, LuongSeq2Seq, RecurrentSeq2Seq

__all__ += ["BahdanauSeq2Seq", "BottleneckSeq2Seq", "LuongSeq2Seq", "RecurrentSeq2Seq"]
