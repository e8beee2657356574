"""WordPiece and BPE against Hugging Face ``tokenizers`` on a shared corpus (the Lee news corpus
that gensim ships), plus save/load and the encoding rules."""

import collections
import json

import pytest

from seqjax.data.tokenizers import BPETokenizer, load_tokenizer
from seqjax.data.tokenizers.bpe import pretokenize
from seqjax.data.tokenizers import WordPieceTokenizer

hf = pytest.importorskip("tokenizers")
corpora = pytest.importorskip("seqjax.data.corpora")
if not corpora.gensim_available():
    pytest.skip("needs gensim's test data", allow_module_level=True)

TRAIN = corpora.lee_corpus("background")
HELD_OUT = corpora.lee_corpus("test")


def hf_wordpiece(docs, vocab_size, min_frequency):
    tok = hf.Tokenizer(hf.models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = hf.normalizers.Lowercase()
    tok.pre_tokenizer = hf.pre_tokenizers.BertPreTokenizer()
    trainer = hf.trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                           special_tokens=["[UNK]"], show_progress=False)
    tok.train_from_iterator(docs, trainer)
    return tok


@pytest.mark.parametrize("vocab_size,min_frequency", [(1000, 2), (5000, 0)])
def test_wordpiece_vocabulary_and_encodings_agree_with_hf(vocab_size, min_frequency):
    tok = hf_wordpiece(TRAIN, vocab_size, min_frequency)
    hf_vocab = tok.get_vocab()
    by_id = sorted(hf_vocab, key=hf_vocab.get)
    # HF's ##c ids follow a per-process hash order; given that order, ours reproduces the run
    order = [t for t in by_id if t.startswith("##") and len(t) == 3]
    ours = WordPieceTokenizer.train(TRAIN, vocab_size=vocab_size, min_frequency=min_frequency,
                                    continuation_order=order)
    assert list(ours.vocab.id_to_token) == by_id  # same tokens, same ids
    for text in HELD_OUT + ["Unseen wörds: zebra-crossing, 3.14159 and ☃!"]:
        encoding = tok.encode(text)
        assert ours.tokenize(text) == encoding.tokens
        assert ours.encode(text).tolist() == encoding.ids
    # without the order: the same tokens except where HF's own runs differ (hash-order ties)
    plain = WordPieceTokenizer.train(TRAIN, vocab_size=vocab_size, min_frequency=min_frequency)
    assert len(set(plain.vocab.id_to_token) ^ set(by_id)) <= 8


def test_wordpiece_greedy_longest_match_and_unk():
    from seqjax.data.tokenizers import Vocabulary

    wp = WordPieceTokenizer(Vocabulary(["un", "##aff", "##able", "##a", "a", "##ff", "##f", "##b", "##le"],
                                       special_tokens=["[UNK]"], unk_token="[UNK]"))
    assert wp.tokenize("unaffable") == ["un", "##aff", "##able"]  # BERT's example
    assert wp.tokenize("unaffablex") == ["[UNK]"]                  # a word that cannot be cut
    assert wp.tokenize("un, a") == ["un", "[UNK]", "a"]            # "," alone is a word
    assert wp.decode(wp.encode("unaffable a")) == "unaffable a"
    long = WordPieceTokenizer(wp.vocab, max_input_chars_per_word=5)
    assert long.tokenize("unaffable un") == ["[UNK]", "un"]


def test_wordpiece_save_load_round_trip(tmp_path):
    wp = WordPieceTokenizer.train(HELD_OUT, vocab_size=300)
    path = wp.save(tmp_path / "wp.json")
    data = json.loads(path.read_text())
    assert data["type"] == "wordpiece" and data["prefix"] == "##"
    again = load_tokenizer(path)
    assert again == wp and WordPieceTokenizer.load(path) == wp
    assert again.encode(HELD_OUT[0]).tolist() == wp.encode(HELD_OUT[0]).tolist()
    with pytest.raises(ValueError, match="continuation_order"):
        WordPieceTokenizer.train(["ab"], continuation_order=["##z"])
    with pytest.raises(ValueError, match="vocab_size"):
        WordPieceTokenizer.train(["ab"], vocab_size=0)


def naive_bpe_ties(text, steps):
    """Recount every pair at every step (the definition): the steps whose top count is tied."""
    counts = collections.Counter(pretokenize(text))
    words = {w: list(w[:-1]) + [w[-1] + "</w>"] for w in counts}
    ties, merges = {}, []
    for step in range(steps):
        pairs = collections.Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        best = max(pairs.values())
        tied = {p for p, n in pairs.items() if n == best}
        ties[step] = tied
        a, b = min(tied)  # ours: smallest pair in string order
        merges.append((a, b))
        for w, symbols in words.items():
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[w] = out
    return merges, ties


def test_bpe_agrees_with_hf_under_the_same_pre_tokenisation():
    """HF BPE with our pre-tokenisation (a ``Split`` on ``\\s*\\S+|\\s+``, whitespace kept in front
    of the word) and end-of-word suffix ``</w>``: the merges agree up to the first tied count that
    the two break differently (ours by string order, HF by token id), and that divergence is a
    tie; HF's BPE model built from our merges encodes held-out text to the same tokens."""
    text = "\n".join(HELD_OUT)
    tok = hf.Tokenizer(hf.models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(r"\s*\S+|\s+"), behavior="isolated")
    trainer = hf.trainers.BpeTrainer(vocab_size=800, min_frequency=2, special_tokens=["[UNK]"],
                                     end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator([text], trainer)
    hf_merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                 for m in json.loads(tok.to_str())["model"]["merges"]]
    ours = BPETokenizer.train(text, num_merges=len(hf_merges), min_frequency=2)
    first = next((i for i, (a, b) in enumerate(zip(hf_merges, ours.merges)) if a != b), len(hf_merges))
    assert 20 <= first < len(hf_merges)  # on this corpus they do diverge, at a tie
    naive, ties = naive_bpe_ties(text, first + 1)
    assert naive[:first + 1] == ours.merges[:first + 1]  # our incremental trainer = the definition
    assert {hf_merges[first], ours.merges[first]} <= ties[first] and len(ties[first]) > 1
    # encoding: HF's BPE model with our vocabulary and merges
    vocab = {t: i for i, t in enumerate(ours.vocab.id_to_token)}
    model = hf.models.BPE(vocab=vocab, merges=ours.merges, unk_token="[UNK]", end_of_word_suffix="</w>")
    enc = hf.Tokenizer(model)
    enc.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(r"\s*\S+|\s+"), behavior="isolated")
    for doc in corpora.lee_corpus("background")[:40] + ["  ünseen ☃ chars\n"]:
        assert enc.encode(doc).ids == ours.encode(doc).tolist()
