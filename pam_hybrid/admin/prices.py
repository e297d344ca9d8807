"""Admin for staff price overrides: a model's rates from a date on, which win over the shipped price file.

Saving or deleting one refreshes this process's prices once the change is committed; other processes pick it up
at their next upkeep tick (within one checkpoint interval). Editing an override changes the price of calls made
after that, never the cost already recorded for earlier ones.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from pam_hybrid.models import ModelPrice
from pam_hybrid.pricing import Price, price_for, refresh_overrides
from pam_hybrid.pricing.report import prices_now


def _refresh_after_commit() -> None:
    transaction.on_commit(refresh_overrides)


def _price_row(price: Price) -> dict[str, Any]:
    tier = price.long_context
    return {
        **{name: f"{rate:f}" for name, rate in asdict(price.rates).items()},
        "model": price.model,
        "long_context": "—" if tier is None else f"above {tier.above:,}: "
        + " / ".join(f"{rate:f}" for rate in asdict(tier.rates).values()),
        "origin": ("override" if price.override else "file")
        + (f" from {price.effective_from:%Y-%m-%d %H:%M}" if price.effective_from else ""),
        "checked": price.checked.isoformat() if price.checked else "—",
        "unconfirmed": price.unconfirmed,
        "source": price.source,
        "source_is_url": price.source.startswith("https://"),
    }


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin[ModelPrice]):
    list_display = (
        "model", "effective_from", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h",
        "long_context_above", "note", "created_by",
    )
    list_filter = ("model",)
    search_fields = ("model", "note")
    date_hierarchy = "effective_from"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("created_by", "created_at")
    fieldsets = (
        (None, {"fields": ("model", "effective_from", "note", "source")}),
        ("USD per million tokens", {"fields": ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")}),
        ("Long context (optional)", {
            "description": "Every token of a call whose prompt (all input, cached and cache-written included) is "
                           "above the threshold is billed at these rates instead.",
            "fields": ("long_context_above", "long_context_input", "long_context_output", "long_context_cache_read",
                       "long_context_cache_write_5m", "long_context_cache_write_1h"),
        }),
        ("Recorded", {"fields": ("created_by", "created_at")}),
    )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The overrides, then every model's price in force now (file or override), each with a link to override it."""
        rows = [_price_row(price) for price in prices_now()]
        return super().changelist_view(request, {**(extra_context or {}), "prices_in_force": rows})

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """`?model=NAME` starts a new override from the model's price in force now."""
        initial: dict[str, Any] = super().get_changeform_initial_data(request)
        price = price_for(str(initial["model"])) if initial.get("model") else None
        if price is not None:
            initial.update(asdict(price.rates))
            if price.long_context is not None:
                initial["long_context_above"] = price.long_context.above
                initial.update({f"long_context_{k}": v for k, v in asdict(price.long_context.rates).items()})
        return initial

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: ModelForm[ModelPrice], change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        _refresh_after_commit()

    def delete_model(self, request: HttpRequest, obj: ModelPrice) -> None:
        super().delete_model(request, obj)
        _refresh_after_commit()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        super().delete_queryset(request, queryset)
        _refresh_after_commit()
