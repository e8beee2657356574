"""experiments.pretrain_tiny: the data pipeline (held out by document, windows, BPE with [UNK]
for rare characters), the n-gram baselines against brute force, and the --quick BERT run end to
end (its saved model reloads to identical logits); SIGKILL and resume (slow)."""

from __future__ import annotations

import collections
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import experiment_processes as procs
from experiments import pretrain_tiny as pt
from seqjax.experiment import config_from_json
from seqjax.experiment.pretrained import load_pretrained


def test_split_holds_out_every_tenth_document_of_each_corpus():
    docs = {"a": [f"a{i}" for i in range(25)], "b": [f"b{i}" for i in range(12)]}
    train, held, info = pt.split_documents(docs, 10)
    assert held == ["a9", "a19", "b9"]
    assert len(train) == 34 and not set(train) & set(held)
    assert info["a"]["held_out_indices"] == [9, 19] and info["b"]["held_out_documents"] == 1


def test_windows_and_batches_are_functions_of_seed_and_step():
    stream = np.arange(5, 205, dtype=np.int32)
    bert = pt.Config(**pt.Config.QUICK)
    w = pt.train_windows(stream, bert, 3)
    assert w.shape == (bert.batch_size, bert.seq_len)
    assert np.all(w[:, 0] == pt.CLS) and np.all(w[:, -1] == pt.SEP)
    assert np.all(np.diff(w[:, 1:-1], axis=1) == 1)  # contiguous stretches of the stream
    np.testing.assert_array_equal(w, pt.train_windows(stream, bert, 3))
    assert not np.array_equal(w, pt.train_windows(stream, bert, 4))
    gpt = pt.Config(**(pt.Config.QUICK | {"model": "gpt"}))
    b = pt.batch_for(stream, gpt, 0, 300)
    np.testing.assert_array_equal(np.asarray(b["inputs"])[:, 1:], np.asarray(b["labels"])[:, :-1])
    held = pt.held_out_windows(stream, gpt)
    assert held.shape[1] == gpt.seq_len + 1 and held[1, 0] == held[0, -1]  # shared boundary token
    mlm = pt.batch_for(stream, bert, 0, 300)
    weights = np.asarray(mlm["weights"])
    assert weights[:, 0].sum() == 0 and weights[:, -1].sum() == 0  # [CLS]/[SEP] never selected


def test_bert_scores_at_gathered_positions_equal_the_full_scores():
    """The head run at the selected positions only (batch["positions"]) gives the loss and every
    sum of the whole-sequence computation, [MASK]-only sums included."""
    config = pt.Config(**pt.Config.QUICK)
    stream = np.random.default_rng(0).integers(len(pt.SPECIALS), 300, 2000).astype(np.int32)
    batch = pt.batch_for(stream, config, 0, 300)
    model = pt.build_model(config, 300)
    scores = nnx.jit(lambda m, b: pt.scores(m, b, None))   # one program per batch form, not op by op
    loss, sums = scores(model, batch)
    full = {k: v for k, v in batch.items() if k not in ("positions", "valid")}
    full_loss, full_sums = scores(model, full)
    assert np.asarray(batch["positions"]).shape[1] < config.seq_len  # fewer head rows than positions
    np.testing.assert_allclose(float(loss), float(full_loss), rtol=1e-6)
    assert set(sums) == set(full_sums) and float(sums["mask_count"]) > 0
    for key in sums:
        np.testing.assert_allclose(float(sums[key]), float(full_sums[key]), rtol=1e-5, err_msg=key)


def test_rare_characters_encode_as_unk():
    docs = ["the cat sat on the mat " * 30 + "\u00e9t\u00e9"]
    config = pt.Config(**(pt.Config.QUICK | {"vocab_size": 60, "min_char_count": 5}))
    tok = pt.train_tokenizer(docs, config)
    assert tok.vocab.special_tokens == pt.SPECIALS and "\u00e9" not in tok.vocab
    ids = tok.encode(" caté")
    assert pt.UNK in ids.tolist() and tok.decode(tok.encode(" the cat")) == " the cat"


