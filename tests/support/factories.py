"""Test data as plain functions: users, conversations with messages, and usage records at chosen times."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from pam_hybrid.models import Conversation, Message, ModelCallRecord, UsageRecord

PASSWORD = "correct-horse-battery-staple"


def user_create(*, username: str, staff: bool = False, password: str = PASSWORD) -> Any:
    """A user; a staff user is a superuser too, so every admin page is open to it."""
    model = get_user_model()
    if staff:
        return model.objects.create_superuser(username=username, password=password, email=f"{username}@example.com")
    return model.objects.create_user(username=username, password=password)


def conversation_create(
    *, owner: Any, title: str = "A conversation", created_at: datetime | None = None
) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title)
    if created_at is not None:
        Conversation.objects.filter(pk=conversation.pk).update(created_at=created_at, updated_at=created_at)
        conversation.refresh_from_db()
    return conversation


def message_create(
    *,
    conversation: Conversation,
    content: str,
    role: str = Message.Role.USER,
    provider: str = "",
    model: str = "",
    created_at: datetime | None = None,
) -> Message:
    message = Message.objects.create(
        conversation=conversation, role=role, content=content, provider=provider, model=model
    )
    if created_at is not None:
        Message.objects.filter(pk=message.pk).update(created_at=created_at)
        message.refresh_from_db()
    return message


def usage_record_create(
    *,
    user: Any,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    route: str = "simple",
    input_tokens: int = 100,
    output_tokens: int = 50,
    cost_usd: Decimal | None = Decimal("0.00100000"),
    ttft_ms: float | None = 200.0,
    total_ms: float = 800.0,
    outcome: str = UsageRecord.Outcome.COMPLETE,
    fallback_from: str = "",
    usage_estimated: bool = False,
    created_at: datetime | None = None,
    conversation: Conversation | None = None,
) -> UsageRecord:
    """A usage record with the answer it belongs to (in a new conversation of the user's unless given), and one
    provider call that answered it (the row usage figures are read from)."""
    conversation = conversation or conversation_create(owner=user, created_at=created_at)
    message = message_create(
        conversation=conversation, content="an answer", role=Message.Role.ASSISTANT, provider=provider, model=model,
        created_at=created_at,
    )
    record = UsageRecord.objects.create(
        message=message, user=user, route=route, provider=provider, model=model, input_tokens=input_tokens,
        output_tokens=output_tokens, cost_usd=cost_usd, ttft_ms=ttft_ms, total_ms=total_ms, outcome=outcome,
        fallback_from=fallback_from, usage_estimated=usage_estimated,
    )
    if created_at is not None:
        UsageRecord.objects.filter(pk=record.pk).update(created_at=created_at)
        record.refresh_from_db()
    basis = "unknown" if cost_usd is None else "estimated" if usage_estimated else "reported"
    ModelCallRecord.objects.create(
        usage_record=record, position=0, provider=provider, model=model, input_tokens=input_tokens,
        output_tokens=output_tokens, cost_usd=cost_usd, basis=basis, usage_estimated=usage_estimated, accepted=True,
        ended="complete" if outcome == UsageRecord.Outcome.COMPLETE else "error", started_at=record.created_at,
    )
    return record


def usage_sample_create(*, today: date) -> dict[str, Any]:
    """Known usage over the last days (UTC), for the report, admin, command and browser tests.

    today 01:00  alice  openai/gpt-4o-mini           simple   100+50 tokens    $0.001   ttft 100  complete
    today 02:00  alice  openai/gpt-4o-mini           simple   200+100          $0.002   ttft 300  complete
    today 03:00  bob    anthropic/claude-sonnet-5-5  complex  1000+500         $0.015   ttft 500  complete, fell back
                                                                                                  from openai
    -1 d 05:00   bob    anthropic/claude-sonnet-5-5  complex  400+0            $0.0012  no ttft   error
    -1 d 06:00   alice  openai/gpt-4o-mini           simple   300+150          unknown  ttft 200  complete, estimated
    -6 d 12:00   carol  openai/gpt-4o                complex  50+25            $0.0005  ttft 1000 partial
    -40 d 12:00  carol  openai/gpt-4o-mini           simple   9999+9999        $1       ttft 50   (outside 30 days)
    """
    alice, bob, carol = (user_create(username=name) for name in ("alice", "bob", "carol"))

    def at(days_ago: int, hour: int) -> datetime:
        return datetime.combine(today - timedelta(days=days_ago), time(hour), tzinfo=UTC)

    mini = {"provider": "openai", "model": "gpt-4o-mini", "route": "simple"}
    sonnet = {"provider": "anthropic", "model": "claude-sonnet-5-5", "route": "complex"}
    rows: list[dict[str, Any]] = [
        {"user": alice, **mini, "input_tokens": 100, "output_tokens": 50, "cost_usd": Decimal("0.001"),
         "ttft_ms": 100.0, "created_at": at(0, 1)},
        {"user": alice, **mini, "input_tokens": 200, "output_tokens": 100, "cost_usd": Decimal("0.002"),
         "ttft_ms": 300.0, "created_at": at(0, 2)},
        {"user": bob, **sonnet, "input_tokens": 1000, "output_tokens": 500, "cost_usd": Decimal("0.015"),
         "ttft_ms": 500.0, "fallback_from": "openai", "created_at": at(0, 3)},
        {"user": bob, **sonnet, "input_tokens": 400, "output_tokens": 0, "cost_usd": Decimal("0.0012"),
         "ttft_ms": None, "outcome": UsageRecord.Outcome.ERROR, "created_at": at(1, 5)},
        {"user": alice, **mini, "input_tokens": 300, "output_tokens": 150, "cost_usd": None, "ttft_ms": 200.0,
         "usage_estimated": True, "created_at": at(1, 6)},
        {"user": carol, "provider": "openai", "model": "gpt-4o", "route": "complex", "input_tokens": 50,
         "output_tokens": 25, "cost_usd": Decimal("0.0005"), "ttft_ms": 1000.0,
         "outcome": UsageRecord.Outcome.PARTIAL, "created_at": at(6, 12)},
        {"user": carol, **mini, "input_tokens": 9999, "output_tokens": 9999, "cost_usd": Decimal("1"),
         "ttft_ms": 50.0, "created_at": at(40, 12)},
    ]
    return {
        "users": {"alice": alice, "bob": bob, "carol": carol},
        "records": [usage_record_create(**row) for row in rows],
    }
