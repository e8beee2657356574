"""seqjax.data.reorder_translation: determinism per seed, exact source lengths, the target-length
bound, the exact-match ceiling (the mapping is a function of the source) and a worked example."""

from collections import Counter

import numpy as np
import pytest

from seqjax.data import reorder_translation as g
from seqjax.data import reorder_translation_pairs


def test_same_seed_same_pairs_other_seed_other_pairs():
    lengths = [5, 17, 60, 33]
    assert g.sample_pairs(3, lengths) == g.sample_pairs(3, lengths)
    assert g.sample_pairs(3, lengths) != g.sample_pairs(4, lengths)
    assert reorder_translation_pairs(3, lengths) == g.sample_pairs(3, lengths)
    # a Generator is drawn from: successive calls differ, and replaying it gives the same pairs
    rng = np.random.default_rng(0)
    first, second = g.sample_pair(rng, 20), g.sample_pair(rng, 20)
    assert first != second
    rng = np.random.default_rng(0)
    assert [g.sample_pair(rng, 20), g.sample_pair(rng, 20)] == [first, second]


@pytest.mark.parametrize("length", [3, 4, 5, 14, 15, 16, 29, 60, 120])
def test_source_has_exactly_the_requested_length_and_target_obeys_the_formula(length):
    for src, tgt in g.sample_pairs(length, [length] * 40):
        assert len(src) == length
        clauses = src.count("and") + 1
        assert len(tgt) == length + clauses - src.count("a")
        assert len(tgt) <= g.target_length_bound(length)
        assert all(w in g.SOURCE_WORDS for w in src) and all(w in g.TARGET_WORDS for w in tgt)


def test_bound_is_reached():
    """Fifteen 3-word clauses without articles (joined by 14 "and"s) make 59 words and 74 target
    words, the bound."""
    src = " and ".join(["cat sees dog"] * 15).split()
    assert len(src) == 59 and len(g.translate(src)) == g.target_length_bound(59) == 74


def test_every_clause_form_is_reachable():
    forms = g._clause_forms()
    assert sorted(forms) == list(range(g.MIN_CLAUSE, g.MAX_CLAUSE + 1))
    assert sum(len(v) for v in forms.values()) == 9 * 9 * 10


def _reference_translation(src):
    """An independent translator: a left-to-right state machine over word classes."""
    out, clause, np_words, role = [], {"subj": [], "obj": [], "pp": [], "verb": None, "prep": None}, [], "subj"

    def close_np():
        det = np_words[0] if np_words and np_words[0] in ("the", "a") else None
        rest = np_words[1:] if det else np_words
        noun, adjs = rest[-1], rest[:-1]
        phrase = [g.NOUNS[noun]] + [g.ADJECTIVES[a] for a in adjs[::-1]] + (["la"] if det == "the" else [])
        np_words.clear()
        return phrase

    def close_clause():
        clause[role] = close_np()
        parts = clause["subj"] + ["ga"] + clause["obj"]
        if clause["prep"]:
            parts += clause["pp"] + [g.PREPOSITIONS[clause["prep"]]]
        return parts + [g.VERBS[clause["verb"]]]

    for w in src:
        if w == "and":
            out += close_clause() + ["y"]
            clause, role = {"subj": [], "obj": [], "pp": [], "verb": None, "prep": None}, "subj"
        elif w in g.VERBS:
            clause["subj"], clause["verb"], role = close_np(), w, "obj"
        elif w in g.PREPOSITIONS:
            clause["obj"], clause["prep"], role = close_np(), w, "pp"
        else:
            np_words.append(w)
    return out + close_clause()


def test_ceiling_is_one_the_target_is_a_function_of_the_source():
    pairs = g.sample_pairs(11, np.random.default_rng(1).integers(3, 61, 3000))
    seen = {}
    for src, tgt in pairs:
        assert tgt == _reference_translation(src) == g.translate(src)
        assert seen.setdefault(tuple(src), tuple(tgt)) == tuple(tgt)  # never two targets
    assert g.EXACT_MATCH_CEILING == 1.0
    # and the reordering is real: the verb is not where it was
    assert any(src.index(w) != tgt.index(g.VERBS[w]) for src, tgt in pairs[:50] for w in src if w in g.VERBS)
    counts = Counter(len(s) for s, _ in pairs)
    assert min(counts) == 3 and max(counts) == 60


def test_worked_example():
    src = "the big red cat sees a dog near the old house".split()
    assert g.translate(src) == ["gato", "roja", "grande", "la", "ga", "perro", "casa", "vieja", "la",
                                "cerca", "mira"]


def test_bad_input_raises_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="length"):
        g.sample_pair(0, 2)
    with pytest.raises(ValueError, match="seed"):
        g.sample_pair("zero", 5)
    with pytest.raises(ValueError, match="clause 0"):
        g.translate("cat dog".split())
    with pytest.raises(ValueError, match="noun phrase"):
        g.translate("big sees dog".split())
