"""The experiment's decision rule, checked by simulating editors with known rates.

The simulation is bench/experiment_rule.py's (its docstring says how): reviews
to either arm at random, the rule asked after every single review, fixed seeds,
1,000 experiments per scenario.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from srcflask.experiments.rule import MARGIN, MIN_REVIEWS, Arm, decide, radius, statistic

EXPERIMENTS = 1000


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_experiment_rule", Path(__file__).resolve().parent.parent / "bench/experiment_rule.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()
KEEPS_40, KEEPS_55 = bench.KEEPS_40, bench.KEEPS_55


def outcomes(champion_editor, challenger_editor, seed: int) -> dict[str, int]:
    return bench.simulate(champion_editor, challenger_editor, EXPERIMENTS, seed)["verdicts"]


def test_equal_arms_are_promoted_wrongly_at_most_5_percent_of_the_time():
    counts = outcomes(KEEPS_40, KEEPS_40, seed=1)
    assert counts.get("better", 0) <= 0.05 * EXPERIMENTS, counts
    # ...and the rule does not stop a challenger as good as the champion either.
    assert counts.get("worse", 0) <= 0.05 * EXPERIMENTS, counts


def test_a_15_point_better_challenger_is_found_within_400_reviews_per_arm():
    counts = outcomes(KEEPS_40, KEEPS_55, seed=2)
    assert counts.get("better", 0) >= 0.80 * EXPERIMENTS, counts
    assert counts.get("worse", 0) == 0, counts


def test_a_15_point_worse_challenger_is_stopped():
    counts = outcomes(KEEPS_55, KEEPS_40, seed=3)
    assert counts.get("worse", 0) >= 0.80 * EXPERIMENTS, counts
    assert counts.get("better", 0) == 0, counts


def test_no_verdict_before_the_minimum_number_of_reviews():
    champion, challenger = Arm(), Arm()
    for _ in range(MIN_REVIEWS - 1):
        champion.add(0.0, True)
        challenger.add(1.0, False)
    verdict = decide(champion, challenger)
    assert verdict.outcome == "collecting" and verdict.more_reviews >= 2
    champion.add(0.0, True)
    challenger.add(1.0, False)
    assert decide(champion, challenger).outcome == "better"


def test_keep_collecting_says_about_how_many_reviews_are_left():
    champion, challenger = Arm(), Arm()
    rng = random.Random(7)
    for _ in range(40):
        champion.add(*KEEPS_40(rng))
        challenger.add(*KEEPS_40(rng))
    verdict = decide(champion, challenger)
    assert verdict.outcome == "collecting"
    assert verdict.message == f"Keep collecting (about {verdict.more_reviews} more reviews needed)"
    assert verdict.more_reviews > 0


def test_the_interval_excludes_zero_exactly_when_the_statistic_reaches_one_over_alpha():
    variance = 0.002
    edge = radius(variance)
    assert statistic(edge * 1.001, variance) > 20 > statistic(edge * 0.999, variance)


@pytest.mark.parametrize("difference", [0.0, 0.02, -0.03])
def test_equal_enough_arms_end_as_no_difference_given_enough_reviews(difference):
    champion, challenger = Arm(), Arm()
    # Many reviews with these means and a spread like editors': the interval narrows
    # inside the margin.
    for i in range(20_000):
        share = 0.4 + (0.3 if i % 2 else -0.3)
        champion.add(share, False)
        challenger.add(share + difference, False)
    verdict = decide(champion, challenger)
    assert abs(difference) < MARGIN
    assert verdict.outcome == "no difference", verdict
