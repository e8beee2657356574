"""Synthetic oscillatory population activity and its trial-aware forecasting windows.

The textbook chapter's multi-step neural-activity exercise simulates ``neurons`` units over
``trials`` trials of ``time`` samples. In every trial each unit ``n`` draws a frequency index
``k_n`` uniformly from ``{0, .., K-1}``, a phase ``phi_n ~ U(0, 2 pi)`` and an amplitude
``A_n ~ U(a_lo, a_hi)``, independently of the other units and trials::

    x_{t, n} = A_n sin(2 pi f_{k_n} t + phi_n) + noise * eps_{t, n},    eps ~ N(0, 1)

with ``f`` in cycles per sample. The chapter's code computes ``f_k = 0.05 + 0.15 k / 4``, i.e.
``(0.05, 0.0875, 0.125, 0.1625)`` (:data:`CHAPTER_FREQUENCIES`, the default), while its comment
and an unused list of patterns name the theta/alpha/beta/gamma bands at 100 Hz sampling,
``(0.05, 0.1, 0.2, 0.4)`` (:data:`BAND_FREQUENCIES`); pass ``frequencies=`` to choose.

:func:`forecast_windows` cuts every trial into input windows and the ``horizon`` samples that
follow, and returns the trial of each window, so a train/test split can be made *by trial*:
windows of one trial share its phases and amplitudes, so splitting windows at random (as the
chapter does) puts the same oscillators in both sets.

Example::

    >>> import jax
    >>> from seqjax.data.neural_activity import oscillatory_population, forecast_windows
    >>> activity = oscillatory_population(jax.random.key(0), trials=3, time=100, neurons=4)
    >>> activity.shape
    (3, 100, 4)
    >>> xs, ys, trial = forecast_windows(activity, input_length=50, horizon=10, stride=20)
    >>> xs.shape, ys.shape, trial.tolist()
    ((9, 50, 4), (9, 10, 4), [0, 0, 0, 1, 1, 1, 2, 2, 2])
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

CHAPTER_FREQUENCIES = (0.05, 0.0875, 0.125, 0.1625)  # what the chapter's code computes
BAND_FREQUENCIES = (0.05, 0.1, 0.2, 0.4)  # what its comment names (theta, alpha, beta, gamma at 100 Hz)


def oscillatory_population(
    key: jax.Array,
    trials: int,
    time: int,
    neurons: int,
    *,
    frequencies=CHAPTER_FREQUENCIES,
    amplitude: tuple[float, float] = (0.5, 2.0),
    noise: float = 0.2,
) -> jax.Array:
    """Activity ``[trials, time, neurons]`` float32 of the model in the module docstring.

    Args:
      key: PRNG key (the same key gives the same activity).
      trials, time, neurons: sizes (the chapter: 100, 500, 20).
      frequencies: the ``K`` frequencies in cycles per sample, each in ``(0, 0.5]`` (Nyquist).
      amplitude: ``(a_lo, a_hi)`` with ``0 <= a_lo <= a_hi``.
      noise: standard deviation of the additive Gaussian noise (``>= 0``); ``noise**2`` is the
        lowest MSE any forecaster can reach.
    """
    for name, value in (("trials", trials), ("time", time), ("neurons", neurons)):
        _checks.positive_int(name, value)
    freqs = np.asarray(frequencies, np.float64)
    if freqs.ndim != 1 or freqs.size == 0 or not np.all((freqs > 0) & (freqs <= 0.5)):
        raise ValueError(f"frequencies must be a non-empty sequence of values in (0, 0.5] cycles per "
                         f"sample; got {frequencies!r}.")
    lo, hi = (float(a) for a in amplitude)
    if not 0 <= lo <= hi:
        raise ValueError(f"amplitude must be (low, high) with 0 <= low <= high; got {amplitude!r}.")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a non-negative number; got {noise!r}.")
    k_freq, k_phase, k_amp, k_noise = jax.random.split(key, 4)
    index = jax.random.randint(k_freq, (trials, 1, neurons), 0, freqs.size)
    f = jnp.asarray(freqs, jnp.float32)[index]
    phase = jax.random.uniform(k_phase, (trials, 1, neurons), maxval=2 * math.pi)
    amp = jax.random.uniform(k_amp, (trials, 1, neurons), minval=lo, maxval=hi)
    t = jnp.arange(time, dtype=jnp.float32)[None, :, None]
    clean = amp * jnp.sin(2 * math.pi * f * t + phase)
    return clean + noise * jax.random.normal(k_noise, clean.shape)


def forecast_windows(
    activity, input_length: int, horizon: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``activity`` ``[trials, time, n]`` into forecasting windows.

    Window starts are ``0, stride, 2 stride, ...`` up to the last start that leaves room for the
    input and the horizon, ``time - input_length - horizon`` (included: the chapter's
    ``range(0, max_start, step)`` drops it). Returns ``xs`` ``[w, input_length, n]``, ``ys``
    ``[w, horizon, n]`` (the samples right after each input window) and ``trial`` ``[w]`` (the
    trial each window came from), ordered by trial, then start.
    """
    activity = np.asarray(activity)
    if activity.ndim != 3:
        raise ValueError(f"activity must be [trials, time, neurons]; got shape {activity.shape}.")
    for name, value in (("input_length", input_length), ("horizon", horizon), ("stride", stride)):
        _checks.positive_int(name, value)
    trials, time, _ = activity.shape
    last = time - input_length - horizon
    if last < 0:
        raise ValueError(f"input_length + horizon = {input_length + horizon} exceeds the trial length "
                         f"{time}.")
    starts = np.arange(0, last + 1, stride)
    xs = np.stack([activity[:, s:s + input_length] for s in starts], axis=1)
    ys = np.stack([activity[:, s + input_length:s + input_length + horizon] for s in starts], axis=1)
    trial = np.repeat(np.arange(trials), starts.size)
    return (xs.reshape(-1, input_length, activity.shape[2]), ys.reshape(-1, horizon, activity.shape[2]),
            trial)
