"""Prices reach real answers: a streamed answer through the fake upstream, the real SDK, the gateway and the
consumer is recorded at the price in force, a staff override included once this process has refreshed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import ModelPrice, UsageRecord
from pam_hybrid.pricing import overrides_loaded, refresh_overrides
from tests.support.sockets import connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]


async def answer_cost(user: Any, client_msg_id: str) -> tuple[Decimal, Decimal | None]:
    communicator = await connect(user)
    await communicator.send_json_to(message("hello", route="complex", client_msg_id=client_msg_id))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    record = await UsageRecord.objects.aget(message_id=frames[-1]["metadata"]["message_id"])
    return Decimal(frames[-1]["metadata"]["cost_usd"]), record.cost_usd


async def test_a_staff_override_prices_the_next_answer_and_not_the_one_before(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    usage = {"input_tokens": 1_000_000, "cached_tokens": 2_000_000, "output_tokens": 100_000}
    fake_upstream.enqueue(Scenario(text="One.", **usage), Scenario(text="Two.", **usage))
    # claude-sonnet-5-5 from the file: 1M x $2 + 2M cache reads x $0.10 + 100k x $10
    assert await answer_cost(user, "first") == (Decimal("3.2"), Decimal("3.2"))

    await ModelPrice.objects.acreate(
        model="claude-sonnet-5-5", effective_from=datetime(2026, 1, 1, tzinfo=UTC), input=Decimal("1"),
        output=Decimal("5"), cache_read=Decimal("0.05"), cache_write_5m=Decimal("1.25"), cache_write_1h=Decimal("2"),
    )
    await sync_to_async(refresh_overrides)()
    # 1M x $1 + 2M x $0.05 + 100k x $5
    assert await answer_cost(user, "second") == (Decimal("1.6"), Decimal("1.6"))
    first = await UsageRecord.objects.order_by("created_at").afirst()
    assert first is not None and first.cost_usd == Decimal("3.2")  # recorded at its own price, never re-priced


async def test_a_process_reads_the_overrides_before_its_first_answer(user: Any, fake_upstream: FakeUpstream) -> None:
    await ModelPrice.objects.acreate(
        model="claude-sonnet-5-5", effective_from=datetime(2026, 1, 1, tzinfo=UTC), input=Decimal("1"),
        output=Decimal("5"), cache_read=Decimal("0.05"), cache_write_5m=Decimal("1.25"), cache_write_1h=Decimal("2"),
    )
    assert not overrides_loaded()  # as in a process that has just started
    fake_upstream.enqueue(Scenario(text="One.", input_tokens=1_000_000, output_tokens=100_000))
    assert await answer_cost(user, "first") == (Decimal("1.5"), Decimal("1.5"))
