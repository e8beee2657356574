"""experiments.sentiment's pretrained initialisations: word vectors as the embedding table (frozen
or fine-tuned) and a fine-tuned pretrained BERT, against direct computations; the BERT models'
--quick run (slow)."""

from __future__ import annotations

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import experiment_processes as procs
from experiments import fine_tuning as ft
from experiments import sentiment as se
from seqjax.nn import BertConfig, BertForMaskedLM
from seqjax.nn.params import load_pure_params
from seqjax.text.embeddings.vectors import WordVectors
from seqjax.train import make_train_step

TINY = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=12, scan_layers=True)


class FakePretrained(NamedTuple):
    model: object
    config: BertConfig


def _vectors():
    words = ["good", "bad", "it", "is", "film"]
    rng = np.random.default_rng(0)
    return WordVectors(words, rng.normal(size=(5, 4)).astype(np.float32))


def test_vector_of_looks_up_then_splits_with_the_embeddings_preprocessing():
    vectors = _vectors()
    np.testing.assert_array_equal(se.vector_of(vectors, "good"), vectors.vectors[0])
    # "it's" is not a word of the vectors; the embeddings' pipeline makes it "it is": their mean.
    np.testing.assert_allclose(se.vector_of(vectors, "it's"), (vectors.vectors[2] + vectors.vectors[3]) / 2,
                               rtol=1e-6)
    assert se.vector_of(vectors, "awful") is None
    assert se.vector_of(vectors, ",") is None  # punctuation: the pipeline drops it, nothing left


def test_vector_coverage_counts_types_and_tokens():
    vectors = _vectors()
    sentences = [["good", "film", "!"], ["bad", "film"], ["it's", "awful"]]
    c = se.vector_coverage(vectors, sentences)
    assert (c["types"], c["types_found"], c["tokens"], c["tokens_found"]) == (6, 4, 7, 5)
    assert c["token_coverage"] == pytest.approx(5 / 7)
    assert set(c["missing_examples"]) == {"!", "awful"}


def test_pretrained_table_rows():
    vectors = _vectors()
    vocab = ["bad", "film", "zzz"]
    table = np.asarray(se.pretrained_table(vocab, vectors, jax.random.key(3), 8))
    assert table.shape == (8, 4)
    np.testing.assert_array_equal(table[se.PAD], 0.0)
    np.testing.assert_array_equal(table[2], vectors.vectors[1])  # bad
    np.testing.assert_array_equal(table[3], vectors.vectors[4])  # film
    assert np.abs(table[4]).sum() > 0 and np.abs(table[se.UNK]).sum() > 0  # drawn at random
    np.testing.assert_array_equal(table[5:], 0.0)  # rows beyond the fold's words
    # the random rows are drawn at the vectors' scale (Kim 2014): over many rows their std matches
    many = np.asarray(se.pretrained_table([f"w{i}" for i in range(2000)], vectors, jax.random.key(4), 2002))
    assert np.std(many[1:]) == pytest.approx(np.std(vectors.vectors), rel=0.05)
    with pytest.raises(ValueError, match="table must hold"):
        se.pretrained_table(vocab, vectors, jax.random.key(0), 4)


@pytest.mark.parametrize("model", ["mean_embedding_w2v_frozen", "bilstm_attention_w2v_frozen", "mean_embedding_w2v"])
def test_frozen_tables_stay_exactly_frozen_and_fine_tuned_ones_move(model):
    config = se.Config(hidden=5, steps=3)
    vectors = _vectors()
    table = se.pretrained_table(["good", "bad", "film"], vectors, jax.random.key(0), 7)
    params = se.init_model(model, jax.random.key(1), 7, config, table)
    assert params["embed"].shape == (7, 4)  # the vectors' width, not config.embed
    optimizer = se.make_optimizer(model, config)
    step = make_train_step(se.make_loss(model, config), optimizer)
    batch = {"tokens": jnp.array([[2, 3, 0], [4, 2, 3]]), "lengths": jnp.array([2, 3]), "labels": jnp.array([1, 0])}
    p, s = jax.tree.map(jnp.copy, params), optimizer.init(params)
    for k in range(3):
        p, s, _ = step(p, s, batch, jax.random.key(k))
    moved = float(jnp.abs(p["embed"] - table).max())
    if model.endswith("_frozen"):
        assert moved == 0.0  # no update and no weight decay
    else:
        assert moved > 0.0
    assert float(jnp.abs(p["out"]["w"] - params["out"]["w"]).max()) > 0.0


def test_base_model_and_vector_use():
    assert se.base_model("bilstm_attention_w2v_frozen") == "bilstm_attention"
    assert se.base_model("mean_embedding_w2v") == "mean_embedding"
    assert se.uses_vectors("mean_embedding_w2v") and not se.uses_vectors("bert_pretrained")
    for model, baseline in se.PAIRS:
        assert model in se.MODELS and baseline in se.MODELS


