"""experiments.tagging: the --quick run end to end, a SIGKILL and resume, and the baseline and
scoring it reports against independent references."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import experiment_processes as procs
from experiments import tagging as tg


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("tagging")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "tagging.png", "examples.txt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = tg.Config(**tg.Config.QUICK)
    assert set(summary["results"]) == {"majority", *config.models}
    for model, by_split in summary["results"].items():
        for split in tg.TEST_SPLITS:
            r = by_split[split]
            assert 0.0 <= r["f1"] <= 1.0 and 0.0 <= r["token_accuracy"] <= 1.0
            if r["seqeval_f1"] is not None:
                assert r["f1"] == pytest.approx(r["seqeval_f1"]), (model, split)
    # The majority tagger never saw the unseen names: it finds none of them.
    assert summary["results"]["majority"]["test_unseen"]["recall"] == 0.0
    assert summary["corpus"]["test_unseen_oov_token_rate"] > summary["corpus"]["test_seen_oov_token_rate"]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("tagging")
    log = tmp_path / "killed.log"
    proc = procs.start("tagging", ["--quick", "--out", str(killed), "--checkpoint-every", "20"], cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 20, log)   # step 20 of 40
    assert not (killed / "metrics.json").exists()
    procs.run("tagging", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)


def test_majority_tagger_is_the_most_frequent_training_tag():
    corpus = tg.Corpus(tg.Config(train_sentences=200, test_sentences=20))
    tagger = tg.majority_tagger(corpus)
    counts = {}
    for words, tags in corpus.sentences["train"]:
        for w, t in zip(words, tags):
            counts.setdefault(w.lower(), Counter())[t] += 1
    for word, c in counts.items():
        top = max(c.values())
        assert tagger([word]) [0] in {t for t, n in c.items() if n == top}
    assert tagger(["Zzyzx"]) == ["O"]


def test_corpus_arrays_round_trip():
    corpus = tg.Corpus(tg.Config(train_sentences=50, test_sentences=10))
    a = corpus.arrays["test_unseen"]
    for i, (words, tags) in enumerate(corpus.sentences["test_unseen"]):
        n = a["lengths"][i]
        assert n == len(words)
        assert [tg.TAGS[t] for t in a["tags"][i, :n]] == tags
        assert [corpus.vocab[w] if w != 1 else tg.UNK for w in a["words"][i, :n]] == [
            w.lower() if w.lower() in corpus.index else tg.UNK for w in words]
        assert (a["words"][i, n:] == 0).all()


def test_invalid_continuation_rate_by_hand():
    predicted = [["I-PER", "O", "B-LOC", "I-LOC", "I-PER"], ["B-ORG", "I-ORG"]]
    assert tg.invalid_continuations(predicted) == pytest.approx(2 / 4)  # 2 of the 4 I- tags
    assert tg.invalid_continuations([["O", "B-PER"]]) == 0.0
