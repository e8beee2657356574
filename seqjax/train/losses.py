"""Losses: masked cross-entropy with label smoothing, masked MSE, Poisson likelihood, bits per character.

Every loss is computed in float32 whatever the dtype of the logits (bfloat16 logits are upcast
first: a log-softmax in bfloat16 loses about three decimal digits), and a padding/validity mask
(``True`` = a real token) removes padded positions from both the sum and the count::

    loss = sum_i m_i * l_i / max(sum_i m_i, 1)          (reduction="mean")

so the mean is per *valid token*, not per sequence (the seed's ``loss.sum() / mask.sum()``); use
``reduction="sum"`` and divide yourself for another normaliser. The ``max(., 1)`` keeps an
all-padding batch at loss 0 instead of NaN.

Label smoothing, two conventions (``K`` classes, target ``y``, smoothing ``alpha``):

* ``"uniform"`` (default; Szegedy et al. 2016, Vaswani et al. 2017, ``optax.smooth_labels``,
  PyTorch's ``cross_entropy(label_smoothing=alpha)``): mix the one-hot target with the uniform
  distribution, ``q = (1 - alpha) * onehot(y) + alpha / K``. The target class gets
  ``1 - alpha + alpha / K`` and every other class ``alpha / K``.
* ``"others"`` (the seed's code, 001-part2 L8802-8822): ``1 - alpha`` on the target and
  ``alpha / (K - 1)`` on each other class, so the target never keeps any of the smoothing mass.

With ``q`` the smoothed target, ``l_i = -sum_k q_k log softmax(z)_k``.

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.train.losses import cross_entropy
    >>> logits = jnp.zeros((2, 3, 5))                     # uniform predictions
    >>> labels = jnp.array([[1, 2, 0], [4, 0, 0]])
    >>> mask = jnp.array([[True, True, True], [True, False, False]])
    >>> round(float(cross_entropy(logits, labels, mask=mask)), 4)   # log 5
    1.6094
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqjax import _checks

REDUCTIONS = ("mean", "sum", "none")
SMOOTHING_CONVENTIONS = ("uniform", "others")


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    mask: jax.Array | None = None,
    label_smoothing: float = 0.0,
    convention: str = "uniform",
    reduction: str = "mean",
) -> jax.Array:
    """Softmax cross-entropy with integer labels, an optional validity mask and label smoothing.

    Args:
      logits: ``[..., K]`` unnormalised scores (any float dtype; computed in float32).
      labels: ``[...]`` integer class ids in ``[0, K)``. Labels at masked positions may be
        anything (a pad id, -100, ...): they are replaced by 0 before use, so they cannot index out
        of range or leak NaN into the gradient.
      mask: ``[...]`` boolean, True where the position counts; ``None``: all positions count.
      label_smoothing: ``alpha`` in ``[0, 1)``.
      convention: ``"uniform"`` (optax/PyTorch) or ``"others"`` (seed); see the module docstring.
      reduction: ``"mean"`` over valid positions, ``"sum"``, or ``"none"`` (per position ``[...]``,
        zero where masked).
    """
    logits, labels, mask = _check_classification(logits, labels, mask)
    _checks.choice("reduction", reduction, REDUCTIONS)
    _checks.choice("convention", convention, SMOOTHING_CONVENTIONS)
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1); got {label_smoothing}.")
    num_classes = logits.shape[-1]
    if convention == "others" and label_smoothing > 0 and num_classes < 2:
        raise ValueError("convention='others' needs at least 2 classes (alpha / (K - 1)).")

    logits = logits.astype(jnp.float32)
    safe = jnp.where(mask, labels, 0) if mask is not None else labels
    if label_smoothing == 0.0:
        per_token = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    else:
        targets = smoothed_targets(safe, num_classes, label_smoothing, convention)
        per_token = optax.softmax_cross_entropy(logits, targets)
    return _reduce(per_token, mask, reduction)


def smoothed_targets(labels: jax.Array, num_classes: int, alpha: float, convention: str = "uniform") -> jax.Array:
    """The smoothed target distribution ``[..., K]`` for integer ``labels`` (module docstring)."""
    _checks.choice("convention", convention, SMOOTHING_CONVENTIONS)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if convention == "uniform":
        return optax.smooth_labels(onehot, alpha)
    return (1.0 - alpha) * onehot + alpha / (num_classes - 1) * (1.0 - onehot)


def mse(predictions: jax.Array, targets: jax.Array, *, mask: jax.Array | None = None, reduction: str = "mean") -> jax.Array:
    """Squared error ``(p - t)^2``, averaged over the valid elements (float32).

    ``mask`` (boolean) must broadcast to ``predictions``' shape; the mean divides by the number of
    valid *elements* after broadcasting (a ``[b, t, 1]`` mask over ``[b, t, d]`` counts ``d`` per
    valid step).
    """
    predictions, targets = _same_shape("predictions", predictions, "targets", targets, reduction)
    per_elem = jnp.square(predictions.astype(jnp.float32) - targets.astype(jnp.float32))
    return _reduce_elements(per_elem, mask, reduction, "predictions.shape")


def poisson_nll(
    rates: jax.Array,
    counts: jax.Array,
    *,
    log_input: bool = False,
    mask: jax.Array | None = None,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> jax.Array:
    """Negative Poisson log-likelihood of spike ``counts`` under ``rates`` (float32), in nats::

        -log p(k | lambda) = lambda - k log(lambda) + log(k!)

    The ``log(k!)`` term (``lgamma(k + 1)``) is kept, so the mean is a true log-likelihood per
    bin and models and baselines can be compared in nats or bits (:func:`bits_per_spike`); it
    does not change the gradient. With ``log_input`` the first argument is ``log lambda`` (an
    ``exp`` readout, PyTorch's ``poisson_nll_loss(log_input=True)``); otherwise it is ``lambda``
    itself (a softplus readout) and ``log(lambda + eps)`` is used.

    Args:
      rates: ``[...]`` predicted rates (or log rates), spikes per bin.
      counts: ``[...]`` non-negative counts (integer or float), the same shape.
      mask: boolean, broadcastable to the shape; the mean is over valid elements.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.train.losses import poisson_nll
        >>> round(float(poisson_nll(jnp.array([2.0]), jnp.array([3]))), 4)   # 2 - 3 log 2 + log 6
        1.7123
    """
    rates, counts = _same_shape("rates", rates, "counts", counts, reduction)
    if not jnp.issubdtype(rates.dtype, jnp.floating):
        raise ValueError(f"rates must be floating point; got dtype {rates.dtype}.")
    rates = rates.astype(jnp.float32)
    k = counts.astype(jnp.float32)
    if log_input:
        per_elem = jnp.exp(rates) - k * rates
    else:
        per_elem = rates - k * jnp.log(rates + eps)
    per_elem = per_elem + jax.scipy.special.gammaln(k + 1.0)
    return _reduce_elements(per_elem, mask, reduction, "rates.shape")


def bits_per_spike(nll_model: Any, nll_baseline: Any, spikes: Any) -> Any:
    """Information gain over a baseline in bits per spike (Pillow et al. 2008):
    ``(nll_baseline - nll_model) / (spikes * ln 2)``, from *summed* negative log-likelihoods in
    nats and the number of spikes they cover. The baseline is usually each neuron's constant mean
    rate: 0 bits per spike is no better than it."""
    return (nll_baseline - nll_model) / (spikes * math.log(2.0))


def bits_per_character(nats_per_character: Any) -> Any:
    """Convert a mean cross-entropy in nats per character to bits per character: ``L / ln 2``."""
    return nats_per_character / math.log(2.0)


def perplexity(nats_per_token: Any) -> Any:
    """Perplexity ``exp(L)`` of a mean cross-entropy ``L`` in nats per token."""
    return jnp.exp(nats_per_token)


def _same_shape(a_name: str, a: Any, b_name: str, b: Any, reduction: str) -> tuple[jax.Array, jax.Array]:
    """The two arrays of an elementwise loss, after checking ``reduction`` and that their shapes
    are equal (never broadcast silently)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    _checks.choice("reduction", reduction, REDUCTIONS)
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape; got {tuple(a.shape)} and "
            f"{tuple(b.shape)} (no silent broadcasting)."
        )
    return a, b


