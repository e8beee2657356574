"""The synthetic entity corpus: valid IOB2, deterministic, unseen names really unseen."""

from __future__ import annotations

import pytest

from seqjax.data.entity_sentences import SPLITS, TAGS, entity_sentences, gazetteers
from seqjax.tagging import iob2_spans


def _entities(sentences):
    return {" ".join(words[a:b]) for words, tags in sentences for _, a, b in iob2_spans(tags)}


def test_sentences_are_valid_iob2_and_deterministic():
    sents = entity_sentences(400, split="train", seed=3)
    assert sents == entity_sentences(400, split="train", seed=3)
    assert sents != entity_sentences(400, split="train", seed=4)
    kinds = set()
    for words, tags in sents:
        assert len(words) == len(tags) and set(tags) <= set(TAGS)
        assert words[0][0].isupper()
        for i, tag in enumerate(tags):   # every I- continues an entity of its own type
            if tag.startswith("I-"):
                assert tags[i - 1] in (f"B-{tag[2:]}", tag)
        kinds |= {k for k, _, _ in iob2_spans(tags)}
    assert kinds == {"PER", "LOC", "ORG"}
    assert any(b - a > 1 for _, tags in sents for _, a, b in iob2_spans(tags))  # multi-token entities


def test_unseen_split_shares_no_entity_with_training():
    train = _entities(entity_sentences(2000, split="train"))
    unseen = _entities(entity_sentences(500, split="test_unseen"))
    seen = _entities(entity_sentences(500, split="test_seen"))
    assert not train & unseen
    halves = [gazetteers(h) for h in (0, 1)]
    names = [{n for ns in half.values() for n in ns} for half in halves]
    assert seen <= names[0] and train <= names[0] and unseen <= names[1]
    for kind in ("PER", "LOC", "ORG"):
        assert not set(halves[0][kind]) & set(halves[1][kind]), kind
    # Ambiguous names: in two gazetteers of the same half.
    flat = [name for names in halves[0].values() for name in names]
    assert {"Washington", "Florence"} <= {n for n in flat if flat.count(n) > 1}


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "n must"), ({"n": 3, "split": "dev"}, "split must be one of")])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        entity_sentences(**kwargs)
    assert SPLITS == ("train", "test_seen", "test_unseen")
