"""Stop-word removal with an explicit, named list.

:func:`stopword_list` gives one of two lists that installed libraries ship (nothing is bundled
or downloaded):

* ``"sklearn"`` (default): scikit-learn's ``ENGLISH_STOP_WORDS`` (318 words), which scikit-learn
  takes from the Glasgow Information Retrieval Group's stop list (BSD-3-Clause, as scikit-learn).
* ``"gensim"``: gensim's ``gensim.parsing.preprocessing.STOPWORDS`` (337 words: the same Glasgow
  list plus a few more such as ``"doesn"``, ``"kg"``, ``"km"``; LGPL-2.1, as gensim).

Both lists **contain the negations** ``"not"``, ``"no"``, ``"nor"`` and the intensifier ``"very"``
(as NLTK's English list does), so "The movie was not very good" and "The movie was good" reduce
to the same tokens unless those words are kept (``keep=``): the lecture notes' claim that "not"
survives because it is "not typically in stop word lists" is wrong for all three lists.

Example (the lecture notes' example)::

    >>> from seqjax.text.stopwords import remove_stopwords
    >>> tokens = "the cat sat on the mat while the dog watched from the corner".split()
    >>> remove_stopwords(tokens)
    ['cat', 'sat', 'mat', 'dog', 'watched', 'corner']
    >>> remove_stopwords("the movie was not very good".split()), remove_stopwords(
    ...     "the movie was not very good".split(), keep={"not"})
    (['movie', 'good'], ['movie', 'not', 'good'])
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

from seqjax.data.corpora import MissingOptionalDependency

__all__ = ["SOURCES", "remove_stopwords", "stopword_list"]

SOURCES = {
    "sklearn": "scikit-learn ENGLISH_STOP_WORDS (Glasgow Information Retrieval Group list; BSD-3-Clause)",
    "gensim": "gensim.parsing.preprocessing.STOPWORDS (Glasgow list plus additions; LGPL-2.1)",
}


@functools.lru_cache(maxsize=None)
def stopword_list(source: str = "sklearn") -> frozenset[str]:
    """The lower-case stop words of ``source`` (``"sklearn"`` or ``"gensim"``; see the module docstring)."""
    if source == "sklearn":
        try:
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
        except ImportError as err:
            raise MissingOptionalDependency(
                "the 'sklearn' stop-word list needs scikit-learn: pip install 'seqjax[text]'.") from err
        return frozenset(ENGLISH_STOP_WORDS)
    if source == "gensim":
        try:
            from gensim.parsing.preprocessing import STOPWORDS
        except ImportError as err:
            raise MissingOptionalDependency(
                "the 'gensim' stop-word list needs gensim: pip install 'seqjax[corpora]'.") from err
        return frozenset(STOPWORDS)
    raise ValueError(f"source must be one of {tuple(SOURCES)}; got {source!r}.")


def remove_stopwords(
    tokens: Sequence[str],
    *,
    stopwords: Iterable[str] | str = "sklearn",
    keep: Iterable[str] = (),
    case_sensitive: bool = False,
) -> list[str]:
    """``tokens`` without the stop words. ``stopwords``: a source name for :func:`stopword_list`
    or an explicit collection of words; ``keep``: words never removed (e.g. ``{"not", "no"}`` for
    sentiment). Matching lower-cases each token unless ``case_sensitive``."""
    if isinstance(tokens, str):
        raise ValueError("tokens must be a list of strings, not one str; tokenize first.")
    words = stopword_list(stopwords) if isinstance(stopwords, str) else frozenset(stopwords)
    drop = words - frozenset(keep)
    if case_sensitive:
        return [t for t in tokens if t not in drop]
    return [t for t in tokens if t.lower() not in drop]
