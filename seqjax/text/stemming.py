"""Stemming with the Snowball project's stemmers (``snowballstemmer``, pure Python, no data).

``algorithm="porter"`` is Porter's (1980) original algorithm, ``"english"`` the Snowball
("Porter2") English stemmer; every other language of ``snowballstemmer.algorithms()`` works too.
(The Lancaster stemmer is NLTK's and is not offered here.) Stems need not be words: Porter gives
``happiness`` -> ``happi``, and for the lecture notes' examples the actual outputs are
``caring`` -> ``care`` (Porter, not ``car``), ``conditional`` -> ``condit`` and ``easily`` ->
``easili`` (Snowball English, not ``condition`` / ``easi``).

Example::

    >>> stem(["running", "argument", "happiness", "caring", "studies"])
    ['run', 'argument', 'happi', 'care', 'studi']
    >>> stem(["conditional", "easily"], algorithm="english")
    ['condit', 'easili']
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from seqjax.data.corpora import MissingOptionalDependency

__all__ = ["stem", "stemmer"]


@functools.lru_cache(maxsize=None)
def _stemmer(algorithm: str):
    try:
        import snowballstemmer
    except ImportError as err:
        raise MissingOptionalDependency("stemming needs snowballstemmer: pip install 'seqjax[text]'.") from err
    if algorithm not in snowballstemmer.algorithms():
        raise ValueError(f"algorithm must be one of {snowballstemmer.algorithms()}; got {algorithm!r}.")
    return snowballstemmer.stemmer(algorithm)


def stem(tokens: Sequence[str], *, algorithm: str = "porter") -> list[str]:
    """The stem of every token (``snowballstemmer``'s ``stemWords``)."""
    if isinstance(tokens, str):
        raise ValueError("tokens must be a list of strings, not one str; tokenize first.")
    return list(_stemmer(algorithm).stemWords(list(tokens)))


def stemmer(algorithm: str = "porter") -> Callable[[Sequence[str]], list[str]]:
    """:func:`stem` with a fixed ``algorithm``, as a pipeline step."""
    _stemmer(algorithm)
    return functools.partial(stem, algorithm=algorithm)
