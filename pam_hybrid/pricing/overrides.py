"""Staff price overrides (`ModelPrice` rows), kept in memory per process so pricing a call never queries.

`refresh_overrides()` reads them all (a few rows); it runs when the process starts serving, from each upkeep tick
(every checkpoint interval) and when the admin saves or deletes one. So the admin's own process sees a change at
once and every other process within one checkpoint interval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal

from django.db import DatabaseError

from pam_hybrid.domain.pricing import LongContext, Price, Rates
from pam_hybrid.models import ModelPrice
from pam_hybrid.pricing.catalogue import shipped_prices

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Overrides:
    """This process's copy of the overrides: each model's, oldest first. Replaced whole, never mutated."""

    by_model: Mapping[str, tuple[Price, ...]] = field(default_factory=dict)
    loaded: bool = False


_cache = _Overrides()


def overrides_by_model() -> Mapping[str, tuple[Price, ...]]:
    return _cache.by_model


def overrides_loaded() -> bool:
    """Whether this process has read the overrides at least once."""
    return _cache.loaded


def refresh_overrides() -> bool:
    """Read every override from the database into this process's copy (sync: call it through sync_to_async from
    async code). On a database error the old copy stays and False is returned. Also reads the shipped price file
    if this process has not yet, so that never happens on the event loop."""
    shipped_prices()
    try:
        rows = list(ModelPrice.objects.order_by("model", "effective_from"))
    except DatabaseError:
        logger.warning("could not read the price overrides; keeping the ones read before", exc_info=True)
        return False
    by_model: dict[str, list[Price]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(override_price(row))
    _cache.by_model = {model: tuple(prices) for model, prices in by_model.items()}
    _cache.loaded = True
    return True


def forget_overrides() -> None:
    """Drop this process's copy (tests, after their database is rolled back)."""
    _cache.by_model = {}
    _cache.loaded = False


def override_price(row: ModelPrice) -> Price:
    """The `Price` an override row describes."""
    return Price(
        model=row.model,
        rates=Rates(row.input, row.output, row.cache_read, row.cache_write_5m, row.cache_write_1h),
        long_context=_long_context(row),
        effective_from=row.effective_from.astimezone(UTC),
        checked=row.created_at.date() if row.created_at else None,
        source=row.source,
        note=row.note,
        override=True,
    )


def _long_context(row: ModelPrice) -> LongContext | None:
    if row.long_context_above is None:
        return None
    rates = (row.long_context_input, row.long_context_output, row.long_context_cache_read,
             row.long_context_cache_write_5m, row.long_context_cache_write_1h)
    if any(rate is None for rate in rates):  # the model's clean() refuses this; a row written around it
        logger.warning("override %s has a long-context threshold without all its rates: tier ignored", row)
        return None
    return LongContext(row.long_context_above, Rates(*(Decimal(rate) for rate in rates if rate is not None)))
