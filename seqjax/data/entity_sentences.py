"""A synthetic named-entity corpus from templates and gazetteers, tagged in IOB2.

**Synthetic**: every sentence is a template ("{PER} flew from {LOC} to {LOC} .") filled with
names drawn from small gazetteers of people (PER), places (LOC) and organisations (ORG), so the
labels are exact and nothing is downloaded. It is a test bed for taggers, not a benchmark of
real text: the templates are few, the vocabulary outside the entities is small.

What makes it a real labelling problem:

* **Unseen entities.** Each gazetteer is split in two: ``split="train"`` fills templates with
  one half, ``split="test_unseen"`` with the other, so a tagger must recognise a name it never
  saw from its context and shape; ``split="test_seen"`` uses the training names in new sentences.
  No whole entity is shared between the halves, but a few words are, with another type ("Jordan"
  the place is unseen, "Jordan Airlines" is a training organisation).
* **Ambiguous names.** Some names are in two gazetteers ("Jordan" the person and the country,
  "Washington" the surname and the city, "Lincoln", "Florence", ...): only the context says which.
* **Multi-token entities** ("New York", "Maria Garcia", "World Health Organization") need ``I-``
  tags, and sentence-initial entities need the right context to tell ``B-`` from a capitalised
  first word, which is where a bidirectional encoder should help.
* The first word of each sentence is capitalised, so capitalisation alone does not mark names.

Example::

    >>> sents = entity_sentences(3, split="train", seed=0)
    >>> len(sents), all(len(words) == len(tags) for words, tags in sents)
    (3, True)
    >>> words, tags = sents[0]
    >>> set(tags) <= set(TAGS)
    True
"""

from __future__ import annotations

import numpy as np

from seqjax import _checks

__all__ = ["SPLITS", "TAGS", "TEMPLATES", "entity_sentences", "gazetteers"]

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
SPLITS = ("train", "test_seen", "test_unseen")

_FIRST = ("John", "Maria", "Ahmed", "Wei", "Olga", "Pierre", "Fatima", "Kenji", "Laura", "Diego", "Anna",
          "Samuel", "Priya", "Tom", "Elena", "Jordan", "Florence", "Grace", "Omar", "Ingrid", "Lucas",
          "Mei", "Hannah", "Carlos", "Nadia", "Victor", "Chloe", "Ivan", "Sofia", "Daniel", "Aisha", "Paul")
_LAST = ("Smith", "Garcia", "Khan", "Chen", "Petrov", "Dubois", "Tanaka", "Rossi", "Novak", "Silva",
         "Washington", "Lincoln", "Okafor", "Muller", "Jensen", "Kowalski", "Haddad", "Nakamura", "Brown",
         "Lopez", "Ivanova", "Schmidt", "Moreau", "Sato", "Costa", "Walsh", "Fischer", "Park")
_PLACES = ("Paris", "Berlin", "Tokyo", "Lagos", "Lima", "Oslo", "Cairo", "Madrid", "Toronto", "Jordan",
           "Washington", "Lincoln", "Florence", "New York", "San Francisco", "Buenos Aires", "Hong Kong",
           "Kenya", "Peru", "Norway", "Vietnam", "Chile", "Canada", "Brazil", "India", "South Africa",
           "New Zealand", "Rio de Janeiro", "Sydney", "Vienna", "Dublin", "Seoul")
_ORGS = ("United Nations", "World Health Organization", "Red Cross", "Acme Corporation", "Globex",
         "Initech", "Stark Industries", "Wayne Enterprises", "Northwind Traders", "Blue River Bank",
         "Oxford University", "Lincoln Motors", "Jordan Airlines", "Florence Group", "Green Energy Fund",
         "Apex Labs", "Nova Systems", "Summit Partners", "Harbor Hospital", "City Council",
         "Central Bank", "Open Data Institute", "Silver Line Rail", "Atlas Media")

# Templates: words, and slots {PER} {LOC} {ORG}. Punctuation is its own token.
TEMPLATES = (
    "{PER} visited {LOC} last week .",
    "{PER} works for {ORG} in {LOC} .",
    "the {ORG} office in {LOC} opened on monday .",
    "{LOC} is where {PER} was born .",
    "yesterday , {PER} met {PER} in {LOC} .",
    "{ORG} announced that {PER} will lead the new team .",
    "she flew from {LOC} to {LOC} with {PER} .",
    "according to {PER} , {ORG} is growing fast .",
    "{ORG} signed a deal with {ORG} .",
    "{PER} said the talks in {LOC} went well .",
    "a spokesman for {ORG} declined to comment .",
    "{PER} and {PER} moved to {LOC} in may .",
    "the mayor of {LOC} thanked {ORG} .",
    "in {LOC} , {ORG} hired {PER} as director .",
    "{PER} joined {ORG} after leaving {ORG} .",
    "rain fell across {LOC} on sunday .",
    "{PER} wrote to {PER} about the plan .",
    "{LOC} beat {LOC} in the final .",
    "shares of {ORG} rose after {PER} spoke .",
    "he lives near {LOC} and works at {ORG} .",
    "the report by {ORG} praised {LOC} .",
    "{PER} , a lawyer from {LOC} , sued {ORG} .",
    "nobody expected the storm to reach the coast .",
    "talks between {ORG} and {LOC} ended early .",
)


def gazetteers(half: int) -> dict[str, tuple[str, ...]]:
    """The names of half ``0`` (training) or ``1`` (unseen at test): people are first + last
    name pairs, split by first name; places and organisations alternate between the halves."""
    if half not in (0, 1):
        raise ValueError(f"half must be 0 or 1; got {half!r}.")
    firsts, lasts = _FIRST[half::2], _LAST[half::2]
    people = tuple(f"{f} {l}" for f in firsts for l in lasts) + firsts + lasts
    return {"PER": people, "LOC": _PLACES[half::2], "ORG": _ORGS[half::2]}


def entity_sentences(n: int, *, split: str = "train", seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` sentences ``(words, tags)`` of ``split`` (one of :data:`SPLITS`), deterministic in
    ``seed`` and ``split`` (the splits draw from different streams; see the module docstring)."""
    _checks.positive_int("n", n)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    names = gazetteers(1 if split == "test_unseen" else 0)
    out = []
    for _ in range(n):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        words, tags = [], []
        for piece in template.split():
            if piece.startswith("{") and piece.endswith("}"):
                kind = piece[1:-1]
                entity = names[kind][rng.integers(len(names[kind]))].split()
                words += entity
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
            else:
                words.append(piece)
                tags.append("O")
        words[0] = words[0][:1].upper() + words[0][1:]
        out.append((words, tags))
    return out
