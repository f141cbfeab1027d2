"""The per-arm figures of an experiment's page and their 95% intervals."""

from __future__ import annotations

import random

import pytest

from srcflask.experiments.summary import mean, median, share


def test_a_share_has_the_wilson_interval():
    half = share(5, 10)
    assert half.value == 0.5
    assert (round(half.low, 4), round(half.high, 4)) == (0.2366, 0.7634)
    # None of ten is not "certainly none": the interval still reaches 28%.
    none = share(0, 10)
    assert none.low == 0.0 and round(none.high, 4) == 0.2775
    assert share(0, 0).value is None


def test_a_share_out_of_range_is_refused():
    with pytest.raises(ValueError):
        share(11, 10)


def test_wilson_intervals_cover_the_true_share_about_95_percent_of_the_time():
    rng = random.Random(11)
    covered = 0
    for _ in range(2000):
        count = sum(rng.random() < 0.1 for _ in range(50))
        interval = share(count, 50)
        covered += interval.low <= 0.1 <= interval.high
    assert 0.92 <= covered / 2000 <= 0.985


def test_a_mean_has_a_normal_interval():
    estimate = mean([0.0, 1.0] * 50)
    assert estimate.value == 0.5
    assert estimate.high - estimate.value == pytest.approx(1.96 * 0.5025 / 10, abs=1e-3)
    assert mean([0.7]).low is None and mean([]).value is None


def test_the_median_interval_runs_between_the_order_statistics_the_binomial_gives():
    values = list(range(1, 101))  # the k-th smallest is k
    estimate = median(values)
    assert estimate.value == 50.5
    # The textbook ranks for 100 values at 95%: the 40th and the 61st.
    assert (estimate.low, estimate.high) == (40, 61)
    assert (median([3, 1, 2, 6, 5, 4]).low, median([3, 1, 2, 6, 5, 4]).high) == (1, 6)
    assert median([1, 2, 3, 4, 5]).low is None  # five values cannot give 95%
    assert median([]).value is None


def test_the_median_interval_covers_skewed_times_at_least_95_percent_of_the_time():
    rng = random.Random(12)
    true_median = 0.6931471805599453  # of the exponential distribution with rate 1
    covered = sum(
        (lambda e: e.low <= true_median <= e.high)(median([rng.expovariate(1) for _ in range(30)]))
        for _ in range(2000)
    )
    assert covered / 2000 >= 0.94
