"""The leaky rate cell against a float64 numpy Euler integration of its ODE, plus Dale's law under
training, the recurrent-noise statistics, padding and scan == Python loop."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seqjax.cells import rate
from seqjax.cells.rate import (
    YANG2019,
    append_noise,
    append_zero_noise,
    dale_signs,
    effective_recurrent_weights,
)
from seqjax.nn.rate import RateRNN
from seqjax.recurrence import rnn

B, T, D, H = 3, 12, 4, 10
F = {"relu": lambda v: np.maximum(v, 0), "softplus": lambda v: np.log1p(np.exp(v)), "tanh": np.tanh, "linear": lambda v: v}


def euler_reference(p, us, xi, *, activation, tau, dt, sigma, dale, frac=0.8, self_conn=True, h0=None):
    """tau dh/dt = -h + W f(h) + W_in u + b + sqrt(2 tau) sigma xi, one Euler step of dt at a time,
    written from the ODE (column-vector form, W[i, j] = weight from unit j to unit i)."""
    f = F[activation]
    w_in = np.asarray(p["w_i"], np.float64).T        # [h, d]
    raw = np.asarray(p["w_h"], np.float64).T         # [h, h], column j = presynaptic unit j
    if dale:
        n_exc = int(round(frac * raw.shape[0]))
        sign = np.array([1.0] * n_exc + [-1.0] * (raw.shape[0] - n_exc))
        W = np.abs(raw) * sign[None, :]
    else:
        W = raw.copy()
    if not self_conn:
        np.fill_diagonal(W, 0.0)
    b = np.asarray(p["b"], np.float64)
    batch, time, _ = us.shape
    h = np.zeros((batch, W.shape[0])) if h0 is None else np.array(h0, np.float64)
    out = np.zeros((batch, time, W.shape[0]))
    for n in range(batch):
        x = h[n].copy()
        for t in range(time):
            # dW(t) over dt is sqrt(dt) * xi: the Euler-Maruyama increment of sqrt(2 tau) sigma dW/tau
            drift = (-x + W @ f(x) + w_in @ us[n, t] + b) / tau
            diffusion = math.sqrt(2 * tau) * sigma / tau * math.sqrt(dt) * xi[n, t]
            x = x + dt * drift + diffusion
            out[n, t] = f(x)
        h[n] = x
    return h, out


@pytest.mark.parametrize(
    "activation,dale,self_conn,sigma",
    [("softplus", False, True, 0.0), ("relu", True, True, 0.05), ("tanh", True, False, 0.3),
     ("relu", False, False, 0.1), ("linear", False, True, 0.05)],
)
def test_matches_numpy_euler_float64(activation, dale, self_conn, sigma):
    tau, dt = 100.0, 20.0
    with jax.enable_x64(True):
        cell = rate(activation, tau=tau, dt=dt, noise_std=sigma, dale=dale, self_connections=self_conn)
        p = cell.init(jax.random.key(0), D, H)
        keys = jax.random.split(jax.random.key(1), 3)
        p = {k: v.astype(jnp.float64) for k, v in p.items()}
        p["b"] = 0.3 * jax.random.normal(keys[0], (H,), jnp.float64)
        p["w_h"] = p["w_h"] * 2.0   # a recurrence strong enough to matter
        us = np.asarray(jax.random.normal(keys[1], (B, T, D), jnp.float64))
        xi = np.asarray(jax.random.normal(keys[2], (B, T, H), jnp.float64))
        xs = np.concatenate([us, xi], -1) if sigma else us
        h0 = 0.5 * np.asarray(jax.random.normal(keys[0], (B, H), jnp.float64))
        carry, ys = rnn(cell, p, jnp.asarray(xs), initial_carry=jnp.asarray(h0), return_carry=True)
        assert ys.dtype == jnp.float64
        h_ref, y_ref = euler_reference(
            p, us, xi, activation=activation, tau=tau, dt=dt, sigma=sigma, dale=dale, self_conn=self_conn,
            h0=h0,
        )
        np.testing.assert_allclose(np.asarray(ys), y_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(carry), h_ref, rtol=1e-10, atol=1e-12)


def test_scan_equals_python_loop_and_padding():
    cell = rate("relu", noise_std=0.05, dale=True)
    p = cell.init(jax.random.key(3), D, H)
    xs = append_noise(jax.random.key(4), jax.random.normal(jax.random.key(5), (B, T, D)), H)
    lengths = jnp.array([T, 5, 0])
    carry, ys = rnn(cell, p, xs, seq_lengths=lengths, return_carry=True)
    for n in range(B):
        h = cell.zero_carry(p, jnp.float32)
        for t in range(int(lengths[n])):
            h, y = cell.step(p, h, xs[n, t])
            np.testing.assert_allclose(ys[n, t], y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(carry[n], h, rtol=1e-5, atol=1e-6)
        assert not np.any(np.asarray(ys[n, int(lengths[n]):]))


def test_dale_signs_survive_training():
    """Outgoing weights keep their unit's sign through Adam steps that do change them."""
    net = RateRNN(3, H, rngs=nnx.Rngs(0), dale=True, noise_std=0.05, activation="relu")
    signs = np.asarray(dale_signs(H))
    assert (signs == 1).sum() == 8
    graphdef, params = nnx.split(net, nnx.Param)
    us = jax.random.normal(jax.random.key(1), (8, 10, 3))
    target = jnp.sin(jnp.arange(10.0))[None, :, None]

    def loss(params, key):
        model = nnx.merge(graphdef, params)
        return jnp.mean((model(us, noise_key=key).mean(-1, keepdims=True) - target) ** 2)

    opt = optax.adam(0.05)
    state = opt.init(params)
    before = np.asarray(net.recurrent_weights())
    @jax.jit
    def train_step(params, state, key):
        updates, state = opt.update(jax.grad(loss)(params, key), state, params)
        return optax.apply_updates(params, updates), state

    for i in range(20):
        params, state = train_step(params, state, jax.random.key(i))
    nnx.update(net, params)
    w = np.asarray(net.recurrent_weights())
    assert np.abs(w - before).max() > 0.1          # training moved the weights
    assert (np.asarray(net.w_h[...]) < 0).any()     # the raw weights are unconstrained...
    assert (w[signs > 0] >= 0).all() and (w[signs < 0] <= 0).all()   # ...the effective ones are not
    assert (w[signs < 0] < 0).any()


