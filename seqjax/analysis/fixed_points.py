"""Fixed points and slow points of a recurrent map, by minimising its speed (Sussillo & Barak 2013).

For an autonomous map ``h -> F(h)`` (one step of a recurrent network with its input held
constant), the *speed* is::

    q(h) = 1/2 |F(h) - h|^2

``q = 0`` exactly at fixed points; small ``q`` marks *slow points*, where the network lingers.
Following Sussillo & Barak 2013 ("Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks"), :func:`find_fixed_points` minimises ``q`` with Adam
from many initial states (typically states visited on trials, plus a little noise), all at once
(``jax.vmap``); :func:`unique_points` merges the ones that land together; the linearisation at each
point, ``J = dF/dh`` (:func:`jax.jacobian`), gives its stability: the point is stable when every
eigenvalue of ``J`` lies inside the unit circle (a map, not a flow: for an Euler step
``F(h) = h + dt f(h)`` the eigenvalues are ``1 + dt mu`` with ``mu`` those of the flow's
Jacobian ``df/dh``).

Example: the map of ``dx/dt = x - x^3``, ``dy/dt = -y``, has stable points at ``(+-1, 0)`` and a
saddle at the origin::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.analysis.fixed_points import find_fixed_points, unique_points, linearise
    >>> F = lambda h: h + 0.1 * jnp.array([h[0] - h[0] ** 3, -h[1]])
    >>> starts = jax.random.uniform(jax.random.key(0), (64, 2), minval=-2, maxval=2)
    >>> result = find_fixed_points(F, starts, num_steps=1500, learning_rate=0.05)
    >>> points = unique_points(result.points[result.speed < 1e-10], tolerance=1e-2)
    >>> points = points[points[:, 0].argsort()]
    >>> [round(float(x), 2) + 0.0 for x in points[:, 0]]
    [-1.0, 0.0, 1.0]
    >>> linearise(F, points).unstable_modes.tolist()    # two stable points and a saddle
    [0, 1, 0]
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax import _checks


class FixedPointSearch(NamedTuple):
    """What :func:`find_fixed_points` returns: per initial state, where the search ended."""

    points: jax.Array        # [n, h] final states
    speed: jax.Array         # [n] q at them
    initial_speed: jax.Array  # [n] q at the initial states


class Linearisation(NamedTuple):
    """What :func:`linearise` returns, per point."""

    jacobians: np.ndarray      # [n, h, h]  dF/dh
    eigenvalues: np.ndarray    # [n, h] complex, sorted by decreasing modulus
    unstable_modes: np.ndarray  # [n] number of eigenvalues with |lambda| > 1
    stable: np.ndarray         # [n] bool, every |lambda| < 1


def speed(F: Callable[[jax.Array], jax.Array], h: jax.Array) -> jax.Array:
    """``q(h) = 1/2 |F(h) - h|^2`` for one state ``h`` ``[h]``."""
    return 0.5 * jnp.sum(jnp.square(F(h) - h))


def find_fixed_points(
    F: Callable[[jax.Array], jax.Array],
    initial_states: jax.Array,
    *,
    num_steps: int = 2000,
    learning_rate: float = 1e-2,
    optimizer: optax.GradientTransformation | None = None,
) -> FixedPointSearch:
    """Minimise :func:`speed` from every row of ``initial_states`` ``[n, h]`` (Sussillo & Barak 2013).

    Args:
      F: one step of the autonomous map, ``[h] -> [h]`` (pure, differentiable).
      initial_states: ``[n, h]`` starting states.
      num_steps: optimiser steps (one :func:`jax.lax.scan`, jitted).
      learning_rate: Adam's, when ``optimizer`` is not given.
      optimizer: any optax transformation (default ``optax.adam(learning_rate)``); each state is
        optimised independently (its own optimiser state, ``jax.vmap``).
    """
    initial_states = _checks.floating_array("initial_states", initial_states, ndim=2, layout="[points, hidden]")
    _checks.positive_int("num_steps", num_steps)
    _checks.positive_float("learning_rate", learning_rate)
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    q = lambda h: speed(F, h)

    def one(h0):
        def body(state, _):
            h, opt_state = state
            grad = jax.grad(q)(h)
            updates, opt_state = optimizer.update(grad, opt_state, h)
            return (optax.apply_updates(h, updates), opt_state), None

        (h, _), _ = jax.lax.scan(body, (h0, optimizer.init(h0)), None, length=num_steps)
        return h, q(h), q(h0)

    points, final, initial = jax.jit(jax.vmap(one))(initial_states)
    return FixedPointSearch(points, final, initial)


def unique_points(points: jax.Array, *, tolerance: float) -> np.ndarray:
    """The rows of ``points`` ``[n, h]`` with near-duplicates (Euclidean distance ``<= tolerance``
    to an earlier kept row) removed, in order of first appearance."""
    points = np.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"points must be [n, hidden]; got shape {points.shape}.")
    _checks.positive_float("tolerance", tolerance)
    kept: list[np.ndarray] = []
    for p in points:
        if all(np.linalg.norm(p - k) > tolerance for k in kept):
            kept.append(p)
    return np.stack(kept) if kept else np.zeros((0, points.shape[1]), points.dtype)


def linearise(F: Callable[[jax.Array], jax.Array], points) -> Linearisation:
    """Jacobians ``dF/dh`` at ``points`` ``[n, h]`` (:func:`jax.jacobian`) and their eigenvalues
    (NumPy, on the host: XLA has no general eigensolver on every backend)."""
    points = jnp.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"points must be [n, hidden]; got shape {tuple(points.shape)}.")
    if points.shape[0] == 0:
        h = points.shape[1]
        return Linearisation(np.zeros((0, h, h)), np.zeros((0, h), complex), np.zeros(0, int), np.zeros(0, bool))
    jac = np.asarray(jax.jit(jax.vmap(jax.jacobian(F)))(points), np.float64)
    eig = np.linalg.eigvals(jac)
    order = np.argsort(-np.abs(eig), axis=1)
    eig = np.take_along_axis(eig, order, axis=1)
    modulus = np.abs(eig)
    return Linearisation(jac, eig, (modulus > 1).sum(1), (modulus < 1).all(1))
