"""experiments.embeddings: the subword models scored with unseen words composed from n-grams,
and the analogy accuracy by section, in the --quick run's metrics."""

from __future__ import annotations

import json

import pytest

from experiments import embeddings as em


@pytest.fixture(scope="module")
def summary(quick_run_dir):
    out = quick_run_dir("embeddings")
    assert (out / "analogy_sections.png").stat().st_size > 0
    for model in em.Config(**em.Config.QUICK).models:
        assert (out / f"{model}_vectors.txt").is_file()
    return json.loads((out / "metrics.json").read_text())


def test_subword_models_score_more_pairs_than_their_vocabulary_covers(summary):
    for model, r in summary["models"].items():
        subword = model in ("fasttext", "charngram", "gensim_fasttext")
        for name in ("wordsim353", "simlex999"):
            assert (f"{name}_subword" in r) == subword, (model, name)
            if subword:
                s, plain = r[f"{name}_subword"], r[name]
                assert s["pairs"] == plain["pairs"]
                # composed pairs are exactly the pairs gained over the vocabulary-only score
                assert s["covered"] == plain["covered"] + s["composed"] and s["composed"] > 0
                assert s["covered"] + s["oov"] == s["pairs"]


def test_analogy_sections_sum_to_the_totals(summary):
    for r in summary["models"].values():
        for method in ("analogy_3cosadd", "analogy_3cosmul"):
            a = r[method]
            assert len(a["sections"]) == 14
            assert sum(s["questions"] for s in a["sections"].values()) == a["questions"] == 19544
            assert sum(s["correct"] for s in a["sections"].values()) == a["correct"]
            assert sum(s["covered"] for s in a["sections"].values()) == a["covered"]


def test_the_table_prints_the_new_sections(summary):
    text = em.format_table(summary)
    assert "unseen words composed from n-grams" in text and "gram8-plural" in text
