"""The SSE reader: events assembled as the specification says, whatever the byte chunking."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pam_hybrid.providers.sse import sse_events

BODY = (
    ": a comment\r\n"
    "event: message_start\r\n"
    'data: {"text": "caf\u00e9 \u0085 line \u2028 break"}\r\n'
    "\r\n"
    "data: first line\n"
    "data:second line\n"
    "id: 7\n"
    "\n"
    "event: ping\r"
    "\r"
    "data: [DONE]\r\n"
    "\r\n"
    "data: no blank line after the last event"
).encode()

EXPECTED = [
    ("message_start", '{"text": "caf\u00e9 \u0085 line \u2028 break"}'),
    ("", "first line\nsecond line"),
    ("", "[DONE]"),
    ("", "no blank line after the last event"),
]


async def _chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(BODY)])
async def test_events_are_the_same_however_the_body_is_chunked(size: int) -> None:
    assert [event async for event in sse_events(_chunked(BODY, size))] == EXPECTED
