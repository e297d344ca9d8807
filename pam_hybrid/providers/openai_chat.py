"""OpenAI chat completions, streamed (works with any OpenAI-compatible server by base URL).

Usage is requested with `stream_options.include_usage` and arrives in a last chunk with no choices.
The SDK makes the request (auth, base URL, status errors); the stream's chunks are read as plain JSON (see
pam_hybrid.providers.sse), with the SDK's own rules: `[DONE]` ends it, a chunk with an `error` is an in-band error.
A refusal streams in `delta.refusal`, not `delta.content`. Tool calls stream by `index`: the id and name
come only in a call's first delta, later deltas add to its arguments. OpenAI-compatible servers that stream a
model's reasoning (`delta.reasoning_content` in vLLM and DeepSeek, `delta.reasoning` in Ollama and OpenRouter)
yield `Thinking`, never text; `completion_tokens_details.reasoning_tokens` is the reasoning part of the output.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import Accepted, ChatTurn, Finish, ProviderEvent, TextDelta, Thinking, ToolCall, Usage
from pam_hybrid.process import cached_client
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.errors import translate
from pam_hybrid.providers.sse import sse_events

COMPLETE_REASONS = frozenset({"stop"})
REASONING_FIELDS = ("reasoning_content", "reasoning")
TOOL_REASONS = frozenset({"tool_calls", "function_call"})


def _client(settings: PamSettings, loop: asyncio.AbstractEventLoop | None = None) -> openai.AsyncOpenAI:
    key = ("openai", settings.openai_api_key, settings.openai_base_url, settings.connect_timeout_ms,
           settings.idle_timeout_ms, settings.sdk_max_retries)

    def make() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url or None,
            max_retries=settings.sdk_max_retries,
            timeout=openai.Timeout(settings.idle_timeout_ms / 1000, connect=settings.connect_timeout_ms / 1000),
        )

    return cached_client(key, make, loop)


def _turn_messages(turn: ChatTurn) -> list[ChatCompletionMessageParam]:
    if turn.role == "user":
        return [{"role": "user", "content": turn.content}]
    if turn.role == "tool":
        return [{"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in turn.tool_results]
    if not turn.tool_calls:
        return [{"role": "assistant", "content": turn.content}]
    return [{
        "role": "assistant",
        "content": turn.content or None,
        "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in turn.tool_calls
        ],
    }]


def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        messages.extend(_turn_messages(turn))
    return messages


def _tools(specs: tuple[ToolSpec, ...]) -> list[ChatCompletionToolParam]:
    return [
        {"type": "function", "function": {"name": s.name, "description": s.description, "parameters": s.parameters}}
        for s in specs
    ]


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(input_tokens=raw.get("prompt_tokens") or 0, output_tokens=raw.get("completion_tokens") or 0,
                 cached_input_tokens=details.get("cached_tokens") or 0, input_includes_cached=True,
                 reasoning_tokens=completion_details.get("reasoning_tokens") or 0)


def _in_band_error(chunk: dict[str, Any], request: httpx2.Request) -> openai.APIError:
    """What the SDK raises for a chunk carrying an `error` (it arrives with HTTP 200)."""
    error = chunk["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=request, body=error)


@dataclass(slots=True)
class _PendingCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    sent: bool = False

    def complete_json(self) -> str | None:
        """The arguments once they form a whole JSON object (no longer JSON object can start with one)."""
        text = "".join(self.arguments)
        try:
            return text if isinstance(json.loads(text), dict) else None
        except ValueError:
            return None


class _ToolCallAssembler:
    """Assembles streamed tool-call deltas by index; a call is released once its arguments are whole."""

    def __init__(self) -> None:
        self.calls: dict[int, _PendingCall] = {}

    def add(self, delta: dict[str, Any]) -> ToolCall | None:
        call = self.calls.setdefault(delta.get("index", 0), _PendingCall())
        if delta.get("id"):
            call.call_id = delta["id"]
        function = delta.get("function")
        if function:
            if function.get("name"):
                call.name = function["name"]
            if function.get("arguments"):
                call.arguments.append(function["arguments"])
        return self._release(call)

    def _release(self, call: _PendingCall) -> ToolCall | None:
        arguments = call.complete_json()
        if call.sent or not call.name or arguments is None:
            return None
        call.sent = True
        return ToolCall(call_id=call.call_id, name=call.name, arguments_json=arguments)

    def finish(self, reason: str) -> list[ToolCall]:
        """At a tool-use stop, calls still unreleased go out as they are (their runner reports bad JSON);
        at any other stop (a length cut) they never run."""
        if reason not in TOOL_REASONS:
            return []
        leftovers = []
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call.sent and call.name:
                call.sent = True
                leftovers.append(ToolCall(call.call_id, call.name, "".join(call.arguments) or "{}"))
        return leftovers


class OpenAIProvider:
    name = "openai"

    def is_configured(self, settings: PamSettings) -> bool:
        return bool(settings.openai_api_key)

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        _client(settings, loop)

    async def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]:
        # The body goes as it is (extra_body): it is plain JSON already, and the SDK's walk over its typed
        # parameters costs the loop 0.5 ms of CPU at one turn, 2-3 ms at 10 and 8 ms at 30 (bench/sdk_transform.py).
        body: dict[str, Any] = {"messages": _messages(request), "max_tokens": request.max_output_tokens,
                                "stream_options": {"include_usage": True}}
        if request.tools:
            body["tools"] = _tools(request.tools)
            body["tool_choice"] = "auto" if request.tools_allowed else "none"
        assembler = _ToolCallAssembler()
        try:
            async with _client(settings).chat.completions.with_streaming_response.create(
                model=request.model,
                messages=(),
                stream=True,
                extra_body=body,
            ) as response:
                yield Accepted()
                done = False
                async for _, data in sse_events(response.iter_bytes()):
                    # After [DONE] the rest of the body is still read, so the connection can be reused.
                    done = done or data.startswith("[DONE]")
                    if done:
                        continue
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        raise ValueError(f"a stream chunk that is not an object: {type(chunk).__name__}")
                    if chunk.get("error"):
                        raise _in_band_error(chunk, response.http_request)
                    if chunk.get("usage"):
                        yield _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        for event in self._choice_events(choice, assembler):
                            yield event
        except (openai.APIError, httpx2.TransportError, ValueError) as exc:
            # A malformed event is a JSONDecodeError (a ValueError); a broken body raises the HTTP client's own errors.
            raise translate(self.name, exc, timeout_types=(openai.APITimeoutError, httpx2.TimeoutException),
                            connection_types=(openai.APIConnectionError, httpx2.TransportError)) from exc

    @staticmethod
    def _choice_events(choice: dict[str, Any], assembler: _ToolCallAssembler) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        delta = choice.get("delta")
        if delta:
            for key in REASONING_FIELDS:
                if delta.get(key) and isinstance(delta[key], str):
                    events.append(Thinking(delta[key]))
            if delta.get("content"):
                events.append(TextDelta(delta["content"]))
            if delta.get("refusal"):
                events.append(TextDelta(delta["refusal"]))
            for tool_delta in delta.get("tool_calls") or ():
                call = assembler.add(tool_delta)
                if call is not None:
                    events.append(call)
        if choice.get("finish_reason"):
            reason = str(choice["finish_reason"])
            events.extend(assembler.finish(reason))
            events.append(Finish(reason=reason, complete=reason in COMPLETE_REASONS, tool_use=reason in TOOL_REASONS))
        return events
