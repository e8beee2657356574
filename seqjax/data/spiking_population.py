"""Simulated neural populations that carry a behavioural variable, for decoding and for modelling.

Three generators, each returning arrays ``[trials, time, ...]`` (batch-major, one row per trial):

* :func:`ornstein_uhlenbeck`: a smooth ``dims``-dimensional trajectory (an arm, a cursor, an
  animal in an arena), the discretised Ornstein-Uhlenbeck process, started at stationarity::

      x_0 ~ N(0, s^2 I),   x_t = a x_{t-1} + s sqrt(1 - a^2) eps_t,   a = exp(-1 / tau)

  so every ``x_t`` has standard deviation ``s`` and the autocorrelation at lag ``k`` is ``a^k``
  (``tau`` is the correlation time in bins). This is the linear-Gaussian dynamics the Kalman
  filter of :mod:`seqjax.analysis.linear_decoders` assumes.

* :func:`place_cell_population`: neurons with Gaussian tuning curves (place fields, O'Keefe &
  Dostrovsky 1971) over that trajectory, emitting Poisson spike counts per bin::

      lambda_{t, n} = r_0 + r_max exp(-|x_t - c_n|^2 / (2 w^2)),   k_{t, n} ~ Poisson(lambda_{t, n})

  ``lambda`` is in spikes per bin. The code is non-linear and non-monotonic in ``x``: a linear
  readout of the counts is not the optimal decoder.

* :func:`two_group_population`: the textbook chapter's 50-neuron example (its "neural sequence
  decoding": neurons 0-24 carry ``sin(5 t)``, neurons 25-49 ``sin(t)``, each with a weight
  ``U(0, 1)``, plus ``0.3 N(0, 1)`` noise, ``t = linspace(0, 4 pi, 200)``) made *decodable*. In
  the chapter both groups are active for the whole recording and the "motor state" (first half vs
  second half) changes nothing in the activity, so it cannot be decoded. Here the motor state
  ``s_t in {0, 1}`` is a two-state Markov chain (switching with probability ``p`` per bin) and
  it sets which group oscillates::

      x_{t, n} = w_n g_n(s_t) sin(omega_n t + phi_n) + sigma eps_{t, n}
      g_n(s) = 1 if neuron n's group is the active one in state s, else gamma

  (state 0: the fast group active; state 1: the slow group; ``gamma`` the residual gain of the
  inactive group; ``w_n ~ U(0, 1)`` once per neuron, the same neurons in every trial;
  ``phi_n ~ U(0, 2 pi)`` per neuron and trial, so the state is not tied to the time in the
  trial). The state is in the *power* of the oscillations: the conditional mean of
  every ``x_{t, n}`` is 0 in both states, which no linear decoder can read.

* :func:`chapter_spike_trains`: the chapter's "RNN on neural data" spike trains: Bernoulli(0.1)
  spikes in every bin, except neurons 0-9 in bins 30-39, which fire with probability 0.8.

Example::

    >>> import jax
    >>> from seqjax.data.spiking_population import ornstein_uhlenbeck, place_cell_population
    >>> x = ornstein_uhlenbeck(jax.random.key(0), trials=3, time=50, dims=2, tau=10.0)
    >>> pop = place_cell_population(jax.random.key(1), x, neurons=8)
    >>> x.shape, pop.spikes.shape, pop.rates.shape, pop.centers.shape
    ((3, 50, 2), (3, 50, 8), (3, 50, 8), (8, 2))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

# The chapter's two frequency groups: sin(5 t) and sin(t) with t = linspace(0, 4 pi, 200), in
# radians per sample for 200 samples.
CHAPTER_TIME = 200
CHAPTER_OMEGAS = (5 * 4 * math.pi / (CHAPTER_TIME - 1), 4 * math.pi / (CHAPTER_TIME - 1))


class PlaceCells(NamedTuple):
    """What :func:`place_cell_population` returns."""

    spikes: jax.Array   # [trials, time, neurons] int32 spike counts
    rates: jax.Array    # [trials, time, neurons] float32, the true lambda (spikes per bin)
    centers: jax.Array  # [neurons, dims] place-field centres


class TwoGroups(NamedTuple):
    """What :func:`two_group_population` returns."""

    activity: jax.Array  # [trials, time, neurons] float32
    state: jax.Array     # [trials, time] float32 motor state in {0, 1}
    fast: jax.Array      # [neurons] bool, True for the fast (sin 5t) group
    weights: jax.Array   # [neurons] float32, w_n


def _positive_number(name: str, value) -> float:
    _checks.positive_float(name, value)
    return float(value)


def _nonnegative_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number; got {value!r}.")
    return float(value)


def numpy_generator(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key (typed or raw): the same key, the same stream.
    The generators here draw with NumPy: on a CPU, compiling the JAX samplers (threefry, the
    Poisson sampler's loop) takes seconds, longer than simulating a whole population."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng(np.asarray(data, np.uint32).ravel())


def ornstein_uhlenbeck(
    key: jax.Array, trials: int, time: int, dims: int = 2, *, tau: float = 20.0, std: float = 1.0
) -> jax.Array:
    """A stationary discretised Ornstein-Uhlenbeck trajectory ``[trials, time, dims]`` float32.

    Args:
      key: PRNG key.
      trials, time, dims: sizes.
      tau: correlation time in bins (``> 0``): ``a = exp(-1 / tau)``.
      std: the stationary standard deviation ``s`` of every coordinate (``> 0``).
    """
    for name, value in (("trials", trials), ("time", time), ("dims", dims)):
        _checks.positive_int(name, value)
    a = math.exp(-1.0 / _positive_number("tau", tau))
    std = _positive_number("std", std)
    rng = numpy_generator(key)
    x = np.empty((trials, time, dims))
    x[:, 0] = std * rng.standard_normal((trials, dims))
    innovations = std * math.sqrt(1.0 - a * a) * rng.standard_normal((time - 1, trials, dims))
    for t in range(1, time):
        x[:, t] = a * x[:, t - 1] + innovations[t - 1]
    return jnp.asarray(x, jnp.float32)


def place_cell_population(
    key: jax.Array,
    trajectory,
    neurons: int,
    *,
    field_width: float = 0.6,
    peak_rate: float = 0.5,
    baseline_rate: float = 0.01,
    extent: float = 2.0,
) -> PlaceCells:
    """Poisson spike counts of ``neurons`` place cells along ``trajectory`` (module docstring).

    Args:
      key: PRNG key (field centres and spikes).
      trajectory: ``[trials, time, dims]`` positions.
      neurons: number of cells.
      field_width: ``w``, the tuning curves' standard deviation (``> 0``).
      peak_rate: ``r_max``, spikes per bin at the field centre above baseline (``> 0``).
      baseline_rate: ``r_0`` (``>= 0``).
      extent: centres are drawn uniformly from ``[-extent, extent]^dims`` (``> 0``).
    """
    x = _checks.floating_array("trajectory", trajectory, ndim=3, layout="[trials, time, dims]")
    _checks.positive_int("neurons", neurons)
    width = _positive_number("field_width", field_width)
    peak = _positive_number("peak_rate", peak_rate)
    base = _nonnegative_number("baseline_rate", baseline_rate)
    extent = _positive_number("extent", extent)
    rng = numpy_generator(key)
    centers = jnp.asarray(rng.uniform(-extent, extent, size=(neurons, x.shape[-1])), jnp.float32)
    sq = np.sum(np.square(np.asarray(x, np.float64)[..., None, :] - np.asarray(centers, np.float64)), axis=-1)
    rates = (base + peak * np.exp(-sq / (2 * width * width))).astype(np.float32)
    spikes = rng.poisson(rates.astype(np.float64)).astype(np.int32)
    return PlaceCells(jnp.asarray(spikes), jnp.asarray(rates), centers)


def markov_states(key: jax.Array, trials: int, time: int, switch_probability: float) -> jax.Array:
    """``[trials, time]`` int32 states of a symmetric two-state Markov chain: ``s_0`` is 0 or 1
    with probability 1/2, and each later bin switches with probability ``switch_probability``."""
    _checks.positive_int("trials", trials)
    _checks.positive_int("time", time)
    p = float(switch_probability)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"switch_probability must lie in [0, 1]; got {switch_probability!r}.")
    return jnp.asarray(_markov_states(numpy_generator(key), trials, time, p))


def _markov_states(rng: np.random.Generator, trials: int, time: int, p: float) -> np.ndarray:
    s0 = rng.integers(0, 2, size=(trials, 1))
    flips = np.cumsum(rng.random((trials, time - 1)) < p, axis=1)
    return ((s0 + np.concatenate([np.zeros((trials, 1), np.int64), flips], axis=1)) % 2).astype(np.int32)


def two_group_population(
    key: jax.Array,
    trials: int,
    time: int = CHAPTER_TIME,
    neurons: int = 50,
    *,
    omegas: tuple[float, float] = CHAPTER_OMEGAS,
    switch_probability: float = 0.02,
    inactive_gain: float = 0.2,
    noise: float = 0.3,
) -> TwoGroups:
    """The chapter's two-frequency-group population with a decodable motor state (module docstring).

    Args:
      key: PRNG key.
      trials, time, neurons: sizes (the chapter: one trial of 200 samples, 50 neurons; the first
        ``neurons // 2`` form the fast group).
      omegas: ``(fast, slow)`` angular frequencies in radians per sample (default: the chapter's
        ``sin(5 t)`` and ``sin(t)`` over 200 samples of ``[0, 4 pi]``).
      switch_probability: per-bin probability that the motor state switches.
      inactive_gain: ``gamma`` in ``[0, 1]``, the gain of the group that is off.
      noise: ``sigma``, the standard deviation of the additive Gaussian noise (``>= 0``).
    """
    for name, value in (("trials", trials), ("time", time), ("neurons", neurons)):
        _checks.positive_int(name, value)
    if neurons < 2:
        raise ValueError(f"neurons must be at least 2 (two groups); got {neurons}.")
    if len(tuple(omegas)) != 2 or not all(isinstance(w, (int, float)) and 0 < w <= math.pi for w in omegas):
        raise ValueError(f"omegas must be (fast, slow) in (0, pi] radians per sample; got {omegas!r}.")
    gamma = float(inactive_gain)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"inactive_gain must lie in [0, 1]; got {inactive_gain!r}.")
    noise = _nonnegative_number("noise", noise)
    p = float(switch_probability)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"switch_probability must lie in [0, 1]; got {switch_probability!r}.")
    rng = numpy_generator(key)
    state = _markov_states(rng, trials, time, p)
    fast = np.arange(neurons) < neurons // 2
    omega = np.where(fast, omegas[0], omegas[1])
    weight = rng.random(neurons)  # the same neurons in every trial
    phase = rng.uniform(0.0, 2 * math.pi, size=(trials, 1, neurons))
    # State 0: the fast group active; state 1: the slow one.
    active = np.where(state[..., None] == 0, fast, ~fast)
    gain = np.where(active, 1.0, gamma)
    t = np.arange(time)[None, :, None]
    activity = weight * gain * np.sin(omega * t + phase) + noise * rng.standard_normal((trials, time, neurons))
    return TwoGroups(jnp.asarray(activity, jnp.float32), jnp.asarray(state, jnp.float32), jnp.asarray(fast),
                     jnp.asarray(weight, jnp.float32))


def chapter_spike_trains(
    key: jax.Array, trials: int = 200, time: int = 100, neurons: int = 50, *,
    rate: float = 0.1, burst_rate: float = 0.8, burst_neurons: int = 10, burst: tuple[int, int] = (30, 40),
) -> tuple[jax.Array, jax.Array]:
    """The chapter's simulated spike trains: ``(spikes int32, probabilities float32)``, both
    ``[trials, time, neurons]``. Every bin spikes with probability ``rate``, except the first
    ``burst_neurons`` neurons in bins ``burst[0] <= t < burst[1]``, which spike with ``burst_rate``."""
    for name, value in (("trials", trials), ("time", time), ("neurons", neurons)):
        _checks.positive_int(name, value)
    for name, value in (("rate", rate), ("burst_rate", burst_rate)):
        _checks.probability(name, value)
    start, stop = (int(b) for b in burst)
    if not (0 <= start < stop <= time and 0 <= burst_neurons <= neurons):
        raise ValueError(f"burst must be (start, stop) with 0 <= start < stop <= time={time} and "
                         f"burst_neurons in [0, neurons={neurons}]; got {burst!r}, {burst_neurons!r}.")
    in_burst = ((np.arange(time) >= start) & (np.arange(time) < stop))[:, None] & (np.arange(neurons) < burst_neurons)
    prob = jnp.broadcast_to(jnp.where(in_burst, burst_rate, rate), (trials, time, neurons)).astype(jnp.float32)
    spikes = (numpy_generator(key).random(prob.shape) < np.asarray(prob)).astype(np.int32)
    spikes = jnp.asarray(spikes)
    return spikes, prob
