"""Admin for usage records: one per answer, read-only, with its provider calls inline and the filtered set's totals
above the list."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from pam_hybrid.models import UsageRecord
from pam_hybrid.usage.report import usage_totals


class EstimatedFilter(admin.SimpleListFilter):
    """Whether the tokens were reported by the provider or estimated (the stream ended before its report)."""

    title = "usage"
    parameter_name = "usage"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("reported", "reported"), ("estimated", "estimated")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("reported", "estimated"):
            return queryset.filter(usage_estimated=self.value() == "estimated")
        return queryset


CALL_COLUMNS = (
    "position", "round", "provider", "model", "accepted", "ended", "finish_reason", "input_tokens",
    "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens",
    "cost_usd", "basis", "usage_estimated", "error", "started_at", "duration_ms",
)


def calls_table(record: UsageRecord) -> str:
    """Every provider call of the answer, in order, as a read-only table: what each cost and why it ended."""
    head = format_html_join("", "<th>{}</th>", ((column.replace("_", " "),) for column in CALL_COLUMNS))
    rows = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((_cell(getattr(call, column)),) for column in CALL_COLUMNS)),)
        for call in record.calls.all()
    ))
    return format_html('<table data-testid="model-calls"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       head, rows)


def _cell(value: object) -> object:
    if value is None:
        return "unknown"
    return f"{value:f}" if isinstance(value, Decimal) else value


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin[UsageRecord]):
    list_display = (
        "created_at", "user", "provider", "model", "route", "input_tokens", "output_tokens", "cost_usd", "ttft_ms",
        "total_ms", "outcome", "usage_estimated", "fallback_from",
    )
    list_filter = ("provider", "model", "route", "outcome", EstimatedFilter, "fallback_from", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "model")
    date_hierarchy = "created_at"
    readonly_fields = [*(f.name for f in UsageRecord._meta.fields), "provider_calls"]

    @admin.display(description="provider calls")
    def provider_calls(self, obj: UsageRecord) -> str:
        return calls_table(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The list, with the totals of the whole filtered set (every page of it), from the dashboard's selector."""
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            response.context_data["usage_totals"] = usage_totals(records=response.context_data["cl"].queryset)
        return response
