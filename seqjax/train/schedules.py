"""Learning-rate schedules: functions ``count -> learning rate`` for optax.

``count`` is optax's update counter: 0 for the first update, ``n`` for the ``(n+1)``-th. Every
schedule here is non-negative and finite for every ``count >= 0`` (the seeds' versions divide by
zero at step 0 or go negative after the last step; see 001-part2 section 2.2).

* :func:`inverse_sqrt_warmup` -- the Transformer's schedule (Vaswani et al. 2017, eq. 3)::

      lr(s) = scale * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5),    s = count + 1

  Linear growth for ``s <= warmup``, then ``~ 1/sqrt(s)``. The paper's ``step`` starts at 1;
  ``count`` starts at 0, hence ``s = count + 1`` (the seed's ``0 ** -0.5`` raises
  ZeroDivisionError). The first update (count 0) gets ``d_model^-0.5 * warmup^-1.5`` (1.75e-7 for
  ``d_model = 512, warmup = 4000``), and the peak ``(d_model * warmup)^-0.5`` (6.99e-4) is
  reached at ``count = warmup - 1``.
* :func:`warmup_linear_decay` -- linear from ``init_value`` to ``peak_value`` over
  ``warmup_steps``, then linear to ``end_value`` at ``total_steps``, and ``end_value`` after it
  (clamped: never negative). BERT's schedule.
* :func:`warmup_cosine_decay` -- the same warmup, then half a cosine from ``peak_value`` to
  ``end_value`` at ``total_steps``, ``end_value`` after. Not in the seeds (an extra).
* :func:`slanted_triangular` -- ULMFiT's schedule (Howard & Ruder 2018, eq. 3): a short linear
  rise from ``max_lr / ratio`` to ``max_lr`` over the first ``cut = floor(T * cut_frac)`` steps,
  then a long linear decay back to ``max_lr / ratio`` at ``T``::

      p(t)  = t / cut                                    t < cut
            = 1 - (t - cut) / (cut * (1 / cut_frac - 1))   cut <= t <= T  (then held)
      lr(t) = max_lr * (1 + p (ratio - 1)) / ratio,       t = count

* :func:`warmup_constant` -- the seed's LSTM warmup (001-part2 L5532): linear from 0 to
  ``peak_value`` over ``warmup_steps``, then constant.

With ``init_value = 0`` (the default) the first update has learning rate exactly 0: a deliberate
no-op step, as in the seeds. Pass a small ``init_value`` to avoid it.

Example::

    >>> from seqjax.train.schedules import inverse_sqrt_warmup, warmup_linear_decay
    >>> noam = inverse_sqrt_warmup(d_model=512, warmup_steps=4000)
    >>> f"{float(noam(3999)):.3e}"
    '6.988e-04'
    >>> lin = warmup_linear_decay(1.0, warmup_steps=10, total_steps=110)
    >>> [float(lin(c)) for c in (0, 5, 10, 60, 110, 500)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

from seqjax import _checks


def inverse_sqrt_warmup(d_model: int, warmup_steps: int, *, scale: float = 1.0) -> optax.Schedule:
    """The Transformer's ``d_model^-0.5 * min(s^-0.5, s * warmup^-1.5)``, ``s = count + 1``."""
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("warmup_steps", warmup_steps)
    _positive("scale", scale)
    factor = scale * d_model**-0.5

    def schedule(count):
        s = jnp.asarray(count, jnp.float32) + 1.0  # s >= 1: no 0 ** -0.5
        return factor * jnp.minimum(s**-0.5, s * warmup_steps**-1.5)

    return schedule


