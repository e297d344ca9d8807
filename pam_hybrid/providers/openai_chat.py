"""OpenAI chat completions, streamed (works with any OpenAI-compatible server by base URL).

Usage is requested with `stream_options.include_usage` and arrives in a last chunk with no choices.
A refusal streams in `delta.refusal`, not `delta.content`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from pam_hybrid.conf import PamSettings
from pam_hybrid.core.chunks import Accepted, Finish, ProviderEvent, TextDelta, Usage
from pam_hybrid.providers.base import ModelRequest
from pam_hybrid.providers.client_cache import cached_client
from pam_hybrid.providers.errors import translate

COMPLETE_REASONS = frozenset({"stop"})


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


def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": turn.content})
        else:
            messages.append({"role": "assistant", "content": turn.content})
    return messages


def _usage(raw: Any) -> Usage:
    details = getattr(raw, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(input_tokens=raw.prompt_tokens or 0, output_tokens=raw.completion_tokens or 0,
                 cached_input_tokens=cached)


class OpenAIProvider:
    name = "openai"

    def is_configured(self, settings: PamSettings) -> bool:
        return bool(settings.openai_api_key)

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        _client(settings, loop)

    async def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]:
        try:
            stream = await _client(settings).chat.completions.create(
                model=request.model,
                messages=_messages(request),
                max_tokens=request.max_output_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            yield Accepted()
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        yield _usage(chunk.usage)
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None:
                            if delta.content:
                                yield TextDelta(delta.content)
                            if delta.refusal:
                                yield TextDelta(delta.refusal)
                        if choice.finish_reason:
                            reason = str(choice.finish_reason)
                            yield Finish(reason=reason, complete=reason in COMPLETE_REASONS)
        except openai.APIError as exc:
            raise translate(self.name, exc, timeout_types=(openai.APITimeoutError,),
                            connection_types=(openai.APIConnectionError,)) from exc
