"""seqjax.data.tokenizers: characters, words and BPE; round trips, unknowns, JSON, determinism."""

import collections

import numpy as np
import pytest

from seqjax.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Vocabulary,
    WordTokenizer,
    load_tokenizer,
    split_words,
)

TEXT = "The cat sat on the mat.\nThe dog, however, did NOT sit -- it's 4:00pm!  Ünïcödé too.\n"


# --- vocabulary -------------------------------------------------------------------------------


def test_vocabulary_lookup_unknown_and_errors():
    vocab = Vocabulary(["a", "b"], special_tokens=("[PAD]", "[UNK]"), unk_token="[UNK]")
    assert len(vocab) == 4 and vocab.id_to_token == ("[PAD]", "[UNK]", "a", "b")
    assert vocab.token_to_id("b") == 3 and vocab.token_to_id("zzz") == 1 and "a" in vocab
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    strict = Vocabulary(["a"])
    with pytest.raises(ValueError, match="no unk_token"):
        strict.token_to_id("b")
    with pytest.raises(ValueError, match="repeat"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="unk_token"):
        Vocabulary(["a"], unk_token="[UNK]")
    with pytest.raises(ValueError, match="outside"):
        vocab.lookup(4)


# --- characters -------------------------------------------------------------------------------


def test_char_tokenizer_round_trip_and_sorted_vocab():
    tok = CharTokenizer.fit(TEXT)
    assert list(tok.vocab.tokens) == sorted(set(TEXT))  # deterministic, not list(set(...))
    ids = tok.encode(TEXT)
    assert ids.dtype == np.int32 and ids.shape == (len(TEXT),)
    assert tok.decode(ids) == TEXT
    assert tok.decode(ids.tolist()) == TEXT
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_char_tokenizer_seed_vocabulary():
    tok = CharTokenizer.fit("hello world! " * 20)
    assert tok.vocab.tokens == (" ", "!", "d", "e", "h", "l", "o", "r", "w") and len(tok) == 9


def test_char_tokenizer_unknown_handling():
    strict = CharTokenizer.fit("abc")
    with pytest.raises(ValueError, match=r"\['x', 'z'\]"):
        strict.encode("abxcz")
    tok = CharTokenizer.fit("abc", special_tokens=("[PAD]",), unk_token="[UNK]")
    assert tok.vocab.id_to_token[:2] == ("[PAD]", "[UNK]")
    ids = tok.encode("axb")
    assert ids.tolist() == [2, 1, 3]
    assert tok.decode(ids) == "a[UNK]b" and tok.decode(ids, skip_special=True) == "ab"
    rare = CharTokenizer.fit("aaab", unk_token="[UNK]", min_count=2)
    assert rare.decode(rare.encode("ab")) == "a[UNK]"
    with pytest.raises(ValueError, match="unk_token"):
        CharTokenizer.fit("aaab", min_count=2)


def test_char_tokenizer_save_load(tmp_path):
    tok = CharTokenizer.fit(TEXT, unk_token="[UNK]")
    path = tok.save(tmp_path / "chars.json")
    again = CharTokenizer.load(path)
    assert again == tok and load_tokenizer(path) == tok
    np.testing.assert_array_equal(again.encode(TEXT), tok.encode(TEXT))
    with pytest.raises(ValueError, match="not a WordTokenizer"):
        WordTokenizer.load(path)


# --- words ------------------------------------------------------------------------------------


def test_split_words_rules():
    assert split_words("Don't stop, U.S.A.!") == ["don", "'", "t", "stop", ",", "u", ".", "s", ".", "a", ".", "!"]
    assert split_words("  Hello\tWORLD\n") == ["hello", "world"]
    assert split_words("Hello, World", lowercase=False) == ["Hello", ",", "World"]
    assert split_words("a-b c.d", split_punctuation=False) == ["a-b", "c.d"]
    assert split_words("«quoted» — dash") == ["«", "quoted", "»", "—", "dash"]
    assert split_words("") == []


def test_word_tokenizer_vocab_order_round_trip_and_unknowns(tmp_path):
    texts = ["the cat sat on the mat .", "the dog sat ."]
    tok = WordTokenizer.fit(texts)
    assert tok.vocab.id_to_token[:2] == ("[PAD]", "[UNK]")
    # most frequent first, ties in string order: the 3, sat 2, . 2 -> ('.', 'sat'), then the rest
    assert tok.vocab.tokens == ("the", ".", "sat", "cat", "dog", "mat", "on")
    for text in texts:  # already normalised: exact round trip
        assert tok.decode(tok.encode(text)) == text
    raw = "The  CAT sat, on the mat."
    assert " ".join(tok.tokenize(raw)) == "the cat sat , on the mat ."
    assert tok.decode(tok.encode(raw)) == "the cat sat [UNK] on the mat ."  # ',' is not in the vocabulary
    assert tok.decode(tok.encode("the bird"), skip_special=True) == "the"
    small = WordTokenizer.fit(texts, max_size=4)
    assert len(small) == 4 and small.vocab.tokens == ("the", ".")
    path = tok.save(tmp_path / "words.json")
    assert load_tokenizer(path) == tok
    strict = WordTokenizer.fit(texts, special_tokens=(), unk_token=None)
    with pytest.raises(ValueError, match="'bird'"):
        strict.encode("the bird")


