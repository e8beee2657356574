"""seqjax.train.step: accumulation equals one large batch, mixed precision, remat, donation, NNX."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import train_tiny
from seqjax.train.losses import mse
from seqjax.train.step import make_eval_step, make_train_step, module_loss, split_params


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def test_accumulation_over_micro_batches_equals_one_large_batch():
    # SGD with lr 1: the update is exactly -g, so comparing parameters compares gradients.
    params = train_tiny.mlp_init(0)
    batch = train_tiny.batch_at(0)
    opt = optax.sgd(1.0)
    one = make_train_step(train_tiny.mlp_loss, opt, donate=False)
    four = make_train_step(train_tiny.mlp_loss, opt, accumulate=4, donate=False)
    p1, _, m1 = one(params, opt.init(params), batch)
    p4, _, m4 = four(params, opt.init(params), batch)
    np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-6)
    np.testing.assert_allclose(m4["grad_norm"], m1["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p4), jax.tree.leaves(p1)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_accumulation_rejects_a_batch_it_cannot_split():
    params = train_tiny.mlp_init(0)
    opt = optax.sgd(0.1)
    step = make_train_step(train_tiny.mlp_loss, opt, accumulate=3, donate=False)
    with pytest.raises(ValueError, match="divisible by 3"):
        step(params, opt.init(params), train_tiny.batch_at(0))


def test_mixed_precision_trains_in_bfloat16_with_float32_master_params():
    seen = []

    def loss_fn(params, batch, key):
        seen.append(params["cell"]["w_h"].dtype)  # recorded at trace time
        return train_tiny.loss_fn(params, batch, key)

    params = train_tiny.init(0)
    opt = optax.adam(3e-2)
    step = make_train_step(loss_fn, opt, compute_dtype=jnp.bfloat16)
    opt_state = opt.init(params)
    losses = []
    for i in range(40):
        params, opt_state, metrics = step(params, opt_state, train_tiny.batch_at(i, batch_size=16), jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert seen and all(d == jnp.bfloat16 for d in seen)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(opt_state) if hasattr(leaf, "dtype") and leaf.ndim)
    assert metrics["loss"].dtype == jnp.float32
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_float16_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="loss scaling"):
        make_train_step(train_tiny.loss_fn, optax.sgd(0.1), compute_dtype=jnp.float16)


def test_remat_gives_the_same_update_and_is_in_the_program():
    params = train_tiny.mlp_init(0)
    batch = train_tiny.batch_at(0)
    opt = optax.sgd(1.0)
    plain = make_train_step(train_tiny.mlp_loss, opt, donate=False)
    remat = make_train_step(train_tiny.mlp_loss, opt, remat=True, donate=False)
    key = jax.random.key(3)
    p0, _, m0 = plain(params, opt.init(params), batch, key)
    p1, _, m1 = remat(params, opt.init(params), batch, key)
    np.testing.assert_allclose(m1["loss"], m0["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    jaxpr = str(jax.make_jaxpr(remat.jitted)(params, opt.init(params), batch, key))
    assert "checkpoint" in jaxpr or "remat" in jaxpr


def test_donation_consumes_the_inputs():
    params = train_tiny.mlp_init(0)
    opt = optax.adam(1e-2)
    opt_state = opt.init(params)
    step = make_train_step(train_tiny.mlp_loss, opt)
    new_params, new_state, _ = step(params, opt_state, train_tiny.batch_at(0))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(opt_state))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new_params))


def test_has_aux_metrics_are_averaged_over_micro_batches():
    def loss_fn(params, batch, key):
        xs, ys = batch
        return train_tiny.mlp_loss(params, batch, key), {"target_mean": jnp.mean(ys)}

    params = train_tiny.mlp_init(0)
    batch = train_tiny.batch_at(0)
    opt = optax.sgd(0.0)
    step = make_train_step(loss_fn, opt, has_aux=True, accumulate=2, donate=False)
    _, _, metrics = step(params, opt.init(params), batch)
    np.testing.assert_allclose(metrics["target_mean"], jnp.mean(batch[1]), rtol=1e-6)


def test_eval_step_is_the_loss_without_an_update():
    params = train_tiny.mlp_init(0)
    batch = train_tiny.batch_at(0)
    metrics = make_eval_step(train_tiny.mlp_loss)(params, batch)
    np.testing.assert_allclose(metrics["loss"], train_tiny.mlp_loss(params, batch, None), rtol=1e-6)


def test_loss_must_be_a_scalar():
    step = make_train_step(lambda p, b, k: jnp.square(p["w"]), optax.sgd(0.1), donate=False)
    with pytest.raises(ValueError, match="scalar"):
        step({"w": jnp.ones(3)}, optax.sgd(0.1).init({"w": jnp.ones(3)}), jnp.ones((2, 1)))


class _Linear(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 1, rngs=rngs)

    def __call__(self, x):
        return self.dense(x)[:, 0]


def test_functional_nnx_pattern_trains_a_module():
    model = _Linear(nnx.Rngs(0))
    graphdef, params, rest = split_params(model)
    loss_fn = module_loss(graphdef, lambda m, batch, key: mse(m(batch[0]), batch[1]), rest)
    opt = optax.sgd(0.1)
    step = make_train_step(loss_fn, opt, accumulate=2)
    xs = jax.random.normal(jax.random.key(0), (8, 3))
    batch = (xs, xs @ jnp.array([1.0, -2.0, 0.5]))
    opt_state = opt.init(params)
    first = None
    for _ in range(30):
        params, opt_state, metrics = step(params, opt_state, batch)
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < 0.1 * first
    nnx.update(model, params)  # the trained parameters go back into the module
    np.testing.assert_allclose(model(xs), nnx.merge(graphdef, params, rest)(xs), rtol=1e-6)
