"""Distillation losses against PyTorch, and the T^2 gradient-scale claim by finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.train.finetune.distillation import (
    distillation_loss,
    logit_distillation_loss,
    logit_mse_loss,
    soft_target_loss,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(6, 5)).astype(np.float32) * 2
V = RNG.normal(size=(6, 5)).astype(np.float32) * 3
Y = RNG.integers(0, 5, size=6)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.5])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_hinton_loss_against_torch(T, alpha):
    z, v = torch.tensor(Z, requires_grad=True), torch.tensor(V)
    soft = T * T * F.kl_div(F.log_softmax(z / T, -1), F.softmax(v / T, -1), reduction="batchmean")
    ref = alpha * soft + (1 - alpha) * F.cross_entropy(z, torch.tensor(Y))
    ref.backward()
    got, grad = jax.value_and_grad(lambda z: distillation_loss(z, jnp.asarray(V), jnp.asarray(Y), temperature=T,
                                                               alpha=alpha))(jnp.asarray(Z))
    np.testing.assert_allclose(float(got), float(ref.detach()), rtol=1e-5)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_tang_loss_against_torch():
    z, v = torch.tensor(Z, requires_grad=True), torch.tensor(V)
    alpha = 0.7
    ref = alpha * ((v - z) ** 2).sum(-1).mean() + (1 - alpha) * F.cross_entropy(z, torch.tensor(Y))
    ref.backward()
    got, grad = jax.value_and_grad(lambda z: logit_distillation_loss(z, jnp.asarray(V), jnp.asarray(Y), alpha=alpha))(
        jnp.asarray(Z))
    np.testing.assert_allclose(float(got), float(ref.detach()), rtol=1e-5)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-4, atol=1e-5)


def finite_difference_grad(f, z, eps=1e-2):
    """Central differences of f at z, in float64 numpy."""
    z = np.asarray(z, np.float64)
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        d = np.zeros_like(z)
        d[idx] = eps
        g[idx] = (f(z + d) - f(z - d)) / (2 * eps)
    return g


def test_t_squared_keeps_the_gradient_scale():
    """Hinton et al.: the soft-target gradient scales as 1/T^2, so multiplying by T^2 makes it
    independent of T; for large T it tends to (z - v)/K with zero-mean logits."""
    z = Z[:2] - Z[:2].mean(-1, keepdims=True)
    v = V[:2] - V[:2].mean(-1, keepdims=True)
    K, b = z.shape[1], z.shape[0]
    limit = (z - v) / K / b                              # batch mean: one 1/b per row

    def np_loss(zz, T, scale):
        def log_softmax(a):
            a = a - a.max(-1, keepdims=True)
            return a - np.log(np.exp(a).sum(-1, keepdims=True))
        lp, lq = log_softmax(v / T), log_softmax(zz / T)
        return (np.exp(lp) * (lp - lq)).sum(-1).mean() * (T * T if scale else 1)

    grads, bare = {}, {}
    for T in (10.0, 20.0, 40.0):
        fd = finite_difference_grad(lambda zz: np_loss(zz, T, True), z)
        g = np.asarray(jax.grad(lambda zz: soft_target_loss(zz, jnp.asarray(v), temperature=T))(jnp.asarray(z)))
        np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-6)       # autodiff == finite differences
        grads[T] = g
        bare[T] = finite_difference_grad(lambda zz: np_loss(zz, T, False), z)
    # with T^2: converging to the logit-matching limit as T grows, and near-equal across T
    errs = [np.abs(grads[T] - limit).max() / np.abs(limit).max() for T in (10.0, 20.0, 40.0)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02      # the error falls as 1/T
    assert np.abs(grads[20.0] - grads[40.0]).max() < 0.02 * np.abs(grads[40.0]).max()
    # without it: each doubling of T divides the gradient by ~4
    for lo, hi in ((10.0, 20.0), (20.0, 40.0)):
        ratio = np.abs(bare[lo]).sum() / np.abs(bare[hi]).sum()
        assert ratio == pytest.approx(4.0, rel=0.05)


def test_masks_and_zero_loss():
    z = jnp.asarray(np.stack([Z, V]))                   # [2, 6, 5]
    mask = jnp.array([[True] * 6, [True] * 3 + [False] * 3])
    full = soft_target_loss(z, z[::-1], temperature=3.0, mask=mask)
    manual = soft_target_loss(jnp.concatenate([z[0], z[1, :3]]), jnp.concatenate([z[1], z[0, :3]]), temperature=3.0)
    np.testing.assert_allclose(full, manual, rtol=1e-6)
    assert float(soft_target_loss(z, z, temperature=2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(logit_mse_loss(z, z)) == 0.0
    # the teacher gets no gradient
    g = jax.grad(lambda v: distillation_loss(jnp.asarray(Z), v, jnp.asarray(Y)))(jnp.asarray(V))
    assert not np.any(np.asarray(g))


def test_bad_inputs():
    with pytest.raises(ValueError, match="temperature"):
        soft_target_loss(jnp.asarray(Z), jnp.asarray(V), temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        soft_target_loss(jnp.asarray(Z), jnp.asarray(V[:, :4]))
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(jnp.asarray(Z), jnp.asarray(V), jnp.asarray(Y), alpha=1.5)
    with pytest.raises(ValueError, match="labels must be integer"):
        distillation_loss(jnp.asarray(Z), jnp.asarray(V), jnp.asarray(Y, jnp.float32))
    with pytest.raises(ValueError, match="mask must have"):
        logit_mse_loss(jnp.asarray(Z), jnp.asarray(V), mask=jnp.ones(5, bool))
