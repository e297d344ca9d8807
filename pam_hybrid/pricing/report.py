"""Staff reads about prices: every model's price in force now, and the models in use that have none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, F, Max, Sum

from pam_hybrid.domain.pricing import Price
from pam_hybrid.models import ModelCallRecord, UsageRecord
from pam_hybrid.pricing.catalogue import shipped_prices
from pam_hybrid.pricing.lookup import price_for
from pam_hybrid.pricing.overrides import overrides_by_model


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A model the usage records name that has no price now: its calls were recorded with cost unknown."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    last_used: datetime


def prices_now(at: datetime | None = None) -> list[Price]:
    """The price in force at `at` (default: now) of every model in the file or an override, by model name."""
    at = at or datetime.now(UTC)
    names = sorted({*shipped_prices(), *overrides_by_model()})
    return [price for name in names if (price := price_for(name, at)) is not None]


def unpriced_models() -> list[UnpricedModel]:
    """Models used without a price now, most calls first: every provider call (each attempt and tool round has a
    row; input counts cache reads and writes too), and answers recorded before calls had rows of their own."""
    all_input = F("input_tokens") + F("cache_read_tokens") + F("cache_write_5m_tokens") + F("cache_write_1h_tokens")
    calls = ModelCallRecord.objects.values("model").annotate(
        n_calls=Count("id"), n_input=Sum(all_input), n_output=Sum("output_tokens"), last_used=Max("started_at"),
    )
    older = UsageRecord.objects.filter(calls__isnull=True).values("model").annotate(
        n_calls=Count("id"), n_input=Sum("input_tokens"), n_output=Sum("output_tokens"), last_used=Max("created_at"),
    )
    found: dict[str, UnpricedModel] = {}
    for row in [*calls.order_by(), *older.order_by()]:
        if price_for(row["model"]) is None:
            found[row["model"]] = _add(found.get(row["model"]), row)
    return sorted(found.values(), key=lambda item: (-item.calls, item.model))


def _add(seen: UnpricedModel | None, row: Mapping[str, Any]) -> UnpricedModel:
    more = UnpricedModel(row["model"], row["n_calls"], row["n_input"] or 0, row["n_output"] or 0, row["last_used"])
    if seen is None:
        return more
    return UnpricedModel(seen.model, seen.calls + more.calls, seen.input_tokens + more.input_tokens,
                         seen.output_tokens + more.output_tokens, max(seen.last_used, more.last_used))
