"""Flax NNX modules: thin wrappers that own parameters and call the pure cores."""

from seqjax.nn.recurrent import GRU, LSTM, RNN, Bidirectional, MinGRU, MinLSTM, RecurrentLayer, Stacked

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "MinGRU", "MinLSTM", "RecurrentLayer", "Stacked"]
