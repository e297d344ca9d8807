"""The what-if audit re-classifies logged user messages without calling a model: its counts, what it leaves out,
and the exact Decimal cost difference, through the function and the `pam_router audit` command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from pam_hybrid.domain.routes import Route
from pam_hybrid.models import Message, UsageRecord
from pam_hybrid.routing.audit import audit
from pam_hybrid.routing.model import Model
from tests.support.factories import conversation_create, message_create, user_create

pytestmark = pytest.mark.django_db
FACT_MODEL = Model(named={"fact_question": -20.0}, hashed={}, bias=10.0, threshold=0.5, version="facts")
MODELS: dict[Route, str] = {"simple": "gpt-4o-mini", "complex": "claude-sonnet-5-5"}


def _answered(owner: Any, question: str, *, route: str, requested: str, cost: str | None, input_tokens: int,
              output_tokens: int, cached: int = 0, days_ago: int = 0, parent: Message | None = None) -> Message:
    conversation = parent.conversation if parent is not None else conversation_create(owner=owner)
    asked = message_create(conversation=conversation, content=question)
    if parent is not None:
        Message.objects.filter(pk=asked.pk).update(parent=parent)
    model = MODELS["simple" if route == "simple" else "complex"]
    answer = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, content="an answer",
                                    parent=asked, reply_to=asked, route=route, model=model)
    record = UsageRecord.objects.create(
        message=answer, user=owner, route=route, provider="openai" if route == "simple" else "anthropic", model=model,
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached,
        cost_usd=None if cost is None else Decimal(cost), outcome="complete", route_requested=requested,
    )
    if days_ago:
        UsageRecord.objects.filter(pk=record.pk).update(created_at=datetime.now(UTC) - timedelta(days=days_ago))
    return answer


@pytest.fixture
def logged() -> dict[str, Message]:
    owner = user_create(username="audited")
    first = _answered(owner, "design a ledger", route="simple", requested="auto", cost="0.00045",
                      input_tokens=1000, output_tokens=500)
    return {
        "to_complex": first,
        "stays": _answered(owner, "prove it", route="complex", requested="auto", cost="0.007", input_tokens=1000,
                           output_tokens=500, parent=first),
        "forced": _answered(owner, "write an essay", route="simple", requested="simple", cost="0.0002",
                            input_tokens=100, output_tokens=100),
        "unrecorded": _answered(owner, "plan a migration", route="simple", requested="", cost="0.0001",
                                input_tokens=200, output_tokens=100, cached=100),
        "to_simple": _answered(owner, "what is the capital of peru", route="complex", requested="auto",
                               cost="0.0021", input_tokens=100, output_tokens=200),
        "old": _answered(owner, "design another ledger", route="simple", requested="auto", cost="0.1",
                         input_tokens=10, output_tokens=10, days_ago=10),
    }


def test_the_audit_counts_changes_and_reprices_them_at_the_other_route(logged: dict[str, Message]) -> None:
    result = audit(since=datetime.now(UTC) - timedelta(days=7), threshold=0.5, model=FACT_MODEL, route_models=MODELS)
    assert (result.examined, result.forced, result.request_unrecorded) == (4, 1, 1)
    assert (result.to_complex, result.to_simple, result.unknown_cost) == (2, 1, 0)
    # Then: 0.00045 + 0.0001 + 0.0021. After, at claude-sonnet-5-5 ($2 in, $0.10 cache read, $10 out per million):
    # 1000 in + 500 out = 0.007; 200 in + 100 cached + 100 out = 0.00141; at gpt-4o-mini ($0.15 in, $0.60 out):
    # 100 in + 200 out = 0.000135.
    assert result.cost_then == Decimal("0.00265")
    assert result.cost_after == Decimal("0.008545")
    assert result.difference == Decimal("0.005895")


def test_an_unknown_cost_is_counted_apart(logged: dict[str, Message]) -> None:
    UsageRecord.objects.filter(message=logged["to_simple"]).update(cost_usd=None)
    result = audit(since=datetime.now(UTC) - timedelta(days=7), threshold=0.5, model=FACT_MODEL, route_models=MODELS)
    assert result.unknown_cost == 1 and result.cost_then == Decimal("0.00055")


def test_the_command_prints_the_counts_and_the_difference(logged: dict[str, Message], settings: Any) -> None:
    settings.PAM_SIMPLE_MODEL, settings.PAM_COMPLEX_MODEL = MODELS["simple"], MODELS["complex"]
    out = StringIO()
    # Threshold 0 sends every message complex, whatever the shipped model says.
    call_command("pam_router", "audit", "--days", "7", "--threshold", "0", stdout=out)
    text = out.getvalue()
    cells = [line.split("│") for line in text.splitlines() if line.count("│") == 3]
    lines = {row[1].strip(): row[2].strip() for row in cells}
    assert lines["re-classified"] == "4" and lines["left out: route forced by the user"] == "1"
    assert lines["would go simple → complex"] == "2" and lines["would go complex → simple"] == "0"
    assert "(may have been forced)" in text
    # Changed: "design a ledger" (0.00045 -> 0.007) and "plan a migration" (0.0001 -> 0.00141).
    assert "a difference of +$0.00786000" in text
