"""seqjax.analysis.timescales: the autocorrelation against statsmodels and a direct loop, and the
Murray et al. 2014 fit recovering known timescales."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.analysis.timescales import autocorrelation, fit_timescale


def ar1(rng, batch, length, phi, units=1):
    z = np.zeros((batch, length, units))
    z[:, 0] = rng.standard_normal((batch, units)) / np.sqrt(1 - phi**2)
    for t in range(1, length):
        z[:, t] = phi * z[:, t - 1] + rng.standard_normal((batch, units))
    return z


def test_autocorrelation_is_the_direct_formula_and_statsmodels():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 200, 4)).cumsum(1) * np.array([1.0, 2.0, 0.5, 3.0])
    acf = autocorrelation(x, 10)
    direct = []
    for i in range(4):
        c = x[..., i] - x[..., i].mean()
        v = np.mean(c**2)
        direct.append([np.mean(c[:, k:] * c[:, : 200 - k]) / v for k in range(11)])
    np.testing.assert_allclose(acf, np.mean(direct, axis=0), rtol=1e-12)
    sm = pytest.importorskip("statsmodels.tsa.stattools")
    # one sequence: statsmodels' acf divides the lag-k sum by n, this by n - k
    one = autocorrelation(x[:1, :, :1], 10)
    ref = sm.acf(x[0, :, 0], nlags=10, fft=False) * 200 / (200 - np.arange(11))
    np.testing.assert_allclose(one, ref, rtol=1e-10)


def test_silent_units_are_left_out():
    rng = np.random.default_rng(0)
    x = np.concatenate([ar1(rng, 4, 500, 0.8), np.zeros((4, 500, 1))], -1)
    np.testing.assert_allclose(autocorrelation(x, 5), autocorrelation(x[..., :1], 5))


@pytest.mark.parametrize("tau", [3.0, 10.0, 30.0])
def test_fit_recovers_the_timescale_of_ar1(tau):
    rng = np.random.default_rng(int(tau))
    x = ar1(rng, 32, 3000, np.exp(-1 / tau), units=2)
    fit = fit_timescale(autocorrelation(x, int(4 * tau)))
    assert fit.tau == pytest.approx(tau, rel=0.1)
    assert fit.amplitude == pytest.approx(1.0, abs=0.1)
    assert abs(fit.offset) < 0.05


def test_fit_of_an_exact_curve_with_offset_and_dt():
    k = np.arange(41) * 2.0              # dt = 2 ms
    acf = 0.7 * (np.exp(-k / 13.0) + 0.2)
    acf[0] = 1.0                         # lag 0 is not fitted
    fit = fit_timescale(acf, dt=2.0)
    assert (fit.amplitude, fit.tau, fit.offset) == pytest.approx((0.7, 13.0, 0.2), rel=1e-5)
    assert fit.rmse < 1e-8


def test_bad_input():
    with pytest.raises(ValueError, match="rank 3"):
        autocorrelation(np.zeros((10, 3)), 2)
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(np.ones((1, 10, 1)), 10)
    with pytest.raises(ValueError, match="no unit"):
        autocorrelation(np.ones((1, 10, 2)), 3)
    with pytest.raises(ValueError, match="at least 4 lags"):
        fit_timescale([1.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="dt"):
        fit_timescale([1.0, 0.5, 0.25, 0.1], dt=0)


def test_missing_scipy_names_the_extra(monkeypatch):
    import sys

    from seqjax.data.corpora import MissingOptionalDependency

    monkeypatch.setitem(sys.modules, "scipy.optimize", None)      # import fails as if not installed
    with pytest.raises(MissingOptionalDependency, match=r"seqjax\[analysis\]"):
        fit_timescale([1.0, 0.5, 0.25, 0.125])
