"""Per-user bounds: answers at once, messages per window, spend per day. Each refusal says which limit and when it
resets, nothing of a refused message runs or is saved, and other users are not affected."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.pricing import cost_of
from pam_hybrid.models import Message, ModelCallRecord, UsageRecord
from pam_hybrid.runtime.limits import ceiling_price
from tests.support.factories import usage_record_create
from tests.support.sockets import answer_frames, connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]


def fresh(**extra: Any) -> dict[str, Any]:
    return message(client_msg_id=str(uuid.uuid4()), **extra)


async def ask(user: Any) -> list[dict[str, Any]]:
    return await answer_frames(user, fresh())


async def test_more_answers_at_once_than_allowed_are_refused_until_one_ends(
    user: Any, other_user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_MAX_CONCURRENT_ANSWERS = 1
    fake_upstream.enqueue(Scenario(text="a slow answer that takes its time", token_delay_ms=60))
    first = await connect(user)
    await first.send_json_to(fresh())
    await first.receive_json_from(timeout=5)

    refused = (await ask(user))[-1]
    assert refused["chunk_type"] == "error" and refused["metadata"]["code"] == "too_many_answers"
    assert "wait for one to finish" in refused["content"] and refused["metadata"]["retry_after_s"] > 0
    assert (await ask(other_user))[-1]["chunk_type"] == "end"  # another user is not affected

    assert (await receive_until_done(first))[-1]["chunk_type"] == "end"
    await first.disconnect()
    assert (await ask(user))[-1]["chunk_type"] == "end"  # the place is free again
    assert len(fake_upstream.requests) == 3


async def test_messages_over_the_rate_limit_are_refused_and_say_when_to_retry(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RATE_LIMIT_MESSAGES = 2
    settings.PAM_RATE_LIMIT_WINDOW_MS = 60000
    assert (await ask(user))[-1]["chunk_type"] == "end"
    assert (await ask(user))[-1]["chunk_type"] == "end"
    refused = (await ask(user))[-1]
    assert refused["metadata"]["code"] == "rate_limited"
    assert "2 messages in 1 min" in refused["content"]
    assert 0 < refused["metadata"]["retry_after_s"] <= 60 and refused["metadata"]["resets_at"].endswith("Z")
    assert len(fake_upstream.requests) == 2
    assert await Message.objects.filter(role="user").acount() == 2  # nothing of the refused message was saved


async def test_daily_spend_cap_counts_saved_answers_and_refuses_past_it(
    user: Any, other_user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "0.002"
    # gpt-4o-mini: 1000 input + 2000 output tokens cost $0.00135.
    for _ in range(3):
        fake_upstream.enqueue(Scenario(text="priced", input_tokens=1000, output_tokens=2000))
    assert (await ask(user))[-1]["metadata"]["cost_usd"] == "0.00135000"
    assert (await ask(user))[-1]["chunk_type"] == "end"  # $0.00135 spent: under the cap
    refused = (await ask(user))[-1]  # $0.0027 spent: over it
    assert refused["metadata"]["code"] == "spend_cap" and "$0.002" in refused["content"]
    assert 0 < refused["metadata"]["retry_after_s"] <= 86400
    assert (await ask(other_user))[-1]["chunk_type"] == "end"
    assert await UsageRecord.objects.filter(user=user).acount() == 2


async def test_spend_cap_reads_the_days_earlier_usage(user: Any, fake_upstream: FakeUpstream, settings: Any) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "1"
    await sync_to_async(usage_record_create)(user=user, route="complex", provider="anthropic",
                                            model="claude-sonnet-5-5", cost_usd=Decimal("1.5"))
    refused = (await ask(user))[-1]
    assert refused["metadata"]["code"] == "spend_cap"
    assert fake_upstream.requests == []


async def test_an_unpriced_call_counts_against_the_cap_at_the_highest_known_rates(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    ceiling = cost_of(ceiling_price(), Usage(input_tokens=1000, output_tokens=1000))
    assert ceiling > Decimal("0.05")  # e.g. $15 + $75 per million: never counted as nothing
    await sync_to_async(usage_record_create)(user=user, model="llama-local", input_tokens=1000, output_tokens=1000,
                                            cost_usd=None)
    settings.PAM_DAILY_SPEND_CAP_USD = str(ceiling + Decimal("0.0001"))
    assert (await ask(user))[-1]["chunk_type"] == "end"  # under the cap by a hair: admitted
    settings.PAM_DAILY_SPEND_CAP_USD = str(ceiling)
    refused = (await ask(user))[-1]  # a fresh process's view of the day: read from the call rows
    assert refused["metadata"]["code"] == "spend_cap"


async def test_an_answer_of_an_unpriced_model_is_counted_at_the_ceiling_when_it_ends(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_SIMPLE_MODEL = "llama-local"
    fake_upstream.enqueue(Scenario(text="Local.", input_tokens=500, output_tokens=500))
    ceiling = cost_of(ceiling_price(), Usage(input_tokens=500, output_tokens=500))
    settings.PAM_DAILY_SPEND_CAP_USD = str(ceiling)
    communicator = await connect(user)
    await communicator.send_json_to(fresh())
    end = (await receive_until_done(communicator))[-1]
    assert end["metadata"]["cost_usd"] is None and end["metadata"]["unknown_cost_calls"] == 1
    await communicator.send_json_to(fresh())
    refused = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert refused["metadata"]["code"] == "spend_cap"
    row = await ModelCallRecord.objects.aget(usage_record__message_id=end["metadata"]["message_id"])
    assert (row.basis, row.cost_usd, row.input_tokens, row.output_tokens) == ("unknown", None, 500, 500)


async def test_a_refused_message_can_be_sent_again_with_the_same_client_id(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RATE_LIMIT_MESSAGES = 1
    assert (await ask(user))[-1]["chunk_type"] == "end"
    communicator = await connect(user)
    await communicator.send_json_to(message(client_msg_id="again"))
    assert (await communicator.receive_json_from(timeout=5))["metadata"]["code"] == "rate_limited"
    settings.PAM_RATE_LIMIT_MESSAGES = 5
    await communicator.send_json_to(message(client_msg_id="again"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[0]["chunk_type"] == "start" and frames[-1]["chunk_type"] == "end"


async def test_the_next_message_sent_the_moment_an_answer_ends_meets_its_place_and_spend(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_MAX_CONCURRENT_ANSWERS = 1
    settings.PAM_DAILY_SPEND_CAP_USD = "0.001"
    # gpt-4o-mini: 1000 input + 2000 output tokens cost $0.00135, over the cap by itself.
    fake_upstream.enqueue(Scenario(text="priced", input_tokens=1000, output_tokens=2000))
    communicator = await connect(user)
    await communicator.send_json_to(fresh())
    assert (await receive_until_done(communicator))[-1]["chunk_type"] == "end"
    # Sent on the same socket as soon as `end` arrived: the answer's place is free and its cost counted already.
    await communicator.send_json_to(fresh())
    refused = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert refused["metadata"]["code"] == "spend_cap"
    assert len(fake_upstream.requests) == 1
