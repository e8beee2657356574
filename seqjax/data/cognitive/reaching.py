"""Go, anti and delayed go: respond toward (or away from) a stimulus direction when fixation ends
(Yang et al. 2019's Go, Anti and Dly Go; the pro/anti-saccade tasks of Munoz & Everling 2004).

* ``go``: a stimulus at a ring direction appears (epoch ``stimulus``, fixation still on) and stays
  on; the fixation input turns off (``decision``) and the answer is the stimulus direction.
* ``anti``: the same trial, answered with the opposite direction (``n_ring`` even).
* ``delayed_go``: the stimulus is brief and followed by a ``delay`` with no stimulus before
  fixation ends: the direction must be remembered.

``info``: ``stimulus`` (ring index), ``delay_ms``.

Example::

    >>> import jax
    >>> from seqjax.data.cognitive import anti
    >>> trials = anti(jax.random.key(0), 3)
    >>> bool(((trials.info["choice"] - 1 - trials.info["stimulus"]) % 8 == 4).all())
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.data.cognitive.trials import (
    Trials,
    assemble,
    check_common,
    blank_inputs,
    check_modality,
    ring_channels,
    ring_response,
    timeline,
)

KINDS = ("go", "anti", "delayed_go")


def reaching(
    key: jax.Array,
    batch: int,
    *,
    kind: str = "go",
    dt: float = 20.0,
    n_ring: int = 8,
    fixation_ms=(100.0, 500.0),
    stimulus_ms=None,
    delay_ms=None,
    decision_ms: float = 400.0,
    strength: tuple[float, float] = (0.8, 1.2),
    modality: int = 1,
    input_noise: float = 0.01,
    grace_ms: float = 100.0,
    decision_weight: float = 5.0,
) -> Trials:
    """A batch of go / anti / delayed-go trials (module docstring).

    ``stimulus_ms`` defaults to ``(200, 600)`` ms (``(200, 400)`` for delayed go), ``delay_ms`` to
    0 (``(200, 1000)`` for delayed go); the other arguments as
    :func:`seqjax.data.cognitive.perceptual_decision`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight, even_ring=kind == "anti")
    check_modality(modality)
    delayed = kind == "delayed_go"
    stimulus_ms = ((200.0, 400.0) if delayed else (200.0, 600.0)) if stimulus_ms is None else stimulus_ms
    delay_ms = ((200.0, 1000.0) if delayed else 0.0) if delay_ms is None else delay_ms
    k1, k2, k3, k_dir, k_s, k_noise = jax.random.split(key, 6)
    time, stim_on, delay_on, decision_on = timeline((k1, k2, k3), batch, dt, fixation_ms, stimulus_ms, delay_ms, decision_ms)
    direction = jax.random.randint(k_dir, (batch,), 0, n_ring)
    target = (direction + n_ring // 2) % n_ring if kind == "anti" else direction

    t = jnp.arange(time)[None, :]
    inputs = blank_inputs(batch, time, n_ring, decision_on)
    stim_off = delay_on if delayed else jnp.full((batch,), time, jnp.int32)
    on = ((t >= stim_on[:, None]) & (t < stim_off[:, None]))[:, :, None]
    s = jax.random.uniform(k_s, (batch,), jnp.float32, *strength)
    inputs = inputs.at[:, :, ring_channels(n_ring, modality)].set(on * ring_response(direction, n_ring, s)[:, None])
    return assemble(
        k_noise, inputs, stimulus_onset=stim_on, delay_onset=delay_on, decision_onset=decision_on,
        answer=1 + target, num_classes=1 + n_ring, dt=dt, input_noise=input_noise, grace_ms=grace_ms,
        decision_weight=decision_weight, info={"stimulus": direction},
    )


def go(key: jax.Array, batch: int, **options) -> Trials:
    """Go: answer the stimulus direction when fixation ends."""
    return reaching(key, batch, kind="go", **options)


def anti(key: jax.Array, batch: int, **options) -> Trials:
    """Anti: answer the direction opposite the stimulus."""
    return reaching(key, batch, kind="anti", **options)


def delayed_go(key: jax.Array, batch: int, **options) -> Trials:
    """Delayed go: a brief stimulus, a delay, then answer its direction."""
    return reaching(key, batch, kind="delayed_go", **options)
