"""Bad input gets a ``ValueError`` at the boundary naming the argument and what was expected."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrence_refs import B, D, T, inputs, setup
from seqjax.recurrence import bidirectional, rnn, stacked, stacked_init, truncated_bptt

LSTM, LSTM_PARAMS = setup("lstm")
ELMAN, ELMAN_PARAMS = setup("elman")
GRU, GRU_PARAMS = setup("gru")
XS = inputs()
LAYERS = stacked_init(GRU, jax.random.key(0), D, 5, 2)
BI_LAYERS = stacked_init(GRU, jax.random.key(0), D, 5, 2, bidirectional=True)
BI = BI_LAYERS[0]

CASES = {
    "xs_rank_2": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS[0]),
        r"xs must have rank 3 with layout \[batch, time, features\]; got shape \(8, 3\) \(rank 2\)",
    ),
    "xs_rank_4": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS[None]),
        r"xs must have rank 3 .*got shape \(1, 4, 8, 3\) \(rank 4\)",
    ),
    "xs_features": (
        lambda: rnn(LSTM, LSTM_PARAMS, np.zeros((B, T, D + 1), np.float32)),
        r"xs has 4 features on its last axis .*but the parameters expect 3",
    ),
    "xs_integer": (
        lambda: rnn(LSTM, LSTM_PARAMS, np.zeros((B, T, D), np.int32)),
        r"xs must be a floating-point array .*got dtype int32",
    ),
    "seq_lengths_too_long": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=np.array([8, 9, 1, 0])),
        r"seq_lengths must lie in \[0, 8\] .*got \[9\]",
    ),
    "seq_lengths_negative": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=np.array([8, -1, 1, 0])),
        r"seq_lengths must lie in \[0, 8\] .*got \[-1\]",
    ),
    "seq_lengths_shape_short": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=np.array([8, 1])),
        r"seq_lengths must have shape \[batch\] = \(4,\); got shape \(2,\)",
    ),
    "seq_lengths_shape_2d": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=np.full((B, 1), 3)),
        r"seq_lengths must have shape \[batch\] = \(4,\); got shape \(4, 1\)",
    ),
    "seq_lengths_scalar": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=3),
        r"seq_lengths must have shape \[batch\] = \(4,\); got shape \(\)",
    ),
    "seq_lengths_float": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, seq_lengths=np.array([8.0, 3.0, 1.0, 0.0], np.float32)),
        r"seq_lengths must hold integers; got dtype float32",
    ),
    "initial_carry_shape": (
        lambda: rnn(ELMAN, ELMAN_PARAMS, XS, initial_carry=np.zeros((B, 4), np.float32)),
        r"initial_carry for cell 'elman_tanh' must be .* shapes \[\(4, 5\)\]"
        r".*got .* shapes \[\(4, 4\)\]",
    ),
    "initial_carry_batch": (
        lambda: rnn(ELMAN, ELMAN_PARAMS, XS, initial_carry=np.zeros((B + 1, 5), np.float32)),
        r"initial_carry .* shapes \[\(4, 5\)\].*got .* shapes \[\(5, 5\)\]",
    ),
    "initial_carry_structure": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, initial_carry=np.zeros((B, 5), np.float32)),
        r"initial_carry for cell 'lstm' must be .*LSTMState.* shapes \[\(4, 5\), \(4, 5\)\]",
    ),
    "parallel_nonlinear_cell": (
        lambda: rnn(LSTM, LSTM_PARAMS, XS, parallel=True),
        r"parallel=True needs a cell with a linear recurrence .*got cell 'lstm'",
    ),
    "merge_bidirectional": (
        lambda: bidirectional(GRU, BI, XS, merge="avg"),
        r"merge must be one of \('concat', 'sum'\); got 'avg'",
    ),
    "merge_stacked_bidirectional": (
        lambda: stacked(GRU, BI_LAYERS, XS, merge="mean"),
        r"merge must be one of \('concat', 'sum'\); got 'mean'",
    ),
    "chunk_length_zero": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, XS, 0),
        r"chunk_length must be a positive integer; got 0",
    ),
    "chunk_length_negative": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, XS, -2),
        r"chunk_length must be a positive integer; got -2",
    ),
    "chunk_length_float": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, XS, 2.5),
        r"chunk_length must be a positive integer; got 2.5",
    ),
    "tbptt_xs_rank": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, XS[0], 3),
        r"xs must have rank 3",
    ),
    "tbptt_seq_lengths_too_long": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, XS, 3, seq_lengths=np.array([8, 9, 1, 0])),
        r"seq_lengths must lie in \[0, 8\] .*got \[9\]",
    ),
    "tbptt_features": (
        lambda: truncated_bptt(GRU, GRU_PARAMS, np.zeros((B, T, D + 2), np.float32), 3),
        r"xs has 5 features .*expect 3",
    ),
    "dropout_one": (
        lambda: stacked(GRU, LAYERS, XS, dropout_rate=1.0, dropout_key=jax.random.key(0)),
        r"dropout_rate must lie in \[0, 1\); got 1.0",
    ),
    "dropout_negative": (
        lambda: stacked(GRU, LAYERS, XS, dropout_rate=-0.2),
        r"dropout_rate must lie in \[0, 1\); got -0.2",
    ),
    "recurrent_dropout_one": (
        lambda: rnn(GRU, GRU_PARAMS, XS, recurrent_dropout_rate=1.0, dropout_key=jax.random.key(0)),
        r"recurrent_dropout_rate must lie in \[0, 1\); got 1.0",
    ),
    "stacked_num_layers": (
        lambda: stacked_init(GRU, jax.random.key(0), D, 5, 0),
        r"num_layers must be a positive integer; got 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_clear_value_error(case):
    call, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_static_checks_also_raise_under_jit():
    f = jax.jit(lambda x, n: rnn(LSTM, LSTM_PARAMS, x, seq_lengths=n))
    with pytest.raises(ValueError, match=r"xs must have rank 3"):
        f(XS[0], np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"seq_lengths must hold integers"):
        f(XS, jnp.ones(B))
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \[batch\]"):
        f(XS, jnp.ones(B + 1, jnp.int32))


def test_stacked_init_rejects_unknown_merge():
    """BUG (minor, seqjax/recurrence/layers.py, stacked_init): ``merge`` is not validated; a typo
    such as ``merge="cat"`` silently builds layers of width ``h`` instead of ``2h``, and the
    error only surfaces later, from ``stacked``. Fix: ``_checks.choice("merge", merge, MERGES)``
    at the top of ``stacked_init``."""
    with pytest.raises(ValueError, match=r"merge must be one of \('concat', 'sum'\); got 'cat'"):
        stacked_init(GRU, jax.random.key(0), D, 5, 2, bidirectional=True, merge="cat")
