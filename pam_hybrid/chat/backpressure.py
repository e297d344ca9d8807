"""Whether a socket's reader keeps up: a streaming producer registered on the socket's twisted transport under daphne.

Daphne hands every frame to twisted at once and twisted buffers it without limit, so nothing on the ASGI side ever
waits for a slow reader. Twisted's producer API is what tells: it pauses a streaming producer when the transport's
write buffer passes its limit (64 KiB) and resumes it once the buffer has drained. The application's `send` under
daphne is a `functools.partial` of its server's `handle_reply` bound to the connection's protocol (channels'
session middleware wraps it, keeping it as `real_send`). The upgraded connection still runs on twisted's HTTP
channel, which is its TCP transport's producer and relays that transport's pause and resume to a producer of its
own. Under any other server (or in-process test communicators) there is no gauge and frames go out as before.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from pam_hybrid.chat.protocol import coalesced_tokens
from pam_hybrid.domain.chunks import StreamChunk

_MAX_WRAPPERS = 4


class WriteGauge:
    """Paused while the socket's write buffer is over twisted's limit; `on_resume` runs when it has drained."""

    def __init__(self) -> None:
        self.paused = False
        self.on_resume: Callable[[], None] | None = None

    def pauseProducing(self) -> None:  # twisted's IPushProducer
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.on_resume is not None:
            self.on_resume()

    def stopProducing(self) -> None:
        self.paused = False
        self.on_resume = None


def _protocol_of(send: Any) -> Any:
    """The daphne protocol behind an ASGI `send`, through the wrappers that keep the next one as `real_send`."""
    for _ in range(_MAX_WRAPPERS):
        if isinstance(send, functools.partial):
            return send.args[0] if send.args else None
        send = getattr(getattr(send, "__self__", None), "real_send", None)
        if send is None:
            return None
    return None


def write_gauge(send: Any) -> WriteGauge | None:
    """A gauge registered on the socket's transport, or None where the server offers no transport to watch."""
    transport = getattr(_protocol_of(send), "transport", None)
    # The upgraded connection still runs on twisted's HTTP channel, the TCP transport's producer: the channel relays
    # the transport's pause and resume to the one producer registered with it.
    consumer = getattr(transport, "producer", None) or transport
    if consumer is None or not callable(getattr(consumer, "registerProducer", None)):
        return None
    gauge = WriteGauge()  # dropped with the connection, which holds it: nothing to unregister
    try:
        consumer.registerProducer(gauge, True)
    except RuntimeError:
        return None  # one producer per connection, and another holds it
    return gauge


class Outbox:
    """One socket following one answer (a `Follower`): while the reader is behind, token chunks are held and go out
    coalesced once it catches up (or before the next frame that is not a token), so twisted never buffers more than
    about its limit. A socket that follows another answer gets a new outbox; the held tokens of the last are dropped."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]], gauge: WriteGauge | None) -> None:
        self._send_text = send_text
        self._gauge = gauge
        self._held: list[StreamChunk] = []
        if gauge is not None:
            gauge.on_resume = self._caught_up

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None:
        if chunk.chunk_type == "token" and self._gauge is not None and self._gauge.paused:
            self._held.append(chunk)
            return
        if self._held:
            await self._send_held()
        await self._send_text(frame_text)

    def _caught_up(self) -> None:
        if self._held:
            asyncio.get_running_loop().create_task(self._send_held())

    async def _send_held(self) -> None:
        held, self._held = self._held, []
        for chunk in coalesced_tokens(held):
            await self._send_text(chunk.frame_text())
