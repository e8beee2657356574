"""The slanted triangular learning rate against Howard & Ruder 2018's eq. 3, evaluated by hand."""

import math

import numpy as np
import pytest

from seqjax.train.schedules import slanted_triangular


def paper_stlr(t, T, cut_frac, ratio, lr_max):
    """Eq. 3 of Howard & Ruder 2018, written out as a loop would."""
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + p * (ratio - 1)) / ratio


def test_values_by_hand():
    stlr = slanted_triangular(0.01, 1000)                 # the paper's defaults: cut_frac 0.1, ratio 32
    # cut = 100: t=0 -> 0.01/32; t=50 -> p=0.5 -> 0.01*16.5/32; peak at t=100; p=0.5 again at t=550
    expected = {0: 0.01 / 32, 50: 0.01 * 16.5 / 32, 100: 0.01, 550: 0.01 * 16.5 / 32, 1000: 0.01 / 32}
    for t, lr in expected.items():
        assert float(stlr(t)) == pytest.approx(lr, rel=1e-6), t


@pytest.mark.parametrize("T,cut_frac,ratio,lr_max", [(1000, 0.1, 32, 0.01), (37, 0.25, 8, 1.0), (10, 0.5, 2, 3e-4), (10, 0.15, 32, 1.0)])
def test_matches_formula_everywhere(T, cut_frac, ratio, lr_max):
    stlr = slanted_triangular(lr_max, T, cut_frac=cut_frac, ratio=ratio)
    ts = np.arange(T + 1)
    got = np.asarray(stlr(ts), np.float64)
    want = np.array([max(paper_stlr(int(t), T, cut_frac, ratio, lr_max), 0.0) for t in ts])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert float(stlr(10 * T)) == pytest.approx(want[-1], rel=1e-6, abs=1e-12)   # held after T
    assert (got >= 0).all()
    assert got.argmax() == math.floor(T * cut_frac)


def test_bad_arguments():
    with pytest.raises(ValueError, match="cut_frac"):
        slanted_triangular(0.01, 100, cut_frac=1.5)
    with pytest.raises(ValueError, match="cut = floor"):
        slanted_triangular(0.01, 5, cut_frac=0.1)
    with pytest.raises(ValueError, match="ratio"):
        slanted_triangular(0.01, 100, ratio=0.5)
    with pytest.raises(ValueError, match="max_lr"):
        slanted_triangular(-1.0, 100)
