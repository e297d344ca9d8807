"""Admin registrations: conversations with their messages, messages, usage records and breaker state changes
(the last two read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pam_hybrid.models import BreakerEvent, Conversation, Message, UsageRecord


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = ("created_at", "role", "status", "model", "content")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("title", "owner", "created_at", "updated_at")
    list_filter = ("created_at",)
    search_fields = ("title", "owner__username")
    readonly_fields = ("id", "owner", "created_at", "updated_at")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ("created_at", "conversation", "role", "status", "provider", "model", "finish_reason")
    list_filter = ("role", "status", "provider", "route")
    search_fields = ("content", "client_msg_id")
    readonly_fields = [f.name for f in Message._meta.fields]


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


@admin.register(BreakerEvent)
class BreakerEventAdmin(admin.ModelAdmin[BreakerEvent]):
    list_display = ("at", "provider", "from_state", "to_state", "reason")
    list_filter = ("provider", "to_state")
    readonly_fields = ("at", "provider", "from_state", "to_state", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BreakerEvent | None = None) -> bool:
        return False
