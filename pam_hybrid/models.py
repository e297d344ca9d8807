"""Persistence: conversations, their messages, one usage record per answer and one row per provider call of it,
and the routing signals users give about answers.

Primary keys are UUIDs generated in Python, so the gateway can name a conversation or an answer to the
client before any database write has happened (no token waits on a write).

Messages form a tree (`Message.parent`): regenerating an answer or editing a question adds a sibling, and the
conversation remembers which branch the user sees (`Conversation.current_leaf`). Deleting a message deletes what
follows it; deleting a conversation keeps its usage records (money spent stays counted).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
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
    cache_creation_input_tokens = models.PositiveIntegerField(
        default=0, help_text="Input tokens written to the cache (5-minute and 1-hour writes)."
    )
    cache_write_1h_tokens = models.PositiveIntegerField(
        default=0, help_text="The part of the cache writes with a one-hour lifetime."
    )
    reasoning_tokens = models.PositiveIntegerField(
        default=0, help_text="The part of the output spent thinking, where the provider reports it."
    )
    model_calls = models.JSONField(
        default=list, blank=True, help_text="Each model call of the answer (tool rounds make several): usage, cost."
    )
    usage_estimated = models.BooleanField(
        default=False, help_text="True when some call's tokens were estimated (the provider never reported them)."
    )
    cost_usd = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True,
        help_text="The sum of its calls' costs; empty when some call's model price is unknown.",
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
    route_requested = models.CharField(
        max_length=16, blank=True,
        help_text="The route the client asked for: auto (the router chose), simple or complex; empty for answers "
        "recorded before it was kept, and for those the sweep settled.",
    )
    routing = models.JSONField(
        default=dict, blank=True,
        help_text="The router's decision for the message: route, score, threshold, model_version, features "
        "(made for forced routes too); {} for older answers.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.input_tokens}+{self.output_tokens} tokens"


class ModelCallRecord(models.Model):
    """One provider call of an answer (every attempt: retried, fallen back from, refused, abandoned, answered, each
    tool round): what it cost and why it ended. Its answer's UsageRecord totals are the sum of these rows.

    `input_tokens` is the uncached input (billed at the input rate); cache reads and writes are beside it, so the
    columns add up whichever provider reported them.
    """

    class Basis(models.TextChoices):
        REPORTED = "reported", "reported by the provider"
        ESTIMATED = "estimated", "estimated (the provider never reported it)"
        REFUSED = "refused", "refused before acceptance: free"
        UNKNOWN = "unknown", "model price unknown"

    usage_record = models.ForeignKey(UsageRecord, on_delete=models.CASCADE, related_name="calls")
    position = models.PositiveSmallIntegerField(help_text="Order of the call within its answer, from 0.")
    round = models.PositiveSmallIntegerField(default=0, help_text="The answer's model round (tool rounds), from 0.")
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField(default=0, help_text="Uncached input tokens.")
    output_tokens = models.PositiveIntegerField(default=0, help_text="Output tokens, reasoning included.")
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_5m_tokens = models.PositiveIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, help_text="Empty when the model's price is unknown."
    )
    basis = models.CharField(max_length=16, choices=Basis.choices)
    usage_estimated = models.BooleanField(
        default=False, help_text="Some of its tokens were estimated (the provider never reported them)."
    )
    accepted = models.BooleanField(help_text="Whether the provider accepted the request (its response began).")
    ended = models.CharField(
        max_length=32, help_text="complete, tool_use, length, stopped, interrupted, first_token_timeout, timeout, "
        "error, refused, circuit_open, cancelled, crashed.",
    )
    finish_reason = models.CharField(max_length=40, blank=True, help_text="The provider's own stop reason.")
    error = models.CharField(max_length=300, blank=True, help_text="The error that ended it, for staff.")
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["usage_record", "position"]
        constraints = [
            models.UniqueConstraint(fields=["usage_record", "position"], name="model_call_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.ended} ({self.basis})"


class RoutingSignal(models.Model):
    """What a user's action says about an answer's route: they asked the other model for it (escalated up to
    complex, or de-escalated to simple), sent with a route of their own, stopped it early, or rated it.

    The router's decision and the texts it read are copied in, so training needs no joins and the counts survive
    the conversation: deleting it empties `message` and blanks `text` and `history` (see conversation_delete), as
    its usage record keeps what it cost. One thumbs row per user and answer: rating again replaces it.
    """

    class Kind(models.TextChoices):
        ESCALATED = "escalated", "asked the stronger model"
        DE_ESCALATED = "de_escalated", "asked the simple model"
        FORCED_ROUTE = "forced_route", "sent with a forced route"
        STOPPED_EARLY = "stopped_early", "stopped before the end"
        THUMBS_UP = "thumbs_up", "thumbs up"
        THUMBS_DOWN = "thumbs_down", "thumbs down"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="routing_signals")
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="routing_signals",
        help_text="The answer the signal is about; empty once its conversation is deleted.",
    )
    usage_record = models.ForeignKey(
        UsageRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="routing_signals",
        help_text="The answer's usage record (its day, route and what it cost); kept when the conversation goes.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    route = models.CharField(max_length=16, help_text="The route the answer took.")
    route_to = models.CharField(
        max_length=16, blank=True, help_text="For an escalation: the route the user moved it to."
    )
    route_requested = models.CharField(max_length=16, blank=True, help_text="What the client asked for the answer.")
    routing = models.JSONField(default=dict, blank=True, help_text="The router's decision, copied from the usage.")
    text = models.TextField(blank=True, help_text="The user's message (truncated); blanked with its conversation.")
    history = models.JSONField(
        default=list, blank=True, help_text="Up to the last 4 turns before it, oldest first (truncated)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "message"], condition=models.Q(kind__in=["thumbs_up", "thumbs_down"]),
                name="routing_signal_one_thumb",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on a {self.route} answer"


LONG_CONTEXT_RATES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")


def _rate(help_text: str) -> models.DecimalField[Decimal, Decimal]:
    """A price in USD per million tokens."""
    return models.DecimalField(max_digits=12, decimal_places=6, help_text=help_text)


def _optional_rate(help_text: str) -> models.DecimalField[Decimal | None, Decimal | None]:
    return models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True, help_text=help_text)


class ModelPrice(models.Model):
    """A staff override of one model's price, from `effective_from` on; the shipped price file applies before it.

    Rates are USD per million tokens. A cost is stored when it is recorded, so changing a price never changes
    what earlier calls cost.
    """

    model = models.CharField(
        max_length=100, db_index=True,
        help_text="A model family (claude-sonnet-4-5) or an exact snapshot name; a family covers its dated snapshots.",
    )
    effective_from = models.DateTimeField(help_text="Calls from this moment on are priced by this row (UTC).")
    input = _rate("Uncached input tokens.")
    output = _rate("Output tokens (reasoning included).")
    cache_read = _rate("Input tokens read from the prompt cache.")
    cache_write_5m = _rate("Input tokens written to the cache with a 5-minute lifetime (OpenAI: same as input).")
    cache_write_1h = _rate("Input tokens written to the cache with a 1-hour lifetime.")
    long_context_above = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Input size (counted as the provider counts it) above which every token of the call is billed at "
        "the long-context rates below. Empty: no long-context tier.",
    )
    long_context_input = _optional_rate("Long-context uncached input.")
    long_context_output = _optional_rate("Long-context output.")
    long_context_cache_read = _optional_rate("Long-context cache reads.")
    long_context_cache_write_5m = _optional_rate("Long-context 5-minute cache writes.")
    long_context_cache_write_1h = _optional_rate("Long-context 1-hour cache writes.")
    source = models.URLField(max_length=300, blank=True, help_text="Where this price was read.")
    note = models.CharField(max_length=300, blank=True, help_text="Why the price changed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="model_price_unique_start"),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        tier = [getattr(self, f"long_context_{name}") for name in LONG_CONTEXT_RATES]
        if self.long_context_above is not None and any(rate is None for rate in tier):
            raise ValidationError("A long-context threshold needs all five long-context rates.")
        if self.long_context_above is None and any(rate is not None for rate in tier):
            raise ValidationError("Long-context rates need a long-context threshold.")


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
