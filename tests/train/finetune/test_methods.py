"""The common interface: each method trains exactly its parameters on a tiny BERT classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seqjax.nn import BertConfig, BertForSequenceClassification
from seqjax.train.finetune.methods import prepare
from seqjax.train.losses import cross_entropy
from seqjax.train.optim import param_paths
from seqjax.train.step import make_train_step

BERT = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=24, max_position_embeddings=12)
IDS = jnp.array([[1, 5, 7, 9, 2, 3], [4, 4, 8, 1, 0, 0]], jnp.int32)
LABELS = jnp.array([0, 2])


@pytest.fixture(scope="module")
def bert():
    return nnx.split(BertForSequenceClassification(BERT, 3, rngs=nnx.Rngs(0)), nnx.Param)


def run(plan, graphdef, steps=2):
    def loss_fn(p, batch, key):
        return cross_entropy(nnx.merge(graphdef, p)(batch[0]), batch[1])

    step = make_train_step(plan.wrap_loss(loss_fn), plan.optimizer, donate=False)
    state, opt_state = plan.train_params, plan.optimizer.init(plan.train_params)
    for _ in range(steps):
        state, opt_state, _ = step(state, opt_state, (IDS, LABELS), None)
    return plan.effective(state)


def changed_paths(before, after):
    paths = jax.tree.leaves(param_paths(before))
    return {p for p, a, b in zip(paths, jax.tree.leaves(before), jax.tree.leaves(after)) if not np.array_equal(a, b)}


@pytest.mark.parametrize("method", ["full", "probe", "bitfit", "lora"])
def test_each_method_trains_its_parameters(bert, method):
    graphdef, params = bert
    plan = prepare(method, params, optax.adam(1e-2), key=jax.random.key(0), lora_targets=["*/w_q", "*/w_v"], r=2)
    changed = changed_paths(params, run(plan, graphdef))
    paths = set(jax.tree.leaves(param_paths(params)))
    head = {"classifier/w", "classifier/b"}
    d, ff = 16, 24
    if method == "full":
        assert changed == paths and plan.num_trainable == sum(x.size for x in jax.tree.leaves(params))
    elif method == "probe":
        assert changed == head and plan.num_trainable == d * 3 + 3
    elif method == "bitfit":
        assert changed == {p for p in paths if p.rsplit("/", 1)[1] in ("b", "bias") or "/b_" in p} | {"classifier/w"}
        assert plan.num_trainable == d + (4 * d + ff + d + 2 * d) + d + d * 3 + 3
    else:
        assert changed == {"bert/encoder/stack/layers/0/self_attn/w_q", "bert/encoder/stack/layers/0/self_attn/w_v"} | head
        assert plan.num_trainable == 2 * 2 * (d + d) + d * 3 + 3


def test_bad_method_and_missing_pieces(bert):
    _, params = bert
    with pytest.raises(ValueError, match="method must be one of"):
        prepare("prefix", params, optax.sgd(1.0))
    with pytest.raises(ValueError, match="needs key"):
        prepare("lora", params, optax.sgd(1.0))
    with pytest.raises(ValueError, match="adapter parameters"):
        prepare("adapters", params, optax.sgd(1.0))
