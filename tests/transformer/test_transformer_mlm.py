"""The MLM corruption rule (15% of eligible positions; of those 80% [MASK], 10% random, 10%
unchanged) over many draws; specials and padding never selected; deterministic per key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.transformer import mlm_loss, mlm_masking

PAD, CLS, SEP, MASK = 0, 1, 2, 3
VOCAB = 1000
SPECIALS = (PAD, CLS, SEP, MASK)


def batch(seed, b=256, t=64):
    """[CLS] w .. w [SEP] [PAD] ..: random words, random lengths (numpy: no compilation)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, (b, t))
    lengths = rng.integers(8, t + 1, (b,))
    pos = np.arange(t)[None]
    ids = np.where(pos == 0, CLS, ids)
    ids = np.where(pos == lengths[:, None] - 1, SEP, ids)
    return jnp.asarray(np.where(pos >= lengths[:, None], PAD, ids), jnp.int32)


def test_mlm_statistics_and_specials():
    ids = batch(0)
    inputs, labels, weights = mlm_masking(
        jax.random.key(1), ids, vocab_size=VOCAB, mask_token_id=MASK, special_ids=SPECIALS
    )
    ids, inputs, labels, w = map(np.asarray, (ids, inputs, labels, weights))
    np.testing.assert_array_equal(labels, ids)
    assert w.dtype == np.float32 and set(np.unique(w)) <= {0.0, 1.0}
    eligible = ~np.isin(ids, SPECIALS)
    selected = w > 0
    assert not (selected & ~eligible).any(), "a special token or padding was selected"
    np.testing.assert_array_equal(inputs[~selected], ids[~selected])  # unselected untouched
    n_eligible, n_sel = eligible.sum(), selected.sum()
    assert n_eligible > 8000
    assert abs(n_sel / n_eligible - 0.15) < 0.01, n_sel / n_eligible
    masked = (inputs == MASK) & selected
    unchanged = (inputs == ids) & selected
    random = selected & ~masked & ~unchanged
    assert abs(masked.sum() / n_sel - 0.8) < 0.025
    assert abs(unchanged.sum() / n_sel - 0.1) < 0.02  # includes random draws equal to the original (p = 1/1000)
    assert abs(random.sum() / n_sel - 0.1) < 0.02
    assert (inputs[random] >= 0).all() and (inputs[random] < VOCAB).all()


def test_mlm_is_deterministic_per_key_and_respects_token_mask():
    ids = batch(2)  # the shape of the test above: no new compilation
    kw = dict(vocab_size=VOCAB, mask_token_id=MASK, special_ids=(CLS, SEP, MASK))
    a = mlm_masking(jax.random.key(3), ids, **kw)
    b = mlm_masking(jax.random.key(3), ids, **kw)
    c = mlm_masking(jax.random.key(4), ids, **kw)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])
    # padding excluded by a token mask instead of a special id
    token_mask = ids != PAD
    _, _, w = mlm_masking(jax.random.key(5), ids, token_mask=token_mask, **kw)
    assert not np.asarray(w)[~np.asarray(token_mask)].any()


def test_mlm_loss_weights_only_selected_positions():
    logits = jnp.asarray(np.random.default_rng(6).normal(size=(2, 3, 5)), jnp.float32)
    labels = jnp.array([[1, 2, 3], [4, 0, 1]])
    weights = jnp.array([[1.0, 0, 0], [0, 0, 1.0]])
    logp = jax.nn.log_softmax(logits)
    expected = -(logp[0, 0, 1] + logp[1, 2, 1]) / 2
    np.testing.assert_allclose(mlm_loss(logits, labels, weights), expected, rtol=1e-6)


def test_mlm_errors():
    ids = jnp.zeros((2, 4), jnp.int32)
    with pytest.raises(ValueError, match="mask_token_id"):
        mlm_masking(jax.random.key(0), ids, vocab_size=10, mask_token_id=10)
    with pytest.raises(ValueError, match="<= 1"):
        mlm_masking(jax.random.key(0), ids, vocab_size=10, mask_token_id=3, mask_token_frac=0.9, random_token_frac=0.2)
    with pytest.raises(ValueError, match="integers"):
        mlm_masking(jax.random.key(0), ids.astype(jnp.float32), vocab_size=10, mask_token_id=3)
