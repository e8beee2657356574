"""experiments.sentiment: the --quick run end to end, a SIGKILL and resume, and its poolings
against direct computations."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import sentiment as se


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("sentiment")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "sentiment.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = se.Config(**se.Config.QUICK)
    assert set(summary["results"]) == set(config.models)
    for r in summary["results"].values():
        assert r["folds"] == config.folds * config.repeats and 0.0 <= r["mean_accuracy"] <= 1.0
    assert summary["data"] == {"sentences": 200, "positive": 100, "mean_words": pytest.approx(21.335)}
    for ex in summary["attention_examples"]:
        assert sum(ex["weights"]) == pytest.approx(1.0, abs=1e-5) and len(ex["weights"]) == len(ex["words"])


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("sentiment")
    log = tmp_path / "killed.log"
    proc = procs.start("sentiment", ["--quick", "--out", str(killed), "--checkpoint-every", "45"], cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 45, log)
    assert not (killed / "metrics.json").exists()
    procs.run("sentiment", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)


def test_poolings_against_direct_computation():
    config = se.Config(embed=6, hidden=5)
    tokens = jnp.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    lengths = jnp.array([3, 5])
    # Jitted: one program per model and shape instead of op by op (half the test's time).
    sentence_vector = jax.jit(se.sentence_vector, static_argnums=(0, 4))
    for model in ("mean_embedding", "bilstm_last", "bilstm_mean", "bilstm_attention"):
        params = se.init_model(model, jax.random.key(0), 12, config)
        pooled, weights = sentence_vector(model, params, tokens, lengths, config.hidden)
        # Padding never matters: each sentence alone gives the same vector.
        for i in range(2):
            n = int(lengths[i])
            alone, _ = sentence_vector(model, params, tokens[i:i + 1, :n], lengths[i:i + 1], config.hidden)
            np.testing.assert_allclose(pooled[i], alone[0], rtol=1e-5, atol=1e-6)
        if model == "mean_embedding":
            np.testing.assert_allclose(pooled[0], params["embed"][tokens[0, :3]].mean(0), rtol=1e-6)
        if weights is not None:
            np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
            assert float(weights[0, 3:].max()) == 0.0


def test_bag_of_words_features_are_binary_and_ignore_padding():
    params = {"w": jnp.arange(10.0 * 2).reshape(10, 2), "b": jnp.zeros(2)}
    batch = {"tokens": jnp.array([[3, 3, 4, 0]]), "lengths": jnp.array([3])}
    np.testing.assert_allclose(se.logits_of("bow_logreg", params, batch, 4)[0], params["w"][3] + params["w"][4])


def test_fold_vocabulary_comes_from_the_training_part_only():
    data = se.Data()
    train, test = np.arange(0, 200, 2), np.arange(1, 200, 2)
    fold = data.fold(train, test)
    train_words = {w for i in train for w in data.sentences[i]}
    unseen = sum(w not in train_words for i in test for w in data.sentences[i])
    assert int(jnp.sum(fold["test"]["tokens"] == se.UNK)) == unseen > 0
    assert int(jnp.sum(fold["train"]["tokens"] == se.UNK)) == 0
