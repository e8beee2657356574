"""Linear decoders of a behavioural variable from population activity: Wiener and Kalman filters.

The two classical baselines of neural decoding (Glaser et al. 2020, "Machine learning for neural
decoding"; KordingLab's ``Neural_Decoding``), fitted in closed form on training trials. Arrays
are batch-major, ``[trials, time, ...]``: activity ``y`` ``[trials, time, n]`` (spike counts or
rates of ``n`` neurons), the variable ``x`` ``[trials, time, d]``.

**Wiener filter** (Wiener 1949; Carmena et al. 2003): a linear regression of ``x_t`` on the
activity of the last ``L`` bins, :func:`lagged` ``[y_t, y_{t-1}, .., y_{t-L+1}]`` (zeros before
the trial starts), with a ridge penalty ``alpha`` on the weights, not on the intercept::

    (W, b) = argmin sum_t |x_t - (f_t W + b)|^2 + alpha |W|_F^2
    W = (F_c^T F_c + alpha I)^{-1} F_c^T X_c,   b = mean(x) - mean(f) W      (c: centred)

the same estimate as scikit-learn's ``Ridge(alpha)``.

**Kalman filter** (Kalman 1960; for decoding, Wu et al. 2003/2006): the variable follows linear
Gaussian dynamics and the activity is a linear Gaussian function of it::

    x_t = A x_{t-1} + b + w_t,   w_t ~ N(0, W)
    y_t = H x_t + c + q_t,       q_t ~ N(0, Q)

All parameters are fitted by least squares on the training trials, where ``x`` is observed, as
Wu et al. do: ``(A, b)`` regress ``x_t`` on ``x_{t-1}`` (pairs within trials), ``(H, c)``
regress ``y_t`` on ``x_t``, and ``W``, ``Q`` are the covariances of the residuals (maximum
likelihood, divided by the number of pairs). The filter starts from ``x_0 ~ N(m_0, P_0)``, the
mean and covariance of the training states, and alternates update and prediction::

    S_t = H P_t^- H^T + Q,   K_t = P_t^- H^T S_t^{-1}
    m_t = m_t^- + K_t (y_t - H m_t^- - c),   P_t = (I - K_t H) P_t^-
    m_{t+1}^- = A m_t + b,   P_{t+1}^- = A P_t A^T + W

(``m_0^- = m_0``, ``P_0^- = P_0``). The covariances do not depend on the observations, so they are
computed once per time step for all trials.

The decoders are scored by the coefficient of determination per output dimension,
:func:`r_squared` ``= 1 - sum (x - x_hat)^2 / sum (x - mean x)^2`` (scikit-learn's
``r2_score(multioutput="raw_values")``).

Example::

    >>> import numpy as np
    >>> from seqjax.analysis.linear_decoders import fit_kalman, fit_wiener, kalman_filter, lagged, r_squared
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.normal(size=(4, 100, 1)), axis=1) * 0.1          # [trials, time, d]
    >>> y = x @ rng.normal(size=(1, 6)) + 0.1 * rng.normal(size=(4, 100, 6))  # [trials, time, n]
    >>> wiener = fit_wiener(lagged(y, 3), x, ridge=1.0)
    >>> bool(r_squared(wiener.predict(lagged(y, 3)), x)[0] > 0.9)
    True
    >>> means, covs = kalman_filter(fit_kalman(x, y), y)
    >>> means.shape, covs.shape, bool(r_squared(means, x)[0] > 0.9)
    ((4, 100, 1), (100, 1, 1), True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from seqjax import _checks


def _array3(name: str, x, layout: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be a real array of rank 3 with layout {layout}; got shape "
                         f"{x.shape}, dtype {x.dtype}.")
    return x.astype(np.float64)


def _pair(x_name: str, x, y_name: str, y) -> tuple[np.ndarray, np.ndarray]:
    x = _array3(x_name, x, "[trials, time, features]")
    y = _array3(y_name, y, "[trials, time, features]")
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"{x_name} and {y_name} must share [trials, time]; got {x.shape[:2]} and "
                         f"{y.shape[:2]}.")
    return x, y


def lagged(activity, lags: int) -> np.ndarray:
    """``[trials, time, n * lags]``: block ``k`` (features ``k n .. (k + 1) n - 1``) of bin ``t``
    holds ``activity[:, t - k]``, zero where ``t - k < 0`` (causal history, never the future)."""
    y = _array3("activity", activity, "[trials, time, neurons]")
    _checks.positive_int("lags", lags)
    trials, time, n = y.shape
    out = np.zeros((trials, time, n * lags))
    for k in range(min(lags, time)):
        out[:, k:, k * n:(k + 1) * n] = y[:, :time - k]
    return out


class WienerFilter(NamedTuple):
    """A fitted Wiener filter: ``x_hat = f @ weights + bias``."""

    weights: np.ndarray  # [features, d]
    bias: np.ndarray     # [d]

    def predict(self, features) -> np.ndarray:
        """``[..., d]`` decoded variable from ``features`` ``[..., features]`` (:func:`lagged`)."""
        f = np.asarray(features, np.float64)
        if f.shape[-1] != self.weights.shape[0]:
            raise ValueError(f"features must have {self.weights.shape[0]} features on the last axis; "
                             f"got shape {f.shape}.")
        return f @ self.weights + self.bias


def fit_wiener(features, targets, *, ridge: float = 0.0) -> WienerFilter:
    """Ridge regression of ``targets`` ``[trials, time, d]`` on ``features`` ``[trials, time, f]``
    (module docstring), over every bin of every trial; ``ridge`` is ``alpha >= 0``."""
    return fit_wiener_path(features, targets, (ridge,))[0]


def fit_wiener_path(features, targets, ridges) -> list[WienerFilter]:
    """:func:`fit_wiener` for each ``alpha`` in ``ridges``, from one Gram matrix ``F_c^T F_c``
    (its cost, ``O(m f^2)``, is paid once for the whole grid)."""
    f, x = _pair("features", features, "targets", targets)
    ridges = tuple(ridges)
    if not ridges or any(not (isinstance(r, (int, float)) and r >= 0) for r in ridges):
        raise ValueError(f"ridge must be a non-negative number (ridges: a non-empty sequence of them); got {ridges!r}.")
    f, x = f.reshape(-1, f.shape[-1]), x.reshape(-1, x.shape[-1])
    f_mean, x_mean = f.mean(0), x.mean(0)
    f -= f_mean                      # f is a float64 copy (_pair): centred in place
    gram, cross = f.T @ f, f.T @ (x - x_mean)
    filters = []
    for ridge in ridges:
        weights = np.linalg.lstsq(gram + ridge * np.eye(gram.shape[0]), cross, rcond=None)[0]
        filters.append(WienerFilter(weights, x_mean - f_mean @ weights))
    return filters


class KalmanParams(NamedTuple):
    """The linear-Gaussian model of the module docstring (``d`` state, ``n`` observed dims)."""

    A: np.ndarray   # [d, d] state transition
    b: np.ndarray   # [d]
    W: np.ndarray   # [d, d] state noise covariance
    H: np.ndarray   # [n, d] observation matrix
    c: np.ndarray   # [n]
    Q: np.ndarray   # [n, n] observation noise covariance
    m0: np.ndarray  # [d] initial state mean
    P0: np.ndarray  # [d, d] initial state covariance


def _affine_least_squares(inputs: np.ndarray, outputs: np.ndarray):
    """``(M, v, residual covariance)`` with ``outputs ~ inputs @ M.T + v`` by least squares."""
    design = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)
    coef = np.linalg.lstsq(design, outputs, rcond=None)[0]
    residual = outputs - design @ coef
    return coef[:-1].T, coef[-1], residual.T @ residual / len(residual)


def fit_kalman(states, observations) -> KalmanParams:
    """Fit :class:`KalmanParams` by least squares from training trials where the state is
    observed: ``states`` ``[trials, time, d]``, ``observations`` ``[trials, time, n]``."""
    x, y = _pair("states", states, "observations", observations)
    if x.shape[1] < 2:
        raise ValueError(f"states need at least 2 time steps to fit the dynamics; got {x.shape[1]}.")
    d = x.shape[-1]
    A, b, W = _affine_least_squares(x[:, :-1].reshape(-1, d), x[:, 1:].reshape(-1, d))
    H, c, Q = _affine_least_squares(x.reshape(-1, d), y.reshape(-1, y.shape[-1]))
    flat = x.reshape(-1, d)
    return KalmanParams(A, b, W, H, c, Q, flat.mean(0), np.atleast_2d(np.cov(flat.T, bias=True)))


def kalman_filter(params: KalmanParams, observations) -> tuple[np.ndarray, np.ndarray]:
    """Filtered state means ``[trials, time, d]`` (each from ``y_0 .. y_t``) and covariances
    ``[time, d, d]`` (the same for every trial) of the recursion in the module docstring."""
    y = _array3("observations", observations, "[trials, time, neurons]")
    A, b, W, H, c, Q, m0, P0 = (np.asarray(p, np.float64) for p in params)
    if y.shape[-1] != H.shape[0]:
        raise ValueError(f"observations must have {H.shape[0]} features (H is {H.shape}); got shape "
                         f"{y.shape}.")
    trials, time, _ = y.shape
    d = A.shape[0]
    means, covs = np.empty((trials, time, d)), np.empty((time, d, d))
    m, P = np.broadcast_to(m0, (trials, d)), P0
    eye = np.eye(d)
    for t in range(time):
        S = H @ P @ H.T + Q
        K = np.linalg.solve(S, H @ P).T          # P H^T S^{-1} (S and P symmetric)
        m = m + (y[:, t] - m @ H.T - c) @ K.T
        P = (eye - K @ H) @ P
        P = (P + P.T) / 2
        means[:, t], covs[t] = m, P
        m, P = m @ A.T + b, A @ P @ A.T + W
    return means, covs


def r_squared(predictions, targets) -> np.ndarray:
    """``[d]`` coefficient of determination per output dimension, over every leading axis:
    ``1 - sum (t - p)^2 / sum (t - mean t)^2``; 1 is perfect, 0 the constant mean, negative
    worse than it."""
    p, t = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if p.shape != t.shape or p.ndim < 1:
        raise ValueError(f"predictions and targets must have the same shape [..., d]; got {p.shape} and "
                         f"{t.shape}.")
    p, t = p.reshape(-1, p.shape[-1]), t.reshape(-1, t.shape[-1])
    total = np.sum(np.square(t - t.mean(0)), axis=0)
    if np.any(total == 0):
        raise ValueError("targets are constant in some dimension: R^2 is undefined there.")
    return 1.0 - np.sum(np.square(t - p), axis=0) / total
