"""The experiment decision rule's error rates, by simulating editors with known rates.

Run from services/web: ../../.venv/bin/python bench/experiment_rule.py [--experiments 1000]

Each simulated experiment assigns reviews to the champion and the challenger at
random (half each), draws every editor's decision from its arm's rates (accept,
reject, or keep part / edit with a uniform share kept), and asks the rule
(srcflask/experiments/rule.py) after every single review, as people looking at
the page every day would. The first verdict other than "collecting" ends it; at
400 reviews per arm it ends undecided. Scenarios: equal arms (A/A), a challenger
15 points better in kept share (40% against 55%), and one 15 points worse.
Fixed seeds: the same figures every run. The result (share of each verdict,
median reviews per arm to a verdict) goes to bench/results/<machine>/<date>-experiment-rule.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WEB))
sys.path.insert(0, str(WEB / "bench"))
from decoding_study import commit, machine_name, write_result  # noqa: E402

from srcflask.experiments import rule  # noqa: E402

MAX_PER_ARM = 400


def editor(accept: float, reject: float):
    """Decisions with these rates; the rest keep part or edit, keeping a uniform share."""

    def decision(rng: random.Random) -> tuple[float, bool]:
        roll = rng.random()
        if roll < accept:
            return 1.0, False
        if roll < accept + reject:
            return 0.0, True
        return rng.random(), False

    return decision


# Mean kept shares: 0.25 + 0.30 / 2 = 0.40 and 0.40 + 0.30 / 2 = 0.55.
KEEPS_40 = editor(accept=0.25, reject=0.45)
KEEPS_55 = editor(accept=0.40, reject=0.30)
SCENARIOS = {
    "equal arms (40% and 40% kept)": (KEEPS_40, KEEPS_40),
    "challenger better (40% and 55% kept)": (KEEPS_40, KEEPS_55),
    "challenger worse (55% and 40% kept)": (KEEPS_55, KEEPS_40),
}


def run(champion_editor, challenger_editor, seed: int) -> tuple[str, int]:
    """One experiment: (the first verdict, or "collecting" at the end; reviews per arm)."""
    rng = random.Random(seed)
    champion, challenger = rule.Arm(), rule.Arm()
    while champion.reviews < MAX_PER_ARM or challenger.reviews < MAX_PER_ARM:
        arm, decide_for = (
            (champion, champion_editor) if rng.random() < 0.5 else (challenger, challenger_editor)
        )
        if arm.reviews >= MAX_PER_ARM:
            continue
        arm.add(*decide_for(rng))
        verdict = rule.decide(champion, challenger)
        if verdict.outcome != "collecting":
            return verdict.outcome, max(champion.reviews, challenger.reviews)
    return "collecting", MAX_PER_ARM


def simulate(champion_editor, challenger_editor, experiments: int, seed: int) -> dict:
    counts: dict[str, int] = {}
    reviews: list[int] = []
    for n in range(experiments):
        outcome, per_arm = run(champion_editor, challenger_editor, seed * 100_000 + n)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome != "collecting":
            reviews.append(per_arm)
    return {
        "experiments": experiments,
        "verdicts": dict(sorted(counts.items())),
        "median_reviews_per_arm_to_a_verdict": statistics.median(reviews) if reviews else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = {
        "command": "python bench/experiment_rule.py " + " ".join(argv or sys.argv[1:]),
        "commit": commit(),
        "machine": machine_name(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rule": {
            "test": "mSPRT, normal mixture (Johari et al. 2022)",
            "alpha": rule.ALPHA,
            "tau": rule.TAU,
            "margin": rule.MARGIN,
            "min_reviews_per_arm": rule.MIN_REVIEWS,
            "max_reviews_per_arm": MAX_PER_ARM,
        },
        "scenarios": {
            name: simulate(*editors, args.experiments, seed)
            for seed, (name, editors) in enumerate(SCENARIOS.items(), start=1)
        },
    }
    write_result(result, "experiment-rule", args.out)
    print(json.dumps(result["scenarios"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
