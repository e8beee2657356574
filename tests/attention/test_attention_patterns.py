"""seqjax.attention.patterns: per-head pattern scores against plain Python loops, known patterns,
the uniform reference, the causal conventions, the best-head ranking and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqjax.attention.patterns import PATTERNS, average_patterns, best_heads, head_patterns, uniform_weights


def _random_weights(l, h, n, causal, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(l, h, n, n)) * 2
    if causal:
        z = np.where(np.tril(np.ones((n, n))) > 0, z, -np.inf)
    w = np.exp(z - z.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def _loop(A, causal):
    """The statistics of one head by explicit loops."""
    n = A.shape[0]
    rows = range(1, n) if causal else range(n)
    out = {}
    out["previous"] = np.mean([A[i, i - 1] for i in rows if i >= 1])
    out["next"] = math.nan if causal else np.mean([A[i, i + 1] for i in rows if i <= n - 2])
    out["self"] = np.mean([A[i, i] for i in rows])
    out["first"] = np.mean([A[i, 0] for i in rows])
    out["last"] = math.nan if causal else np.mean([A[i, n - 1] for i in rows])
    out["entropy"] = np.mean([-sum(A[i, j] * math.log(A[i, j]) for j in range(n) if A[i, j] > 0) for i in rows])
    out["distance"] = np.mean([sum(abs(i - j) * A[i, j] for j in range(n)) for i in rows])
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_scores_equal_loops(causal):
    w = _random_weights(2, 3, 7, causal)
    got = head_patterns(w, causal=causal)
    for layer in range(2):
        for head in range(3):
            ref = _loop(w[layer, head], causal)
            for key in PATTERNS:
                if math.isnan(ref[key]):
                    assert math.isnan(got[key][layer, head]), key
                else:
                    assert got[key][layer, head] == pytest.approx(ref[key], rel=1e-12), key
    uniform = _loop(uniform_weights(7, causal), causal)
    for key in PATTERNS:
        assert (math.isnan(uniform[key]) and math.isnan(got["uniform"][key])) or \
            got["uniform"][key] == pytest.approx(uniform[key]), key


def test_known_patterns_and_uniform_reference():
    n = 6
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1
    nxt = np.eye(n, k=1)
    nxt[-1, -1] = 1
    first = np.zeros((n, n))
    first[:, 0] = 1
    w = np.stack([prev, nxt, first, np.full((n, n), 1 / n)])[None]  # [1, 4, n, n]
    s = head_patterns(w)
    assert s["previous"][0].tolist() == pytest.approx([1.0, 0.0, 1 / 5, 1 / 6])  # rows 1..5
    assert s["next"][0, 1] == 1.0 and s["first"][0, 2] == 1.0 and s["entropy"][0, 2] == 0.0
    assert s["entropy"][0, 3] == pytest.approx(math.log(n))
    assert s["uniform"]["self"] == pytest.approx(1 / n) and s["uniform"]["entropy"] == pytest.approx(math.log(n))
    # uniform distance: mean over i of mean_j |i - j|
    assert s["uniform"]["distance"] == pytest.approx(np.mean([np.mean([abs(i - j) for j in range(n)]) for i in range(n)]))
    best = best_heads(s, k=1)
    assert best["previous"][0]["head"] == 0 and best["next"][0]["head"] == 1 and best["first"][0]["head"] == 2
    assert best["entropy"][0]["score"] == 0.0  # the most focused head, a one-hot one
    avg = average_patterns([s, s])
    np.testing.assert_allclose(avg["previous"], s["previous"])


def test_causal_conventions_and_refusals():
    w = _random_weights(1, 2, 5, causal=True)
    s = head_patterns(w, causal=True)
    assert np.all(np.isnan(s["next"])) and np.all(np.isnan(s["last"]))
    assert "next" not in best_heads(s)
    with pytest.raises(ValueError, match="above the diagonal"):
        head_patterns(_random_weights(1, 1, 5, causal=False), causal=True)
    with pytest.raises(ValueError, match="sum to 1"):
        head_patterns(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"\[layers, heads, n, n\]"):
        head_patterns(np.ones((4, 4)) / 4)
