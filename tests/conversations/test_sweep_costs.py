"""The crash sweep prices an answer whose process died: input from the context that process sent, output from the
text saved at its last checkpoint, at the answer's model; flagged estimated, never cost null and input 0. And an
answer saved after all (its process was only slow) replaces the estimate with its own calls."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import services
from pam_hybrid.domain.answer import Answer, ModelCall
from pam_hybrid.domain.chunks import ChatTurn, Usage
from pam_hybrid.models import Conversation, Message, ModelCallRecord, UsageRecord
from pam_hybrid.pricing import call_cost
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.tokens import estimate_input_tokens, estimate_output_tokens
from pam_hybrid.tools.registry import all_tools

pytestmark = [pytest.mark.django_db]

SONNET = "claude-sonnet-5-5"
EARLIER_Q, EARLIER_A = "Where is the Louvre?", "In Paris, on the right bank of the Seine."
QUESTION = "And how long does a visit take?"
CHECKPOINTED = "A first visit to the Louvre usually takes three to four hours, and"


def crashed_answer(user: Any) -> Message:
    """A conversation whose second answer was streaming when its process died, its heartbeat ten minutes old."""
    conversation = Conversation.objects.create(owner=user, title="Louvre")
    asked = Message.objects.create(conversation=conversation, role="user", content=EARLIER_Q)
    answered = Message.objects.create(conversation=conversation, role="assistant", content=EARLIER_A, parent=asked,
                                      provider="anthropic", model=SONNET)
    question = Message.objects.create(conversation=conversation, role="user", content=QUESTION, parent=answered)
    answer = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", content=CHECKPOINTED, parent=question,
        reply_to=question, route="complex", provider="anthropic", model=SONNET,
    )
    Message.objects.filter(id=answer.id).update(updated_at=timezone.now() - timedelta(minutes=10))
    answer.refresh_from_db()
    return answer


def test_a_crashed_answer_is_priced_as_an_estimate_from_its_context_and_checkpoint(user: Any) -> None:
    answer = crashed_answer(user)
    assert services.stale_answers_sweep(older_than=timedelta(seconds=30)) == 1

    tools = tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in all_tools())
    sent = ModelRequest(model=SONNET, turns=(ChatTurn("user", EARLIER_Q), ChatTurn("assistant", EARLIER_A),
                                             ChatTurn("user", QUESTION)),
                        max_output_tokens=pam_settings().max_output_tokens, tools=tools)
    input_tokens = estimate_input_tokens("anthropic", SONNET, sent)
    output_tokens = estimate_output_tokens("anthropic", SONNET, CHECKPOINTED)
    # claude-sonnet-5-5: $2 input, $10 output per million
    cost = (Decimal(input_tokens) * 2 + Decimal(output_tokens) * 10) / 1_000_000
    assert input_tokens > 500 and output_tokens > 0  # the history and the tools on offer count, not just the text

    record = UsageRecord.objects.get(message=answer)
    [row] = ModelCallRecord.objects.filter(usage_record=record)
    assert (row.provider, row.model, row.ended, row.basis, row.usage_estimated) == (
        "anthropic", SONNET, "crashed", "estimated", True)
    assert (row.input_tokens, row.output_tokens) == (input_tokens, output_tokens)
    assert row.cost_usd == cost.quantize(Decimal("0.00000001")) and row.cost_usd > 0
    assert row.started_at == answer.created_at
    assert (record.input_tokens, record.output_tokens, record.cost_usd) == (input_tokens, output_tokens, row.cost_usd)
    assert record.usage_estimated and record.outcome == "partial" and record.finish_reason == "interrupted"


def test_an_answer_saved_after_its_sweep_replaces_the_estimate_with_its_calls(user: Any) -> None:
    message = crashed_answer(user)
    services.stale_answers_sweep(older_than=timedelta(seconds=30))
    answer = Answer(conversation_id=message.conversation_id, user_message_id=uuid.uuid4(), route="complex",
                    provider="anthropic", model=SONNET, client_msg_id="", classification_ms=0, message_id=message.id,
                    outcome="complete")
    usage = Usage(input_tokens=1000, output_tokens=50)
    answer.calls = [
        ModelCall("openai", "gpt-4o-mini", cost_usd=Decimal(0), ended="refused", accepted=False, refused=True),
        ModelCall("anthropic", SONNET, usage=usage, cost_usd=call_cost(SONNET, usage)),
    ]
    services.answers_save(saves=[services.AnswerSave(user, answer)])
    record = UsageRecord.objects.get(message=message)
    rows = list(record.calls.order_by("position"))
    assert [(r.provider, r.basis, r.cost_usd) for r in rows] == [
        ("openai", "refused", 0), ("anthropic", "reported", Decimal("0.0025"))]
    assert (record.input_tokens, record.cost_usd, record.usage_estimated) == (1000, Decimal("0.0025"), False)
