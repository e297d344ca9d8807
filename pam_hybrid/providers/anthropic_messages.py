"""Anthropic Messages API, streamed.

Input tokens arrive in `message_start`; `message_delta.usage.output_tokens` is cumulative and replaces
the earlier count. `ping`, thinking and unknown events are ignored, so pings never count as progress.
A tool call is a `tool_use` block whose input streams as `input_json_delta` pieces; it is released at its
`content_block_stop`, so a block cut by `max_tokens` (which never stops) never runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    InputJSONDelta,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    ToolParam,
    ToolUseBlock,
)
from anthropic.types import TextDelta as SDKTextDelta

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import Accepted, ChatTurn, Finish, ProviderEvent, TextDelta, ToolCall, Usage
from pam_hybrid.process import cached_client
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.errors import translate

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


class _UsageTally:
    """Usage across one stream: input from message_start, cumulative output from message_delta."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read = 0
        self.cache_creation = 0

    def start(self, usage: Any) -> None:
        self.input_tokens = usage.input_tokens or 0
        self.output_tokens = usage.output_tokens or 0
        self.cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
        self.cache_creation = getattr(usage, "cache_creation_input_tokens", None) or 0

    def delta(self, usage: Any) -> Usage:
        self.output_tokens = usage.output_tokens or self.output_tokens
        if getattr(usage, "input_tokens", None):
            self.input_tokens = usage.input_tokens
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                     cached_input_tokens=self.cache_read, cache_creation_input_tokens=self.cache_creation)


class _ToolBlocks:
    """tool_use blocks by content-block index, released at their content_block_stop."""

    def __init__(self) -> None:
        self.blocks: dict[int, tuple[str, str, list[str]]] = {}

    def start(self, index: int, block: ToolUseBlock) -> None:
        self.blocks[index] = (block.id, block.name, [])

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
        if request.system:
            extra["system"] = request.system
        if request.tools:
            extra["tools"] = _tools(request.tools)
            extra["tool_choice"] = {"type": "auto" if request.tools_allowed else "none"}
        try:
            stream = await _client(settings).messages.create(
                model=request.model,
                messages=alternating_turns(request.turns),
                max_tokens=request.max_output_tokens,
                stream=True,
                **extra,
            )
            yield Accepted()
            async with stream:
                async for event in self._events(stream):
                    yield event
        except (anthropic.APIError, httpx2.TransportError, ValueError) as exc:
            # Mid-stream, the SDK lets the HTTP client's own read errors and timeouts through unwrapped, and a
            # malformed event's JSON error as a bare JSONDecodeError (a ValueError).
            raise translate(self.name, exc, timeout_types=(anthropic.APITimeoutError, httpx2.TimeoutException),
                            connection_types=(anthropic.APIConnectionError, httpx2.TransportError)) from exc

    @staticmethod
    async def _events(stream: Any) -> AsyncGenerator[ProviderEvent, None]:
        tally = _UsageTally()
        tools = _ToolBlocks()
        stop_reason: str | None = None
        async for event in stream:
            if isinstance(event, RawMessageStartEvent):
                tally.start(event.message.usage)
            elif isinstance(event, RawContentBlockStartEvent) and isinstance(event.content_block, ToolUseBlock):
                tools.start(event.index, event.content_block)
            elif isinstance(event, RawContentBlockDeltaEvent):
                if isinstance(event.delta, SDKTextDelta):
                    yield TextDelta(event.delta.text)
                elif isinstance(event.delta, InputJSONDelta):
                    tools.add(event.index, event.delta.partial_json)
            elif isinstance(event, RawContentBlockStopEvent):
                call = tools.stop(event.index)
                if call is not None:
                    yield call
            elif isinstance(event, RawMessageDeltaEvent):
                stop_reason = event.delta.stop_reason
                yield tally.delta(event.usage)
            elif isinstance(event, RawMessageStopEvent) and stop_reason:
                yield Finish(reason=stop_reason, complete=stop_reason in COMPLETE_REASONS,
                             tool_use=stop_reason in TOOL_REASONS)
