"""The usage dashboard's charts as geometry for inline SVG: drawn on the server, so no script and no build step.

Colours come from CSS classes (`pam-series-N` in static/pam_hybrid/admin/dashboard.css) rather than style
attributes, which the Content-Security-Policy forbids; they are chosen per admin theme (light or dark).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from pam_hybrid.usage.report import UsageStats

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 36, 44
MAX_X_LABELS = 10
SERIES_COLOURS = 6


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    series: int
    name: str
    dashed: bool
    segments: list[str]
    dots: list[Dot]


@dataclass(frozen=True, slots=True)
class LegendItem:
    x: float
    series: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the chart template draws, in SVG user units (the viewBox is WIDTH x HEIGHT)."""

    title: str
    y_title: str
    x_title: str
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendItem]
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    empty: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM

    @property
    def mid_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def mid_y(self) -> float:
        return (self.top + self.bottom) / 2


def cost_per_day_chart(*, days: Sequence[date], stats: Sequence[UsageStats]) -> Chart:
    """Cost per UTC day, stacked by provider; `stats` are grouped by (day, provider)."""
    providers = sorted({str(item.key[1]) for item in stats})
    cost = {(item.key[0], str(item.key[1])): item.cost_usd for item in stats}
    totals = [sum((cost.get((day, p), Decimal(0)) for p in providers), Decimal(0)) for day in days]
    top, step, places = _scale(float(max(totals, default=Decimal(0))), min_places=2)
    slot = (WIDTH - RIGHT - LEFT) / max(len(days), 1)
    bars: list[Bar] = []
    for index, day in enumerate(days):
        base = 0.0
        for series, provider in enumerate(providers):
            value = float(cost.get((day, provider), 0))
            if value > 0:
                bars.append(Bar(
                    x=round(LEFT + slot * (index + 0.15), 2), y=_y(base + value, top), width=round(slot * 0.7, 2),
                    height=round(_y(base, top) - _y(base + value, top), 2), series=series % SERIES_COLOURS,
                    title=f"{day.isoformat()} {provider}: ${cost[(day, provider)]:.6f}",
                ))
            base += value
    return Chart(
        title="Cost per day by provider", y_title="Cost (USD)", x_title="Day (UTC)",
        y_ticks=_y_ticks(top, step, places, prefix="$"), x_ticks=_x_ticks(days), legend=_legend(providers),
        bars=bars, empty=not bars,
    )


def ttft_per_day_chart(*, days: Sequence[date], stats: Sequence[UsageStats]) -> Chart:
    """Median and p95 time to first token per UTC day, as lines; `stats` are grouped by day."""
    by_day = {item.key[0]: item for item in stats}
    highest = max((item.ttft_p95_ms or 0.0 for item in stats), default=0.0)
    top, step, places = _scale(highest, min_places=0)
    series = [("median", "ttft_median_ms", False), ("p95", "ttft_p95_ms", True)]
    lines = [
        _line(index, name, dashed, [(day, getattr(by_day[day], attr)) for day in days if day in by_day], days, top)
        for index, (name, attr, dashed) in enumerate(series)
    ]
    return Chart(
        title="Time to first token per day", y_title="Time to first token (ms)", x_title="Day (UTC)",
        y_ticks=_y_ticks(top, step, places, suffix=" ms"), x_ticks=_x_ticks(days),
        legend=_legend([name for name, _, _ in series]), lines=lines, empty=not any(line.dots for line in lines),
    )


def _line(
    series: int, name: str, dashed: bool, values: list[tuple[date, float | None]], days: Sequence[date], top: float
) -> Line:
    """A line through the days that have a value, broken where a day has none; a dot on each value."""
    slot = (WIDTH - RIGHT - LEFT) / max(len(days), 1)
    position = {day: index for index, day in enumerate(days)}
    segments: list[list[str]] = []
    dots: list[Dot] = []
    previous = -2
    for day, value in values:
        if value is None:
            continue
        index = position[day]
        x, y = round(LEFT + slot * (index + 0.5), 2), _y(value, top)
        if index != previous + 1:
            segments.append([])
        segments[-1].append(f"{x},{y}")
        dots.append(Dot(x=x, y=y, title=f"{day.isoformat()} {name}: {value:.1f} ms"))
        previous = index
    drawn = [" ".join(points) for points in segments if len(points) > 1]  # a lone day is only its dot
    return Line(series=series, name=name, dashed=dashed, segments=drawn, dots=dots)


def _scale(highest: float, *, min_places: int) -> tuple[float, float, int]:
    """A round axis top at or above `highest` (1, 2 or 5 times a power of ten), its tick step, and the decimal
    places that show the step exactly."""
    if highest <= 0:
        return 1.0, 0.25, max(min_places, 2)
    exponent = math.floor(math.log10(highest))
    candidates = [(mantissa * 10.0**exponent, parts) for mantissa, parts in ((1, 5), (2, 4), (5, 5), (10, 5))]
    top, parts = next((top, parts) for top, parts in candidates if top >= highest * (1 - 1e-9))
    step = top / parts
    return top, step, max(min_places, -math.floor(math.log10(step) + 1e-9))


def _y(value: float, top: float) -> float:
    plot_bottom, plot_height = HEIGHT - BOTTOM, HEIGHT - BOTTOM - TOP
    return round(plot_bottom - plot_height * min(value / top, 1.0), 2)


def _y_ticks(top: float, step: float, places: int, *, prefix: str = "", suffix: str = "") -> list[Tick]:
    count = round(top / step)
    return [Tick(at=_y(step * n, top), label=f"{prefix}{step * n:,.{places}f}{suffix}") for n in range(count + 1)]


def _x_ticks(days: Sequence[date]) -> list[Tick]:
    """A label under every k-th day (and the last), at most about MAX_X_LABELS of them."""
    slot = (WIDTH - RIGHT - LEFT) / max(len(days), 1)
    every = math.ceil(len(days) / MAX_X_LABELS) or 1
    chosen = [index for index in range(len(days)) if index % every == 0 or index == len(days) - 1]
    if len(chosen) > 1 and chosen[-1] - chosen[-2] < every:
        chosen.pop(-2)
    return [Tick(at=round(LEFT + slot * (index + 0.5), 2), label=days[index].strftime("%m-%d")) for index in chosen]


def _legend(labels: Sequence[str]) -> list[LegendItem]:
    items, x = [], float(LEFT)
    for series, label in enumerate(labels):
        items.append(LegendItem(x=x, series=series % SERIES_COLOURS, label=label))
        x += 30 + 7 * len(label)
    return items
