"""A multi-timescale estimation task: a fast and a slow latent process, observed only in their sum.

Two stationary AR(1) (discretised Ornstein-Uhlenbeck) latents of unit variance and time constants
``tau_fast < tau_slow`` (in steps), and one noisy observation of their sum::

    z_t = phi z_{t-1} + sqrt(1 - phi^2) e_t,     phi = exp(-1 / tau),   z_0 ~ N(0, 1)
    u_t = z^fast_t + z^slow_t + noise * e^u_t

The targets, one per output, need different integration windows: ``z^fast_t`` (the recent
input, minus the slow part), ``z^slow_t`` (an average over about ``tau_slow`` steps cancels the
fast part and the noise) and the running mean of ``u`` over the last ``window`` steps (an exact
integration over a long window; over the ``t + 1 < window`` first steps, the mean so far).

Example::

    >>> import jax
    >>> from seqjax.data.multiscale import mixed_timescales
    >>> u, y = mixed_timescales(jax.random.key(0), 4, 200)
    >>> u.shape, y.shape
    ((4, 200, 1), (4, 200, 3))
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax import _checks


def ar1(key: jax.Array, batch: int, length: int, tau: float) -> jax.Array:
    """``[batch, length]`` stationary AR(1) with unit variance and autocorrelation ``exp(-k / tau)``."""
    _checks.positive_int("batch", batch)
    _checks.positive_int("length", length)
    _checks.positive_float("tau", tau)
    phi = math.exp(-1.0 / tau)
    e = jax.random.normal(key, (length, batch))

    def step(z, e_t):
        z = phi * z + math.sqrt(1 - phi**2) * e_t
        return z, z

    _, zs = jax.lax.scan(step, e[0], e[1:])
    return jnp.concatenate([e[:1], zs]).T


def mixed_timescales(
    key: jax.Array,
    batch: int,
    length: int,
    *,
    tau_fast: float = 2.0,
    tau_slow: float = 50.0,
    noise: float = 0.5,
    window: int = 50,
) -> tuple[jax.Array, jax.Array]:
    """``(u [batch, length, 1], targets [batch, length, 3])``, targets ``(z_fast, z_slow, mean of
    u over the last window steps)`` (module docstring)."""
    _checks.positive_int("window", window)
    if not (isinstance(tau_fast, (int, float)) and isinstance(tau_slow, (int, float)) and 0 < tau_fast < tau_slow):
        raise ValueError(f"need 0 < tau_fast < tau_slow; got tau_fast={tau_fast!r}, tau_slow={tau_slow!r}.")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0; got {noise!r}.")
    k_fast, k_slow, k_noise = jax.random.split(key, 3)
    fast = ar1(k_fast, batch, length, tau_fast)
    slow = ar1(k_slow, batch, length, tau_slow)
    u = fast + slow + noise * jax.random.normal(k_noise, fast.shape)
    c = jnp.concatenate([jnp.zeros((batch, 1)), jnp.cumsum(u, axis=1)], axis=1)
    t = jnp.arange(length)
    lo = jnp.maximum(t + 1 - window, 0)
    running = (c[:, t + 1] - c[:, lo]) / (t + 1 - lo)
    return u[..., None], jnp.stack([fast, slow, running], axis=-1)
