"""Early stopping as a pure function of an immutable record (no callbacks, no hidden state).

After each evaluation with metric value ``v`` (``mode="min"``: lower is better)::

    improved = v < best - min_delta          ("max": v > best + min_delta)
    best, best_step, waited = (v, step, 0) if improved else (best, best_step, waited + 1)
    stop = waited >= patience

so training stops after ``patience`` evaluations in a row without an improvement of more than
``min_delta``. A NaN value never improves. Keep the parameters of ``best_step`` yourself (JAX
arrays are immutable, so keeping a reference is a real copy; the seed's ``state_dict().copy()``
was a shallow copy that later training overwrote).

Example::

    >>> from seqjax.train.early_stopping import EarlyStopping, early_stopping
    >>> es = EarlyStopping()
    >>> for step, loss in enumerate([1.0, 0.8, 0.81, 0.79, 0.80]):
    ...     es = early_stopping(es, loss, step, patience=2, min_delta=0.05)
    >>> es.best, es.best_step, es.waited, es.stop
    (0.8, 1, 3, True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from seqjax import _checks


class EarlyStopping(NamedTuple):
    """The record :func:`early_stopping` updates. Start from ``EarlyStopping()``: ``best`` is NaN
    (no value yet) until the first evaluation that is not NaN, which always counts as an
    improvement, in either mode."""

    best: float = math.nan
    best_step: int = -1
    waited: int = 0
    stop: bool = False


def early_stopping(
    state: EarlyStopping, value: float, step: int, *, patience: int, min_delta: float = 0.0, mode: str = "min"
) -> EarlyStopping:
    """The record after one more evaluation ``value`` at ``step`` (see the module docstring)."""
    _checks.positive_int("patience", patience)
    _checks.choice("mode", mode, ("min", "max"))
    if not (math.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta must be a finite number >= 0; got {min_delta}.")
    value = float(value)
    if math.isnan(value):
        improved = False
    elif math.isnan(state.best):  # the first finite evaluation
        improved = True
    elif mode == "min":
        improved = value < state.best - min_delta
    else:
        improved = value > state.best + min_delta
    if improved:
        return EarlyStopping(best=value, best_step=step, waited=0, stop=False)
    waited = state.waited + 1
    return state._replace(waited=waited, stop=waited >= patience)
