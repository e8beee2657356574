"""Simulated populations: the statistics each generator promises, recomputed from its output."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from seqjax.data.spiking_population import (
    CHAPTER_OMEGAS,
    chapter_spike_trains,
    markov_states,
    ornstein_uhlenbeck,
    place_cell_population,
    two_group_population,
)


def test_ornstein_uhlenbeck_is_stationary_with_autocorrelation_a_to_the_k():
    tau, std = 8.0, 1.5
    x = np.asarray(ornstein_uhlenbeck(jax.random.key(0), 300, 80, 2, tau=tau, std=std), np.float64)
    assert x.shape == (300, 80, 2)
    a = math.exp(-1 / tau)
    for t in (0, 40, 79):  # stationary from the first bin on
        assert x[:, t].std() == pytest.approx(std, rel=0.08)
    for k in (1, 5):
        auto = np.mean(x[:, k:] * x[:, :-k]) / np.mean(x * x)
        assert auto == pytest.approx(a ** k, abs=0.02)
    # Same key, same path; the two coordinates are independent.
    np.testing.assert_array_equal(x, np.asarray(ornstein_uhlenbeck(jax.random.key(0), 300, 80, 2, tau=tau, std=std)))
    assert abs(np.corrcoef(x[..., 0].ravel(), x[..., 1].ravel())[0, 1]) < 0.05


def test_ornstein_uhlenbeck_ar1_coefficient_by_statsmodels():
    ar_model = pytest.importorskip("statsmodels.tsa.ar_model")
    x = np.asarray(ornstein_uhlenbeck(jax.random.key(1), 1, 20000, 1, tau=5.0), np.float64)[0, :, 0]
    fit = ar_model.AutoReg(x, lags=1, trend="n").fit()
    assert fit.params[0] == pytest.approx(math.exp(-1 / 5.0), abs=0.01)


def test_place_cells_rates_are_the_tuning_curves_and_spikes_are_poisson():
    x = ornstein_uhlenbeck(jax.random.key(2), 50, 200, 2, tau=10.0)
    pop = place_cell_population(jax.random.key(3), x, 6, field_width=0.7, peak_rate=0.8, baseline_rate=0.05)
    xs, centers = np.asarray(x, np.float64), np.asarray(pop.centers, np.float64)
    assert np.all(np.abs(centers) <= 2.0)
    want = 0.05 + 0.8 * np.exp(-np.sum((xs[..., None, :] - centers) ** 2, -1) / (2 * 0.7 ** 2))
    np.testing.assert_allclose(np.asarray(pop.rates), want, rtol=1e-5)
    spikes, rates = np.asarray(pop.spikes), np.asarray(pop.rates)
    assert spikes.dtype == np.int32 and spikes.min() >= 0
    assert spikes.mean() == pytest.approx(rates.mean(), rel=0.05)
    # Poisson: the residual variance equals the rate.
    assert np.mean((spikes - rates) ** 2) == pytest.approx(rates.mean(), rel=0.05)


def test_markov_states_switch_at_the_given_rate():
    s = np.asarray(markov_states(jax.random.key(4), 300, 100, 0.05))
    assert set(np.unique(s)) == {0, 1}
    assert np.mean(s[:, 1:] != s[:, :-1]) == pytest.approx(0.05, rel=0.08)
    assert s[:, 0].mean() == pytest.approx(0.5, abs=0.08)


def test_two_groups_carry_the_state_in_power_not_in_the_mean():
    pop = two_group_population(jax.random.key(5), 120, 200, 50, inactive_gain=0.2, noise=0.3)
    x, s, fast = np.asarray(pop.activity, np.float64), np.asarray(pop.state), np.asarray(pop.fast)
    w = np.asarray(pop.weights, np.float64)
    assert x.shape == (120, 200, 50) and s.shape == (120, 200) and fast.sum() == 25 and fast[:25].all()
    assert w.shape == (50,) and np.all((w >= 0) & (w <= 1))
    for state in (0, 1):
        where = s == state
        active = fast if state == 0 else ~fast
        # The conditional mean is 0 in both states: nothing for a linear decoder.
        assert np.abs(x[where].mean(0)).max() < 0.05
        # Power per neuron: w^2 gain^2 / 2 + sigma^2.
        gain = np.where(active, 1.0, 0.2)
        np.testing.assert_allclose(x[where].var(0), w ** 2 * gain ** 2 / 2 + 0.09, rtol=0.1)
    # Each group oscillates at its own frequency (the chapter's sin 5t and sin t over 200 samples).
    spectrum = np.abs(np.fft.rfft(x - x.mean(1, keepdims=True), axis=1)) ** 2
    freqs = np.fft.rfftfreq(200) * 2 * math.pi
    assert freqs[np.argmax(spectrum[..., fast].mean((0, 2)))] == pytest.approx(CHAPTER_OMEGAS[0], abs=0.04)
    assert freqs[np.argmax(spectrum[..., ~fast].mean((0, 2)))] == pytest.approx(CHAPTER_OMEGAS[1], abs=0.04)


def test_chapter_spike_trains_burst():
    spikes, prob = chapter_spike_trains(jax.random.key(6))
    spikes = np.asarray(spikes)
    assert spikes.shape == (200, 100, 50) and set(np.unique(spikes)) == {0, 1}
    assert spikes[:, 30:40, :10].mean() == pytest.approx(0.8, abs=0.02)
    assert spikes[:, :30].mean() == pytest.approx(0.1, abs=0.01)
    assert spikes[:, 30:40, 10:].mean() == pytest.approx(0.1, abs=0.01)
    assert float(prob[0, 35, 0]) == pytest.approx(0.8) and float(prob[0, 35, 10]) == pytest.approx(0.1)


def test_bad_inputs_name_the_argument():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="tau"):
        ornstein_uhlenbeck(key, 2, 5, tau=0.0)
    with pytest.raises(ValueError, match="trajectory"):
        place_cell_population(key, np.zeros((5, 2), np.float32), 3)
    with pytest.raises(ValueError, match="field_width"):
        place_cell_population(key, np.zeros((1, 5, 2), np.float32), 3, field_width=-1.0)
    with pytest.raises(ValueError, match="switch_probability"):
        markov_states(key, 2, 5, 1.5)
    with pytest.raises(ValueError, match="inactive_gain"):
        two_group_population(key, 2, inactive_gain=2.0)
    with pytest.raises(ValueError, match="burst"):
        chapter_spike_trains(key, 2, 20)
