"""Interpolated Kneser-Ney: proper distributions, the formulas by hand, perplexity by definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqjax.text.ngram import KneserNey


def test_every_distribution_sums_to_one():
    rng = np.random.default_rng(0)
    tokens = [f"w{int(i)}" for i in rng.zipf(1.5, 3000) % 40]
    vocab = sorted(set(tokens)) + ["<unk>", "never"]
    for order in (1, 2, 3, 4):
        lm = KneserNey.fit(tokens, order, vocab=vocab)
        contexts = [(), ("w1",), ("w1", "w2"), ("never", "w3"), ("<unk>", "never", "never"),
                    tuple(tokens[100:103])]
        for context in contexts:
            total = sum(lm.prob(w, context) for w in vocab)
            assert total == pytest.approx(1.0, abs=1e-12), (order, context)
            assert all(lm.prob(w, context) > 0 for w in vocab)


def test_bigram_by_hand():
    tokens = "a b a b a c".split()
    lm = KneserNey.fit(tokens, order=2)
    # bigrams: ab x2, ba x2, ac x1 -> n1 = 1, n2 = 2, D2 = 1 / 5.
    d2 = 1 / 5
    # continuation counts of the unigrams: b after {a}, a after {b}, c after {a}: all 1 -> D1 = 1 / 1.
    assert lm.discounts == [pytest.approx(1.0), pytest.approx(d2)]
    uni = {w: max(1 - 1.0, 0) / 3 + 1.0 * 3 / 3 / 3 for w in "abc"}  # D1 = 1 leaves only the uniform
    want_b = (2 - d2) / 3 + d2 * 2 / 3 * uni["b"]  # c(a .) = 3, two distinct words after a
    assert lm.prob("b", ("a",)) == pytest.approx(want_b)
    assert lm.prob("a", ("c",)) == pytest.approx(uni["a"])  # "c" is never a context: back off


def test_perplexity_is_the_exponent_of_the_mean_log_probability():
    tokens = "the cat sat on the mat the cat ran".split()
    lm = KneserNey.fit(tokens, order=2)
    held = "the cat sat".split()
    logp = math.log(lm.prob("the", ("ran",))) + math.log(lm.prob("cat", ("the",))) + math.log(lm.prob("sat", ("cat",)))
    assert lm.perplexity(held, context=["ran"]) == pytest.approx(math.exp(-logp / 3))


def test_bad_input():
    with pytest.raises(ValueError, match="outside vocab"):
        KneserNey.fit(["a", "b"], 1, vocab=["a"])
    with pytest.raises(ValueError, match="at least order"):
        KneserNey.fit(["a"], 3)
    with pytest.raises(ValueError, match="order"):
        KneserNey.fit(["a", "b"], 0)
