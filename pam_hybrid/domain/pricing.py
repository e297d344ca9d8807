"""A model's price and the cost of one call's usage at it: the values and the arithmetic, no I/O.

Money is Decimal, rates are USD per million tokens. Where the prices come from (the shipped price file, staff
overrides) and which applies at a given moment is `pam_hybrid.pricing`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from pam_hybrid.domain.chunks import Usage

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.00000001")  # UsageRecord.cost_usd keeps 8 decimal places


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind a provider bills."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal


@dataclass(frozen=True, slots=True)
class LongContext:
    """Every token of a call whose prompt (all input, cached and cache-written included) is above `above`
    tokens is billed at `rates`."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Price:
    """One model's price from `effective_from` on (None: from the beginning), with where it was read."""

    model: str
    rates: Rates
    long_context: LongContext | None = None
    effective_from: datetime | None = None
    checked: date | None = None
    source: str = ""
    note: str = ""
    unconfirmed: str = ""
    override: bool = False

    def rates_for(self, usage: Usage) -> Rates:
        """The rates one call is billed at: the long-context tier's when its prompt is above the threshold."""
        tier = self.long_context
        if tier is not None and usage.total_input_tokens > tier.above:
            return tier.rates
        return self.rates


def cost_of(price: Price, usage: Usage) -> Decimal:
    """What one call's `usage` cost at `price`, to 8 decimal places. Reasoning tokens are part of the output."""
    rates = price.rates_for(usage)
    cost = (
        Decimal(usage.uncached_input_tokens) * rates.input
        + Decimal(usage.cached_input_tokens) * rates.cache_read
        + Decimal(usage.cache_write_5m_tokens) * rates.cache_write_5m
        + Decimal(usage.cache_write_1h_tokens) * rates.cache_write_1h
        + Decimal(usage.output_tokens) * rates.output
    ) / MILLION
    return cost.quantize(CENT_FRACTION)


_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def model_family(model: str) -> str:
    """`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`; `claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5`."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def total_cost(costs: list[Decimal | None]) -> Decimal | None:
    """The sum of several calls' costs; unknown if any one is unknown."""
    if any(cost is None for cost in costs):
        return None
    return sum((cost for cost in costs if cost is not None), Decimal(0)).quantize(CENT_FRACTION)
