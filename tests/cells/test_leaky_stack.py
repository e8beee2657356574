"""seqjax.cells.leaky_stack against a numpy Euler loop; one layer is the rate cell; the time
constants train only when asked to."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells import rate
from seqjax.cells.leaky_stack import leaky_stack, time_constants
from seqjax.cells.rate import append_noise
from seqjax.recurrence import rnn


def numpy_stack(params, us, xi, taus, sigma, dt=1.0):
    """The module docstring's equations, one loop over time and layers, float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    b, t, _ = us.shape
    layers, h = p["b"].shape
    state = np.zeros((b, layers, h))
    out = np.zeros((b, t, layers * h))
    for s in range(t):
        below = us[:, s]
        for l in range(layers):
            a = dt / taus[l]
            w_in = p["w_i"] if l == 0 else p["w_ff"][l - 1]
            pre = np.tanh(state[:, l]) @ p["w_h"][l] + below @ w_in + p["b"][l]
            state[:, l] = (1 - a) * state[:, l] + a * pre + np.sqrt(2 * a) * sigma * xi[:, s, l * h:(l + 1) * h]
            below = np.tanh(state[:, l])
            out[:, s, l * h:(l + 1) * h] = below
    return out


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_matches_the_numpy_loop(sigma):
    taus = (2.0, 5.0, 20.0)
    cell = leaky_stack(taus, noise_std=sigma)
    params = cell.init(jax.random.key(0), 2, 6)
    params["b"] = params["b"] + 0.1
    us = jax.random.normal(jax.random.key(1), (3, 25, 2))
    xs = append_noise(jax.random.key(2), us, 18) if sigma else us
    got = rnn(cell, params, xs)
    xi = np.asarray(xs[..., 2:], np.float64) if sigma else np.zeros((3, 25, 18))
    np.testing.assert_allclose(got, numpy_stack(params, np.asarray(us, np.float64), xi, taus, sigma), atol=2e-5)
    np.testing.assert_allclose(time_constants(params), taus, rtol=1e-5)


def test_one_layer_is_the_rate_cell():
    stack, single = leaky_stack((4.0,), activation="tanh"), rate("tanh", tau=4.0, dt=1.0)
    params = stack.init(jax.random.key(3), 3, 5)
    us = jax.random.normal(jax.random.key(4), (2, 12, 3))
    as_rate = {"w_i": params["w_i"], "w_h": params["w_h"][0], "b": params["b"][0]}
    np.testing.assert_allclose(rnn(stack, params, us), rnn(single, as_rate, us), atol=1e-6)


def test_time_constants_train_only_when_learned():
    us = jax.random.normal(jax.random.key(5), (2, 20, 1))
    for learn in (False, True):
        cell = leaky_stack((3.0, 9.0), learn_tau=learn)
        params = cell.init(jax.random.key(6), 1, 4)
        loss = lambda p, cell=cell: jnp.sum(rnn(cell, p, us) ** 2)
        grads = jax.grad(loss)(params)
        if learn:
            assert np.all(np.abs(np.asarray(grads["alpha_logit"])) > 0)
            # the gradient is the loss's derivative in the logits (central finite differences)
            eps = 1e-3
            for l in range(2):
                d = jnp.zeros(2).at[l].set(eps)
                f = lambda v, p=params, loss=loss: float(loss(p | {"alpha_logit": p["alpha_logit"] + v}))
                assert float(grads["alpha_logit"][l]) == pytest.approx((f(d) - f(-d)) / (2 * eps), rel=2e-2)
        else:
            np.testing.assert_array_equal(np.asarray(grads["alpha_logit"]), 0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="taus"):
        leaky_stack((1.0, 4.0))
    with pytest.raises(ValueError, match="taus"):
        leaky_stack(())
    with pytest.raises(ValueError, match="activation"):
        leaky_stack((2.0,), activation="sigmoid")
