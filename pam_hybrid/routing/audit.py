"""What-if audit: re-classify the user messages answered in a period at another threshold, without calling any
model, and re-price each answer whose route would change at the other route's model.

An answer is counted once per usage record (a regenerated answer is a second record of the same message). Answers
whose route the user forced (`route_requested` simple or complex) are left out; those recorded before the request
was kept (empty `route_requested`) are re-classified but counted apart, as their route may have been forced.
The cost then is what the answer was charged (`cost_usd`); the cost after is its recorded token counts (uncached
input, cache reads and writes, output) priced at the other route's model on the day it was answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.routes import Route
from pam_hybrid.models import Message, UsageRecord
from pam_hybrid.pricing import call_cost
from pam_hybrid.routing.features import HISTORY_TURNS
from pam_hybrid.routing.model import Model

FORCED = ("simple", "complex")


@dataclass(slots=True)
class AuditResult:
    """The counts and money of one audit. `difference` is after minus then, over the changed answers whose both
    costs are known."""

    threshold: float
    examined: int = 0
    to_complex: int = 0
    to_simple: int = 0
    forced: int = 0
    request_unrecorded: int = 0
    cost_then: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)
    unknown_cost: int = 0
    changes: list[tuple[uuid.UUID, Route, Route]] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        return self.cost_after - self.cost_then


def _usage(record: UsageRecord) -> Usage:
    return Usage(
        input_tokens=record.input_tokens, output_tokens=record.output_tokens,
        cached_input_tokens=record.cached_input_tokens, cache_creation_input_tokens=record.cache_creation_input_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens, reasoning_tokens=record.reasoning_tokens,
    )


def _histories(records: Iterable[UsageRecord]) -> dict[uuid.UUID, tuple[str, ...]]:
    """Each answered user message's earlier turns (the branch up to it, at most HISTORY_TURNS texts, oldest first),
    read with one query for all their conversations."""
    records = list(records)
    conversations = {record.message.conversation_id for record in records if record.message is not None}
    rows = Message.objects.filter(conversation_id__in=conversations).values_list("id", "parent_id", "content")
    by_id = {row_id: (parent_id, content) for row_id, parent_id, content in rows}
    histories: dict[uuid.UUID, tuple[str, ...]] = {}
    for record in records:
        question_id = record.message.parent_id if record.message is not None else None
        if question_id is None or question_id in histories:
            continue
        texts: list[str] = []
        parent = by_id.get(question_id, (None, ""))[0]
        while parent is not None and len(texts) < HISTORY_TURNS:
            parent, content = by_id.get(parent, (None, ""))
            texts.append(content)
        histories[question_id] = tuple(reversed(texts))
    return histories


def audit(*, since: datetime, threshold: float, model: Model, route_models: Mapping[Route, str]) -> AuditResult:
    """Re-classify the user messages of every answer recorded since `since` at `threshold` (see the module)."""
    records = list(
        UsageRecord.objects.filter(created_at__gte=since, message__parent__role=Message.Role.USER)
        .select_related("message__parent").order_by("created_at")
    )
    histories = _histories(records)
    result = AuditResult(threshold=threshold)
    for record in records:
        if record.route_requested in FORCED:
            result.forced += 1
            continue
        result.request_unrecorded += record.route_requested == ""
        result.examined += 1
        question = record.message.parent if record.message is not None else None
        if question is None or record.route not in ("simple", "complex"):
            continue
        then: Route = "complex" if record.route == "complex" else "simple"
        now = model.classify(question.content, histories.get(question.id, ()), threshold).route
        if now == then:
            continue
        result.changes.append((question.id, then, now))
        if now == "complex":
            result.to_complex += 1
        else:
            result.to_simple += 1
        after = call_cost(route_models[now], _usage(record), record.created_at)
        if record.cost_usd is None or after is None:
            result.unknown_cost += 1
            continue
        result.cost_then += record.cost_usd
        result.cost_after += after
    return result
