"""Anthropic Messages API, streamed.

The SDK makes the request (auth, base URL, status errors); the stream's events are read as plain JSON (see
pam_hybrid.providers.sse), with the SDK's own rules: an event with no name is skipped, an `error` event (which
arrives with HTTP 200) raises the SDK's generic `APIStatusError`, an event is what its data's `type` says.
Usage is read as the official SDK accumulates it: input and cache counts arrive in `message_start` (passed on at
once as a partial `Usage`, so a stream that breaks later keeps the provider's input count); `message_delta`'s
counts are cumulative and replace earlier ones when present (never added), and its `Usage` is the final one.
Thinking pieces (`thinking_delta`, `signature_delta`, a `redacted_thinking` block) become `Thinking` events,
never text. `ping` and unknown events are ignored, so pings never count as progress.
A tool call is a `tool_use` block whose input streams as `input_json_delta` pieces; it is released at its
`content_block_stop`, so a block cut by `max_tokens` (which never stops) never runs.
Prompt caching (see `anthropic_cache`) marks the stable prefix of the request when the settings ask for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic.types import MessageParam, ToolParam

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import Accepted, ChatTurn, Finish, ProviderEvent, TextDelta, Thinking, ToolCall, Usage
from pam_hybrid.process import cached_client
from pam_hybrid.providers.anthropic_cache import mark_cache_breakpoints
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.errors import translate
from pam_hybrid.providers.sse import sse_events

COMPLETE_REASONS = frozenset({"end_turn", "stop_sequence", "refusal"})
TOOL_REASONS = frozenset({"tool_use"})


def _client(settings: PamSettings, loop: asyncio.AbstractEventLoop | None = None) -> anthropic.AsyncAnthropic:
    key = ("anthropic", settings.anthropic_api_key, settings.anthropic_base_url, settings.connect_timeout_ms,
           settings.idle_timeout_ms, settings.sdk_max_retries)

    def make() -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url or None,
            max_retries=settings.sdk_max_retries,
            timeout=anthropic.Timeout(settings.idle_timeout_ms / 1000, connect=settings.connect_timeout_ms / 1000),
        )

    return cached_client(key, make, loop)


def _blocks(turn: ChatTurn) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.content}] if turn.content else []
    for call in turn.tool_calls:
        try:
            arguments = json.loads(call.arguments_json or "{}")
        except ValueError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.call_id, "name": call.name,
                       "input": arguments if isinstance(arguments, dict) else {}})
    blocks.extend(
        {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": not r.ok}
        for r in turn.tool_results
    )
    return blocks


def alternating_turns(turns: tuple[ChatTurn, ...]) -> list[MessageParam]:
    """Messages as the API requires them: starting with the user, roles alternating (same-role turns merged).

    Tool results travel in a user message; text-only messages are sent as plain strings.
    """
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    for turn in turns:
        role = "assistant" if turn.role == "assistant" else "user"
        blocks = _blocks(turn)
        if not blocks or (not merged and role != "user"):
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, blocks))
    return [_message_param(role, blocks) for role, blocks in merged]


def _message_param(role: str, blocks: list[dict[str, Any]]) -> MessageParam:
    content: Any = blocks
    if all(block["type"] == "text" for block in blocks):
        content = "\n\n".join(block["text"] for block in blocks)
    if role == "user":
        return {"role": "user", "content": content}
    return {"role": "assistant", "content": content}


def _tools(specs: tuple[ToolSpec, ...]) -> list[ToolParam]:
    return [{"name": s.name, "description": s.description, "input_schema": s.parameters} for s in specs]


def _field(value: Any, name: str) -> Any:
    """A field of a JSON object; None when the value is not an object."""
    return value.get(name) if isinstance(value, dict) else None


class _UsageTally:
    """Usage across one stream, as the SDK accumulates it: `message_start` sets every count; `message_delta`'s
    counts are cumulative totals that replace those present, and leave the others as they were."""

    def __init__(self) -> None:
        self.counts = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                       "cache_creation_input_tokens": 0, "ephemeral_1h_input_tokens": 0, "thinking_tokens": 0}

    def take(self, usage: Any) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            value = _field(usage, name)
            if isinstance(value, int):
                self.counts[name] = value
        split = _field(usage, "cache_creation")
        one_hour = _field(split, "ephemeral_1h_input_tokens") if split is not None else None
        if isinstance(one_hour, int):
            self.counts["ephemeral_1h_input_tokens"] = one_hour
        details = _field(usage, "output_tokens_details")
        thinking = _field(details, "thinking_tokens") if details is not None else None
        if isinstance(thinking, int):
            self.counts["thinking_tokens"] = thinking

    def usage(self, *, partial: bool) -> Usage:
        c = self.counts
        return Usage(input_tokens=c["input_tokens"], output_tokens=c["output_tokens"],
                     cached_input_tokens=c["cache_read_input_tokens"],
                     cache_creation_input_tokens=c["cache_creation_input_tokens"],
                     cache_write_1h_tokens=min(c["ephemeral_1h_input_tokens"], c["cache_creation_input_tokens"]),
                     reasoning_tokens=c["thinking_tokens"], partial=partial)


class _ToolBlocks:
    """tool_use blocks by content-block index, released at their content_block_stop."""

    def __init__(self) -> None:
        self.blocks: dict[int, tuple[str, str, list[str]]] = {}

    def start(self, index: int, block: dict[str, Any]) -> None:
        self.blocks[index] = (str(block.get("id") or ""), str(block.get("name") or ""), [])

    def add(self, index: int, partial_json: str) -> None:
        if index in self.blocks:
            self.blocks[index][2].append(partial_json)

    def stop(self, index: int) -> ToolCall | None:
        if index not in self.blocks:
            return None
        call_id, name, parts = self.blocks.pop(index)
        return ToolCall(call_id=call_id, name=name, arguments_json="".join(parts) or "{}")


class AnthropicProvider:
    name = "anthropic"

    def is_configured(self, settings: PamSettings) -> bool:
        return bool(settings.anthropic_api_key)

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        _client(settings, loop)

    async def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]:
        extra: dict[str, Any] = {}
        system: list[dict[str, Any]] = [{"type": "text", "text": request.system}] if request.system else []
        tools: list[dict[str, Any]] = [dict(tool) for tool in _tools(request.tools)]
        messages = alternating_turns(request.turns)
        if settings.anthropic_prompt_cache:
            messages = mark_cache_breakpoints(system, tools, messages, settings.anthropic_cache_ttl)
        if system:
            extra["system"] = system
        if tools:
            extra["tools"] = tools
            extra["tool_choice"] = {"type": "auto" if request.tools_allowed else "none"}
        try:
            async with _client(settings).messages.with_streaming_response.create(
                model=request.model,
                messages=messages,
                max_tokens=request.max_output_tokens,
                stream=True,
                **extra,
            ) as response:
                yield Accepted()
                async for event in self._events(response.iter_bytes(), response.http_response):
                    yield event
        except (anthropic.APIError, httpx2.TransportError, ValueError) as exc:
            # A malformed event is a JSONDecodeError (a ValueError); a broken body raises the HTTP client's own errors.
            raise translate(self.name, exc, timeout_types=(anthropic.APITimeoutError, httpx2.TimeoutException),
                            connection_types=(anthropic.APIConnectionError, httpx2.TransportError)) from exc

    @staticmethod
    async def _events(body: AsyncIterator[bytes], response: httpx2.Response) -> AsyncGenerator[ProviderEvent, None]:
        tally = _UsageTally()
        tools = _ToolBlocks()
        stop_reason: str | None = None
        async for name, data in sse_events(body):
            if not name or name == "ping":
                continue
            if name == "error":
                raise _in_band_error(data, response)
            event = json.loads(data)
            if not isinstance(event, dict):
                raise ValueError(f"a stream event that is not an object: {type(event).__name__}")
            kind = event.get("type")
            if kind == "content_block_delta":
                delta = event.get("delta") or {}
                delta_kind = delta.get("type")
                if delta_kind == "text_delta":
                    yield TextDelta(str(delta.get("text") or ""))
                elif delta_kind == "input_json_delta":
                    tools.add(event.get("index", 0), str(delta.get("partial_json") or ""))
                elif delta_kind == "thinking_delta":
                    yield Thinking(str(delta.get("thinking") or ""))
                elif delta_kind == "signature_delta":
                    yield Thinking()
            elif kind == "message_start":
                tally.take(_field(event.get("message"), "usage"))
                yield tally.usage(partial=True)
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tools.start(event.get("index", 0), block)
                elif block.get("type") == "redacted_thinking":
                    yield Thinking()
            elif kind == "content_block_stop":
                call = tools.stop(event.get("index", 0))
                if call is not None:
                    yield call
            elif kind == "message_delta":
                stop_reason = _field(event.get("delta"), "stop_reason")
                tally.take(event.get("usage"))
                yield tally.usage(partial=False)
            elif kind == "message_stop" and stop_reason:
                yield Finish(reason=stop_reason, complete=stop_reason in COMPLETE_REASONS,
                             tool_use=stop_reason in TOOL_REASONS)


def _in_band_error(data: str, response: httpx2.Response) -> anthropic.APIStatusError:
    """What the SDK raises for an `error` event: its generic status error, with the response's status (200)."""
    body: Any = data
    try:
        body = json.loads(data)
        message = f"{body}"
    except ValueError:
        message = data or f"Error code: {response.status_code}"
    return anthropic.APIStatusError(message, response=response, body=body)
