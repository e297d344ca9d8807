"""Batched writes: exchanges accepted together, and answers ended together, are saved in one transaction each, and
a bad row fails only its own item."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError

from pam_hybrid.conversations import services
from pam_hybrid.conversations.batched_writes import BatchedWrites
from pam_hybrid.conversations.services import AnswerSave, Exchange
from pam_hybrid.domain.answer import Answer, ModelCall
from pam_hybrid.domain.chunks import Usage
from pam_hybrid.models import Conversation, Message, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def new_answer() -> Answer:
    return Answer(conversation_id=uuid.uuid4(), user_message_id=uuid.uuid4(), route="simple", provider="openai",
                  model="gpt-4o-mini", client_msg_id="", classification_ms=0.0)


@pytest.fixture
def batches() -> list[int]:
    return []


@pytest.fixture
def exchange_writes(batches: list[int]) -> BatchedWrites[Exchange]:
    """Writes exchanges through the real service, noting the size of every transaction."""

    def write(exchanges: Any) -> None:
        batches.append(len(exchanges))
        services.exchanges_open(exchanges=exchanges)

    return BatchedWrites[Exchange](write)


async def test_a_burst_is_saved_in_one_transaction(
    user: Any, batches: list[int], exchange_writes: BatchedWrites[Exchange]
) -> None:
    answers = [new_answer() for _ in range(20)]
    await asyncio.gather(*(
        exchange_writes.submit(Exchange(user, answer, f"question {i}")) for i, answer in enumerate(answers)
    ))
    assert batches == [20]
    rows = await database_sync_to_async(lambda: {
        m.id: (m.role, m.status, m.content, m.reply_to_id) for m in Message.objects.all()
    })()
    for i, answer in enumerate(answers):
        assert rows[answer.user_message_id] == ("user", "complete", f"question {i}", None)
        assert rows[answer.message_id] == ("assistant", "streaming", "", answer.user_message_id)
    titles = await database_sync_to_async(lambda: set(Conversation.objects.values_list("title", flat=True)))()
    assert titles == {f"question {i}" for i in range(20)}


async def test_items_queued_during_a_write_go_together_in_the_next(
    user: Any, batches: list[int], exchange_writes: BatchedWrites[Exchange]
) -> None:
    first = exchange_writes.submit(Exchange(user, new_answer(), "alone"))
    await asyncio.sleep(0)  # the first write has started: it took the one exchange queued
    later = [exchange_writes.submit(Exchange(user, new_answer(), f"later {i}")) for i in range(5)]
    await asyncio.gather(first, *later)
    assert batches == [1, 5]
    assert await Message.objects.acount() == 12


async def test_a_bad_row_fails_only_its_own_item(
    user: Any, other_user: Any, batches: list[int], exchange_writes: BatchedWrites[Exchange]
) -> None:
    good, bad, also_good = new_answer(), new_answer(), new_answer()
    await other_user.adelete()  # its message can no longer be saved: its owner is gone
    results = await asyncio.gather(
        exchange_writes.submit(Exchange(user, good, "one")),
        exchange_writes.submit(Exchange(other_user, bad, "two")),
        exchange_writes.submit(Exchange(user, also_good, "three")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert batches == [3, 1, 1, 1]  # the batch failed as a whole, then each exchange alone
    saved = await database_sync_to_async(lambda: set(Message.objects.values_list("id", flat=True)))()
    assert saved == {good.user_message_id, good.message_id, also_good.user_message_id, also_good.message_id}


async def test_answers_ending_together_are_saved_with_their_usage_in_one_transaction(
    user: Any, other_user: Any, exchange_writes: BatchedWrites[Exchange]
) -> None:
    owners = [user, other_user, user]
    answers = [new_answer() for _ in owners]
    await asyncio.gather(*(
        exchange_writes.submit(Exchange(owner, answer, "q")) for owner, answer in zip(owners, answers, strict=True)
    ))
    for i, answer in enumerate(answers):
        answer.parts.append(f"answer {i}")
        answer.outcome = "complete"
        answer.calls.append(ModelCall(provider="openai", model="gpt-4o-mini",
                                      usage=Usage(input_tokens=10 + i, output_tokens=20 + i),
                                      cost_usd=Decimal("0.0001") * (i + 1)))
    sizes: list[int] = []

    def write(saves: Any) -> None:
        sizes.append(len(saves))
        services.answers_save(saves=saves)

    answer_writes = BatchedWrites[AnswerSave](write)
    await asyncio.gather(*(
        answer_writes.submit(AnswerSave(owner, answer)) for owner, answer in zip(owners, answers, strict=True)
    ))
    assert sizes == [3]
    for i, (owner, answer) in enumerate(zip(owners, answers, strict=True)):
        message = await Message.objects.aget(id=answer.message_id)
        assert (message.content, message.status) == (f"answer {i}", "complete")
        usage = await UsageRecord.objects.aget(message_id=answer.message_id)
        assert (usage.user_id, usage.input_tokens, usage.output_tokens, usage.cost_usd) == (
            owner.pk, 10 + i, 20 + i, Decimal("0.0001") * (i + 1)
        )
