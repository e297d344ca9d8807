"""The Anthropic stream read as plain JSON events: the SDK's rules kept (in-band `error`, `ping` and nameless events
skipped, `message_stop` after a stop reason), first through the real SDK from the fake upstream, then from replayed
SSE bytes for what the fake never sends (unknown events, events split across reads)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn, Finish, ProviderEvent, TextDelta, ToolCall, Usage
from pam_hybrid.domain.exceptions import ProviderUnavailable
from pam_hybrid.providers.anthropic_messages import AnthropicProvider
from pam_hybrid.providers.base import ModelRequest, ToolSpec

MODEL = "claude-sonnet-5-5"
LOOKUP = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})


def request(tools: tuple[ToolSpec, ...] = ()) -> ModelRequest:
    return ModelRequest(model=MODEL, turns=(ChatTurn("user", "hello"),), max_output_tokens=200, tools=tools)


async def test_an_in_band_error_after_tokens_is_the_sdks_status_error_with_200(fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four", error_after_tokens=2, error_type="overloaded_error"))
    seen: list[ProviderEvent] = []
    with pytest.raises(ProviderUnavailable) as raised:
        async for event in AnthropicProvider().stream(request(), pam_settings()):
            seen.append(event)
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["one ", "two "]
    cause = raised.value.__cause__
    assert type(cause) is anthropic.APIStatusError and cause.status_code == 200
    assert cause.body["error"]["type"] == "overloaded_error"
    assert "overloaded_error" in str(raised.value)


async def test_a_whole_answer_with_a_tool_call(fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="Let me look.", tool_calls=[FakeToolCall("lookup", {"word": "ok"})]))
    events = [e async for e in AnthropicProvider().stream(request((LOOKUP,)), pam_settings())]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me look."
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert (call.name, json.loads(call.arguments_json)) == ("lookup", {"word": "ok"})
    assert events[-1] == Finish(reason="tool_use", complete=False, tool_use=True)


def _sse(name: str | None, data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return ((f"event: {name}\n" if name else "") + f"data: {text}\n\n").encode()


async def _replayed(body: bytes, piece: int = 7) -> list[ProviderEvent]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), piece):
            yield body[start:start + piece]

    response = httpx2.Response(200, request=httpx2.Request("POST", "http://127.0.0.1/v1/messages"))
    return [event async for event in AnthropicProvider._events(chunks(), response)]


START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}}


def _text(text: str) -> bytes:
    return _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": text}})


async def test_ping_nameless_and_unknown_events_are_ignored() -> None:
    body = b"".join([
        _sse("message_start", START), b": a comment\n\n", _sse("ping", {"type": "ping"}),
        _sse(None, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "NO"}}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        _text("Hé "), _sse("brand_new_event", {"type": "brand_new_event", "x": 1}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "citations_delta", "citation": {}}}),
        _text("there"), _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": 3}}),
        _sse("message_stop", {"type": "message_stop"}),
    ])
    events = await _replayed(body)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hé ", "there"]
    assert [e for e in events if isinstance(e, Usage)] == [
        Usage(input_tokens=10, output_tokens=1, partial=True), Usage(input_tokens=10, output_tokens=3)]
    assert events[-1] == Finish(reason="end_turn", complete=True)


async def test_a_tool_block_cut_by_max_tokens_never_runs_and_a_stream_without_message_stop_has_no_finish() -> None:
    body = b"".join([
        _sse("message_start", START),
        _sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                     "delta": {"type": "input_json_delta", "partial_json": '{"wo'}}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                               "usage": {"output_tokens": 200}}),
        _sse("message_stop", {"type": "message_stop"}),
    ])
    events = await _replayed(body)
    assert not [e for e in events if isinstance(e, ToolCall)]
    assert events[-1] == Finish(reason="max_tokens", complete=False)
    cut = await _replayed(body[:body.index(b"event: message_delta")])
    assert not [e for e in cut if isinstance(e, Finish)]


async def test_an_error_event_raises_even_without_json() -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        await _replayed(_sse("message_start", START) + _text("a") + _sse("error", "not json"))
    assert raised.value.status_code == 200 and raised.value.body == "not json"
