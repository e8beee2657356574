"""seqjax.data.multiscale: the latents are AR(1) with the stated variance and timescale, the
observation is their noisy sum, and the running-mean target is the numpy loop's."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from seqjax.data.multiscale import ar1, mixed_timescales


def test_ar1_variance_and_autocorrelation():
    z = np.asarray(ar1(jax.random.key(0), 64, 2000, 5.0))
    assert z.var() == pytest.approx(1.0, rel=0.05)
    for k in (1, 5):
        r = np.mean(z[:, k:] * z[:, :-k]) / z.var()
        assert r == pytest.approx(np.exp(-k / 5.0), abs=0.02)


def test_mixed_timescales_targets():
    u, y = mixed_timescales(jax.random.key(1), 8, 300, tau_fast=2.0, tau_slow=50.0, noise=0.5, window=20)
    u, y = np.asarray(u)[..., 0], np.asarray(y)
    residual = u - y[..., 0] - y[..., 1]
    assert residual.std() == pytest.approx(0.5, rel=0.1)
    for b in range(8):
        for t in (0, 5, 19, 20, 150, 299):
            lo = max(0, t + 1 - 20)
            assert y[b, t, 2] == pytest.approx(u[b, lo : t + 1].mean(), abs=1e-4)
    fast, slow = y[..., 0], y[..., 1]
    lag1 = lambda z: np.mean(z[:, 1:] * z[:, :-1]) / np.mean(z * z)
    assert lag1(fast) < 0.75 < lag1(slow)


def test_bad_input():
    with pytest.raises(ValueError, match="tau_fast < tau_slow"):
        mixed_timescales(jax.random.key(0), 1, 10, tau_fast=5.0, tau_slow=5.0)
    with pytest.raises(ValueError, match="window"):
        mixed_timescales(jax.random.key(0), 1, 10, window=0)