def _reduce_elements(per_elem: jax.Array, mask: Any, reduction: str, layout: str) -> jax.Array:
    """:func:`_reduce` of an elementwise loss whose boolean ``mask`` broadcasts to it."""
    if mask is not None:
        mask = _checks.boolean_mask("mask", mask, per_elem.shape, layout)
        mask = jnp.broadcast_to(mask, per_elem.shape)
    return _reduce(per_elem, mask, reduction)


def _reduce(per_item: jax.Array, mask: jax.Array | None, reduction: str) -> jax.Array:
    if mask is not None:
        per_item = jnp.where(mask, per_item, 0.0)
    if reduction == "none":
        return per_item
    total = jnp.sum(per_item)
    if reduction == "sum":
        return total
    count = per_item.size if mask is None else jnp.sum(mask)
    return total / jnp.maximum(count, 1)


def _check_classification(logits, labels, mask):
    logits = jnp.asarray(logits) if not hasattr(logits, "dtype") else logits
    labels = jnp.asarray(labels) if not hasattr(labels, "dtype") else labels
    if logits.ndim < 1 or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(
            f"logits must be a floating-point array [..., classes]; got dtype {logits.dtype}, "
            f"shape {tuple(logits.shape)}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"labels must be integer class ids (not one-hot, not float); got dtype {labels.dtype}."
        )
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}; got "
            f"{tuple(labels.shape)}."
        )
    if mask is not None:
        mask = jnp.asarray(mask) if not hasattr(mask, "dtype") else mask
        if mask.dtype != jnp.bool_:
            raise ValueError(
                f"mask must be boolean (True = a real token); got dtype {mask.dtype}. "
                "Compare an integer mask with != 0."
            )
        if tuple(mask.shape) != tuple(labels.shape):
            raise ValueError(
                f"mask must have the labels' shape {tuple(labels.shape)}; got {tuple(mask.shape)}."
            )
    return logits, labels, mask
