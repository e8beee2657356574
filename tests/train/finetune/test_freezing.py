"""Freezing by pattern, BitFit, layer groups, discriminative learning rates and gradual unfreezing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seqjax.nn import BertConfig, BertForSequenceClassification
from seqjax.train.finetune.freezing import (
    bitfit,
    bitfit_mask,
    count_trainable,
    discriminative_lrs,
    encoder_layer_groups,
    freeze,
    layer_groups,
    trainable_mask,
    ulmfit_optimizer,
    unfreeze_at,
    unfrozen_groups,
)
from seqjax.train.losses import cross_entropy
from seqjax.train.optim import adamw, param_paths
from seqjax.train.schedules import slanted_triangular
from seqjax.train.step import make_train_step

BERT = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=24, max_position_embeddings=12)
IDS = jnp.array([[1, 5, 7, 9, 2, 3], [4, 4, 8, 1, 0, 0], [3, 9, 9, 2, 5, 1], [7, 2, 6, 1, 1, 0]], jnp.int32)
LABELS = jnp.array([0, 1, 2, 1])


@pytest.fixture(scope="module")
def bert():
    graphdef, params = nnx.split(BertForSequenceClassification(BERT, 3, rngs=nnx.Rngs(0)), nnx.Param)
    return graphdef, params


def train(graphdef, params, optimizer, steps=3):
    def loss(p, batch, key):
        return cross_entropy(nnx.merge(graphdef, p)(batch[0]), batch[1])

    before = jax.tree.map(np.array, params)
    step = make_train_step(loss, optimizer, donate=False)
    state = optimizer.init(params)
    for _ in range(steps):
        params, state, _ = step(params, state, (IDS, LABELS), None)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params))]
    paths = jax.tree.leaves(param_paths(params))
    return {p for p, c in zip(paths, changed) if c}, set(paths)


def test_bitfit_trains_only_biases(bert):
    graphdef, params = bert
    changed, paths = train(graphdef, params, bitfit(optax.adam(1e-2), params, also="classifier/*"))
    biases = {p for p in paths if p.rsplit("/", 1)[1] in ("b", "bias") or p.rsplit("/", 1)[1].startswith("b_")}
    assert "bert/embeddings/norm/bias" in biases and "bert/encoder/stack/layers/1/self_attn/b_v" in biases
    assert changed == biases | {"classifier/w"}
    mask = bitfit_mask(params)
    # biases of BERT by hand: embeddings LN (16), per layer q,k,v,o (4*16) + ffn (24 + 16) + 2 LN (2*16), pooler 16
    d, ff = 16, 24
    assert count_trainable(params, mask) == d + 2 * (4 * d + ff + d + 2 * d) + d + 3


def test_freeze_patterns(bert):
    graphdef, params = bert
    changed, paths = train(graphdef, params, freeze(optax.adam(1e-2), params, frozen=["bert/embeddings/*", "*/layers/0/*"]))
    frozen = {p for p in paths if p.startswith("bert/embeddings/") or "/layers/0/" in p}
    assert changed == paths - frozen
    changed, _ = train(graphdef, params, freeze(optax.adam(1e-2), params, trainable="re:^classifier/"))
    assert changed == {"classifier/w", "classifier/b"}
    with pytest.raises(ValueError, match=r"frozen \['\*/layer/0/\*'\] match no parameter"):
        freeze(optax.adam(1e-2), params, frozen="*/layer/0/*")
    with pytest.raises(ValueError, match="exactly one"):
        trainable_mask(params, trainable="*", frozen="*")


def test_frozen_groups_hold_no_optimizer_state(bert):
    _, params = bert
    tx = freeze(optax.adam(1e-2), params, trainable="classifier/*")
    n_state = sum(x.size for x in jax.tree.leaves(tx.init(params)) if x.ndim > 0)
    assert n_state == 2 * (16 * 3 + 3)         # Adam's two moments of the classifier only


def test_layer_groups_bottom_to_top(bert):
    _, params = bert
    labels = encoder_layer_groups(params, BERT.num_hidden_layers)
    flat = dict(zip(jax.tree.leaves(param_paths(params)), jax.tree.leaves(labels)))
    assert flat["bert/embeddings/token"] == 0 and flat["bert/embeddings/norm/scale"] == 0
    assert flat["bert/encoder/stack/layers/0/ffn/w_1"] == 1 and flat["bert/encoder/stack/layers/1/norm_2/bias"] == 2
    assert flat["bert/pooler/w"] == 3 and flat["classifier/b"] == 3
    with pytest.raises(ValueError, match="match no group"):
        layer_groups(params, ["*embedding*"])
    with pytest.raises(ValueError, match="match no parameter"):
        layer_groups(params, ["*embedding*", "*/layers/7/*", "*"])


def test_discriminative_rates_decay_by_2_6():
    lrs = discriminative_lrs(1e-3, 4)
    np.testing.assert_allclose(lrs, [1e-3 / 2.6**3, 1e-3 / 2.6**2, 1e-3 / 2.6, 1e-3])
    params = {f"g{i}": jnp.zeros(3) for i in range(4)}
    labels = {f"g{i}": i for i in range(4)}
    tx = ulmfit_optimizer(optax.sgd, labels, learning_rate=1.0)     # SGD: update = -lr_g * grad
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params))
    got = [-float(updates[f"g{i}"][0]) for i in range(4)]
    np.testing.assert_allclose(got, [2.6**-3, 2.6**-2, 2.6**-1, 1.0], rtol=1e-6)


def test_gradual_unfreezing_one_group_per_stage_with_fresh_adam():
    G, stage = 3, 2
    params = {f"g{i}": jnp.zeros(2) for i in range(G)}
    labels = {f"g{i}": i for i in range(G)}
    lr = 0.1
    tx = ulmfit_optimizer(lambda lr: optax.adam(lr), labels, learning_rate=lr, steps_per_stage=stage)
    state = tx.init(params)
    rng = np.random.default_rng(0)
    history = []
    for step in range(3 * stage):
        grads = {k: jnp.asarray(rng.normal(size=2), jnp.float32) for k in params}
        updates, state = tx.update(grads, state, params)
        history.append((grads, updates))
        moving = [g for g in range(G) if bool(jnp.any(updates[f"g{g}"] != 0))]
        assert moving == unfrozen_groups(step, G, stage), step
    # the first update of group g (at step (G-1-g)*stage) is fresh Adam's first step: lr_g * g/|g|
    for g in range(G):
        start = (G - 1 - g) * stage
        grads, updates = history[start]
        lr_g = lr / 2.6 ** (G - 1 - g)
        np.testing.assert_allclose(updates[f"g{g}"], -lr_g * np.sign(grads[f"g{g}"]), rtol=1e-4)


def test_unfreezing_reads_the_schedule_at_the_global_step():
    stlr = slanted_triangular(1.0, 20, cut_frac=0.2, ratio=4)
    labels = {"low": 0, "top": 1}
    params = {"low": jnp.zeros(1), "top": jnp.zeros(1)}
    tx = ulmfit_optimizer(optax.sgd, labels, learning_rate=stlr, steps_per_stage=5)
    state = tx.init(params)
    for step in range(8):
        updates, state = tx.update({"low": jnp.ones(1), "top": jnp.ones(1)}, state, params)
        assert -float(updates["top"][0]) == pytest.approx(float(stlr(step)), rel=1e-6)
        want_low = 0.0 if step < 5 else float(stlr(step)) / 2.6
        assert -float(updates["low"][0]) == pytest.approx(want_low, rel=1e-6, abs=1e-9)


def test_unfreeze_at_rejects_bad_step():
    with pytest.raises(ValueError, match="step"):
        unfreeze_at(optax.sgd(1.0), -1)
    with pytest.raises(ValueError, match="group indices"):
        ulmfit_optimizer(optax.sgd, {"a": -1}, learning_rate=1.0)


def test_discriminative_with_adamw_trains_a_real_bert(bert):
    graphdef, params = bert
    labels = encoder_layer_groups(params, BERT.num_hidden_layers)
    tx = ulmfit_optimizer(lambda lr: adamw(lr, weight_decay=0.01), labels, learning_rate=1e-2, steps_per_stage=1)
    changed, paths = train(graphdef, params, tx, steps=2)     # after 2 updates: groups 3 and 2 moved
    assert changed and all("/layers/1/" in p or p.startswith(("bert/pooler", "classifier")) for p in changed)
    assert any("/layers/1/" in p for p in changed)
