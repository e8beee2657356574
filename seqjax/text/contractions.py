"""Contraction expansion from a documented table.

:data:`CONTRACTIONS` maps lower-case English contractions to their expansions. The table is
written here (73 entries), from the standard forms: the irregular negatives (``won't`` ->
``will not``, ``can't`` -> ``cannot``, ``shan't`` -> ``shall not``, ``ain't`` -> ``is not``), the
regular ``n't`` negatives (``don't``, ``isn't``, ``wouldn't``, ...), pronoun + verb forms
(``I'm``, ``you're``, ``they've``, ``we'll``, ``he'd``, ...; ``'d`` is read as ``would`` and ``'s``
after a pronoun as ``is``: both are ambiguous, ``he'd gone`` is ``had``, ``it's been`` is ``has``)
and ``let's``. A possessive ``'s`` on a noun (``John's``) is not in the table and stays.

Matching is on whole words, case-insensitive; the expansion keeps the case of the first letter
(``Don't`` -> ``Do not``), and ``I`` stays upper case. The typographic apostrophe ``’`` is
accepted as well as ``'``.

Example (the lecture notes' example)::

    >>> expand_contractions("don't can't won't I'm they're")
    'do not cannot will not I am they are'
"""

from __future__ import annotations

import re

__all__ = ["CONTRACTIONS", "expand_contractions"]

_IRREGULAR = {
    "won't": "will not", "can't": "cannot", "shan't": "shall not", "ain't": "is not",
    "let's": "let us", "y'all": "you all", "o'clock": "of the clock", "ma'am": "madam",
}
_NEGATIVES = ("do", "does", "did", "is", "are", "was", "were", "has", "have", "had", "would",
              "should", "could", "must", "might", "need", "dare")
_PRONOUNS = ("i", "you", "he", "she", "it", "we", "they", "there", "that", "who", "what", "where",
             "here", "how")
_SUFFIXES = {"'m": "am", "'re": "are", "'ve": "have", "'ll": "will", "'d": "would", "'s": "is"}
_VALID = {  # which pronoun + suffix pairs are words
    "'m": ("i",),
    "'re": ("you", "we", "they", "who", "what"),
    "'ve": ("i", "you", "we", "they", "who", "would", "should", "could", "might", "must"),
    "'ll": ("i", "you", "he", "she", "it", "we", "they", "there", "that", "who", "what"),
    "'d": ("i", "you", "he", "she", "it", "we", "they", "there", "that", "who", "what"),
    "'s": ("he", "she", "it", "there", "that", "who", "what", "where", "here", "how"),
}

CONTRACTIONS: dict[str, str] = dict(_IRREGULAR)
CONTRACTIONS.update({f"{v}n't": f"{v} not" for v in _NEGATIVES})
for _suffix, _heads in _VALID.items():
    for _head in _heads:
        CONTRACTIONS[_head + _suffix] = f"{_head} {_SUFFIXES[_suffix]}"
CONTRACTIONS["i'm"] = "i am"

_PATTERN = re.compile(
    r"(?<![\w'’])(" + "|".join(sorted((re.escape(k).replace("'", "['’]") for k in CONTRACTIONS), key=len, reverse=True))
    + r")(?![\w'’])",
    re.IGNORECASE,
)


def _expand(match: re.Match) -> str:
    found = match.group(0)
    expansion = CONTRACTIONS[found.lower().replace("’", "'")]
    words = expansion.split(" ")
    words = ["I" if w == "i" else w for w in words]
    if found[0].isupper():
        words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words)


def expand_contractions(text: str) -> str:
    """Replace every contraction of :data:`CONTRACTIONS` in ``text`` by its expansion (whole
    words, case-insensitive, first-letter case kept, ``I`` upper case)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str; got {type(text).__name__}.")
    return _PATTERN.sub(_expand, text)
