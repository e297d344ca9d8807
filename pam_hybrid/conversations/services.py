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

from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations.branches import Tree
from pam_hybrid.conversations.routing_signals import Saved, answer_signals, conversation_signals_forget
from pam_hybrid.conversations.selectors import conversation_get_for_user
from pam_hybrid.conversations.titles import title_from_message
from pam_hybrid.domain.answer import Answer, ModelCall
from pam_hybrid.domain.chunks import ChatTurn, Usage
from pam_hybrid.domain.context import fit_to_budget
from pam_hybrid.domain.exceptions import MessageNotFound
from pam_hybrid.models import Conversation, Message, ModelCallRecord, RoutingSignal, UsageRecord
from pam_hybrid.pricing import call_cost
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.tokens import estimate_input_tokens, estimate_output_tokens
from pam_hybrid.tools.registry import all_tools

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
    """Delete the conversation and its messages; their usage records and routing signals stay, without them (see
    UsageRecord.message), and the signals lose the texts they kept."""
    conversation_signals_forget(conversation_id=conversation.id)
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
    """The user's message and its finished answer with its usage (and any routing signals it gives), in one
    transaction of four statements (more for signals): for an answer no provider ever accepted (every breaker open,
    every attempt refused, a stop before it began), written as it ended."""
    written = _exchange_rows([Exchange(user, answer, content)], finished=True)
    record = _usage_record(user, answer, kept=bool(written))
    record.save(force_insert=True)
    ModelCallRecord.objects.bulk_create(_call_rows(record, answer.calls))
    RoutingSignal.objects.bulk_create(answer_signals([Saved(user, answer, record)]))
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
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
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
        route_requested=answer.route_requested,
        routing=answer.routing,
    )


def _call_rows(record: UsageRecord, calls: Sequence[ModelCall]) -> list[ModelCallRecord]:
    """One row per provider call of the answer, in the order they were made."""
    return [
        ModelCallRecord(
            usage_record=record, position=position, round=call.round, provider=call.provider, model=call.model,
            input_tokens=call.usage.uncached_input_tokens, output_tokens=call.usage.output_tokens,
            cache_read_tokens=call.usage.cached_input_tokens, cache_write_5m_tokens=call.usage.cache_write_5m_tokens,
            cache_write_1h_tokens=call.usage.cache_write_1h_tokens, reasoning_tokens=call.usage.reasoning_tokens,
            cost_usd=call.cost_usd, basis=call.basis, usage_estimated=call.usage.estimated, accepted=call.accepted,
            ended=call.ended,
            finish_reason=call.finish_reason[:40], error=call.error[:300], started_at=call.started_at,
            duration_ms=call.duration_ms,
        )
        for position, call in enumerate(calls)
    ]


@transaction.atomic
def answers_save(*, saves: Sequence[AnswerSave]) -> None:
    """Save each answer over its placeholder with its usage record and a row per provider call, and touch its
    conversation: one transaction, with one statement each for all the usage records, all their calls and all the
    conversations (and one more to replace the calls of any answer the sweep had estimated), then the routing
    signals the answers give (see routing_signals.answer_signals)."""
    now = timezone.now()
    kept = [_message_update(save.answer, now) for save in saves]
    # An upsert: the sweep may have written an estimate for an answer whose process looked dead. An answer whose
    # conversation was deleted while it streamed keeps its usage record (what it cost still counts), without it.
    records = UsageRecord.objects.bulk_create(
        [_usage_record(save.user, save.answer, kept=k) for save, k in zip(saves, kept, strict=True)],
        update_conflicts=True, unique_fields=["message"],
        update_fields=_USAGE_FIELDS_ON_CONFLICT,
    )
    ModelCallRecord.objects.filter(usage_record__in=[r.pk for r in records]).delete()  # a sweep's estimate
    ModelCallRecord.objects.bulk_create(
        [row for record, save in zip(records, saves, strict=True) for row in _call_rows(record, save.answer.calls)]
    )
    RoutingSignal.objects.bulk_create(
        answer_signals([Saved(save.user, save.answer, record) for record, save in zip(records, saves, strict=True)])
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
def stale_answers_sweep(*, older_than: timedelta, sparing: Collection[uuid.UUID] = (),
                        only: Collection[uuid.UUID] | None = None) -> int:
    """Mark answers left `streaming` by a crashed process (no heartbeat for `older_than`) as interrupted: partial
    if some text was saved, error if none, with an estimated usage record (see `_swept_call`). The answers in
    `sparing` (this process's own, alive whatever their heartbeat says) are left alone; `only`: just these (an answer
    whose process is known dead, settled at once by pam_hybrid.runtime.saved). Returns how many were marked."""
    stale = list(
        Message.objects.select_for_update(skip_locked=True)
        .filter(status=Message.Status.STREAMING, updated_at__lt=timezone.now() - older_than)
        .exclude(id__in=list(sparing))
        .filter(**({} if only is None else {"id__in": list(only)}))
        .select_related("conversation")
    )
    for message in stale:
        call = _swept_call(message)  # before the save: its updated_at is the last heartbeat
        message.status = Message.Status.PARTIAL if message.content else Message.Status.ERROR
        message.finish_reason = "interrupted"
        message.error = INTERRUPTED_ERROR
        message.save(update_fields=["status", "finish_reason", "error", "updated_at"])
        record, created = UsageRecord.objects.get_or_create(message=message, defaults={
            "user_id": message.conversation.owner_id,
            "route": message.route,
            "provider": message.provider,
            "model": message.model,
            "input_tokens": call.usage.input_tokens,
            "output_tokens": call.usage.output_tokens,
            "model_calls": [call.as_record()],
            "usage_estimated": True,
            "cost_usd": call.cost_usd,
            "outcome": UsageRecord.Outcome.PARTIAL if message.content else UsageRecord.Outcome.ERROR,
            "finish_reason": "interrupted",
        })
        if created:
            ModelCallRecord.objects.bulk_create(_call_rows(record, [call]))
    return len(stale)


def _swept_call(message: Message) -> ModelCall:
    """The estimate of what a crashed answer's provider call cost: the input from the context its process sent
    (the branch up to its user message, within the context budget, with the tools on offer), the output from the
    text saved at its last checkpoint, priced at the answer's model when it started. Tool rounds or retries it
    made before the crash are not known: it counts as one call."""
    settings = pam_settings()
    tree = _tree(message.conversation_id)
    question = tree.get(message.parent_id) if message.parent_id is not None else None
    turns: tuple[ChatTurn, ...] = ()
    if question is not None:
        history = _turns(tree.path_to(tree.parent_of(question.id)))
        turns = fit_to_budget(history, ChatTurn("user", question.content), settings.context_token_budget)
    tools = tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in all_tools()) if (
        settings.tools_enabled) else ()
    request = ModelRequest(model=message.model, turns=turns, max_output_tokens=settings.max_output_tokens, tools=tools)
    usage = Usage(
        input_tokens=estimate_input_tokens(message.provider, message.model, request),
        output_tokens=estimate_output_tokens(message.provider, message.model, message.content),
        estimated=True,
    )
    return ModelCall(
        provider=message.provider, model=message.model, usage=usage,
        cost_usd=call_cost(message.model, usage, message.created_at), ended="crashed", started_at=message.created_at,
        duration_ms=round((message.updated_at - message.created_at).total_seconds() * 1000, 1),
        error="the process serving it stopped",
    )
