"""`pam_prices`: every model's price in force now (file or staff override), and the models used without a price."""

from __future__ import annotations

import io
from argparse import ArgumentParser
from dataclasses import astuple
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from pam_hybrid.management.help import RawHelpCommand
from pam_hybrid.pricing import Price, refresh_overrides
from pam_hybrid.pricing.report import UnpricedModel, prices_now, unpriced_models

TABLE_WIDTH = 240
EPILOG = """
list     every model's price in force now, in USD per million tokens: input, output, cache read, 5-minute and
         1-hour cache writes; the long-context tier (rates that apply to every token of a call whose prompt is
         above the threshold); where it comes from ("file": pam_hybrid/pricing/prices.toml, or "override" with
         its start) with the day it was checked and its source. A "?" marks a price not confirmed on an official
         page (see the file's `unconfirmed` note).
missing  models used without a price now: every provider call counts (each attempt, fallback and tool round has
         a row; answers recorded before calls had rows count once), with its input (cache reads and writes
         included) and output tokens and when last used; their cost was recorded as unknown. Give each a price in
         the file or as an override in the admin (Model prices).

Examples:
  manage.py pam_prices list
  manage.py pam_prices missing
"""


class Command(RawHelpCommand):
    help = "List model prices (shipped file and staff overrides), or the models in use that have no price."
    epilog = EPILOG

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=("list", "missing"), help="what to show (see below)")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        refresh_overrides()
        colour = (self.stdout.isatty() or options["force_color"]) and not options["no_color"]
        table = _price_table(prices_now()) if action == "list" else _missing_table(unpriced_models())
        self.stdout.write(_render(table, colour=colour), ending="")


def _price_table(prices: list[Price]) -> Table:
    table = Table(title="Model prices in force now (USD per million tokens)", box=box.SIMPLE_HEAVY)
    for header in ("model", "input", "output", "cache read", "write 5m", "write 1h", "long context", "from",
                   "checked"):
        table.add_column(header, justify="right" if header in ("input", "output") else "left", no_wrap=True)
    table.add_column("source", overflow="fold")
    for price in prices:
        rates = price.rates
        table.add_row(
            price.model, f"{rates.input:f}", f"{rates.output:f}", f"{rates.cache_read:f}", f"{rates.cache_write_5m:f}",
            f"{rates.cache_write_1h:f}", _tier(price), _origin(price),
            f"{price.checked.isoformat() if price.checked else '—'}{' ?' if price.unconfirmed else ''}", price.source,
        )
    return table


def _tier(price: Price) -> str:
    tier = price.long_context
    if tier is None:
        return "—"
    rates = " / ".join(f"{rate:f}" for rate in astuple(tier.rates))
    return f"> {tier.above:,}: {rates}"


def _origin(price: Price) -> str:
    start = f" {price.effective_from:%Y-%m-%d %H:%M}" if price.effective_from else ""
    return f"override{start}" if price.override else f"file{start}"


def _missing_table(models: list[UnpricedModel]) -> Table:
    table = Table(title="Models in the usage records without a price", box=box.SIMPLE_HEAVY)
    table.add_column("model")
    for header in ("calls", "input tokens", "output tokens", "last used"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in models:
        table.add_row(row.model, f"{row.calls:,}", f"{row.input_tokens:,}", f"{row.output_tokens:,}",
                      f"{row.last_used:%Y-%m-%d %H:%M}")
    if not models:
        table.caption = "Every model in the usage records has a price."
    return table


def _render(table: Table, *, colour: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=TABLE_WIDTH, force_terminal=colour, color_system="auto" if colour else None,
                      highlight=False)
    console.print(table)
    return buffer.getvalue()
