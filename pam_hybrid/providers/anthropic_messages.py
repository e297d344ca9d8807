"""Anthropic Messages API, streamed.

Input tokens arrive in `message_start`; `message_delta.usage.output_tokens` is cumulative and replaces
the earlier count. `ping` and unknown events are ignored, so pings never count as progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)
from anthropic.types import TextDelta as SDKTextDelta

from pam_hybrid.conf import PamSettings
from pam_hybrid.core.chunks import Accepted, ChatTurn, Finish, ProviderEvent, TextDelta, Usage
from pam_hybrid.providers.base import ModelRequest
from pam_hybrid.providers.client_cache import cached_client
from pam_hybrid.providers.errors import translate

COMPLETE_REASONS = frozenset({"end_turn", "stop_sequence", "refusal"})


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


def alternating_turns(turns: tuple[ChatTurn, ...]) -> list[MessageParam]:
    """Messages as the API requires them: starting with the user, roles alternating (same-role turns merged)."""
    merged: list[tuple[str, str]] = []
    for turn in turns:
        if not merged and turn.role != "user":
            continue
        if merged and merged[-1][0] == turn.role:
            merged[-1] = (turn.role, merged[-1][1] + "\n\n" + turn.content)
        else:
            merged.append((turn.role, turn.content))
    return [_message_param(role, content) for role, content in merged]


def _message_param(role: str, content: str) -> MessageParam:
    if role == "user":
        return {"role": "user", "content": content}
    return {"role": "assistant", "content": content}


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


class AnthropicProvider:
    name = "anthropic"

    def is_configured(self, settings: PamSettings) -> bool:
        return bool(settings.anthropic_api_key)

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        _client(settings, loop)

    async def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]:
        tally = _UsageTally()
        stop_reason: str | None = None
        kwargs: dict[str, Any] = {}
        if request.system:
            kwargs["system"] = request.system
        try:
            stream = await _client(settings).messages.create(
                model=request.model,
                messages=alternating_turns(request.turns),
                max_tokens=request.max_output_tokens,
                stream=True,
                **kwargs,
            )
            yield Accepted()
            async with stream:
                async for event in stream:
                    if isinstance(event, RawMessageStartEvent):
                        tally.start(event.message.usage)
                    elif isinstance(event, RawContentBlockDeltaEvent) and isinstance(event.delta, SDKTextDelta):
                        yield TextDelta(event.delta.text)
                    elif isinstance(event, RawMessageDeltaEvent):
                        stop_reason = event.delta.stop_reason
                        yield tally.delta(event.usage)
                    elif isinstance(event, RawMessageStopEvent) and stop_reason:
                        yield Finish(reason=stop_reason, complete=stop_reason in COMPLETE_REASONS)
        except (anthropic.APIError, httpx2.TransportError) as exc:
            # Mid-stream, the SDK lets the HTTP client's own read errors and timeouts through unwrapped.
            raise translate(self.name, exc, timeout_types=(anthropic.APITimeoutError, httpx2.TimeoutException),
                            connection_types=(anthropic.APIConnectionError, httpx2.TransportError)) from exc
