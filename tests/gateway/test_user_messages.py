"""What the user reads when no provider could answer says what really happened: a provider staff took out of
service is not "after repeated failures", and a stream that ended before any text was not "interrupted"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.models import Message
from tests.support.answers import saved_answer
from tests.support.sockets import answer_frames, connect, message, receive_until_done, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

FORCED = "taken out of service by the administrators"
TRIPPED = "temporarily unavailable after repeated failures"


@pytest.fixture(autouse=True)
def quick_recovery(settings: Any) -> None:
    settings.PAM_RETRY_BACKOFF_MS = 10
    settings.PAM_RETRIES = 1


async def ask(user: Any) -> list[dict[str, Any]]:
    return await answer_frames(user, message("hi", route="simple", client_msg_id=str(uuid.uuid4())))


async def trip(provider: str, failures: int) -> None:
    breaker = provider_breaker()
    for _ in range(failures):
        permit = await breaker.acquire(provider)
        assert permit is not None
        await breaker.failure(permit, reason="HTTP 503")


async def test_providers_forced_open_say_they_were_taken_out_of_service(user: Any, fake_upstream: FakeUpstream) -> None:
    for provider in ("openai", "anthropic"):
        await provider_breaker().force_open(provider, actor="boss")
    error = (await ask(user))[-1]
    assert error["chunk_type"] == "error" and FORCED in error["content"]
    assert "repeated failures" not in error["content"]
    assert fake_upstream.requests == []


async def test_tripped_breakers_still_say_repeated_failures(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 2
    for provider in ("openai", "anthropic"):
        await trip(provider, 2)
    error = (await ask(user))[-1]
    assert error["chunk_type"] == "error" and TRIPPED in error["content"]
    assert fake_upstream.requests == []


async def test_a_fallback_away_from_a_forced_open_provider_names_why(user: Any, fake_upstream: FakeUpstream) -> None:
    await provider_breaker().force_open("openai", actor="boss")
    fake_upstream.enqueue(Scenario(provider="anthropic", text="an answer"))
    end = (await ask(user))[-1]
    assert end["chunk_type"] == "end"
    assert end["metadata"]["fallback"]["reason"] == "openai taken out of service"


async def test_both_providers_ending_before_any_text_is_not_called_interrupted(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(*[Scenario(provider=provider, text="never sent", close_after_tokens=0)
                            for provider in ("openai", "openai", "anthropic", "anthropic")])
    frames = await ask(user)
    error = frames[-1]
    assert error["chunk_type"] == "error" and text_of(frames) == ""
    assert "without writing anything" in error["content"] and "interrupted" not in error["content"]
    assert [r.provider for r in fake_upstream.requests] == ["openai", "openai", "anthropic", "anthropic"]
    answer, _ = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.ERROR and answer.error == error["content"]


async def test_a_stream_ending_after_some_text_is_still_interrupted(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", text="words before the stream just ends", close_after_tokens=3))
    error = (await ask(user))[-1]
    assert error["chunk_type"] == "error" and "interrupted before it finished" in error["content"]


async def test_a_stop_before_the_first_token_saves_an_empty_cancelled_answer(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    """README: every accepted user message ends with an assistant message; a stop before any text leaves an
    empty partial one, marked cancelled."""
    fake_upstream.enqueue(Scenario(provider="openai", text="too late", hang_before_headers=True,
                                   hang_limit_ms=5000))
    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route="simple", client_msg_id=str(uuid.uuid4())))
    start = await communicator.receive_json_from(timeout=5)
    assert start["chunk_type"] == "start"
    await communicator.send_json_to({"type": "cancel"})
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    end = frames[-1]
    assert end["chunk_type"] == "end" and text_of(frames) == ""
    assert end["metadata"]["finish_reason"] == "cancelled" and end["metadata"]["status"] == "partial"
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content == ""
    assert answer.finish_reason == "cancelled" and usage.outcome == "cancelled"
    assert answer.reply_to is not None and answer.reply_to.content == "hi"
