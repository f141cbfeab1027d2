"""Charts laid out on the server and drawn as inline SVG by a template: no script, no CDN.

Bars are counts, so a week with two reviews shows as two small bars, not as a
percentage that looks as sure as one of two hundred. This module only does the
geometry; `templates/admin/_review_chart.html` writes the SVG, autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import Week

WIDTH, HEIGHT = 480, 150
LEFT, BOTTOM, TOP = 28, 22, 14
# (week's count, bar's class, as the tooltip says it), bottom to top.
DECISIONS = (
    ("accepted", "chart-accepted", "accepted"),
    ("edited", "chart-edited", "edited"),
    ("kept_part", "chart-kept", "kept in part"),
    ("rejected", "chart-rejected", "rejected"),
)


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str


@dataclass
class Column:
    """One week: its stacked bars, its count above them, and what hovering it says."""

    rects: list[Rect]
    count: int
    count_x: float
    count_y: float
    tip: str


@dataclass
class Chart:
    label: str
    most: int
    columns: list[Column] = field(default_factory=list)
    first_week: str = ""
    last_week: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM


def review_chart(weeks: list[Week], label: str) -> Chart:
    """Reviews per week, stacked by decision, each week's count above its bar."""
    most = max((week.reviewed for week in weeks), default=0)
    scale = (HEIGHT - BOTTOM - TOP) / max(most, 1)
    slot = (WIDTH - LEFT) / max(len(weeks), 1)
    bar = slot * 0.7
    total = sum(week.reviewed for week in weeks)
    chart = Chart(label=f"{label}: {total} reviews in {len(weeks)} weeks", most=most)
    for index, week in enumerate(weeks):
        x = LEFT + index * slot + (slot - bar) / 2
        y = float(HEIGHT - BOTTOM)
        rects = []
        for name, css, _ in DECISIONS:
            height = getattr(week, name) * scale
            if height:
                y -= height
                rects.append(Rect(round(x, 1), round(y, 1), round(bar, 1), round(height, 1), css))
        counts = ", ".join(f"{getattr(week, name)} {said}" for name, _, said in DECISIONS)
        chart.columns.append(
            Column(
                rects=rects,
                count=week.reviewed,
                count_x=round(x + bar / 2, 1),
                count_y=round(y - 3, 1),
                tip=f"Week of {week.start.isoformat()}: {week.reviewed} reviewed ({counts})",
            )
        )
    if weeks:
        chart.first_week = weeks[0].start.strftime("%d %b")
        chart.last_week = weeks[-1].start.strftime("%d %b")
    return chart
