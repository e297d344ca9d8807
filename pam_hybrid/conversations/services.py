"""Writes, as small transactional functions called from async code through `database_sync_to_async`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from pam_hybrid.conversations.branches import Tree
from pam_hybrid.conversations.selectors import conversation_get_for_user
from pam_hybrid.conversations.titles import title_from_message
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.domain.context import estimate_tokens
from pam_hybrid.domain.exceptions import MessageNotFound
from pam_hybrid.models import Conversation, Message, UsageRecord

REPLAY_TITLE_CHARS = 200  # Conversation.title's max_length

_USAGE_FIELDS_ON_CONFLICT = [
    f.name for f in UsageRecord._meta.concrete_fields if f.name not in ("id", "message", "created_at")
]


def _storable(text: str) -> str:
    """Model output as the database can hold it: PostgreSQL's text columns refuse NUL, which a model may emit."""
    return text.replace("\x00", "\ufffd")
HISTORY_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Place:
    """Where a new answer goes in a conversation, and what the model sees of the branch leading to it."""

    conversation_id: uuid.UUID
    user_parent_id: uuid.UUID | None
    """The message the user's message follows (for a regenerate: the one its saved user message follows)."""
    turns: list[ChatTurn]
    """The usable turns of the branch up to the user's message (not included), oldest first."""
    question: Message | None = None
    """For a regenerate: the user's message, saved already, that the new answer answers."""


def _tree(conversation_id: uuid.UUID) -> Tree:
    return Tree(list(
        Message.objects.filter(conversation_id=conversation_id)
        .only("id", "parent_id", "role", "content", "status", "created_at")
        .order_by("created_at", "id")
    ))


def _turns(path: Sequence[Message]) -> list[ChatTurn]:
    """The path's messages a model can read (no errors, no answers still streaming, no empty ones), the most
    recent HISTORY_LIMIT of them."""
    usable = [
        m for m in path
        if m.content and m.status not in (Message.Status.ERROR, Message.Status.STREAMING)
    ]
    return [
        ChatTurn(role="user" if m.role == "user" else "assistant", content=m.content)
        for m in usable[-HISTORY_LIMIT:]
    ]


def conversation_history(
    *, user: AbstractBaseUser, conversation_id: str, edit_of: uuid.UUID | None = None
) -> Place | None:
    """Where the user's next message goes: after the branch's last message, or (`edit_of`) beside the user message
    it is a new version of; None if the user has no such conversation. Raises MessageNotFound for an `edit_of` that
    is not a user message of the conversation."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation is None:
        return None
    tree = _tree(conversation.id)
    if edit_of is None:
        parent_id = tree.leaf(conversation.current_leaf_id)
    else:
        edited = tree.get(edit_of)
        if edited is None or edited.role != Message.Role.USER:
            raise MessageNotFound(f"edit_of {edit_of} is not a user message of {conversation.id}")
        parent_id = tree.parent_of(edited.id)
    return Place(conversation.id, parent_id, _turns(tree.path_to(parent_id)))


def regeneration_place(*, user: AbstractBaseUser, answer_id: uuid.UUID) -> Place:
    """Where a new version of the user's answer `answer_id` goes: beside it, answering the same user message with
    the branch up to that message as context. Raises MessageNotFound if it is not one of the user's answers."""
    answer = (
        Message.objects.filter(id=answer_id, role=Message.Role.ASSISTANT, conversation__owner_id=user.pk)
        .only("id", "conversation_id").first()
    )
    if answer is None:
        raise MessageNotFound(f"{answer_id} is not an answer of user {user.pk}")
    tree = _tree(answer.conversation_id)
    question = tree.get(tree.parent_of(answer.id))
    if question is None or question.role != Message.Role.USER:
        raise MessageNotFound(f"answer {answer_id} follows no user message")
    parent_id = tree.parent_of(question.id)
    return Place(answer.conversation_id, parent_id, _turns(tree.path_to(parent_id)), question=question)


def conversation_replay_create(*, original: Conversation) -> Conversation:
    """The empty conversation a replay of `original` is answered into: the same owner (so its turns behave exactly as
    theirs would), linked to the original, and titled after it."""
    title = f"Replay of {original.title or original.id}"[:REPLAY_TITLE_CHARS]
    return Conversation.objects.create(owner_id=original.owner_id, title=title, replay_of=original)


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Give the conversation the user's title (already validated); its place in the list does not change."""
    Conversation.objects.filter(id=conversation.id).update(title=title)
    conversation.title = title
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation and its messages; their usage records stay, without them (see UsageRecord.message)."""
    conversation.delete()


def conversation_branch_select(*, conversation: Conversation, message_id: uuid.UUID) -> bool:
    """Make the branch through `message_id` the one the user sees, continuing to its newest leaf; False if the
    message is not in the conversation."""
    tree = _tree(conversation.id)
    if tree.get(message_id) is None:
        return False
    leaf = tree.newest_leaf_under(message_id)
    Conversation.objects.filter(id=conversation.id).update(current_leaf_id=leaf)
    conversation.current_leaf_id = leaf
    return True


@dataclass(frozen=True, slots=True)
class Exchange:
    """A user's message and the answer it is getting, as saved when the provider accepts the request."""

    user: AbstractBaseUser
    answer: Answer
    content: str


