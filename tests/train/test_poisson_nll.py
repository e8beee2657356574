"""The Poisson negative log-likelihood and bits per spike against scipy, PyTorch and the
derivative of the formula."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.train import bits_per_spike, poisson_nll


def test_poisson_nll_is_minus_scipy_logpmf():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.05, 4.0, size=(3, 7))
    counts = rng.poisson(rates)
    got = np.asarray(poisson_nll(jnp.asarray(rates, jnp.float32), jnp.asarray(counts), reduction="none"))
    np.testing.assert_allclose(got, -stats.poisson.logpmf(counts, rates), rtol=2e-5, atol=1e-5)
    mean = float(poisson_nll(jnp.asarray(rates, jnp.float32), jnp.asarray(counts)))
    assert mean == pytest.approx(-stats.poisson.logpmf(counts, rates).mean(), rel=1e-5)


def test_log_input_is_torch_poisson_nll_loss_plus_log_factorial():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    log_rates = rng.normal(size=(4, 5)).astype(np.float32)
    counts = rng.poisson(np.exp(log_rates)).astype(np.float32)
    ref = torch.nn.functional.poisson_nll_loss(torch.tensor(log_rates), torch.tensor(counts), log_input=True,
                                               full=False, reduction="none").numpy()
    ref = ref + np.vectorize(math.lgamma)(counts + 1.0)
    got = poisson_nll(jnp.asarray(log_rates), jnp.asarray(counts), log_input=True, reduction="none")
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)


def test_gradient_is_one_minus_count_over_rate_and_mask_drops_elements():
    rates = jnp.array([0.5, 2.0, 3.0])
    counts = jnp.array([1, 0, 4])
    grad = jax.grad(lambda r: poisson_nll(r, counts, reduction="sum"))(rates)
    np.testing.assert_allclose(np.asarray(grad), 1.0 - np.array([1, 0, 4]) / np.array([0.5, 2.0, 3.0]), rtol=1e-5)
    mask = jnp.array([True, False, True])
    masked = float(poisson_nll(rates, counts, mask=mask))
    each = np.asarray(poisson_nll(rates, counts, reduction="none"))
    assert masked == pytest.approx((each[0] + each[2]) / 2, rel=1e-6)


def test_bits_per_spike_known_values():
    # The model equal to the baseline gains nothing; 2 ln 2 nats less over 4 spikes is 0.5 bit each.
    assert bits_per_spike(10.0, 10.0, 4) == 0.0
    assert bits_per_spike(10.0 - 2 * math.log(2), 10.0, 4) == pytest.approx(0.5)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="same shape"):
        poisson_nll(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="rates must be floating"):
        poisson_nll(jnp.ones(3, jnp.int32), jnp.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        poisson_nll(jnp.ones(3), jnp.ones(3), reduction="avg")
