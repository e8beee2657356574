"""A preprocessing pipeline: named steps, each a pure function, applied in order.

A step maps ``str -> str`` (normalisation), ``str -> list[str]`` (a tokenizer) or
``list[str] -> list[str]`` (stop words, stemming, lemmatisation); the pipeline checks that the
types chain: once a step has returned a list, every later step must take a list. ``run`` returns
the final value; ``trace`` returns every intermediate value by step name (what each rule did).

:func:`embedding_pipeline` is the one the word-embedding experiments use: NFKC, lower case,
contractions expanded, word tokens (BERT's splitting rule), punctuation tokens dropped.

Example (the lecture notes' examples)::

    >>> from seqjax.text import normalize, tokenization, stopwords
    >>> p = Pipeline([("lower", normalize.lowercase),
    ...               ("words", tokenization.word_tokenize),
    ...               ("no_punct", tokenization.drop_punctuation_tokens),
    ...               ("stop", stopwords.remove_stopwords)])
    >>> p("The cat sat on the mat while the dog watched from the corner.")
    ['cat', 'sat', 'mat', 'dog', 'watched', 'corner']
    >>> p.names
    ('lower', 'words', 'no_punct', 'stop')
    >>> embedding_pipeline()("Don't panic: it's 42!")
    ['do', 'not', 'panic', 'it', 'is', '42']
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Sequence

__all__ = ["Pipeline", "embedding_pipeline"]


class Pipeline:
    """Named steps ``[(name, fn), ...]`` applied in order; ``pipeline(text)`` runs them."""

    def __init__(self, steps: Iterable[tuple[str, Callable[[Any], Any]]]):
        steps = list(steps)
        names = []
        for item in steps:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and callable(item[1])):
                raise ValueError(f"each step must be a (name, function) pair; got {item!r}.")
            names.append(item[0])
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique; got {names}.")
        self.steps = tuple(steps)
        self.names = tuple(names)

    def trace(self, text: str) -> dict[str, Any]:
        """Every step's output by name (in order), starting with ``"input"``."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str; got {type(text).__name__}.")
        out: dict[str, Any] = {"input": text}
        value: Any = text
        for name, fn in self.steps:
            was_list = isinstance(value, list)
            value = fn(value)
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, (str, list)):
                raise ValueError(f"step {name!r} returned {type(value).__name__}; a step must return str or list[str].")
            if was_list and isinstance(value, str):
                raise ValueError(f"step {name!r} turned a token list back into a str; put string steps before the tokenizer.")
            out[name] = value
        return out

    def __call__(self, text: str) -> Any:
        return list(self.trace(text).values())[-1]

    run = __call__

    def map(self, texts: Sequence[str]) -> list[Any]:
        """The pipeline applied to every text."""
        return [self(t) for t in texts]

    def __repr__(self) -> str:
        return f"Pipeline({' -> '.join(self.names)})"


@functools.lru_cache(maxsize=None)
def embedding_pipeline(*, expand: bool = True) -> Pipeline:
    """NFKC -> lower case -> (contractions expanded) -> word tokens -> punctuation tokens dropped."""
    from seqjax.text.contractions import expand_contractions
    from seqjax.text.normalize import lowercase, unicode_normalize
    from seqjax.text.tokenization import drop_punctuation_tokens, word_tokenize

    steps = [("nfkc", functools.partial(unicode_normalize, form="NFKC")), ("lower", lowercase)]
    if expand:
        steps.append(("contractions", expand_contractions))
    steps += [("words", word_tokenize), ("no_punct", drop_punctuation_tokens)]
    return Pipeline(steps)
