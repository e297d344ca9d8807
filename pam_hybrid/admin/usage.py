"""Admin for usage records: one per answer, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pam_hybrid.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin[UsageRecord]):
    list_display = (
        "created_at", "user", "provider", "model", "route", "input_tokens", "output_tokens", "cost_usd", "ttft_ms",
        "total_ms", "outcome", "fallback_from",
    )
    list_filter = ("provider", "model", "route", "outcome", "usage_estimated", "fallback_from")
    readonly_fields = [f.name for f in UsageRecord._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
