"""seqjax.train.losses: masked cross-entropy, label smoothing (against PyTorch), MSE, bits per char."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.train.losses import bits_per_character, cross_entropy, mse, perplexity, smoothed_targets

K = 7


def _data(seed=0, shape=(3, 5)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*shape, K)).astype(np.float32) * 2
    labels = rng.integers(0, K, size=shape)
    mask = rng.random(shape) < 0.7
    mask[:, 0] = True
    return logits, labels, mask


def test_smoothed_target_conventions_by_hand():
    # K = 4, alpha = 0.1. Uniform: 0.9 + 0.025 on the target, 0.025 elsewhere (the seed's prose
    # example [0.01, 0.01, 0.97, 0.01] is wrong for either convention). Others: 0.9 and 0.1 / 3.
    uniform = smoothed_targets(jnp.array(2), 4, 0.1, "uniform")
    others = smoothed_targets(jnp.array(2), 4, 0.1, "others")
    np.testing.assert_allclose(uniform, [0.025, 0.025, 0.925, 0.025], rtol=1e-6)
    np.testing.assert_allclose(others, [0.1 / 3, 0.1 / 3, 0.9, 0.1 / 3], rtol=1e-6)
    np.testing.assert_allclose([jnp.sum(uniform), jnp.sum(others)], [1.0, 1.0], rtol=1e-6)


def test_cross_entropy_uniform_logits_is_log_k():
    logits = jnp.zeros((2, 3, K))
    labels = jnp.zeros((2, 3), jnp.int32)
    np.testing.assert_allclose(cross_entropy(logits, labels), math.log(K), rtol=1e-6)
    # Smoothing does not change the loss of a uniform prediction (any target distribution).
    np.testing.assert_allclose(cross_entropy(logits, labels, label_smoothing=0.3), math.log(K), rtol=1e-6)


def test_mask_averages_over_valid_tokens_and_ignores_pad_labels():
    logits, labels, mask = _data()
    labels_with_pad = np.where(mask, labels, -100)  # out-of-range pad id at masked positions
    per_token = cross_entropy(logits, labels_with_pad, mask=mask, reduction="none")
    assert np.all(np.isfinite(per_token)) and np.all(np.asarray(per_token)[~mask] == 0)
    manual = -jax.nn.log_softmax(logits)[np.arange(3)[:, None], np.arange(5), labels]
    np.testing.assert_allclose(
        cross_entropy(logits, labels_with_pad, mask=mask), np.sum(manual * mask) / mask.sum(), rtol=1e-5
    )
    grads = jax.grad(lambda z: cross_entropy(z, labels_with_pad, mask=mask, label_smoothing=0.1))(logits)
    assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[~mask] == 0)
    # All padding: 0, not NaN.
    assert float(cross_entropy(logits, labels, mask=np.zeros_like(mask))) == 0.0


def test_bfloat16_logits_are_computed_in_float32():
    logits, labels, _ = _data()
    loss16 = cross_entropy(jnp.asarray(logits, jnp.bfloat16), labels)
    assert loss16.dtype == jnp.float32
    np.testing.assert_allclose(loss16, cross_entropy(logits, labels), rtol=2e-2)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch(alpha):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, labels, mask = _data(seed=1)
    ours = cross_entropy(logits, labels, label_smoothing=alpha)
    theirs = F.cross_entropy(torch.tensor(logits.reshape(-1, K)), torch.tensor(labels.reshape(-1)), label_smoothing=alpha)
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-5)
    # Masked mean == PyTorch's ignore_index mean over the non-ignored tokens.
    ours_masked = cross_entropy(logits, labels, mask=mask, label_smoothing=alpha)
    ignored = torch.tensor(np.where(mask, labels, -100).reshape(-1))
    theirs_masked = F.cross_entropy(torch.tensor(logits.reshape(-1, K)), ignored, label_smoothing=alpha, ignore_index=-100)
    np.testing.assert_allclose(ours_masked, theirs_masked.item(), rtol=1e-5)


def test_others_convention_by_formula():
    logits, labels, _ = _data(seed=2)
    logp = jax.nn.log_softmax(jnp.asarray(logits))
    onehot = jax.nn.one_hot(labels, K)
    q = 0.8 * onehot + 0.2 / (K - 1) * (1 - onehot)
    np.testing.assert_allclose(
        cross_entropy(logits, labels, label_smoothing=0.2, convention="others"), -jnp.mean(jnp.sum(q * logp, -1)), rtol=1e-5
    )


def test_bad_inputs_are_named():
    logits, labels, mask = _data()
    with pytest.raises(ValueError, match="labels must be integer"):
        cross_entropy(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match="labels must have shape"):
        cross_entropy(logits, labels[:, :4])
    with pytest.raises(ValueError, match="mask must be boolean"):
        cross_entropy(logits, labels, mask=mask.astype(np.int32))
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(logits, labels, label_smoothing=1.0)


def test_mse_with_mask_and_shapes():
    pred = jnp.array([[1.0, 2.0], [3.0, 5.0]])
    target = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(mse(pred, target), (0 + 4 + 9 + 25) / 4)
    mask = jnp.array([[True], [False]])  # broadcast over the last axis: only row 0 counts
    np.testing.assert_allclose(mse(pred, target, mask=mask), (0 + 4) / 2)
    with pytest.raises(ValueError, match="same shape"):
        mse(pred, target[0])


def test_bits_per_character_and_perplexity():
    assert bits_per_character(math.log(2)) == pytest.approx(1.0)
    assert bits_per_character(math.log(256)) == pytest.approx(8.0)
    np.testing.assert_allclose(perplexity(math.log(50.0)), 50.0, rtol=1e-6)