def test_bert_classifier_copies_the_pretrained_encoder_and_pools_over_valid_tokens():
    pre = FakePretrained(BertForMaskedLM(TINY, rngs=nnx.Rngs(5)), TINY)
    ids = jnp.array([[2, 7, 8, 9, 3, 0], [2, 10, 3, 0, 0, 0]])
    lengths = jnp.array([5, 3])
    batch = {"bert_ids": ids, "bert_lengths": lengths}
    tuned = se.BertClassifier(pre, True, jax.random.key(0))
    reference = ft.PassageClassifier(TINY, 2, rngs=nnx.Rngs(jax.random.key(0)))
    load_pure_params(reference.bert, pre.model.bert.pure_params())
    np.testing.assert_allclose(tuned.logits(tuned.params, batch), reference(ids, lengths), rtol=1e-5, atol=1e-6)
    # the same module, encoder not copied: the scratch control differs
    scratch = se.BertClassifier(pre, False, jax.random.key(0))
    assert float(jnp.abs(scratch.logits(scratch.params, batch) - tuned.logits(tuned.params, batch)).max()) > 1e-4
    # padding never matters: each sentence alone gives the same logits
    alone = tuned.logits(tuned.params, {"bert_ids": ids[1:, :3], "bert_lengths": lengths[1:]})
    np.testing.assert_allclose(alone[0], tuned.logits(tuned.params, batch)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_training_the_bert_classifier_leaves_the_pretrained_model_intact():
    # its parameters are copies: training them (donated buffers) leaves the pretrained model intact
    pre = FakePretrained(BertForMaskedLM(TINY, rngs=nnx.Rngs(5)), TINY)
    batch = {"bert_ids": jnp.array([[2, 7, 8, 9, 3, 0], [2, 10, 3, 0, 0, 0]]), "bert_lengths": jnp.array([5, 3])}
    tuned = se.BertClassifier(pre, True, jax.random.key(0))
    before = jax.tree.map(np.asarray, pre.model.bert.pure_params())
    optimizer = se.make_optimizer("bert_pretrained", se.Config(bert_steps=2))
    step = make_train_step(se.make_loss("bert_pretrained", se.Config(), tuned), optimizer)
    p, s = tuned.params, optimizer.init(tuned.params)
    for k in range(2):
        p, s, _ = step(p, s, batch | {"labels": jnp.array([0, 1])}, jax.random.key(k))
    after = jax.tree.map(np.asarray, pre.model.bert.pure_params())
    jax.tree.map(np.testing.assert_array_equal, before, after)


def test_bert_sentences_are_cls_tokens_sep():
    class Words:  # a stand-in tokenizer: one id per word
        def encode(self, text):
            return [10 + len(w) for w in text.split()]

    data = se.Data()
    sizes = data.add_bert(Words(), 16)
    assert sizes["seq_len"] == 16 and sizes["sentences_cut"] == sum(len(s) > 14 for s in data.sentences)
    row, n = data.bert["bert_ids"][0], int(data.bert["bert_lengths"][0])
    words = data.sentences[0]
    assert row[0] == ft.CLS and row[n - 1] == ft.SEP and n == min(len(words), 14) + 2
    assert list(row[1:n - 1]) == [10 + len(w) for w in words[:14]]
    fold = data.fold(np.arange(0, 200, 2), np.arange(1, 200, 2))
    np.testing.assert_array_equal(fold["test"]["bert_ids"], data.bert["bert_ids"][1::2])


def test_initialisation_effects_are_per_fold_differences():
    table = {"mean_embedding": {"per_fold": [0.5, 0.6, 0.55, 0.7]},
             "mean_embedding_w2v": {"per_fold": [0.6, 0.6, 0.5, 0.8]}}
    e = se.initialisation_effects(table)
    assert set(e) == {"mean_embedding_w2v"}
    d = np.array([0.1, 0.0, -0.05, 0.1])
    r = e["mean_embedding_w2v"]
    assert r["mean_difference"] == pytest.approx(d.mean()) and r["std_difference"] == pytest.approx(d.std())
    assert r["standard_error"] == pytest.approx(d.std(ddof=1) / 2)
    assert (r["wins"], r["ties"], r["losses"]) == (2, 1, 1)


def test_bad_vectors_path_is_refused(tmp_path):
    from seqjax.experiment import RunDir

    with pytest.raises(ValueError, match="vectors must be"):
        se.load_vectors(se.Config(vectors=str(tmp_path)), RunDir(tmp_path / "run"))


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="bert_steps"):
        se.Config(bert_steps=0)
    with pytest.raises(ValueError, match="bert_learning_rate"):
        se.Config(bert_learning_rate=0.0)
    with pytest.raises(ValueError, match="models"):
        se.Config(models=("bert_large",))


def test_quick_run_reports_the_vectors(quick_run_dir):
    summary = json.loads((quick_run_dir("sentiment") / "metrics.json").read_text())
    vec = summary["pretrained"]["vectors"]
    assert vec["trained_in_run"] and vec["dim"] == 16 and 0 < vec["coverage"]["token_coverage"] < 1
    assert "mean_embedding_w2v_frozen" in summary["results"]


@pytest.mark.slow
def test_quick_bert_models_run_pretraining_inside(tmp_path, xla_cache):
    out = tmp_path / "bert"
    procs.run("sentiment", ["--quick", "--models", "bert_scratch", "bert_pretrained", "--out", str(out)],
              cache_dir=xla_cache("sentiment_bert"), log=tmp_path / "bert.log")
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["results"]) == {"bert_scratch", "bert_pretrained"}
    assert (out / "pretrain" / "pretrained" / "model.json").is_file()
    assert summary["pretrained"]["bert"]["sentences"]["seq_len"] <= 32
    assert set(summary["initialisation_effects"]) == {"bert_pretrained"}
