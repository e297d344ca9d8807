"""Persistence: conversations, their messages, and one usage record per answer.

Primary keys are UUIDs generated in Python, so the gateway can name a conversation or an answer to the
client before any database write has happened (no token waits on a write).

Messages form a tree (`Message.parent`): regenerating an answer or editing a question adds a sibling, and the
conversation remembers which branch the user sees (`Conversation.current_leaf`). Deleting a message deletes what
follows it; deleting a conversation keeps its usage records (money spent stays counted).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays",
        help_text="The conversation this one re-ran through the gateway (replay_conversation).",
    )
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The last message of the branch the user sees (see Message.parent).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        PARTIAL = "partial"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    route = models.CharField(max_length=16, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    client_msg_id = models.CharField(max_length=100, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
        help_text="The message this one follows: a user message's previous answer (none for the first), an answer's "
        "user message. Messages with the same parent and role are versions (edits, regenerations).",
    )
    finish_reason = models.CharField(max_length=40, blank=True)
    error = models.CharField(max_length=300, blank=True, help_text="The user-facing error, when status is error.")
    tool_calls = models.JSONField(
        default=list, blank=True, help_text="The tools this answer called: name, arguments, result, duration."
    )
    stream_log = models.JSONField(
        default=list, blank=True,
        help_text="The answer's frames by sequence number, for resuming: a token frame as the text's end offset, "
        "any other frame whole.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(
        auto_now=True, help_text="While streaming, refreshed by the serving process as a heartbeat."
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["client_msg_id"]),
            models.Index(fields=["status", "updated_at"], name="message_streaming_idx",
                         condition=models.Q(status="streaming")),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class UsageRecord(models.Model):
    """What one answer cost: tokens, money and time, whatever its outcome."""

    class Outcome(models.TextChoices):
        COMPLETE = "complete"
        PARTIAL = "partial"
        CANCELLED = "cancelled"
        ERROR = "error"

    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage",
        help_text="Empty once the answer's conversation is deleted: what it cost still counts.",
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    route = models.CharField(max_length=16)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0, help_text="Input tokens read from the cache.")
    cache_creation_input_tokens = models.PositiveIntegerField(default=0, help_text="Input tokens written to cache.")
    model_calls = models.JSONField(
        default=list, blank=True, help_text="Each model call of the answer (tool rounds make several): usage, cost."
    )
    usage_estimated = models.BooleanField(
        default=False, help_text="True when the stream ended before the provider reported usage."
    )
    cost_usd = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, help_text="Empty when the model's price is unknown."
    )
    classification_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first token; empty if none came.")
    total_ms = models.FloatField(default=0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    finish_reason = models.CharField(max_length=40, blank=True)
    attempts = models.JSONField(
        default=list, blank=True, help_text="Model calls that failed before answering (retried or fallen back from)."
    )
    fallback_from = models.CharField(
        max_length=32, blank=True, help_text="The provider first chosen, when another one answered."
    )
    fallback_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.input_tokens}+{self.output_tokens} tokens"


class BreakerEvent(models.Model):
    """A provider circuit breaker changed state: when, between which states, and why."""

    provider = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    reason = models.CharField(max_length=300)
    actor = models.CharField(
        max_length=150, blank=True, help_text="Who forced the change (a staff user or a command); empty when automatic."
    )
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at"]
        permissions = [("operate_breaker", "Can reset a provider's circuit breaker or force it open")]

    def __str__(self) -> str:
        return f"{self.provider}: {self.from_state} → {self.to_state} ({self.reason})"
