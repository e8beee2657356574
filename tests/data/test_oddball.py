"""seqjax.data.oddball: the chapter's stimulus reproduced verbatim, and the shifted violation."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from seqjax.data.oddball import (
    periodic_stimulus,
    seed_sine_pattern,
    tone_pattern,
    violation_mask,
)


def chapter_stimulus():
    """The chapter's demonstrate_predictive_coding, as written."""
    base_pattern = np.sin(np.linspace(0, 2 * np.pi, 20))
    stimulus = np.tile(base_pattern, 100 // 20)
    for vp in [35, 75]:
        stimulus[vp:vp + 5] = -stimulus[vp:vp + 5]
    return stimulus


def test_the_chapters_stimulus():
    x, mask = periodic_stimulus(jax.random.key(0), 3, seed_sine_pattern(), 100, violations=(35, 75), random_phase=False)
    for row in np.asarray(x):
        np.testing.assert_allclose(row, chapter_stimulus(), atol=1e-6)
    assert np.flatnonzero(mask).tolist() == [*range(35, 40), *range(75, 80)]


def test_random_phase_shift_violation_and_noise():
    pattern = np.asarray(tone_pattern((0.05, 0.1, 0.15, 0.2), 10))
    assert pattern.shape == (40,)
    np.testing.assert_allclose(pattern[10:20], np.sin(2 * np.pi * 0.1 * np.arange(10)), atol=1e-6)
    key = jax.random.key(3)
    x, mask = periodic_stimulus(key, 64, pattern, 100, violations=(35, 75), kind="shift", shift=20)
    x = np.asarray(x)
    # each row is the pattern at some phase outside the windows, the pattern 20 ahead inside
    for row in x:
        phases = [p for p in range(40) if np.allclose(row[~mask], pattern[(np.arange(100) + p) % 40][~mask], atol=1e-6)]
        assert len(phases) == 1
        np.testing.assert_allclose(row[mask], pattern[(np.arange(100) + phases[0] + 20) % 40][mask], atol=1e-6)
    assert len({tuple(r[:40]) for r in x}) > 20          # many phases among 64 rows
    noisy, _ = periodic_stimulus(key, 64, pattern, 100, violations=(35, 75), kind="shift", shift=20, noise=0.1)
    assert np.std(np.asarray(noisy) - x) == pytest.approx(0.1, rel=0.05)
    again, _ = periodic_stimulus(key, 64, pattern, 100, violations=(35, 75), kind="shift", shift=20, noise=0.1)
    np.testing.assert_array_equal(np.asarray(noisy), np.asarray(again))


def test_bad_input():
    with pytest.raises(ValueError, match="violation start"):
        violation_mask(100, (97,), 5)
    with pytest.raises(ValueError, match="kind"):
        periodic_stimulus(jax.random.key(0), 1, seed_sine_pattern(), 50, kind="flip")
    with pytest.raises(ValueError, match="shift"):
        periodic_stimulus(jax.random.key(0), 1, seed_sine_pattern(), 50, kind="shift", shift=20)
    with pytest.raises(ValueError, match="frequencies"):
        tone_pattern((0.1, 0.1))
