"""Intrinsic timescales from the autocorrelation of activity (Murray et al. 2014).

Murray et al. 2014 ("A hierarchy of intrinsic timescales across primate cortex", Nature
Neuroscience) measure, per cortical area, the autocorrelation of single neurons' spike counts
across time lags, average it over the neurons of the area and fit an exponential decay with an
offset::

    R(k dt) = A (exp(-k dt / tau) + B)

whose ``tau`` is the area's intrinsic timescale. Here the activity is a ``[batch, time, units]``
array of rates (or any signal): :func:`autocorrelation` gives each unit's autocorrelation
(mean and variance over batch and time, per unit), averaged over the units that vary;
:func:`fit_timescale` fits ``A, tau, B`` by least squares (``scipy.optimize.curve_fit``) to lags
``1 .. K`` (lag 0 is 1 by construction and carries no information on the decay). The fit needs
scipy (the ``analysis`` extra), imported when it runs.

For an AR(1) process ``z_t = phi z_{t-1} + e_t`` the autocorrelation is ``phi^k``: ``A = 1``,
``B = 0`` and ``tau = -dt / ln(phi)``.

Example::

    >>> import numpy as np
    >>> from seqjax.analysis.timescales import autocorrelation, fit_timescale
    >>> rng = np.random.default_rng(0)
    >>> phi, z = np.exp(-1 / 10), np.zeros((16, 4000, 1))
    >>> for t in range(1, 4000):
    ...     z[:, t] = phi * z[:, t - 1] + rng.standard_normal((16, 1))
    >>> acf = autocorrelation(z, max_lag=40)
    >>> fit = fit_timescale(acf)
    >>> bool(9 < fit.tau < 11)
    True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class TimescaleFit(NamedTuple):
    """``R(k dt) = amplitude (exp(-k dt / tau) + offset)`` fitted to lags ``1 .. K``; ``tau`` in the
    unit of ``dt``; ``rmse`` of the fit over those lags; all ``nan`` if the fit failed."""

    amplitude: float
    tau: float
    offset: float
    rmse: float


def autocorrelation(x, max_lag: int, *, min_variance: float = 1e-10) -> np.ndarray:
    """The unit-averaged autocorrelation ``[max_lag + 1]`` of ``x`` ``[batch, time, units]``.

    Per unit ``i``: ``R_i(k) = mean_{b,t} (x_{b,t,i} - m_i)(x_{b,t+k,i} - m_i) / v_i`` with ``m_i``
    and ``v_i`` the unit's mean and variance over batch and time; ``R = mean_i R_i`` over the
    units whose variance exceeds ``min_variance`` (a silent unit has no autocorrelation).
    Raises ``ValueError`` if no unit varies.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must have rank 3 with layout [batch, time, units]; got shape {x.shape}.")
    if not (isinstance(max_lag, (int, np.integer)) and 0 < max_lag < x.shape[1]):
        raise ValueError(f"max_lag must be an integer in [1, time - 1] = [1, {x.shape[1] - 1}]; got {max_lag!r}.")
    centred = x - x.mean(axis=(0, 1))
    variance = np.mean(centred**2, axis=(0, 1))
    active = variance > min_variance
    if not active.any():
        raise ValueError(f"x has no unit with variance above min_variance={min_variance}.")
    c = centred[..., active]
    r = [np.ones(c.shape[-1])]
    for k in range(1, max_lag + 1):
        r.append(np.mean(c[:, k:] * c[:, :-k], axis=(0, 1)) / variance[active])
    return np.mean(np.stack(r), axis=1)


def _decay(k, amplitude, tau, offset):
    return amplitude * (np.exp(-k / tau) + offset)


def fit_timescale(acf, *, dt: float = 1.0, max_tau: float | None = None) -> TimescaleFit:
    """Fit ``R(k dt) = A (exp(-k dt / tau) + B)`` to ``acf[1:]`` (lags ``dt .. K dt``).

    ``acf`` is ``[K + 1]`` starting at lag 0 (:func:`autocorrelation`), ``K >= 3``. Bounds:
    ``A > 0``, ``0 < tau <= max_tau`` (default ``100 K dt``). The start value of ``tau`` is read off
    the first lag, ``-dt / ln R(dt)``. A fit that does not converge returns all ``nan``.
    """
    acf = np.asarray(acf, np.float64)
    if acf.ndim != 1 or acf.size < 4 or not np.isfinite(acf).all():
        raise ValueError(f"acf must be a finite 1-D array of at least 4 lags (0 .. K, K >= 3); got shape {acf.shape}.")
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ValueError(f"dt must be a positive number; got {dt!r}.")
    try:
        from scipy.optimize import curve_fit
    except ImportError as err:
        from seqjax.data.corpora import MissingOptionalDependency

        raise MissingOptionalDependency(
            "fit_timescale fits with scipy.optimize.curve_fit, and scipy is not installed. Install it "
            'with: pip install "seqjax[analysis]" (or pip install scipy).'
        ) from err

    lags = np.arange(1, acf.size) * float(dt)
    y = acf[1:]
    max_tau = float(max_tau) if max_tau is not None else 100.0 * lags[-1]
    first = min(max(y[0], 1e-3), 0.999)
    tau0 = min(max(-dt / math.log(first), 0.1 * dt), 0.5 * max_tau)
    try:
        (a, tau, b), _ = curve_fit(_decay, lags, y, p0=(max(y[0], 1e-3), tau0, 0.0),
                                   bounds=([1e-9, 1e-6 * dt, -np.inf], [np.inf, max_tau, np.inf]), maxfev=20000)
    except (RuntimeError, ValueError):
        return TimescaleFit(math.nan, math.nan, math.nan, math.nan)
    rmse = float(np.sqrt(np.mean((_decay(lags, a, tau, b) - y) ** 2)))
    return TimescaleFit(float(a), float(tau), float(b), rmse)
