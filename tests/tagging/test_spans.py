"""Strict IOB2 spans and span F1 against hand examples and seqeval."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.tagging import iob2_spans, span_f1


def test_spans_by_hand():
    assert iob2_spans(["O", "B-PER", "I-PER", "B-PER", "I-LOC", "I-LOC", "B-ORG"]) == [
        ("PER", 1, 3), ("PER", 3, 4), ("ORG", 6, 7)]  # an I- after another type starts nothing
    assert iob2_spans(["I-PER", "I-PER"]) == []
    assert iob2_spans([]) == []
    with pytest.raises(ValueError, match="IOB2"):
        iob2_spans(["B-PER", "E-PER"])


def _random_tags(rng, n):
    return [str(rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])) for _ in range(n)]


def test_f1_equals_seqeval_strict_on_random_tags():
    metrics = pytest.importorskip("seqeval.metrics", reason="the reference is seqeval: pip install seqeval")
    from seqeval.scheme import IOB2

    rng = np.random.default_rng(0)
    for trial in range(40):
        gold = [_random_tags(rng, int(rng.integers(1, 12))) for _ in range(6)]
        pred = [[t if rng.random() < 0.7 else str(rng.choice(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]))
                 for t in sent] for sent in gold]
        ours = span_f1(gold, pred)
        for name, fn in (("f1", metrics.f1_score), ("precision", metrics.precision_score),
                         ("recall", metrics.recall_score)):
            want = fn(gold, pred, mode="strict", scheme=IOB2, zero_division=0)
            assert ours[name] == pytest.approx(want), (trial, name)
        report = metrics.classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True,
                                                zero_division=0)
        for kind, s in ours["per_type"].items():
            if s["support"]:
                assert s["f1"] == pytest.approx(report[kind]["f1-score"]), (trial, kind)
                assert s["support"] == report[kind]["support"]


def test_f1_bad_input():
    with pytest.raises(ValueError, match="same number of sentences"):
        span_f1([["O"]], [])
    with pytest.raises(ValueError, match="sentence 0"):
        span_f1([["O", "O"]], [["O"]])
