"""Wiener and Kalman decoders and R^2 against independent references: scikit-learn's Ridge and
r2_score, statsmodels' Kalman filter, the Gaussian conditional mean by brute-force linear
algebra, and the true parameters of a simulated linear-Gaussian system."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.analysis.linear_decoders import (
    KalmanParams,
    fit_kalman,
    fit_wiener,
    fit_wiener_path,
    kalman_filter,
    lagged,
    r_squared,
)


def simulate(params: KalmanParams, trials: int, time: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """States and observations of the linear-Gaussian model, by a plain loop."""
    d, n = params.A.shape[0], params.H.shape[0]
    x = np.empty((trials, time, d))
    x[:, 0] = rng.multivariate_normal(params.m0, params.P0, size=trials)
    for t in range(1, time):
        x[:, t] = x[:, t - 1] @ params.A.T + params.b + rng.multivariate_normal(np.zeros(d), params.W, size=trials)
    y = x @ params.H.T + params.c + rng.multivariate_normal(np.zeros(n), params.Q, size=(trials, time))
    return x, y


def true_system(d=2, n=5, seed=0) -> KalmanParams:
    rng = np.random.default_rng(seed)
    theta = 0.3
    A = 0.95 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])[:d, :d]
    L = rng.normal(size=(d, d)) * 0.2
    W = L @ L.T + 0.05 * np.eye(d)
    M = rng.normal(size=(n, n)) * 0.3
    return KalmanParams(A=A, b=np.array([0.1, -0.2])[:d], W=W, H=rng.normal(size=(n, d)),
                        c=rng.normal(size=n), Q=M @ M.T + 0.2 * np.eye(n), m0=np.array([1.0, 0.5])[:d],
                        P0=np.eye(d) * 0.5)


def test_lagged_is_the_causal_history_by_loop():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 7, 3))
    got = lagged(y, 4)
    for trial in range(2):
        for t in range(7):
            for k in range(4):
                want = y[trial, t - k] if t - k >= 0 else np.zeros(3)
                np.testing.assert_array_equal(got[trial, t, 3 * k:3 * k + 3], want)


@pytest.mark.parametrize("ridge", [0.0, 3.0, 250.0])
def test_wiener_filter_is_sklearn_ridge(ridge):
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(2)
    f = rng.poisson(1.0, size=(3, 40, 6)).astype(float)
    x = f[..., :2] @ rng.normal(size=(2, 2)) + rng.normal(size=(3, 40, 2))
    wiener = fit_wiener(f, x, ridge=ridge)
    ref = sklearn.Ridge(alpha=ridge, fit_intercept=True, solver="cholesky").fit(f.reshape(-1, 6), x.reshape(-1, 2))
    np.testing.assert_allclose(wiener.weights, ref.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(wiener.bias, ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(wiener.predict(f), ref.predict(f.reshape(-1, 6)).reshape(3, 40, 2), atol=1e-9)


def test_the_ridge_path_is_one_fit_per_ridge():
    rng = np.random.default_rng(8)
    f = rng.normal(size=(2, 30, 4))
    x = rng.normal(size=(2, 30, 2))
    for got, ridge in zip(fit_wiener_path(f, x, (0.0, 5.0, 50.0)), (0.0, 5.0, 50.0)):
        want = fit_wiener(f, x, ridge=ridge)
        np.testing.assert_allclose(got.weights, want.weights, rtol=1e-12)
        np.testing.assert_allclose(got.bias, want.bias, rtol=1e-12)
    with pytest.raises(ValueError, match="ridge"):
        fit_wiener_path(f, x, ())


def test_r_squared_is_sklearn_r2_score():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    t = rng.normal(size=(4, 30, 3))
    p = t + rng.normal(size=t.shape) * np.array([0.1, 1.0, 3.0])
    np.testing.assert_allclose(r_squared(p, t), metrics.r2_score(t.reshape(-1, 3), p.reshape(-1, 3),
                                                                 multioutput="raw_values"), rtol=1e-12)
    assert r_squared(t, t).tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(r_squared(np.broadcast_to(t.mean((0, 1)), t.shape), t), 0.0, atol=1e-12)


def test_kalman_filter_is_statsmodels_filtered_state():
    kalman_filter_module = pytest.importorskip("statsmodels.tsa.statespace.kalman_filter")
    params = true_system()
    x, y = simulate(params, 3, 25, np.random.default_rng(4))
    means, covs = kalman_filter(params, y)
    for trial in range(3):
        kf = kalman_filter_module.KalmanFilter(k_endog=y.shape[2], k_states=2)
        kf.bind(y[trial].copy())
        kf["design"], kf["obs_intercept"], kf["obs_cov"] = params.H, params.c[:, None], params.Q
        kf["transition"], kf["state_intercept"] = params.A, params.b[:, None]
        kf["selection"], kf["state_cov"] = np.eye(2), params.W
        kf.initialize_known(params.m0, params.P0)
        res = kf.filter()
        np.testing.assert_allclose(means[trial], res.filtered_state.T, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(covs, np.moveaxis(res.filtered_state_cov, -1, 0), rtol=1e-7, atol=1e-10)


def test_kalman_filter_is_the_gaussian_conditional_mean():
    """Brute force: stack (x_0..x_{T-1}, y_0..y_{T-1}) as one Gaussian and condition x_t on
    y_0..y_t with the joint covariance."""
    params = true_system(d=2, n=3, seed=5)
    T, d, n = 5, 2, 3
    # x = G e + mu_x with e the stacked (x_0 - m0, w_1, .., w_{T-1}); build mean and covariance.
    mu_x = [params.m0]
    for _ in range(1, T):
        mu_x.append(params.A @ mu_x[-1] + params.b)
    mu_x = np.concatenate(mu_x)
    G = np.zeros((T * d, T * d))
    for t in range(T):
        for s in range(t + 1):
            G[t * d:(t + 1) * d, s * d:(s + 1) * d] = np.linalg.matrix_power(params.A, t - s)
    noise = np.zeros((T * d, T * d))
    noise[:d, :d] = params.P0
    for t in range(1, T):
        noise[t * d:(t + 1) * d, t * d:(t + 1) * d] = params.W
    cov_x = G @ noise @ G.T
    Hb = np.kron(np.eye(T), params.H)
    cov_y = Hb @ cov_x @ Hb.T + np.kron(np.eye(T), params.Q)
    cov_xy = cov_x @ Hb.T
    mu_y = Hb @ mu_x + np.tile(params.c, T)
    y = np.random.default_rng(6).normal(size=(1, T, n)) + params.c
    means, covs = kalman_filter(params, y)
    flat_y = y[0].reshape(-1)
    for t in range(T):
        seen = slice(0, (t + 1) * n)
        rows = slice(t * d, (t + 1) * d)
        gain = np.linalg.solve(cov_y[seen, seen], cov_xy[rows, seen].T).T
        want_mean = mu_x[rows] + gain @ (flat_y[seen] - mu_y[seen])
        want_cov = cov_x[rows, rows] - gain @ cov_xy[rows, seen].T
        np.testing.assert_allclose(means[0, t], want_mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(covs[t], want_cov, rtol=1e-8, atol=1e-10)


def test_fit_kalman_recovers_the_true_parameters_and_the_filter_is_calibrated():
    params = true_system()
    rng = np.random.default_rng(7)
    x, y = simulate(params, 200, 100, rng)
    fitted = fit_kalman(x, y)
    np.testing.assert_allclose(fitted.A, params.A, atol=0.01)
    np.testing.assert_allclose(fitted.b, params.b, atol=0.01)
    np.testing.assert_allclose(fitted.W, params.W, atol=0.01)
    np.testing.assert_allclose(fitted.H, params.H, atol=0.02)
    np.testing.assert_allclose(fitted.c, params.c, atol=0.02)
    np.testing.assert_allclose(fitted.Q, params.Q, atol=0.02)
    # On fresh trials of the true system, the filter's squared error matches its own covariance
    # (the filter is the optimal estimator there), and it beats the Wiener filter.
    x_test, y_test = simulate(params, 400, 60, rng)
    means, covs = kalman_filter(params, y_test)
    err = np.mean(np.sum(np.square(means[:, 20:] - x_test[:, 20:]), -1))
    assert err == pytest.approx(np.mean(np.trace(covs[20:], axis1=1, axis2=2)), rel=0.05)
    wiener = fit_wiener(lagged(y, 10), x, ridge=1.0)
    wiener_err = np.mean(np.sum(np.square(wiener.predict(lagged(y_test, 10))[:, 20:] - x_test[:, 20:]), -1))
    assert err < wiener_err


def test_bad_inputs_name_the_argument():
    y = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="lags"):
        lagged(y, 0)
    with pytest.raises(ValueError, match="activity"):
        lagged(np.zeros((5, 3)), 2)
    with pytest.raises(ValueError, match="targets"):
        fit_wiener(y, np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="ridge"):
        fit_wiener(y, np.zeros((2, 5, 1)), ridge=-1.0)
    with pytest.raises(ValueError, match="observations"):
        kalman_filter(fit_kalman(np.random.default_rng(0).normal(size=(2, 5, 1)), y), np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="constant"):
        r_squared(np.zeros((3, 1)), np.ones((3, 1)))
