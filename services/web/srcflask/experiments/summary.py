"""The figures an experiment's page shows per arm, each with its 95% interval.

These describe each arm on its own (how many texts, each decision's share, the
mean kept share, the median edit distance and time to decision, the win rate
of side-by-side picks). The verdict on the difference between the arms is
rule.py's, whose interval stays valid however often the page is read; these
intervals are for a single reading.

- A share (a decision's, the win rate): the Wilson score interval (Wilson,
  "Probable inference, the law of succession, and statistical inference",
  JASA 22, 1927), which stays inside 0..1 and holds for small counts.
- A mean: the normal interval, mean +- 1.96 standard errors.
- A median: the distribution-free interval between two order statistics,
  ranked from the binomial distribution with p = 1/2 (no assumption about the
  shape of edit distances or times, which are skewed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z = 1.959963984540054  # the normal distribution's 97.5th percentile
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval; None throughout when there is nothing to estimate."""

    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def none(cls) -> Estimate:
        return cls(None, None, None)


def share(count: int, total: int) -> Estimate:
    """`count` of `total`, with the Wilson score interval."""
    if total <= 0:
        return Estimate.none()
    if not 0 <= count <= total:
        raise ValueError(f"{count} of {total} is not a share")
    p = count / total
    z2 = Z * Z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def mean(values: Sequence[float]) -> Estimate:
    """The mean, +- 1.96 standard errors (no interval from a single value)."""
    n = len(values)
    if n == 0:
        return Estimate.none()
    average = sum(values) / n
    if n == 1:
        return Estimate(average, None, None)
    spread = math.sqrt(sum((v - average) ** 2 for v in values) / (n - 1))
    half = Z * spread / math.sqrt(n)
    return Estimate(average, average - half, average + half)


def median(values: Sequence[float]) -> Estimate:
    """The median, with the order-statistic interval covering it at least 95% of the time.

    With the values sorted, the interval runs from the j-th to the (n+1-j)-th,
    j the largest rank with P(Binomial(n, 1/2) <= j - 1) <= 2.5%. Below six
    values no such rank exists: the median has no interval.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return Estimate.none()
    middle = n // 2
    value = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    # Add up Binomial(n, 1/2)'s probabilities while P(X <= j - 1) stays within the tail.
    tail, cumulative, j = (1 - LEVEL) / 2, 0.0, 0
    log_half_n = -n * math.log(2)
    while j <= n:
        p = math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n)
        if cumulative + p > tail:
            break
        cumulative += p
        j += 1
    if j == 0:
        return Estimate(value, None, None)
    return Estimate(value, ordered[j - 1], ordered[n - j])
