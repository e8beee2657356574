"""Forecast accuracy per horizon: RMSE, MAE and MASE (Hyndman & Koehler 2006).

For forecasts ``F`` and targets ``Y``, both ``[origins, H]`` (a target is NaN where it lies past
the end of the series; :func:`seqjax.data.time_series.forecast_targets`), per horizon ``h``, over
the origins whose target exists:

    RMSE_h = sqrt(mean_o (F[o, h] - Y[o, h])^2)       MAE_h = mean_o |F[o, h] - Y[o, h]|

    MASE_h = MAE_h / q,   q = mean_{t = m+1..n} |y_t - y_{t-m}|   over the *training* part

``q`` is the in-sample mean absolute error of the one-step seasonal-naive forecast with period
``m`` (``m = 1``: the naive forecast), so MASE < 1 beats that forecast's in-sample error and
the values of different series are comparable (Hyndman & Koehler 2006, "Another look at
measures of forecast accuracy").

Example::

    >>> import numpy as np
    >>> train = np.array([1.0, 2.0, 4.0, 7.0])
    >>> mase_scale(train, period=1)                      # mean of |1|, |2|, |3|
    2.0
    >>> F = np.array([[8.0, 9.0], [10.0, 12.0]])
    >>> Y = np.array([[9.0, 11.0], [11.0, np.nan]])
    >>> s = forecast_scores(F, Y, scale=2.0)
    >>> s["mae"], s["count"]
    ([1.0, 2.0], [2, 1])
    >>> s["mase"]
    [0.5, 1.0]
"""

from __future__ import annotations

import numpy as np

from seqjax import _checks

__all__ = ["forecast_scores", "mase_scale"]


def mase_scale(train, period: int = 1) -> float:
    """``mean |y_t - y_{t - period}|`` over the training series: the denominator of MASE."""
    y = np.asarray(train, dtype=np.float64)
    _checks.positive_int("period", period)
    if y.ndim != 1 or y.size <= period:
        raise ValueError(f"train must be a 1-D series longer than period {period}; got shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError("train must be finite.")
    scale = float(np.mean(np.abs(y[period:] - y[:-period])))
    if scale == 0.0:
        raise ValueError(f"train is constant at lag {period}: the MASE scale would be 0.")
    return scale


def forecast_scores(forecasts, targets, scale: float) -> dict[str, list]:
    """Per-horizon ``rmse``, ``mae``, ``mase`` (lists of length ``H``) and ``count`` (origins
    scored), plus their means over horizons weighted by count (``*_mean``).

    Args:
      forecasts: ``[origins, H]``, finite wherever the target exists.
      targets: ``[origins, H]``, NaN where no target exists (those cells are skipped).
      scale: the MASE denominator (:func:`mase_scale`).
    """
    f = np.asarray(forecasts, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if f.ndim != 2 or f.shape != y.shape:
        raise ValueError(f"forecasts and targets must both be [origins, H]; got {f.shape} and {y.shape}.")
    _checks.positive_float("scale", scale)
    scored = ~np.isnan(y)
    if np.any(~np.isfinite(f[scored])):
        raise ValueError(f"forecasts must be finite where a target exists; {int(np.sum(~np.isfinite(f[scored])))} "
                         f"are NaN or inf.")
    count = scored.sum(axis=0)
    if np.any(count == 0):
        raise ValueError(f"every horizon needs at least one target; horizons {np.flatnonzero(count == 0) + 1} have none.")
    err = np.where(scored, f - np.where(scored, y, 0.0), 0.0)
    mse = (err ** 2).sum(axis=0) / count
    mae = np.abs(err).sum(axis=0) / count
    out = {"rmse": np.sqrt(mse), "mae": mae, "mase": mae / scale}
    scores = {k: [float(v) for v in vals] for k, vals in out.items()}
    scores["count"] = [int(c) for c in count]
    total = count.sum()
    scores["rmse_mean"] = float(np.sqrt((err ** 2).sum() / total))
    scores["mae_mean"] = float(np.abs(err).sum() / total)
    scores["mase_mean"] = scores["mae_mean"] / scale
    return scores
