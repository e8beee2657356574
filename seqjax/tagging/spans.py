"""Entity spans of IOB2 tag sequences and span-level precision, recall and F1 (strict mode).

IOB2 (Tjong Kim Sang & Veenstra 1999; CoNLL-2003): every entity starts with ``B-X`` and goes on
with ``I-X``; ``O`` is outside. In **strict** mode, the one ``seqeval`` offers as
``mode="strict", scheme=IOB2``, an entity is exactly a ``B-X`` followed by its run of ``I-X``;
an ``I-X`` that does not continue a ``B-X``/``I-X`` of the same type starts no entity (the lenient
CoNLL script would count it as one). A predicted entity is correct only if its type, start and
end all match a gold entity:

    precision = correct / predicted,   recall = correct / gold,   F1 = 2 P R / (P + R)

counted over all sentences (micro average), and per type. With nothing predicted precision is
0, with no gold entity recall is 0 (``seqeval``'s ``zero_division=0``).

Example::

    >>> iob2_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 4, 5)]
    >>> scores = span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    >>> scores["f1"], scores["precision"], scores["recall"]
    (0.0, 0.0, 0.0)
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

__all__ = ["iob2_spans", "span_f1"]


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if sep != "-" or prefix not in ("B", "I") or not kind:
        raise ValueError(f"tags must be 'O', 'B-<type>' or 'I-<type>' (IOB2); got {tag!r}.")
    return prefix, kind


def iob2_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` (end exclusive) of every strict-IOB2 entity in ``tags``."""
    spans, start, kind = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, k = _split(tag)
        if start is not None and not (prefix == "I" and k == kind):
            spans.append((kind, start, i))
            start = kind = None
        if prefix == "B":
            start, kind = i, k
    return spans


def span_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro ``precision``, ``recall``, ``f1`` and ``per_type`` scores (with ``support``, the
    number of gold entities) over sentences of IOB2 tags; ``gold[i]`` and ``predicted[i]`` must
    have the same length."""
    if len(gold) != len(predicted):
        raise ValueError(f"gold and predicted must hold the same number of sentences; got {len(gold)} "
                         f"and {len(predicted)}.")
    counts = {"gold": Counter(), "pred": Counter(), "correct": Counter()}
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags, predicted {len(p)}.")
        g_spans, p_spans = set(iob2_spans(g)), set(iob2_spans(p))
        counts["gold"].update(s[0] for s in g_spans)
        counts["pred"].update(s[0] for s in p_spans)
        counts["correct"].update(s[0] for s in g_spans & p_spans)

    def prf(correct: int, pred: int, gold_n: int) -> dict:
        precision = correct / pred if pred else 0.0
        recall = correct / gold_n if gold_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}

    total = prf(sum(counts["correct"].values()), sum(counts["pred"].values()), sum(counts["gold"].values()))
    kinds = sorted(set(counts["gold"]) | set(counts["pred"]))
    total["per_type"] = {k: prf(counts["correct"][k], counts["pred"][k], counts["gold"][k])
                         | {"support": counts["gold"][k]} for k in kinds}
    total["support"] = sum(counts["gold"].values())
    return total
