"""Population statistics against NumPy and SciPy references and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.analysis.population_statistics import (
    compare,
    correlation_matrix,
    firing_rates,
    offdiagonal_similarity,
    power_spectrum,
)


def test_correlation_matrix_is_corrcoef_of_window_sums():
    rng = np.random.default_rng(0)
    y = rng.poisson(1.0, size=(3, 23, 4))
    got = correlation_matrix(y, bin_size=5)
    windows = np.stack([y[:, w * 5:(w + 1) * 5].sum(1) for w in range(4)], axis=1).reshape(-1, 4)
    np.testing.assert_allclose(got, np.corrcoef(windows.T), rtol=1e-12)
    np.testing.assert_allclose(firing_rates(y), y.reshape(-1, 4).mean(0))


def test_power_spectrum_is_scipy_periodogram_and_finds_a_sine():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(1)
    T = 64
    y = rng.normal(size=(2, T, 3)) + np.sin(2 * np.pi * 8 / T * np.arange(T))[None, :, None] * 3
    freq, power = power_spectrum(y)
    f_ref, p_ref = signal.periodogram(y, fs=1.0, window="boxcar", detrend="constant", scaling="spectrum", axis=1)
    np.testing.assert_allclose(freq, f_ref)
    # scipy's one-sided "spectrum" doubles the interior bins and divides by T^2.
    ref = p_ref.mean(axis=(0, 2)) * T
    ref[1:-1] /= 2
    np.testing.assert_allclose(power, ref, rtol=1e-10, atol=1e-12)
    assert freq[np.argmax(power)] == pytest.approx(8 / T)


def test_compare_identical_sets_is_perfect_and_independent_noise_has_no_correlation_structure():
    rng = np.random.default_rng(2)
    shared = rng.poisson(2.0, size=(40, 50, 1))
    weights = np.array([0, 1, 2, 3, 0, 1])
    a = rng.poisson(0.5, size=(40, 50, 6)) + shared * weights
    same = compare(a, a)
    assert same["rate_mae"] == 0 and same["correlation_mae"] == 0 and same["spectrum_log_error"] == 0
    assert same["rate_correlation"] == pytest.approx(1.0) and same["correlation_similarity"] == pytest.approx(1.0)
    b = rng.poisson(0.5, size=(40, 50, 6)) + rng.poisson(2.0, size=(40, 50, 1)) * weights
    independent = rng.poisson(a.mean((0, 1)), size=a.shape)
    assert compare(b, a)["correlation_similarity"] > 0.9
    assert abs(compare(independent, a)["correlation_similarity"]) < compare(b, a)["correlation_similarity"]


def test_offdiagonal_similarity_ignores_the_diagonal_and_nans():
    a = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    b = a * 2
    np.fill_diagonal(b, 7.0)
    assert offdiagonal_similarity(a, b) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="square"):
        offdiagonal_similarity(np.zeros((2, 3)), np.zeros((2, 3)))


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="activity"):
        firing_rates(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="bin_size"):
        correlation_matrix(np.zeros((1, 4, 2)), bin_size=5)
    with pytest.raises(ValueError, match="share"):
        compare(np.zeros((1, 4, 2)), np.zeros((1, 5, 2)))
