"""A message's Redis work before its upstream call is one round trip (claim, limits and the first provider's breaker
in one script), and what that script asks ahead is given back when the answer does not use it."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.conf import pam_settings
from pam_hybrid.gateway.stream import ChatRequest
from pam_hybrid.redis_client import redis_client
from pam_hybrid.runtime import preflight
from tests.support.answers import settled_answer
from tests.support.redis_monitor import watching
from tests.support.sockets import SIMPLE, connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]

WORDS = "one two three four five six"
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="counts round trips to Redis")


async def _answer(communicator: Any, client_msg_id: str) -> str:
    await communicator.send_json_to(message(client_msg_id=client_msg_id))
    frames = await receive_until_done(communicator)
    assert frames[-1]["chunk_type"] == "end"
    message_id: str = frames[0]["metadata"]["message_id"]
    await settled_answer(message_id)
    return message_id


@needs_redis
async def test_an_admitted_message_asks_redis_once_before_its_upstream_call(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    prefix = settings.PAM_REDIS_PREFIX
    fake_upstream.enqueue(Scenario(text=WORDS), Scenario(text=WORDS))
    communicator = await connect(user)
    await _answer(communicator, "warm-up")  # the script is loaded, the day's spend read into Redis
    async with watching(os.environ["REDIS_URL"], prefix) as watch:
        await _answer(communicator, "counted")
    await communicator.disconnect()

    received = fake_upstream.requests[-1].received_at
    upstream_at = time.time() - (time.monotonic() - received)
    before = watch.between(0, upstream_at)
    # The answer's owner entry (runtime.live announces it concurrently, unawaited) is the only other command.
    awaited = [sent for sent in before if f"{prefix}answer:" not in sent.command]
    assert [sent.name for sent in awaited] == ["EVALSHA"]
    script = awaited[0].command
    assert f"{prefix}claim:" in script and f"{prefix}limit:" in script and f"{prefix}breaker:{{openai}}" in script
    # After it: the answer's end (its place, its cost and its breaker's success in one script) and the owner entry.
    assert sorted(sent.name for sent in watch.sent) == ["DEL", "EVALSHA", "EVALSHA", "SET"], watch.sent


@needs_redis
async def test_the_success_of_a_call_asked_ahead_is_recorded_as_the_answer_ends(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS))
    communicator = await connect(user)
    await _answer(communicator, "one")
    await communicator.disconnect()

    client = redis_client()
    assert client is not None
    outcomes = await client.hgetall(f"{settings.PAM_REDIS_PREFIX}breaker:{{openai}}:outcomes")
    assert list(outcomes.values()) == [b"s"]


async def _window_calls(provider: str) -> int:
    return (await provider_breaker().status(provider)).window_calls


async def test_a_permit_asked_ahead_for_an_answer_that_never_calls_is_given_back(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    communicator = await connect(user)
    await communicator.send_json_to(message(conversation_id="00000000-0000-0000-0000-000000000000"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[-1]["metadata"]["code"] == "conversation_not_found"

    for _ in range(60):  # the answer settles just after its last chunk went out
        if not await _window_calls("openai"):
            break
        await asyncio.sleep(0.05)
    assert await _window_calls("openai") == 0
    assert fake_upstream.requests == []


@needs_redis
async def test_the_script_asks_the_breaker_of_the_provider_the_answer_calls_first(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    checked = await preflight.check(ChatRequest(user=user, content=SIMPLE), pam_settings())
    forced = await preflight.check(ChatRequest(user=user, content=SIMPLE, route="complex"), pam_settings())

    assert checked.ahead is not None and checked.ahead.provider == "openai"
    assert checked.ahead.permit is not None and checked.ahead.permit.token
    assert forced.ahead is not None and forced.ahead.provider == "anthropic"
    assert await _window_calls("openai") == 1 and await _window_calls("anthropic") == 1


@needs_redis
async def test_a_refused_message_takes_no_claim_and_asks_no_breaker(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_MAX_CONCURRENT_ANSWERS = 1
    first = await preflight.check(ChatRequest(user=user, content=SIMPLE, client_msg_id="a"), pam_settings())
    refused = await preflight.check(ChatRequest(user=user, content=SIMPLE, client_msg_id="b"), pam_settings())
    again = await preflight.check(ChatRequest(user=user, content=SIMPLE, client_msg_id="b"), pam_settings())

    assert first.held is None and first.ahead is not None
    assert refused.held is None and refused.ahead is None and refused.admitted is not None
    assert getattr(refused.admitted, "code", "") == "too_many_answers"
    assert again.held is None  # the refused one left its client id free
    assert await _window_calls("openai") == 1
