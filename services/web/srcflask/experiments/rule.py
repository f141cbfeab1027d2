"""The decision rule of an experiment: is the challenger's text kept more than the champion's?

The measure is each review's kept share (accept 1, reject 0, keep part and edit
their stored share). The rule must stay valid however often people look at the
page, so it is a sequential test: the mixture sequential probability ratio test
(mSPRT) with a normal mixing distribution, as in Johari, Koomen, Pekelis and
Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests",
Operations Research 70(3), 2022 (arXiv:1512.04922). For the difference of the
two arms' means, with V the variance of that difference and tau the mixing
scale, the statistic after any number of reviews is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))

and "the arms differ" may be declared the first time Lambda >= 1/alpha: the
chance of ever declaring it when they do not differ is at most alpha, at
whatever moments people look. Inverted, it gives an interval for the
difference that holds at every look at once (a confidence sequence); the
verdicts below read that interval. The guardrail, the rejection rate, gets the
same test.

Kept shares are bounded, not normal, and V is estimated from the reviews, so
the guarantee is approximate for small counts: no verdict comes before
MIN_REVIEWS per arm, and tests/test_experiment_rule.py checks the error rates
by simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
# The mixing scale: differences in kept share of about this size are found fastest.
TAU = 0.10
# Differences in kept share smaller than this do not matter to editors.
MARGIN = 0.05
MIN_REVIEWS = 30
# The variance never taken below this, so a run of identical early decisions
# cannot make the interval collapse.
MIN_VARIANCE = 0.02


@dataclass
class Arm:
    """Running sums of one arm's reviews: enough for means, variances and rejections."""

    reviews: int = 0
    kept: float = 0.0
    kept_squared: float = 0.0
    rejected: int = 0

    def add(self, kept_share: float, rejected: bool) -> None:
        self.reviews += 1
        self.kept += kept_share
        self.kept_squared += kept_share * kept_share
        self.rejected += int(rejected)

    @property
    def mean(self) -> float:
        return self.kept / self.reviews if self.reviews else 0.0

    @property
    def variance(self) -> float:
        if self.reviews < 2:
            return 0.25
        mean = self.mean
        spread = (self.kept_squared - self.reviews * mean * mean) / (self.reviews - 1)
        return max(spread, MIN_VARIANCE)

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.reviews if self.reviews else 0.0

    @property
    def rejection_variance(self) -> float:
        rate = self.rejection_rate
        return max(rate * (1 - rate), MIN_VARIANCE)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    """What the rule says now: `better`, `worse`, `no difference` or `collecting`."""

    outcome: str
    kept: Interval  # challenger minus champion, kept share
    rejections: Interval  # challenger minus champion, rejection rate
    more_reviews: int | None  # for `collecting`: about how many more, both arms together

    @property
    def message(self) -> str:
        if self.outcome == "better":
            return "Challenger better"
        if self.outcome == "worse":
            return "Challenger worse: stopped"
        if self.outcome == "no difference":
            return "No meaningful difference"
        if self.more_reviews is None:
            return "Keep collecting"
        return f"Keep collecting (about {self.more_reviews} more reviews needed)"


def radius(variance: float, alpha: float = ALPHA, tau: float = TAU) -> float:
    """Half-width of the always-valid interval for a difference whose variance is `variance`."""
    t2 = tau * tau
    return math.sqrt(
        variance
        * (variance + t2)
        / t2
        * (2 * math.log(1 / alpha) + math.log((variance + t2) / variance))
    )


def statistic(difference: float, variance: float, tau: float = TAU) -> float:
    """The mSPRT statistic Lambda for an estimated difference and its variance."""
    t2 = tau * tau
    return math.sqrt(variance / (variance + t2)) * math.exp(
        t2 * difference * difference / (2 * variance * (variance + t2))
    )


def _interval(difference: float, variance: float) -> Interval:
    r = radius(variance)
    return Interval(difference, difference - r, difference + r)


def reviews_needed(champion: Arm, challenger: Arm, target: float) -> int:
    """Reviews per arm at which the interval's half-width falls to `target` (same spreads)."""
    spread = champion.variance + challenger.variance
    low, high = 1, 1
    while radius(spread / high) > target:
        high *= 2
        if high > 10_000_000:
            return high
    while low < high:
        middle = (low + high) // 2
        if radius(spread / middle) > target:
            low = middle + 1
        else:
            high = middle
    return high


def decide(champion: Arm, challenger: Arm) -> Verdict:
    kept = _interval(
        challenger.mean - champion.mean,
        champion.variance / max(champion.reviews, 1)
        + challenger.variance / max(challenger.reviews, 1),
    )
    rejections = _interval(
        challenger.rejection_rate - champion.rejection_rate,
        champion.rejection_variance / max(champion.reviews, 1)
        + challenger.rejection_variance / max(challenger.reviews, 1),
    )
    fewest = min(champion.reviews, challenger.reviews)
    if fewest >= MIN_REVIEWS:
        # The guardrail first: editors reject the challenger's text more often.
        if rejections.low > 0:
            return Verdict("worse", kept, rejections, None)
        # A difference known to be smaller than any that matters ends it either way.
        if kept.low > -MARGIN and kept.high < MARGIN:
            return Verdict("no difference", kept, rejections, None)
        if kept.high < 0:
            return Verdict("worse", kept, rejections, None)
        if kept.low > 0:
            return Verdict("better", kept, rejections, None)
    # Keep collecting: until the interval leaves zero behind (a difference as large as
    # the one seen) or fits inside the margin (no difference that matters).
    seen = abs(kept.estimate)
    target = seen if seen >= MARGIN / 2 else MARGIN - seen
    per_arm = max(reviews_needed(champion, challenger, target), MIN_REVIEWS)
    more = max(per_arm - champion.reviews, 0) + max(per_arm - challenger.reviews, 0)
    return Verdict("collecting", kept, rejections, max(more, 1))
