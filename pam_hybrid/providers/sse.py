"""Server-sent events from a streamed HTTP body: each event's `data`, as the SSE specification assembles it.

The SDKs' own stream iterators build a pydantic model per event, about 50 µs each: more than everything else a
token costs the gateway. Providers that read many events read their JSON through this instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def sse_events(lines: AsyncIterable[str]) -> AsyncIterator[tuple[str, str]]:
    """(event type, data) per event; the type is "" when the event named none. Comments and unknown fields are
    skipped; several `data` lines join with newlines; an event without data is not dispatched."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)
