"""Our word-pair and analogy evaluation against gensim's on the same vectors, and the word2vec
text format read back by gensim with the same nearest neighbours."""

import numpy as np
import pytest

from seqjax.text.embeddings.vectors import WordVectors
from seqjax.text.evaluation import evaluate_word_analogies, evaluate_word_pairs

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

from seqjax.data.corpora import analogy_questions, gensim_test_data, simlex999, wordsim353  # noqa: E402


@pytest.fixture(scope="module")
def vectors():
    """Lower-case vectors for the benchmark words (some left out: OOV), with a planted analogy
    structure (b = a + offset per section) so that a fair share of answers is right."""
    rng = np.random.default_rng(0)
    sections = analogy_questions()
    words = {}
    for name, questions in list(sections.items())[:6]:
        offset = rng.normal(size=32)
        for a, b, c, d in questions[:60]:
            for x, y in ((a, b), (c, d)):
                x, y = x.lower(), y.lower()
                words.setdefault(x, rng.normal(size=32))
                words.setdefault(y, words[x] + offset + 0.8 * rng.normal(size=32))
    for a, b, _ in wordsim353() + simlex999():
        for w in (a.lower(), b.lower()):
            if rng.random() < 0.8:
                words.setdefault(w, rng.normal(size=32))
    keys = sorted(words)
    rng.shuffle(keys)
    return WordVectors(keys, np.stack([words[k] for k in keys]).astype(np.float32))


def keyed(wv):
    kv = KeyedVectors(wv.dim)
    kv.add_vectors(list(wv.words), wv.vectors)
    return kv


@pytest.mark.parametrize("name,pairs", [("wordsim353.tsv", wordsim353), ("simlex999.txt", simlex999)])
def test_word_pairs_equal_gensims(vectors, name, pairs):
    ours = evaluate_word_pairs(vectors, pairs())
    pearson, spearman, oov_ratio = keyed(vectors).evaluate_word_pairs(gensim_test_data(name))
    assert ours["spearman"] == pytest.approx(spearman[0], abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)
    assert 100 * ours["oov"] / ours["pairs"] == pytest.approx(oov_ratio)
    assert 0 < ours["oov"] < ours["pairs"] and ours["covered"] + ours["oov"] == ours["pairs"]
    zero = evaluate_word_pairs(vectors, pairs(), oov="zero")
    _, spearman0, _ = keyed(vectors).evaluate_word_pairs(gensim_test_data(name), dummy4unknown=True)
    assert zero["spearman"] == pytest.approx(spearman0[0], abs=1e-6)


@pytest.mark.parametrize("restrict", [300000, 400])
def test_3cosadd_equals_gensims_evaluate_word_analogies(vectors, restrict):
    ours = evaluate_word_analogies(vectors, analogy_questions(), method="3cosadd", restrict_vocab=restrict)
    score, sections = keyed(vectors).evaluate_word_analogies(gensim_test_data("questions-words.txt"), restrict_vocab=restrict)
    total = sections[-1]
    assert total["section"] == "Total accuracy"
    assert ours["correct"] == len(total["correct"]) and ours["covered"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["accuracy"] == pytest.approx(score)
    assert ours["accuracy"] > 0.05 and 0 < ours["coverage"] < 1
    for name, r in ours["sections"].items():
        theirs = next(x for x in sections if x["section"] == name)
        assert r["correct"] == len(theirs["correct"])


def test_3cosmul_equals_gensims_most_similar_cosmul(vectors):
    """gensim 4.4's evaluate_word_analogies ignores its similarity_function argument (it always
    calls most_similar, 3CosAdd), so 3CosMul is checked question by question against
    KeyedVectors.most_similar_cosmul."""
    kv = keyed(vectors)
    sections = {k: v[:80] for k, v in list(analogy_questions().items())[:6]}
    ours = evaluate_word_analogies(vectors, sections, method="3cosmul")
    correct = covered = 0
    for questions in sections.values():
        for q in questions:
            a, b, c, d = (w.lower() for w in q)
            if all(w in kv.key_to_index for w in (a, b, c, d)):
                covered += 1
                correct += kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0] == d
    assert (ours["correct"], ours["covered"]) == (correct, covered)
    assert 0 < correct < covered
    _, gensim_sections = kv.evaluate_word_analogies(gensim_test_data("questions-words.txt"),
                                                    similarity_function="most_similar_cosmul")
    add = evaluate_word_analogies(vectors, analogy_questions(), method="3cosadd")
    assert len(gensim_sections[-1]["correct"]) == add["correct"]  # the ignored argument


def test_word2vec_format_round_trip_through_gensim(vectors, tmp_path):
    path = vectors.save_word2vec_format(tmp_path / "v.txt")
    kv = KeyedVectors.load_word2vec_format(str(path))
    assert kv.index_to_key == list(vectors.words)
    for w in vectors.words[:25]:
        assert [n for n, _ in kv.most_similar(w, topn=10)] == [n for n, _ in vectors.most_similar(w, topn=10)]
    kv.save_word2vec_format(str(tmp_path / "g.txt"))
    again = WordVectors.load_word2vec_format(tmp_path / "g.txt")
    assert again.words == vectors.words
    np.testing.assert_allclose(again.vectors, vectors.vectors, rtol=1e-6, atol=1e-6)
    (tmp_path / "bad.txt").write_text("2 3\na 1 2 3\n")
    with pytest.raises(ValueError, match="header"):
        WordVectors.load_word2vec_format(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="method"):
        evaluate_word_analogies(vectors, {}, method="cos")
