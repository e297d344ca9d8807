"""Writes, as small transactional functions called from async code through `database_sync_to_async`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from pam_hybrid.conversations.selectors import conversation_get_for_user
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.domain.context import estimate_tokens
from pam_hybrid.models import Conversation, Message, UsageRecord

TITLE_CHARS = 80
REPLAY_TITLE_CHARS = 200  # Conversation.title's max_length

_USAGE_FIELDS_ON_CONFLICT = [
    f.name for f in UsageRecord._meta.concrete_fields if f.name not in ("id", "message", "created_at")
]


def _storable(text: str) -> str:
    """Model output as the database can hold it: PostgreSQL's text columns refuse NUL, which a model may emit."""
    return text.replace("\x00", "\ufffd")
HISTORY_LIMIT = 50


def conversation_history(*, user: AbstractBaseUser, conversation_id: str) -> list[ChatTurn] | None:
    """The conversation's recent usable turns, oldest first; None if the user has no such conversation."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation is None:
        return None
    rows = (
        Message.objects.filter(conversation=conversation)
        .exclude(status__in=(Message.Status.ERROR, Message.Status.STREAMING))
        .exclude(content="")
        .order_by("-created_at")
        .values_list("role", "content")[:HISTORY_LIMIT]
    )
    return [
        ChatTurn(role="user" if role == "user" else "assistant", content=content) for role, content in reversed(rows)
    ]


def conversation_replay_create(*, original: Conversation) -> Conversation:
    """The empty conversation a replay of `original` is answered into: the same owner (so its turns behave exactly as
    theirs would), linked to the original, and titled after it."""
    title = f"Replay of {original.title or original.id}"[:REPLAY_TITLE_CHARS]
    return Conversation.objects.create(owner_id=original.owner_id, title=title, replay_of=original)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A user's message and the answer it is getting, as saved when the provider accepts the request."""

    user: AbstractBaseUser
    answer: Answer
    content: str


def _exchange_rows(exchanges: Sequence[Exchange], *, finished: bool) -> None:
    """Insert each exchange's conversation (if new), user message and answer row: two statements for the lot. The
    answer row is a `streaming` placeholder, or (`finished`) the answer as it ended.

    An existing conversation id is the user's own (the gateway read its history first); a new one is a fresh uuid4,
    so nothing is taken over."""
    conversations = {
        e.answer.conversation_id: Conversation(
            id=e.answer.conversation_id, owner_id=e.user.pk, title=" ".join(e.content.split())[:TITLE_CHARS]
        )
        for e in reversed(exchanges)
    }
    Conversation.objects.bulk_create(list(conversations.values()), ignore_conflicts=True)
    messages: list[Message] = []
    for e in exchanges:
        answer = e.answer
        reply = Message(
            id=answer.message_id, conversation_id=answer.conversation_id, role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING, route=answer.route, provider=answer.provider, model=answer.model,
            client_msg_id=answer.client_msg_id, reply_to_id=answer.user_message_id,
        )
        if finished:
            reply.content, reply.status, reply.finish_reason, reply.error = (
                _storable(answer.text), answer.status, answer.finish_reason, answer.error
            )
            reply.tool_calls, reply.stream_log = answer.tool_log, answer.stream_log
        messages += [
            Message(
                id=answer.user_message_id, conversation_id=answer.conversation_id, role=Message.Role.USER,
                content=e.content, client_msg_id=answer.client_msg_id,
            ),
            reply,
        ]
    Message.objects.bulk_create(messages)


@transaction.atomic
def exchanges_open(*, exchanges: Sequence[Exchange]) -> None:
    """Save each user's message and a `streaming` placeholder for its answer, creating each new conversation (titled
    after its message). From here on each user message always has an answer row."""
    _exchange_rows(exchanges, finished=False)


@transaction.atomic
def exchange_save(*, user: AbstractBaseUser, answer: Answer, content: str) -> None:
    """The user's message and its finished answer with its usage, in one transaction of four statements: for an
    answer no provider ever accepted (every breaker open, every attempt refused), written as it ended."""
    _exchange_rows([Exchange(user, answer, content)], finished=True)
    _usage_record(user, answer).save(force_insert=True)
    Conversation.objects.filter(id=answer.conversation_id).update(updated_at=timezone.now())


