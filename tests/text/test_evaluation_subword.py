"""evaluate_word_pairs(oov="subword"): pairs with unseen words scored with the vectors a subword
model composes, against a direct numpy / scipy computation; the analogy sections add up."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from seqjax.text.embeddings.vectors import WordVectors
from seqjax.text.evaluation import evaluate_word_analogies, evaluate_word_pairs


def _model(seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]
    composable = {f"new{i}": rng.normal(size=8) for i in range(10)}  # unseen words the model composes
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    return WordVectors(words, vectors, oov=lambda w: composable.get(w)), composable


def _cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def test_subword_scores_against_direct_computation():
    wv, composable = _model()
    rng = np.random.default_rng(1)
    vocab = list(wv.words) + list(composable) + ["nothing1", "nothing2"]  # the last two: no vector at all
    # distinct unordered pairs of distinct words (no exact ties of the cosines: float32 rounding
    # would break them differently from this float64 reference); every fifth in upper case
    seen, pairs = set(), []
    while len(pairs) < 200:
        a, b = (str(w) for w in rng.choice(vocab, 2, replace=False))
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            pairs.append((a.upper() if len(pairs) % 5 == 0 else a, b, float(rng.uniform(0, 10))))

    def vec(w):
        w = w.lower()
        return wv.vectors[wv.index[w]] if w in wv.index else composable.get(w)

    gold, model, cgold, cmodel, missing = [], [], [], [], 0
    for a, b, s in pairs:
        u, v = vec(a), vec(b)
        if u is None or v is None:
            missing += 1
            continue
        gold.append(s)
        model.append(_cos(u, v))
        if a.lower() not in wv.index or b.lower() not in wv.index:
            cgold.append(s)
            cmodel.append(_cos(u, v))
    r = evaluate_word_pairs(wv, pairs, oov="subword")
    assert (r["covered"], r["oov"], r["composed"]) == (len(gold), missing, len(cgold))
    assert 0 < missing and 0 < len(cgold) < len(gold)
    assert r["spearman"] == pytest.approx(stats.spearmanr(gold, model)[0], abs=1e-6)
    assert r["spearman_composed"] == pytest.approx(stats.spearmanr(cgold, cmodel)[0], abs=1e-6)
    # the in-table pairs are scored as with "skip"
    skip = evaluate_word_pairs(wv, pairs)
    assert skip["covered"] == len(gold) - len(cgold) and "composed" not in skip


def test_without_a_subword_model_subword_is_skip():
    wv, _ = _model()
    plain = WordVectors(wv.words, wv.vectors)
    pairs = [("w1", "w2", 1.0), ("w3", "new1", 2.0), ("w4", "w5", 3.0), ("w6", "w7", 0.5)]
    a, b = evaluate_word_pairs(plain, pairs, oov="subword"), evaluate_word_pairs(plain, pairs)
    assert a["spearman"] == b["spearman"] and a["covered"] == b["covered"] == 3 and a["composed"] == 0


def test_oov_option_is_checked():
    wv, _ = _model()
    with pytest.raises(ValueError, match="oov must be"):
        evaluate_word_pairs(wv, [("w1", "w2", 1.0)], oov="compose")


def test_analogy_sections_add_up_to_the_total():
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(40)]
    wv = WordVectors(words, rng.normal(size=(40, 6)))
    sections = {name: [tuple(str(w) for w in rng.choice(words + ["zzz"], 4, replace=False)) for _ in range(30)]
                for name in ("capital-common-countries", "family", "gram8-plural")}
    r = evaluate_word_analogies(wv, sections)
    assert set(r["sections"]) == set(sections)
    assert sum(s["correct"] for s in r["sections"].values()) == r["correct"]
    assert sum(s["covered"] for s in r["sections"].values()) == r["covered"]
    for name, s in r["sections"].items():
        assert s["covered"] == sum("zzz" not in q for q in sections[name]) and s["questions"] == 30
