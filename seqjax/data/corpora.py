"""Text corpora read from files that installed packages ship: nothing is ever downloaded.

Two sources:

* **gensim's test data** (``gensim/test/test_data/``; an optional extra:
  ``pip install 'seqjax[corpora]'``, or just ``pip install gensim``). The files are located
  without importing gensim (:func:`gensim_test_data`), and read here directly:

  ==========================  ================================================================
  :func:`lee_corpus`          Lee et al. (2005) news corpus: ``"background"`` (300 Australian
                              news articles, 360k characters of mixed-case English with
                              punctuation; ``lee_background.cor``) and ``"test"`` (the 50
                              short documents of the similarity study; ``lee.cor``)
  :func:`pang_lee_polarity`   200 movie-review sentences (100 negative, 100 positive) of Pang &
                              Lee's sentence-polarity data, lower-cased and tokenized
  :func:`text8_excerpt`       250 lines from the start of text8 (Wikipedia) as gensim ships it:
                              **stemmed** ("anarch greek rule stem archon"), lower case, no
                              punctuation (``head500.noblanks.cor``)
  :func:`wordsim353`          WordSim-353 word pairs with mean human similarity (0-10)
  :func:`simlex999`           SimLex-999 word pairs with mean human similarity (0-10)
  :func:`analogy_questions`   Mikolov et al.'s analogy questions ("Athens Greece Baghdad Iraq"),
                              by section
  :func:`wikipedia_excerpt`   106 English Wikipedia articles (Anarchism, Autism, ...; 480k words)
                              as plain text, from gensim's shortened ``enwiki`` dump
  ==========================  ================================================================

* **Python's own documentation** (:func:`python_docs`): the text of the language reference
  topics that CPython ships for ``help()`` (``pydoc_data.topics``, about 465k characters of
  English prose with code samples). Always available, no extra needed: the fallback corpus.

:func:`load_text` gives any of the plain-text corpora by name, for language models;
:func:`split_held_out` cuts off the last fraction of a text as held-out data.

Example::

    >>> from seqjax.data.corpora import load_text, split_held_out
    >>> text = load_text("python_docs")
    >>> train, held_out = split_held_out(text, 0.1)
    >>> len(train) + len(held_out) == len(text)
    True
"""

from __future__ import annotations

import bz2
import functools
import html
import importlib.util
import re
from pathlib import Path
from typing import Callable

__all__ = [
    "CORPORA",
    "MissingOptionalDependency",
    "analogy_questions",
    "available_corpora",
    "gensim_available",
    "gensim_test_data",
    "lee_corpus",
    "load_text",
    "pang_lee_polarity",
    "python_docs",
    "simlex999",
    "split_held_out",
    "text8_excerpt",
    "wikipedia_excerpt",
    "wordsim353",
]

INSTALL_HINT = "pip install 'seqjax[corpora]'  (or: pip install 'gensim>=4.4,<5')"


class MissingOptionalDependency(ImportError):
    """An optional package that a loader needs is not installed (the message says what to install)."""


def gensim_available() -> bool:
    """Whether gensim is installed (checked without importing it)."""
    return importlib.util.find_spec("gensim") is not None


def gensim_test_data(filename: str | None = None) -> Path:
    """The directory ``gensim/test/test_data`` of the installed gensim, or a file in it.

    gensim is located with :func:`importlib.util.find_spec`, not imported (importing it loads
    scipy and takes seconds). Raises :class:`MissingOptionalDependency` if gensim is not installed
    and ``FileNotFoundError`` if the installed version lacks the file.
    """
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise MissingOptionalDependency(
            "this corpus is read from the test data that the optional package gensim ships, and "
            f"gensim is not installed. Install it with: {INSTALL_HINT}. "
            "seqjax.data.corpora.python_docs() needs no extra package."
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    path = root if filename is None else root / filename
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the installed gensim does not ship it (tested with gensim 4.4)."
        )
    return path


def _read(filename: str, encoding: str = "utf-8") -> str:
    return gensim_test_data(filename).read_text(encoding=encoding)


def lee_corpus(which: str = "background") -> list[str]:
    """The documents of the Lee news corpus: ``"background"`` (300) or ``"test"`` (50).

    One document per line in the files; ``lee.cor`` is Latin-1 (a pound sign), the background
    file ASCII. Trailing whitespace is stripped, empty lines dropped.
    """
    files = {"background": ("lee_background.cor", "utf-8"), "test": ("lee.cor", "latin-1")}
    if which not in files:
        raise ValueError(f"which must be one of {tuple(files)}; got {which!r}.")
    return [line.rstrip() for line in _read(*files[which]).splitlines() if line.strip()]


def pang_lee_polarity() -> list[tuple[str, str]]:
    """``(label, sentence)`` pairs, label ``"neg"`` or ``"pos"``, from ``pang_lee_polarity.cor``
    (Windows-1252 text; sentences are lower case with tokens separated by spaces)."""
    out = []
    for line in _read("pang_lee_polarity.cor", "cp1252").splitlines():
        if not line.strip():
            continue
        label, _, sentence = line.partition(" ")
        if not label.startswith("__label__"):
            raise ValueError(f"pang_lee_polarity.cor: unexpected line {line[:60]!r}.")
        out.append((label[len("__label__"):], sentence.strip()))
    return out


def text8_excerpt() -> list[str]:
    """The 250 lines of ``head500.noblanks.cor``: the start of text8, **stemmed** by gensim's test
    fixtures (so not the raw text8 characters), lower case, words separated by spaces."""
    return [line.strip() for line in _read("head500.noblanks.cor").splitlines() if line.strip()]


WIKIPEDIA_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

