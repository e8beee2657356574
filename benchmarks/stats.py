"""Statistics of a benchmark: summaries of per-round times and ratios between two contenders.

Each contender is timed once per round, in a fresh process; a round's value is the median of the
timed calls in that process (see :mod:`benchmarks.timing`). Across rounds a contender is summarised
by the median, min and max of its per-round values. Two contenders are compared by

- the **ratio of medians**: ``median(a) / median(b)`` over each one's successful rounds, the
  headline number (it is the ratio of the two medians the tables show), and
- its **spread**: the min and max of the per-round ratios ``a[r] / b[r]`` over the rounds where
  both succeeded. The two processes of a round ran minutes apart at most, so the per-round ratio
  shows how much the comparison moves with the machine's drift.

A failed round is ``None`` and is left out. Pure Python: no numpy, no jax, no torch.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median, min and max of ``n`` values."""

    n: int
    median: float
    min: float
    max: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Ratio:
    """``a`` against ``b``: the ratio of medians and the range of the per-round ratios.

    ``spread_min``/``spread_max`` are the smallest and largest per-round ratio, over the
    ``rounds`` rounds where both values exist; ``per_round`` lists those ratios in round order.
    """

    ratio_of_medians: float
    spread_min: float
    spread_max: float
    rounds: int
    per_round: tuple[float, ...]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["per_round"] = list(self.per_round)
        return d


def present(values: Sequence[float | None]) -> list[float]:
    """The values that are not ``None`` (the successful rounds), in order."""
    return [v for v in values if v is not None]


def summarize(values: Sequence[float | None]) -> Summary:
    """Median, min and max of the values that are not ``None``.

    >>> summarize([3.0, None, 1.0, 2.0, 10.0])
    Summary(n=4, median=2.5, min=1.0, max=10.0)
    """
    xs = present(values)
    if not xs:
        raise ValueError(f"values must contain at least one number; got {list(values)!r}.")
    return Summary(len(xs), statistics.median(xs), min(xs), max(xs))


def ratio_of_medians(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """``median(a) / median(b)``, each over its own values that are not ``None``.

    >>> ratio_of_medians([1.0, 3.0, 2.0], [4.0, 4.0, 5.0])
    0.5
    """
    return summarize(a).median / summarize(b).median


def per_round_ratios(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    """``a[r] / b[r]`` for every round ``r`` where both are present.

    >>> per_round_ratios([1.0, None, 3.0], [2.0, 2.0, 2.0])
    [0.5, 1.5]
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must have one value per round; got {len(a)} and {len(b)} values.")
    return [x / y for x, y in zip(a, b) if x is not None and y is not None]


def compare(a: Sequence[float | None], b: Sequence[float | None]) -> Ratio | None:
    """The :class:`Ratio` of ``a`` to ``b``, or ``None`` when no round has both.

    >>> r = compare([1.0, 3.0, 2.0], [2.0, 2.0, 4.0])
    >>> r.ratio_of_medians, r.spread_min, r.spread_max, r.rounds
    (1.0, 0.5, 1.5, 3)
    """
    ratios = per_round_ratios(a, b)
    if not ratios:
        return None
    return Ratio(ratio_of_medians(a, b), min(ratios), max(ratios), len(ratios), tuple(ratios))
