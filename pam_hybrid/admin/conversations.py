"""Admin for conversations (with their messages inline, read-only) and for messages."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from pam_hybrid.models import Conversation, Message


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = ("created_at", "role", "status", "model", "content")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("title", "owner", "created_at", "updated_at")
    list_filter = ("created_at", "updated_at", ("owner", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "replay_of", "created_at", "updated_at")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ("created_at", "conversation", "role", "status", "provider", "model", "finish_reason")
    list_filter = ("role", "status", "provider", "route", "created_at")
    list_select_related = ("conversation",)
    search_fields = ("content", "client_msg_id", "conversation__owner__username")
    readonly_fields = [f.name for f in Message._meta.fields]
