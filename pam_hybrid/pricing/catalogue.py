"""The price file shipped with the code (`prices.toml`), read once per process into `Price` values."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from pam_hybrid.domain.pricing import LongContext, Price, Rates

PRICE_FILE = Path(__file__).with_name("prices.toml")
RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")


class PriceFileError(ValueError):
    """The price file is malformed: a missing or negative rate, an unknown field."""


def parse_prices(text: str) -> dict[str, tuple[Price, ...]]:
    """Each model's rows, oldest first (a row without `since` applies from the beginning)."""
    rows: dict[str, list[Price]] = {}
    for entry in tomllib.loads(text, parse_float=Decimal).get("price", []):
        price = _price(entry)
        rows.setdefault(price.model, []).append(price)
    return {model: tuple(sorted(found, key=_start)) for model, found in rows.items()}


@cache
def shipped_prices() -> Mapping[str, tuple[Price, ...]]:
    """The shipped file's rows by model (read on first use)."""
    return parse_prices(PRICE_FILE.read_text(encoding="utf-8"))


def _start(price: Price) -> datetime:
    return price.effective_from or datetime.min.replace(tzinfo=UTC)


def _price(entry: dict[str, Any]) -> Price:
    model = entry.get("model")
    if not isinstance(model, str) or not model:
        raise PriceFileError(f"a [[price]] without a model: {entry!r}")
    known = {"model", "since", "checked", "source", "said", "unconfirmed", "long_context", *RATE_FIELDS}
    if unknown := set(entry) - known:
        raise PriceFileError(f"{model}: unknown fields {sorted(unknown)}")
    tier = entry.get("long_context")
    since = entry.get("since")
    return Price(
        model=model,
        rates=_rates(model, entry),
        long_context=None if tier is None else LongContext(above=int(tier["above"]), rates=_rates(model, tier)),
        effective_from=None if since is None else datetime.combine(_day(model, since), time.min, tzinfo=UTC),
        checked=None if entry.get("checked") is None else _day(model, entry["checked"]),
        source=str(entry.get("source", "")),
        note=str(entry.get("said", "")),
        unconfirmed=str(entry.get("unconfirmed", "")),
    )


def _rates(model: str, table: dict[str, Any]) -> Rates:
    values = {}
    for name in RATE_FIELDS:
        value = table.get(name)
        if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
            raise PriceFileError(f"{model}: {name} must be a number of USD per million tokens, not {value!r}")
        values[name] = Decimal(value)
    return Rates(**values)


def _day(model: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise PriceFileError(f"{model}: dates are written 2026-12-05, not {value!r}")
    return value
