"""Prices per model, in USD per million tokens, and the cost of one answer's usage.

Money is Decimal. Dated snapshots (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-5-20250929`) resolve to
their family. A model not in the table has an unknown cost (None), never a guessed one.
To update: edit PRICES; keys are model families, values (input, output) per million tokens.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal

from pam_hybrid.core.chunks import Usage

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)

# (input, output) USD per 1M tokens, from the providers' public price pages.
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1-nano": (Decimal("0.10"), Decimal("0.40")),
    "claude-sonnet-5-5": (Decimal("2.00"), Decimal("10.00")),
    "claude-sonnet-5": (Decimal("2.00"), Decimal("10.00")),
    "claude-sonnet-4-6": (Decimal("3.00"), Decimal("15.00")),
    "claude-sonnet-4-5": (Decimal("3.00"), Decimal("15.00")),
    "claude-opus-5-5": (Decimal("4.00"), Decimal("20.00")),
    "claude-opus-5": (Decimal("5.00"), Decimal("25.00")),
    "claude-fable-5-1": (Decimal("10.00"), Decimal("50.00")),
    "claude-sonnet-4": (Decimal("3.00"), Decimal("15.00")),
    "claude-3-7-sonnet": (Decimal("3.00"), Decimal("15.00")),
    "claude-3-5-sonnet": (Decimal("3.00"), Decimal("15.00")),
    "claude-haiku-4-5": (Decimal("1.00"), Decimal("5.00")),
    "claude-3-5-haiku": (Decimal("0.80"), Decimal("4.00")),
    "claude-opus-4-1": (Decimal("15.00"), Decimal("75.00")),
    "claude-opus-4": (Decimal("15.00"), Decimal("75.00")),
    "pam-offline": (Decimal("0"), Decimal("0")),
}

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_warned: set[str] = set()


def model_family(model: str) -> str:
    """`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`; `claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5`."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def price_for(model: str) -> tuple[Decimal, Decimal] | None:
    return PRICES.get(model) or PRICES.get(model_family(model))


def cost_usd(model: str, usage: Usage) -> Decimal | None:
    """The cost of `usage` on `model`, or None when the model's price is unknown."""
    price = price_for(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r: its usage is recorded with cost unknown", model)
        return None
    input_price, output_price = price
    cost = (Decimal(usage.input_tokens) * input_price + Decimal(usage.output_tokens) * output_price) / MILLION
    return cost.quantize(Decimal("0.00000001"))
