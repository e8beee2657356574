"""Text normalisation: Unicode forms, case folding, punctuation, symbols, whitespace, numbers.

Each function is a pure ``str -> str`` step for :class:`seqjax.text.pipeline.Pipeline`.

* :func:`unicode_normalize`: Unicode normal form (``"NFC"`` composes ``e`` + combining acute into
  ``é``; ``"NFKC"`` also folds compatibility characters: the ligature ``ﬁ`` becomes ``fi``, a
  full-width ``Ａ`` becomes ``A``). Python's :func:`unicodedata.normalize`.
* :func:`lowercase` (``str.lower``) and :func:`casefold` (``str.casefold``, the caseless-matching
  form: ``"Straße"`` -> ``"strasse"``). A case-sensitive vocabulary can hold many more than twice
  the types of a lower-cased one (``THE``, ``The``, ``the``, ``tHe``, ...).
* :func:`strip_accents`: NFD, then drop combining marks (category ``Mn``), as BERT's uncased
  normaliser does (``"café"`` -> ``"cafe"``).
* :func:`remove_punctuation`: drop every punctuation character (:func:`seqjax.data.tokenizers.is_punctuation`,
  BERT's rule); :func:`collapse_repeated_punctuation`: ``"!!!"`` -> ``"!"`` (keeps the signal for
  sentiment, as the lecture notes suggest, without the repeats).
* :func:`remove_symbols`: drop symbols and emoji (Unicode categories ``S*``, and the emoji
  variation selector / zero-width joiner).
* :func:`normalize_whitespace`: every run of whitespace becomes one space; ends stripped.
* :func:`replace_numbers`: money amounts (``$3.14``, ``€5``, ``£1,000``) -> ``MONEY``, other numbers
  (``25``, ``3.14``, ``1,000``) -> ``NUM``.

Example (the lecture notes' examples)::

    >>> from seqjax.text.normalize import lowercase, remove_punctuation, normalize_whitespace
    >>> lowercase("The Quick Brown Fox")
    'the quick brown fox'
    >>> normalize_whitespace(remove_punctuation(lowercase("Hello, world! How are you? I'm fine, thanks.")))
    'hello world how are you im fine thanks'
    >>> replace_numbers("I have 25 apples and $3.14 was spent on 42 oranges")
    'I have NUM apples and MONEY was spent on NUM oranges'
"""

from __future__ import annotations

import re
import unicodedata

from seqjax.data.tokenizers import is_punctuation

__all__ = [
    "casefold",
    "collapse_repeated_punctuation",
    "lowercase",
    "normalize_whitespace",
    "remove_punctuation",
    "remove_symbols",
    "replace_numbers",
    "strip_accents",
    "unicode_normalize",
]

FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def _check(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str; got {type(text).__name__}.")
    return text


def unicode_normalize(text: str, form: str = "NFC") -> str:
    """``text`` in Unicode normal form ``form`` (one of ``NFC``, ``NFD``, ``NFKC``, ``NFKD``).

    >>> unicode_normalize("cafe\\u0301") == "caf\\u00e9", unicode_normalize("\\ufb01le", "NFKC")
    (True, 'file')
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}.")
    return unicodedata.normalize(form, _check(text))


def lowercase(text: str) -> str:
    """``str.lower()``."""
    return _check(text).lower()


def casefold(text: str) -> str:
    """``str.casefold()``: lower case plus the caseless-matching folds (``ß`` -> ``ss``).

    >>> casefold("Straße")
    'strasse'
    """
    return _check(text).casefold()


def strip_accents(text: str) -> str:
    """Decompose (NFD) and drop combining marks (category ``Mn``); the result is NFC.

    >>> strip_accents("Café naïve")
    'Cafe naive'
    """
    decomposed = unicodedata.normalize("NFD", _check(text))
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def remove_punctuation(text: str) -> str:
    """Drop every punctuation character (BERT's rule, :func:`seqjax.data.tokenizers.is_punctuation`).

    Note that ASCII symbols such as ``$``, ``+`` and ``#`` count as punctuation under that rule.
    """
    return "".join(c for c in _check(text) if not is_punctuation(c))


_REPEATS = re.compile(r"([^\w\s])\1+")


def collapse_repeated_punctuation(text: str) -> str:
    """Runs of one repeated non-word, non-space character become one: ``"great!!!"`` -> ``"great!"``.

    >>> collapse_repeated_punctuation("Great!!! Really??")
    'Great! Really?'
    """
    return _REPEATS.sub(r"\1", _check(text))


_EMOJI_JOINERS = {"\u200d", "\ufe0f", "\ufe0e"}


def remove_symbols(text: str) -> str:
    """Drop symbols and emoji: characters of Unicode categories ``S*`` (``♥``, ``😊``, ``©``,
    ``$``) and the emoji joiners (ZWJ, variation selectors).

    >>> normalize_whitespace(remove_symbols("I ♥ natural language processing 😊"))
    'I natural language processing'
    """
    return "".join(c for c in _check(text)
                   if not unicodedata.category(c).startswith("S") and c not in _EMOJI_JOINERS)


def normalize_whitespace(text: str) -> str:
    """Every run of Unicode whitespace becomes one space; leading and trailing whitespace go."""
    return " ".join(_check(text).split())


_MONEY = re.compile(r"[$€£¥]\s?\d[\d,]*(?:\.\d+)?")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")


def replace_numbers(text: str, *, number_token: str = "NUM", money_token: str = "MONEY") -> str:
    """Money (a currency sign ``$ € £ ¥`` before a number) -> ``money_token``, then standalone
    numbers (digits with optional thousands commas and decimals, not inside a word such as
    ``mp3``) -> ``number_token``."""
    text = _MONEY.sub(money_token, _check(text))
    return _NUMBER.sub(number_token, text)
