"""seqjax.data.time_series: the shipped series, rolling origins, naive forecasts and windows,
against plain loops."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from seqjax.data import forecasting as fc
from seqjax.data import time_series as ts
from seqjax.data.corpora import MissingOptionalDependency

statsmodels = pytest.importorskip("statsmodels", reason="the shipped series need statsmodels: pip install 'seqjax[forecasting]'")


def test_shipped_series():
    sun, co2, nile = (ts.load_series(n) for n in ("sunspots", "co2", "nile"))
    assert (len(sun.values), sun.start, sun.period) == (309, "1700", 11)
    assert (len(nile.values), nile.start, nile.period, nile.values[0]) == (100, "1871", 1, 1120.0)
    assert (len(co2.values), co2.start, co2.period) == (526, "1958-03", 12)
    assert np.all(np.isfinite(co2.values))
    # The monthly CO2 rises (Keeling curve): every 12-month mean above the one before.
    yearly = co2.values[: 12 * 43].reshape(43, 12).mean(1)
    assert np.all(np.diff(yearly) > 0)
    with pytest.raises(ValueError, match="name must be one of"):
        ts.load_series("airline")


def test_missing_statsmodels_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_statsmodels(name, *args, **kwargs):
        if name.startswith("statsmodels"):
            raise ImportError("No module named 'statsmodels'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    with pytest.raises(MissingOptionalDependency, match=r"seqjax\[forecasting\]"):
        ts.load_series("nile")


def test_seasonal_naive_is_the_last_value_of_the_same_season():
    rng = np.random.default_rng(0)
    y = rng.normal(size=40)
    origins = np.arange(12, 40)
    for period in (1, 3, 12):
        got = fc.seasonal_naive(y, origins, 7, period)
        for i, o in enumerate(origins):
            for h in range(1, 8):
                j = o - 1 + h  # the target's index; step back a season until it is known
                while j > o - 1:
                    j -= period
                assert got[i, h - 1] == y[j]
    np.testing.assert_array_equal(fc.seasonal_naive(y, origins, 3, 1), np.repeat(y[origins - 1][:, None], 3, 1))
    with pytest.raises(ValueError, match="origins must lie in"):
        fc.seasonal_naive(y, np.array([2]), 3, 12)  # not a full season of history


def test_targets_and_windows_against_loops():
    y = np.arange(20.0) ** 1.5
    origins = ts.rolling_origins(len(y), 5)
    np.testing.assert_array_equal(origins, [15, 16, 17, 18, 19])
    targets = ts.forecast_targets(y, origins, 3)
    for i, o in enumerate(origins):
        for h in range(3):
            want = y[o + h] if o + h < len(y) else np.nan
            np.testing.assert_equal(targets[i, h], want)
    xs, ys = ts.sliding_windows(y, 4, 2, stop=12)
    assert xs.shape == (7, 4) and ys.shape == (7, 2)
    for i in range(7):
        np.testing.assert_array_equal(xs[i], y[i:i + 4])
        np.testing.assert_array_equal(ys[i], y[i + 4:i + 6])
    assert ys.max() == y[11]  # nothing from y[12:] leaks in


@pytest.mark.parametrize("call, match", [
    (lambda: ts.rolling_origins(10, 10), "holdout must be smaller"),
    (lambda: ts.forecast_targets(np.ones((3, 2)), np.array([1]), 2), "1-D series"),
    (lambda: ts.forecast_targets([1.0, np.nan, 2.0], np.array([1]), 2), "finite"),
    (lambda: ts.forecast_targets(np.ones(5), np.array([1.5]), 2), "integer"),
    (lambda: ts.sliding_windows(np.ones(5), 4, 2), "too short"),
    (lambda: fc.seasonal_naive(np.ones(5), np.array([3]), 0, 1), "horizon"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