@dataclass(frozen=True, slots=True)
class AnswerSave:
    """A finished answer (whatever its outcome) and the user it answered."""

    user: AbstractBaseUser
    answer: Answer


def _message_update(answer: Answer, now: datetime) -> None:
    Message.objects.filter(id=answer.message_id).update(
        content=_storable(answer.text),
        status=answer.status,
        route=answer.route,
        provider=answer.provider,
        model=answer.model,
        finish_reason=answer.finish_reason,
        error=answer.error,
        tool_calls=answer.tool_log,
        stream_log=answer.stream_log,
        updated_at=now,
    )


def _usage_record(user: AbstractBaseUser, answer: Answer) -> UsageRecord:
    usage = answer.usage
    return UsageRecord(
        message_id=answer.message_id,
        user_id=user.pk,
        route=answer.route,
        provider=answer.provider,
        model=answer.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        model_calls=[call.as_record() for call in answer.calls],
        usage_estimated=usage.estimated or not answer.calls,
        cost_usd=answer.cost_usd,
        classification_ms=answer.classification_ms,
        ttft_ms=answer.ttft_ms,
        total_ms=answer.total_ms,
        outcome=answer.outcome,
        finish_reason=answer.finish_reason,
        attempts=answer.attempts,
        fallback_from=answer.fallback_from,
        fallback_reason=answer.fallback_reason[:200],
    )


@transaction.atomic
def answers_save(*, saves: Sequence[AnswerSave]) -> None:
    """Save each answer over its placeholder with its usage record, and touch its conversation: one transaction,
    with one statement for all the usage records and one for all the conversations."""
    now = timezone.now()
    for save in saves:
        _message_update(save.answer, now)
    # An upsert: the sweep may have written an estimate for an answer whose process looked dead.
    UsageRecord.objects.bulk_create(
        [_usage_record(save.user, save.answer) for save in saves], update_conflicts=True, unique_fields=["message"],
        update_fields=_USAGE_FIELDS_ON_CONFLICT,
    )
    Conversation.objects.filter(id__in={save.answer.conversation_id for save in saves}).update(updated_at=now)


def checkpoint_and_sweep(*, answers: list[Answer], live_ids: Collection[uuid.UUID], older_than: timedelta) -> int:
    """One round of upkeep in one job: this process's live answers first (their heartbeat), then the sweep, which
    never takes this process's own live answers for dead, however long the job waited for the database thread."""
    answers_checkpoint(answers)
    return stale_answers_sweep(older_than=older_than, sparing=live_ids)


def answers_checkpoint(answers: list[Answer]) -> None:
    """Save the text so far of answers still streaming, and mark them alive (the sweep spares them)."""
    now = timezone.now()
    for answer in answers:
        Message.objects.filter(id=answer.message_id, status=Message.Status.STREAMING).update(
            content=_storable(answer.text), stream_log=list(answer.stream_log), updated_at=now
        )


INTERRUPTED_ERROR = "The server stopped before this answer finished."


@transaction.atomic
def stale_answers_sweep(*, older_than: timedelta, sparing: Collection[uuid.UUID] = ()) -> int:
    """Mark answers left `streaming` by a crashed process (no heartbeat for `older_than`) as interrupted: partial
    if some text was saved, error if none, with an estimated usage record. The answers in `sparing` (this process's
    own, alive whatever their heartbeat says) are left alone. Returns how many were marked."""
    stale = list(
        Message.objects.select_for_update(skip_locked=True)
        .filter(status=Message.Status.STREAMING, updated_at__lt=timezone.now() - older_than)
        .exclude(id__in=list(sparing))
        .select_related("conversation")
    )
    for message in stale:
        message.status = Message.Status.PARTIAL if message.content else Message.Status.ERROR
        message.finish_reason = "interrupted"
        message.error = INTERRUPTED_ERROR
        message.save(update_fields=["status", "finish_reason", "error", "updated_at"])
        UsageRecord.objects.get_or_create(message=message, defaults={
            "user_id": message.conversation.owner_id,
            "route": message.route,
            "provider": message.provider,
            "model": message.model,
            "output_tokens": estimate_tokens(message.content),
            "usage_estimated": True,
            "outcome": UsageRecord.Outcome.PARTIAL if message.content else UsageRecord.Outcome.ERROR,
            "finish_reason": "interrupted",
        })
    return len(stale)
