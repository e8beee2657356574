"""CharNgram embeddings as torchtext's ``CharNGram`` uses them (Hashimoto et al. 2017, the
Joint Many-Task model's ``charNgram`` vectors), trained in JAX.

A word is ``["#BEGIN#"] + list(word) + ["#END#"]`` and its n-grams are the runs of ``n`` of those
symbols for ``n`` in 2, 3, 4, keyed ``"{n}gram-{symbols}"`` (:func:`charngram_keys`, torchtext's
keys: ``"cat"`` gives ``2gram-#BEGIN#c``, ``2gram-ca``, ..., ``4gram-cat#END#``). The word's vector
is the **mean** of the vectors of its n-grams that are in the table; no word vector of its own
(torchtext's ``__getitem__``). The table is explicit (every n-gram of the training vocabulary, no
hashing). The JMT paper pre-trains these with a skip-gram objective, which is what is trained here:
SGNS skip-gram (:mod:`seqjax.text.embeddings.sgns`) whose center is the mean of its n-gram rows,
each row receiving the full gradient (as FastText). So CharNgram is FastText without the word's
own row, with n = 2-4 and the ``#BEGIN#``/``#END#`` symbols instead of ``<``/``>``: its vectors
are orthographic *and* contextual (the lecture notes' "without contextual training" is not how
these vectors were made).

Example::

    >>> charngram_keys("cat")[:3], len(charngram_keys("cat"))
    (['2gram-#BEGIN#c', '2gram-ca', '2gram-at'], 9)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from seqjax.text.embeddings.corpus import build_vocab
from seqjax.text.embeddings.fasttext import train_subword_skipgram
from seqjax.text.embeddings.sgns import SGNSConfig
from seqjax.text.embeddings.vectors import WordVectors

__all__ = ["CharNgramConfig", "charngram_keys", "train_charngram"]


def charngram_keys(word: str, ns: Sequence[int] = (2, 3, 4)) -> list[str]:
    """torchtext's ``CharNGram`` keys of ``word``."""
    chars = ["#BEGIN#"] + list(word) + ["#END#"]
    return [f"{n}gram-{''.join(chars[i:i + n])}" for n in ns for i in range(len(chars) - n + 1)]


@dataclasses.dataclass(frozen=True)
class CharNgramConfig(SGNSConfig):
    """:class:`~seqjax.text.embeddings.sgns.SGNSConfig`'s settings plus the n-gram lengths
    (torchtext's 2, 3, 4; the JMT vectors are 100-d)."""

    ns: tuple[int, ...] = (2, 3, 4)


def train_charngram(sentences: Sequence[Sequence[str]], config: CharNgramConfig = CharNgramConfig(), *,
                    desc: str | None = None) -> WordVectors:
    """Train CharNgram vectors on tokenized ``sentences``; unseen words are composed from the
    n-grams they share with the table."""
    vocab = build_vocab(sentences, min_count=config.min_count)
    keys = [charngram_keys(w, config.ns) for w in vocab.words]
    table_index: dict[str, int] = {}
    for ks in keys:
        for k in ks:
            table_index.setdefault(k, len(table_index))
    width = max(len(ks) for ks in keys)
    rows = np.zeros((len(vocab), width), np.int32)
    mask = np.zeros((len(vocab), width), bool)
    for i, ks in enumerate(keys):
        rows[i, :len(ks)] = [table_index[k] for k in ks]
        mask[i, :len(ks)] = True
    table = train_subword_skipgram(sentences, vocab, rows, mask, len(table_index), config, desc=desc)
    word_vectors = (table[rows] * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)

    def oov(word: str):
        found = [table_index[k] for k in charngram_keys(word, config.ns) if k in table_index]
        return table[found].mean(axis=0) if found else None

    return WordVectors(vocab.words, word_vectors, oov=oov)
