"""Real time series that statsmodels ships, rolling-origin evaluation, and the naive forecasts.

Nothing is downloaded: the series are the datasets bundled with statsmodels (an optional extra,
``pip install 'seqjax[forecasting]'``), read through ``statsmodels.api.datasets``:

==============  ======================================================================  ======
name            series                                                                  period
==============  ======================================================================  ======
``sunspots``    yearly mean sunspot number, 1700-2008 (309 values)                      11
``co2``         Mauna Loa CO2 (ppm), weekly 1958-2001 averaged to 526 months; the 61       12
                months with no measurement are filled by linear interpolation
``nile``        yearly flow of the Nile at Aswan (10^8 m^3), 1871-1970 (100 values)      1
==============  ======================================================================  ======

``period`` is the season a seasonal-naive forecast repeats: 12 months for CO2, none (1) for the
Nile, and 11 years, the mean length of the Schwabe solar cycle, for the sunspots (the cycle varies
from 9 to 14 years, so that forecast is only approximately seasonal).

**Rolling-origin evaluation** (Tashman 2000): the last ``holdout`` values are never trained on; a
forecast is made from every origin ``o`` in ``[n - holdout, n - 1]`` using the values before it
(``y[:o]``), for every horizon ``h = 1..H`` whose target ``y[o + h - 1]`` exists. A forecast array
``[origins, H]`` holds NaN where the target lies past the end (:func:`forecast_targets`).

The naive forecasts from those origins are :func:`seqjax.data.forecasting.seasonal_naive`.

Example::

    >>> import numpy as np
    >>> y = np.arange(10.0)
    >>> origins = rolling_origins(len(y), holdout=3)
    >>> origins.tolist()
    [7, 8, 9]
    >>> forecast_targets(y, origins, horizon=2).tolist()
    [[7.0, 8.0], [8.0, 9.0], [9.0, nan]]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from seqjax import _checks
from seqjax.data.corpora import MissingOptionalDependency

__all__ = [
    "SERIES",
    "TimeSeries",
    "forecast_targets",
    "load_series",
    "rolling_origins",
    "sliding_windows",
]

INSTALL_HINT = "pip install 'seqjax[forecasting]'  (or: pip install 'statsmodels>=0.14,<0.16')"


class TimeSeries(NamedTuple):
    """A named series: ``values`` ``[n]`` float64, the first time stamp and its unit, the period
    a seasonal-naive forecast repeats, and how the values were read."""

    name: str
    values: np.ndarray
    start: str
    frequency: str
    period: int
    description: str


def _statsmodels_datasets():
    try:
        import statsmodels.api as sm
    except ImportError as err:
        raise MissingOptionalDependency(
            f"the forecasting series are the datasets that statsmodels ships, and statsmodels is not "
            f"installed. Install it with: {INSTALL_HINT}."
        ) from err
    return sm.datasets


def _sunspots(ds) -> TimeSeries:
    data = ds.sunspots.load_pandas().data
    return TimeSeries("sunspots", data["SUNACTIVITY"].to_numpy(np.float64), str(int(data["YEAR"].iloc[0])),
                      "year", 11, "yearly mean sunspot number (statsmodels.datasets.sunspots)")


def _co2(ds) -> TimeSeries:
    weekly = ds.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate("linear")
    return TimeSeries("co2", monthly.to_numpy(np.float64), monthly.index[0].strftime("%Y-%m"), "month", 12,
                      "Mauna Loa CO2 in ppm, weekly averaged to months, gaps interpolated "
                      "(statsmodels.datasets.co2)")


def _nile(ds) -> TimeSeries:
    data = ds.nile.load_pandas().data
    return TimeSeries("nile", data["volume"].to_numpy(np.float64), str(int(data["year"].iloc[0])), "year", 1,
                      "yearly flow of the Nile at Aswan, 10^8 m^3 (statsmodels.datasets.nile)")


SERIES = {"sunspots": _sunspots, "co2": _co2, "nile": _nile}


def load_series(name: str) -> TimeSeries:
    """One of :data:`SERIES` (see the module docstring); needs statsmodels."""
    if name not in SERIES:
        raise ValueError(f"name must be one of {sorted(SERIES)}; got {name!r}.")
    series = SERIES[name](_statsmodels_datasets())
    if not np.all(np.isfinite(series.values)):
        raise ValueError(f"series {name!r} has missing values after loading.")
    return series


def _series(name: str, y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"{name} must be a 1-D series of at least 2 values; got shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} must be finite; it has {int(np.sum(~np.isfinite(y)))} NaN/inf values.")
    return y


def rolling_origins(n: int, holdout: int) -> np.ndarray:
    """The forecast origins ``[n - holdout, ..., n - 1]`` of a series of ``n`` values: from origin
    ``o`` only ``y[:o]`` is known, and ``y[o]`` is the one-step target."""
    _checks.positive_int("n", n)
    _checks.positive_int("holdout", holdout)
    if holdout >= n:
        raise ValueError(f"holdout must be smaller than the series length {n}; got {holdout}.")
    return np.arange(n - holdout, n)


def _origins(origins, n: int, min_history: int = 1) -> np.ndarray:
    origins = np.asarray(origins)
    if origins.ndim != 1 or not np.issubdtype(origins.dtype, np.integer):
        raise ValueError(f"origins must be a 1-D integer array; got {origins.dtype} of shape {origins.shape}.")
    if origins.size and (origins.min() < min_history or origins.max() >= n):
        raise ValueError(f"origins must lie in [{min_history}, {n - 1}] for a series of {n} values; got "
                         f"[{origins.min()}, {origins.max()}].")
    return origins


def forecast_targets(y, origins, horizon: int) -> np.ndarray:
    """``[origins, horizon]``: ``y[o + h - 1]`` for ``h = 1..horizon``, NaN past the end."""
    y = _series("y", y)
    _checks.positive_int("horizon", horizon)
    origins = _origins(origins, len(y))
    index = origins[:, None] + np.arange(horizon)[None, :]
    out = np.full(index.shape, np.nan)
    inside = index < len(y)
    out[inside] = y[index[inside]]
    return out


def sliding_windows(y, length: int, horizon: int = 1, *, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(window, next values)`` pair inside ``y[:stop]``: inputs ``[m, length]`` and targets
    ``[m, horizon]``, window ``i`` being ``y[i : i + length]`` and its targets the ``horizon``
    values after it (``m = stop - length - horizon + 1``)."""
    y = _series("y", y)
    _checks.positive_int("length", length)
    _checks.positive_int("horizon", horizon)
    stop = len(y) if stop is None else stop
    if not 0 < stop <= len(y):
        raise ValueError(f"stop must lie in [1, {len(y)}]; got {stop}.")
    m = stop - length - horizon + 1
    if m < 1:
        raise ValueError(f"y[:{stop}] is too short for windows of {length} plus {horizon} targets.")
    index = np.arange(m)[:, None] + np.arange(length + horizon)[None, :]
    pairs = y[index]
    return pairs[:, :length], pairs[:, length:]
