"""Attention rollout (Abnar & Zuidema 2020): attention through the layers, with the residual path.

Per layer ``l`` the heads are averaged and the residual connection is added as an identity,
then each row is renormalised:

    A_l = (1 - r) * mean_h W_{l,h} + r * I,      A_l <- A_l / sum_j (A_l)_{ij}

(``r`` = ``residual_weight``, 0.5 in the paper), and the rollout to layer ``l`` is the product

    R_0 = A_0,      R_l = A_l R_{l-1}

so ``(R_l)_{ij}`` is how much of the input token ``j`` reaches position ``i`` after layer ``l``
when attention is followed linearly through every layer (queries on the left). Each ``R_l`` is
row-stochastic; for causal attention it stays lower-triangular.
"""

from __future__ import annotations

import numpy as np

__all__ = ["attention_rollout"]


def attention_rollout(attention, *, residual_weight: float = 0.5) -> np.ndarray:
    """Rollout of self-attention ``[layers, heads, t, t]`` to every layer: ``[layers, t, t]``.

    Args:
        attention: attention weights ``[layers, heads, t, t]`` (rows sum to 1), layer 0 first.
        residual_weight: ``r`` in ``(1 - r) mean_h W + r I``; 0 follows attention alone.

    Returns:
        float64 ``[layers, t, t]``: entry ``l`` is the rollout through layers ``0..l``.

    Example:
        >>> import numpy as np
        >>> w = np.array([[[[1.0, 0.0], [1.0, 0.0]]]])        # one layer, one head
        >>> attention_rollout(w)[0]                          # 0.5 W + 0.5 I
        array([[1. , 0. ],
               [0.5, 0.5]])
    """
    a = np.asarray(attention)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(
            "attention must be self-attention with layout [layers, heads, t, t]; got shape "
            f"{a.shape}."
        )
    if not 0.0 <= float(residual_weight) <= 1.0:
        raise ValueError(f"residual_weight must lie in [0, 1]; got {residual_weight!r}.")
    r = float(residual_weight)
    eye = np.eye(a.shape[-1])
    out = np.empty((a.shape[0], a.shape[-1], a.shape[-1]))
    running = eye
    for layer in range(a.shape[0]):
        mixed = (1.0 - r) * a[layer].mean(axis=0, dtype=np.float64) + r * eye
        sums = mixed.sum(axis=-1, keepdims=True)
        mixed = mixed / np.where(sums > 0, sums, 1.0)
        running = mixed @ running
        out[layer] = running
    return out
