"""Usage figures as CSV cells and JSON objects: one format for the dashboard's CSV and `pam_usage`.

Cost is a fixed-point decimal string (8 places, as stored), rates are fractions from 0 to 1 with 4 places,
durations are milliseconds with 1 place; a figure that does not exist (no first token in the group) is empty
in CSV and null in JSON.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TextIO

from pam_hybrid.usage.report import Dimension, UsageStats

COST_PLACES = Decimal("0.00000001")
METRIC_COLUMNS: tuple[str, ...] = (
    "requests", "calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "cost_usd",
    "estimated_cost_usd", "estimated_calls", "cost_unknown", "unknown_tokens", "refused_calls", "ttft_median_ms",
    "ttft_p95_ms", "error_rate", "fallback_rate",
)


def key_cell(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def cost_cell(cost_usd: Decimal) -> str:
    return f"{cost_usd.quantize(COST_PLACES):f}"


def ms_value(value_ms: float | None) -> float | None:
    return None if value_ms is None else round(value_ms, 1)


def metric_values(stats: UsageStats) -> list[Any]:
    """The metrics of METRIC_COLUMNS in order, typed for JSON (cost as a string, rates as floats)."""
    return [
        stats.requests, stats.calls, stats.input_tokens, stats.cache_read_tokens, stats.cache_write_tokens,
        stats.output_tokens, cost_cell(stats.cost_usd), cost_cell(stats.estimated_cost_usd), stats.estimated,
        stats.cost_unknown, stats.unknown_tokens, stats.refused, ms_value(stats.ttft_median_ms),
        ms_value(stats.ttft_p95_ms), round(stats.error_rate, 4), round(stats.fallback_rate, 4),
    ]


def usage_csv_write(*, out: TextIO, by: Sequence[Dimension], stats: Sequence[UsageStats]) -> None:
    """A header of the dimensions then METRIC_COLUMNS, and one row per group."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*by, *METRIC_COLUMNS])
    for item in stats:
        cells = ["" if value is None else value for value in metric_values(item)]
        writer.writerow([*(key_cell(part) for part in item.key), *cells])


def usage_json_objects(*, by: Sequence[Dimension], stats: Sequence[UsageStats]) -> list[dict[str, Any]]:
    """One object per group: its dimensions by name, then METRIC_COLUMNS."""
    return [
        {
            **{dimension: key_cell(part) for dimension, part in zip(by, item.key, strict=True)},
            **dict(zip(METRIC_COLUMNS, metric_values(item), strict=True)),
        }
        for item in stats
    ]
