"""experiments.word_lm: the --quick run end to end, a SIGKILL and resume, and the model pieces
(tied readout, step function == full forward, the n-gram scoring the same tokens)."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

import experiment_processes as procs
from experiments import word_lm as wl
from seqjax.data import WordTokenizer, stream_batches
from seqjax.primitives import count_scalars


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("word_lm")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "perplexity.png", "samples.txt",
                 "tokenizer.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    ppl = summary["held_out_perplexity"]
    config = wl.Config(**wl.Config.QUICK)
    assert set(ppl) == {*config.models, "kneser_ney_1", "kneser_ney_2"}
    vocab = summary["corpus"]["vocabulary"]
    assert all(1.0 < p < vocab * 1.5 for p in ppl.values()), ppl
    assert ppl["kneser_ney_2"] < ppl["kneser_ney_1"] < vocab   # context helps; better than uniform
    assert len(summary["samples"]["tied"]) == len(wl.PROMPTS) * len(wl.TEMPERATURES)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("word_lm")
    log = tmp_path / "killed.log"
    proc = procs.start("word_lm", ["--quick", "--out", str(killed), "--checkpoint-every", "10"], cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 10, log)
    assert not (killed / "metrics.json").exists()
    procs.run("word_lm", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)


def test_lines_end_with_eos():
    tok = WordTokenizer.fit(["a b", "c"], special_tokens=("[PAD]", "[UNK]", wl.EOS), unk_token="[UNK]")
    ids = wl.encode_lines(tok, "a b\n\nc a\n")
    eos = tok.vocab.token_to_id(wl.EOS)
    assert tok.decode(ids) == f"a b {wl.EOS} c a {wl.EOS}" and int((ids == eos).sum()) == 2


def test_tied_readout_is_the_embedding_and_the_step_equals_the_forward():
    params = wl.init_model("tied", jax.random.key(0), 30, 8)
    assert "out" not in params
    h = jax.random.normal(jax.random.key(1), (2, 8))
    np.testing.assert_allclose(wl.logits_of(params, h), h @ params["embed"].T + params["bias"], rtol=1e-6)
    untied = wl.init_model("untied", jax.random.key(0), 30, 8)
    assert count_scalars(untied) - count_scalars(params) == 8 * 30
    tokens = jax.random.randint(jax.random.key(2), (3, 6), 0, 30)
    _, full = wl.forward(params, tokens, wl.zero_carry(params, 3))
    carry, step = wl.zero_carry(params, 3), wl.step_fn(params)
    for t in range(6):
        carry, logits = step(carry, tokens[:, t])
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-5, atol=1e-6)


def test_the_ngrams_score_the_tokens_the_lstms_score():
    config = wl.Config(**(wl.Config.QUICK | {"max_chars": 8000}))
    data = wl.prepare(config)
    _, train_ids, held_ids = data
    scored = stream_batches(held_ids, 1, config.eval_window, drop_last=False).num_tokens
    assert scored == len(held_ids) - 1
    ppl = wl.ngram_perplexities(data, config)
    assert set(ppl) == {"1", "2"} and all(math.isfinite(p) for p in ppl.values())
