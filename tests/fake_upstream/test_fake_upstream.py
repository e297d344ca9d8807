"""The fake upstream speaks the providers' wire format: checked by driving the real OpenAI and Anthropic SDKs.

Besides proving the fake right, these tests pin down what the SDK versions in use really do with each
fault (which exception, or none), which the gateway's error handling relies on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from fake_upstream import (
    FAULT_KINDS,
    FAULT_RETRY_AFTER_S,
    FakeToolCall,
    FakeUpstream,
    FaultKind,
    Scenario,
    argument_pieces,
    default_reply,
    input_token_count,
    last_user_text,
    tokenize,
)
from tests.support.paths import ROOT

OPENAI_MODEL = "gpt-test"
ANTHROPIC_MODEL = "claude-test"
PROMPT = "Tell me a short story"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def server(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
async def oai(server: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="test", base_url=server.openai_base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(server: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=server.anthropic_base_url, max_retries=0)
    yield client
    await client.close()


def openai_request(**extra: Any) -> dict[str, Any]:
    return {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True, **extra}


def anthropic_request(**extra: Any) -> dict[str, Any]:
    return {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        **extra,
    }


async def collect_openai(client: openai.AsyncOpenAI, **extra: Any) -> list[Any]:
    stream = await client.chat.completions.create(**openai_request(**extra))
    return [chunk async for chunk in stream]


async def collect_anthropic(client: anthropic.AsyncAnthropic, **extra: Any) -> list[Any]:
    stream = await client.messages.create(**anthropic_request(**extra))
    return [event async for event in stream]


def openai_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def anthropic_text(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.type == "content_block_delta")


# --------------------------------------------------------------------------------------------------
# OpenAI stream
# --------------------------------------------------------------------------------------------------


async def test_openai_stream_default_reply(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    chunks = await collect_openai(oai)

    expected = default_reply(openai_request())
    assert expected == f"Echo from {OPENAI_MODEL}: {PROMPT}"
    assert openai_text(chunks) == expected
    first, *content, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in content] == tokenize(expected)
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None and "usage" not in c.model_fields_set for c in chunks)
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {(c.object, c.model, c.system_fingerprint) for c in chunks} == {
        ("chat.completion.chunk", OPENAI_MODEL, "fp_fake0upstream")
    }
    assert server.requests[-1].outcome == "completed"


async def test_openai_usage_chunk_only_when_requested(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    server.enqueue(Scenario(text="one two three", cached_tokens=2))
    chunks = await collect_openai(oai, stream_options={"include_usage": True})

    assert openai_text(chunks) == "one two three"
    *streamed, finish, usage_chunk = chunks
    assert all(c.usage is None and "usage" in c.model_fields_set for c in [*streamed, finish])
    assert finish.choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    usage = usage_chunk.usage
    prompt_tokens = input_token_count(openai_request())
    assert prompt_tokens == 5 + 4  # words + per-message overhead
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (prompt_tokens, 3, prompt_tokens + 3)
    assert usage.prompt_tokens_details.cached_tokens == 2
    assert usage.completion_tokens_details.reasoning_tokens == 0


async def test_openai_scripted_length_finish_and_usage(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    server.enqueue(Scenario(tokens=["Hel", "lo", "!"], finish="length", input_tokens=40, output_tokens=7))
    chunks = await collect_openai(oai, stream_options={"include_usage": True})

    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hel", "lo", "!"]
    assert chunks[-2].choices[0].finish_reason == "length"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (40, 7)


async def test_openai_request_token_limit_cuts_the_reply(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    chunks = await collect_openai(oai, max_completion_tokens=2)

    assert openai_text(chunks) == "Echo from "
    assert chunks[-1].choices[0].finish_reason == "length"


# --------------------------------------------------------------------------------------------------
# Anthropic stream
# --------------------------------------------------------------------------------------------------


async def test_anthropic_stream_default_reply(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    events = await collect_anthropic(claude, system="Be brief.")

    expected = default_reply(anthropic_request())
    assert anthropic_text(events) == expected
    n_tokens = len(tokenize(expected))
    # The ping after content_block_start is on the wire (see test_raw_wire_anthropic) but the SDK drops it.
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n_tokens,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.message.model == ANTHROPIC_MODEL
    assert start.message.stop_reason is None
    assert start.message.content == []
    assert start.message.usage.input_tokens == input_token_count(anthropic_request(system="Be brief.")) == 15
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.cache_read_input_tokens == 0
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == n_tokens


async def test_anthropic_scripted_max_tokens_and_cache(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(Scenario(text="cut short", finish="max_tokens", cached_tokens=100, cache_creation_tokens=20))
    events = await collect_anthropic(claude)

    assert anthropic_text(events) == "cut short"
    usage = events[0].message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 20)
    assert events[-2].delta.stop_reason == "max_tokens"
    assert events[-2].usage.output_tokens == 2


async def test_anthropic_stream_helper_treats_output_tokens_as_cumulative(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(tokens=["a", "b", "c", "d"], finish="length"))  # OpenAI vocabulary works too
    request = anthropic_request()
    del request["stream"]
    async with claude.messages.stream(**request) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()

    assert text == "abcd"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 4  # replaced by message_delta, not 1 + 4


# --------------------------------------------------------------------------------------------------
# Tool calls, refusals, thinking
# --------------------------------------------------------------------------------------------------

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# Non-ASCII, escaped quotes, a backslash and a newline: split at odd byte positions, the pieces cut
# through escapes, which only reassembling the text (not parsing each piece) gets right.
WEATHER_ARGS = {"city": "Zürich", "note": 'say "grüezi"\\n\n', "days": [1, 2, 3]}
TIME_ARGS = {"tz": "Europe/Zurich", "format": "24h"}


def tool_deltas(chunks: list[Any]) -> list[Any]:
    """Every ``delta.tool_calls`` entry of an OpenAI stream, in order."""
    return [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]


def assemble_openai_tool_calls(chunks: list[Any]) -> dict[int, dict[str, Any]]:
    """Assemble streamed tool calls by index, as a client must: id/name from the first delta, arguments joined."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in tool_deltas(chunks):
        call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
        if delta.id is not None:
            call["id"] = delta.id
        if delta.function is not None:
            if delta.function.name is not None:
                call["name"] = delta.function.name
            call["arguments"] += delta.function.arguments or ""
    return calls


def anthropic_blocks(events: list[Any]) -> dict[int, dict[str, Any]]:
    """Content blocks of an Anthropic stream by index: the start's block, the deltas, whether it stopped."""
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "content_block_start":
            blocks[event.index] = {"start": event.content_block, "deltas": [], "stopped": False}
        elif event.type == "content_block_delta":
            blocks[event.index]["deltas"].append(event.delta)
        elif event.type == "content_block_stop":
            blocks[event.index]["stopped"] = True
    return blocks


def joined_partial_json(block: dict[str, Any]) -> str:
    return "".join(d.partial_json for d in block["deltas"] if isinstance(d, anthropic.types.InputJSONDelta))


def test_argument_pieces_split_bytes_not_characters() -> None:
    assert argument_pieces('{"a": 1}', 3) == ['{"a', '": ', "1}"]
    assert argument_pieces('{"a": 1}', None) == ['{"a": 1}']
    assert argument_pieces("", 7) == [""]
    # "ü" is 2 bytes: a boundary falling inside it moves to its end; pieces stay valid text.
    assert argument_pieces("aü€b", 2) == ["aü", "€", "b"]
    text = json.dumps(WEATHER_ARGS, ensure_ascii=False)
    assert "".join(argument_pieces(text, 5)) == text
    assert all(len(piece.encode()) <= 5 + 2 for piece in argument_pieces(text, 5))
    assert FakeToolCall("f", WEATHER_ARGS).arguments_json == text
    assert FakeToolCall("f", '{"raw": ').arguments_json == '{"raw": '


