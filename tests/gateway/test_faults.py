"""Fault injection, one fault at a time: what the user saw, what the database holds, what the breaker did and
which provider finally answered. The real SDKs talk to the fake upstream, which injects each fault per request."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.models import BreakerEvent, Message
from tests.support.answers import saved_answer
from tests.support.sockets import answer_frames, connect, message, receive_until_done, stop_after_first_token, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

ANSWER = "a complete and healthy answer"
OPENAI_ONLY = "openai"


@pytest.fixture(autouse=True)
def quick_recovery(settings: Any) -> None:
    settings.PAM_RETRY_BACKOFF_MS = 10
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 400
    settings.PAM_IDLE_TIMEOUT_MS = 400


async def ask(user: Any, route: str = "simple", **extra: Any) -> list[dict[str, Any]]:
    return await answer_frames(user, message("hi", route=route, client_msg_id=str(uuid.uuid4()), **extra))


async def window_failures(provider: str) -> int:
    return (await provider_breaker().status(provider)).window_failures


# --- failures before the first token: retried, then another provider -----------------------------------------


async def test_http_500_is_retried_and_the_same_provider_answers(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", status=500), Scenario(provider="openai", text=ANSWER))
    frames = await ask(user)
    end = frames[-1]
    assert end["chunk_type"] == "end" and text_of(frames) == ANSWER
    assert end["metadata"]["provider"] == "openai" and "fallback" not in end["metadata"]
    assert end["metadata"]["failed_attempts"] == 1
    _, usage = await saved_answer(end["metadata"]["message_id"])
    assert [a["error"] for a in usage.attempts] == ["ProviderUnavailable"]
    assert usage.outcome == "complete" and usage.fallback_from == ""
    status = await provider_breaker().status("openai")  # one call that succeeded after a retry: a success
    assert (status.state, status.window_calls, status.window_failures) == ("closed", 1, 0)


async def test_429_honours_retry_after_before_retrying(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", status=429, retry_after=0.5), Scenario(text=ANSWER))
    frames = await ask(user)
    first, second = fake_upstream.requests
    assert second.received_at - first.received_at >= 0.5
    assert frames[-1]["chunk_type"] == "end" and frames[-1]["metadata"]["provider"] == "openai"
    _, usage = await saved_answer(frames[-1]["metadata"]["message_id"])
    assert [a["error"] for a in usage.attempts] == ["ProviderRateLimited"]


async def test_429_with_retry_after_beyond_the_deadline_falls_back_at_once(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", status=429, retry_after=60),
                          Scenario(provider="anthropic", text=ANSWER))
    started = time.monotonic()
    frames = await ask(user)
    assert time.monotonic() - started < 3
    tokens = [f for f in frames if f["chunk_type"] == "token"]
    assert tokens[0]["metadata"]["provider"] == "anthropic"
    assert tokens[0]["metadata"]["fallback"] == {
        "from_provider": "openai", "from_model": "gpt-4o-mini", "reason": "openai rate limited"
    }
    end = frames[-1]
    assert end["metadata"]["provider"] == "anthropic" and end["metadata"]["fallback"]["from_provider"] == "openai"
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    assert answer.provider == "anthropic" and answer.content == ANSWER and answer.status == "complete"
    assert usage.fallback_from == "openai" and usage.fallback_reason == "openai rate limited"
    assert usage.provider == "anthropic" and len(usage.attempts) == 1


async def test_refused_connection_falls_back_to_the_other_provider(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER))
    frames = await ask(user)
    end = frames[-1]
    assert end["chunk_type"] == "end" and text_of(frames) == ANSWER
    assert end["metadata"]["provider"] == "anthropic"
    _, usage = await saved_answer(end["metadata"]["message_id"])
    assert [a["provider"] for a in usage.attempts] == ["openai"] * 3
    assert {a["error"] for a in usage.attempts} == {"ProviderUnavailable"}
    assert await window_failures("openai") == 1  # three tries, one message: one failure


async def test_connection_dropped_before_any_response_is_retried(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", drop_connection=True), Scenario(text=ANSWER))
    frames = await ask(user)
    assert frames[-1]["chunk_type"] == "end" and text_of(frames) == ANSWER
    assert frames[-1]["metadata"]["provider"] == "openai" and frames[-1]["metadata"]["failed_attempts"] == 1


async def test_hang_before_the_first_token_times_out_and_is_retried(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="anthropic", hang_before_first_token=True, ping_while_hanging=True),
                          Scenario(provider="anthropic", text=ANSWER))
    frames = await ask(user, route="complex")
    end = frames[-1]
    assert end["chunk_type"] == "end" and text_of(frames) == ANSWER and end["metadata"]["provider"] == "anthropic"
    assert end["metadata"]["ttft_ms"] >= 400  # the first-token timeout, pings notwithstanding
    assert fake_upstream.requests[0].outcome == "client_disconnected"  # the hung request was hung up on
    _, usage = await saved_answer(end["metadata"]["message_id"])
    assert [a["error"] for a in usage.attempts] == ["ProviderTimedOut"]
    assert await window_failures("anthropic") == 0  # answered on the retry: the message's call succeeded


async def test_malformed_stream_before_any_text_is_retried(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", malformed_after_tokens=0), Scenario(text=ANSWER))
    frames = await ask(user)
    assert frames[-1]["chunk_type"] == "end" and text_of(frames) == ANSWER
    _, usage = await saved_answer(frames[-1]["metadata"]["message_id"])
    assert [a["error"] for a in usage.attempts] == ["ProviderUnavailable"]


# --- failures after tokens were sent: never papered over -------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "fault", "user_sees"),
    [
        ("simple", Scenario(text="words before the line goes quiet", hang_after_tokens=3), "too long"),
        ("complex", Scenario(text="words before the line goes quiet", hang_after_tokens=3, ping_while_hanging=True),
         "too long"),
        ("simple", Scenario(text="words before the line drops out", reset_after_tokens=3), "unavailable"),
        ("simple", Scenario(text="words before the garbage arrives", malformed_after_tokens=3), "unavailable"),
        ("complex", Scenario(text="words before the garbage arrives", malformed_after_tokens=3), "unavailable"),
        ("complex", Scenario(text="words before the overload hits", error_after_tokens=3,
                             error_type="overloaded_error"), "unavailable"),
        ("simple", Scenario(text="words before the stream just ends", close_after_tokens=3), "interrupted"),
    ],
    ids=["hang-openai", "hang-pinging-anthropic", "reset", "malformed-openai", "malformed-anthropic",
         "overloaded-anthropic", "closed-early"],
)
async def test_failure_after_tokens_keeps_the_partial_answer_and_shows_an_error(
    user: Any, fake_upstream: FakeUpstream, route: str, fault: Scenario, user_sees: str
) -> None:
    fake_upstream.enqueue(fault)
    frames = await ask(user, route=route)
    error = frames[-1]
    assert error["chunk_type"] == "error" and user_sees in error["content"]
    assert error["metadata"]["code"] == "provider_error" and error["metadata"]["status"] == "partial"
    assert len(fake_upstream.requests) == 1  # no retry, no other model's text spliced in
    answer, usage = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content == text_of(frames) != ""
    assert usage.outcome == "error" and usage.usage_estimated and usage.output_tokens > 0
    provider = "openai" if route == "simple" else "anthropic"
    assert await window_failures(provider) == 1


# --- what is not a provider failure ---------------------------------------------------------------------------


async def test_our_own_rejected_request_is_not_retried_nor_counted_against_the_provider(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", status=401), Scenario(provider="anthropic", text=ANSWER))
    frames = await ask(user)
    assert frames[-1]["chunk_type"] == "end" and frames[-1]["metadata"]["provider"] == "anthropic"
    assert [r.provider for r in fake_upstream.requests] == ["openai", "anthropic"]
    status = await provider_breaker().status("openai")
    assert status.window_failures == 0 and status.window_calls == 0


async def test_a_users_stop_does_not_count_against_the_provider(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four five six", token_delay_ms=150))
    communicator = await connect(user)
    _, frames = await stop_after_first_token(communicator, message("hi"))
    await communicator.disconnect()
    assert frames[-1]["metadata"]["finish_reason"] == "cancelled"
    status = await provider_breaker().status("openai")
    assert status.window_failures == 0 and status.consecutive_failures == 0 and status.state == "closed"


# --- the breaker ------------------------------------------------------------------------------------------------


async def test_a_message_whose_retries_all_fail_counts_once_and_the_configured_failures_open(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 2
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 5000  # on a busy machine, not a timeout instead of the scripted 500s
    for _ in range(2):
        fake_upstream.enqueue(*[Scenario(provider="openai", status=500)] * 3,
                              Scenario(provider="anthropic", text=ANSWER))
    assert (await ask(user))[-1]["metadata"]["provider"] == "anthropic"
    status = await provider_breaker().status("openai")
    assert (status.state, status.consecutive_failures, status.window_failures) == ("closed", 1, 1)

    assert (await ask(user))[-1]["metadata"]["provider"] == "anthropic"
    assert (await provider_breaker().status("openai")).state == "open"
    assert [r.provider for r in fake_upstream.requests].count("openai") == 6
    event = await BreakerEvent.objects.aget(provider="openai", to_state="open")
    assert event.reason.startswith("2 consecutive failures")



async def test_breaker_opens_then_skips_the_provider_then_probes_and_closes(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RETRIES = 0
    settings.PAM_BREAKER_FAILURES = 2
    settings.PAM_BREAKER_COOLDOWN_MS = 500
    for _ in range(2):
        fake_upstream.enqueue(Scenario(provider="openai", status=503), Scenario(provider="anthropic", text=ANSWER))
    for _ in range(2):
        assert (await ask(user))[-1]["metadata"]["provider"] == "anthropic"
    assert (await provider_breaker().status("openai")).state == "open"

    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER))
    frames = await ask(user)  # openai is not called at all while open
    assert frames[-1]["metadata"]["provider"] == "anthropic"
    assert frames[-1]["metadata"]["fallback"]["reason"] == "openai paused after repeated failures"
    assert [r.provider for r in fake_upstream.requests].count("openai") == 2

    await asyncio.sleep(0.6)  # the cool-down
    fake_upstream.enqueue(Scenario(provider="openai", text=ANSWER, token_delay_ms=100))
    probe = await connect(user)
    await probe.send_json_to(message("hi", route="simple", client_msg_id="probe"))
    frames = [await probe.receive_json_from(timeout=5), await probe.receive_json_from(timeout=5)]
    assert frames[-1]["chunk_type"] == "token"
    await asyncio.sleep(0.05)
    assert (await provider_breaker().status("openai")).state == "closed"  # at the probe's first token already
    frames += await receive_until_done(probe)
    await probe.disconnect()
    assert frames[-1]["metadata"]["provider"] == "openai" and text_of(frames) == ANSWER
    events = [e async for e in BreakerEvent.objects.filter(provider="openai").order_by("at")]
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")
    ]
    assert "2 consecutive failures" in events[0].reason and "503" in events[0].reason


async def test_every_provider_open_answers_with_an_error_at_once(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 1
    breaker = provider_breaker()
    for provider in ("openai", "anthropic"):
        permit = await breaker.acquire(provider)
        assert permit is not None
        await breaker.failure(permit, reason="HTTP 503")
    frames = await ask(user)
    error = frames[-1]
    assert error["chunk_type"] == "error" and "temporarily unavailable" in error["content"]
    assert error["metadata"]["cost_usd"] == "0.00000000"  # plain decimal notation, never "0E-8"
    assert fake_upstream.requests == []
    answer, usage = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.ERROR and answer.reply_to is not None
    assert [a["error"] for a in usage.attempts] == ["CircuitOpen", "CircuitOpen"]
