"""seqjax.experiment.pretrained: save_pretrained / load_pretrained give back the same model
(identical logits, BERT and GPT, scanned or looped layers) and its tokenizer; bad input is refused."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.data import BPETokenizer, CharTokenizer
from seqjax.experiment.pretrained import kind_of, load_pretrained, resolve, save_pretrained
from seqjax.nn import BertConfig, BertForMaskedLM, BertModel, GPT2Config, GPTLanguageModel


def _tokenizer():
    return BPETokenizer.train("the cat sat on the mat. the dog sat on the log.", vocab_size=40,
                              special_tokens=("[PAD]", "[MASK]"))


def _trained_like(model):
    """Perturb every parameter, so that a reload that fell back to the init would be caught."""
    graphdef, state = nnx.split(model)
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    leaves = [x + 0.05 * jax.random.normal(k, x.shape, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
              for x, k in zip(leaves, keys)]
    return nnx.merge(graphdef, jax.tree.unflatten(tree, leaves))


@pytest.mark.parametrize("scan", [False, True])
def test_bert_round_trip_identical_logits(tmp_path, scan):
    tok = _tokenizer()
    model = _trained_like(BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=16, scan_layers=scan), rngs=nnx.Rngs(0)))
    save_pretrained(tmp_path / "run" / "pretrained", model, tok, info={"steps": 3})
    loaded = load_pretrained(tmp_path / "run")  # a run directory: finds pretrained/
    assert loaded.kind == "bert_mlm" and loaded.info == {"steps": 3} and loaded.tokenizer == tok
    assert loaded.config == model.config and isinstance(loaded.model, BertForMaskedLM)
    ids = jnp.asarray(tok.encode(" the cat sat"))[None]
    np.testing.assert_array_equal(np.asarray(loaded.model(ids)), np.asarray(model(ids)))
    # the encoder alone, for fine-tuning
    assert isinstance(loaded.model.bert, BertModel)
    np.testing.assert_array_equal(np.asarray(loaded.model.bert(ids)[0]), np.asarray(model.bert(ids)[0]))
    # restacked layers compute the same
    other = load_pretrained(tmp_path / "run", scan_layers=not scan)
    assert other.config.scan_layers is (not scan)
    np.testing.assert_allclose(np.asarray(other.model(ids)), np.asarray(model(ids)), atol=1e-5)


def test_gpt_round_trip_identical_logits(tmp_path):
    tok = CharTokenizer.fit("hello world")
    model = _trained_like(GPTLanguageModel(GPT2Config(vocab_size=len(tok), n_positions=12, n_embd=8, n_layer=2,
                                                      n_head=2, scan_layers=True), rngs=nnx.Rngs(1)))
    path = save_pretrained(tmp_path / "m", model, tok)
    assert resolve(path) == path
    meta = json.loads((path / "model.json").read_text())
    assert meta["kind"] == "gpt" and meta["config"]["n_embd"] == 8
    loaded = load_pretrained(path)
    ids = jnp.asarray(tok.encode("hello"))[None]
    np.testing.assert_array_equal(np.asarray(loaded.model(ids)), np.asarray(model(ids)))


def test_refusals(tmp_path):
    tok = CharTokenizer.fit("abcdefgh")
    with pytest.raises(ValueError, match="holds no pretrained model"):
        load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model must be one of"):
        kind_of(BertModel(BertConfig(vocab_size=9, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=8, max_position_embeddings=8), rngs=nnx.Rngs(0)))
    small = GPTLanguageModel(GPT2Config(vocab_size=4, n_positions=4, n_embd=4, n_layer=1, n_head=1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="tokenizer has 8 tokens"):
        save_pretrained(tmp_path / "a", small, tok)
    fits = GPTLanguageModel(GPT2Config(vocab_size=8, n_positions=4, n_embd=4, n_layer=1, n_head=1), rngs=nnx.Rngs(0))
    save_pretrained(tmp_path / "b", fits, tok)
    with pytest.raises(ValueError, match="already holds a saved model"):
        save_pretrained(tmp_path / "b", fits, tok)
    (tmp_path / "b" / "model.json").write_text(json.dumps({"format": 1, "kind": "lstm", "config": {}}))
    with pytest.raises(ValueError, match="kind one of"):
        load_pretrained(tmp_path / "b")