# --- byte-pair encoding -----------------------------------------------------------------------


def naive_bpe(word_counts: dict[str, int], num_merges: int, eow: str = "</w>") -> list[tuple[str, str]]:
    """Sennrich et al. (2016), Algorithm 1, recounting everything each step; ties as documented."""
    vocab = {tuple(w[:-1]) + (w[-1] + eow,): n for w, n in word_counts.items()}
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for symbols, n in vocab.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        new_vocab = {}
        for symbols, n in vocab.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            new_vocab[tuple(out)] = new_vocab.get(tuple(out), 0) + n
        vocab = new_vocab
    return merges


def test_bpe_sennrich_example():
    # The paper's toy dictionary {low: 5, lower: 2, newest: 6, widest: 3}.
    counts = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    bpe = BPETokenizer.train(counts, num_merges=4, unk_token=None)
    # e s (9) and s t</w> (9) tie: ('e', 's') is first in string order; then es t</w> (9),
    # l o (7) and e w (6: "newest"; lower's w e is 2).
    assert bpe.merges == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w")]
    assert bpe.tokenize("lowest") == ["lo", "w", "est</w>"]
    assert bpe.tokenize("low") == ["lo", "w</w>"]
    assert bpe.merges == naive_bpe(counts, 4)


def test_bpe_matches_naive_reference_on_random_corpora():
    rng = np.random.default_rng(0)
    for trial in range(5):
        words = ["".join(rng.choice(list("abcde"), size=rng.integers(1, 7))) for _ in range(40)]
        counts = {w: int(rng.integers(1, 6)) for w in words}
        bpe = BPETokenizer.train(counts, num_merges=30, unk_token=None)
        assert bpe.merges == naive_bpe(counts, 30), trial


def test_bpe_round_trip_is_exact_and_compresses():
    bpe = BPETokenizer.train(TEXT * 3, vocab_size=120)
    assert len(bpe) <= 120
    ids = bpe.encode(TEXT)
    assert ids.dtype == np.int32 and len(ids) < len(TEXT)
    assert bpe.decode(ids) == TEXT  # whitespace, newlines, case and punctuation all kept
    other = "  cat\n\nmat sat  "
    assert bpe.decode(bpe.encode(other)) == other
    assert "".join(t.replace("</w>", "") for t in bpe.tokenize(TEXT)) == TEXT


def test_bpe_stopping_rules_unknowns_and_errors():
    bpe = BPETokenizer.train("aaaa bbbb", num_merges=100)
    # Merges stop when no pair occurs twice (min_frequency=2).
    assert all(len(a + b) > 0 for a, b in bpe.merges) and len(bpe.merges) < 100
    base = BPETokenizer.train("abc abd", num_merges=0)
    # specials + chars {' ', a, b, c, d} plain and word-final
    assert len(base) == 1 + 2 * 5 and base.merges == []
    assert base.decode(base.encode("zab")) == "[UNK]ab"
    with pytest.raises(ValueError, match="vocab_size or num_merges"):
        BPETokenizer.train("abc")
    with pytest.raises(ValueError, match="smaller than"):
        BPETokenizer.train("abcdef", vocab_size=3)
    with pytest.raises(ValueError, match="end-of-word marker"):
        BPETokenizer.train("a</w>b", num_merges=2)
    with pytest.raises(ValueError, match="end-of-word marker"):
        base.encode("x</w>")
    strict = BPETokenizer.train("abc", num_merges=1, unk_token=None)
    with pytest.raises(ValueError, match="no unk_token"):
        strict.encode("z")


def test_bpe_is_deterministic_and_saves(tmp_path):
    a = BPETokenizer.train([TEXT, TEXT.upper()], vocab_size=150)
    b = BPETokenizer.train([TEXT, TEXT.upper()], vocab_size=150)
    assert a == b
    path = a.save(tmp_path / "bpe.json")
    again = load_tokenizer(path)
    assert isinstance(again, BPETokenizer) and again == a
    np.testing.assert_array_equal(again.encode(TEXT), a.encode(TEXT))
