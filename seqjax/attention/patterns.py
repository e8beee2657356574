"""What each attention head does, measured from its weights: per-head pattern scores.

For one input of ``n`` tokens and attention weights ``A`` ``[l, h, n, n]`` (query ``i``, key
``j``, rows summing to 1, as ``return_attention=True`` gives them), each head gets, averaged
over its query rows::

    previous   mean_i A[i, i-1]              (rows i >= 1)      "attend to the previous token"
    next       mean_i A[i, i+1]              (rows i <= n-2)    "attend to the next token"
    self       mean_i A[i, i]
    first      mean_i A[i, 0]                 ([CLS] for BERT inputs, the start token for GPT)
    last       mean_i A[i, n-1]               ([SEP] for BERT inputs)
    entropy    mean_i -sum_j A[i, j] log A[i, j]             (nats; broad vs focused)
    distance   mean_i sum_j |i - j| A[i, j]                  (mean attention distance, tokens)

and the same statistics of **uniform attention** over the keys each row may see (all ``n``, or
``i + 1`` for a causal model), the reference a head's score should be read against: a head that
gives the previous token 0.4 of its weight, where uniform attention would give 0.1, is a
previous-token head; 0.4 in a 3-token causal prefix is not. Causal models: ``next`` is 0 by
construction (reported as NaN), rows with a single allowed key (the first) are left out of every
mean, and ``last`` is left out (only the last query sees the last token).

The seed visualiser's analyser scored "decreasing" attention from row means (always ``1/n``, since
rows sum to 1) and "long-range" attention from a mean that cannot exceed 1; these statistics are
per-row expectations instead, checked against numpy loops in the tests.

Example::

    >>> import numpy as np
    >>> from seqjax.attention.patterns import head_patterns
    >>> prev = np.eye(4, k=-1); prev[0, 0] = 1.0               # every token looks one back
    >>> scores = head_patterns(prev[None, None])                # [l=1, h=1, 4, 4]
    >>> float(scores["previous"][0, 0]), float(scores["self"][0, 0])
    (1.0, 0.25)
    >>> round(float(scores["uniform"]["previous"]), 3)
    0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np

PATTERNS = ("previous", "next", "self", "first", "last", "entropy", "distance")


def _check(weights: Any) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.ndim != 4 or w.shape[-1] != w.shape[-2] or w.shape[-1] < 2:
        raise ValueError(
            f"weights must be self-attention weights [layers, heads, n, n] with n >= 2; got shape {w.shape}."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative (a softmax).")
    rows = w.sum(-1)
    if not np.allclose(rows, 1.0, atol=1e-3):
        raise ValueError(
            f"every row of weights must sum to 1 (attention weights of the valid tokens only: crop "
            f"padding first); row sums range over [{rows.min():.4f}, {rows.max():.4f}]."
        )
    return w


def _row_stats(w: np.ndarray, causal: bool) -> dict[str, np.ndarray]:
    """Per-row statistics ``[..., n]`` (NaN where a row does not count)."""
    n = w.shape[-1]
    i = np.arange(n)
    nan = np.full(w.shape[:-1], np.nan)
    prev, nxt = nan.copy(), nan.copy()
    prev[..., 1:] = w[..., i[1:], i[1:] - 1]
    nxt[..., :-1] = w[..., i[:-1], i[:-1] + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=-1)
    dist = np.sum(np.abs(i[:, None] - i[None, :]) * w, axis=-1)
    stats = {"previous": prev, "next": nxt, "self": w[..., i, i], "first": w[..., :, 0], "last": w[..., :, n - 1],
             "entropy": ent, "distance": dist}
    if causal:
        stats["next"] = nan.copy()
        stats["last"] = nan.copy()
        for key in stats:  # the first row has one key: every statistic is trivial there
            stats[key] = stats[key].copy()
            stats[key][..., 0] = np.nan
    return stats


def uniform_weights(n: int, causal: bool) -> np.ndarray:
    """``[n, n]``: each row uniform over the keys it may see (all, or ``0..i`` when causal)."""
    if causal:
        w = np.tril(np.ones((n, n)))
    else:
        w = np.ones((n, n))
    return w / w.sum(-1, keepdims=True)


def head_patterns(weights: Any, *, causal: bool = False) -> dict[str, Any]:
    """Pattern scores of every head (module docstring) for one input.

    Args:
      weights: ``[l, h, n, n]`` self-attention weights of one input's ``n`` valid tokens (crop
        padded positions first), rows summing to 1.
      causal: the model is causal (rows see keys ``0..i`` only).

    Returns:
      ``{pattern: [l, h] float64}`` for each of :data:`PATTERNS` (NaN where undefined) and
      ``"uniform": {pattern: float}``, the scores of uniform attention over the allowed keys.
    """
    w = _check(weights)
    if causal and np.any(np.triu(w, 1) > 1e-6):
        raise ValueError("causal=True, but weights have mass above the diagonal (a query reading a later key).")
    out: dict[str, Any] = {}
    for key, rows in _row_stats(w, causal).items():
        out[key] = np.nanmean(rows, axis=-1) if not np.all(np.isnan(rows)) else np.full(w.shape[:2], np.nan)
    uniform = _row_stats(uniform_weights(w.shape[-1], causal)[None, None], causal)
    out["uniform"] = {k: (float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan")) for k, v in uniform.items()}
    return out


def average_patterns(per_input: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of :func:`head_patterns` results over several inputs (each pattern and the
    uniform reference averaged over the inputs, NaN-aware)."""
    if not per_input:
        raise ValueError("per_input must hold at least one head_patterns result.")
    out: dict[str, Any] = {}
    for key in PATTERNS:
        stacked = np.stack([p[key] for p in per_input])
        out[key] = np.full(stacked.shape[1:], np.nan) if np.all(np.isnan(stacked)) else np.nanmean(stacked, axis=0)
    out["uniform"] = {}
    for key in PATTERNS:
        vals = np.array([p["uniform"][key] for p in per_input])
        out["uniform"][key] = float("nan") if np.all(np.isnan(vals)) else float(np.nanmean(vals))
    return out


def best_heads(scores: dict[str, Any], k: int = 3) -> dict[str, list[dict[str, Any]]]:
    """For each pattern, the ``k`` heads with the highest score (lowest, for ``entropy``: the
    most focused heads): ``[{"layer", "head", "score", "uniform"}]``; patterns that are
    undefined (all NaN) are left out."""
    out = {}
    for key in PATTERNS:
        s = np.asarray(scores[key], np.float64)
        if np.all(np.isnan(s)):
            continue
        flat = np.where(np.isnan(s), np.inf if key == "entropy" else -np.inf, s).reshape(-1)
        order = np.argsort(flat if key == "entropy" else -flat, kind="stable")[:k]
        out[key] = [{"layer": int(o // s.shape[1]), "head": int(o % s.shape[1]), "score": float(flat[o]),
                     "uniform": scores["uniform"][key]} for o in order]
    return out