def warmup_linear_decay(
    peak_value: float,
    warmup_steps: int,
    total_steps: int,
    *,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> optax.Schedule:
    """Linear warmup ``init -> peak`` over ``warmup_steps``, linear decay to ``end_value`` at
    ``total_steps``, then constant ``end_value``::

        lr(c) = init + (peak - init) * c / W                    c <  W
        lr(c) = peak + (end - peak) * min(c - W, T - W) / (T - W)   c >= W
    """
    _check_warmup_decay(peak_value, warmup_steps, total_steps, end_value, init_value)
    decay = optax.linear_schedule(peak_value, end_value, total_steps - warmup_steps)
    if warmup_steps == 0:
        return decay
    # optax.linear_schedule clamps its count to [0, transition_steps]: this is what keeps the
    # decay from going below end_value after total_steps.
    warmup = optax.linear_schedule(init_value, peak_value, warmup_steps)
    return optax.join_schedules([warmup, decay], [warmup_steps])


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    total_steps: int,
    *,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> optax.Schedule:
    """Linear warmup to ``peak_value``, then a half cosine to ``end_value`` at ``total_steps``::

        lr(c) = end + (peak - end) * (1 + cos(pi * min(c - W, T - W) / (T - W))) / 2,   c >= W

    ``optax.warmup_cosine_decay_schedule`` with ``decay_steps = total_steps`` (optax counts the
    warmup inside ``decay_steps``).
    """
    _check_warmup_decay(peak_value, warmup_steps, total_steps, end_value, init_value)
    return optax.warmup_cosine_decay_schedule(
        init_value=init_value, peak_value=peak_value, warmup_steps=warmup_steps,
        decay_steps=total_steps, end_value=end_value,
    )


def slanted_triangular(
    max_lr: float, total_steps: int, *, cut_frac: float = 0.1, ratio: float = 32.0
) -> optax.Schedule:
    """ULMFiT's slanted triangular learning rate (Howard & Ruder 2018, eq. 3; their defaults
    ``cut_frac = 0.1``, ``ratio = 32``, ``max_lr = 0.01``), ``t = count`` (module docstring).

    ``cut = floor(total_steps * cut_frac)`` must be at least 1 and less than ``total_steps``.
    Up to ``total_steps`` this is the paper's formula exactly: when the floor is not exact, ``p``
    ends slightly below 0 and the last rates dip below ``max_lr / ratio`` (never below 0: the
    rate is floored at 0). After ``total_steps`` the rate stays at its value there.

    Example::

        >>> from seqjax.train.schedules import slanted_triangular
        >>> stlr = slanted_triangular(0.01, 1000)
        >>> [round(float(stlr(t)), 7) for t in (0, 50, 100, 550, 1000, 5000)]
        [0.0003125, 0.0051562, 0.01, 0.0051562, 0.0003125, 0.0003125]
    """
    _positive("max_lr", max_lr)
    _checks.positive_int("total_steps", total_steps)
    if not (isinstance(cut_frac, (int, float)) and 0 < cut_frac < 1):
        raise ValueError(f"cut_frac must be in (0, 1); got {cut_frac!r}.")
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio >= 1):
        raise ValueError(f"ratio must be a finite number >= 1; got {ratio!r}.")
    cut = math.floor(total_steps * cut_frac)
    if not 1 <= cut < total_steps:
        raise ValueError(
            f"cut = floor(total_steps * cut_frac) = {cut} must be in [1, total_steps); got total_steps="
            f"{total_steps}, cut_frac={cut_frac}."
        )
    decay_len = cut * (1.0 / cut_frac - 1.0)

    def schedule(count):
        t = jnp.minimum(jnp.asarray(count, jnp.float32), float(total_steps))
        p = jnp.where(t < cut, t / cut, 1.0 - (t - cut) / decay_len)
        return jnp.maximum(max_lr * (1.0 + p * (ratio - 1.0)) / ratio, 0.0)

    return schedule


def warmup_constant(peak_value: float, warmup_steps: int) -> optax.Schedule:
    """``peak * min(c / warmup_steps, 1)``: linear warmup from 0, then constant (seed L5532)."""
    _positive("peak_value", peak_value)
    _checks.positive_int("warmup_steps", warmup_steps)
    return optax.linear_schedule(0.0, peak_value, warmup_steps)


def _check_warmup_decay(peak, warmup, total, end, init):
    _positive("peak_value", peak)
    _checks.nonnegative_int("warmup_steps", warmup)
    _checks.positive_int("total_steps", total)
    if total <= warmup:
        raise ValueError(
            f"total_steps must exceed warmup_steps (the decay needs at least one step); got "
            f"total_steps={total}, warmup_steps={warmup}."
        )
    for name, value in (("end_value", end), ("init_value", init)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {value}.")


def _positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