_PAGE = re.compile(r"<page>(.*?)</page>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>")
_TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.S)
_HEADING = re.compile(r"^\s*=+\s*(.*?)\s*=+\s*$", re.M)
_EMPHASIS = re.compile(r"'{2,}")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t]+")


@functools.lru_cache(maxsize=1)
def _wikipedia_articles() -> tuple[tuple[str, str], ...]:
    from gensim.corpora.wikicorpus import filter_wiki  # the markup stripper people use

    raw = bz2.open(gensim_test_data(WIKIPEDIA_DUMP), "rt", encoding="utf-8").read()
    articles = []
    for page in _PAGE.findall(raw):
        title, body = _TITLE.search(page), _TEXT.search(page)
        if title is None or body is None or body.group(1).lstrip().lower().startswith("#redirect"):
            continue
        text = filter_wiki(html.unescape(body.group(1)))
        text = _HEADING.sub(r"\1", _EMPHASIS.sub("", text))  # headings stay as their own line
        text = _BLANK_LINES.sub("\n", _SPACES.sub(" ", text))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            articles.append((html.unescape(title.group(1)), "\n".join(lines)))
    return tuple(articles)


def wikipedia_excerpt() -> list[tuple[str, str]]:
    """``(title, text)`` for the 106 articles of the shortened English Wikipedia dump that gensim
    ships (``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``; redirects
    dropped), about 480k words of mixed-case prose with punctuation.

    The wiki markup is stripped by gensim's ``filter_wiki`` (links keep their text, templates,
    tables, references and files go); bold/italic quotes are removed, a section heading
    ``== History ==`` becomes the line ``History``, and runs of blank lines and spaces collapse,
    so each line is a paragraph or a heading. Parsing takes a few seconds; the result is cached
    for the process. Needs gensim (``pip install 'seqjax[corpora]'``).
    """
    gensim_test_data(WIKIPEDIA_DUMP)  # the clear error when gensim is missing
    return list(_wikipedia_articles())


def _word_pairs(filename: str) -> list[tuple[str, str, float]]:
    out = []
    for line in _read(filename).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        first, second, score = line.split("\t")[:3]
        out.append((first, second, float(score)))
    return out


def wordsim353() -> list[tuple[str, str, float]]:
    """WordSim-353: ``(word, word, mean human similarity in [0, 10])``, 353 pairs."""
    return _word_pairs("wordsim353.tsv")


def simlex999() -> list[tuple[str, str, float]]:
    """SimLex-999: ``(word, word, mean human similarity in [0, 10])``, 999 pairs."""
    return _word_pairs("simlex999.txt")


def analogy_questions() -> dict[str, list[tuple[str, str, str, str]]]:
    """Mikolov et al. (2013) analogy questions ``a : b :: c : d`` by section (14 sections,
    19,544 questions; e.g. ``"capital-common-countries"``)."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in _read("questions-words.txt").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            if current is None:
                raise ValueError("questions-words.txt: a question before the first section header.")
            words = line.split()
            if len(words) != 4:
                raise ValueError(f"questions-words.txt: expected 4 words; got {line!r}.")
            sections[current].append(tuple(words))
    return sections


def python_docs() -> str:
    """The reference-manual topics that CPython ships for ``help()`` (``pydoc_data.topics``),
    sorted by topic name and joined with blank lines. English prose with code samples; part of
    the standard library, so always available."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions split the stdlib
        raise MissingOptionalDependency(
            "pydoc_data (part of CPython's standard library) is missing from this Python; "
            "install the full standard library (e.g. Debian's libpython3-stdlib)."
        ) from err
    return "\n\n".join(topics[name].strip() for name in sorted(topics)) + "\n"


# Plain-text corpora for language models, by name: (loader, needs gensim, description).
CORPORA: dict[str, tuple[Callable[[], str], bool, str]] = {
    "lee_background": (
        lambda: "\n".join(lee_corpus("background")) + "\n", True,
        "Lee et al. (2005) background corpus: 300 news articles (gensim test data)",
    ),
    "lee_test": (
        lambda: "\n".join(lee_corpus("test")) + "\n", True,
        "Lee et al. (2005) test corpus: 50 news documents (gensim test data)",
    ),
    "pang_lee": (
        lambda: "\n".join(s for _, s in pang_lee_polarity()) + "\n", True,
        "Pang & Lee sentence polarity: 200 tokenized movie-review sentences (gensim test data)",
    ),
    "text8_excerpt": (
        lambda: "\n".join(text8_excerpt()) + "\n", True,
        "start of text8, stemmed, as gensim's test data ships it",
    ),
    "wikipedia": (
        lambda: "\n\n".join(text for _, text in wikipedia_excerpt()) + "\n", True,
        "106 English Wikipedia articles, plain text (gensim test data)",
    ),
    "python_docs": (python_docs, False, "CPython's reference-manual topics (pydoc_data.topics)"),
}


def available_corpora() -> list[str]:
    """Names accepted by :func:`load_text` whose package is installed here."""
    return [name for name, (_, needs_gensim, _) in CORPORA.items() if gensim_available() or not needs_gensim]


def load_text(name: str) -> str:
    """A plain-text corpus by name (one of :data:`CORPORA`); see the module docstring."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(CORPORA)}.")
    return CORPORA[name][0]()


def split_held_out(text: str, fraction: float = 0.1) -> tuple[str, str]:
    """``(train, held_out)``: the held-out part is the *last* ``fraction`` of ``text`` (rounded
    down to whole characters), so it is a contiguous stretch the model never trains on."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1); got {fraction}.")
    cut = len(text) - int(len(text) * fraction)
    if cut <= 0 or cut >= len(text):
        raise ValueError(f"a text of {len(text)} characters is too short to hold out {fraction:.0%} of it.")
    return text[:cut], text[cut:]