def _open_conversations(exchanges: Sequence[Exchange]) -> set[uuid.UUID]:
    """Create each new conversation (titled after its first message) and make each exchange's answer its
    conversation's current leaf: one statement for the new ones, one for the existing ones. Returns the
    conversations that exist (an existing one may have been deleted since the gateway read it)."""
    leaves = {e.answer.conversation_id: e.answer.message_id for e in exchanges}  # the last exchange wins
    new = {
        e.answer.conversation_id: Conversation(
            id=e.answer.conversation_id, owner_id=e.user.pk, title=title_from_message(e.content),
            current_leaf_id=leaves[e.answer.conversation_id],
        )
        for e in reversed(exchanges) if e.answer.conversation_new
    }
    if new:
        Conversation.objects.bulk_create(list(new.values()), ignore_conflicts=True)
    existing = set(leaves) - set(new)
    if not existing:
        return set(leaves)
    updated = Conversation.objects.filter(id__in=existing).update(
        current_leaf_id=Case(*(When(id=cid, then=Value(leaves[cid])) for cid in existing))
    )
    if updated < len(existing):
        existing = set(Conversation.objects.filter(id__in=existing).values_list("id", flat=True))
    return set(new) | existing


def _exchange_rows(exchanges: Sequence[Exchange], *, finished: bool) -> set[uuid.UUID]:
    """Insert each exchange's conversation (if new), user message (unless it is a regenerate's, saved already) and
    answer row: two statements for the lot. The answer row is a `streaming` placeholder, or (`finished`) the answer
    as it ended, and becomes its conversation's current leaf. Returns the answers written: none for a conversation
    deleted meanwhile.

    An existing conversation id is the user's own (the gateway read its history first); a new one is a fresh uuid4,
    so nothing is taken over."""
    conversations = _open_conversations(exchanges)
    messages: list[Message] = []
    written: set[uuid.UUID] = set()
    for e in exchanges:
        answer = e.answer
        if answer.conversation_id not in conversations:
            continue
        written.add(answer.message_id)
        reply = Message(
            id=answer.message_id, conversation_id=answer.conversation_id, role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING, route=answer.route, provider=answer.provider, model=answer.model,
            client_msg_id=answer.client_msg_id, reply_to_id=answer.user_message_id, parent_id=answer.user_message_id,
        )
        if finished:
            reply.content, reply.status, reply.finish_reason, reply.error = (
                _storable(answer.text), answer.status, answer.finish_reason, answer.error
            )
            reply.tool_calls, reply.stream_log = answer.tool_log, answer.stream_log
        if answer.user_message_new:
            messages.append(Message(
                id=answer.user_message_id, conversation_id=answer.conversation_id, role=Message.Role.USER,
                content=e.content, client_msg_id=answer.client_msg_id, parent_id=answer.user_parent_id,
            ))
        messages.append(reply)
    Message.objects.bulk_create(messages)
    return written


@transaction.atomic
def exchanges_open(*, exchanges: Sequence[Exchange]) -> None:
    """Save each user's message and a `streaming` placeholder for its answer, creating each new conversation (titled
    after its message). From here on each user message always has an answer row."""
    _exchange_rows(exchanges, finished=False)


@transaction.atomic
def exchange_save(*, user: AbstractBaseUser, answer: Answer, content: str) -> None:
    """The user's message and its finished answer with its usage, in one transaction of four statements: for an
    answer no provider ever accepted (every breaker open, every attempt refused), written as it ended."""
    written = _exchange_rows([Exchange(user, answer, content)], finished=True)
    _usage_record(user, answer, kept=bool(written)).save(force_insert=True)
    Conversation.objects.filter(id=answer.conversation_id).update(updated_at=timezone.now())


@dataclass(frozen=True, slots=True)
class AnswerSave:
    """A finished answer (whatever its outcome) and the user it answered."""

    user: AbstractBaseUser
    answer: Answer


def _message_update(answer: Answer, now: datetime) -> bool:
    """Save the answer over its row; False if the row is gone (its conversation was deleted)."""
    return Message.objects.filter(id=answer.message_id).update(
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
    ) > 0


def _usage_record(user: AbstractBaseUser, answer: Answer, *, kept: bool = True) -> UsageRecord:
    """The answer's usage record; without its message when the answer's row is gone (`kept` False)."""
    usage = answer.usage
    return UsageRecord(
        message_id=answer.message_id if kept else None,
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
    kept = [_message_update(save.answer, now) for save in saves]
    # An upsert: the sweep may have written an estimate for an answer whose process looked dead. An answer whose
    # conversation was deleted while it streamed keeps its usage record (what it cost still counts), without it.
    UsageRecord.objects.bulk_create(
        [_usage_record(save.user, save.answer, kept=k) for save, k in zip(saves, kept, strict=True)],
        update_conflicts=True, unique_fields=["message"],
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
