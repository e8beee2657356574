"""Chrono initialisation (Tallec & Ollivier 2018) of the LSTM and GRU gate biases: the formula,
the signs, the gate it lands on, and that the default inits are unchanged."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from seqjax.cells import gru, lstm
from seqjax.cells.base import chrono_bias
from seqjax.cells.gru import gru_cho_init, gru_gates, gru_init
from seqjax.cells.lstm import lstm_gates, lstm_init, lstm_zero_carry

KEY = jax.random.key(3)


@pytest.mark.parametrize("t_max", [3, 10.5, 1000])
def test_chrono_bias_is_log_of_uniform_on_1_to_tmax_minus_1(t_max):
    b = np.asarray(chrono_bias(KEY, 20000, t_max), np.float64)
    assert b.shape == (20000,)
    u = np.exp(b)
    lo, hi = 1.0, t_max - 1.0
    assert u.min() >= lo - 1e-5 and u.max() <= hi * (1 + 1e-6)
    # exp(b) is uniform on [1, t_max - 1]: Kolmogorov-Smirnov against scipy's uniform, and the
    # moments of log U by quadrature (E log U = (hi log hi - lo log lo) / (hi - lo) - 1).
    assert stats.kstest(u, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    mean_log = (hi * math.log(hi) - lo * math.log(lo)) / (hi - lo) - 1.0
    assert abs(b.mean() - mean_log) < 4 * b.std() / math.sqrt(b.size) + 1e-6
    # Independent units: not one value repeated.
    assert len(np.unique(b)) > 19000


@pytest.mark.parametrize("bad", [2, 1.5, 0, -10, "100", True, None])
def test_chrono_rejects_a_tmax_without_a_range(bad):
    with pytest.raises(ValueError, match="chrono"):
        chrono_bias(KEY, 4, bad)
    if bad is not None:
        with pytest.raises(ValueError, match="chrono"):
            lstm_init(KEY, 2, 4, chrono=bad)
        with pytest.raises(ValueError, match="chrono"):
            gru_init(KEY, 2, 4, chrono=bad)


def test_lstm_chrono_sets_b_f_and_b_i_equal_to_minus_b_f_only():
    h, t_max = 64, 200
    plain = lstm_init(KEY, 3, h)
    chrono = lstm_init(KEY, 3, h, chrono=t_max)
    b = np.asarray(chrono["b"])
    b_i, b_f, b_g, b_o = np.split(b, 4)  # gate order i, f, g, o
    np.testing.assert_array_equal(b_i, -b_f)
    assert (b_f >= 0).all() and (b_f <= math.log(t_max - 1) + 1e-6).all() and b_f.std() > 0.3
    np.testing.assert_array_equal(b_g, 0.0)
    np.testing.assert_array_equal(b_o, 0.0)
    np.testing.assert_array_equal(b_f, np.asarray(chrono_bias(jax.random.fold_in(KEY, 0xC4), h, t_max)))
    # Every weight is the default draw; only the two biases changed.
    for name in ("w_i", "w_h"):
        np.testing.assert_array_equal(chrono[name], plain[name])
    # The gates of the first step from a zero state and input are sigmoid of the biases.
    _, gates = lstm_gates(chrono, lstm_zero_carry(chrono), jnp.zeros(3))
    np.testing.assert_allclose(gates.f, 1 / (1 + np.exp(-b_f)), rtol=1e-6)
    np.testing.assert_allclose(gates.i, 1 / (1 + np.exp(b_f)), rtol=1e-6)
    np.testing.assert_allclose(gates.i + gates.f, 1.0, rtol=1e-6)  # sigmoid(-b) = 1 - sigmoid(b)


def test_lstm_chrono_combines_with_orthogonal_recurrent_weights():
    p = lstm(recurrent_scale=1.0, chrono=100).init(KEY, 2, 16)
    w_h = np.asarray(p["w_h"])
    for block in np.split(w_h, 4, axis=1):
        np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)
    b_i, b_f = np.asarray(p["b"][:16]), np.asarray(p["b"][16:32])
    np.testing.assert_array_equal(b_i, -b_f)


def test_defaults_are_unchanged():
    """Without ``chrono``: the LSTM's biases are zero but the forget gate's (``forget_bias``),
    the GRU's every bias is U(+-1/sqrt(h)), as before chrono existed; and chrono=None is the default."""
    h = 8
    p = lstm_init(KEY, 3, h, forget_bias=1.5)
    expect = np.zeros(4 * h)
    expect[h:2 * h] = 1.5
    np.testing.assert_array_equal(p["b"], expect)
    for init in (lstm_init, gru_init, gru_cho_init):
        a, b = init(KEY, 3, h), init(KEY, 3, h, chrono=None)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # The GRU default: PyTorch's U(+-1/sqrt(h)), from the third of four keys split from KEY.
    g = gru_init(KEY, 3, h)
    k_b = jax.random.split(KEY, 4)[2]
    np.testing.assert_array_equal(g["b"], jax.random.uniform(k_b, (3 * h,), jnp.float32, -1 / math.sqrt(h), 1 / math.sqrt(h)))
    np.testing.assert_array_equal(lstm().init(KEY, 3, h)["b"], lstm_init(KEY, 3, h)["b"])


@pytest.mark.parametrize("init", [gru_init, gru_cho_init])
def test_gru_chrono_sets_the_update_gate_that_keeps_the_old_state(init):
    h, t_max = 32, 500
    plain, chrono = init(KEY, 2, h), init(KEY, 2, h, chrono=t_max)
    b_r, b_z, b_n = np.split(np.asarray(chrono["b"]), 3)  # gate order r, z, n
    assert (b_z >= 0).all() and (b_z <= math.log(t_max - 1) + 1e-6).all()
    np.testing.assert_array_equal(b_z, np.asarray(chrono_bias(jax.random.fold_in(KEY, 0xC4), h, t_max)))
    p_r, _, p_n = np.split(np.asarray(plain["b"]), 3)
    np.testing.assert_array_equal(b_r, p_r)
    np.testing.assert_array_equal(b_n, p_n)
    for k in plain:
        if k != "b":
            np.testing.assert_array_equal(chrono[k], plain[k])


def test_gru_chrono_units_remember_for_their_characteristic_time():
    """The sign, checked by what the GRU does: with the weights zeroed, a state h_0 decays as
    h_k = z^k h_0 (the candidate is tanh(0) = 0), z = sigmoid(b_z); a unit with b_z = log(tau)
    keeps e^-1 of its state after about (1 + tau) steps. A wrong sign would forget in ~1 step."""
    h, t_max = 16, 400
    p = gru(chrono=t_max).init(KEY, 1, h)
    p = {k: (jnp.zeros_like(v) if k != "b" else v.at[:h].set(0.0).at[2 * h:].set(0.0)) for k, v in p.items()}
    tau = np.exp(np.asarray(p["b"][h:2 * h]))
    steps = 2000
    state, gates = jax.lax.scan(lambda s, x: gru_gates(p, s, x), jnp.ones(h), jnp.zeros((steps, 1)))
    gates = jax.tree.map(lambda g: g[-1], gates)
    z = 1 / (1 + 1 / tau)
    np.testing.assert_allclose(np.asarray(state), z ** steps, rtol=2e-3)
    np.testing.assert_allclose(np.asarray(gates.z), z, rtol=1e-6)
    # The characteristic time -1/log z is within [tau, tau + 1] for every unit.
    t = -1 / np.log(z)
    assert (t >= tau - 1e-3).all() and (t <= tau + 1 + 1e-3).all()
