"""A synthetic translation task with word-order changes and variable-length output: a small
synchronous grammar from an English-like SVO language to an invented verb-final language.

Source grammar (every word class is a disjoint word list, so every source sentence has exactly one
parse)::

    S      -> CLAUSE ("and" CLAUSE)*
    CLAUSE -> NP VERB NP [PREP NP]
    NP     -> [DET] ADJ{0,2} NOUN                DET in {"the", "a"}

Translation, rule by rule (``w'`` is the lexicon's image of the word ``w``)::

    S'      = CLAUSE'_1 "y" CLAUSE'_2 "y" ...                (clause order kept)
    CLAUSE' = NP'_subj "ga" NP'_obj [NP'_pp PREP'] VERB'     (verb last, postpositions,
                                                              a subject particle "ga" inserted)
    NP'     = NOUN' ADJ'_k ... ADJ'_1 ["la"]                 (noun first, adjectives mirrored;
                                                              "the" -> "la" at the end, "a" dropped)

So the verb moves from the clause's second constituent to its end (a movement of up to 10
tokens), adjectives are mirrored behind the noun, a particle is inserted per clause and an
indefinite article deleted: the target length is ``source_length + clauses - indefinites``,
different from the source length. The mapping is a function of the source (unique parse, one
rule per construction), so the **exact-match ceiling is 1.0**: a perfect model reproduces every
reference. :func:`translate` applies it to any grammatical source, independently of the
sampler.

Lengths: :func:`sample_pair` draws a sentence with *exactly* the requested source length ``n >=
3``: clause lengths (3 to 14 tokens each, joined by "and") are drawn to sum to ``n``, then each
clause's form uniformly among the forms of that length. Randomness is explicit: a NumPy
``Generator`` (or an int seed) in, so the same seed gives the same pairs.

Example (a worked one: the verb "sees" moves to the end, "big red" is mirrored to "roja
grande" behind "gato", "the" becomes a final "la", "a" disappears, "ga" marks the subject)::

    >>> from seqjax.data.reorder_translation import translate, sample_pair, target_length_bound
    >>> translate("the big red cat sees a dog".split())
    ['gato', 'roja', 'grande', 'la', 'ga', 'perro', 'mira']
    >>> translate("a bird eats fish and the dog sees a car near a tree".split())
    ['pajaro', 'ga', 'pez', 'come', 'y', 'perro', 'la', 'ga', 'coche', 'arbol', 'cerca', 'mira']
    >>> src, tgt = sample_pair(0, 25)
    >>> len(src), tgt == translate(src)
    (25, True)
    >>> len(tgt) <= target_length_bound(25)
    True
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import numpy as np

NOUNS = {"cat": "gato", "dog": "perro", "bird": "pajaro", "fish": "pez", "tree": "arbol",
         "house": "casa", "river": "rio", "child": "nino", "teacher": "maestro", "book": "libro",
         "apple": "manzana", "car": "coche", "city": "ciudad", "king": "rey", "horse": "caballo",
         "garden": "jardin"}
ADJECTIVES = {"big": "grande", "small": "chica", "red": "roja", "blue": "azul", "old": "vieja",
              "young": "joven", "happy": "feliz", "sad": "triste", "fast": "rapida",
              "quiet": "callada", "green": "verde", "dark": "oscura"}
VERBS = {"sees": "mira", "eats": "come", "likes": "quiere", "follows": "sigue", "finds": "halla",
         "hears": "oye", "carries": "lleva", "paints": "pinta", "runs": "corre", "meets": "vence",
         "calls": "llama", "draws": "dibuja"}
PREPOSITIONS = {"near": "cerca", "under": "bajo", "behind": "tras", "with": "con", "in": "dentro",
                "over": "sobre"}
DETERMINERS = ("the", "a")
CONJUNCTION, TARGET_CONJUNCTION = "and", "y"
SUBJECT_PARTICLE, DEFINITE = "ga", "la"

SOURCE_WORDS: tuple[str, ...] = tuple(
    [*DETERMINERS, CONJUNCTION, *NOUNS, *ADJECTIVES, *VERBS, *PREPOSITIONS])
TARGET_WORDS: tuple[str, ...] = tuple(
    [TARGET_CONJUNCTION, SUBJECT_PARTICLE, DEFINITE, *NOUNS.values(), *ADJECTIVES.values(),
     *VERBS.values(), *PREPOSITIONS.values()])

MIN_CLAUSE, MAX_CLAUSE = 3, 14
MIN_LENGTH = MIN_CLAUSE
# An NP form: (determiner: None / "the" / "a", number of adjectives 0..2).
_NP_FORMS = tuple(itertools.product((None, "the", "a"), (0, 1, 2)))


def _np_length(form) -> int:
    return (form[0] is not None) + form[1] + 1


@functools.lru_cache(maxsize=None)
def _clause_forms() -> dict[int, list[tuple]]:
    """Clause forms ``(subject NP, object NP, PP NP or None)`` grouped by source length."""
    by_length: dict[int, list[tuple]] = {}
    for subj, obj, pp in itertools.product(_NP_FORMS, _NP_FORMS, (None, *_NP_FORMS)):
        n = _np_length(subj) + 1 + _np_length(obj) + (0 if pp is None else 1 + _np_length(pp))
        by_length.setdefault(n, []).append((subj, obj, pp))
    return by_length


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise ValueError(f"seed must be an int or a numpy Generator; got {type(seed).__name__}.")


def _clause_lengths(rng: np.random.Generator, n: int) -> list[int]:
    """Clause lengths in ``[3, 14]`` with ``sum + (clauses - 1) == n`` (one "and" between)."""
    lengths, remaining = [], n
    while remaining > MAX_CLAUSE:
        # leave room for " and " plus a whole clause after this one
        lengths.append(int(rng.integers(MIN_CLAUSE, min(MAX_CLAUSE, remaining - 1 - MIN_CLAUSE) + 1)))
        remaining -= lengths[-1] + 1
    return lengths + [remaining]


def _noun_phrase(rng: np.random.Generator, form) -> list[str]:
    det, k = form
    adjectives = list(rng.choice(list(ADJECTIVES), size=k, replace=False)) if k else []
    return ([det] if det else []) + adjectives + [str(rng.choice(list(NOUNS)))]


def sample_pair(seed, length: int) -> tuple[list[str], list[str]]:
    """One ``(source words, target words)`` pair whose source has exactly ``length`` words.

    Args:
      seed: an int or a ``numpy.random.Generator`` (drawn from, so successive calls differ).
      length: the source length, ``>= 3``.
    """
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < MIN_LENGTH:
        raise ValueError(f"length must be an integer >= {MIN_LENGTH}; got {length!r}.")
    rng = _rng(seed)
    forms = _clause_forms()
    source: list[str] = []
    for i, n in enumerate(_clause_lengths(rng, int(length))):
        subj, obj, pp = forms[n][int(rng.integers(len(forms[n])))]
        clause = _noun_phrase(rng, subj) + [str(rng.choice(list(VERBS)))] + _noun_phrase(rng, obj)
        if pp is not None:
            clause += [str(rng.choice(list(PREPOSITIONS)))] + _noun_phrase(rng, pp)
        source += ([CONJUNCTION] if i else []) + clause
    return source, translate(source)


def sample_pairs(seed, lengths: Sequence[int]) -> list[tuple[list[str], list[str]]]:
    """``[sample_pair(rng, n) for n in lengths]`` with one generator made from ``seed``."""
    rng = _rng(seed)
    return [sample_pair(rng, int(n)) for n in lengths]


def _translate_np(words: list[str]) -> list[str]:
    det = words[0] if words[0] in DETERMINERS else None
    body = words[1:] if det else words
    if not body or body[-1] not in NOUNS or any(w not in ADJECTIVES for w in body[:-1]):
        raise ValueError(f"not a noun phrase: {' '.join(words)!r}.")
    return [NOUNS[body[-1]], *(ADJECTIVES[w] for w in reversed(body[:-1]))] + ([DEFINITE] if det == "the" else [])


def translate(source: Sequence[str]) -> list[str]:
    """The target of a grammatical ``source`` (a list of words), by the rules of the module
    docstring; ``ValueError`` naming the clause if ``source`` is not in the grammar."""
    source = list(source)
    target: list[str] = []
    clauses: list[list[str]] = [[]]
    for w in source:
        if w == CONJUNCTION:
            clauses.append([])
        else:
            clauses[-1].append(w)
    for i, clause in enumerate(clauses):
        verbs = [j for j, w in enumerate(clause) if w in VERBS]
        preps = [j for j, w in enumerate(clause) if w in PREPOSITIONS]
        if len(verbs) != 1 or len(preps) > 1 or (preps and preps[0] < verbs[0]):
            raise ValueError(f"source clause {i} is not NP VERB NP [PREP NP]: {' '.join(clause)!r}.")
        v = verbs[0]
        end = preps[0] if preps else len(clause)
        out = _translate_np(clause[:v]) + [SUBJECT_PARTICLE] + _translate_np(clause[v + 1:end])
        if preps:
            out += _translate_np(clause[end + 1:]) + [PREPOSITIONS[clause[end]]]
        target += ([TARGET_CONJUNCTION] if i else []) + out + [VERBS[clause[v]]]
    return target


def target_length_bound(length: int) -> int:
    """The longest target a source of ``length`` words can have: ``length + clauses`` with the
    most clauses (all of 3 words): ``length + (length + 1) // 4``."""
    if length < MIN_LENGTH:
        raise ValueError(f"length must be >= {MIN_LENGTH}; got {length}.")
    return length + (length + 1) // (MIN_CLAUSE + 1)


EXACT_MATCH_CEILING = 1.0  # the mapping is a function of the source (see the module docstring)
