"""Geometry of the dashboard's server-rendered SVG charts (templates/dashboard/_chart_*.html draw it).

Pure arithmetic over the figures a selector returned: each chart is a fixed viewBox
(WIDTH × HEIGHT) with a plot area inside margins, y from 0 to the largest value, one x slot
per day. A missing value (None: a day nothing recorded) is a gap, never a zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 12, 28
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # the day and the value, for the point's <title>


@dataclass
class Line:
    key: str
    label: str
    segments: list[str] = field(default_factory=list)  # "x,y x,y …" runs between gaps
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str
    anchor: str


@dataclass
class Chart:
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    x_labels: list[XLabel] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = TOP + PLOT_H
    right: int = WIDTH - RIGHT

    @property
    def tick_x(self) -> int:
        return self.left - 6

    @property
    def label_y(self) -> float:
        return self.bottom + 18

    @property
    def point_count(self) -> int:
        return sum(len(line.points) for line in self.lines) + len(self.bars)


def _scale(values: Sequence[int | None]) -> int:
    return max([v for v in values if v is not None] + [0]) or 1


def _y(value: int, top: int) -> float:
    return round(TOP + PLOT_H * (1 - value / top), 2)


def _frame(days: Sequence[date], top: int, fmt: Callable[[int], str]) -> Chart:
    ticks = [Tick(y=_y(v, top), label=fmt(v)) for v in (0, top // 2, top)] if top > 1 else [Tick(y=_y(0, top), label=fmt(0))]
    n = len(days)
    picks = sorted({0, n // 2, n - 1}) if n else []
    anchors = {0: "start", n - 1: "end"}
    x_labels = [XLabel(x=_slot_centre(i, n), label=days[i].isoformat(), anchor=anchors.get(i, "middle")) for i in picks]
    return Chart(ticks=ticks, x_labels=x_labels)


def _slot_centre(i: int, n: int) -> float:
    return round(LEFT + PLOT_W * (i + 0.5) / n, 2)


def line_chart(days: Sequence[date], series: Sequence[tuple[str, str, Sequence[int | None]]], fmt: Callable[[int], str]) -> Chart:
    """Lines (key, label, one value or None per day) on a shared y scale; gaps where a value is None."""
    top = _scale([v for _, _, values in series for v in values])
    chart = _frame(days, top, fmt)
    for key, label, values in series:
        line, run = Line(key=key, label=label), list[str]()
        for i, value in enumerate(values):
            if value is None:
                if run:
                    line.segments.append(" ".join(run))
                run = []
                continue
            point = Point(x=_slot_centre(i, len(days)), y=_y(value, top), label=f"{days[i].isoformat()}: {label} {fmt(value)}")
            line.points.append(point)
            run.append(f"{point.x},{point.y}")
        if run:
            line.segments.append(" ".join(run))
        chart.lines.append(line)
    return chart


def bar_chart(days: Sequence[date], values: Sequence[int], fmt: Callable[[int], str]) -> Chart:
    """One bar per day with a value above zero (a zero day draws nothing; the table lists it)."""
    top = _scale(values)
    chart = _frame(days, top, fmt)
    slot = PLOT_W / max(len(days), 1)
    width = round(max(slot * 0.7, 1.0), 2)
    for i, value in enumerate(values):
        if value > 0:
            y = _y(value, top)
            chart.bars.append(
                Bar(
                    x=round(_slot_centre(i, len(days)) - width / 2, 2),
                    y=y,
                    width=width,
                    height=round(TOP + PLOT_H - y, 2),
                    label=f"{days[i].isoformat()}: {fmt(value)}",
                )
            )
    return chart
