"""seqjax.data.neural_activity: the oscillatory population and its trial-aware windows."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from seqjax.data.neural_activity import (BAND_FREQUENCIES, CHAPTER_FREQUENCIES, forecast_windows,
                                         oscillatory_population)


def test_each_unit_is_one_sine_at_a_listed_frequency_with_amplitude_in_range():
    x = np.asarray(oscillatory_population(jax.random.key(0), 6, 200, 5, noise=0.0), np.float64)
    assert x.shape == (6, 200, 5)
    t = np.arange(200)
    used = set()
    for trial in range(6):
        for n in range(5):
            fits = []
            for k, freq in enumerate(CHAPTER_FREQUENCIES):
                basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], 1)
                coef, *_ = np.linalg.lstsq(basis, x[trial, :, n], rcond=None)
                fits.append((np.max(np.abs(basis @ coef - x[trial, :, n])), k, np.hypot(*coef)))
            err, k, amp = min(fits)
            assert err < 1e-4 and 0.5 - 1e-4 <= amp <= 2.0 + 1e-4
            used.add(k)
    assert len(used) >= 3  # frequencies are drawn per unit and trial, not fixed


def test_noise_determinism_and_options():
    key = jax.random.key(3)
    a, b = oscillatory_population(key, 4, 300, 8), oscillatory_population(key, 4, 300, 8)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    residual = np.asarray(a) - np.asarray(oscillatory_population(key, 4, 300, 8, noise=0.0))
    assert residual.std() == pytest.approx(0.2, rel=0.05)
    bands = oscillatory_population(key, 2, 64, 3, frequencies=BAND_FREQUENCIES)
    assert bands.shape == (2, 64, 3)
    with pytest.raises(ValueError, match="frequencies"):
        oscillatory_population(key, 2, 10, 3, frequencies=(0.6,))
    with pytest.raises(ValueError, match="amplitude"):
        oscillatory_population(key, 2, 10, 3, amplitude=(2.0, 1.0))
    with pytest.raises(ValueError, match="trials"):
        oscillatory_population(key, 0, 10, 3)


def test_windows_equal_a_slicing_loop_and_keep_the_last_start():
    activity = np.random.default_rng(0).normal(size=(3, 60, 2))
    xs, ys, trial = forecast_windows(activity, input_length=20, horizon=5, stride=7)
    expected = [(tr, s) for tr in range(3) for s in range(0, 60 - 25 + 1, 7)]
    assert len(xs) == len(expected) and expected[-1][1] == 35  # 35 = 60 - 25, the last valid start
    for row, (tr, s) in enumerate(expected):
        np.testing.assert_array_equal(xs[row], activity[tr, s:s + 20])
        np.testing.assert_array_equal(ys[row], activity[tr, s + 20:s + 25])
        assert trial[row] == tr
    with pytest.raises(ValueError, match="exceeds"):
        forecast_windows(activity, 50, 20, 1)
    with pytest.raises(ValueError, match="activity"):
        forecast_windows(activity[0], 5, 2, 1)
