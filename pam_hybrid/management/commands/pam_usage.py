"""`pam_usage`: the last N days' usage grouped by user, model, provider, route or day, as a table, CSV or JSON."""

from __future__ import annotations

import io
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError
from rich import box
from rich.console import Console
from rich.table import Table

from pam_hybrid.management.help import RawHelpCommand
from pam_hybrid.usage.export import usage_csv_write, usage_json_objects
from pam_hybrid.usage.report import (
    DEFAULT_DAYS,
    DIMENSIONS,
    MAX_DAYS,
    Dimension,
    UsageStats,
    by_spend,
    usage_period_days,
    usage_records,
    usage_stats,
    usage_totals,
)

TABLE_WIDTH = 220
TABLE_HEADERS = (
    "requests", "calls", "input tokens", "cache read/write", "output tokens", "cost (USD)", "estimated (USD)",
    "cost unknown", "refused", "median TTFT (ms)", "p95 TTFT (ms)", "error rate", "fallback rate",
)
EPILOG = f"""
The period is the last N UTC days, today included (--days 1 is today so far). Rows are sorted by day for
--by day and by cost, highest first, otherwise.

Columns: requests (answers); calls (provider calls: every attempt, retried, fallen back from, refused or
abandoned, and every tool round; by provider and model, the calls made to it); input tokens (uncached), cache
read/write tokens and output tokens of those calls; cost in USD (every priced call, estimated ones included);
estimated (the part of the cost estimated for calls the provider never reported, e.g. abandoned at a timeout,
cut, cancelled or crashed; estimated_calls counts them); cost_unknown (calls whose model has no price, left out
of cost, and unknown_tokens their tokens: never counted as $0); refused (calls refused before acceptance, free);
median and p95 time to first token in ms (over the answers that had a first token, interpolated between ranks
like PostgreSQL's percentile_cont); error rate (outcome "error" / requests) and fallback rate (answered by another
provider than the one first chosen / requests). The same figures as the admin's usage dashboard (/admin/pam/usage/).

Formats: table (default; with a total row), csv (a header row, then one row per group; rates as fractions),
json (a list of objects; cost as a decimal string, rates as fractions, missing times as null).

Examples:
  manage.py pam_usage                          # the last {DEFAULT_DAYS} days, per day
  manage.py pam_usage --days 7 --by user       # who spent what this week
  manage.py pam_usage --by model --format csv > usage.csv
"""


class Command(RawHelpCommand):
    help = "Report token usage, cost, time to first token, error and fallback rates, grouped by one dimension."
    epilog = EPILOG

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--days", type=int, default=DEFAULT_DAYS, help=f"how many UTC days back, today included "
            f"(1 to {MAX_DAYS}; default {DEFAULT_DAYS})",
        )
        parser.add_argument("--by", choices=DIMENSIONS, default="day", help="what to group by (default: day)")
        parser.add_argument(
            "--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)"
        )

    def handle(self, *args: Any, days: int, by: Dimension, format: str, **options: Any) -> None:
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be from 1 to {MAX_DAYS}, not {days}.")
        records = usage_records(days=days)
        stats = usage_stats(records=records, by=(by,))
        stats = stats if by == "day" else by_spend(stats)
        if format == "csv":
            buffer = io.StringIO()
            usage_csv_write(out=buffer, by=(by,), stats=stats)
            self.stdout.write(buffer.getvalue(), ending="")
        elif format == "json":
            self.stdout.write(json.dumps(usage_json_objects(by=(by,), stats=stats), indent=2))
        else:
            colour = (self.stdout.isatty() or options["force_color"]) and not options["no_color"]
            self.stdout.write(self._table(by, stats, usage_totals(records=records), days, colour=colour), ending="")

    def _table(self, by: Dimension, stats: list[UsageStats], totals: UsageStats, days: int, *, colour: bool) -> str:
        """The rich table rendered to text, coloured for a terminal (or --force-color) unless --no-color."""
        period = usage_period_days(days=days)
        table = Table(
            title=f"Usage by {by}, {period[0].isoformat()} to {period[-1].isoformat()} (UTC)",
            box=box.SIMPLE_HEAVY, show_footer=bool(stats),
        )
        table.add_column(by, footer="total", overflow="fold")
        footer = _cells(totals)
        for header, total in zip(TABLE_HEADERS, footer, strict=True):
            table.add_column(header, footer=total, justify="right", no_wrap=True)
        for item in stats:
            table.add_row(_key(item), *_cells(item))
        buffer = io.StringIO()
        console = Console(
            file=buffer, width=TABLE_WIDTH, force_terminal=colour, color_system="auto" if colour else None,
            highlight=False,
        )
        console.print(table)
        if not stats:
            console.print("No usage in this period.")
        return buffer.getvalue()


def _key(stats: UsageStats) -> str:
    part = stats.key[0]
    return part if isinstance(part, str) else part.isoformat()


def _cells(stats: UsageStats) -> list[str]:
    unknown = f"{stats.cost_unknown:,}" + (f" ({stats.unknown_tokens:,} tok)" if stats.cost_unknown else "")
    return [
        f"{stats.requests:,}", f"{stats.calls:,}", f"{stats.input_tokens:,}",
        f"{stats.cache_read_tokens:,}/{stats.cache_write_tokens:,}", f"{stats.output_tokens:,}",
        f"${stats.cost_usd:,.6f}", f"${stats.estimated_cost_usd:,.6f} ({stats.estimated:,})", unknown,
        f"{stats.refused:,}", _ms(stats.ttft_median_ms), _ms(stats.ttft_p95_ms), f"{stats.error_rate:.1%}",
        f"{stats.fallback_rate:.1%}",
    ]


def _ms(value_ms: float | None) -> str:
    return "—" if value_ms is None else f"{value_ms:,.0f}"
