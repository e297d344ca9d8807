"""Admin for provider circuit breakers: their recorded state changes, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pam_hybrid.models import BreakerEvent


@admin.register(BreakerEvent)
class BreakerEventAdmin(admin.ModelAdmin[BreakerEvent]):
    list_display = ("at", "provider", "from_state", "to_state", "reason")
    list_filter = ("provider", "to_state")
    readonly_fields = ("at", "provider", "from_state", "to_state", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BreakerEvent | None = None) -> bool:
        return False
