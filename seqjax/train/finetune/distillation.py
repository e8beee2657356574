"""Knowledge distillation losses: a student trained on a teacher's outputs.

**Soft targets** (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"). With
student logits ``z``, teacher logits ``v`` ``[..., K]`` and temperature ``T``::

    p_T = softmax(v / T),   q_T = softmax(z / T)
    L_soft = T^2 * KL(p_T || q_T) = T^2 * sum_k p_T,k (log p_T,k - log q_T,k)
    L      = alpha * L_soft + (1 - alpha) * CE(softmax(z), labels)

``dL_soft / dz_k = T (q_T,k - p_T,k)``; for ``T`` large against the logits (and zero-mean logits
over the ``K`` classes) this tends to ``(z_k - v_k) / K``, whatever ``T``: the ``T^2`` factor keeps
the soft term's gradient on the scale of the hard term's when ``T`` changes (without it the
gradient shrinks as ``1 / T^2``), which is Hinton et al.'s reason for it. The limit is logit
matching. PyTorch: ``T**2 * F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1),
reduction="batchmean")`` for ``[b, K]`` logits.

**Logit regression** (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks")::

    L_mse = || v - z ||_2^2   (summed over the classes, averaged over examples)
    L     = alpha * L_mse + (1 - alpha) * CE(softmax(z), labels)

Tang et al. write ``alpha`` on the cross-entropy; here ``alpha`` is always the weight of the
distillation term (their ``alpha`` is ``1 - alpha`` here). The teacher's logits are held constant
(``jax.lax.stop_gradient``). Positions where ``mask`` is False count in neither term.

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.train.finetune.distillation import distillation_loss, soft_target_loss
    >>> z, v = jnp.array([[1.0, 0.0, -1.0]]), jnp.array([[2.0, 0.0, -2.0]])
    >>> round(float(soft_target_loss(z, z, temperature=2.0)), 6)
    0.0
    >>> round(float(distillation_loss(z, v, jnp.array([0]), temperature=2.0, alpha=0.5)), 4)
    0.3243
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.train.losses import _check_classification, _reduce, cross_entropy


def _logit_pair(student_logits, teacher_logits):
    student_logits = jnp.asarray(student_logits)
    teacher_logits = jnp.asarray(teacher_logits)
    for name, x in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must be a floating-point array [..., classes]; got dtype {x.dtype}, "
                             f"shape {tuple(x.shape)}.")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape [..., classes].")
    return student_logits.astype(jnp.float32), jax.lax.stop_gradient(teacher_logits.astype(jnp.float32))


def _check_mask(mask, shape):
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask must have the logits' shape without the classes, {shape}; got {tuple(mask.shape)}.")
    return mask.astype(bool)


def soft_target_loss(
    student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float = 2.0,
    mask: jax.Array | None = None, scale_by_t2: bool = True,
) -> jax.Array:
    """``T^2 * KL(softmax(v/T) || softmax(z/T))`` averaged over the (valid) positions ``[...]``.

    Args:
      student_logits, teacher_logits: ``[..., K]``.
      temperature: ``T > 0``.
      mask: ``[...]`` True where the position counts.
      scale_by_t2: multiply by ``T^2`` (Hinton et al.); False gives the bare KL.
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number; got {temperature!r}.")
    z, v = _logit_pair(student_logits, teacher_logits)
    mask = _check_mask(mask, z.shape[:-1])
    log_q = jax.nn.log_softmax(z / temperature, axis=-1)
    log_p = jax.nn.log_softmax(v / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return _reduce(kl, mask, "mean") * (temperature**2 if scale_by_t2 else 1.0)


def logit_mse_loss(student_logits: jax.Array, teacher_logits: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """Tang et al. 2019: ``||v - z||^2`` summed over the classes, averaged over (valid) positions."""
    z, v = _logit_pair(student_logits, teacher_logits)
    mask = _check_mask(mask, z.shape[:-1])
    return _reduce(jnp.sum((v - z) ** 2, axis=-1), mask, "mean")


def _mix(alpha, distill, student_logits, labels, mask):
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha (the weight of the distillation term) must be in [0, 1]; got {alpha!r}.")
    _check_classification(student_logits, labels, mask)
    hard = cross_entropy(student_logits, labels, mask=mask)
    return alpha * distill + (1.0 - alpha) * hard


def distillation_loss(
    student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *, temperature: float = 2.0,
    alpha: float = 0.5, mask: jax.Array | None = None,
) -> jax.Array:
    """Hinton et al. 2015: ``alpha * T^2 KL(p_T || q_T) + (1 - alpha) * CE(z, labels)`` (module
    docstring); ``labels`` ``[...]`` integer ids."""
    soft = soft_target_loss(student_logits, teacher_logits, temperature=temperature, mask=mask)
    return _mix(alpha, soft, student_logits, labels, mask)


def logit_distillation_loss(
    student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *, alpha: float = 0.5,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Tang et al. 2019: ``alpha * ||v - z||^2 + (1 - alpha) * CE(z, labels)``."""
    return _mix(alpha, logit_mse_loss(student_logits, teacher_logits, mask=mask), student_logits, labels, mask)
