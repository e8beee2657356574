"""Periodic stimuli with violation windows: the oddball paradigm of predictive-coding studies.

A stimulus repeats a pattern ``p`` of period ``P`` (the regularity a predictor can learn); in
*violation windows* ``[s, s + width)`` the regularity is broken, and a predictor that learned it
should make larger errors there (a "mismatch response")::

    x_{b,t} = v_t(p[(t + phi_b) mod P]) + noise * eps_{b,t}         eps ~ N(0, 1)

with ``phi_b`` a random integer phase per sequence (or 0) and ``v_t`` the identity outside the
windows and, inside them, ``"invert"``: ``-p[...]`` (the textbook chapter's violation: its
stimulus is :func:`seed_sine_pattern` tiled five times, inverted on ``[35, 40)`` and ``[75, 80)``),
or ``"shift"``: ``p[(t + phi_b + shift) mod P]``, the pattern played out of order (for
:func:`tone_pattern` with ``shift`` = two tone lengths: the tone two places ahead, a sound the
stimulus does contain, only not there).

Example::

    >>> import jax
    >>> from seqjax.data.oddball import periodic_stimulus, seed_sine_pattern
    >>> x, mask = periodic_stimulus(jax.random.key(0), 2, seed_sine_pattern(), 100,
    ...                             violations=(35, 75), random_phase=False)
    >>> x.shape, int(mask.sum())
    ((2, 100), 10)
    >>> bool((x[0, 35:40] == -seed_sine_pattern()[15:20]).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

KINDS = ("invert", "shift")


def seed_sine_pattern(period: int = 20) -> jax.Array:
    """The chapter's base pattern ``sin(linspace(0, 2 pi, period))`` (``[period]``; the endpoint is
    included, so one cycle ends on two zeros)."""
    _checks.positive_int("period", period)
    return jnp.sin(jnp.linspace(0.0, 2 * np.pi, period)).astype(jnp.float32)


def tone_pattern(frequencies: Sequence[float] = (0.05, 0.1, 0.15, 0.2), tone_length: int = 10) -> jax.Array:
    """A motif of pure tones played one after the other: tone ``i`` is ``sin(2 pi f_i j)`` for
    ``j = 0 .. tone_length - 1`` (``f`` in cycles per sample). ``[len(frequencies) * tone_length]``."""
    _checks.positive_int("tone_length", tone_length)
    f = np.asarray(frequencies, np.float64)
    if f.ndim != 1 or f.size < 2 or not np.all((f > 0) & (f < 0.5)) or len(set(f.tolist())) != f.size:
        raise ValueError(f"frequencies must be at least 2 distinct values in (0, 0.5) cycles/sample; got {frequencies!r}.")
    j = np.arange(tone_length)
    return jnp.asarray(np.sin(2 * np.pi * f[:, None] * j[None]).reshape(-1), jnp.float32)


def violation_mask(length: int, starts: Sequence[int], width: int) -> np.ndarray:
    """``[length]`` bool: True on ``[s, s + width)`` for each start ``s`` (windows must fit)."""
    _checks.positive_int("length", length)
    _checks.positive_int("width", width)
    mask = np.zeros(length, bool)
    for s in starts:
        if not (isinstance(s, (int, np.integer)) and 0 <= s and s + width <= length):
            raise ValueError(f"violation start {s!r} with width {width} must fit in [0, {length}).")
        mask[s : s + width] = True
    return mask


def periodic_stimulus(
    key: jax.Array,
    batch: int,
    pattern,
    length: int,
    *,
    noise: float = 0.0,
    violations: Sequence[int] = (),
    width: int = 5,
    kind: str = "invert",
    shift: int | None = None,
    random_phase: bool = True,
) -> tuple[jax.Array, np.ndarray]:
    """``(x [batch, length] float32, mask [length] bool)``: the module docstring's stimulus.

    Args:
      key: PRNG key for the phases and the noise.
      pattern: ``[P]`` the repeated pattern.
      violations: window starts (empty: the regular stimulus); ``mask`` marks the windows.
      kind: ``"invert"`` or ``"shift"`` (by ``shift`` samples, default ``P // 2``).
      random_phase: draw ``phi_b`` uniformly in ``{0 .. P-1}``; ``False``: ``phi = 0``.
    """
    _checks.positive_int("batch", batch)
    _checks.choice("kind", kind, KINDS)
    pattern = _checks.floating_array("pattern", pattern, ndim=1, layout="[period]")
    period = pattern.shape[0]
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0; got {noise!r}.")
    shift = period // 2 if shift is None else shift
    if not (isinstance(shift, (int, np.integer)) and 0 < shift % period):
        raise ValueError(f"shift must be an integer that is not a multiple of the period {period}; got {shift!r}.")
    mask = violation_mask(length, violations, width)
    k_phase, k_noise = jax.random.split(key)
    phase = (jax.random.randint(k_phase, (batch, 1), 0, period) if random_phase
             else jnp.zeros((batch, 1), jnp.int32))
    t = jnp.arange(length)[None]
    regular = pattern[(t + phase) % period]
    if kind == "invert":
        violated = -regular
    else:
        violated = pattern[(t + phase + shift) % period]
    x = jnp.where(jnp.asarray(mask)[None], violated, regular)
    if noise:
        x = x + noise * jax.random.normal(k_noise, x.shape, x.dtype)
    return x, mask
