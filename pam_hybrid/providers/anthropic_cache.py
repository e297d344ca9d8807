"""Anthropic prompt caching: where a request's `cache_control` breakpoints go.

The API caches the request's prefix (in the order tools, system, messages) up to each block marked
`cache_control: {"type": "ephemeral"}` (optionally `"ttl": "1h"`), at most four per request, and a later request
that repeats a cached prefix exactly reads it at the cache-read price. The stable parts here are the tool
definitions, the system prompt and the history before the newest user turn: one breakpoint on each (three at
most). A prefix shorter than the model's minimum cacheable length is simply not cached; nothing fails.
"""

from __future__ import annotations

from typing import Any

MAX_BREAKPOINTS = 4


def cache_control(ttl: str) -> dict[str, str]:
    """The marker for a breakpoint: five minutes is the API's default lifetime, so only "1h" is spelled out."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(block) for block in content]


def mark_cache_breakpoints(
    system: list[dict[str, Any]], tools: list[dict[str, Any]], messages: list[Any], ttl: str
) -> list[Any]:
    """Mark the last system block and the last tool (in place: both lists are the request's own) and return the
    messages with the last block before the newest user turn marked (copied, the rest shared)."""
    marker = cache_control(ttl)
    if system:
        system[-1] = {**system[-1], "cache_control": marker}
    if tools:
        tools[-1] = {**tools[-1], "cache_control": marker}
    if len(messages) < 2:
        return messages
    stable = messages[-2]
    blocks = _as_blocks(stable["content"])
    if not blocks:
        return messages
    blocks[-1] = {**blocks[-1], "cache_control": marker}
    return [*messages[:-2], {**stable, "content": blocks}, messages[-1]]
