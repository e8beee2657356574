"""The benchmark statistics and number formats, against numbers computed by hand."""

from __future__ import annotations

import doctest

import pytest

from benchmarks import stats, tables


def test_summary_of_odd_and_even_counts():
    assert stats.summarize([0.3, 0.1, 0.2]) == stats.Summary(n=3, median=0.2, min=0.1, max=0.3)
    # even count: the mean of the two middle values, (2 + 3) / 2
    assert stats.summarize([4.0, 1.0, 3.0, 2.0]) == stats.Summary(n=4, median=2.5, min=1.0, max=4.0)


def test_failed_rounds_are_left_out():
    assert stats.summarize([None, 5.0, None, 1.0, 3.0]) == stats.Summary(n=3, median=3.0, min=1.0, max=5.0)
    with pytest.raises(ValueError, match="at least one number"):
        stats.summarize([None, None])


def test_ratio_of_medians_is_not_the_median_of_ratios():
    a = [1.0, 2.0, 9.0]  # median 2
    b = [4.0, 1.0, 3.0]  # median 3
    assert stats.ratio_of_medians(a, b) == pytest.approx(2.0 / 3.0)
    # per round: 1/4, 2/1, 9/3; their median is 2, a different number from the ratio of medians
    assert stats.per_round_ratios(a, b) == pytest.approx([0.25, 2.0, 3.0])
    r = stats.compare(a, b)
    assert r.ratio_of_medians == pytest.approx(2.0 / 3.0)
    assert (r.spread_min, r.spread_max, r.rounds) == (pytest.approx(0.25), pytest.approx(3.0), 3)
    assert r.as_dict()["per_round"] == pytest.approx([0.25, 2.0, 3.0])


def test_compare_pairs_only_rounds_where_both_ran():
    a = [0.10, 0.12, None, 0.11]  # median 0.11 (over its own 3 rounds)
    b = [0.08, None, 0.09, 0.10]  # median 0.09
    r = stats.compare(a, b)
    assert r.ratio_of_medians == pytest.approx(0.11 / 0.09)
    assert r.per_round == pytest.approx((0.10 / 0.08, 0.11 / 0.10))  # rounds 1 and 4
    assert (r.spread_min, r.spread_max, r.rounds) == (pytest.approx(1.1), pytest.approx(1.25), 2)
    assert stats.compare([1.0, None], [None, 2.0]) is None


def test_rounds_must_line_up():
    with pytest.raises(ValueError, match="one value per round; got 2 and 3"):
        stats.per_round_ratios([1.0, 2.0], [1.0, 2.0, 3.0])


def test_formats():
    assert tables.fmt_ratio({"ratio_of_medians": 1.2712, "spread_min": 1.16, "spread_max": 1.341}) == "1.27 (1.16–1.34)"
    assert tables.fmt_ratio(None) == "–"
    assert tables.fmt_time_range({"median": 3.391, "min": 3.17, "max": 3.64, "n": 3}) == "3.39 s (3.17–3.64)"
    assert tables.fmt_seconds(0.000456) == "0.456 ms"
    assert tables.fmt_mib(953.2) == "953 MiB"


@pytest.mark.parametrize("module", [stats, tables])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
