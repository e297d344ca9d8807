"""Reads, always scoped to the requesting user."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from pam_hybrid.conversations.branches import Tree
from pam_hybrid.models import Conversation, Message, RoutingSignal


def conversation_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The user's conversations for the chat sidebar: replays (replay_conversation) are left out, though their
    owner can still open one by id."""
    return Conversation.objects.filter(owner_id=user.pk, replay_of__isnull=True)


class BadCursor(ValueError):
    """A page cursor this server did not make."""


def _cursor(conversation: Conversation) -> str:
    raw = f"{conversation.updated_at.isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after_cursor(cursor: str) -> Q:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, conversation_id = raw.split("|")
        updated_at, after_id = datetime.fromisoformat(stamp), uuid.UUID(conversation_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(cursor) from exc
    return Q(updated_at__lt=updated_at) | Q(updated_at=updated_at, id__lt=after_id)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[Conversation]
    next_cursor: str | None
    """Where the next page starts; None on the last page."""


def conversation_page_for_user(
    *, user: AbstractBaseUser, query: str = "", cursor: str | None = None, limit: int = 30
) -> ConversationPage:
    """One page of the user's sidebar, newest first (ties by id, so paging reaches every conversation once);
    `query` keeps those whose title or some message contains it (case-insensitive). Raises BadCursor."""
    conversations = conversation_list_for_user(user=user)
    if query:
        contents = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=query)
        conversations = conversations.filter(Q(title__icontains=query) | Exists(contents))
    if cursor:
        conversations = conversations.filter(_after_cursor(cursor))
    rows = list(conversations.order_by("-updated_at", "-id").only("id", "title", "updated_at")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return ConversationPage(rows, _cursor(rows[-1]) if more else None)


def conversation_get_for_user(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str) -> Conversation | None:
    try:
        return Conversation.objects.get(owner_id=user.pk, id=conversation_id)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


def message_list_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    """The conversation's messages with their usage and, as `feedback`, the owner's thumbs kind (or None)."""
    thumbs = RoutingSignal.objects.filter(
        message=OuterRef("pk"), kind__in=(RoutingSignal.Kind.THUMBS_UP, RoutingSignal.Kind.THUMBS_DOWN)
    ).values("kind")[:1]
    return (
        Message.objects.filter(conversation=conversation).select_related("usage")
        .annotate(feedback=Subquery(thumbs)).order_by("created_at", "id")
    )


@dataclass(frozen=True, slots=True)
class Branch:
    """The branch the user sees (root → current leaf), with every message's versions."""

    messages: list[Message]
    siblings: dict[uuid.UUID, list[uuid.UUID]]
    parents: dict[uuid.UUID, uuid.UUID | None]


def conversation_tree(*, conversation: Conversation) -> Tree:
    """Every message of the conversation with its usage, as a tree (one query)."""
    return Tree(list(message_list_for_conversation(conversation=conversation)))


def conversation_branch(*, conversation: Conversation) -> Branch:
    tree = conversation_tree(conversation=conversation)
    path = tree.path_to(tree.leaf(conversation.current_leaf_id))
    return Branch(
        messages=path,
        siblings={m.id: tree.siblings(m.id) for m in path},
        parents={m.id: tree.parent_of(m.id) for m in path},
    )


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


def conversation_streaming_answer_ids(*, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    """The conversation's answers still streaming, in whichever server process runs them."""
    return list(Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING,
    ).values_list("id", flat=True))
