"""Analysis of trained recurrent networks as dynamical systems, and of population activity.

* :mod:`seqjax.analysis.fixed_points`: fixed and slow points by minimising the speed
  ``q = 1/2 |F(h) - h|^2`` (Sussillo & Barak 2013), their Jacobians and stability.
* :mod:`seqjax.analysis.linear_decoders`: Wiener and Kalman filters decoding a variable from
  population activity, fitted in closed form (Wu et al. 2003, Glaser et al. 2020), and R^2.
* :mod:`seqjax.analysis.population_statistics`: firing rates, pairwise correlations and power
  spectra of two sets of population activity, compared.
* :mod:`seqjax.analysis.timescales`: intrinsic timescales from the autocorrelation of activity,
  fitted as ``A (exp(-k / tau) + B)`` (Murray et al. 2014).
"""

from seqjax.analysis.fixed_points import (
    FixedPointSearch,
    Linearisation,
    find_fixed_points,
    linearise,
    speed,
    unique_points,
)
from seqjax.analysis.linear_decoders import KalmanParams, WienerFilter, fit_kalman, fit_wiener, fit_wiener_path, kalman_filter, lagged, r_squared
from seqjax.analysis.population_statistics import compare as compare_populations
from seqjax.analysis.timescales import TimescaleFit, autocorrelation, fit_timescale

__all__ = ["KalmanParams", "WienerFilter", "compare_populations", "fit_kalman", "fit_wiener", "fit_wiener_path", "kalman_filter",
           "lagged", "r_squared", "FixedPointSearch", "Linearisation", "find_fixed_points", "linearise", "speed", "unique_points",
           "TimescaleFit", "autocorrelation", "fit_timescale"]
