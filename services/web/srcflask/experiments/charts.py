"""The experiment page's chart: each arm's kept share so far, over time, as inline SVG.

Laid out here like the review chart (registry/charts.py); the template
`admin/_experiment_chart.html` writes it, autoescaped. Each line is the arm's
mean kept share over all its reviews up to that moment, so it settles as
reviews come in, and the gap between the lines is the difference the rule
judges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..models import Arm

WIDTH, HEIGHT = 480, 160
LEFT, RIGHT, BOTTOM, TOP = 34, 8, 22, 12
MOST_POINTS = 120  # per line: later reviews in the same slot replace earlier ones


@dataclass
class Line:
    css: str
    label: str
    points: str  # the polyline's "x,y x,y ..."
    last_x: float
    last_y: float
    tip: str


@dataclass
class LineChart:
    label: str
    lines: list[Line] = field(default_factory=list)
    first: str = ""
    last: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM
    middle: float = TOP + (HEIGHT - BOTTOM - TOP) / 2


def kept_share_chart(
    timeline: Sequence[tuple[datetime, Arm, float]], labels: dict[Arm, str]
) -> LineChart:
    """`timeline`: (when, arm, kept share) per review, oldest first."""
    chart = LineChart(label=f"Mean kept share per arm over {len(timeline)} reviews")
    if not timeline:
        return chart
    start, finish = timeline[0][0], timeline[-1][0]
    span = (finish - start).total_seconds() or 1.0  # reviews all at one moment: one slot
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - BOTTOM - TOP
    for arm in Arm:
        total = count = 0
        points: dict[int, tuple[float, float]] = {}
        for when, which, share in timeline:
            if which is not arm:
                continue
            total += share
            count += 1
            slot = round((when - start).total_seconds() / span * (MOST_POINTS - 1))
            x = LEFT + plot_width * slot / (MOST_POINTS - 1)
            points[slot] = (round(x, 1), round(TOP + plot_height * (1 - total / count), 1))
        if not count:
            continue
        mean = total / count
        xy = list(points.values())
        if len(xy) == 1:  # one moment: a short flat stroke, so it shows
            xy.append((xy[0][0] + 4, xy[0][1]))
        chart.lines.append(
            Line(
                css=f"chart-{arm.value}",
                label=labels[arm],
                points=" ".join(f"{x},{y}" for x, y in xy),
                last_x=xy[-1][0],
                last_y=xy[-1][1],
                tip=f"{arm.value.capitalize()}, {labels[arm]}: {mean:.0%} kept over {count} "
                "reviews",
            )
        )
    chart.first = start.strftime("%d %b %H:%M")
    chart.last = finish.strftime("%d %b %H:%M")
    return chart
