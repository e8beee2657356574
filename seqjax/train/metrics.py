"""Corpus BLEU (Papineni et al. 2002) on token lists, with sacreBLEU's defaults.

For hypotheses ``h_k`` and one reference ``r_k`` each (lists of tokens)::

    p_n  = sum_k sum_{g in n-grams(h_k)} min(count_{h_k}(g), count_{r_k}(g)) / sum_k (|h_k| - n + 1)^+
    BP   = 1 if c >= r else exp(1 - r / c)         c = sum_k |h_k|,  r = sum_k |r_k|
    BLEU = 100 * BP * exp(mean_{n=1..4} log p_n)

the clipped ("modified") n-gram precisions of the whole corpus, not a mean of sentence scores.
``smooth="exp"`` (sacreBLEU's default) replaces a zero count ``p_n = 0`` by ``1 / (2^k * total_n)``
for the ``k``-th zero order; ``smooth="none"`` is the paper's definition (any zero precision gives
0). Equal to ``sacrebleu.corpus_bleu(hyps, [refs], tokenize="none")`` on the space-joined tokens
(the tests compare them when sacreBLEU is installed); there is no tokenisation here: tokens are
whatever the lists hold. Only one reference per hypothesis.

It lives next to the losses because it is the sequence-level counterpart of their per-token
numbers (cross-entropy, perplexity, bits per character): a score of a model's outputs.

Example::

    >>> from seqjax.train.metrics import corpus_bleu
    >>> round(corpus_bleu([["a", "b", "c", "d", "e"]], [["a", "b", "c", "d", "f"]]), 3)
    66.874
    >>> corpus_bleu([["the", "cat", "sat", "down"]], [["the", "cat", "sat", "down"]])
    100.0
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

SMOOTHING = ("exp", "none")


def ngram_stats(hypothesis: Sequence, reference: Sequence, max_order: int = 4) -> tuple[list[int], list[int]]:
    """``(matches, totals)`` per order ``n = 1..max_order``: clipped n-gram matches of one
    hypothesis against its reference, and the hypothesis' n-gram count."""
    matches, totals = [], []
    for n in range(1, max_order + 1):
        hyp = Counter(tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1))
        ref = Counter(tuple(reference[i:i + n]) for i in range(len(reference) - n + 1))
        matches.append(sum(min(c, ref[g]) for g, c in hyp.items()))
        totals.append(max(len(hypothesis) - n + 1, 0))
    return matches, totals


def corpus_bleu(hypotheses: Sequence[Sequence], references: Sequence[Sequence], *, max_order: int = 4,
                smooth: str = "exp") -> float:
    """Corpus BLEU in ``[0, 100]`` (module docstring); 0 for an empty or all-empty output.

    Args:
      hypotheses: one token list per sentence.
      references: one token list per sentence, as many as ``hypotheses``.
      max_order: the longest n-gram (4).
      smooth: ``"exp"`` (sacreBLEU's default) or ``"none"``.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references must have the same length; got {len(hypotheses)} "
                         f"and {len(references)}.")
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive integer; got {max_order!r}.")
    if smooth not in SMOOTHING:
        raise ValueError(f"smooth must be one of {SMOOTHING}; got {smooth!r}.")
    matches, totals = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references):
        m, t = ngram_stats(list(h), list(r), max_order)
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        hyp_len += len(h)
        ref_len += len(r)
    if hyp_len == 0:
        return 0.0
    log_sum, zeros = 0.0, 0
    for m, t in zip(matches, totals):
        if t == 0:  # no n-grams of this order at all (every hypothesis shorter than n)
            return 0.0
        if m == 0:
            if smooth == "none":
                return 0.0
            zeros += 1
            log_sum += math.log(1.0 / (2 ** zeros * t))
        else:
            log_sum += math.log(m / t)
    bp = 1.0 if hyp_len >= ref_len else math.exp(1.0 - ref_len / hyp_len)
    return 100.0 * bp * math.exp(log_sum / max_order)
