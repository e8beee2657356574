"""Statistics that compare two sets of population activity (recorded vs generated, say).

For activity ``[trials, time, neurons]`` (spike counts or rates), NumPy, float64:

* :func:`firing_rates`: each neuron's mean per bin, ``[neurons]``;
* :func:`correlation_matrix`: the Pearson correlations ``[neurons, neurons]`` between neurons'
  counts summed in windows of ``bin_size`` bins (within trials), over all windows of all trials;
  a silent neuron's row is NaN;
* :func:`power_spectrum`: the periodogram ``|FFT(y - mean y)|^2 / T`` of each trial and neuron
  (mean removed per trial and neuron), averaged over both; ``[T // 2 + 1]`` at frequencies
  ``k / T`` cycles per bin (as ``scipy.signal.periodogram(..., scaling="spectrum")`` times
  ``T / 2`` off the end points: the two-sided power in each bin);
* :func:`compare`: the numbers a generative model is judged by: the correlation between the two
  sets' firing rates and their mean absolute difference, the correlation between the
  off-diagonal elements of their correlation matrices, and the mean absolute difference of the
  log10 power spectra (frequency 0 excluded).

Example::

    >>> import numpy as np
    >>> from seqjax.analysis.population_statistics import compare, correlation_matrix
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.poisson(1.0, size=(20, 100, 1))
    >>> a = rng.poisson(0.5, size=(20, 100, 4)) + shared          # correlated through `shared`
    >>> correlation_matrix(a).shape
    (4, 4)
    >>> b = rng.poisson(0.5, size=(20, 100, 4)) + rng.poisson(1.0, size=(20, 100, 1))
    >>> scores = compare(b, a)
    >>> bool(scores["correlation_similarity"] > -1.0), round(scores["rate_mae"], 1)
    (True, 0.0)
"""

from __future__ import annotations

import numpy as np

from seqjax import _checks


def _activity(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be a real array [trials, time, neurons]; got shape {x.shape}, "
                         f"dtype {x.dtype}.")
    return x.astype(np.float64)


def firing_rates(activity) -> np.ndarray:
    """``[neurons]``: mean activity per bin of each neuron over all trials and bins."""
    return _activity("activity", activity).mean(axis=(0, 1))


def correlation_matrix(activity, bin_size: int = 1) -> np.ndarray:
    """``[neurons, neurons]`` Pearson correlations of counts summed over ``bin_size`` bins (the
    last partial window of each trial dropped); NaN rows for neurons that never vary."""
    y = _activity("activity", activity)
    _checks.positive_int("bin_size", bin_size)
    trials, time, n = y.shape
    windows = time // bin_size
    if windows < 1:
        raise ValueError(f"bin_size {bin_size} is longer than the trials ({time} bins).")
    summed = y[:, :windows * bin_size].reshape(trials, windows, bin_size, n).sum(2).reshape(-1, n)
    centred = summed - summed.mean(0)
    cov = centred.T @ centred
    std = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(std, std)


def power_spectrum(activity) -> tuple[np.ndarray, np.ndarray]:
    """``(frequencies [T // 2 + 1] in cycles per bin, power [T // 2 + 1])``: the periodogram
    ``|FFT(y - mean y)|^2 / T`` averaged over trials and neurons."""
    y = _activity("activity", activity)
    y = y - y.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(y, axis=1)) ** 2 / y.shape[1]
    return np.fft.rfftfreq(y.shape[1]), power.mean(axis=(0, 2))


def offdiagonal_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation between the upper off-diagonal elements of two square matrices, over
    the pairs that are finite in both."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(f"a and b must be square matrices of the same shape, at least 3 x 3; got {a.shape} "
                         f"and {b.shape}.")
    i, j = np.triu_indices(a.shape[0], k=1)
    x, y = a[i, j], b[i, j]
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.std(x[keep]) == 0 or np.std(y[keep]) == 0:
        return float("nan")
    return float(np.corrcoef(x[keep], y[keep])[0, 1])


def compare(candidate, reference, *, bin_size: int = 1) -> dict[str, float]:
    """How close ``candidate``'s statistics are to ``reference``'s (both ``[trials, time, n]``,
    the same number of neurons and bins per trial).

    Returns ``rate_correlation``, ``rate_mae`` (spikes per bin), ``correlation_similarity`` (see
    :func:`offdiagonal_similarity`), ``correlation_mae`` (mean absolute difference of the
    off-diagonal correlations) and ``spectrum_log_error`` (mean ``|log10 S_c - log10 S_r|`` over
    frequencies above 0).
    """
    c, r = _activity("candidate", candidate), _activity("reference", reference)
    if c.shape[1:] != r.shape[1:]:
        raise ValueError(f"candidate and reference must share [time, neurons]; got {c.shape[1:]} and "
                         f"{r.shape[1:]}.")
    rate_c, rate_r = firing_rates(c), firing_rates(r)
    corr_c, corr_r = correlation_matrix(c, bin_size), correlation_matrix(r, bin_size)
    i, j = np.triu_indices(c.shape[2], k=1)
    diff = np.abs(corr_c[i, j] - corr_r[i, j])
    _, spec_c = power_spectrum(c)
    _, spec_r = power_spectrum(r)
    with np.errstate(divide="ignore"):
        log_error = np.abs(np.log10(spec_c[1:]) - np.log10(spec_r[1:]))
    return {
        "rate_correlation": float(np.corrcoef(rate_c, rate_r)[0, 1]) if np.std(rate_c) > 0 else float("nan"),
        "rate_mae": float(np.mean(np.abs(rate_c - rate_r))),
        "correlation_similarity": offdiagonal_similarity(corr_c, corr_r),
        "correlation_mae": float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan"),
        "spectrum_log_error": float(np.mean(log_error)),
    }
