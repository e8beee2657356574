"""Delayed match-to-sample and delayed non-match-to-sample (Yang et al. 2019's DMS and DNMS).

A sample stimulus at a ring direction (epoch ``stimulus``), a delay with no stimulus (``delay``,
its length drawn from ``delays_ms``), then a test stimulus at the same direction (a *match*,
probability ``match_probability``) or at one of the other ``n_ring - 1`` directions, uniformly.
The fixation input turns off at the test onset, which starts the ``decision`` epoch; the test stays
on through it. The answer is Yang et al. 2019's go / no-go: in DMS, respond in the test direction
on a match (label ``1 + test``) and keep fixating otherwise (label 0); DNMS the reverse. Both rules
need the sample held through the delay: the test alone says nothing about the answer.

``info``: ``match`` (bool), ``sample``, ``test`` (ring indices), ``delay_ms``.

Example::

    >>> import jax
    >>> from seqjax.data.cognitive import delayed_match_to_sample
    >>> trials = delayed_match_to_sample(jax.random.key(0), 4, delays_ms=(200.0, 1000.0))
    >>> trials.inputs.shape, trials.info["delay_ms"].tolist() != []
    ((4, 125, 19), True)
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data.cognitive.trials import (
    FIXATE,
    Trials,
    assemble,
    check_common,
    check_modality,
    choose,
    duration_range,
    blank_inputs,
    ring_channels,
    ring_response,
    sample_steps,
    to_steps,
)

RULES = ("match", "non_match")
#: The delays drawn by default (ms).
DELAYS_MS = (200.0, 400.0, 600.0, 800.0, 1000.0)


def delayed_match(
    key: jax.Array,
    batch: int,
    *,
    rule: str = "match",
    dt: float = 20.0,
    n_ring: int = 8,
    match_probability: float = 0.5,
    delays_ms: Sequence[float] = DELAYS_MS,
    fixation_ms=(100.0, 500.0),
    sample_ms=(300.0, 500.0),
    test_ms: float = 500.0,
    strength: tuple[float, float] = (0.8, 1.2),
    modality: int = 1,
    input_noise: float = 0.01,
    grace_ms: float = 100.0,
    decision_weight: float = 5.0,
) -> Trials:
    """A batch of DMS (``rule="match"``) or DNMS (``rule="non_match"``) trials (module docstring).

    Args:
      key: PRNG key; the same key gives the same batch.
      batch: ``b``.
      rule: ``"match"`` (go on a match) or ``"non_match"`` (go on a non-match).
      dt, n_ring, modality, input_noise, grace_ms, decision_weight: as
        :func:`seqjax.data.cognitive.perceptual_decision`.
      match_probability: ``P(match)`` in ``[0, 1]``.
      delays_ms: delay durations, one drawn uniformly per trial (rounded to steps).
      fixation_ms, sample_ms: fixed or ``(min, max)`` durations.
      test_ms: the minimum decision epoch.
      strength: range of both stimuli's strength.
    """
    check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight)
    check_modality(modality)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}.")
    if not (isinstance(match_probability, (int, float)) and 0.0 <= match_probability <= 1.0):
        raise ValueError(f"match_probability must lie in [0, 1]; got {match_probability!r}.")
    delays = np.asarray(delays_ms, np.float64).reshape(-1)
    if delays.size == 0 or not np.all(np.isfinite(delays)) or np.any(delays < 0):
        raise ValueError(f"delays_ms must be a non-empty list of durations >= 0 ms; got {delays.tolist()!r}.")
    fix = duration_range("fixation_ms", fixation_ms, dt)
    sample = duration_range("sample_ms", sample_ms, dt)
    test = to_steps("test_ms", test_ms, dt)
    if sample[0] < 1 or test < 1:
        raise ValueError(f"sample_ms and test_ms must last at least one step of dt={dt} ms; got {sample_ms!r}, {test_ms!r}.")
    delay_steps = np.round(delays / dt).astype(np.int32)
    time = fix[1] + sample[1] + int(delay_steps.max()) + test

    k_fix, k_sample_t, k_delay, k_dir, k_other, k_match, k_s1, k_s2, k_noise = jax.random.split(key, 9)
    stim_on = sample_steps(k_fix, batch, fix)
    delay_on = stim_on + sample_steps(k_sample_t, batch, sample)
    decision_on = delay_on + choose(k_delay, batch, delay_steps, "delays_ms").astype(jnp.int32)
    sample_dir = jax.random.randint(k_dir, (batch,), 0, n_ring)
    offset = jax.random.randint(k_other, (batch,), 1, n_ring)           # a different direction
    match = jax.random.bernoulli(k_match, match_probability, (batch,))
    test_dir = jnp.where(match, sample_dir, (sample_dir + offset) % n_ring)
    go = match if rule == "match" else ~match
    answer = jnp.where(go, 1 + test_dir, FIXATE)

    t = jnp.arange(time)[None, :]
    inputs = blank_inputs(batch, time, n_ring, decision_on)
    s1 = jax.random.uniform(k_s1, (batch,), jnp.float32, *strength)
    s2 = jax.random.uniform(k_s2, (batch,), jnp.float32, *strength)
    sample_on = ((t >= stim_on[:, None]) & (t < delay_on[:, None]))[:, :, None]
    test_on = (t >= decision_on[:, None])[:, :, None]
    ring = sample_on * ring_response(sample_dir, n_ring, s1)[:, None] + test_on * ring_response(test_dir, n_ring, s2)[:, None]
    inputs = inputs.at[:, :, ring_channels(n_ring, modality)].set(ring)
    info = {"match": match, "sample": sample_dir, "test": test_dir}
    return assemble(
        k_noise, inputs, stimulus_onset=stim_on, delay_onset=delay_on, decision_onset=decision_on,
        answer=answer, num_classes=1 + n_ring, dt=dt, input_noise=input_noise, grace_ms=grace_ms,
        decision_weight=decision_weight, info=info,
    )


def delayed_match_to_sample(key: jax.Array, batch: int, **options) -> Trials:
    """DMS: :func:`delayed_match` with ``rule="match"`` (go on a match)."""
    return delayed_match(key, batch, rule="match", **options)


def delayed_non_match(key: jax.Array, batch: int, **options) -> Trials:
    """DNMS: :func:`delayed_match` with ``rule="non_match"`` (go on a non-match)."""
    return delayed_match(key, batch, rule="non_match", **options)
