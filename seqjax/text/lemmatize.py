"""Lemmatisation with ``simplemma`` (offline: its lemma tables ship inside the package).

simplemma looks words up in a per-language table (no part-of-speech tagging), falling back to
rules and then to the word itself; for English it gives ``better`` -> ``good``, ``running`` ->
``run``, ``mice`` -> ``mouse`` and every form of *to be* -> ``be``, the lecture notes' examples.
A POS-tagging lemmatiser (WordNet's) would need the tag to do the same.

Example::

    >>> lemmatize(["better", "running", "mice", "was", "were", "am", "is", "are"])
    ['good', 'run', 'mouse', 'be', 'be', 'be', 'be', 'be']
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from seqjax.data.corpora import MissingOptionalDependency

__all__ = ["lemmatize", "lemmatizer"]


def _simplemma():
    try:
        import simplemma
    except ImportError as err:
        raise MissingOptionalDependency("lemmatisation needs simplemma: pip install 'seqjax[text]'.") from err
    return simplemma


def lemmatize(tokens: Sequence[str], *, lang: str = "en") -> list[str]:
    """The lemma of every token (``simplemma.lemmatize(token, lang=lang)``)."""
    if isinstance(tokens, str):
        raise ValueError("tokens must be a list of strings, not one str; tokenize first.")
    simplemma = _simplemma()
    try:
        return [simplemma.lemmatize(t, lang=lang) for t in tokens]
    except (ValueError, KeyError) as err:
        raise ValueError(f"lang {lang!r} is not a language simplemma supports ({err}).") from err


def lemmatizer(lang: str = "en") -> Callable[[Sequence[str]], list[str]]:
    """:func:`lemmatize` with a fixed ``lang``, as a pipeline step."""
    return functools.partial(lemmatize, lang=lang)
