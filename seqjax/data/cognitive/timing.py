"""Interval timing: ready-set-go (Jazayeri & Shadlen 2010; neurogym's ReadySetGo).

A *ready* pulse (cue channel 0) and, ``interval`` ms later, a *set* pulse (cue channel 1); the
network must answer "go" (class 1) ``gain * interval`` ms after *set*, with no cue telling it
when: the fixation input stays on for the whole trial. Epochs: ``fixation`` until ready,
``stimulus`` from ready to set (the interval measured), ``delay`` from set to the go time (the
interval produced), ``decision`` from the go time to the end (label 1; before it, label 0).
``info``: ``interval_ms``, ``target_ms`` (``gain * interval``), ``set_onset`` (step).

:func:`timing_scores` reads the produced interval off a network's outputs.

Example::

    >>> import jax
    >>> from seqjax.data.cognitive import ready_set_go
    >>> trials = ready_set_go(jax.random.key(0), 2, intervals_ms=(600.0,))
    >>> trials.info["target_ms"].tolist(), int(trials.labels.max())
    ([600.0, 600.0], 1)
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.data.cognitive.trials import (
    Trials,
    assemble,
    check_common,
    cue_channel,
    duration_range,
    blank_inputs,
    sample_steps,
    to_steps,
)

GO = 1


def ready_set_go(
    key: jax.Array,
    batch: int,
    *,
    dt: float = 20.0,
    n_ring: int = 8,
    intervals_ms: Sequence[float] = (480.0, 560.0, 640.0, 720.0, 800.0),
    gain: float = 1.0,
    fixation_ms=(100.0, 500.0),
    pulse_ms: float = 40.0,
    decision_ms: float = 300.0,
    input_noise: float = 0.01,
    grace_ms: float = 0.0,
    decision_weight: float = 5.0,
) -> Trials:
    """A batch of ready-set-go trials (module docstring); ``num_classes = 2``.

    Args:
      intervals_ms: the measured intervals, one drawn uniformly per trial (rounded to steps).
      gain: produced / measured interval (1: reproduce it).
      pulse_ms: duration of each pulse (at least one step).
      the others: as :func:`seqjax.data.cognitive.perceptual_decision` (``n_ring`` only sizes the
      common input layout; the rings stay silent).
    """
    check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight)
    _checks.positive_float("gain", gain)
    intervals = np.asarray(intervals_ms, np.float64).reshape(-1)
    steps = np.round(intervals / dt).astype(np.int32) if intervals.size else intervals
    if intervals.size == 0 or not np.all(np.isfinite(intervals)) or np.any(steps < 1):
        raise ValueError(f"intervals_ms must be a non-empty list of durations of at least one step (dt={dt}); got {intervals.tolist()!r}.")
    pulse = to_steps("pulse_ms", pulse_ms, dt)
    decision = to_steps("decision_ms", decision_ms, dt)
    if pulse < 1 or decision < 1:
        raise ValueError(f"pulse_ms and decision_ms must last at least one step of dt={dt} ms; got {pulse_ms!r}, {decision_ms!r}.")
    fix = duration_range("fixation_ms", fixation_ms, dt)
    production = np.round(gain * steps).astype(np.int32)
    time = fix[1] + int(steps.max()) + int(production.max()) + decision

    k_fix, k_int, k_noise = jax.random.split(key, 3)
    ready = sample_steps(k_fix, batch, fix)
    index = jax.random.randint(k_int, (batch,), 0, steps.size)
    measured = jnp.asarray(steps)[index]
    set_on = ready + measured
    go_on = set_on + jnp.asarray(production)[index]

    t = jnp.arange(time)[None, :]
    inputs = blank_inputs(batch, time, n_ring, None)
    inputs = inputs.at[:, :, cue_channel(n_ring, 0)].set(((t >= ready[:, None]) & (t < ready[:, None] + pulse)).astype(jnp.float32))
    inputs = inputs.at[:, :, cue_channel(n_ring, 1)].set(((t >= set_on[:, None]) & (t < set_on[:, None] + pulse)).astype(jnp.float32))
    info = {
        "interval_ms": (measured * dt).astype(jnp.float32),
        "target_ms": ((go_on - set_on) * dt).astype(jnp.float32),
        "set_onset": set_on,
    }
    return assemble(
        k_noise, inputs, stimulus_onset=ready, delay_onset=set_on, decision_onset=go_on,
        answer=jnp.full((batch,), GO, jnp.int32), num_classes=2, dt=dt, input_noise=input_noise,
        grace_ms=grace_ms, decision_weight=decision_weight, info=info,
    )


def timing_scores(logits: jax.Array, trials: Trials, *, dt: float, tolerance: float = 0.15) -> dict:
    """The produced interval of each trial and whether it is within ``tolerance`` of the target.

    ``logits`` ``[b, t, 2]`` (or probabilities). The network "goes" at the first step at or after
    *set* whose argmax is class 1; ``produced_ms = (go step - set step) * dt`` (``nan`` if it never
    goes). ``early``: it went before *set*. ``correct``: not early and
    ``|produced - target| <= tolerance * target``.
    """
    logits = _checks.floating_array("logits", logits, ndim=3, layout="[batch, time, classes]")
    if logits.shape[:2] != trials.labels.shape or logits.shape[-1] != 2:
        raise ValueError(f"logits must be [batch, time, 2] = {(*trials.labels.shape, 2)}; got {tuple(logits.shape)}.")
    _checks.positive_float("tolerance", tolerance)
    going = jnp.argmax(logits, -1) == GO
    t = jnp.arange(going.shape[1])[None, :]
    after_set = t >= trials.info["set_onset"][:, None]
    first = jnp.argmax(going & after_set, axis=1)
    went = jnp.any(going & after_set, axis=1)
    produced = jnp.where(went, (first - trials.info["set_onset"]) * dt, jnp.nan)
    early = jnp.any(going & ~after_set, axis=1)
    target = trials.info["target_ms"]
    correct = went & ~early & (jnp.abs(produced - target) <= tolerance * target)
    return {"produced_ms": produced, "target_ms": target, "early": early, "correct": correct}
