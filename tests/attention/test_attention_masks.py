"""Mask helpers: shapes, truth tables, PyTorch conversions, the masked softmax, and errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (
    causal_mask,
    combine_masks,
    cross_attention_mask,
    from_torch_additive_mask,
    from_torch_attn_mask,
    from_torch_key_padding_mask,
    masked_softmax,
    padding_mask,
    sequence_mask,
)


def as_int(x):
    return np.asarray(x).astype(int).tolist()


def test_sequence_and_padding_masks():
    lengths = jnp.array([3, 0, 1])
    assert as_int(sequence_mask(lengths, 3)) == [[1, 1, 1], [0, 0, 0], [1, 0, 0]]
    mask = padding_mask(lengths, 3)
    chex.assert_shape(mask, (3, 1, 1, 3))
    assert mask.dtype == jnp.bool_
    assert as_int(mask[:, 0, 0]) == as_int(sequence_mask(lengths, 3))


def test_causal_mask_keeps_the_diagonal():
    mask = causal_mask(3)
    chex.assert_shape(mask, (1, 1, 3, 3))
    assert as_int(mask[0, 0]) == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    np.testing.assert_array_equal(causal_mask(3, 5)[0, 0], np.tril(np.ones((3, 5), bool)))
    # Two new queries at the end of a 4-long cache: offset = s - t.
    assert as_int(causal_mask(2, 4, offset=2)[0, 0]) == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_cross_attention_mask_truth_table():
    mask = cross_attention_mask(jnp.array([2, 1]), jnp.array([3, 2]), 2, 3)
    chex.assert_shape(mask, (2, 1, 2, 3))
    assert as_int(mask[0, 0]) == [[1, 1, 1], [1, 1, 1]]
    assert as_int(mask[1, 0]) == [[1, 1, 0], [0, 0, 0]]  # padded query row: no key at all


def test_combine_masks():
    combined = combine_masks(padding_mask(jnp.array([2, 3]), 3), None, causal_mask(3))
    chex.assert_shape(combined, (2, 1, 3, 3))
    assert as_int(combined[0, 0]) == [[1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert as_int(combined[1, 0]) == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert combine_masks(None, None) is None
    np.testing.assert_array_equal(combine_masks(causal_mask(3)), causal_mask(3))


def test_from_torch_additive_mask():
    additive = np.array([[0.0, -np.inf], [-1e9, 0.0]], np.float32)
    mask = from_torch_additive_mask(additive)
    chex.assert_shape(mask, (1, 1, 2, 2))
    assert as_int(mask[0, 0]) == [[1, 0], [0, 1]]
    per_head = np.zeros((6, 2, 2), np.float32)
    per_head[4, 1, 0] = -np.inf  # batch 1, head 1 (PyTorch packs b * h + head)
    mask = from_torch_additive_mask(per_head, num_heads=3)
    chex.assert_shape(mask, (2, 3, 2, 2))
    assert not mask[1, 1, 1, 0] and int(mask.sum()) == 23


def test_from_torch_boolean_masks_invert():
    attn = np.array([[False, True], [False, False]])  # nn.MultiheadAttention: True = not allowed
    assert as_int(from_torch_attn_mask(attn)[0, 0]) == [[1, 0], [1, 1]]
    kpm = np.array([[False, False, True]])  # True = ignore (padding)
    mask = from_torch_key_padding_mask(kpm)
    chex.assert_shape(mask, (1, 1, 1, 3))
    assert as_int(mask[0, 0, 0]) == [1, 1, 0]
    float_kpm = np.where(kpm, -np.inf, 0.0).astype(np.float32)
    np.testing.assert_array_equal(from_torch_key_padding_mask(float_kpm), mask)


def test_masked_softmax_rows_and_gradients():
    logits = jnp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    mask = jnp.array([[True, True, True], [True, False, True], [False, False, False]])
    w = masked_softmax(logits, mask)
    assert w.dtype == jnp.float32
    np.testing.assert_allclose(w.sum(-1), [1.0, 1.0, 0.0], atol=1e-6)
    assert w[1, 1] == 0.0
    np.testing.assert_allclose(w[1], np.array([np.exp(1), 0, np.exp(3)]) / (np.exp(1) + np.exp(3)), rtol=1e-6)
    g = jax.grad(lambda z: jnp.sum(masked_softmax(z, mask) * jnp.arange(3.0)))(logits)
    assert np.all(np.isfinite(g)) and np.all(g[2] == 0)
    # bfloat16 logits: the mask fill is float32's most negative finite value, applied after the cast.
    wb = masked_softmax(logits.astype(jnp.bfloat16) * 1e30, mask)
    assert np.all(np.isfinite(wb))


def test_errors():
    with pytest.raises(ValueError, match="must hold integers"):
        sequence_mask(jnp.array([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\]"):
        padding_mask(jnp.array([4, 1]), 3)
    with pytest.raises(ValueError, match=r"lengths must have shape \[batch\]"):
        padding_mask(jnp.array([[1]]), 3)
    with pytest.raises(ValueError, match="max_len must be a non-negative integer"):
        padding_mask(jnp.array([1]), 2.5)
    with pytest.raises(ValueError, match="q_len"):
        causal_mask(-1)
    with pytest.raises(ValueError, match="same batch size"):
        cross_attention_mask(jnp.array([1, 2]), jnp.array([1]), 2, 2)
    with pytest.raises(ValueError, match="do not broadcast together"):
        combine_masks(np.ones((2, 1, 1, 3), bool), np.ones((1, 1, 3, 4), bool))
    with pytest.raises(ValueError, match="boolean"):
        combine_masks(np.ones((3, 3), np.int32))
    with pytest.raises(ValueError, match="additive bias"):
        from_torch_additive_mask(np.array([[0.0, -0.5]], np.float32))
    with pytest.raises(ValueError, match="floating-point additive mask"):
        from_torch_additive_mask(np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="pass num_heads"):
        from_torch_attn_mask(np.zeros((4, 2, 2), bool))
    with pytest.raises(ValueError, match="num_heads = 3 must divide"):
        from_torch_attn_mask(np.zeros((4, 2, 2), bool), num_heads=3)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \[batch, kv_len\]"):
        from_torch_key_padding_mask(np.zeros(3, bool))
