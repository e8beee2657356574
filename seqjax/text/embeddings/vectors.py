"""Trained word vectors: lookup, cosine nearest neighbours, and the word2vec text format.

The word2vec text format (``save_word2vec_format(binary=False)`` in word2vec.c and gensim): a
header line ``"<count> <dim>"``, then one line per word, ``"<word> <v_1> ... <v_d>"``, most
frequent word first. gensim's ``KeyedVectors.load_word2vec_format(path)`` reads it (tested: the
same nearest neighbours). Words may not contain whitespace.

``oov`` (optional): a function ``word -> vector or None`` for words outside the table (FastText
and CharNgram compose them from character n-grams); :meth:`WordVectors.vector` uses it, the
evaluations (:mod:`seqjax.text.evaluation`) do not, as gensim's do not.

Example::

    >>> import numpy as np
    >>> wv = WordVectors(("king", "queen", "apple"), np.array([[1.0, 0.1], [0.9, 0.2], [-0.1, 1.0]]))
    >>> [w for w, _ in wv.most_similar("king", topn=2)]
    ['queen', 'apple']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["WordVectors"]


class WordVectors:
    """``words`` (most frequent first) and their ``vectors`` ``[v, d]`` (float32)."""

    def __init__(self, words, vectors, *, oov: Callable[[str], np.ndarray | None] | None = None):
        words = tuple(words)
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors must be [len(words)={len(words)}, d]; got shape {vectors.shape}.")
        if len(set(words)) != len(words):
            raise ValueError("words must be unique.")
        for w in words:
            if not w or any(c.isspace() for c in w):
                raise ValueError(f"words must be non-empty and hold no whitespace; got {w!r}.")
        self.words = words
        self.vectors = vectors
        self.index = {w: i for i, w in enumerate(words)}
        self.oov = oov
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = vectors / np.where(norms > 0, norms, 1.0)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def vector(self, word: str) -> np.ndarray:
        """The vector of ``word``; outside the table, ``oov(word)`` if given (``KeyError`` if not or
        if it returns None)."""
        i = self.index.get(word)
        if i is not None:
            return self.vectors[i]
        found = self.oov(word) if self.oov is not None else None
        if found is None:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} words) and has no subword vector.")
        return np.asarray(found, np.float32)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        u, v = self.vector(a), self.vector(b)
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-30))

    def most_similar(self, word: str | np.ndarray, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words of highest cosine similarity to ``word`` (itself excluded) or to a vector."""
        query = self.vector(word) if isinstance(word, str) else np.asarray(word, np.float32)
        query = query / (np.linalg.norm(query) + 1e-30)
        scores = self.unit @ query
        if isinstance(word, str) and word in self.index:
            scores[self.index[word]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:topn]
        return [(self.words[i], float(scores[i])) for i in top]

    def save_word2vec_format(self, path: str | os.PathLike) -> Path:
        """Write the word2vec text format (module docstring), each number as ``"{:.7g}"`` (a
        float32 round trip to about 1e-7 relative)."""
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{len(self.words)} {self.dim}\n")
            for w, v in zip(self.words, self.vectors):
                f.write(w + " " + " ".join(f"{x:.7g}" for x in v.tolist()) + "\n")
        return path

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike) -> "WordVectors":
        """Read the word2vec text format (as gensim writes it too)."""
        with open(path, encoding="utf-8") as f:
            header = f.readline().split()
            if len(header) != 2:
                raise ValueError(f"{path}: the first line must be '<count> <dim>'; got {' '.join(header)!r}.")
            count, dim = int(header[0]), int(header[1])
            words, rows = [], []
            for line in f:
                parts = line.rstrip("\n").rstrip().split(" ")
                if len(parts) != dim + 1:
                    raise ValueError(f"{path}: expected a word and {dim} numbers; got {len(parts)} fields.")
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], np.float32))
        if len(words) != count:
            raise ValueError(f"{path}: the header says {count} words; the file holds {len(words)}.")
        return cls(words, np.stack(rows) if rows else np.zeros((0, dim), np.float32))
