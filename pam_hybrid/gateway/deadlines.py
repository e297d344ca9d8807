"""The gateway's own timeouts around a provider's event stream: the SDKs' read timeout cannot see a stall
that keeps sending pings, so first-token, thinking, between-events and whole-answer limits live here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import ProviderEvent, TextDelta, Thinking, ToolCall
from pam_hybrid.domain.exceptions import ProviderTimedOut


class _Progress:
    """Which clock runs now: before anything (first token), while visibly thinking, or once content has come."""

    def __init__(self, settings: PamSettings) -> None:
        self.settings = settings
        # From the request on, not per event: the provider's acceptance (headers) must not restart this clock.
        self.first_token_deadline = time.perf_counter() + settings.first_token_timeout_ms / 1000
        self.thinking_deadline: float | None = None
        self.seen_content = False

    def limit_s(self, now: float) -> float:
        idle_s = self.settings.idle_timeout_ms / 1000
        if self.seen_content:
            return idle_s
        if self.thinking_deadline is not None:
            return min(idle_s, self.thinking_deadline - now)
        return self.first_token_deadline - now

    def what(self, now: float) -> str:
        if self.seen_content:
            return "between tokens"
        if self.thinking_deadline is None:
            return "before the first token"
        if now >= self.thinking_deadline:
            return "thinking beyond its limit"
        return "between thinking pieces"

    def saw(self, event: ProviderEvent, now: float) -> None:
        if isinstance(event, TextDelta | ToolCall):
            self.seen_content = True
        elif isinstance(event, Thinking) and self.thinking_deadline is None:
            self.thinking_deadline = now + self.settings.thinking_timeout_ms / 1000


async def with_deadlines(
    events: AsyncGenerator[ProviderEvent, None], settings: PamSettings, answer_started: float
) -> AsyncGenerator[ProviderEvent, None]:
    """Pass events through, enforcing the first-token, thinking, between-events and whole-answer timeouts.

    Content (text or a tool call) is progress. Before it, thinking is progress too: a model that is visibly
    thinking is not cut by the first-token timeout, but by the thinking limit (from its first thinking piece) or
    by the idle limit between pieces. Usage, pings and bookkeeping never count. The whole-answer limit always applies.
    """
    deadline = answer_started + settings.total_timeout_ms / 1000
    progress = _Progress(settings)
    try:
        while True:
            now = time.perf_counter()
            limit_s = progress.limit_s(now)
            remaining_s = deadline - now
            try:
                async with asyncio.timeout(max(min(limit_s, remaining_s), 0)):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                if remaining_s <= limit_s:
                    raise ProviderTimedOut("whole-answer timeout",
                                           user_message="The answer took too long and was stopped.") from exc
                raise ProviderTimedOut(f"timed out {progress.what(time.perf_counter())}") from exc
            progress.saw(event, time.perf_counter())
            yield event
    finally:
        await events.aclose()
