"""Server-side SVG bar charts (no JavaScript): per-day counts as bars with tooltips.

Returns geometry only; the template draws it, escaping every label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol


class Counted(Protocol):
    @property
    def day(self) -> date: ...
    @property
    def count(self) -> int: ...


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    first: str
    last: str


def bar_chart(points: Sequence[Counted], width: int = 600, height: int = 120) -> Chart:
    """Bars scaled to the highest count; an empty series gives an empty chart."""
    peak = max((p.count for p in points), default=0)
    slot = width / max(1, len(points))
    bars = []
    for i, point in enumerate(points):
        tall = 0.0 if peak == 0 else (height - 2) * point.count / peak
        bars.append(Bar(x=i * slot + 1, y=height - tall, width=max(1.0, slot - 2),
                        height=tall, label=f"{point.day.isoformat()}: {point.count}"))
    return Chart(width, height, bars, peak,
                 points[0].day.isoformat() if points else "",
                 points[-1].day.isoformat() if points else "")
