"""WordPiece trained with the likelihood score count(ab) / (count(a) count(b)) (Schuster &
Nakajima 2012): against a brute-force trainer that recounts everything from scratch at every
merge, on the Hugging Face course's example and random tiny corpora."""

from __future__ import annotations

import collections
from fractions import Fraction

import numpy as np
import pytest

from seqjax.data.tokenizers.wordpiece import WordPieceTokenizer

PREFIX = "##"


def brute_force(counts: dict[str, int], vocab_size: int, min_frequency: int = 0) -> list[str]:
    """The vocabulary (special [UNK] first) by recounting symbols and pairs at every step."""
    vocab = ["[UNK]"] + sorted({c for w in counts for c in w})
    for w in sorted(counts):
        for c in w[1:]:
            if PREFIX + c not in vocab:
                vocab.append(PREFIX + c)
    words = {w: [c if k == 0 else PREFIX + c for k, c in enumerate(w)] for w in counts}
    while len(vocab) < vocab_size:
        units, pairs = collections.Counter(), collections.Counter()
        for w, symbols in words.items():
            for s in symbols:
                units[s] += counts[w]
            for a, b in zip(symbols, symbols[1:]):
                pairs[a, b] += counts[w]
        candidates = [(Fraction(n, units[a] * units[b]), -vocab.index(a), -vocab.index(b), a, b)
                      for (a, b), n in pairs.items() if n >= max(1, min_frequency)]
        if not candidates:
            break
        *_, a, b = max(candidates)
        new = a + (b[len(PREFIX):] if b.startswith(PREFIX) else b)
        if new not in vocab:
            vocab.append(new)
        for w, symbols in words.items():
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[w] = out
    return vocab


def trained(counts, vocab_size, min_frequency=0):
    wp = WordPieceTokenizer.train(counts, vocab_size=vocab_size, min_frequency=min_frequency, score="likelihood")
    return list(wp.vocab.special_tokens) + list(wp.vocab.tokens)


COURSE = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}


def test_the_course_example_first_merge_is_gs():
    vocab = trained(COURSE, 13)
    assert vocab[-1] == "##gs"  # 5 / (20 * 5) = 0.05, the largest score
    by_count = WordPieceTokenizer.train(COURSE, vocab_size=13).vocab.tokens[-1]
    assert by_count == "##ug"  # the count rule picks the most frequent pair instead (20)


@pytest.mark.parametrize("vocab_size", [12, 13, 15, 18, 25, 60])
def test_the_course_example_against_brute_force(vocab_size):
    assert trained(COURSE, vocab_size) == brute_force(COURSE, vocab_size)


@pytest.mark.parametrize("seed", range(12))
def test_random_tiny_corpora_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    letters = "abcde"[: 3 + seed % 3]
    counts = {}
    for _ in range(int(rng.integers(3, 12))):
        word = "".join(rng.choice(list(letters), size=int(rng.integers(1, 7))))
        counts[word] = counts.get(word, 0) + int(rng.integers(1, 9))
    min_frequency = int(seed % 4)
    for vocab_size in (10, 20, 40):
        assert trained(counts, vocab_size, min_frequency) == brute_force(counts, vocab_size, min_frequency), vocab_size


def test_likelihood_and_count_rules_learn_different_vocabularies_on_text():
    text = ["the cat sat on the mat", "the dog ate the hot dog", "a quick brown fox jumps over the lazy dog"] * 3
    by_count = WordPieceTokenizer.train(text, vocab_size=70, min_frequency=1)
    by_score = WordPieceTokenizer.train(text, vocab_size=70, min_frequency=1, score="likelihood")
    assert len(by_score.vocab) == len(by_count.vocab) == 70
    assert by_count.vocab.tokens != by_score.vocab.tokens
    # the trained vocabulary encodes and decodes every training word back
    for tokenizer in (by_count, by_score):
        assert tokenizer.decode(tokenizer.encode(text[2])) == text[2]


def test_unknown_score_is_refused():
    with pytest.raises(ValueError, match="score must be one of"):
        WordPieceTokenizer.train(COURSE, vocab_size=20, score="unigram")