def test_unigram_and_bigram_baselines_equal_brute_force():
    rng = np.random.default_rng(0)
    V = 12
    train = rng.integers(5, V, 400).astype(np.int32)
    train[::37] = pt.SEP
    prev, targets = rng.integers(5, V, 50), rng.integers(5, V, 50)
    counts = collections.Counter(train.tolist())
    allowed = [w for w in range(V) if w not in (pt.PAD, pt.CLS, pt.MASK)]
    total = sum(counts[w] + 1 for w in allowed)
    uni = {w: (counts[w] + 1) / total for w in allowed}
    np.testing.assert_allclose(np.exp(pt.unigram_log_probs(train, V))[allowed], [uni[w] for w in allowed])
    pairs = collections.Counter(zip(train[:-1].tolist(), train[1:].tolist()))
    expected = []
    for v, w in zip(prev.tolist(), targets.tolist()):
        c_v = sum(n for (a, _), n in pairs.items() if a == v)
        types = sum(1 for (a, _) in pairs if a == v)
        expected.append(max(pairs[(v, w)] - 0.75, 0) / c_v + 0.75 * types / c_v * uni[w] if c_v else uni[w])
    np.testing.assert_allclose(np.exp(pt.bigram_log_probs(train, V, prev, targets)), expected, rtol=1e-10)
    # the bigram model's prediction is the most frequent successor
    succ = pt.bigram_argmax(train, V, prev)
    for v, s in zip(prev.tolist(), succ.tolist()):
        best = max((n, -w) for (a, w), n in pairs.items() if a == v)
        assert s == -best[1]


def test_neighbour_baseline_is_the_most_frequent_middle_token_else_the_bigram():
    rng = np.random.default_rng(1)
    V = 9
    train = rng.integers(5, V, 600).astype(np.int32)
    train[::29] = pt.SEP
    left, right = rng.integers(3, V, 80), rng.integers(3, V, 80)
    left[:5] = pt.MASK  # never a left neighbour in training: the bigram fallback
    triples = collections.Counter(zip(train[:-2].tolist(), train[1:-1].tolist(), train[2:].tolist()))
    fallback = pt.bigram_argmax(train, V, left)
    got = pt.neighbour_argmax(train, V, left, right)
    for v, u, f, g in zip(left.tolist(), right.tolist(), fallback.tolist(), got.tolist()):
        seen = [(n, -w) for (a, w, b), n in triples.items() if a == v and b == u]
        assert g == (-max(seen)[1] if seen else f)
    assert (got[:5] == fallback[:5]).all()


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("pretrain_tiny")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_bert_writes_everything_and_reloads_identically(quick_run):
    out, m = quick_run
    for name in ("config.json", "metrics.jsonl", "metrics.json", "loss.png", "tokenizer.json", "curves.npz",
                 "pretrained/model.json", "pretrained/tokenizer.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = config_from_json(pt.Config, json.loads((out / "config.json").read_text()))
    assert config == pt.Config(**pt.Config.QUICK) and m["model"] == "bert"
    assert m["reload_max_abs_logit_diff"] == 0.0
    h, b = m["held_out"], m["baselines"]
    assert h["loss"] < m["initial_held_out"]["loss"]  # even 12 steps learn something
    assert 0 < h["mask_positions"] < h["positions"]
    assert math.isclose(h["perplexity"], math.exp(h["loss"]))
    assert 0 <= b["unigram"]["accuracy"] <= 1 and 1 < b["unigram"]["perplexity"] < b["uniform_perplexity"]
    assert 0 <= b["neighbours"]["mask_accuracy"] <= 1 and 0 <= b["neighbours"]["accuracy"] <= 1
    assert m["corpus"]["split"]["lee_background"]["held_out_indices"] == [9, 19, 29, 39]
    loaded = load_pretrained(out)
    assert loaded.kind == "bert_mlm" and len(loaded.tokenizer) == m["vocab_size"]
    assert loaded.info["special_tokens"]["[MASK]"] == pt.MASK
    ids = jnp.asarray(loaded.tokenizer.encode(" The minister said"))[None]
    assert loaded.model(ids).shape == (1, ids.shape[1], m["vocab_size"])


@pytest.mark.slow
def test_gpt_quick_and_sigkill_resume(tmp_path, xla_cache):
    cache = xla_cache("pretrain_tiny_gpt")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    procs.run("pretrain_tiny", ["--quick", "--model", "gpt", "--out", str(straight)], cache_dir=cache,
              log=tmp_path / "straight.log")
    log = tmp_path / "killed.log"
    procs.kill_at_checkpoint(procs.start("pretrain_tiny", ["--quick", "--model", "gpt", "--out", str(killed)],
                                         cache_dir=cache, log=log), killed, 6, log)
    assert not (killed / "metrics.json").exists()
    procs.run("pretrain_tiny", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    a, b = procs.summary_without_timings(straight), procs.summary_without_timings(killed)
    for s in (a, b):
        s.pop("pretrained_dir")
        s.pop("environment")
    assert a == b
    assert procs.records(straight) == procs.records(killed)
    g = a["baselines"]
    assert a["model"] == "gpt" and "bigram" in g and g["bigram"]["perplexity"] < g["unigram"]["perplexity"]
