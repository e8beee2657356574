"""An interpolated Kneser-Ney n-gram language model (numpy and dicts): the baseline of neural LMs.

Interpolated Kneser-Ney (Kneser & Ney 1995; the interpolated form of Chen & Goodman 1998, 3.5)
with one absolute discount ``D_n = n_1 / (n_1 + 2 n_2)`` per order (``n_r``: the number of
n-grams seen exactly ``r`` times). For the highest order ``N`` it uses counts ``c``, for the
lower orders *continuation* counts ``c'(v w) = |{u : c(u v w) > 0}|`` (how many contexts a word
follows, not how often it occurs). With ``h`` the context and ``h'`` it shortened by one word:

    P(w | h) = max(c(h w) - D, 0) / c(h .)  +  D * N1+(h .) / c(h .) * P(w | h')

``N1+(h .)`` is the number of distinct words seen after ``h``; a context never seen backs off
entirely, ``P(w | h) = P(w | h')``; the recursion ends in the uniform distribution over the
vocabulary, so every word (``<unk>`` included) has a probability above zero and every
distribution sums to one (tested).

Example::

    >>> lm = KneserNey.fit("a b a b a c".split(), order=2)
    >>> round(sum(lm.prob(w, ("a",)) for w in lm.vocab), 12)
    1.0
    >>> lm.prob("b", ("a",)) > lm.prob("c", ("a",))
    True
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

from seqjax import _checks

__all__ = ["KneserNey"]


class KneserNey:
    """An interpolated Kneser-Ney model of ``order`` (1 = unigram with the uniform floor)."""

    def __init__(self, order: int, vocab: Sequence[Hashable], counts: list[Counter], discounts: list[float]):
        self.order = order
        self.vocab = list(vocab)
        self._counts = counts            # counts[n - 1][(w_1..w_n)]: raw for n = order, else continuation
        self.discounts = discounts
        self._context_total: list[Counter] = []
        self._context_types: list[Counter] = []
        for table in counts:
            total, types = Counter(), Counter()
            for gram, c in table.items():
                total[gram[:-1]] += c
                types[gram[:-1]] += 1
            self._context_total.append(total)
            self._context_types.append(types)

    @classmethod
    def fit(cls, tokens: Sequence[Hashable], order: int = 3, *, vocab: Sequence[Hashable] | None = None) -> "KneserNey":
        """Count every n-gram of ``tokens`` (one stream) up to ``order``. ``vocab`` (default: the
        distinct tokens) is what the distribution ranges over; tokens outside it are an error."""
        _checks.positive_int("order", order)
        tokens = list(tokens)
        if len(tokens) < order:
            raise ValueError(f"tokens must hold at least order = {order} tokens; got {len(tokens)}.")
        vocab = sorted(set(tokens), key=str) if vocab is None else list(vocab)
        known = set(vocab)
        unknown = [t for t in set(tokens) if t not in known]
        if unknown:
            raise ValueError(f"tokens holds {len(unknown)} types outside vocab, e.g. {unknown[:3]}; map them to "
                             f"an unknown-word token first.")
        top = Counter(tuple(tokens[i:i + order]) for i in range(len(tokens) - order + 1))
        counts = [Counter() for _ in range(order)]
        counts[order - 1] = top
        # Continuation counts of each lower order, from the distinct grams one order up.
        for n in range(order - 1, 0, -1):
            for gram in counts[n]:
                counts[n - 1][gram[1:]] += 1
        discounts = []
        for table in counts:
            hist = Counter(table.values())
            n1, n2 = hist.get(1, 0), hist.get(2, 0)
            discounts.append(n1 / (n1 + 2 * n2) if n1 + n2 else 0.5)
        return cls(order, vocab, counts, discounts)

    def prob(self, word: Hashable, context: Sequence[Hashable] = ()) -> float:
        """``P(word | context)``; only the last ``order - 1`` context words are used."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        p = 1.0 / len(self.vocab)
        for n in range(1, len(context) + 2):  # from unigrams up to the full context
            h = context[len(context) - (n - 1):] if n > 1 else ()
            total = self._context_total[n - 1].get(h, 0)
            if total == 0:
                continue  # an unseen context: back off entirely
            d = self.discounts[n - 1]
            c = self._counts[n - 1].get(h + (word,), 0)
            p = max(c - d, 0.0) / total + d * self._context_types[n - 1][h] / total * p
        return p

    def log_prob_stream(self, tokens: Sequence[Hashable], context: Sequence[Hashable] = ()) -> float:
        """``sum_i log P(t_i | preceding tokens)`` (natural log) over a stream, starting after
        ``context``."""
        history = list(context)
        total = 0.0
        for t in tokens:
            total += math.log(self.prob(t, history[-(self.order - 1):] if self.order > 1 else ()))
            history.append(t)
        return total

    def perplexity(self, tokens: Sequence[Hashable], context: Sequence[Hashable] = ()) -> float:
        """``exp(-mean log P)`` of a stream."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("tokens must not be empty.")
        return math.exp(-self.log_prob_stream(tokens, context) / len(tokens))
