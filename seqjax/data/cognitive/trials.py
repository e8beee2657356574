"""The trial structure shared by the cognitive tasks: epochs, ring inputs, labels, loss weights.

Every task of :mod:`seqjax.data.cognitive` returns a :class:`Trials` batch in one layout, after
Yang et al. 2019 ("Task representations in neural networks trained to perform many cognitive
tasks") and neurogym:

* **time** runs in steps of ``dt`` ms; a trial is four consecutive epochs that partition it,
  ``fixation [0, a)``, ``stimulus [a, b)``, ``delay [b, c)`` (possibly empty) and
  ``decision [c, t)``; the boundaries vary per trial and the batch shares one length ``t`` (the
  longest possible trial), so the decision epoch of a short trial is longer.
* **inputs** ``[b, t, 1 + 2 n_ring + 2]``: a fixation channel (1 while the network must hold
  fixation), two *modalities* of ``n_ring`` direction-tuned units each (unit ``k`` prefers
  ``2 pi k / n_ring`` and answers a stimulus at ``theta`` with ``0.8 strength exp(-(8 d / pi)^2 / 2)``,
  ``d`` the circular distance; Yang et al. 2019's tuning), and two cue channels (a context cue,
  ready/set pulses). Gaussian noise of std ``input_noise * sqrt(2 * 100 ms / dt)`` is added to
  every channel and step (Yang et al. 2019's ``sigma_x sqrt(2 / alpha)`` with their ``tau`` of 100
  ms), so the evidence integrated over a fixed duration does not depend on ``dt``.
* **labels** ``[b, t]`` int32: 0 (hold fixation) before the decision epoch; in it, the answer:
  ``1 + k`` for "respond in direction k" (class ``0`` again for a no-go answer).
* **targets** ``[b, t, num_classes]``: Yang et al. 2019's regression targets, 0.8 for the
  labelled output unit and 0.05 for the others (the fixation unit is output 0).
* **weights** ``[b, t]``: the loss weight per step, 1 before the decision epoch, 0 for a
  ``grace_ms`` window after its onset (the reaction time), ``decision_weight`` after it (Yang et
  al. 2019 use 100 ms and 5).
* **epochs**: ``{"fixation", "stimulus", "delay", "decision"}`` -> ``[b, t]`` bool.
* **info**: per-trial conditions ``[b]`` for analysis (``choice`` = the decision-epoch label,
  ``decision_onset`` and ``delay_ms`` always; coherence, directions, context, match, interval per task).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

EPOCHS = ("fixation", "stimulus", "delay", "decision")
FIXATE = 0

#: Yang et al. 2019: targets of the labelled / the other output units.
TARGET_ON, TARGET_OFF = 0.8, 0.05


class Trials(NamedTuple):
    """One batch of trials (module docstring for every field's meaning)."""

    inputs: jax.Array
    labels: jax.Array
    targets: jax.Array
    weights: jax.Array
    epochs: dict
    info: dict


def input_features(n_ring: int) -> int:
    """Input channels: fixation, two rings of ``n_ring`` units, two cues."""
    return 1 + 2 * n_ring + 2


def fixation_channel() -> int:
    return 0


def ring_channels(n_ring: int, modality: int) -> slice:
    """The input channels of ring ``modality`` (1 or 2)."""
    return slice(1 + (modality - 1) * n_ring, 1 + modality * n_ring)


def cue_channel(n_ring: int, index: int) -> int:
    """Cue channel ``index`` (0 or 1)."""
    return 1 + 2 * n_ring + index


def preferred_directions(n_ring: int) -> jax.Array:
    """``[n_ring]`` preferred directions ``2 pi k / n_ring`` of the ring units."""
    return 2 * jnp.pi * jnp.arange(n_ring) / n_ring


def ring_response(direction_index: jax.Array, n_ring: int, strength: jax.Array | float = 1.0) -> jax.Array:
    """``[..., n_ring]``: the ring's response to a stimulus at ring direction ``direction_index``
    (``[...]`` ints), ``0.8 * strength * exp(-(8 d / pi)^2 / 2)``."""
    theta = 2 * jnp.pi * direction_index / n_ring
    d = jnp.abs(theta[..., None] - preferred_directions(n_ring))
    d = jnp.minimum(d, 2 * jnp.pi - d)
    return 0.8 * jnp.asarray(strength)[..., None] * jnp.exp(-0.5 * (8 * d / jnp.pi) ** 2)


def between(time: int, start: jax.Array, stop: jax.Array) -> jax.Array:
    """``[b, t]`` bool, ``start <= step < stop`` per trial."""
    t = jnp.arange(time)[None, :]
    return (t >= start[:, None]) & (t < stop[:, None])


def to_steps(name: str, ms: float, dt: float) -> int:
    """A duration in ms as a whole number of steps (rounded)."""
    if not (isinstance(ms, (int, float, np.integer, np.floating)) and ms >= 0 and math.isfinite(ms)):
        raise ValueError(f"{name} must be a finite duration >= 0 in ms; got {ms!r}.")
    return int(round(ms / dt))


def duration_range(name: str, value, dt: float) -> tuple[int, int]:
    """``(min_ms, max_ms)`` (or one number) -> ``(lo, hi)`` steps, ``0 <= lo <= hi``."""
    lo_ms, hi_ms = (value, value) if np.isscalar(value) else tuple(value) if len(value) == 2 else (None, None)
    if lo_ms is None:
        raise ValueError(f"{name} must be a duration in ms or a (min_ms, max_ms) pair; got {value!r}.")
    lo, hi = to_steps(name, lo_ms, dt), to_steps(name, hi_ms, dt)
    if lo > hi:
        raise ValueError(f"{name} must have min <= max; got {value!r}.")
    return lo, hi


def sample_steps(key: jax.Array, batch: int, steps: tuple[int, int]) -> jax.Array:
    """``[b]`` int32 durations uniform on ``{lo, ..., hi}`` steps."""
    return jax.random.randint(key, (batch,), steps[0], steps[1] + 1, dtype=jnp.int32)


def choose(key: jax.Array, batch: int, values: Sequence[float], name: str) -> jax.Array:
    """``[b]``: values drawn uniformly from a non-empty list."""
    values = np.asarray(values, np.float32).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty list of finite numbers; got {values.tolist()!r}.")
    return jnp.asarray(values)[jax.random.randint(key, (batch,), 0, values.size)]


def check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight, *, even_ring=False) -> None:
    """The arguments every task takes."""
    _checks.positive_int("batch", batch)
    _checks.positive_float("dt", dt)
    _checks.positive_int("n_ring", n_ring)
    if n_ring < 2 or (even_ring and n_ring % 2):
        raise ValueError(
            f"n_ring must be {'an even number ' if even_ring else 'a number '}>= 2 "
            f"(directions on the ring{', with opposite pairs' if even_ring else ''}); got {n_ring}."
        )
    if not (isinstance(input_noise, (int, float)) and input_noise >= 0 and math.isfinite(input_noise)):
        raise ValueError(f"input_noise must be a finite number >= 0; got {input_noise!r}.")
    to_steps("grace_ms", grace_ms, dt)
    _checks.positive_float("decision_weight", decision_weight)


