"""seqjax.train.forecast_metrics against plain loops and the definitions of Hyndman & Koehler."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqjax.train.forecast_metrics import forecast_scores, mase_scale


def test_scores_against_loops():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(9, 4))
    y = rng.normal(size=(9, 4))
    y[-1, 1:] = np.nan
    y[-2, 2:] = np.nan
    y[-3, 3:] = np.nan
    scale = 0.7
    got = forecast_scores(f, y, scale)
    all_err = []
    for h in range(4):
        err = [f[o, h] - y[o, h] for o in range(9) if not math.isnan(y[o, h])]
        all_err += err
        assert got["count"][h] == len(err)
        assert got["rmse"][h] == pytest.approx(math.sqrt(sum(e * e for e in err) / len(err)))
        assert got["mae"][h] == pytest.approx(sum(abs(e) for e in err) / len(err))
        assert got["mase"][h] == pytest.approx(got["mae"][h] / scale)
    assert got["rmse_mean"] == pytest.approx(math.sqrt(sum(e * e for e in all_err) / len(all_err)))
    assert got["mase_mean"] == pytest.approx(sum(abs(e) for e in all_err) / len(all_err) / scale)


def test_mase_scale_is_the_in_sample_seasonal_naive_error():
    y = np.array([3.0, 5.0, 4.0, 8.0, 6.0, 9.0, 7.0])
    assert mase_scale(y, 1) == pytest.approx(np.mean([2, 1, 4, 2, 3, 2]))
    assert mase_scale(y, 3) == pytest.approx(np.mean([5, 1, 5, -1 * -1]))
    # The in-sample one-step naive forecast scores exactly MASE 1 on its own training data.
    f, t = y[:-1, None], y[1:, None]
    assert forecast_scores(f, t, mase_scale(y, 1))["mase"] == [pytest.approx(1.0)]


@pytest.mark.parametrize("call, match", [
    (lambda: mase_scale(np.ones(5), 1), "constant"),
    (lambda: mase_scale(np.arange(3.0), 3), "longer than period"),
    (lambda: forecast_scores(np.ones((2, 3)), np.ones((2, 2)), 1.0), r"\[origins, H\]"),
    (lambda: forecast_scores(np.array([[np.nan]]), np.array([[1.0]]), 1.0), "finite"),
    (lambda: forecast_scores(np.ones((2, 2)), np.array([[1.0, np.nan], [1.0, np.nan]]), 1.0), "at least one target"),
    (lambda: forecast_scores(np.ones((1, 1)), np.ones((1, 1)), 0.0), "scale"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
