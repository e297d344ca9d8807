"""Routing signals: what a user's actions say about an answer's route, kept with the router's decision and the texts
it read, for the dashboard and for retraining the router.

Forced routes, early stops and escalations are read off the answers as they are saved (what the socket asked for
and how the answer ended), in the same transaction; thumbs come from the socket's `feedback` frame.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from pam_hybrid.conversations.branches import Tree
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.exceptions import MessageNotFound, PamError
from pam_hybrid.models import Message, RoutingSignal, UsageRecord

TEXT_CHARS = 4000
HISTORY_CHARS = 1000
HISTORY_TURNS = 4
FORCED = ("simple", "complex")
THUMBS = {"up": RoutingSignal.Kind.THUMBS_UP, "down": RoutingSignal.Kind.THUMBS_DOWN}
THUMB_KINDS = tuple(THUMBS.values())


def signal_texts(asked: Sequence[str]) -> tuple[str, list[str]]:
    """The user's message and up to HISTORY_TURNS turns before it (oldest first), truncated for keeping."""
    if not asked:
        return "", []
    *before, text = asked
    return text[:TEXT_CHARS], [turn[:HISTORY_CHARS] for turn in before[-HISTORY_TURNS:]]


@dataclass(frozen=True, slots=True)
class Saved:
    """An answer just saved with its usage record."""

    user: AbstractBaseUser
    answer: Answer
    record: UsageRecord


def _signal(saved: Saved, kind: str, **fields: object) -> RoutingSignal:
    answer, record = saved.answer, saved.record
    text, history = signal_texts(answer.asked)
    values: dict[str, object] = {
        "user_id": saved.user.pk, "message_id": record.message_id, "usage_record": record, "kind": kind,
        "route": answer.route, "route_requested": answer.route_requested, "routing": answer.routing,
        "text": text, "history": history, **fields,
    }
    return RoutingSignal(**values)


def answer_signals(saves: Sequence[Saved]) -> list[RoutingSignal]:
    """The signals these saved answers give: a route forced on a message, a stop before the end, and a new version
    asked for on the other route than the answer it replaces (a signal about that answer: escalated to complex,
    de-escalated to simple). One read, for the replaced answers; nothing is written here."""
    signals: list[RoutingSignal] = []
    for saved in saves:
        answer = saved.answer
        if answer.regenerate_of is None and answer.route_requested in FORCED:
            signals.append(_signal(saved, RoutingSignal.Kind.FORCED_ROUTE))
        if answer.outcome == UsageRecord.Outcome.CANCELLED and answer.cancel_reason == "cancelled":
            signals.append(_signal(saved, RoutingSignal.Kind.STOPPED_EARLY))
    moved = {s.answer.regenerate_of: s for s in saves
             if s.answer.regenerate_of is not None and s.answer.route_requested in FORCED}
    if moved:
        replaced = Message.objects.filter(id__in=list(moved)).select_related("usage").only(
            "id", "route", "usage__id", "usage__route_requested", "usage__routing", "usage__created_at",
        )
        for old in replaced:
            signal = _move_signal(moved[old.id], old)
            if signal is not None:
                signals.append(signal)
    return signals


def _move_signal(saved: Saved, old: Message) -> RoutingSignal | None:
    """The user asked `old` again on another route: escalated (to complex) or de-escalated (to simple)."""
    route_to = saved.answer.route_requested
    if route_to == old.route or not old.route:
        return None
    usage = getattr(old, "usage", None)
    text, history = signal_texts(saved.answer.asked)
    kind = RoutingSignal.Kind.ESCALATED if route_to == "complex" else RoutingSignal.Kind.DE_ESCALATED
    return RoutingSignal(
        user_id=saved.user.pk, message_id=old.id, usage_record=usage, kind=kind, route=old.route, route_to=route_to,
        route_requested=usage.route_requested if usage is not None else "",
        routing=usage.routing if usage is not None else {}, text=text, history=history,
    )


class AnswerUnfinished(PamError):
    """The answer is still streaming: it cannot be rated yet."""

    user_message = "That answer is still being written: rate it once it has finished."


@transaction.atomic
def answer_feedback_set(*, user: AbstractBaseUser, message_id: uuid.UUID, value: str | None) -> str | None:
    """Rate one of the user's answers "up" or "down" (replacing an earlier rating), or clear it (None); returns the
    value stored. Raises MessageNotFound if it is not the user's answer, AnswerUnfinished while it streams."""
    answer = (
        Message.objects.select_for_update(of=("self",))  # two ratings at once: one after the other
        .filter(id=message_id, role=Message.Role.ASSISTANT, conversation__owner_id=user.pk)
        .select_related("usage").first()
    )
    if answer is None:
        raise MessageNotFound(f"{message_id} is not an answer of user {user.pk}")
    if answer.status == Message.Status.STREAMING:
        raise AnswerUnfinished(str(message_id))
    RoutingSignal.objects.filter(user_id=user.pk, message=answer, kind__in=THUMB_KINDS).delete()
    if value is None:
        return None
    usage: UsageRecord | None = getattr(answer, "usage", None)
    text, history = signal_texts(_asked(answer))
    RoutingSignal.objects.create(
        user_id=user.pk, message=answer, usage_record=usage, kind=THUMBS[value], route=answer.route,
        route_requested=usage.route_requested if usage is not None else "",
        routing=usage.routing if usage is not None else {}, text=text, history=history,
    )
    return value


def _asked(answer: Message) -> list[str]:
    """The texts of the branch up to the answer's user message (usable turns only, as the model saw them)."""
    tree = Tree(list(
        Message.objects.filter(conversation_id=answer.conversation_id)
        .only("id", "parent_id", "role", "content", "status", "created_at").order_by("created_at", "id")
    ))
    path = tree.path_to(tree.parent_of(answer.id))
    return [m.content for m in path if m.content and m.status not in (Message.Status.ERROR, Message.Status.STREAMING)]


def conversation_signals_forget(*, conversation_id: uuid.UUID) -> None:
    """Blank the texts of the signals about a conversation's answers (it is being deleted); their counts stay."""
    RoutingSignal.objects.filter(message__conversation_id=conversation_id).update(text="", history=[])
