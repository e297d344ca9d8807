"""The gateway's own timeouts around a provider's event stream: the SDKs' read timeout cannot see a stall
that keeps sending pings, so first-token, between-tokens and whole-answer limits live here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import ProviderEvent, TextDelta, ToolCall
from pam_hybrid.domain.exceptions import ProviderTimedOut


async def with_deadlines(
    events: AsyncGenerator[ProviderEvent, None], settings: PamSettings, answer_started: float
) -> AsyncGenerator[ProviderEvent, None]:
    """Pass events through, enforcing the first-token, between-tokens and whole-answer timeouts.

    Only content (text or a tool call) counts as progress; usage, pings and bookkeeping do not.
    """
    deadline = answer_started + settings.total_timeout_ms / 1000
    # From the request on, not per event: the provider's acceptance (headers) must not restart the first-token clock.
    first_token_deadline = time.perf_counter() + settings.first_token_timeout_ms / 1000
    seen_content = False
    try:
        while True:
            now = time.perf_counter()
            limit_s = settings.idle_timeout_ms / 1000 if seen_content else first_token_deadline - now
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
                what = "between tokens" if seen_content else "before the first token"
                raise ProviderTimedOut(f"timed out {what}") from exc
            seen_content = seen_content or isinstance(event, TextDelta | ToolCall)
            yield event
    finally:
        await events.aclose()
