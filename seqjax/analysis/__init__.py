"""Analysis of trained recurrent networks as dynamical systems.

* :mod:`seqjax.analysis.fixed_points`: fixed and slow points by minimising the speed
  ``q = 1/2 |F(h) - h|^2`` (Sussillo & Barak 2013), their Jacobians and stability.
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
from seqjax.analysis.timescales import TimescaleFit, autocorrelation, fit_timescale

__all__ = ["FixedPointSearch", "Linearisation", "find_fixed_points", "linearise", "speed", "unique_points",
           "TimescaleFit", "autocorrelation", "fit_timescale"]
