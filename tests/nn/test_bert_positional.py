"""BERT with positions in the attention logits instead of a learned table: ALiBi (Press et al.
2022) and T5's relative bias, against the attention weights recomputed by hand in numpy."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.nn import BertConfig, BertForMaskedLM, BertModel

SIZES = dict(vocab_size=23, hidden_size=12, num_hidden_layers=2, num_attention_heads=4, intermediate_size=20,
             max_position_embeddings=9, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _layer_norm(x, p, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _first_layer_attention(model, ids, valid, bias):
    """Layer 0's attention weights [b, h, t, t] from the parameters, with ``bias`` [h, t, t]."""
    c = model.config
    p = model.pure_params()
    e = p["embeddings"]
    x = np.asarray(e["token"])[ids] + np.asarray(e["token_type"])[0]
    x = _layer_norm(x, e["norm"], c.layer_norm_eps)
    a = {k: np.asarray(v, np.float64) for k, v in p["encoder"]["layers"][0]["self_attn"].items()}
    h, dk = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    split = lambda y: y.reshape(*y.shape[:2], h, dk).transpose(0, 2, 1, 3)
    q, k = split(x @ a["w_q"] + a["b_q"]), split(x @ a["w_k"] + a["b_k"])
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dk) + bias[None]
    logits = np.where(valid[:, None, None, :], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


@pytest.fixture()
def batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, SIZES["vocab_size"], (2, 7))
    valid = np.ones((2, 7), bool)
    valid[1, 5:] = False
    ids[1, 5:] = 0
    return ids, valid


def test_alibi_bert_has_no_position_table_and_biases_the_logits_by_distance(batch):
    ids, valid = batch
    model = BertModel(BertConfig(**SIZES, positional="alibi"), rngs=nnx.Rngs(0))
    assert "position" not in model.pure_params()["embeddings"]
    _, _, att = model(jnp.asarray(ids), token_mask=jnp.asarray(valid), return_attention=True)
    h, t = SIZES["num_attention_heads"], ids.shape[1]
    slopes = 2.0 ** (-8.0 * np.arange(1, h + 1) / h)  # Press et al. 2022, for a power-of-two head count
    distance = np.abs(np.arange(t)[:, None] - np.arange(t)[None])
    expected = _first_layer_attention(model, ids, valid, -slopes[:, None, None] * distance[None])
    np.testing.assert_allclose(np.asarray(att["self"][0]), expected, atol=2e-6)


def test_relative_bert_uses_the_t5_bucket_table(batch):
    from seqjax.transformer.position_bias import relative_position_bucket

    ids, valid = batch
    model = BertModel(BertConfig(**SIZES, positional="relative"), rngs=nnx.Rngs(1))
    p = model.pure_params()
    assert "position" not in p["embeddings"]
    # a trained-looking table [buckets, heads] in place of the N(0, 0.02^2) init, so the bias shows
    table = np.random.default_rng(2).normal(size=p["encoder"]["relative_bias"].shape)
    model.encoder.stack["relative_bias"][...] = jnp.asarray(table, jnp.float32)
    t = ids.shape[1]
    rel = np.arange(t)[None] - np.arange(t)[:, None]  # key minus query
    buckets = np.asarray(relative_position_bucket(jnp.asarray(rel), num_buckets=table.shape[0], max_distance=128))
    _, _, att = model(jnp.asarray(ids), token_mask=jnp.asarray(valid), return_attention=True)
    expected = _first_layer_attention(model, ids, valid, table[buckets].transpose(2, 0, 1))
    np.testing.assert_allclose(np.asarray(att["self"][0]), expected, atol=2e-6)


def test_unknown_positional_and_hugging_face_export_are_refused():
    with pytest.raises(ValueError, match="positional must be one of"):
        BertModel(BertConfig(**SIZES, positional="rotary"), rngs=nnx.Rngs(0))
    model = BertForMaskedLM(BertConfig(**SIZES, positional="alibi"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="config.positional must be 'absolute'"):
        model.hf_config()
