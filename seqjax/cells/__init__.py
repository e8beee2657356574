"""Recurrent cells as pure functions: ``step(params, carry, x) -> (carry, y)`` on unbatched ``x``.

Each factory returns a :class:`Cell` bundling ``init``, ``step`` and ``zero_carry``; see
:mod:`seqjax.cells.base` for the contract and each module for equations and parameter layout.
"""

from seqjax.cells.base import Cell, chrono_bias, input_features
from seqjax.cells.elman import elman, elman_init, elman_step
from seqjax.cells.gru import (
    flip_update_gate,
    gru,
    gru_cho,
    gru_cho_init,
    gru_cho_step,
    gru_init,
    gru_step,
)
from seqjax.cells.gru import GRUGates, gru_cho_gates, gru_gates
from seqjax.cells.lstm import LSTMState, lstm, lstm_init, lstm_step
from seqjax.cells.rate import YANG2019, rate, rate_init, rate_step
from seqjax.cells.gated_memory import gated_memory
from seqjax.cells.leaky_stack import leaky_stack
from seqjax.cells.lstm import LSTMGates, lstm_gates
from seqjax.cells.minimal import (
    min_gru,
    min_gru_coefficients,
    min_gru_step,
    min_lstm,
    min_lstm_coefficients,
    min_lstm_step,
)

__all__ = [
    "Cell",
    "chrono_bias",
    "GRUGates",
    "LSTMGates",
    "LSTMState",
    "elman",
    "elman_init",
    "elman_step",
    "flip_update_gate",
    "gru",
    "gru_cho",
    "gru_cho_gates",
    "gru_cho_init",
    "gru_cho_step",
    "gru_gates",
    "gru_init",
    "gru_step",
    "input_features",
    "lstm",
    "lstm_gates",
    "lstm_init",
    "lstm_step",
    "min_gru",
    "min_gru_coefficients",
    "min_gru_step",
    "min_lstm",
    "min_lstm_coefficients",
    "min_lstm_step",
    "rate", "rate_init", "rate_step", "YANG2019",
    "gated_memory", "leaky_stack",
]
