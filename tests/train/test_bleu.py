"""seqjax.train.metrics.corpus_bleu against hand-computed values and, when installed, sacreBLEU."""

import math

import numpy as np
import pytest

from seqjax.train.metrics import corpus_bleu, ngram_stats


def test_hand_computed_values():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2, equal lengths: BLEU = 100 * (1/5) ** (1/4)
    assert corpus_bleu([list("abcde")], [list("abcdf")]) == pytest.approx(100 * 0.2 ** 0.25)
    # every precision 1, hypothesis 4 tokens against 6: BP = exp(1 - 6/4)
    assert corpus_bleu([list("abcd")], [list("abcdef")]) == pytest.approx(100 * math.exp(-0.5))
    assert corpus_bleu([list("abcdef")], [list("abcdef")]) == pytest.approx(100.0)
    # Papineni et al.'s modified unigram precision: "the" x7 against a reference with two "the"
    m, t = ngram_stats(["the"] * 7, "the cat is on the mat".split())
    assert (m[0], t[0]) == (2, 7) and m[1] == 0
    assert corpus_bleu([["the"] * 7], ["the cat is on the mat".split()], smooth="none") == 0.0
    # exp smoothing: p2..p4 are 0 -> 1/(2 * 6), 1/(4 * 5), 1/(8 * 4); BP = 1 (7 > 6)
    expected = 100 * math.exp((math.log(2 / 7) + math.log(1 / 12) + math.log(1 / 20) + math.log(1 / 32)) / 4)
    assert corpus_bleu([["the"] * 7], ["the cat is on the mat".split()]) == pytest.approx(expected)
    # corpus level: counts are pooled, not sentence scores averaged
    hyps, refs = [list("abcd"), list("abcd")], [list("abcd"), list("abce")]
    expected = 100 * (7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** 0.25
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)
    assert corpus_bleu([[]], [list("abc")]) == 0.0
    assert corpus_bleu([list("ab")], [list("ab")]) == 0.0  # no 4-grams at all


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        corpus_bleu([["a"]], [])
    with pytest.raises(ValueError, match="smooth"):
        corpus_bleu([["a"]], [["a"]], smooth="floor")
    with pytest.raises(ValueError, match="max_order"):
        corpus_bleu([["a"]], [["a"]], max_order=0)


def test_equals_sacrebleu_on_random_corpora():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 8))
        vocab = int(rng.integers(2, 8))
        refs = [[f"w{x}" for x in rng.integers(0, vocab, rng.integers(1, 15))] for _ in range(n)]
        hyps = []
        for r in refs:  # a noisy copy: substitutions, a deletion or an insertion
            h = [w if rng.random() > 0.3 else f"w{rng.integers(0, vocab)}" for w in r]
            if rng.random() < 0.3 and h:
                del h[int(rng.integers(len(h)))]
            if rng.random() < 0.3:
                h.insert(int(rng.integers(len(h) + 1)), f"w{rng.integers(0, vocab)}")
            hyps.append(h)
        ours = corpus_bleu(hyps, refs)
        theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]],
                                       tokenize="none").score
        assert ours == pytest.approx(theirs, abs=1e-9), trial
