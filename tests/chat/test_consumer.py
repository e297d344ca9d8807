"""The chat socket, driven in-process with channels' WebsocketCommunicator, the real SDKs and the fake upstream."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.chat.consumer import ChatConsumer
from pam_hybrid.models import Conversation, Message
from tests.support.answers import saved_answer, settled_answer
from tests.support.sockets import SIMPLE, connect, message, receive_until_done, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_simple_query_streams_from_openai_and_records_usage(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="Paris is the capital of France.", input_tokens=1000, output_tokens=2000))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()

    start, *tokens, end = frames
    assert start["type"] == "stream" and start["chunk_type"] == "start"
    assert start["metadata"]["route"] == "simple"
    assert start["metadata"]["provider"] == "openai"
    assert start["metadata"]["model"] == "gpt-4o-mini"
    assert len(tokens) > 3 and all(f["chunk_type"] == "token" for f in tokens)
    assert text_of(frames) == "Paris is the capital of France."
    assert end["chunk_type"] == "end" and end["timestamp"].endswith("Z")
    meta = end["metadata"]
    assert meta["input_tokens"] == 1000 and meta["output_tokens"] == 2000
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output.
    assert Decimal(meta["cost_usd"]) == Decimal("0.00135")
    assert meta["finish_reason"] == "stop"
    assert meta["ttft_ms"] > 0 and meta["total_ms"] >= meta["ttft_ms"]
    assert meta["classification_ms"] < 5

    answer, usage = await saved_answer(meta["message_id"])
    assert answer.content == "Paris is the capital of France."
    assert answer.status == Message.Status.COMPLETE
    assert answer.reply_to is not None and answer.reply_to.content == SIMPLE
    assert str(answer.conversation_id) == meta["conversation_id"] == start["metadata"]["conversation_id"]
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (1000, 2000, Decimal("0.00135"))
    assert usage.outcome == "complete" and not usage.usage_estimated
    request = fake_upstream.requests[-1]
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}


async def test_complex_query_streams_from_anthropic(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="A careful answer.", input_tokens=200, output_tokens=50))
    communicator = await connect(user)
    await communicator.send_json_to(message("Explain step by step how to design a fault-tolerant queue"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()

    assert frames[0]["metadata"]["route"] == "complex"
    assert frames[0]["metadata"]["provider"] == "anthropic"
    assert text_of(frames) == "A careful answer."
    meta = frames[-1]["metadata"]
    assert (meta["input_tokens"], meta["output_tokens"], meta["finish_reason"]) == (200, 50, "end_turn")
    # claude-sonnet-5-5: $2 / 1M input, $10 / 1M output.
    assert Decimal(meta["cost_usd"]) == Decimal("0.0009")
    assert fake_upstream.requests[-1].path == "/v1/messages"


async def test_route_in_message_overrides_classifier(user: Any, fake_upstream: FakeUpstream) -> None:
    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route="complex"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[0]["metadata"]["provider"] == "anthropic"
    assert text_of(frames).startswith("Echo from claude")


async def test_conversation_context_goes_to_the_model(user: Any, fake_upstream: FakeUpstream) -> None:
    communicator = await connect(user)
    await communicator.send_json_to(message("My name is Alice."))
    first = await receive_until_done(communicator)
    conversation_id = first[-1]["metadata"]["conversation_id"]
    await communicator.send_json_to(message("What is my name?", conversation_id=conversation_id, client_msg_id="c2"))
    second = await receive_until_done(communicator)
    await communicator.disconnect()

    assert second[-1]["metadata"]["conversation_id"] == conversation_id
    sent = [(m["role"], m["content"]) for m in fake_upstream.requests[-1].json["messages"]]
    assert sent == [
        ("user", "My name is Alice."),
        ("assistant", text_of(first)),
        ("user", "What is my name?"),
    ]
    count = await Message.objects.filter(conversation_id=conversation_id).acount()
    assert count == 4


async def test_old_client_gets_one_response(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="One whole answer."))
    communicator = await connect(user)
    await communicator.send_json_to(message(stream=False))
    frame = await communicator.receive_json_from(timeout=10)
    assert frame["type"] == "response"
    assert frame["content"] == "One whole answer."
    assert frame["metadata"]["finish_reason"] == "stop" and frame["metadata"]["message_id"]
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "launch"}', "Unknown frame type"),
        ('{"type": "message"}', "needs some text"),
        ('{"type": "message", "content": 42}', "needs some text"),
        ('{"type": "message", "content": "hi", "route": "fastest"}', "route"),
        ('{"type": "message", "content": "hi", "conversation_id": 7}', "conversation_id"),
    ],
)
async def test_bad_frames_get_readable_errors_and_socket_stays_usable(
    user: Any, fake_upstream: FakeUpstream, raw: str, expected: str
) -> None:
    communicator = await connect(user)
    await communicator.send_to(text_data=raw)
    error = await communicator.receive_json_from(timeout=5)
    assert error["chunk_type"] == "error" and expected in error["content"]
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[-1]["chunk_type"] == "end"


async def test_oversized_message_is_refused_before_any_work(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_MAX_MESSAGE_CHARS = 100
    communicator = await connect(user)
    await communicator.send_json_to(message("x" * 101))
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["chunk_type"] == "error" and "too long" in error["content"]
    assert fake_upstream.requests == []
    assert await Message.objects.acount() == 0


async def test_binary_frame_is_refused(user: Any, fake_upstream: FakeUpstream) -> None:
    communicator = await connect(user)
    await communicator.send_to(bytes_data=b"\x00\x01")
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["chunk_type"] == "error" and "Binary" in error["content"]


async def test_cancel_stops_the_answer_and_saves_it_as_partial(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight nine ten", token_delay_ms=200))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    start = await communicator.receive_json_from(timeout=5)
    first_token = await communicator.receive_json_from(timeout=5)
    assert first_token["chunk_type"] == "token"
    await communicator.send_json_to({"type": "cancel"})
    cancelled_at = time.monotonic()
    end = await communicator.receive_json_from(timeout=2)
    assert await fake_upstream.wait_for_disconnects(1, within=2)
    assert fake_upstream.requests[0].ended_at is not None
    assert fake_upstream.requests[0].ended_at - cancelled_at < 0.1  # the upstream request is closed at once
    assert end["chunk_type"] == "end"
    assert end["metadata"]["finish_reason"] == "cancelled" and end["metadata"]["status"] == "partial"
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.disconnect()

    answer, usage = await saved_answer(start["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL
    assert answer.content.startswith("one") and len(answer.content) < len("one two three four five six seven")
    assert usage.outcome == "cancelled" and usage.usage_estimated and usage.output_tokens > 0
    for _ in range(50):
        if fake_upstream.active_streams == 0:
            break
        await asyncio.sleep(0.02)
    assert fake_upstream.active_streams == 0


async def test_disconnect_without_resume_grace_stops_upstream_at_once_and_saves_partial(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RESUME_GRACE_MS = 0
    fake_upstream.enqueue(Scenario(text="alpha beta gamma delta epsilon zeta", token_delay_ms=200))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    start = await communicator.receive_json_from(timeout=5)
    await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    closed_at = time.monotonic()

    assert await fake_upstream.wait_for_disconnects(1, within=2)
    assert fake_upstream.requests[0].ended_at is not None
    assert fake_upstream.requests[0].ended_at - closed_at < 0.1
    answer, usage = await settled_answer(start["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content.startswith("alpha")
    assert answer.finish_reason == "disconnected"
    assert usage.outcome == "cancelled" and usage.usage_estimated


async def test_stream_closed_before_final_event_is_an_interrupted_partial(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text="this answer will be cut off here", close_after_tokens=3))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()

    error = frames[-1]
    assert error["chunk_type"] == "error" and "interrupted" in error["content"]
    assert error["metadata"]["status"] == "partial"
    answer, usage = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content == text_of(frames) == "this answer will "
    assert usage.outcome == "error" and usage.usage_estimated


async def test_in_band_error_mid_stream_is_shown_readably(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="partial words then boom", error_after_tokens=2))
    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route="complex"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    error = frames[-1]
    assert error["chunk_type"] == "error"
    assert "unavailable" in error["content"] and "overloaded" not in error["content"].lower()
    answer, _ = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content == "partial words "


async def test_every_attempt_failing_before_the_first_token_saves_an_error_answer(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RETRY_BACKOFF_MS = 1
    for provider in ("openai", "anthropic"):
        fake_upstream.enqueue(*[Scenario(provider=provider, status=500)] * 3)  # three tries each
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert [f["chunk_type"] for f in frames] == ["start", "error"]
    assert [r.provider for r in fake_upstream.requests] == ["openai"] * 3 + ["anthropic"] * 3
    answer, usage = await saved_answer(frames[-1]["metadata"]["message_id"])
    assert answer.status == Message.Status.ERROR and answer.error == frames[-1]["content"]
    assert usage.outcome == "error" and len(usage.attempts) == 6 and usage.fallback_from == "openai"


async def test_length_limit_is_reported(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="a long answer", finish="length"))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    meta = frames[-1]["metadata"]
    assert frames[-1]["chunk_type"] == "end" and meta["finish_reason"] == "length" and meta["status"] == "partial"


async def test_first_token_timeout_with_nothing_to_retry_or_fall_back_to(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 300
    settings.PAM_RETRIES = 0
    settings.OPENAI_API_KEY = ""
    fake_upstream.enqueue(Scenario(hang_before_first_token=True, ping_while_hanging=True))
    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route="complex"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[-1]["chunk_type"] == "error" and "too long" in frames[-1]["content"]


async def test_another_users_conversation_is_refused(user: Any, other_user: Any, fake_upstream: FakeUpstream) -> None:
    theirs = await Conversation.objects.acreate(owner=other_user, title="secret plans")
    communicator = await connect(user)
    await communicator.send_json_to(message(conversation_id=str(theirs.id)))
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["chunk_type"] == "error" and error["metadata"] == {"code": "conversation_not_found"}
    assert "secret" not in json.dumps(error)
    assert fake_upstream.requests == []
    assert await Message.objects.acount() == 0


async def test_second_message_while_streaming_is_refused(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="slow slow slow slow", token_delay_ms=100))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to(message(client_msg_id="c2"))
    frames = []
    while not any(f.get("metadata", {}).get("code") == "busy" for f in frames):
        frames.append(await communicator.receive_json_from(timeout=5))
    rest = await receive_until_done(communicator)
    await communicator.disconnect()
    assert rest[-1]["chunk_type"] == "end"


async def test_offline_model_answers_when_no_api_key(user: Any, settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    settings.PAM_OFFLINE_TOKEN_DELAY_MS = 1
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[0]["metadata"]["provider"] == "offline"
    assert text_of(frames).startswith("[Offline model")
    assert frames[-1]["metadata"]["cost_usd"] == "0E-8" or Decimal(frames[-1]["metadata"]["cost_usd"]) == 0


async def test_anonymous_socket_is_closed_with_4401() -> None:
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_cancel_before_the_answer_starts_is_acknowledged(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(ttft_ms=2000))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    await communicator.send_json_to({"type": "cancel"})
    frames = [await communicator.receive_json_from(timeout=5)]
    while frames[-1]["chunk_type"] not in ("end", "error"):
        frames.append(await communicator.receive_json_from(timeout=5))
    await communicator.disconnect()
    # Either the cancel landed before `start` (nothing saved) or after it (a stopped answer was saved).
    last = frames[-1]
    if last["chunk_type"] == "error":
        assert last["metadata"] == {"code": "cancelled"} and "Stopped" in last["content"]
    else:
        assert last["metadata"]["finish_reason"] == "cancelled"
        assert await Message.objects.filter(id=last["metadata"]["message_id"]).aexists()


async def test_rate_limited_provider_gets_a_readable_error(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RETRIES = 0
    settings.ANTHROPIC_API_KEY = ""  # nothing to fall back to
    fake_upstream.enqueue(Scenario(status=429, retry_after=1))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert frames[-1]["chunk_type"] == "error" and "rate limited" in frames[-1]["content"]
    assert "429" not in frames[-1]["content"]


@pytest.mark.parametrize("route", ["simple", "complex"])
async def test_connection_reset_mid_stream_keeps_the_partial_answer(
    user: Any, fake_upstream: FakeUpstream, route: str
) -> None:
    fake_upstream.enqueue(Scenario(text="these words arrive and then the line drops", reset_after_tokens=3))
    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route=route))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    error = frames[-1]
    assert error["chunk_type"] == "error" and "unavailable" in error["content"]
    answer, usage = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.content == "these words arrive "
    assert usage.outcome == "error" and usage.usage_estimated
