"""Staff reads for replay_conversation: any user's conversation by id, its user turns with what answered them, and
one answer as saved. Not scoped to a user: never call these from a user-facing view."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from pam_hybrid.models import Conversation, Message, UsageRecord


@dataclass(frozen=True, slots=True)
class SavedAnswer:
    """An assistant message with its usage record (None when it has none, e.g. an answer never finished)."""

    message: Message
    usage: UsageRecord | None


@dataclass(frozen=True, slots=True)
class UserTurn:
    """One user message and its answer as saved, if any."""

    question: Message
    answer: SavedAnswer | None


def conversation_get(*, conversation_id: str) -> Conversation | None:
    """The conversation with its owner, whoever owns it; None for an unknown or malformed id."""
    try:
        return Conversation.objects.select_related("owner").get(id=conversation_id)
    except (Conversation.DoesNotExist, ValidationError, ValueError):
        return None


def _with_usage(message: Message) -> SavedAnswer:
    try:
        usage: UsageRecord | None = message.usage
    except UsageRecord.DoesNotExist:
        usage = None
    return SavedAnswer(message=message, usage=usage)


def conversation_user_turns(*, conversation: Conversation) -> list[UserTurn]:
    """Every user message, oldest first, each with its first answer (the assistant message that replies to it)."""
    messages = list(
        Message.objects.filter(conversation=conversation).select_related("usage").order_by("created_at", "id")
    )
    answers: dict[uuid.UUID, Message] = {}
    for message in messages:
        if message.role == Message.Role.ASSISTANT and message.reply_to_id is not None:
            answers.setdefault(message.reply_to_id, message)
    return [
        UserTurn(question=message, answer=_answer(answers.get(message.id)))
        for message in messages
        if message.role == Message.Role.USER
    ]


def _answer(message: Message | None) -> SavedAnswer | None:
    return None if message is None else _with_usage(message)


def answer_get(*, message_id: uuid.UUID) -> SavedAnswer | None:
    """One answer as saved, whatever its status; None if no such row exists."""
    message = Message.objects.filter(id=message_id, role=Message.Role.ASSISTANT).select_related("usage").first()
    return None if message is None else _with_usage(message)
