"""experiments.bottleneck: the --quick run end to end, SIGKILL and resume, the data, the metrics
against brute force and the equal parameter budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import experiment_processes as procs
from experiments import bottleneck as bn
from seqjax.data import reorder_translation as grammar
from seqjax.experiment import config_from_json

QUICK = bn.Config(**bn.Config.QUICK)


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("bottleneck")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("accuracy_vs_length.png", "alignments.png", "attention_entropy.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert config_from_json(bn.Config, json.loads((out / "config.json").read_text())) == QUICK
    records = procs.records(out)
    runs = len(bn.plan(QUICK))
    assert sum(r["kind"] == "train" for r in records) == runs * QUICK.steps
    assert sum(r["kind"] == "eval" for r in records) == runs * 2 * len(QUICK.eval_lengths)
    for task in QUICK.tasks:
        for model in QUICK.models:
            r = summary["results"][task][model]
            for decoder in ("greedy", "beam"):
                for length in map(str, QUICK.eval_lengths):
                    row = r["decoders"][decoder][length]
                    assert 0 <= row["exact_match"] <= row["token_accuracy"] + 1e-12 <= 1 + 1e-12
                    if task == "translation":
                        assert 0 <= row["bleu"] <= 100
            if model in bn.ATTENTION:
                for length in map(str, QUICK.eval_lengths):
                    a = r["attention"][length]
                    assert 0 <= a["entropy"] <= a["uniform_entropy"] + 1e-6
                    assert a["uniform_entropy"] == pytest.approx(math.log(int(length)))
    assert set(summary["headline"]) == {f"{t}_{d}" for t in QUICK.tasks for d in ("greedy", "beam")}


@pytest.mark.slow  # two quick runs and a kill: ~30 s; resume is covered in the default suite by tests/experiments/test_resume.py
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed, cache = tmp_path / "killed", xla_cache("bottleneck")
    # checkpoint 7: inside the first run (12 steps); the kill lands wherever the run is by then
    argv = ["--quick", "--out", str(killed), "--checkpoint-every", "7"]
    procs.kill_at_checkpoint(procs.start("bottleneck", argv, cache_dir=cache, log=tmp_path / "k.log"),
                             killed, 7, tmp_path / "k.log")
    assert not (killed / "metrics.json").exists()
    procs.run("bottleneck", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "r.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)


def test_reversal_batch_is_the_reversal_and_shared_by_models():
    c = QUICK
    batch = bn.train_chunk("reversal", 0, c)
    again = bn.train_chunk("reversal", 0, c)
    for k in batch:
        np.testing.assert_array_equal(batch[k], again[k])
    src, lengths = batch["src"].reshape(-1, c.max_length), batch["src_lengths"].ravel()
    tgt_in, tgt_out = (batch[k].reshape(-1, batch[k].shape[-1]) for k in ("tgt_in", "tgt_out"))
    assert lengths.min() >= c.min_length and lengths.max() <= c.max_length
    for i, n in enumerate(lengths):
        assert (src[i, :n] >= bn.FIRST).all() and (src[i, n:] == bn.PAD).all()
        np.testing.assert_array_equal(tgt_out[i, :n], src[i, :n][::-1])
        assert tgt_out[i, n] == bn.EOS and tgt_in[i, 0] == bn.BOS
        np.testing.assert_array_equal(tgt_in[i, 1:n + 1], tgt_out[i, :n])
    assert not np.array_equal(bn.train_chunk("reversal", 1, c)["src"], batch["src"])


def test_translation_batch_decodes_to_the_grammar():
    c = QUICK
    test = bn.test_set("translation", c)
    assert sorted(set(test["src_lengths"].tolist())) == sorted(c.eval_lengths)
    for i in range(len(test["src"])):
        n = test["src_lengths"][i]
        words = [grammar.SOURCE_WORDS[t - bn.FIRST] for t in test["src"][i, :n]]
        target = [grammar.TARGET_WORDS[t - bn.FIRST] for t in test["tgt_out"][i, :test["tgt_lengths"][i] - 1]]
        assert target == grammar.translate(words)
        assert test["tgt_out"][i, test["tgt_lengths"][i] - 1] == bn.EOS


def test_sequence_scores_against_brute_force():
    rng = np.random.default_rng(0)
    ref = np.zeros((200, 7), np.int32)
    lengths = rng.integers(1, 8, 200)
    for i, n in enumerate(lengths):
        ref[i, :n - 1] = rng.integers(3, 6, n - 1)
        ref[i, n - 1] = bn.EOS
    hyp = np.where(rng.random(ref.shape) < 0.15, rng.integers(0, 6, ref.shape), ref)
    exact, token = bn.sequence_scores(hyp, ref, lengths)
    for i, n in enumerate(lengths):
        assert exact[i] == (list(hyp[i, :n]) == list(ref[i, :n]))
        assert token[i] == pytest.approx(sum(hyp[i, j] == ref[i, j] for j in range(n)) / n)


def test_attention_stats_by_hand():
    s = 4
    mirror = np.zeros((1, 5, 6))
    for i in range(s):
        mirror[0, i, s - 1 - i] = 1.0
    mirror[0, 4, :s] = 0.25  # the EOS step: uniform, entropy log 4
    entropy, mirrored, near = bn.attention_stats(mirror, np.array([s]), np.array([5]))
    assert entropy[0] == pytest.approx(math.log(4) / 5)
    assert mirrored[0] == near[0] == 1.0
    # what Bahdanau and Luong-dot models learn: step i >= 1 attends s - i, the position of the
    # token just fed in, one to the right of the mirror
    shifted = np.zeros((1, 5, 6))
    for i in range(s):
        shifted[0, i, s - max(i, 1)] = 1.0
    _, mirrored, near = bn.attention_stats(shifted, np.array([s]), np.array([5]))
    assert mirrored[0] == 0.25 and near[0] == 1.0
    uniform = np.full((1, 5, 6), 0.25)
    entropy, mirrored, near = bn.attention_stats(uniform, np.array([s]), np.array([5]))
    assert entropy[0] == pytest.approx(math.log(4))
    assert mirrored[0] == 0.25  # argmax of a tie is position 0, the mirror of step 3 only
    assert near[0] == 0.5  # ... and within one of the mirrors of steps 2 and 3


def test_default_models_share_the_parameter_budget():
    """At the default sizes every recurrent model is within 6% of the Bahdanau budget, the
    Transformer (width a multiple of 2 * heads = 8, so coarser) within 20% (counted with
    seqjax.nn.count_params on abstract shapes: nothing is initialised)."""
    c = bn.Config()
    for task in c.tasks:
        sizes = bn.sizes(task, c)
        for model, entry in sizes["models"].items():
            tolerance = 0.2 if model == "transformer" else 0.06
            assert abs(entry["params"] / sizes["budget"] - 1) < tolerance, (task, model, entry)


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        bn.main(["--models", "bottleneck,rnn"])
    assert "models must be a non-empty subset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bn.main(["--eval-lengths", "70"])
    assert "eval_lengths must be non-empty and within" in capsys.readouterr().err
