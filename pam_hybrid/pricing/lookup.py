"""Which price a model had at a moment, and what a call cost at it: synchronous and in memory (no query), so the
gateway calls it on the event loop.

A model's price at time T is its latest staff override with `effective_from` <= T; failing that, the shipped
file's latest row in force at T (its earliest, for a time before every row). The exact model name is looked up
first, then its family (`claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5`). A model with no price has an
unknown cost (None), logged once per model, never a guessed one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.pricing import Price, cost_of, model_family
from pam_hybrid.pricing.catalogue import shipped_prices
from pam_hybrid.pricing.overrides import overrides_by_model

logger = logging.getLogger(__name__)
_warned: set[str] = set()


def price_for(model: str, at: datetime | None = None) -> Price | None:
    """The price `model` had at `at` (default: now), or None when it has none."""
    at = at or datetime.now(UTC)
    names = dict.fromkeys((model, model_family(model)))
    for table, before_all in ((overrides_by_model(), False), (shipped_prices(), True)):
        for name in names:
            if found := _in_force(table, name, at, before_all=before_all):
                return found
    return None


def call_cost(model: str, usage: Usage, at: datetime | None = None) -> Decimal | None:
    """What one call of `model` with `usage` cost at `at` (default: now); None when the price is unknown."""
    price = price_for(model, at)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r: its usage is recorded with cost unknown", model)
        return None
    return cost_of(price, usage)


def _in_force(table: Mapping[str, tuple[Price, ...]], name: str, at: datetime, *, before_all: bool) -> Price | None:
    rows = table.get(name, ())
    started = [row for row in rows if row.effective_from is None or row.effective_from <= at]
    if started:
        return started[-1]
    return rows[0] if rows and before_all else None
