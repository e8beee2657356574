"""Baseline forecasters every sequence forecaster must beat: persistence and a linear autoregression.

For a series ``x_0, .., x_{t-1}`` (time on the last axis):

* persistence repeats the last value, ``x^_{t+h} = x_{t-1}`` for every horizon ``h``;
* the seasonal-naive forecast from rolling origins (:func:`seasonal_naive`) repeats the last value
  of the same season (period 1: persistence);
* the autoregression of order ``p`` (AR(p)), fitted by least squares on training windows::

      x^_t = c + sum_{j=1..p} a_j x_{t-j}

  and run recursively beyond one step (each forecast is fed back as the newest value), as
  ``statsmodels``' ``AutoReg(..., trend="c").fit()`` and its ``predict`` do for one series; here
  one set of coefficients is fitted on all the (lag, next value) pairs of many windows.

Arrays are NumPy (float64 inside the fit); a window batch is ``[..., t]``: move a feature axis in
front of time to treat features as independent series sharing the coefficients.

Example::

    >>> import numpy as np
    >>> from seqjax.data.forecasting import fit_autoregressive, autoregressive_forecast, persistence_forecast
    >>> t = np.arange(64)
    >>> windows = np.stack([np.sin(0.3 * t + phi) for phi in np.linspace(0, 6, 20)])
    >>> model = fit_autoregressive(windows, order=2)          # a sine obeys an exact AR(2)
    >>> bool(np.allclose(model.coef, [2 * np.cos(0.3), -1.0], atol=1e-6))
    True
    >>> future = autoregressive_forecast(model, windows[:, :40], horizon=5)
    >>> bool(np.allclose(future, windows[:, 40:45], atol=1e-6))
    True
    >>> persistence_forecast(windows[:2, :40], 3).shape
    (2, 3)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from seqjax import _checks


class ARModel(NamedTuple):
    """``x^_t = intercept + sum_j coef[j - 1] x_{t-j}``: ``coef[0]`` weighs the newest value."""

    coef: np.ndarray
    intercept: float


def _series(name: str, x, min_length: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim < 1 or x.shape[-1] < min_length:
        raise ValueError(f"{name} must be [..., time] with time >= {min_length}; got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; it holds NaN or infinity.")
    return x


def fit_autoregressive(windows, order: int, *, intercept: bool = True) -> ARModel:
    """Least-squares AR(``order``) on every (``order`` lags, next value) pair of ``windows``
    ``[..., t]`` (``t > order``); ``intercept=False`` fits ``c = 0``."""
    _checks.positive_int("order", order)
    x = _series("windows", windows, order + 1).reshape(-1, np.shape(windows)[-1])
    t = x.shape[1]
    # Row k of the design: x_{k+order-1}, ..., x_k (newest first), predicting x_{k+order}.
    lags = np.stack([x[:, order - j: t - j] for j in range(1, order + 1)], axis=-1).reshape(-1, order)
    target = x[:, order:].reshape(-1)
    design = np.concatenate([lags, np.ones((lags.shape[0], 1))], axis=1) if intercept else lags
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return ARModel(solution[:order], float(solution[order]) if intercept else 0.0)


def autoregressive_forecast(model: ARModel, history, horizon: int) -> np.ndarray:
    """Recursive forecasts ``[..., horizon]`` of ``model`` from ``history`` ``[..., t]``
    (``t >= order``): step ``h`` uses the forecasts of steps ``< h`` as its newest lags."""
    _checks.positive_int("horizon", horizon)
    order = len(model.coef)
    x = _series("history", history, order)
    recent = x[..., ::-1][..., :order].copy()  # newest first
    out = np.empty(x.shape[:-1] + (horizon,))
    for h in range(horizon):
        nxt = model.intercept + recent @ model.coef
        out[..., h] = nxt
        recent = np.concatenate([nxt[..., None], recent[..., :-1]], axis=-1)
    return out


def persistence_forecast(history, horizon: int) -> np.ndarray:
    """The last value of ``history`` ``[..., t]`` repeated: ``[..., horizon]``."""
    _checks.positive_int("horizon", horizon)
    x = _series("history", history, 1)
    return np.repeat(x[..., -1:], horizon, axis=-1)


def seasonal_naive(y, origins, horizon: int, period: int) -> np.ndarray:
    """The seasonal-naive forecast ``y[o - 1 + h - period * ceil(h / period)]`` (the last value
    of the same season; Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 5.2)
    ``[origins, horizon]``; ``period = 1`` is the persistence forecast ``y[o - 1]``."""
    y = _series("y", y, 2)
    if y.ndim != 1:
        raise ValueError(f"y must be one 1-D series; got shape {y.shape}.")
    _checks.positive_int("horizon", horizon)
    _checks.positive_int("period", period)
    origins = np.asarray(origins)
    if origins.ndim != 1 or not np.issubdtype(origins.dtype, np.integer):
        raise ValueError(f"origins must be a 1-D integer array; got {origins.dtype} of shape {origins.shape}.")
    if origins.size and (origins.min() < period or origins.max() >= len(y)):
        raise ValueError(f"origins must lie in [{period}, {len(y) - 1}] (a full season of history) for a series "
                         f"of {len(y)} values; got [{origins.min()}, {origins.max()}].")
    h = np.arange(1, horizon + 1)
    back = period * np.ceil(h / period).astype(int) - h  # steps before o - 1 (0 for h = period)
    return y[origins[:, None] - 1 - back[None, :]]
