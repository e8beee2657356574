"""Gradient clipping as optax transformations, chained *before* the optimiser.

``g`` is the gradient pytree, ``||g|| = sqrt(sum over all leaves of sum g^2)`` its global norm.

* :func:`clip_by_global_norm` (``optax.clip_by_global_norm``; Pascanu et al. 2013)::

      g <- g * min(1, tau / ||g||)

  keeps the direction. The seeds' worked example: ``||g|| = 15, tau = 5`` scales by 1/3.
* :func:`clip_by_value` (``optax.clip``): ``g_i <- max(min(g_i, tau), -tau)`` element-wise;
  changes the direction, which is why the seeds prefer the norm.
* :func:`adaptive_clip` (``optax.adaptive_grad_clip``; AGC, Brock et al. 2021), unit-wise::

      g_u <- g_u * min(1, lambda * max(||W_u||, eps) / ||g_u||)

  where a unit ``u`` of an ``[in, out]`` matrix is one column (norm over axis 0, one output
  unit), and a vector or scalar is one unit.
* :func:`ema_norm_clip` -- the seed's "adaptive clipping" (001-part1 L645), which is *not* AGC:
  the threshold follows a running average of past global norms,
  ``tau_t = alpha * tau_{t-1} + (1 - alpha) * ||g_t||``. Not in optax; choices the seed leaves
  open: step ``t`` is clipped at ``factor * tau_{t-1}`` (the threshold before this gradient, so a
  spike cannot raise its own limit), and ``tau`` is then updated with the *unclipped* norm (with
  the clipped one and ``factor = 1`` the threshold could never grow).

Example::

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.train.clipping import clip_by_global_norm
    >>> tx = optax.chain(clip_by_global_norm(5.0), optax.sgd(1.0))
    >>> g = {"a": jnp.array([9.0, 12.0])}                  # norm 15
    >>> u, _ = tx.update(g, tx.init(g))
    >>> [round(v, 4) for v in u["a"].tolist()]             # -g / 3
    [-3.0, -4.0]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from seqjax import _checks

CLIPPING_KINDS = ("none", "global_norm", "value", "agc", "ema_norm")


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """Scale the whole gradient by ``min(1, max_norm / ||g||)`` (``optax.clip_by_global_norm``)."""
    _positive("max_norm", max_norm)
    return optax.clip_by_global_norm(max_norm)


def clip_by_value(max_abs: float) -> optax.GradientTransformation:
    """Clamp every element to ``[-max_abs, max_abs]`` (``optax.clip``)."""
    _positive("max_abs", max_abs)
    return optax.clip(max_abs)


def adaptive_clip(clipping: float = 0.01, eps: float = 1e-3) -> optax.GradientTransformation:
    """AGC: clip each unit's gradient norm to ``clipping * max(||W_u||, eps)``
    (``optax.adaptive_grad_clip``; needs ``params`` in ``update``). Brock et al. use
    ``clipping`` of 0.01 to 0.16 depending on batch size."""
    _positive("clipping", clipping)
    _positive("eps", eps)
    return optax.adaptive_grad_clip(clipping, eps)


class EmaNormClipState(NamedTuple):
    """The running threshold ``tau`` of :func:`ema_norm_clip`."""

    tau: jax.Array


def ema_norm_clip(alpha: float = 0.99, tau0: float = 1.0, factor: float = 1.0) -> optax.GradientTransformation:
    """Clip the global norm at ``factor * tau_{t-1}``, then ``tau_t = alpha tau_{t-1} + (1 - alpha) ||g_t||``.

    ``tau0`` is the threshold for the first step; ``alpha`` in ``[0, 1)`` (the seed: "close to 1").
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1); got {alpha}.")
    _positive("tau0", tau0)
    _positive("factor", factor)

    def init(params):
        del params
        return EmaNormClipState(tau=jnp.asarray(tau0, jnp.float32))

    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        limit = factor * state.tau
        # The where keeps a zero gradient at zero instead of computing 0 * inf.
        scale = jnp.where(norm > limit, limit / jnp.maximum(norm, 1e-30), 1.0)
        updates = jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates)
        tau = alpha * state.tau + (1.0 - alpha) * norm
        return updates, EmaNormClipState(tau=tau.astype(jnp.float32))

    return optax.GradientTransformation(init, update)


def make_clipping(kind: str, threshold: float | None = None) -> optax.GradientTransformation:
    """A clipping transformation by name, for configs: ``"none"`` (identity), ``"global_norm"``,
    ``"value"``, ``"agc"`` (``threshold`` is AGC's ratio ``lambda``) or ``"ema_norm"`` (``threshold``
    is ``tau0``)."""
    _checks.choice("kind", kind, CLIPPING_KINDS)
    if kind == "none":
        return optax.identity()
    if threshold is None:
        raise ValueError(f"clipping kind {kind!r} needs a threshold; got None.")
    return {
        "global_norm": clip_by_global_norm,
        "value": clip_by_value,
        "agc": adaptive_clip,
        "ema_norm": lambda t: ema_norm_clip(tau0=t),
    }[kind](threshold)


def _positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
