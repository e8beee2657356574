"""seqjax.data.forecasting: persistence and least-squares AR against statsmodels and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.data.forecasting import ARModel, autoregressive_forecast, fit_autoregressive, persistence_forecast


def _ar2_series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for t in range(2, n):
        x[t] = 0.3 + 0.6 * x[t - 1] - 0.2 * x[t - 2] + rng.normal()
    return x


def test_fit_matches_statsmodels_autoreg_on_one_series():
    ar_model = pytest.importorskip("statsmodels.tsa.ar_model")
    x = _ar2_series(500)
    ours = fit_autoregressive(x, order=3)
    ref = ar_model.AutoReg(x, lags=3, trend="c").fit()
    np.testing.assert_allclose(ours.intercept, ref.params[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.coef, ref.params[1:], rtol=1e-8, atol=1e-10)
    # The recursive forecast is statsmodels' dynamic out-of-sample prediction.
    ours_future = autoregressive_forecast(ours, x, horizon=7)
    ref_future = ref.predict(start=len(x), end=len(x) + 6)
    np.testing.assert_allclose(ours_future, ref_future, rtol=1e-8, atol=1e-10)


def test_fit_pools_windows_and_recovers_the_generating_coefficients():
    x = np.stack([_ar2_series(400, seed=s) for s in range(20)])
    model = fit_autoregressive(x, order=2)
    np.testing.assert_allclose(model.coef, [0.6, -0.2], atol=0.03)
    assert abs(model.intercept - 0.3) < 0.05
    # Pooling windows is the same least squares as stacking their (lag, next) pairs by hand.
    rows = [(w[t - 1], w[t - 2], 1.0, w[t]) for w in x for t in range(2, w.size)]
    a = np.array(rows)
    sol, *_ = np.linalg.lstsq(a[:, :3], a[:, 3], rcond=None)
    np.testing.assert_allclose(model.coef, sol[:2], rtol=1e-9)
    np.testing.assert_allclose(model.intercept, sol[2], rtol=1e-9)


def test_forecast_is_the_python_loop_and_persistence_repeats_the_last_value():
    model = ARModel(np.array([0.5, -0.25, 0.1]), 0.2)
    hist = np.random.default_rng(1).normal(size=(4, 6))
    out = autoregressive_forecast(model, hist, 5)
    for b in range(4):
        seq = list(hist[b])
        for h in range(5):
            nxt = 0.2 + 0.5 * seq[-1] - 0.25 * seq[-2] + 0.1 * seq[-3]
            assert out[b, h] == pytest.approx(nxt, abs=1e-12)
            seq.append(nxt)
    np.testing.assert_array_equal(persistence_forecast(hist, 3), np.repeat(hist[:, -1:], 3, axis=1))
    no_intercept = fit_autoregressive(np.sin(0.2 * np.arange(50)), 2, intercept=False)
    assert no_intercept.intercept == 0.0


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="order"):
        fit_autoregressive(np.zeros(10), 0)
    with pytest.raises(ValueError, match="windows"):
        fit_autoregressive(np.zeros(3), 3)
    with pytest.raises(ValueError, match="history"):
        autoregressive_forecast(ARModel(np.ones(4), 0.0), np.zeros(3), 2)
    with pytest.raises(ValueError, match="finite"):
        fit_autoregressive(np.array([0.0, np.nan, 1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="horizon"):
        persistence_forecast(np.zeros(3), 0)
