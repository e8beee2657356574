"""Tokenizers with vocabularies that round-trip: characters, words, byte-pair encoding, WordPiece.

Pure Python and NumPy. Every tokenizer has ``encode(text) -> int32 array``,
``decode(ids) -> str``, ``vocab`` (a :class:`Vocabulary`), ``len(tokenizer)`` (the vocabulary
size) and ``save(path)`` / ``load(path)`` as JSON (:func:`load_tokenizer` reads any of them).

* :class:`CharTokenizer`: one id per character. ``decode(encode(text)) == text`` for every text
  whose characters are in the vocabulary. Fitted vocabularies are sorted by code point, so the
  same text always gives the same ids (a vocabulary built as ``list(set(text))`` depends on
  ``PYTHONHASHSEED``).
* :class:`WordTokenizer`: lower-casing and punctuation splitting (BERT's basic tokenizer, rules
  in :func:`split_words`). Whitespace is not kept, so ``decode`` joins tokens with one space:
  ``decode(encode(text)) == " ".join(tokenize(text))``, which is ``text`` itself for text that is
  already normalised (lower case, tokens separated by single spaces, as the Pang-Lee corpus).
* :class:`BPETokenizer`: byte-pair encoding (Sennrich, Haddow & Birch 2016) learned from a local
  corpus: start from characters, repeatedly merge the most frequent adjacent pair (counted over
  word frequencies) up to a vocabulary size or merge count. Whitespace is kept (attached to the
  front of the following word), so ``decode(encode(text)) == text`` for any text made of
  characters seen in training.
* :class:`WordPieceTokenizer`: BERT's WordPiece (greedy longest-match-first pieces, ``##``
  continuations), trained as Hugging Face ``tokenizers`` does (:mod:`.wordpiece`).

Unknown input: a tokenizer whose vocabulary has an ``unk_token`` maps anything unknown to it (the
round trip then shows ``[UNK]``); one without raises ``ValueError`` naming what was unknown.

Example::

    >>> from seqjax.data.tokenizers import CharTokenizer, WordTokenizer, BPETokenizer
    >>> chars = CharTokenizer.fit("hello world! ")
    >>> chars.vocab.tokens
    (' ', '!', 'd', 'e', 'h', 'l', 'o', 'r', 'w')
    >>> chars.encode("hello").tolist(), chars.decode(chars.encode("hello"))
    ([4, 3, 5, 5, 6], 'hello')
    >>> WordTokenizer.fit(["The cat sat."]).tokenize("The cat, sat!")
    ['the', 'cat', ',', 'sat', '!']
    >>> bpe = BPETokenizer.train("low low low lower lowest", num_merges=3)
    >>> bpe.tokenize(" lowest")
    [' low', 'e', 's', 't</w>']
"""

from seqjax.data.tokenizers.base import load_tokenizer
from seqjax.data.tokenizers.bpe import BPETokenizer
from seqjax.data.tokenizers.char import CharTokenizer
from seqjax.data.tokenizers.vocabulary import PAD, UNK, Vocabulary
from seqjax.data.tokenizers.wordpiece import WordPieceTokenizer
from seqjax.data.tokenizers.words import WordTokenizer, is_punctuation, split_words

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "PAD",
    "UNK",
    "Vocabulary",
    "WordPieceTokenizer",
    "WordTokenizer",
    "is_punctuation",
    "load_tokenizer",
    "split_words",
]
