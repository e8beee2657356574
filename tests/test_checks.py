"""Boundary validation helpers (seqjax._checks)."""

import numpy as np
import pytest

from seqjax import _checks


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 0, -2, 1.0, "3", None])
def test_positive_int_refuses_non_integers(value):
    # positive_int(True) used to be accepted as 1.
    with pytest.raises(ValueError, match=r"n must be a positive integer; got"):
        _checks.positive_int("n", value)


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_int_accepts_integers(value):
    _checks.positive_int("n", value)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_positive_float(value):
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        _checks.positive_float("eps", value)
    _checks.positive_float("eps", 1e-12)


def test_token_ids():
    with pytest.raises(ValueError, match=r"ids must hold ids in \[0, 5\); got values in \[0, 5\]"):
        _checks.token_ids("ids", np.array([[0, 5]]), 5)
    with pytest.raises(ValueError, match=r"ids must have shape \[batch, time\]"):
        _checks.token_ids("ids", np.array([0, 1]), 5)
    with pytest.raises(ValueError, match="must hold integers"):
        _checks.token_ids("ids", np.array([[0.0]]), 5)
