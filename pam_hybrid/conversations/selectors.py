"""Reads, always scoped to the requesting user."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from pam_hybrid.models import Conversation, Message


def conversation_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The user's conversations for the chat sidebar: replays (replay_conversation) are left out, though their
    owner can still open one by id."""
    return Conversation.objects.filter(owner_id=user.pk, replay_of__isnull=True)


def conversation_get_for_user(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str) -> Conversation | None:
    try:
        return Conversation.objects.get(owner_id=user.pk, id=conversation_id)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


def message_list_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation).select_related("usage").order_by("created_at")


def answer_get_for_user(*, user: AbstractBaseUser, message_id: uuid.UUID) -> Message | None:
    """One of the user's assistant answers, whatever its status."""
    return (
        Message.objects.filter(id=message_id, role=Message.Role.ASSISTANT, conversation__owner_id=user.pk)
        .only("id", "content", "status", "stream_log")
        .first()
    )


def answer_id_for_client_msg_id(*, user: AbstractBaseUser, client_msg_id: str) -> uuid.UUID | None:
    """The answer to the user's message sent with this client id, if one was saved."""
    return (
        Message.objects.filter(
            client_msg_id=client_msg_id, role=Message.Role.ASSISTANT, conversation__owner_id=user.pk
        ).values_list("id", flat=True).first()
    )
