"""Server-sent events from a streamed HTTP body: each event's `data`, as the SSE specification assembles it.

The SDKs' own stream iterators build a pydantic model per event, about 50 µs each: more than everything else a
token costs the gateway. Providers that read many events read their JSON through this instead.

Lines end only at CR, LF or CRLF (bytes), as the specification says: not at the other Unicode line breaks (U+0085,
U+2028...) that text-level line splitting honours and model output may contain.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

_LINE_END = re.compile(rb"\r\n|\r|\n")


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    pending = b""
    async for chunk in chunks:
        pending += chunk
        # A CR at the end may be the first half of a CRLF split across chunks: keep it for the next one.
        complete = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
        *lines, rest = _LINE_END.split(pending[:complete])
        pending = rest + pending[complete:]
        for line in lines:
            yield line.decode()
    if pending:
        yield pending.rstrip(b"\r").decode()


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event type, data) per event of a body read as bytes; the type is "" when the event named none. Comments
    and unknown fields are skipped; several `data` lines join with newlines; an event without data is not
    dispatched."""
    event = ""
    data: list[str] = []
    async for line in _lines(chunks):
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
