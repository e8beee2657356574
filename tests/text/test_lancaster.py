"""The Lancaster (Paice/Husk) stemmer in seqjax.text.stemming: known stems, its place in a
pipeline beside Porter, and the missing-extra error."""

from __future__ import annotations

import sys

import pytest

from seqjax.data.corpora import MissingOptionalDependency
from seqjax.text import stemming
from seqjax.text.normalize import lowercase
from seqjax.text.pipeline import Pipeline
from seqjax.text.tokenization import word_tokenize

pytest.importorskip("nltk")

# Known Lancaster stems: the rule-by-rule examples of NLTK's documentation of Paice's (1990)
# rules (intact-word rules, the "-sion" -> "j" rewrite, the acceptability conditions on what is
# left), and the aggressive cuts Lancaster is known for next to Porter.
KNOWN = {
    "maximum": "maxim",      # remove "-um" when the word is intact
    "presumably": "presum",  # "-um" not removed once the word has been cut
    "multiply": "multiply",  # no rule for "-ply"
    "provision": "provid",   # "-sion" -> "-j", then the "j" rules
    "owed": "ow",            # a stem starting with a vowel needs 2 letters
    "ear": "ear",
    "saying": "say",         # a stem starting with a consonant needs 3 letters, one a vowel
    "crying": "cry",
    "string": "string",
    "meant": "meant",
    "cement": "cem",
    "caring": "car",         # the lecture notes' example (Porter: "care")
    "running": "run",
    "happiness": "happy",
    "studies": "study",
}


def test_known_stems():
    words = list(KNOWN)
    assert stemming.stem(words, algorithm="lancaster") == [KNOWN[w] for w in words]


def test_lancaster_is_more_aggressive_than_porter_on_the_same_words():
    words = ["argument", "caring", "cement", "destabilize", "friendship", "organization"]
    lancaster = stemming.stem(words, algorithm="lancaster")
    porter = stemming.stem(words, algorithm="porter")
    assert all(len(a) <= len(b) for a, b in zip(lancaster, porter))
    assert sum(len(a) < len(b) for a, b in zip(lancaster, porter)) >= 4


def test_lancaster_in_a_pipeline():
    p = Pipeline([("lower", lowercase), ("words", word_tokenize), ("stem", stemming.stemmer("lancaster"))])
    assert p("Caring providers") == ["car", "provid"]


def test_unknown_algorithm_names_lancaster():
    with pytest.raises(ValueError, match="lancaster"):
        stemming.stem(["x"], algorithm="lovins")


def test_missing_nltk_names_the_extra(monkeypatch):
    stemming._stemmer.cache_clear()
    monkeypatch.setitem(sys.modules, "nltk.stem", None)  # import nltk.stem raises ImportError
    try:
        with pytest.raises(MissingOptionalDependency, match=r"seqjax\[text\]"):
            stemming.stem(["caring"], algorithm="lancaster")
    finally:
        stemming._stemmer.cache_clear()
