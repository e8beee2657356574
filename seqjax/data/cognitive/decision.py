"""Perceptual and context-dependent decision making (Yang et al. 2019's DM and ctxDM tasks).

**Perceptual decision making** (random-dot motion, Britten et al. 1992; Yang et al. 2019 "DM 1"):
two stimuli in one modality at opposite ring directions ``theta_1`` and ``theta_2 = theta_1 + pi``
with strengths ``m + c`` and ``m - c`` (``m ~ U(stimulus_mean)``, ``c`` the *signed coherence*,
drawn as ``+-`` one of ``coherences``); after the stimulus (and an optional delay) the fixation
input turns off and the network must respond in the direction of the stronger stimulus
(``c = 0``: either, drawn at random). ``info["coherence"]`` is ``c`` (evidence for ``theta_1``),
``info["direction_1"]``, ``info["direction_2"]`` the ring indices, ``info["first_stronger"]``.

**Context-dependent decision making** (Mante et al. 2013; Yang et al. 2019 "ctxDM 1/2"): both
modalities show the opposite pair, each with its own signed coherence; cue channel
``context`` (0 or 1) is on for the whole trial and says which modality to judge.
``info["context"]``, ``info["coherence_1"]``, ``info["coherence_2"]``, ``info["congruent"]``.

Example::

    >>> import jax
    >>> from seqjax.data.cognitive import perceptual_decision
    >>> trials = perceptual_decision(jax.random.key(0), 4, dt=20.0)
    >>> trials.inputs.shape, trials.labels.shape, sorted(trials.epochs)
    ((4, 80, 19), (4, 80), ['decision', 'delay', 'fixation', 'stimulus'])
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data.cognitive.trials import (
    Trials,
    assemble,
    check_common,
    blank_inputs,
    check_modality,
    choose,
    cue_channel,
    ring_channels,
    ring_response,
    timeline,
)

YANG_COHERENCES = (0.01, 0.02, 0.04, 0.08)


def _check_coherences(name, values):
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} must be a non-empty list of coherences >= 0; got {values.tolist()!r}.")


def _signed(key, batch, coherences, given, name):
    if given is not None:
        c = jnp.asarray(given, jnp.float32).reshape(-1)
        concrete = not isinstance(c, jax.core.Tracer)      # values are checked outside jit only
        if c.shape != (batch,) or (concrete and not bool(jnp.all(jnp.isfinite(c)))):
            raise ValueError(f"{name} must be {batch} finite signed coherences (shape [batch]); got shape {c.shape}.")
        return c
    _check_coherences("coherences", coherences)
    k_mag, k_sign = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (batch,)), 1.0, -1.0)
    return sign * choose(k_mag, batch, coherences, "coherences")


def _pair_inputs(inputs, ring_slice, stim_mask, dir1, dir2, strength1, strength2, n_ring):
    ring = ring_response(dir1, n_ring, strength1) + ring_response(dir2, n_ring, strength2)
    return inputs.at[:, :, ring_slice].add(stim_mask[:, :, None] * ring[:, None, :])


def perceptual_decision(
    key: jax.Array,
    batch: int,
    *,
    dt: float = 20.0,
    n_ring: int = 8,
    coherences: Sequence[float] = YANG_COHERENCES,
    signed_coherence: jax.Array | None = None,
    stimulus_mean: tuple[float, float] = (0.8, 1.2),
    fixation_ms=(100.0, 500.0),
    stimulus_ms=(400.0, 800.0),
    delay_ms=0.0,
    decision_ms: float = 300.0,
    modality: int = 1,
    input_noise: float = 0.01,
    grace_ms: float = 100.0,
    decision_weight: float = 5.0,
) -> Trials:
    """A batch of perceptual decision-making trials (module docstring).

    Args:
      key: PRNG key; the same key gives the same batch.
      batch: ``b``.
      dt: step in ms.
      n_ring: direction-tuned units per modality (even, so that opposite directions exist).
      coherences: magnitudes of the signed coherence ``c``, drawn uniformly with a random sign.
      signed_coherence: ``[b]`` explicit signed coherences instead (psychometric curves).
      stimulus_mean: range of ``m``.
      fixation_ms, stimulus_ms, delay_ms: an epoch's duration, fixed or ``(min, max)`` ms.
      decision_ms: the minimum decision epoch (the shortest trial's; longer trials share ``t``).
      modality: the ring (1 or 2) that shows the stimuli.
      input_noise, grace_ms, decision_weight: see :mod:`seqjax.data.cognitive.trials`.

    Returns: :class:`Trials` with ``num_classes = 1 + n_ring``.
    """
    check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight, even_ring=True)
    check_modality(modality)
    k_time, k_dir, k_coh, k_mean, k_tie, k_noise = jax.random.split(key, 6)
    time, stim_on, delay_on, decision_on = timeline(jax.random.split(k_time, 3), batch, dt, fixation_ms, stimulus_ms, delay_ms, decision_ms)
    c = _signed(k_coh, batch, coherences, signed_coherence, "signed_coherence")
    m = jax.random.uniform(k_mean, (batch,), jnp.float32, *stimulus_mean)
    dir1 = jax.random.randint(k_dir, (batch,), 0, n_ring)
    dir2 = (dir1 + n_ring // 2) % n_ring
    first = jnp.where(c == 0, jax.random.bernoulli(k_tie, 0.5, (batch,)), c > 0)
    answer = 1 + jnp.where(first, dir1, dir2)

    inputs = blank_inputs(batch, time, n_ring, decision_on)
    t = jnp.arange(time)[None, :]
    stim = (t >= stim_on[:, None]) & (t < delay_on[:, None])
    inputs = _pair_inputs(inputs, ring_channels(n_ring, modality), stim, dir1, dir2, m + c, m - c, n_ring)
    info = {"coherence": c, "direction_1": dir1, "direction_2": dir2, "first_stronger": first}
    return assemble(
        k_noise, inputs, stimulus_onset=stim_on, delay_onset=delay_on, decision_onset=decision_on,
        answer=answer, num_classes=1 + n_ring, dt=dt, input_noise=input_noise, grace_ms=grace_ms,
        decision_weight=decision_weight, info=info,
    )


def context_decision(
    key: jax.Array,
    batch: int,
    *,
    dt: float = 20.0,
    n_ring: int = 8,
    coherences: Sequence[float] = YANG_COHERENCES,
    context: jax.Array | None = None,
    stimulus_mean: tuple[float, float] = (0.8, 1.2),
    fixation_ms=(100.0, 500.0),
    stimulus_ms=(400.0, 800.0),
    delay_ms=0.0,
    decision_ms: float = 300.0,
    input_noise: float = 0.01,
    grace_ms: float = 100.0,
    decision_weight: float = 5.0,
) -> Trials:
    """A batch of context-dependent decision-making trials (module docstring).

    ``context``: ``[b]`` ints in {0, 1} (0: judge modality 1) instead of drawn at random; the
    other arguments as :func:`perceptual_decision`.
    """
    check_common(batch, dt, n_ring, input_noise, grace_ms, decision_weight, even_ring=True)
    k_time, k_dir, k_c1, k_c2, k_m1, k_m2, k_ctx, k_tie, k_noise = jax.random.split(key, 9)
    time, stim_on, delay_on, decision_on = timeline(jax.random.split(k_time, 3), batch, dt, fixation_ms, stimulus_ms, delay_ms, decision_ms)
    c1 = _signed(k_c1, batch, coherences, None, "coherences")
    c2 = _signed(k_c2, batch, coherences, None, "coherences")
    if context is None:
        ctx = jax.random.bernoulli(k_ctx, 0.5, (batch,)).astype(jnp.int32)
    else:
        ctx = jnp.asarray(context).reshape(-1)
        concrete = not isinstance(ctx, jax.core.Tracer)
        if ctx.shape != (batch,) or (concrete and not bool(jnp.all((ctx == 0) | (ctx == 1)))):
            raise ValueError(f"context must be [batch] = [{batch}] values in {{0, 1}}; got {ctx if not concrete else ctx.tolist()!r}.")
        ctx = ctx.astype(jnp.int32)
    dir1 = jax.random.randint(k_dir, (batch,), 0, n_ring)
    dir2 = (dir1 + n_ring // 2) % n_ring
    relevant = jnp.where(ctx == 0, c1, c2)
    first = jnp.where(relevant == 0, jax.random.bernoulli(k_tie, 0.5, (batch,)), relevant > 0)
    answer = 1 + jnp.where(first, dir1, dir2)

    inputs = blank_inputs(batch, time, n_ring, decision_on)
    t = jnp.arange(time)[None, :]
    stim = (t >= stim_on[:, None]) & (t < delay_on[:, None])
    for modality, c, k in ((1, c1, k_m1), (2, c2, k_m2)):
        m = jax.random.uniform(k, (batch,), jnp.float32, *stimulus_mean)
        inputs = _pair_inputs(inputs, ring_channels(n_ring, modality), stim, dir1, dir2, m + c, m - c, n_ring)
    cue = jax.nn.one_hot(ctx, 2, dtype=jnp.float32)                      # on for the whole trial
    inputs = inputs.at[:, :, cue_channel(n_ring, 0):cue_channel(n_ring, 1) + 1].set(
        jnp.broadcast_to(cue[:, None, :], (batch, time, 2))
    )
    info = {
        "context": ctx, "coherence_1": c1, "coherence_2": c2, "coherence": relevant,
        "congruent": jnp.sign(c1) == jnp.sign(c2), "direction_1": dir1, "direction_2": dir2,
        "first_stronger": first,
    }
    return assemble(
        k_noise, inputs, stimulus_onset=stim_on, delay_onset=delay_on, decision_onset=decision_on,
        answer=answer, num_classes=1 + n_ring, dt=dt, input_noise=input_noise, grace_ms=grace_ms,
        decision_weight=decision_weight, info=info,
    )
