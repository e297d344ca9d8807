"""Prices per model, in USD per million tokens, and the cost of one model call's usage.

Money is Decimal. Dated snapshots (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-5-20250929`) resolve to
their family. A model not in the table has an unknown cost (None), never a guessed one, and is logged once.

To update: edit PRICES (checked against the providers' price pages in November 2026). Cached input has
its own rate: OpenAI bills cached prompt tokens at a discount; Anthropic bills cache reads at 0.1x and
5-minute cache writes at 1.25x the input price.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from pam_hybrid.domain.chunks import Usage

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal


def _openai(input_: str, output: str, cached: str) -> Price:
    return Price(Decimal(input_), Decimal(output), Decimal(cached), Decimal(input_))


def _anthropic(input_: str, output: str) -> Price:
    base = Decimal(input_)
    return Price(base, Decimal(output), base * Decimal("0.1"), base * Decimal("1.25"))


PRICES: dict[str, Price] = {
    "gpt-4o-mini": _openai("0.15", "0.60", "0.075"),
    "gpt-4o": _openai("2.50", "10.00", "1.25"),
    "gpt-4.1": _openai("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": _openai("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _openai("0.10", "0.40", "0.025"),
    "gpt-5": _openai("1.25", "10.00", "0.125"),
    "gpt-5.4": _openai("2.50", "15.00", "0.25"),
    "gpt-5.4-mini": _openai("0.75", "4.50", "0.075"),
    "gpt-5-mini": _openai("0.25", "2.00", "0.025"),
    "gpt-5-nano": _openai("0.05", "0.40", "0.005"),
    "claude-sonnet-5-5": _anthropic("2.00", "10.00"),
    "claude-sonnet-5": _anthropic("2.00", "10.00"),
    "claude-sonnet-4-6": _anthropic("3.00", "15.00"),
    "claude-sonnet-4-5": _anthropic("3.00", "15.00"),
    "claude-sonnet-4": _anthropic("3.00", "15.00"),
    "claude-opus-5-5": _anthropic("4.00", "20.00"),
    "claude-opus-5": _anthropic("5.00", "25.00"),
    "claude-opus-4-5": _anthropic("5.00", "25.00"),
    "claude-opus-4-1": _anthropic("15.00", "75.00"),
    "claude-opus-4": _anthropic("15.00", "75.00"),
    "claude-haiku-4-5": _anthropic("1.00", "5.00"),
    "claude-3-5-haiku": _anthropic("0.80", "4.00"),
    "claude-fable-5-1": _anthropic("10.00", "50.00"),
    "pam-offline": Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0)),
}

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_warned: set[str] = set()


def model_family(model: str) -> str:
    """`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`; `claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5`."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def price_for(model: str) -> Price | None:
    return PRICES.get(model) or PRICES.get(model_family(model))


def cost_usd(model: str, usage: Usage) -> Decimal | None:
    """The cost of one call's `usage` on `model`, or None when the model's price is unknown."""
    price = price_for(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r: its usage is recorded with cost unknown", model)
        return None
    cost = (
        Decimal(usage.uncached_input_tokens) * price.input
        + Decimal(usage.cached_input_tokens) * price.cached_input
        + Decimal(usage.cache_creation_input_tokens) * price.cache_write
        + Decimal(usage.output_tokens) * price.output
    ) / MILLION
    return cost.quantize(CENT_FRACTION)


def total_cost(costs: list[Decimal | None]) -> Decimal | None:
    """The sum of several calls' costs; unknown if any one is unknown."""
    if any(cost is None for cost in costs):
        return None
    return sum((cost for cost in costs if cost is not None), Decimal(0)).quantize(CENT_FRACTION)
