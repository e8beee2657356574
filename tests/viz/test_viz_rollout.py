"""attention_rollout against a plain loop and against its definition on a hand example."""

import numpy as np
import pytest

from seqjax.viz import attention_rollout


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _loop_reference(att, r):
    """Abnar & Zuidema's recipe written as scalar loops, one layer after the other."""
    layers, heads, t, _ = att.shape
    out = np.zeros((layers, t, t))
    prev = None
    for l in range(layers):
        a = [[0.0] * t for _ in range(t)]
        for i in range(t):
            for j in range(t):
                mean = sum(att[l, h, i, j] for h in range(heads)) / heads
                a[i][j] = (1 - r) * mean + r * (1.0 if i == j else 0.0)
            s = sum(a[i])
            a[i] = [v / s for v in a[i]]
        if prev is None:
            cur = a
        else:
            cur = [[sum(a[i][k] * prev[k][j] for k in range(t)) for j in range(t)] for i in range(t)]
        out[l] = cur
        prev = cur
    return out


@pytest.mark.parametrize("r", [0.0, 0.5, 0.8])
def test_rollout_matches_loop_reference(r):
    att = _softmax(np.random.default_rng(1).normal(size=(3, 2, 5, 5)) * 2)
    np.testing.assert_allclose(attention_rollout(att, residual_weight=r), _loop_reference(att, r),
                               atol=1e-12)


def test_rollout_hand_example():
    # Two layers, one head, two tokens. Layer 0: everyone reads token 0; layer 1: everyone
    # reads token 1. With r = 0.5:
    #   A0 = [[1, 0], [0.5, 0.5]],  A1 = [[0.5, 0.5], [0, 1]],
    #   R1 = A1 A0 = [[0.75, 0.25], [0.5, 0.5]].
    w = np.array([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])
    out = attention_rollout(w)
    np.testing.assert_allclose(out[0], [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(out[1], [[0.75, 0.25], [0.5, 0.5]])


def test_rollout_rows_stochastic_and_causal_stays_lower_triangular():
    t = 6
    z = np.random.default_rng(2).normal(size=(4, 3, t, t))
    z = np.where(np.tril(np.ones((t, t), bool)), z, -np.inf)
    out = attention_rollout(_softmax(z))
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-12)
    assert np.abs(np.triu(out, k=1)).max() == 0.0


def test_rollout_without_residual_is_the_product_of_head_means():
    att = _softmax(np.random.default_rng(3).normal(size=(3, 4, 4, 4)))
    m = att.mean(1)
    np.testing.assert_allclose(attention_rollout(att, residual_weight=0.0)[-1], m[2] @ m[1] @ m[0],
                               atol=1e-12)


def test_rollout_rejects_bad_input():
    with pytest.raises(ValueError, match="layers, heads, t, t"):
        attention_rollout(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="layers, heads, t, t"):
        attention_rollout(np.ones((1, 1, 3, 4)) / 4)
    with pytest.raises(ValueError, match="residual_weight"):
        attention_rollout(np.ones((1, 1, 2, 2)) / 2, residual_weight=1.5)
