"""Stemming with the Snowball project's stemmers (``snowballstemmer``, pure Python, no data) and
the Lancaster stemmer (NLTK's ``LancasterStemmer``, pure Python, no data download).

``algorithm="porter"`` is Porter's (1980) original algorithm, ``"english"`` the Snowball
("Porter2") English stemmer; every other language of ``snowballstemmer.algorithms()`` works too.
``"lancaster"`` is the Paice/Husk (Lancaster) stemmer (Paice 1990), NLTK's implementation with
its default rules and no prefix stripping: an iterative rule table applied until no rule fires,
more aggressive than Porter (``caring`` -> ``car``, ``argument`` -> ``argu``, ``cement`` ->
``cem``) but it maps some suffixes to words (``happiness`` -> ``happy``, ``studies`` -> ``study``).
Stems need not be words: Porter gives ``happiness`` -> ``happi``, and for the lecture notes'
examples the actual outputs are ``caring`` -> ``care`` (Porter; Lancaster gives the notes'
``car``), ``conditional`` -> ``condit`` and ``easily`` -> ``easili`` (Snowball English, not
``condition`` / ``easi``; Lancaster: ``condit``, ``easy``).

Example::

    >>> stem(["running", "argument", "happiness", "caring", "studies"])
    ['run', 'argument', 'happi', 'care', 'studi']
    >>> stem(["conditional", "easily"], algorithm="english")
    ['condit', 'easili']
    >>> stem(["running", "argument", "happiness", "caring", "studies"], algorithm="lancaster")  # doctest: +SKIP
    ['run', 'argu', 'happy', 'car', 'study']
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from seqjax.data.corpora import MissingOptionalDependency

__all__ = ["stem", "stemmer", "ALGORITHMS_EXTRA"]

ALGORITHMS_EXTRA = ("lancaster",)  # beside snowballstemmer.algorithms()


class _Lancaster:
    """NLTK's ``LancasterStemmer`` behind snowballstemmer's ``stemWords`` interface."""

    def __init__(self):
        try:
            from nltk.stem import LancasterStemmer
        except ImportError as err:
            raise MissingOptionalDependency("the Lancaster stemmer needs nltk: pip install 'seqjax[text]' "
                                            "(or pip install nltk).") from err
        self._stemmer = LancasterStemmer()

    def stemWords(self, words: list[str]) -> list[str]:  # noqa: N802 (snowballstemmer's name)
        return [self._stemmer.stem(w) for w in words]


@functools.lru_cache(maxsize=None)
def _stemmer(algorithm: str):
    if algorithm == "lancaster":
        return _Lancaster()
    try:
        import snowballstemmer
    except ImportError as err:
        raise MissingOptionalDependency("stemming needs snowballstemmer: pip install 'seqjax[text]'.") from err
    if algorithm not in snowballstemmer.algorithms():
        raise ValueError(f"algorithm must be one of {snowballstemmer.algorithms() + list(ALGORITHMS_EXTRA)}; "
                         f"got {algorithm!r}.")
    return snowballstemmer.stemmer(algorithm)


def stem(tokens: Sequence[str], *, algorithm: str = "porter") -> list[str]:
    """The stem of every token (``snowballstemmer``'s ``stemWords``; NLTK's
    ``LancasterStemmer.stem`` for ``"lancaster"``, which also lower-cases)."""
    if isinstance(tokens, str):
        raise ValueError("tokens must be a list of strings, not one str; tokenize first.")
    return list(_stemmer(algorithm).stemWords(list(tokens)))


def stemmer(algorithm: str = "porter") -> Callable[[Sequence[str]], list[str]]:
    """:func:`stem` with a fixed ``algorithm``, as a pipeline step."""
    _stemmer(algorithm)
    return functools.partial(stem, algorithm=algorithm)
