"""LoRA on pure pytrees: step-0 identity, exact merge/unmerge, merged == adapted, parameter counts,
training only the adapter, adapter files, named adapters, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seqjax.nn import BertConfig, BertForSequenceClassification, GPT2Config, GPTLanguageModel, load_pure_params
from seqjax.train.finetune.lora import (
    Lora,
    LoraAdapters,
    init_lora,
    lora_dense,
    lora_loss,
    lora_optimizer,
    lora_param_count,
    load_lora,
    merge_lora,
    save_lora,
    switch_lora,
    unmerge_lora,
)
from seqjax.train.losses import cross_entropy
from seqjax.train.step import make_train_step

BERT = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=24, max_position_embeddings=12)
GPT = GPT2Config(vocab_size=30, n_positions=10, n_embd=12, n_layer=2, n_head=2, scan_layers=True)
IDS = jnp.array([[1, 5, 7, 9, 2, 3], [4, 4, 8, 1, 0, 0]], jnp.int32)


def trained_like(lora: Lora, seed: int = 1) -> Lora:
    """``lora`` with random B (as after training), so merging changes the weights."""
    keys = iter(jax.random.split(jax.random.key(seed), 2 * len(lora.factors)))
    factors = {p: {"a": f["a"], "b": 0.3 * jax.random.normal(next(keys), f["b"].shape)} for p, f in lora.factors.items()}
    return Lora(factors, lora.r, lora.alpha, lora.rslora)


@pytest.fixture(scope="module")
def bert():
    model = BertForSequenceClassification(BERT, 3, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    return model, graphdef, params


def bert_logits(graphdef, params):
    return nnx.merge(graphdef, params)(IDS, seq_lengths=jnp.array([6, 4]))


def test_model_unchanged_at_step_0(bert):
    model, graphdef, params = bert
    lora = init_lora(jax.random.key(0), params, ["*/self_attn/w_q", "*/self_attn/w_v", "*/ffn/w_1"], r=4, alpha=8)
    assert all(bool(jnp.any(f["a"] != 0)) and not bool(jnp.any(f["b"])) for f in lora.factors.values())
    np.testing.assert_array_equal(bert_logits(graphdef, merge_lora(params, lora)), bert_logits(graphdef, params))


def test_merge_then_unmerge_restores_weights(bert):
    _, _, params = bert
    lora = trained_like(init_lora(jax.random.key(0), params, "*/w_*", r=3, alpha=5.0))
    merged = merge_lora(params, lora)
    restored = unmerge_lora(merged, lora)
    for w0, w1, wm in zip(jax.tree.leaves(params), jax.tree.leaves(restored), jax.tree.leaves(merged)):
        eps = np.finfo(np.float32).eps * (np.abs(np.asarray(wm)).max() + 1e-30)
        np.testing.assert_allclose(w1, w0, rtol=0, atol=2 * eps)  # one rounding of W + D
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(merged))]
    assert sum(changed) == len(lora.targets) == 2 * 6   # w_q,k,v,o + w_1,w_2 in each of 2 layers


def test_delta_is_scaled_product_against_numpy(bert):
    _, _, params = bert
    for rslora in (False, True):
        lora = trained_like(init_lora(jax.random.key(2), params, "*/layers/1/self_attn/w_k", r=4, alpha=2.0,
                                      rslora=rslora))
        (path,) = lora.targets
        f = lora.factors[path]
        s = 2.0 / (math.sqrt(4) if rslora else 4)
        assert lora.scale == pytest.approx(s)
        w = np.asarray(params["bert"]["encoder"]["stack"]["layers"][1]["self_attn"]["w_k"][...])
        got = merge_lora(params, lora)["bert"]["encoder"]["stack"]["layers"][1]["self_attn"]["w_k"][...]
        np.testing.assert_allclose(got, w + s * np.asarray(f["a"], np.float64) @ np.asarray(f["b"], np.float64),
                                   rtol=1e-6, atol=1e-6)


def test_merged_model_equals_adapter_model_bert(bert):
    """Merged weights written into a plain model (no adapter) == the adapted forward of the LoRA
    loss (merged inside jit, base behind stop_gradient)."""
    _, graphdef, params = bert
    lora = trained_like(init_lora(jax.random.key(3), params, ["*/w_q", "*/w_v"], r=2, alpha=4))
    adapted = jax.jit(lambda joint: lora_loss(lambda p, b, k: bert_logits(graphdef, p))(joint, None, None))(
        {"base": params, "lora": lora})
    serving = BertForSequenceClassification(BERT, 3, rngs=nnx.Rngs(9))
    load_pure_params(serving, nnx.merge(graphdef, merge_lora(params, lora)).pure_params())
    np.testing.assert_allclose(serving(IDS, seq_lengths=jnp.array([6, 4])), adapted, rtol=1e-5, atol=1e-5)
    assert np.abs(adapted - bert_logits(graphdef, params)).max() > 1e-4   # the adapter changes the logits


def test_merged_equals_factored_projection():
    """A 2-layer MLP run with lora_dense (x W + s (x A) B, never forming W + s A B) == the same
    MLP on merged weights."""
    key = jax.random.split(jax.random.key(0), 3)
    params = {"l1": {"w": jax.random.normal(key[0], (5, 7)), "b": jnp.ones(7)},
              "l2": {"w": jax.random.normal(key[1], (7, 3)), "b": jnp.zeros(3)}}
    lora = trained_like(init_lora(key[2], params, "*/w", r=2, alpha=3.0))
    x = jnp.linspace(-1, 1, 20).reshape(4, 5)

    def mlp(p, x):
        return jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"]) @ p["l2"]["w"] + p["l2"]["b"]

    def mlp_factored(p, lo, x):
        f1, f2 = lo.factors["l1/w"], lo.factors["l2/w"]
        h = jnp.tanh(lora_dense(x, p["l1"]["w"], f1["a"], f1["b"], lo.scale, p["l1"]["b"]))
        return lora_dense(h, p["l2"]["w"], f2["a"], f2["b"], lo.scale, p["l2"]["b"])

    merged = jax.jit(lambda lo: mlp(merge_lora(params, lo), x))
    np.testing.assert_allclose(merged(lora), jax.jit(lambda lo: mlp_factored(params, lo, x))(lora), rtol=1e-5, atol=1e-5)
    g_merged = jax.jit(jax.grad(lambda lo: jnp.sum(mlp(merge_lora(params, lo), x) ** 2)))(lora)
    g_factored = jax.jit(jax.grad(lambda lo: jnp.sum(mlp_factored(params, lo, x) ** 2)))(lora)
    for a, b in zip(jax.tree.leaves(g_merged), jax.tree.leaves(g_factored)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("r", [1, 4])
def test_trainable_count_is_r_in_plus_out(bert, r):
    _, _, params = bert
    lora = init_lora(jax.random.key(0), params, ["*/self_attn/w_q", "*/ffn/w_2", "classifier/w"], r=1 if r == 1 else 3)
    rank = lora.r
    d, d_ff, labels = BERT.hidden_size, BERT.intermediate_size, 3
    expected = 2 * rank * (d + d) + 2 * rank * (d_ff + d) + rank * (d + labels)   # by hand
    assert lora.num_params() == expected
    # a scanned GPT: each [L, in, out] leaf counts r (in + out) per layer
    gpt = GPTLanguageModel(GPT, rngs=nnx.Rngs(0)).pure_params()
    lg = init_lora(jax.random.key(1), gpt, ["blocks/layers/self_attn/w_o", "blocks/layers/ffn/w_1"], r=r)
    e = GPT.n_embd
    assert lg.num_params() == GPT.n_layer * r * ((e + e) + (e + 4 * e))
    assert lg.num_params() == lora_param_count([(2, e, e), (2, e, 4 * e)], r)
    assert lg.factors["blocks/layers/ffn/w_1"]["a"].shape == (GPT.n_layer, e, r)


def gpt_loss(graphdef):
    def loss(params, batch, key):
        logits = nnx.merge(graphdef, params)(batch[:, :-1])
        return cross_entropy(logits, batch[:, 1:])
    return loss


def test_training_only_lora_leaves_base_unchanged():
    model = GPTLanguageModel(GPT, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    before = jax.tree.map(np.array, params)
    lora = init_lora(jax.random.key(1), params, ["*/self_attn/w_q", "*/self_attn/w_v"], r=2, alpha=4.0)
    joint = {"base": params, "lora": lora}
    optimizer = lora_optimizer(optax.adam(1e-2))
    step = make_train_step(lora_loss(gpt_loss(graphdef)), optimizer)
    opt_state = optimizer.init(joint)
    batch = jnp.tile(jnp.arange(10, dtype=jnp.int32)[None] % 7, (4, 1))
    losses = []
    for _ in range(8):
        joint, opt_state, metrics = step(joint, opt_state, batch, None)
        losses.append(float(metrics["loss"]))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(joint["base"])):
        np.testing.assert_array_equal(a, b)
    assert all(bool(jnp.any(f["b"] != 0)) for f in joint["lora"].factors.values())
    assert losses[-1] < losses[0]
    # the optimiser holds state for the adapter only (the base group is set_to_zero)
    n_state = sum(x.size for x in jax.tree.leaves(opt_state) if hasattr(x, "size") and x.ndim > 0)
    assert n_state == 2 * joint["lora"].num_params()


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_load_round_trip_and_mismatch(tmp_path, bert, suffix):
    _, _, params = bert
    lora = trained_like(init_lora(jax.random.key(0), params, ["*/w_q", "*/w_v"], r=2, alpha=3.0, rslora=True))
    path = save_lora(tmp_path / f"adapter{suffix}", lora)
    back = load_lora(path, params)
    assert (back.r, back.alpha, back.rslora, back.targets) == (2, 3.0, True, lora.targets)
    for a, b in zip(jax.tree.leaves(lora), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)
    # a model of another width: a clear error naming the parameter and both shapes
    other = nnx.split(BertForSequenceClassification(
        BertConfig(**{**BERT.__dict__, "hidden_size": 20, "intermediate_size": 24}), 3, rngs=nnx.Rngs(0)), nnx.Param)[1]
    with pytest.raises(ValueError, match=r"does not fit the model.*w_q: the adapter is for shape \(16, 16\)"):
        load_lora(path, other)
    # a model without the targets (fewer layers)
    shallow = nnx.split(BertForSequenceClassification(
        BertConfig(**{**BERT.__dict__, "num_hidden_layers": 1}), 3, rngs=nnx.Rngs(0)), nnx.Param)[1]
    with pytest.raises(ValueError, match="layers/1/self_attn/w_q: not a parameter of this model"):
        load_lora(path, shallow)
    with pytest.raises(ValueError, match="does not fit"):
        merge_lora(shallow, back)


def test_save_rejects_other_files(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors or \.npz"):
        save_lora(tmp_path / "x.bin", init_lora(jax.random.key(0), {"w": jnp.ones((2, 2))}, "w", r=1))
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="not a seqjax LoRA file"):
        load_lora(tmp_path / "plain.npz")


def test_named_adapters_switch(bert, tmp_path):
    model, graphdef, params = bert
    a = trained_like(init_lora(jax.random.key(0), params, "*/w_q", r=2), seed=4)
    b = trained_like(init_lora(jax.random.key(1), params, ["*/w_v", "classifier/w"], r=1), seed=5)
    bank = LoraAdapters(params)
    bank.add("a", a)
    bank.add("b", b)
    with pytest.raises(ValueError, match="exists already"):
        bank.add("a", b)
    out_a = bert_logits(graphdef, bank.activate("a"))
    out_b = bert_logits(graphdef, bank.activate("b"))
    assert bank.active == "b"
    np.testing.assert_array_equal(bert_logits(graphdef, bank.activate("a")), out_a)
    np.testing.assert_allclose(out_b, bert_logits(graphdef, merge_lora(params, b)), rtol=0, atol=0)
    assert np.abs(out_a - out_b).max() > 1e-4
    np.testing.assert_array_equal(bert_logits(graphdef, bank.activate(None)), bert_logits(graphdef, params))
    # the unmerge/merge switch gives the same numbers up to rounding
    switched = switch_lora(merge_lora(params, a), a, b)
    np.testing.assert_allclose(bert_logits(graphdef, switched), out_b, rtol=1e-5, atol=1e-5)
    paths = bank.save(tmp_path)
    assert sorted(p.name for p in paths) == ["a.safetensors", "b.safetensors"]
    with pytest.raises(ValueError, match="no adapter named 'c'"):
        bank.activate("c")


def test_bad_targets_and_rank():
    params = {"layer": {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}}
    with pytest.raises(ValueError, match=r"match no parameter.*layer/w"):
        init_lora(jax.random.key(0), params, "*/w_q", r=1)
    with pytest.raises(ValueError, match="rank < 2.*layer/b"):
        init_lora(jax.random.key(0), params, "layer/*", r=1)
    with pytest.raises(ValueError, match="r = 4 exceeds"):
        init_lora(jax.random.key(0), params, "layer/w", r=4)
    with pytest.raises(ValueError, match="r must be"):
        init_lora(jax.random.key(0), params, "layer/w", r=0)
    with pytest.raises(ValueError, match="joint tree"):
        lora_loss(lambda p, b, k: 0.0)(params, None, None)


def test_gaussian_init_and_regex_targets():
    params = {"enc": {"w_q": jnp.ones((64, 64)), "w_k": jnp.ones((64, 64))}}
    lora = init_lora(jax.random.key(0), params, "re:w_(q|k)$", r=8, init="gaussian")
    a = np.asarray(lora.factors["enc/w_q"]["a"])
    assert lora.targets == ("enc/w_k", "enc/w_q")
    assert a.std() == pytest.approx(1 / 8, rel=0.1)
    ku = np.asarray(init_lora(jax.random.key(0), params, "enc/w_q", r=8).factors["enc/w_q"]["a"])
    assert np.abs(ku).max() <= 1 / 8 and ku.std() == pytest.approx(1 / 8 / math.sqrt(3), rel=0.1)
