"""seqjax.train.optim and early_stopping: decay masks, per-group learning rates, freezing, patience."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seqjax.train.early_stopping import EarlyStopping, early_stopping
from seqjax.train.optim import (
    adamw,
    decay_mask,
    discriminative,
    multi_group,
    param_paths,
    path_labels,
)


def _params():
    return {
        "encoder": {"w_i": jnp.full((2, 3), 2.0), "b": jnp.ones(3), "ln_x_scale": jnp.ones(3)},
        "norm": {"scale": jnp.ones(3)},
        "head": {"kernel": jnp.full((3, 1), 2.0), "bias": jnp.ones(1)},
    }


def test_decay_mask_spares_biases_and_norms():
    mask = decay_mask(_params())
    assert mask == {
        "encoder": {"w_i": True, "b": False, "ln_x_scale": False},
        "norm": {"scale": False},
        "head": {"kernel": True, "bias": False},
    }


def test_adamw_decays_only_the_masked_leaves():
    # Zero gradient: Adam's direction is 0 / (0 + eps) = 0, so the update is -lr * wd * theta.
    params = _params()
    tx = adamw(0.1, weight_decay=0.5)
    updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(updates["encoder"]["w_i"], -0.1 * 0.5 * 2.0, rtol=1e-6)  # -0.1
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1, rtol=1e-6)
    for leaf in (updates["encoder"]["b"], updates["encoder"]["ln_x_scale"], updates["norm"]["scale"], updates["head"]["bias"]):
        np.testing.assert_array_equal(leaf, 0.0)


def test_discriminative_learning_rates_per_group():
    params = _params()
    labels = path_labels(params, [(r"^encoder/", "low")], default="high")
    tx = discriminative(optax.sgd, {"low": 0.01, "high": 0.1}, labels)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["encoder"]["w_i"], -0.01, rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["norm"]["scale"], -0.1, rtol=1e-6)


def test_frozen_group_is_bit_identical_after_training():
    params = _params()
    labels = path_labels(params, [(r"^encoder/", "frozen")], default="train")
    tx = multi_group({"frozen": None, "train": adamw(0.1, weight_decay=0.1)}, labels)
    state = tx.init(params)
    start = jax.tree.map(np.asarray, params)

    @jax.jit
    def step(params, state, i):
        grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5) + i, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for i in range(3):
        params, state = step(params, state, i)
    for name in ("w_i", "b", "ln_x_scale"):
        assert np.array_equal(params["encoder"][name], start["encoder"][name])
    assert not np.array_equal(params["head"]["kernel"], start["head"]["kernel"])


def test_labels_from_an_nnx_state_use_plain_paths():
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Linear(2, 3, rngs=rngs)
            self.head = nnx.Linear(3, 1, rngs=rngs)

    params = nnx.state(Model(nnx.Rngs(0)), nnx.Param)
    assert sorted(jax.tree.leaves(param_paths(params))) == ["embed/bias", "embed/kernel", "head/bias", "head/kernel"]
    labels = path_labels(params, [(r"^embed/", "frozen")], default="train")
    tx = multi_group({"frozen": None, "train": adamw(0.1)}, labels)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(jnp.abs(updates["embed"]["kernel"][...]).max()) == 0.0
    assert float(jnp.abs(updates["head"]["kernel"][...]).min()) > 0.0
    mask = decay_mask(params)
    assert mask["embed"]["kernel"].get_value() is True and mask["embed"]["bias"].get_value() is False


def test_path_rules_that_match_nothing_are_an_error():
    with pytest.raises(ValueError, match="match no parameter"):
        path_labels(_params(), [(r"^decoder/", "frozen")])
    labels = path_labels(_params(), [(r"^decoder/", "frozen")], strict=False)
    assert set(jax.tree.leaves(labels)) == {"default"}
    with pytest.raises(ValueError, match="no transformation"):
        multi_group({"other": optax.sgd(0.1)}, path_labels(_params(), []))


def test_early_stopping_patience_and_min_delta():
    es = EarlyStopping()
    history = []
    for step, loss in enumerate([1.0, 0.8, 0.79, 0.78, 0.70, 0.71]):
        es = early_stopping(es, loss, step, patience=2, min_delta=0.05)
        history.append((es.best, es.waited, es.stop))
    # 0.79 and 0.78 do not beat 0.8 by more than 0.05: two waits -> stop; 0.70 would have improved.
    assert history[:4] == [(1.0, 0, False), (0.8, 0, False), (0.8, 1, False), (0.8, 2, True)]
    assert history[4] == (0.70, 0, False)


def test_early_stopping_max_mode_and_nan():
    es = early_stopping(EarlyStopping(), math.nan, 0, patience=1, mode="max")
    assert es.stop and math.isnan(es.best)  # NaN never improves
    es = early_stopping(EarlyStopping(), 0.5, 0, patience=1, mode="max")
    es = early_stopping(es, 0.6, 1, patience=1, mode="max")
    assert (es.best, es.best_step, es.stop) == (0.6, 1, False)
    with pytest.raises(ValueError, match="patience"):
        early_stopping(es, 0.1, 2, patience=0)
