"""Intrinsic evaluation of word vectors, with gensim's protocol and the coverage always stated.

* :func:`evaluate_word_pairs`: Spearman's rho (and Pearson's r) between the human similarity
  scores of word pairs (WordSim-353, SimLex-999) and the cosine similarities of the vectors.
  Words are matched case-insensitively against the ``restrict_vocab`` most frequent words; a
  pair with a word outside them is **counted** as out of vocabulary (``oov``) and left out of the
  correlation (gensim's ``evaluate_word_pairs`` with ``dummy4unknown=False``), or scored 0
  (``oov="zero"``, gensim's ``dummy4unknown=True``), or given the vector the model composes
  for it (``oov="subword"``: FastText's and CharNgram's n-gram vectors, ``vectors.vector(word)``;
  a word the model cannot compose still counts as ``oov``). With ``"subword"`` the result also
  holds ``composed`` (pairs scored with at least one composed vector) and
  ``spearman_composed`` (rho over those pairs alone: how good the vectors of unseen words are).
* :func:`evaluate_word_analogies`: Mikolov et al.'s analogy questions ``a : b :: c : ?``,
  answered over the ``restrict_vocab`` most frequent words with ``a``, ``b``, ``c`` excluded, by
  **3CosAdd** ``argmax cos(x, b) - cos(x, a) + cos(x, c)`` or **3CosMul** (Levy & Goldberg 2014)
  ``argmax cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-6)`` with ``cos' = (1 + cos) / 2``. A question
  with a word outside the restricted vocabulary is counted as uncovered; accuracy is over the
  covered questions, as gensim's ``evaluate_word_analogies`` (tested equal to it, both methods).

Example::

    >>> import numpy as np
    >>> from seqjax.text.embeddings.vectors import WordVectors
    >>> wv = WordVectors(("a", "b", "c"), np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))
    >>> r = evaluate_word_pairs(wv, [("a", "b", 9.0), ("a", "c", 1.0), ("b", "c", 5.0), ("a", "zzz", 3.0)])
    >>> r["spearman"], r["pairs"], r["covered"], r["oov"]
    (1.0, 4, 3, 1)
    >>> sub = WordVectors(wv.words, wv.vectors, oov=lambda w: np.array([0.96, 0.28]) if w == "zzz" else None)
    >>> r = evaluate_word_pairs(sub, [("a", "b", 9.0), ("a", "c", 1.0), ("b", "c", 5.0), ("a", "zzz", 3.0)],
    ...                         oov="subword")
    >>> r["covered"], r["composed"], r["oov"], round(r["spearman"], 3)
    (4, 1, 0, 0.4)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["evaluate_word_analogies", "evaluate_word_pairs"]

METHODS = ("3cosadd", "3cosmul")


def _restricted(vectors, restrict_vocab: int) -> dict[str, int]:
    """Upper-cased word -> row, for the ``restrict_vocab`` most frequent words (the most frequent
    wins among words that differ only in case, as gensim)."""
    if not isinstance(restrict_vocab, int) or restrict_vocab < 1:
        raise ValueError(f"restrict_vocab must be an integer >= 1; got {restrict_vocab!r}.")
    out: dict[str, int] = {}
    for i, w in enumerate(vectors.words[:restrict_vocab]):
        out.setdefault(w.upper(), i)
    return out


def evaluate_word_pairs(vectors, pairs: Sequence[tuple[str, str, float]], *, restrict_vocab: int = 300000,
                        oov: str = "skip") -> dict:
    """``{"spearman", "pearson", "pairs", "covered", "oov", "coverage"}`` (module docstring)."""
    from scipy import stats

    if oov not in ("skip", "zero", "subword"):
        raise ValueError(f"oov must be 'skip', 'zero' or 'subword'; got {oov!r}.")
    ok = _restricted(vectors, restrict_vocab)
    gold, model, missing = [], [], 0
    composed_gold, composed_model = [], []
    for a, b, score in pairs:
        ia, ib = ok.get(a.upper()), ok.get(b.upper())
        if ia is None or ib is None:
            if oov == "subword":
                u, v = _unit_or_composed(vectors, a, ia), _unit_or_composed(vectors, b, ib)
                if u is not None and v is not None:
                    sim = float(u @ v)
                    gold.append(float(score))
                    model.append(sim)
                    composed_gold.append(float(score))
                    composed_model.append(sim)
                    continue
            missing += 1
            if oov != "zero":
                continue
            sim = 0.0
        else:
            sim = float(vectors.unit[ia] @ vectors.unit[ib])
        gold.append(float(score))
        model.append(sim)
    covered = len(pairs) - missing
    enough = len(gold) >= 2
    out = {
        "spearman": float(stats.spearmanr(gold, model)[0]) if enough else float("nan"),
        "pearson": float(stats.pearsonr(gold, model)[0]) if enough else float("nan"),
        "pairs": len(pairs), "covered": covered, "oov": missing,
        "coverage": covered / len(pairs) if pairs else float("nan"),
    }
    if oov == "subword":
        out["composed"] = len(composed_gold)
        out["spearman_composed"] = (float(stats.spearmanr(composed_gold, composed_model)[0])
                                    if len(composed_gold) >= 2 else float("nan"))
    return out


def _unit_or_composed(vectors, word: str, row: int | None) -> np.ndarray | None:
    """The unit vector of table row ``row``, else of the vector the model composes for ``word``
    (``vectors.vector``, lower-cased as the tables are), else None."""
    if row is not None:
        return vectors.unit[row]
    try:
        v = np.asarray(vectors.vector(word.lower()), np.float64)
    except KeyError:
        return None
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else None


def evaluate_word_analogies(vectors, sections: Mapping[str, Sequence[tuple[str, str, str, str]]], *,
                            method: str = "3cosadd", restrict_vocab: int = 300000, chunk: int = 256) -> dict:
    """``{"accuracy", "correct", "covered", "questions", "coverage", "sections": {name: {...}}}``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    ok = _restricted(vectors, restrict_vocab)
    unit = vectors.unit[:restrict_vocab]
    result_sections = {}
    total_correct = total_covered = total_questions = 0
    for name, questions in sections.items():
        rows = []
        for q in questions:
            idx = [ok.get(w.upper()) for w in q]
            if all(k is not None for k in idx):
                rows.append(idx)
        correct = 0
        rows_array = np.asarray(rows, np.int64).reshape(-1, 4)
        for start in range(0, len(rows_array), chunk):
            part = rows_array[start:start + chunk]
            ca, cb, cc = (unit[part[:, k]] @ unit.T for k in range(3))   # [q, v] cosines
            if method == "3cosadd":
                scores = cb - ca + cc
            else:
                scores = ((1 + cb) / 2) * ((1 + cc) / 2) / ((1 + ca) / 2 + 1e-6)
            np.put_along_axis(scores, part[:, :3], -np.inf, axis=1)
            correct += int((scores.argmax(axis=1) == part[:, 3]).sum())
        covered = len(rows_array)
        result_sections[name] = {"correct": correct, "covered": covered, "questions": len(questions),
                                 "accuracy": correct / covered if covered else float("nan")}
        total_correct += correct
        total_covered += covered
        total_questions += len(questions)
    return {
        "accuracy": total_correct / total_covered if total_covered else float("nan"),
        "correct": total_correct, "covered": total_covered, "questions": total_questions,
        "coverage": total_covered / total_questions if total_questions else float("nan"),
        "sections": result_sections,
    }