def test_scenario_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="split_arguments"):
        Scenario(split_arguments=0)
    with pytest.raises(ValueError, match="refusal"):
        Scenario(refusal="no", text="yes")
    with pytest.raises(ValueError, match="exclude each other"):
        Scenario(drop_connection=True, status=500)
    with pytest.raises(ValueError, match="exclude each other"):
        Scenario(drop_connection=True, hang_before_headers=True)
    with pytest.raises(ValueError, match="hang_limit_ms"):
        Scenario(hang_before_headers=True, hang_limit_ms=-1)


async def test_openai_tool_calls_reassemble_by_index(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    calls = [FakeToolCall("get_weather", WEATHER_ARGS), FakeToolCall("get_time", TIME_ARGS)]
    server.enqueue(Scenario(text="Let me check.", tool_calls=calls, split_arguments=5, cached_tokens=3))
    chunks = await collect_openai(oai, tools=[WEATHER_TOOL_OPENAI], stream_options={"include_usage": True})

    expected = [json.dumps(WEATHER_ARGS, ensure_ascii=False), json.dumps(TIME_ARGS, ensure_ascii=False)]
    pieces = [argument_pieces(text, 5) for text in expected]
    assert any(p.endswith("\\") for p in pieces[0])  # the split really cuts through an escape
    assert openai_text(chunks) == "Let me check."

    assembled = assemble_openai_tool_calls(chunks)
    assert [assembled[i]["arguments"] for i in (0, 1)] == expected
    assert [json.loads(assembled[i]["arguments"]) for i in (0, 1)] == [WEATHER_ARGS, TIME_ARGS]
    assert [assembled[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    ids = [assembled[i]["id"] for i in (0, 1)]
    assert ids == server.requests[-1].tool_call_ids
    assert all(id_.startswith("call_") and len(id_) == 29 for id_ in ids) and ids[0] != ids[1]

    # Per call: a first delta with id, type, name and empty arguments; then only index + arguments.
    deltas = tool_deltas(chunks)
    assert [d.index for d in deltas] == [0] * (1 + len(pieces[0])) + [1] * (1 + len(pieces[1]))
    for index in (0, 1):
        first, *rest = [d for d in deltas if d.index == index]
        assert (first.id, first.type, first.function.name, first.function.arguments) == (
            ids[index],
            "function",
            calls[index].name,
            "",
        )
        assert [d.function.arguments for d in rest] == pieces[index]
        assert all(d.id is None and d.type is None and d.function.name is None for d in rest)
        assert all(d.model_fields_set == {"index", "function"} for d in rest)  # absent on the wire, not null
    # Text first, then the calls, each delta in a chunk of its own.
    assert all(len(c.choices[0].delta.tool_calls or []) <= 1 for c in chunks if c.choices)

    *_, finish, usage_chunk = chunks
    assert finish.choices[0].finish_reason == "tool_calls"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    n_output = len(tokenize("Let me check.")) + len(pieces[0]) + len(pieces[1])  # one token per piece
    assert usage_chunk.usage.completion_tokens == n_output
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 3
    assert server.requests[-1].tokens_sent == n_output
    assert server.requests[-1].tools == [WEATHER_TOOL_OPENAI]


async def test_openai_interleaved_tool_calls(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    calls = [FakeToolCall("get_weather", WEATHER_ARGS), FakeToolCall("get_time", TIME_ARGS)]
    server.enqueue(Scenario(tool_calls=calls, split_arguments=4, interleave_tool_calls=True))
    chunks = await collect_openai(oai, tools=[WEATHER_TOOL_OPENAI])

    expected = [call.arguments_json for call in calls]
    assert chunks[0].choices[0].delta.content is None  # no text: the first chunk has content null
    assert openai_text(chunks) == ""
    indices = [d.index for d in tool_deltas(chunks)]
    assert indices[:6] == [0, 0, 1, 1, 0, 1]  # header + piece of each call, then alternating pieces
    assemble = assemble_openai_tool_calls(chunks)
    assert [assemble[i]["arguments"] for i in (0, 1)] == expected
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # The SDK's stream helper assembles by index too, but (openai 3.57) fires a call's
    # "tool_calls.function.arguments.done" event as soon as another index shows up: with interleaved
    # calls that event carries partial arguments. Only the final snapshot is right.
    server.enqueue(Scenario(tool_calls=calls, split_arguments=4, interleave_tool_calls=True))
    request = openai_request(tools=[WEATHER_TOOL_OPENAI])
    del request["stream"]
    async with oai.chat.completions.stream(**request) as stream:
        done = [(e.index, e.arguments) async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    assert [d[0] for d in done] == [0, 1]
    assert done[0][1] != expected[0] and expected[0].startswith(done[0][1])
    assert [tc.function.arguments for tc in final.choices[0].message.tool_calls or []] == expected


async def test_openai_length_cut_inside_a_tool_call(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    weather = FakeToolCall("get_weather", WEATHER_ARGS)
    pieces = argument_pieces(weather.arguments_json, 7)
    # The request's limit falls inside the call: text (2 tokens) + 3 pieces.
    server.enqueue(Scenario(text="One moment.", tool_calls=[weather]))
    chunks = await collect_openai(oai, max_completion_tokens=5, stream_options={"include_usage": True})
    arguments = assemble_openai_tool_calls(chunks)[0]["arguments"]
    assert arguments == "".join(pieces[:3])
    with pytest.raises(ValueError):
        json.loads(arguments)
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 5

    # A scripted "length" finish cuts the last call after half its pieces.
    server.enqueue(Scenario(tool_calls=[FakeToolCall("get_time", TIME_ARGS), weather], finish="length"))
    chunks = await collect_openai(oai)
    assembled = assemble_openai_tool_calls(chunks)
    assert assembled[0]["arguments"] == json.dumps(TIME_ARGS)
    assert assembled[1]["arguments"] == "".join(pieces[: len(pieces) // 2])
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_openai_refusal_streams_in_delta_refusal(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    server.enqueue(Scenario(refusal="I can't help with that."))
    chunks = await collect_openai(oai)

    first, *middle, last = chunks
    assert (first.choices[0].delta.role, first.choices[0].delta.content, first.choices[0].delta.refusal) == (
        "assistant",
        None,
        "",
    )
    assert [c.choices[0].delta.refusal for c in middle] == tokenize("I can't help with that.")
    assert openai_text(chunks) == ""  # a client reading only delta.content shows nothing
    assert last.choices[0].finish_reason == "stop"


async def test_anthropic_text_then_tool_use_blocks(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    calls = [FakeToolCall("get_weather", WEATHER_ARGS), FakeToolCall("get_time", TIME_ARGS, id="toolu_01scripted")]
    server.enqueue(Scenario(text="Let me check.", tool_calls=calls, split_arguments=5))
    events = await collect_anthropic(claude, tools=[WEATHER_TOOL_ANTHROPIC])

    blocks = anthropic_blocks(events)
    assert sorted(blocks) == [0, 1, 2]
    assert isinstance(blocks[0]["start"], anthropic.types.TextBlock)
    assert "".join(d.text for d in blocks[0]["deltas"]) == "Let me check."
    ids = server.requests[-1].tool_call_ids
    assert ids[0].startswith("toolu_01") and len(ids[0]) == 30 and ids[1] == "toolu_01scripted"
    for index, call in zip((1, 2), calls, strict=True):
        block = blocks[index]
        start = block["start"]
        assert isinstance(start, anthropic.types.ToolUseBlock)
        assert (start.id, start.name, start.input) == (ids[index - 1], call.name, {})
        assert all(isinstance(d, anthropic.types.InputJSONDelta) for d in block["deltas"])
        assert block["deltas"][0].partial_json == ""  # the empty first piece the real API often sends
        assert [d.partial_json for d in block["deltas"][1:]] == argument_pieces(call.arguments_json, 5)
        assert joined_partial_json(block) == call.arguments_json
        assert json.loads(joined_partial_json(block)) == call.arguments
        assert block["stopped"]
    # Blocks are sequential: each stops before the next starts.
    starts_and_stops = [(e.type, e.index) for e in events if e.type in ("content_block_start", "content_block_stop")]
    assert starts_and_stops == [(t, i) for i in range(3) for t in ("content_block_start", "content_block_stop")]

    delta = events[-2]
    assert delta.delta.stop_reason == "tool_use"
    n_pieces = sum(len(argument_pieces(call.arguments_json, 5)) for call in calls)
    assert delta.usage.output_tokens == len(tokenize("Let me check.")) + n_pieces  # the empty pieces do not count


async def test_anthropic_max_tokens_inside_a_tool_block(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    calls = [FakeToolCall("get_time", TIME_ARGS), FakeToolCall("get_weather", WEATHER_ARGS)]
    server.enqueue(Scenario(text="Sure.", tool_calls=calls, finish="max_tokens"))
    events = await collect_anthropic(claude)

    blocks = anthropic_blocks(events)
    assert [blocks[i]["stopped"] for i in (0, 1, 2)] == [True, True, False]  # no content_block_stop for the last
    assert json.loads(joined_partial_json(blocks[1])) == TIME_ARGS
    partial = joined_partial_json(blocks[2])
    pieces = argument_pieces(calls[1].arguments_json, 7)
    assert partial == "".join(pieces[: len(pieces) // 2])
    with pytest.raises(ValueError):
        json.loads(partial)
    assert [e.type for e in events[-3:]] == ["content_block_delta", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "max_tokens"

    # The request's max_tokens cuts the same way: 1 text token + 2 pieces.
    server.enqueue(Scenario(text="Sure.", tool_calls=calls[1:]))
    events = await collect_anthropic(claude, max_tokens=3)
    blocks = anthropic_blocks(events)
    assert blocks[1]["stopped"] is False
    assert joined_partial_json(blocks[1]) == "".join(pieces[:2])
    assert (events[-2].delta.stop_reason, events[-2].usage.output_tokens) == ("max_tokens", 3)

    # The SDK's stream helper does not tell: its final message holds the cut call as an ordinary-looking
    # tool_use block whose input is what jiter's partial mode made of the prefix (the finished keys only,
    # the unfinished string dropped), next to stop_reason "max_tokens". Only the stop reason shows it is cut.
    server.enqueue(Scenario(text="Sure.", tool_calls=calls[1:], finish="max_tokens"))
    request = anthropic_request()
    del request["stream"]
    async with claude.messages.stream(**request) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [
        ("text", None),
        ("tool_use", {"city": "Zürich"}),
    ]


async def test_raw_string_arguments_are_sent_verbatim(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    broken = FakeToolCall("get_weather", '{"city": Zürich}')  # not JSON
    server.enqueue(Scenario(provider="openai", tool_calls=[broken], split_arguments=3))
    server.enqueue(Scenario(provider="anthropic", tool_calls=[broken], split_arguments=3))

    assert assemble_openai_tool_calls(await collect_openai(oai))[0]["arguments"] == '{"city": Zürich}'
    events = await collect_anthropic(claude)
    assert isinstance(events[1].content_block, anthropic.types.ToolUseBlock)  # the tool block is the first
    assert joined_partial_json(anthropic_blocks(events)[0]) == '{"city": Zürich}'

    # anthropic 2.14's stream helper parses the pieces as they come and raises a plain ValueError mid-stream.
    server.enqueue(Scenario(tool_calls=[broken]))
    request = anthropic_request()
    del request["stream"]
    with pytest.raises(ValueError, match="Unable to parse tool parameter JSON"):
        async with claude.messages.stream(**request) as stream:
            await stream.get_final_message()


async def test_anthropic_redacted_thinking_block_comes_first(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(redacted_thinking=True, thinking="Visible part.", text="Done."))
    events = await collect_anthropic(claude)
    blocks = anthropic_blocks(events)
    assert isinstance(blocks[0]["start"], anthropic.types.RedactedThinkingBlock) and blocks[0]["start"].data
    assert blocks[0]["deltas"] == [] and blocks[0]["stopped"]
    assert isinstance(blocks[1]["start"], anthropic.types.ThinkingBlock)
    assert "".join(d.text for d in blocks[2]["deltas"]) == "Done."
    assert events[-2].usage.output_tokens == len(tokenize("Visible part.")) + 1

    server.enqueue(Scenario(redacted_thinking=True, text="Done."))
    request = anthropic_request()
    del request["stream"]
    async with claude.messages.stream(**request) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["redacted_thinking", "text"]


async def test_anthropic_thinking_block_precedes_text(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(Scenario(thinking="The user wants a story. Keep it short.", text="Once upon a time."))
    events = await collect_anthropic(claude)

    blocks = anthropic_blocks(events)
    assert isinstance(blocks[0]["start"], anthropic.types.ThinkingBlock)
    *thinking, signature = blocks[0]["deltas"]
    assert all(isinstance(d, anthropic.types.ThinkingDelta) for d in thinking)
    assert "".join(d.thinking for d in thinking) == "The user wants a story. Keep it short."
    assert isinstance(signature, anthropic.types.SignatureDelta) and signature.signature
    assert blocks[0]["stopped"]
    assert isinstance(blocks[1]["start"], anthropic.types.TextBlock)
    assert "".join(d.text for d in blocks[1]["deltas"]) == "Once upon a time."
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == len(tokenize("The user wants a story. Keep it short.")) + 4

    # A client reading only text gets the text.
    server.enqueue(Scenario(thinking="Hmm.", text="Once upon a time."))
    request = anthropic_request()
    del request["stream"]
    async with claude.messages.stream(**request) as stream:
        assert "".join([piece async for piece in stream.text_stream]) == "Once upon a time."
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]


def definition_tokens(tool: dict[str, Any]) -> int:
    """A tool definition's input tokens by the fake's rule: the words of its JSON (keys sorted), plus 4."""
    return len(json.dumps(tool, sort_keys=True).split()) + 4


async def test_openai_follow_up_with_tool_results(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    calls = [FakeToolCall("get_weather", {"city": "Paris"}), FakeToolCall("get_weather", {"city": "Rome"})]
    server.enqueue(Scenario(tool_calls=calls), Scenario(text="Sunny in both."))
    tools = [WEATHER_TOOL_OPENAI]
    assembled = assemble_openai_tool_calls(await collect_openai(oai, tools=tools))

    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in assembled.values()
            ],
        },
        {"role": "tool", "tool_call_id": assembled[0]["id"], "content": "Sunny, 25 C"},
        {"role": "tool", "tool_call_id": assembled[1]["id"], "content": [{"type": "text", "text": "Sunny, 28 C"}]},
    ]
    stream = await oai.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, tools=tools, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert openai_text(chunks) == "Sunny in both."
    record = server.requests[-1]
    assert (record.status, record.outcome) == (200, "completed")
    assert record.messages == messages
    assert record.tools == tools
    assert last_user_text(record.json) == "Sunny, 25 C Sunny, 28 C"
    assert chunks[-1].usage.prompt_tokens == input_token_count(record.json) == (
        5 + 4 + 6 + 4 + 3 + 4 + 3 + 4 + definition_tokens(WEATHER_TOOL_OPENAI)
    )
    assert server.pending_scenarios() == []

    # Without a scenario the follow-up's default reply echoes the tool results.
    assert openai_text(await collect_openai(oai, messages=messages, tools=tools)) == (
        f"Echo from {OPENAI_MODEL}: Sunny, 25 C Sunny, 28 C"
    )


async def test_anthropic_follow_up_with_tool_results(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(
        Scenario(text="Checking.", tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]),
        Scenario(text="Sunny."),
    )
    tools = [WEATHER_TOOL_ANTHROPIC]
    blocks = anthropic_blocks(await collect_anthropic(claude, tools=tools))
    tool_use = blocks[1]["start"]

    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": tool_use.id,
                    "name": tool_use.name,
                    "input": json.loads(joined_partial_json(blocks[1])),
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 25 C"},
                {"type": "tool_result", "tool_use_id": "toolu_01other", "content": [{"type": "text", "text": "ok"}]},
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]
    events = await collect_anthropic(claude, messages=messages, tools=tools)

    assert anthropic_text(events) == "Sunny."
    record = server.requests[-1]
    assert (record.status, record.outcome) == (200, "completed")
    assert record.messages == messages
    assert record.tools == tools
    assert last_user_text(record.json) == "Sunny, 25 C ok Thanks."
    assert events[0].message.usage.input_tokens == input_token_count(record.json) == (
        3 + 4 + 3 + 4 + 5 + 4 + definition_tokens(WEATHER_TOOL_ANTHROPIC)
    )
    assert default_reply(record.json) == f"Echo from {ANTHROPIC_MODEL}: Sunny, 25 C ok Thanks."


async def test_non_streaming_tool_calls(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", text="Checking.", tool_calls=[FakeToolCall("get_time", TIME_ARGS)]))
    server.enqueue(
        Scenario(
            provider="anthropic", thinking="Hmm.", text="Checking.", tool_calls=[FakeToolCall("get_time", TIME_ARGS)]
        )
    )

    completion = await oai.chat.completions.create(**openai_request(stream=False))
    message = completion.choices[0].message
    assert (message.content, completion.choices[0].finish_reason) == ("Checking.", "tool_calls")
    assert [(tc.id, tc.function.name, json.loads(tc.function.arguments)) for tc in message.tool_calls or []] == [
        (server.requests[-1].tool_call_ids[0], "get_time", TIME_ARGS)
    ]

    reply = await claude.messages.create(**anthropic_request(stream=False))
    assert [block.type for block in reply.content] == ["thinking", "text", "tool_use"]
    assert isinstance(reply.content[2], anthropic.types.ToolUseBlock) and reply.content[2].input == TIME_ARGS
    assert reply.stop_reason == "tool_use"


async def test_raw_wire_tool_calls(server: FakeUpstream) -> None:
    call = FakeToolCall("get_time", {"tz": "UTC"}, id="call_fixed")
    server.enqueue(Scenario(tool_calls=[call], split_arguments=6))
    chunks = split_chunks(
        (await raw_exchange(server, "/v1/chat/completions", openai_request())).split(b"\r\n\r\n", 1)[1]
    )
    deltas = [json.loads(chunk.removeprefix(b"data: "))["choices"][0]["delta"] for chunk in chunks[:-2]]
    assert deltas == [
        {"role": "assistant", "content": None, "refusal": None},
        {
            "tool_calls": [
                {"index": 0, "id": "call_fixed", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"tz":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "UTC"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
        {},
    ]

    call = FakeToolCall("get_time", {"tz": "UTC"}, id="toolu_fixed")
    server.enqueue(Scenario(tool_calls=[call], split_arguments=6))
    data = await raw_exchange(server, "/v1/messages", anthropic_request(), "anthropic-version: 2023-06-01\r\n")
    events = [
        json.loads(chunk.decode().split("\n")[1].removeprefix("data: "))
        for chunk in split_chunks(data.split(b"\r\n\r\n", 1)[1])[:-1]
    ]
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1]["content_block"] == {"type": "tool_use", "id": "toolu_fixed", "name": "get_time", "input": {}}
    assert [e["delta"] for e in events[3:7]] == [
        {"type": "input_json_delta", "partial_json": piece} for piece in ["", '{"tz":', ' "UTC"', "}"]
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 3


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "openai_error", "anthropic_error"),
    [
        (500, openai.InternalServerError, anthropic.InternalServerError),
        (429, openai.RateLimitError, anthropic.RateLimitError),
        (401, openai.AuthenticationError, anthropic.AuthenticationError),
    ],
)
async def test_http_error_status(
    server: FakeUpstream,
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    status: int,
    openai_error: type[openai.APIStatusError],
    anthropic_error: type[anthropic.APIStatusError],
) -> None:
    server.enqueue(Scenario(provider="openai", status=status, retry_after=7))
    server.enqueue(Scenario(provider="anthropic", status=status, retry_after=7))

    with pytest.raises(openai_error) as oai_err:
        await collect_openai(oai)
    with pytest.raises(anthropic_error) as claude_err:
        await collect_anthropic(claude)

    assert oai_err.value.status_code == claude_err.value.status_code == status
    assert oai_err.value.response.headers["retry-after"] == claude_err.value.response.headers["retry-after"] == "7"
    assert set(oai_err.value.body) == {"message", "type", "param", "code"}  # the SDK unwraps {"error": ...}
    assert claude_err.value.body["type"] == "error"
    assert claude_err.value.body["error"]["type"] in {"api_error", "rate_limit_error", "authentication_error"}
    assert [r.status for r in server.requests] == [status, status]


async def test_anthropic_overloaded_status(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(Scenario(status=529))
    with pytest.raises(anthropic.OverloadedError) as err:
        await collect_anthropic(claude)
    assert err.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


async def test_in_band_error(server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(Scenario(provider="openai", error_after_tokens=2))
    server.enqueue(Scenario(provider="anthropic", error_after_tokens=2))

    chunks: list[Any] = []
    with pytest.raises(openai.APIError) as oai_err:
        stream = await oai.chat.completions.create(**openai_request())
        async for chunk in stream:
            chunks.append(chunk)
    assert type(oai_err.value) is openai.APIError  # the base class: no status code to look at
    assert oai_err.value.body["type"] == "server_error"
    assert len(chunks) == 1 + 2

    events: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as claude_err:
        stream2 = await claude.messages.create(**anthropic_request())
        async for event in stream2:
            events.append(event)
    assert type(claude_err.value) is anthropic.APIStatusError  # not OverloadedError
    assert claude_err.value.status_code == 200
    assert claude_err.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert anthropic_text(events) == "".join(tokenize(default_reply(anthropic_request()))[:2])

    assert [r.outcome for r in server.requests] == ["error_in_band", "error_in_band"]


async def test_clean_close_before_final_event_raises_nothing(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", close_after_tokens=3))
    server.enqueue(Scenario(provider="anthropic", close_after_tokens=3))

    chunks = await collect_openai(oai, stream_options={"include_usage": True})
    assert len(chunks) == 1 + 3
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)

    events = await collect_anthropic(claude)
    assert [e.type for e in events] == ["message_start", "content_block_start"] + ["content_block_delta"] * 3

    assert [r.outcome for r in server.requests] == ["closed_early", "closed_early"]


async def test_a_stream_the_server_will_close_announces_it_so_the_client_never_reuses_the_socket(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    """Seen in CI: without ``Connection: close`` the SDK pooled the connection and sent the next request into the
    closing socket ("connection failed"), so that request never arrived."""
    server.enqueue(Scenario(provider="openai", close_after_tokens=0), Scenario(provider="openai", text="again"))
    server.enqueue(Scenario(provider="anthropic", close_after_tokens=0), Scenario(provider="anthropic", text="again"))

    closing = await oai.chat.completions.create(**openai_request())
    assert closing.response.headers["connection"] == "close"
    assert [chunk async for chunk in closing]
    assert openai_text(await collect_openai(oai)) == "again"

    closing_claude = await claude.messages.create(**anthropic_request())
    assert closing_claude.response.headers["connection"] == "close"
    assert [event async for event in closing_claude]
    assert anthropic_text(await collect_anthropic(claude)) == "again"

    assert [r.outcome for r in server.requests] == ["closed_early", "completed"] * 2


async def test_connection_reset(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", reset_after_tokens=2))
    server.enqueue(Scenario(provider="anthropic", reset_after_tokens=2))

    with pytest.raises(openai.APIConnectionError) as oai_err:
        await collect_openai(oai)
    assert not isinstance(oai_err.value, openai.APITimeoutError)
    assert isinstance(oai_err.value.__cause__, httpx2.ReadError)

    # anthropic 2.14 does not wrap errors raised while iterating a stream: the raw httpx2 error escapes.
    with pytest.raises(httpx2.ReadError) as claude_err:
        await collect_anthropic(claude)
    assert not isinstance(claude_err.value, anthropic.APIError)

    assert [r.outcome for r in server.requests] == ["reset", "reset"]


async def test_hang_before_first_token_times_out_and_server_sees_disconnect(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", hang_before_first_token=True))
    server.enqueue(Scenario(provider="anthropic", hang_before_first_token=True))

    chunks: list[Any] = []
    with pytest.raises(openai.APITimeoutError):
        stream = await oai.chat.completions.create(**openai_request(), timeout=0.2)
        async for chunk in stream:
            chunks.append(chunk)
    assert [c.choices[0].delta.content for c in chunks] == [""]  # only the role chunk came

    # Again the raw httpx2 error, not anthropic.APITimeoutError.
    with pytest.raises(httpx2.ReadTimeout):
        await collect_anthropic(claude, timeout=0.2)

    assert await server.wait_for_disconnects(2, within=2.0)
    assert await server.wait_until(lambda: server.active_streams == 0, within=2.0)
    assert [(r.outcome, r.tokens_sent) for r in server.requests] == [("client_disconnected", 0)] * 2


async def test_hang_after_tokens(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    server.enqueue(Scenario(hang_after_tokens=2))
    chunks: list[Any] = []
    with pytest.raises(openai.APITimeoutError):
        stream = await oai.chat.completions.create(**openai_request(), timeout=0.2)
        async for chunk in stream:
            chunks.append(chunk)
    assert openai_text(chunks) == "Echo from "
    assert await server.wait_for_disconnects(1)


async def test_pings_while_hanging_defeat_the_read_timeout(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    # Pings every 25 ms against a 0.5 s read timeout: margin enough for a loaded machine.
    server.ping_interval_ms = 25
    server.enqueue(Scenario(hang_after_tokens=1, ping_while_hanging=True))
    events: list[Any] = []

    async def consume() -> None:
        stream = await claude.messages.create(**anthropic_request(), timeout=0.5)
        async for event in stream:
            events.append(event)

    # The SDK's 0.5 s read timeout never fires; only our own deadline ends the wait.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), timeout=1.2)
    assert [e.type for e in events] == ["message_start", "content_block_start", "content_block_delta"]
    assert await server.wait_for_disconnects(1)
    assert server.requests[-1].outcome == "client_disconnected"


async def test_malformed_event_escapes_as_json_decode_error(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", malformed_after_tokens=2))
    server.enqueue(Scenario(provider="anthropic", malformed_after_tokens=2))

    # Neither SDK wraps it: a bare json.JSONDecodeError (a ValueError) leaves the iterator, no APIError.
    chunks: list[Any] = []
    with pytest.raises(json.JSONDecodeError, match=r"^Unterminated string starting at: line 1 column \d+") as oai_err:
        stream = await oai.chat.completions.create(**openai_request())
        async for chunk in stream:
            chunks.append(chunk)
    assert not isinstance(oai_err.value, openai.APIError)
    assert openai_text(chunks) == "Echo from "

    events: list[Any] = []
    with pytest.raises(json.JSONDecodeError) as claude_err:
        stream2 = await claude.messages.create(**anthropic_request())
        async for event in stream2:
            events.append(event)
    assert not isinstance(claude_err.value, anthropic.APIError)
    assert str(claude_err.value) == "Unterminated string starting at: line 1 column 77 (char 76)"
    assert anthropic_text(events) == "Echo from "

    # The stream helpers let it through the same way.
    server.enqueue(Scenario(malformed_after_tokens=1))
    request = anthropic_request()
    del request["stream"]
    with pytest.raises(json.JSONDecodeError):
        async with claude.messages.stream(**request) as helper:
            await helper.get_final_message()

    assert [(r.outcome, r.status, r.tokens_sent) for r in server.requests] == [
        ("malformed", 200, 2),
        ("malformed", 200, 2),
        ("malformed", 200, 1),
    ]
    assert await server.wait_until(lambda: server.active_streams == 0)
    assert server.disconnects == 0


async def test_drop_connection_is_a_connection_error(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    await collect_openai(oai)  # the drop comes on a reused keep-alive connection
    server.enqueue(Scenario(provider="openai", drop_connection=True))
    server.enqueue(Scenario(provider="anthropic", drop_connection=True))

    with pytest.raises(openai.APIConnectionError) as oai_err:
        await collect_openai(oai)
    with pytest.raises(anthropic.APIConnectionError) as claude_err:
        await collect_anthropic(claude)

    for err in (oai_err.value, claude_err.value):
        assert not isinstance(err, openai.APITimeoutError | anthropic.APITimeoutError)
        assert str(err) == "Connection error."
        assert isinstance(err.__cause__, httpx2.ReadError)
    assert server.connections == 2
    # The next request gets a fresh connection and a normal answer.
    assert openai_text(await collect_openai(oai)) == default_reply(openai_request())
    assert server.connections == 3

    n_tokens = len(tokenize(default_reply(openai_request())))
    assert [(r.outcome, r.status, r.tokens_sent) for r in server.requests] == [
        ("completed", 200, n_tokens),
        ("dropped", None, 0),
        ("dropped", None, 0),
        ("completed", 200, n_tokens),
    ]
    assert server.disconnects == 0
    assert await server.wait_until(lambda: server.active_streams == 0)  # counters move on the server's thread


async def test_hang_before_headers_sends_nothing_until_the_client_leaves(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="openai", hang_before_headers=True))
    server.enqueue(Scenario(provider="anthropic", hang_before_headers=True))

    pending = asyncio.ensure_future(collect_openai(oai, timeout=0.3))
    # While hanging it is an active stream with no status line sent.
    assert await server.wait_until(lambda: server.active_streams == 1, within=1.0)
    assert server.requests[-1].status is None and server.requests[-1].outcome == "pending"
    with pytest.raises(openai.APITimeoutError) as oai_err:
        await pending
    with pytest.raises(anthropic.APITimeoutError) as claude_err:
        await collect_anthropic(claude, timeout=0.3)

    assert str(oai_err.value) == "Request timed out."
    assert str(claude_err.value).startswith("Request timed out or interrupted.")
    assert isinstance(oai_err.value.__cause__, httpx2.ReadTimeout)
    assert isinstance(claude_err.value.__cause__, httpx2.ReadTimeout)
    assert await server.wait_for_disconnects(2, within=2.0)
    assert await server.wait_until(lambda: server.active_streams == 0, within=2.0)
    assert [(r.outcome, r.status, r.first_token_at) for r in server.requests] == [
        ("client_disconnected", None, None)
    ] * 2


async def test_hang_limit_closes_the_connection(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    # The clients would wait 5 s; the hang limit (scenario's, or the server's knob) ends each hang first.
    server.ping_interval_ms = 25
    server.hang_limit_ms = 150
    server.enqueue(
        Scenario(provider="openai", hang_before_headers=True),
        Scenario(provider="anthropic", hang_before_headers=True, hang_limit_ms=100),
        Scenario(provider="openai", hang_after_tokens=2),
        Scenario(provider="anthropic", hang_after_tokens=2, ping_while_hanging=True),
        Scenario(provider="openai", hang_before_first_token=True),  # non-streaming: hangs before the status line
    )

    # Before the status line: both SDKs wrap httpx2's RemoteProtocolError.
    started = time.monotonic()
    with pytest.raises(openai.APIConnectionError) as oai_err:
        await collect_openai(oai, timeout=5)
    assert 0.15 <= time.monotonic() - started < 2.0
    with pytest.raises(anthropic.APIConnectionError) as claude_err:
        await collect_anthropic(claude, timeout=5)
    for err in (oai_err.value, claude_err.value):
        assert not isinstance(err, openai.APITimeoutError | anthropic.APITimeoutError)
        assert isinstance(err.__cause__, httpx2.RemoteProtocolError)
        assert str(err.__cause__) == "Server disconnected without sending a response."

    # Inside the stream: a chunked body without its end. openai wraps it; anthropic lets httpx2's error through.
    chunks: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as oai_mid:
        stream = await oai.chat.completions.create(**openai_request(), timeout=5)
        async for chunk in stream:
            chunks.append(chunk)
    assert openai_text(chunks) == "Echo from "
    incomplete = "peer closed connection without sending complete message body (incomplete chunked read)"
    assert isinstance(oai_mid.value.__cause__, httpx2.RemoteProtocolError)
    assert str(oai_mid.value.__cause__) == incomplete
    with pytest.raises(httpx2.RemoteProtocolError, match=r"incomplete chunked read"):
        await collect_anthropic(claude, timeout=5)

    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(**openai_request(stream=False), timeout=5)

    assert [(r.outcome, r.status) for r in server.requests] == [
        ("hang_expired", None),
        ("hang_expired", None),
        ("hang_expired", 200),
        ("hang_expired", 200),
        ("hang_expired", None),
    ]
    limits = [0.150, 0.100, 0.150, 0.150, 0.150]
    for record, limit in zip(server.requests, limits, strict=True):
        assert record.ended_at is not None
        assert limit <= record.ended_at - record.received_at < limit + 1.0
    assert server.disconnects == 0
    assert await server.wait_until(lambda: server.active_streams == 0)


# --------------------------------------------------------------------------------------------------
# Random faults
# --------------------------------------------------------------------------------------------------

# What each random fault looks like to each SDK (max_retries=0) and on the server. None: nothing is raised.
FAULT_EFFECTS: dict[FaultKind, tuple[type[Exception] | None, type[Exception] | None, str]] = {
    "status_500": (openai.InternalServerError, anthropic.InternalServerError, "error_status"),
    "status_429": (openai.RateLimitError, anthropic.RateLimitError, "error_status"),
    "drop_connection": (openai.APIConnectionError, anthropic.APIConnectionError, "dropped"),
    "error_in_band": (openai.APIError, anthropic.APIStatusError, "error_in_band"),
    "close_early": (None, None, "closed_early"),
    "reset": (openai.APIConnectionError, httpx2.ReadError, "reset"),
    "malformed": (json.JSONDecodeError, json.JSONDecodeError, "malformed"),
    # Anthropic pings while hanging, then the hang limit closes the chunked body unfinished.
    "hang_before_first_token": (openai.APIConnectionError, httpx2.RemoteProtocolError, "hang_expired"),
    "hang_mid_stream": (openai.APIConnectionError, httpx2.RemoteProtocolError, "hang_expired"),
    "status_529": (openai.InternalServerError, anthropic.APIStatusError, "error_status"),
    "retry_after_429": (openai.RateLimitError, anthropic.RateLimitError, "error_status"),
    # Nothing at all, then the hang limit closes the connection: "Server disconnected without sending a response."
    "hang_before_headers": (openai.APIConnectionError, anthropic.APIConnectionError, "hang_expired"),
}


async def drive(server: FakeUpstream, n_requests: int) -> list[Exception | None]:
    """Send streaming requests alternately to OpenAI and Anthropic; what each raised (bounded: 5 s timeouts)."""
    oai = openai.AsyncOpenAI(api_key="test", base_url=server.openai_base_url, max_retries=0, timeout=5)
    claude = anthropic.AsyncAnthropic(api_key="test", base_url=server.anthropic_base_url, max_retries=0, timeout=5)
    raised: list[Exception | None] = []
    try:
        for i in range(n_requests):
            try:
                await (collect_openai(oai) if i % 2 == 0 else collect_anthropic(claude))
                raised.append(None)
            except Exception as err:  # every fault's own exception, checked by the caller
                raised.append(err)
    finally:
        await oai.close()
        await claude.close()
    return raised


async def test_random_faults_at_rate_one_fault_every_request() -> None:
    async with FakeUpstream(fault_rate=1.0, fault_seed=1234, hang_limit_ms=100, ping_interval_ms=20) as server:
        raised = await drive(server, 60)

    faults = [r.fault for r in server.requests]
    assert None not in faults
    assert set(faults) == set(FAULT_KINDS)
    assert server.fault_counts == Counter(faults)
    for index, (record, err) in enumerate(zip(server.requests, raised, strict=True)):
        assert record.fault is not None
        openai_error, anthropic_error, outcome = FAULT_EFFECTS[record.fault]
        expected = openai_error if index % 2 == 0 else anthropic_error
        assert record.outcome == outcome, record.fault
        if expected is None:
            assert err is None, record.fault
        else:
            assert isinstance(err, expected), (record.fault, record.provider, err)
        if record.fault.startswith("status_"):
            assert record.status == int(record.fault.removeprefix("status_"))
            assert record.scenario is not None and record.scenario.retry_after == (0 if record.status == 429 else None)
        if record.fault == "retry_after_429":
            assert record.status == 429
            assert record.scenario is not None and record.scenario.retry_after == FAULT_RETRY_AFTER_S
        if record.fault.startswith("hang_"):
            # Bounded by the hang limit, the client never hung up.
            assert record.ended_at is not None and 0.1 <= record.ended_at - record.received_at < 0.1 + 1.0
    # Mid-stream faults come after at least one token, at most after the last.
    n_tokens = {
        "openai": len(tokenize(default_reply(openai_request()))),
        "anthropic": len(tokenize(default_reply(anthropic_request()))),
    }
    for record in server.requests:
        if record.fault in ("error_in_band", "close_early", "reset", "malformed", "hang_mid_stream"):
            assert record.provider is not None
            assert 1 <= record.tokens_sent <= n_tokens[record.provider]
    assert server.disconnects == 0
    assert server.active_streams == 0


async def test_random_faults_are_seeded_limited_to_their_kinds_and_reset() -> None:
    kinds: tuple[FaultKind, ...] = ("status_500", "drop_connection", "close_early")
    async with FakeUpstream(fault_rate=0.5, fault_seed=7, fault_kinds=kinds) as server:
        await drive(server, 30)
        first_run = [r.fault for r in server.requests]
        assert set(first_run) == {None, *kinds}  # about half faulted, only the configured kinds
        assert sum(server.fault_counts.values()) == 30 - first_run.count(None)

        def settings() -> tuple[object, ...]:
            return (server.fault_rate, server.fault_seed, server.fault_kinds, server.hang_limit_ms)

        server.fault_rate, server.fault_kinds, server.hang_limit_ms = 0.0, ("reset",), 5.0
        assert settings() == (0.0, 7, ("reset",), 5.0)
        server.reset()
        assert settings() == (0.5, 7, kinds, None)
        assert server.fault_counts == Counter()
        await drive(server, 30)
        assert [r.fault for r in server.requests] == first_run  # reseeded: the same faults again

        # A queued scenario wins over a fault, and non-streaming requests are never faulted.
        server.fault_rate = 1.0
        server.enqueue(Scenario(text="scripted"))
        oai = openai.AsyncOpenAI(api_key="test", base_url=server.openai_base_url, max_retries=0, timeout=5)
        try:
            assert openai_text(await collect_openai(oai)) == "scripted"
            completion = await oai.chat.completions.create(**openai_request(stream=False))
            assert completion.choices[0].message.content == default_reply(openai_request())
        finally:
            await oai.close()
        assert [(r.fault, r.outcome) for r in server.requests[-2:]] == [(None, "completed")] * 2


async def test_no_random_faults_at_rate_zero(server: FakeUpstream) -> None:
    assert server.fault_rate == 0.0 and server.fault_kinds == FAULT_KINDS
    raised = await drive(server, 10)
    assert raised == [None] * 10
    assert [(r.fault, r.outcome) for r in server.requests] == [(None, "completed")] * 10
    assert server.fault_counts == Counter()


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fault_rate"):
        FakeUpstream(fault_rate=1.5)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FakeUpstream(fault_kinds=("status_500", "meteor_strike"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fault_kinds"):
        FakeUpstream(fault_rate=0.5, fault_kinds=())


# --------------------------------------------------------------------------------------------------
# Timing, recording, concurrency, other endpoints
# --------------------------------------------------------------------------------------------------


async def test_ttft_and_token_delay_are_honoured(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.ttft_ms, server.token_delay_ms = 150, 30
    server.enqueue(Scenario(tokens=["a ", "b ", "c ", "d"]), Scenario(tokens=["a ", "b ", "c ", "d"]))

    async def content_times(events: AsyncIterator[Any], is_content: Any) -> list[float]:
        return [time.monotonic() async for event in events if is_content(event)]

    started = time.monotonic()
    stream = await oai.chat.completions.create(**openai_request())
    oai_times = await content_times(stream, lambda c: bool(c.choices and c.choices[0].delta.content))
    oai_started = started

    started = time.monotonic()
    stream2 = await claude.messages.create(**anthropic_request())
    claude_times = await content_times(stream2, lambda e: e.type == "content_block_delta")

    for begin, times in ((oai_started, oai_times), (started, claude_times)):
        # Token k leaves the server no sooner than ttft + k * delay after the request: measured from the start,
        # the bounds hold whatever the scheduling jitter on the client's side.
        assert [round(t - begin, 3) >= 0.150 + k * 0.030 for k, t in enumerate(times)] == [True] * 4
    for record in server.requests:
        assert record.first_token_at is not None and record.ended_at is not None
        assert record.first_token_at - record.received_at >= 0.150
        assert record.ended_at - record.received_at >= 0.150 + 3 * 0.030


async def test_requests_are_recorded(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    await collect_openai(oai, stream_options={"include_usage": True})
    await collect_anthropic(claude)

    openai_record, anthropic_record = server.requests
    assert (openai_record.provider, openai_record.path, openai_record.method) == (
        "openai",
        "/v1/chat/completions",
        "POST",
    )
    assert openai_record.model == OPENAI_MODEL
    assert openai_record.messages == [{"role": "user", "content": PROMPT}]
    assert openai_record.json["stream_options"] == {"include_usage": True}
    assert openai_record.stream is True
    assert openai_record.headers["authorization"] == "Bearer test"
    assert openai_record.headers["content-type"] == "application/json"

    assert (anthropic_record.provider, anthropic_record.path) == ("anthropic", "/v1/messages")
    assert anthropic_record.model == ANTHROPIC_MODEL
    assert anthropic_record.json["max_tokens"] == 256
    # anthropic 2.14 sends the API key as a bearer token, not as x-api-key.
    assert anthropic_record.headers["authorization"] == "Bearer test"
    assert "anthropic-version" in anthropic_record.headers

    for record in server.requests:
        assert record.status == 200
        assert record.outcome == "completed"
        assert record.ended_at is not None and record.ended_at >= record.received_at
    assert await server.wait_until(lambda: server.active_streams == 0)  # counters move on the server's thread


async def test_scenarios_are_taken_per_provider(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(Scenario(provider="anthropic", text="for claude"), Scenario(text="for anyone"))

    assert openai_text(await collect_openai(oai)) == "for anyone"
    assert openai_text(await collect_openai(oai)) == default_reply(openai_request())
    assert anthropic_text(await collect_anthropic(claude)) == "for claude"
    assert server.pending_scenarios() == []


async def test_default_tokens_sets_reply_length(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    server.default_tokens = 25
    chunks = await collect_openai(oai)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 25


async def test_non_streaming_requests(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    completion = await oai.chat.completions.create(**openai_request(stream=False))
    assert completion.choices[0].message.content == default_reply(openai_request())
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == input_token_count(openai_request())

    message = await claude.messages.create(**anthropic_request(stream=False))
    assert message.content[0].type == "text"
    assert message.content[0].text == default_reply(anthropic_request())
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(tokenize(default_reply(anthropic_request())))


async def test_unknown_path_is_404_in_each_providers_shape(
    server: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as oai_err:
        await oai.models.list()
    assert oai_err.value.body["type"] == "invalid_request_error"

    with pytest.raises(anthropic.NotFoundError) as claude_err:
        await claude.models.list()
    assert claude_err.value.body["error"]["type"] == "not_found_error"
    assert [r.provider for r in server.requests] == [None, None]


async def test_keep_alive_reuses_the_connection(server: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    for _ in range(3):
        await collect_openai(oai, stream_options={"include_usage": True})
    assert server.connections == 1


async def test_fifty_concurrent_streams(server: FakeUpstream) -> None:
    server.ttft_ms, server.token_delay_ms = 100, 10
    n_streams = 60
    client = openai.AsyncOpenAI(api_key="test", base_url=server.openai_base_url, max_retries=0)
    try:

        async def one(i: int) -> str:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": f"stream {i}"}], stream=True
            )
            return openai_text([chunk async for chunk in stream])

        started = time.monotonic()
        texts = await asyncio.gather(*(one(i) for i in range(n_streams)))
        elapsed = time.monotonic() - started
    finally:
        await client.close()

    assert texts == [f"Echo from {OPENAI_MODEL}: stream {i}" for i in range(n_streams)]
    # They ran side by side: at least 50 were open at once on the server. No absolute upper bound on the
    # wall time (it failed under load in CI); one stream cannot take less than its nominal ~0.15 s, so
    # one after the other they would take at least n_streams times that.
    assert server.peak_active_streams >= 50
    nominal = 0.100 + 0.010 * (len(tokenize(texts[0])) - 1)
    assert all(r.ended_at is not None and r.ended_at - r.received_at >= nominal for r in server.requests)
    assert elapsed < n_streams * nominal


# --------------------------------------------------------------------------------------------------
# The raw wire
# --------------------------------------------------------------------------------------------------


async def raw_exchange(server: FakeUpstream, path: str, body: dict[str, Any], headers: str = "") -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    payload = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    data = await reader.read()  # until the server closes (Connection: close)
    writer.close()
    await writer.wait_closed()
    return data


def split_chunks(body: bytes, terminated: bool = True) -> list[bytes]:
    """The chunks of a chunked body, the terminating empty one included; ``terminated=False`` for a body
    that stops without it (the connection closed)."""
    chunks: list[bytes] = []
    while True:
        if not terminated and body == b"":
            assert b"" not in chunks
            return chunks
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]
        if size == 0:
            assert body == b""
            return chunks


async def test_raw_wire_openai(server: FakeUpstream) -> None:
    server.enqueue(Scenario(text="hi there"))
    data = await raw_exchange(server, "/v1/chat/completions", openai_request(stream_options={"include_usage": True}))

    head, body = data.split(b"\r\n\r\n", 1)
    head_lines = head.decode().split("\r\n")
    assert head_lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: text/event-stream; charset=utf-8" in head_lines
    assert "Transfer-Encoding: chunked" in head_lines
    chunks = split_chunks(body)
    assert chunks[-1] == b""
    assert chunks[-2] == b"data: [DONE]\n\n"
    events = [json.loads(chunk.removeprefix(b"data: ")) for chunk in chunks[:-2]]
    assert all(chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n") for chunk in chunks[:-2])  # one per chunk
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [e["choices"][0]["delta"] for e in events[1:3]] == [{"content": "hi "}, {"content": "there"}]
    assert events[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(e["usage"] is None for e in events[:4])
    assert events[4]["choices"] == []
    assert set(events[4]["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"}


async def test_raw_wire_anthropic(server: FakeUpstream) -> None:
    server.enqueue(Scenario(text="hi"))
    data = await raw_exchange(server, "/v1/messages", anthropic_request(), "anthropic-version: 2023-06-01\r\n")

    chunks = split_chunks(data.split(b"\r\n\r\n", 1)[1])
    names = [chunk.split(b"\n", 1)[0].decode() for chunk in chunks[:-1]]
    assert names == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    for chunk, name in zip(chunks, names, strict=False):
        _, data_line, *rest = chunk.decode().split("\n")
        assert rest == ["", ""]  # "event: X\ndata: {...}\n\n"
        assert json.loads(data_line.removeprefix("data: "))["type"] == name.removeprefix("event: ")


async def test_raw_wire_in_band_openai_error(server: FakeUpstream) -> None:
    server.enqueue(Scenario(error_after_tokens=0))
    chunks = split_chunks(
        (await raw_exchange(server, "/v1/chat/completions", openai_request())).split(b"\r\n\r\n", 1)[1]
    )
    assert json.loads(chunks[-2].removeprefix(b"data: "))["error"]["type"] == "server_error"


async def test_raw_wire_malformed_event(server: FakeUpstream) -> None:
    weather = FakeToolCall("get_weather", {"city": "Paris"})
    server.enqueue(Scenario(text="hi there", malformed_after_tokens=1))
    server.enqueue(Scenario(text="Sure.", tool_calls=[weather], malformed_after_tokens=2))
    openai_bodies = [
        (await raw_exchange(server, "/v1/chat/completions", openai_request())).split(b"\r\n\r\n", 1)[1]
        for _ in range(2)
    ]
    headers = "anthropic-version: 2023-06-01\r\n"
    server.enqueue(Scenario(text="hi there", malformed_after_tokens=1))
    server.enqueue(Scenario(text="Sure.", tool_calls=[weather], malformed_after_tokens=2))
    anthropic_bodies = [
        (await raw_exchange(server, "/v1/messages", anthropic_request(), headers)).split(b"\r\n\r\n", 1)[1]
        for _ in range(2)
    ]

    # The malformed event is the last chunk; the body has no terminating chunk (the server closed).
    text_chunks, tool_chunks = (split_chunks(body, terminated=False) for body in openai_bodies)
    assert [json.loads(c.removeprefix(b"data: "))["choices"][0]["delta"] for c in text_chunks[1:-1]] == [
        {"content": "hi "}
    ]
    malformed = text_chunks[-1]
    assert malformed.startswith(b'data: {"id":"chatcmpl-fake') and b'"object":"chat.completion.chunk"' in malformed
    assert malformed.endswith(b'"choices":[{"index":0,"delta":{"content":"par\n\n')
    assert tool_chunks[-1].endswith(b'"delta":{"tool_calls":[{"index":0,"function":{"arguments":"par\n\n')
    with pytest.raises(ValueError):
        json.loads(malformed.removeprefix(b"data: "))

    text_chunks, tool_chunks = (split_chunks(body, terminated=False) for body in anthropic_bodies)
    assert text_chunks[-2].startswith(b"event: content_block_delta\n")
    assert text_chunks[-1] == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"par\n\n'
    )
    assert tool_chunks[-1] == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
        b'"delta":{"type":"input_json_delta","partial_json":"par\n\n'
    )
    assert [(r.outcome, r.tokens_sent) for r in server.requests] == [("malformed", 1), ("malformed", 2)] * 2


# --------------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------------


async def test_stop_closes_idle_and_active_connections_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeUpstream().start()
    client = openai.AsyncOpenAI(api_key="test", base_url=server.openai_base_url, max_retries=0)
    try:
        await collect_openai(client)  # leaves an idle keep-alive connection in the client's pool
        server.enqueue(Scenario(hang_before_first_token=True))
        stream = await client.chat.completions.create(**openai_request())
        assert server.active_streams == 1
        await asyncio.to_thread(server.stop)
        # The connection closes mid-body: httpx2 reports an incomplete chunked read, the SDK wraps it.
        with pytest.raises(openai.APIConnectionError):
            async for _ in stream:
                pass
    finally:
        await client.close()
    assert [r.outcome for r in server.requests] == ["completed", "server_stopped"]
    assert server.active_streams == 0
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_in_loop_mode() -> None:
    async with FakeUpstream() as server:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=server.anthropic_base_url, max_retries=0)
        try:
            assert anthropic_text(await collect_anthropic(client)) == default_reply(anthropic_request())
        finally:
            await client.close()


def test_cli() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fake_upstream", "--port", "0", "--tokens", "5", "--ttft-ms", "10"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake upstream listening: openai_base_url=http://127.0.0.1:")
        openai_base_url = line.split("openai_base_url=")[1].split()[0]
        with openai.OpenAI(api_key="test", base_url=openai_base_url, max_retries=0) as client:
            stream = client.chat.completions.create(**openai_request())
            assert len([c for c in stream if c.choices and c.choices[0].delta.content]) == 5
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_cli_random_faults() -> None:
    args = [
        "--port",
        "0",
        "--fault-rate",
        "1",
        "--fault-seed",
        "3",
        "--fault-kinds",
        "status_429",
        "--hang-limit-ms",
        "50",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "fake_upstream", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        openai_base_url = process.stdout.readline().split("openai_base_url=")[1].split()[0]
        with openai.OpenAI(api_key="test", base_url=openai_base_url, max_retries=0, timeout=5) as client:
            for _ in range(2):
                with pytest.raises(openai.RateLimitError) as err:
                    client.chat.completions.create(**openai_request())
                assert err.value.response.headers["retry-after"] == "0"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        if process.stdout is not None:
            process.stdout.close()

    bad = subprocess.run(
        [sys.executable, "-m", "fake_upstream", "--fault-kinds", "status_500,meteor_strike"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "unknown fault kinds: meteor_strike" in bad.stderr
