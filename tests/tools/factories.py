"""Test data for the tools: conversations, messages and usage records, with their timestamps set on request."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pam_hybrid.models import Conversation, Message, UsageRecord


def conversation_create(*, owner: Any, title: str = "A conversation") -> Conversation:
    return Conversation.objects.create(owner=owner, title=title)


def message_create(
    *, conversation: Conversation, content: str, role: str = Message.Role.USER, created_at: datetime | None = None
) -> Message:
    message = Message.objects.create(conversation=conversation, role=role, content=content)
    if created_at is not None:
        Message.objects.filter(pk=message.pk).update(created_at=created_at)
        message.refresh_from_db()
    return message


def usage_record_create(
    *,
    user: Any,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    input_tokens: int = 100,
    output_tokens: int = 50,
    cost_usd: Decimal | None = Decimal("0.00010000"),
    created_at: datetime | None = None,
) -> UsageRecord:
    conversation = conversation_create(owner=user)
    message = message_create(conversation=conversation, content="an answer", role=Message.Role.ASSISTANT)
    record = UsageRecord.objects.create(
        message=message,
        user=user,
        route="simple",
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        outcome=UsageRecord.Outcome.COMPLETE,
    )
    if created_at is not None:
        UsageRecord.objects.filter(pk=record.pk).update(created_at=created_at)
    return record
