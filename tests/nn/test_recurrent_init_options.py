"""The NNX LSTM / GRU layers pass the cells' initialisation options through (chrono, orthogonal
recurrent blocks): their parameters are exactly the cell's init with the same key."""

import jax
import numpy as np
from flax import nnx

from seqjax.cells import gru, lstm
from seqjax.nn import GRU, LSTM


def _same_key_params(cell, seed, d, h):
    return cell.init(nnx.Rngs(seed).params(), d, h)


def test_lstm_layer_chrono_and_orthogonal_equal_the_cell_init():
    layer = LSTM(3, 6, rngs=nnx.Rngs(4), chrono=50, recurrent_scale=0.9)
    params = layer.pure_params()
    expected = _same_key_params(lstm(chrono=50, recurrent_scale=0.9), 4, 3, 6)
    for k in expected:
        np.testing.assert_array_equal(params[k], expected[k])
    b_i, b_f = params["b"][:6], params["b"][6:12]
    np.testing.assert_array_equal(b_i, -b_f)
    assert (b_f >= 0).all() and (b_f <= np.log(49)).all() and np.ptp(b_f) > 0
    block = np.asarray(params["w_h"][:, :6]) / 0.9  # one gate's block, orthogonal
    np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-5)


def test_gru_layer_chrono_equals_the_cell_init_and_defaults_are_unchanged():
    layer = GRU(3, 5, rngs=nnx.Rngs(2), chrono=20)
    expected = _same_key_params(gru(chrono=20), 2, 3, 5)
    for k, v in expected.items():
        np.testing.assert_array_equal(layer.pure_params()[k], v)
    plain = GRU(3, 5, rngs=nnx.Rngs(2)).pure_params()
    for k, v in _same_key_params(gru(), 2, 3, 5).items():
        np.testing.assert_array_equal(plain[k], v)
    assert not np.array_equal(layer.pure_params()["b"], plain["b"])
    assert jax.tree.structure(layer.pure_params()) == jax.tree.structure(plain)
