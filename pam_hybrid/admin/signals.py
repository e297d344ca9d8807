"""Admin for routing signals: read-only, what users' actions said about answers' routes (see RoutingSignal)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pam_hybrid.models import RoutingSignal


@admin.register(RoutingSignal)
class RoutingSignalAdmin(admin.ModelAdmin[RoutingSignal]):
    list_display = ("created_at", "kind", "route", "route_to", "route_requested", "user", "message")
    list_filter = ("kind", "route", "route_requested", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "text")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in RoutingSignal._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RoutingSignal | None = None) -> bool:
        return False
