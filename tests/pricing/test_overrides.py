"""Staff overrides from the database: a price at time T is the latest override in force at T, else the file's;
old calls keep the price they were made at; overrides reach pricing only through refresh_overrides, whose copy
the upkeep tick keeps current."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.models import ModelPrice
from pam_hybrid.pricing import call_cost, overrides_loaded, price_for, refresh_overrides
from pam_hybrid.runtime import maintenance

pytestmark = pytest.mark.django_db

D = Decimal
USAGE = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=1_000_000,
              cache_creation_input_tokens=1_000_000, cache_write_1h_tokens=400_000)
# claude-opus-5-5 from the file: 1M x $4 + 1M x $0.20 + 600k x $5 + 400k x $8 + 100k x $20
FILE_COST = D("4") + D("0.2") + D("3") + D("3.2") + D("2")


def override(model: str, start: datetime, **rates: Any) -> ModelPrice:
    values = {"input": D("3"), "output": D("15"), "cache_read": D("0.15"), "cache_write_5m": D("3.75"),
              "cache_write_1h": D("6"), **rates}
    return ModelPrice.objects.create(model=model, effective_from=start, note="negotiated rate", **values)


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def test_an_override_applies_from_its_start_and_earlier_calls_keep_the_file_price() -> None:
    override("claude-opus-5-5", at(11, 1))
    assert call_cost("claude-opus-5-5", USAGE, at(11, 2)) == FILE_COST  # not read yet: the file's price
    assert refresh_overrides() and overrides_loaded()
    # 1M x $3 + 1M x $0.15 + 600k x $3.75 + 400k x $6 + 100k x $15
    assert call_cost("claude-opus-5-5", USAGE, at(11, 2)) == D("3") + D("0.15") + D("2.25") + D("2.4") + D("1.5")
    assert call_cost("claude-opus-5-5", USAGE, at(10, 31)) == FILE_COST
    assert call_cost("claude-opus-5-5", USAGE) == D("9.3")  # now (after 2026-11-01)
    price = price_for("claude-opus-5-5", at(11, 2))
    assert price is not None and price.override and price.note == "negotiated rate"


def test_the_latest_override_in_force_wins_and_covers_the_dated_snapshots_of_its_family() -> None:
    override("claude-opus-5-5", at(11, 1))
    override("claude-opus-5-5", at(11, 20), input=D("2"))
    refresh_overrides()
    usage = Usage(input_tokens=1_000_000)
    assert call_cost("claude-opus-5-5-20260922", usage, at(11, 10)) == D("3")
    assert call_cost("claude-opus-5-5-20260922", usage, at(11, 21)) == D("2")


def test_an_override_for_an_unpriced_model_gives_it_a_price_from_its_start_only() -> None:
    override("llama-3.3-70b-local", at(11, 1), input=D("0.5"), output=D("1"))
    refresh_overrides()
    assert call_cost("llama-3.3-70b-local", Usage(1_000_000, 1_000_000), at(11, 2)) == D("1.5")
    assert call_cost("llama-3.3-70b-local", Usage(1_000_000, 1_000_000), at(10, 31)) is None


def test_an_override_can_carry_a_long_context_tier() -> None:
    override("claude-opus-5-5", at(11, 1), long_context_above=200_000, long_context_input=D("8"),
             long_context_output=D("30"), long_context_cache_read=D("0.4"), long_context_cache_write_5m=D("10"),
             long_context_cache_write_1h=D("16"))
    refresh_overrides()
    assert call_cost("claude-opus-5-5", Usage(input_tokens=200_001), at(11, 2)) == D("1.600008")
    assert call_cost("claude-opus-5-5", Usage(input_tokens=200_000), at(11, 2)) == D("0.6")


def test_a_long_context_threshold_without_all_its_rates_is_refused() -> None:
    row = ModelPrice(model="m", effective_from=at(11, 1), input=1, output=2, cache_read=0, cache_write_5m=1,
                     cache_write_1h=2, long_context_above=1000, long_context_input=D("2"))
    with pytest.raises(ValidationError, match="all five"):
        row.full_clean()


@pytest.mark.django_db(transaction=True)
async def test_the_upkeep_tick_brings_a_new_override_to_this_process() -> None:
    await sync_to_async(override)("claude-opus-5-5", at(11, 1))
    assert call_cost("claude-opus-5-5", Usage(input_tokens=1_000_000), at(11, 2)) == D("4")
    await maintenance.tick()
    assert call_cost("claude-opus-5-5", Usage(input_tokens=1_000_000), at(11, 2)) == D("3")
