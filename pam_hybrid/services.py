"""Writes, as small transactional functions called from async code through `database_sync_to_async`."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from pam_hybrid.core.answer import Answer
from pam_hybrid.core.chunks import ChatTurn
from pam_hybrid.models import Conversation, Message, UsageRecord
from pam_hybrid.selectors import conversation_get_for_user

TITLE_CHARS = 80
HISTORY_LIMIT = 50


def conversation_history(*, user: AbstractBaseUser, conversation_id: str) -> list[ChatTurn] | None:
    """The conversation's recent usable turns, oldest first; None if the user has no such conversation."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation is None:
        return None
    rows = (
        Message.objects.filter(conversation=conversation)
        .exclude(status=Message.Status.ERROR)
        .exclude(content="")
        .order_by("-created_at")
        .values_list("role", "content")[:HISTORY_LIMIT]
    )
    return [
        ChatTurn(role="user" if role == "user" else "assistant", content=content) for role, content in reversed(rows)
    ]


@transaction.atomic
def user_message_create(
    *, user: AbstractBaseUser, conversation_id: uuid.UUID, message_id: uuid.UUID, content: str, client_msg_id: str
) -> None:
    """Save the user's message, creating its conversation (titled after the message) if it is new."""
    conversation, _ = Conversation.objects.get_or_create(
        id=conversation_id, owner_id=user.pk, defaults={"title": " ".join(content.split())[:TITLE_CHARS]}
    )
    Message.objects.create(
        id=message_id, conversation=conversation, role=Message.Role.USER, content=content, client_msg_id=client_msg_id
    )


@transaction.atomic
def answer_save(*, user: AbstractBaseUser, answer: Answer) -> None:
    """Save the assistant's answer (whatever its outcome) and its usage record."""
    message = Message.objects.create(
        id=answer.message_id,
        conversation_id=answer.conversation_id,
        role=Message.Role.ASSISTANT,
        content=answer.text,
        status=answer.status,
        route=answer.route,
        provider=answer.provider,
        model=answer.model,
        client_msg_id=answer.client_msg_id,
        reply_to_id=answer.user_message_id,
        finish_reason=answer.finish_reason,
        error=answer.error,
        tool_calls=answer.tool_log,
    )
    usage = answer.usage
    UsageRecord.objects.create(
        message=message,
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
    )
    Conversation.objects.filter(id=answer.conversation_id).update(updated_at=timezone.now())