def check_modality(modality) -> None:
    if modality not in (1, 2):
        raise ValueError(f"modality must be 1 or 2; got {modality!r}.")


def timeline(keys, batch, dt, fixation_ms, stimulus_ms, delay_ms, decision_ms):
    """``(t, stimulus_onset, delay_onset, decision_onset)`` of the fixation / stimulus / delay /
    decision trial: each epoch's duration drawn (with ``keys``, three keys) from its
    ``(min, max)`` ms range, ``t`` the longest trial (the batch's shared length)."""
    fix, stim, delay = (duration_range(n, v, dt) for n, v in
                        (("fixation_ms", fixation_ms), ("stimulus_ms", stimulus_ms), ("delay_ms", delay_ms)))
    decision = to_steps("decision_ms", decision_ms, dt)
    if stim[0] < 1 or decision < 1:
        raise ValueError(
            f"stimulus_ms and decision_ms must last at least one step of dt={dt} ms; got "
            f"stimulus_ms={stimulus_ms!r}, decision_ms={decision_ms!r}."
        )
    time = fix[1] + stim[1] + delay[1] + decision
    k1, k2, k3 = keys
    stim_on = sample_steps(k1, batch, fix)
    delay_on = stim_on + sample_steps(k2, batch, stim)
    decision_on = delay_on + sample_steps(k3, batch, delay)
    return time, stim_on, delay_on, decision_on


def blank_inputs(batch: int, time: int, n_ring: int, fixation_until: jax.Array | None) -> jax.Array:
    """``[b, t, in]`` zeros with the fixation channel on before ``fixation_until`` ``[b]`` (every
    step if ``None``)."""
    inputs = jnp.zeros((batch, time, input_features(n_ring)), jnp.float32)
    on = 1.0 if fixation_until is None else (jnp.arange(time)[None, :] < fixation_until[:, None]).astype(jnp.float32)
    return inputs.at[:, :, fixation_channel()].set(on)


def assemble(
    key: jax.Array,
    clean_inputs: jax.Array,
    *,
    stimulus_onset: jax.Array,
    delay_onset: jax.Array,
    decision_onset: jax.Array,
    answer: jax.Array,
    num_classes: int,
    dt: float,
    input_noise: float,
    grace_ms: float,
    decision_weight: float,
    info: dict,
) -> Trials:
    """Labels, targets, weights, epoch masks and input noise around noiseless inputs.

    ``clean_inputs`` ``[b, t, in]``; the three onsets ``[b]`` steps; ``answer`` ``[b]`` the
    decision-epoch label.
    """
    batch, time, _ = clean_inputs.shape
    zero = jnp.zeros((batch,), jnp.int32)
    end = jnp.full((batch,), time, jnp.int32)
    epochs = {
        "fixation": between(time, zero, stimulus_onset),
        "stimulus": between(time, stimulus_onset, delay_onset),
        "delay": between(time, delay_onset, decision_onset),
        "decision": between(time, decision_onset, end),
    }
    decision = epochs["decision"]
    labels = jnp.where(decision, answer[:, None], FIXATE).astype(jnp.int32)
    grace = between(time, decision_onset, decision_onset + to_steps("grace_ms", grace_ms, dt))
    weights = jnp.where(decision, jnp.where(grace, 0.0, decision_weight), 1.0).astype(jnp.float32)
    targets = jnp.where(jax.nn.one_hot(labels, num_classes, dtype=bool), TARGET_ON, TARGET_OFF)
    std = input_noise * math.sqrt(2 * 100.0 / dt)
    inputs = clean_inputs + std * jax.random.normal(key, clean_inputs.shape, jnp.float32)
    info = {
        "choice": answer.astype(jnp.int32),
        "decision_onset": decision_onset,
        "delay_ms": ((decision_onset - delay_onset) * dt).astype(jnp.float32),
        **info,
    }
    return Trials(inputs.astype(jnp.float32), labels, targets.astype(jnp.float32), weights, epochs, info)