def test_no_self_connections():
    p = rate(dale=True).init(jax.random.key(0), 2, 6)
    w = effective_recurrent_weights(p, dale=True, self_connections=False)
    assert np.all(np.diag(np.asarray(w)) == 0) and np.count_nonzero(np.asarray(w)) == 30


def test_noise_statistics():
    """With W = 0, u = 0 and b = 0 the state is an AR(1) process,
    h_t = (1-a) h_{t-1} + sqrt(2a) sigma xi_t: stationary std sigma * sqrt(2 / (2 - a)) (-> sigma as
    dt -> 0) and lag-1 autocorrelation 1 - a; the per-step increments have std sqrt(2a) sigma."""
    sigma, tau, dt, h = 0.5, 100.0, 20.0, 64
    alpha = dt / tau
    cell = rate("tanh", tau=tau, dt=dt, noise_std=sigma)
    p = cell.init(jax.random.key(0), 1, h)
    p = {k: jnp.zeros_like(v) for k, v in p.items()}
    xs = append_noise(jax.random.key(1), jnp.zeros((16, 600, 1)), h)
    carry, _ = rnn(cell, p, xs, return_carry=True)
    hs = []     # the states themselves (the outputs are tanh of them)
    hcur = jnp.zeros((16, h))
    step = jax.jit(jax.vmap(lambda c, x: cell.step(p, c, x)[0]))
    for t in range(600):
        hcur = step(hcur, xs[:, t])
        hs.append(hcur)
    hs = np.asarray(jnp.stack(hs, 1))[:, 100:]       # burn-in of 100 steps (20 time constants)
    np.testing.assert_allclose(hs.std(), sigma * math.sqrt(2 / (2 - alpha)), rtol=0.03)
    lag1 = np.mean(hs[:, 1:] * hs[:, :-1]) / np.mean(hs ** 2)
    np.testing.assert_allclose(lag1, 1 - alpha, atol=0.02)
    increments = hs[:, 1:] - (1 - alpha) * hs[:, :-1]
    np.testing.assert_allclose(increments.std(), math.sqrt(2 * alpha) * sigma, rtol=0.02)
    np.testing.assert_allclose(np.asarray(carry), hs[:, -1], rtol=1e-5, atol=1e-6)


def test_module_noise_key_and_zero_noise():
    net = RateRNN(2, 5, rngs=nnx.Rngs(0), noise_std=0.1)
    us = jnp.ones((2, 4, 2))
    quiet = net(us)
    np.testing.assert_allclose(quiet, rnn(net.cell, net.pure_params(), append_zero_noise(us, 5)))
    a, b = net(us, noise_key=jax.random.key(1)), net(us, noise_key=jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, net(us, noise_key=jax.random.key(2)))
    assert not np.allclose(a, quiet)


def test_yang_defaults_documented():
    assert YANG2019 == {"hidden_features": 256, "tau": 100.0, "dt": 20.0, "noise_std": 0.05,
                        "activation": "softplus"}


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        rate("sigmoid")
    with pytest.raises(ValueError, match="dt must be at most tau"):
        rate(tau=10.0, dt=20.0)
    with pytest.raises(ValueError, match="noise_std"):
        rate(noise_std=-0.1)
    with pytest.raises(ValueError, match="excitatory_fraction"):
        rate(excitatory_fraction=1.0)
    with pytest.raises(ValueError, match="excitatory units"):
        rate(dale=True, excitatory_fraction=0.9).init(jax.random.key(0), 2, 3)
    cell = rate(noise_std=0.05)
    p = cell.init(jax.random.key(0), 3, 4)
    with pytest.raises(ValueError, match="expect 7"):
        rnn(cell, p, jnp.ones((1, 2, 3)))      # forgot the noise stream
