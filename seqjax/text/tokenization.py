"""Tokenisers as pure functions: whitespace, rule-based words and punctuation, characters,
sentences, and subwords (any trained tokenizer of :mod:`seqjax.data.tokenizers` or
:class:`seqjax.data.tokenizers.WordPieceTokenizer`).

The word splitter is the package's one rule set, :func:`seqjax.data.tokenizers.split_words`
(BERT's basic tokenizer: split on whitespace, then every punctuation character is a token of its
own, so ``don't`` gives ``don ' t``); here it is exposed without lower-casing by default, with
:func:`drop_punctuation_tokens` as the step that removes the punctuation tokens afterwards.

Example (the lecture notes' examples)::

    >>> word_tokenize("Natural language processing is fascinating.")
    ['Natural', 'language', 'processing', 'is', 'fascinating', '.']
    >>> char_tokenize("Hello")
    ['H', 'e', 'l', 'l', 'o']
    >>> sentence_split("Hello world. How are you today? I am fine.")
    ['Hello world.', 'How are you today?', 'I am fine.']
    >>> sentence_split("Dr. Smith arrived. He sat.")
    ['Dr. Smith arrived.', 'He sat.']
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from seqjax.data.tokenizers import is_punctuation, split_words

__all__ = [
    "ABBREVIATIONS",
    "char_tokenize",
    "drop_punctuation_tokens",
    "sentence_split",
    "subword_tokenizer",
    "whitespace_tokenize",
    "word_tokenize",
]


def _check(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str; got {type(text).__name__}.")
    return text


def whitespace_tokenize(text: str) -> list[str]:
    """``text.split()``: runs of Unicode whitespace separate tokens; punctuation stays attached.

    >>> whitespace_tokenize("Hello, world!  Bye")
    ['Hello,', 'world!', 'Bye']
    """
    return _check(text).split()


def word_tokenize(text: str, *, lowercase: bool = False) -> list[str]:
    """Words and punctuation (:func:`seqjax.data.tokenizers.split_words`, BERT's rule); case is kept
    unless ``lowercase``."""
    return split_words(_check(text), lowercase=lowercase, split_punctuation=True)


def char_tokenize(text: str, *, keep_whitespace: bool = True) -> list[str]:
    """One token per character (code point); whitespace characters dropped unless ``keep_whitespace``."""
    return [c for c in _check(text) if keep_whitespace or not c.isspace()]


def drop_punctuation_tokens(tokens: Sequence[str]) -> list[str]:
    """Remove the tokens made only of punctuation characters.

    >>> drop_punctuation_tokens(["the", ",", "cat", "...", "u.s"])
    ['the', 'cat', 'u.s']
    """
    return [t for t in tokens if not all(is_punctuation(c) for c in t)]


ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd",
    "co", "corp", "mt", "no", "fig", "gen", "gov", "sen", "rep", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "a.m", "p.m",
})
_SENTENCE_END = re.compile(r"([.!?]+[\"')\]]*)(\s+)(?=\S)")


def sentence_split(text: str, *, abbreviations: frozenset[str] = ABBREVIATIONS) -> list[str]:
    """Rule-based sentence splitting: a sentence ends at ``.``, ``!`` or ``?`` (and closing quotes
    or brackets) followed by whitespace, unless the word before a ``.`` is an abbreviation
    (``Dr.``, ``e.g.``; case-insensitive, from ``abbreviations``) or a single letter (``J. Smith``).
    Sentences are stripped; empty ones dropped."""
    text = _check(text)
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1)
        if match.group(1).startswith(".") and len(match.group(1).rstrip("\"')]")) == 1:
            word = text[start:match.start(1)].split()[-1:] or [""]
            word = word[0].lower().lstrip("(\"'")
            if word in abbreviations or (len(word) == 1 and word.isalpha()):
                continue
        sentence = text[start:end].strip()
        if sentence:
            out.append(sentence)
        start = match.end(2)
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def subword_tokenizer(tokenizer) -> Callable[[str], list[str]]:
    """The ``str -> list[str]`` step of a trained subword tokenizer (``tokenizer.tokenize``), e.g.
    a :class:`seqjax.data.tokenizers.BPETokenizer` or :class:`seqjax.data.tokenizers.WordPieceTokenizer`."""
    if not callable(getattr(tokenizer, "tokenize", None)):
        raise ValueError(f"tokenizer must have a tokenize(text) method; got {type(tokenizer).__name__}.")
    return tokenizer.tokenize
