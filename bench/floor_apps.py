"""The two ASGI apps bench/floor.py serves with daphne to measure what daphne costs with none of our code.

Both speak the same protocol on any WebSocket path: accept; for each text frame ``{"n": N, "gap_ms": G}`` send N
token frames shaped like the gateway's (a JSON text of about 110 bytes), G ms apart, then ``{"chunk_type":"end"}``.

* ``raw``: a plain ASGI callable, no Django or Channels.
* ``channels``: a Channels ``AsyncWebsocketConsumer`` behind ``URLRouter`` (no auth, no database, no channel layer);
  minimal Django settings are configured here when ``DJANGO_SETTINGS_MODULE`` is unset.

    .venv/bin/python -m daphne -b 127.0.0.1 -p PORT bench.floor_apps:raw
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

END_FRAME = '{"chunk_type":"end"}'
WORDS = (" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog")


def token_frame(seq: int, message_id: str) -> str:
    """One token frame as the gateway sends it: serialised per frame, about 110 bytes."""
    return json.dumps({"chunk_type": "token", "content": WORDS[seq % len(WORDS)],
                       "metadata": {"seq": seq, "message_id": message_id}}, separators=(",", ":"))


def parse_request(text: str) -> tuple[int, float]:
    """(frames, gap in seconds) from a request frame; a frame that is not a request asks for nothing."""
    try:
        request = json.loads(text)
        return max(0, int(request.get("n", 0))), max(0.0, float(request.get("gap_ms", 0))) / 1000
    except (ValueError, TypeError, AttributeError):
        return 0, 0.0


async def stream(send_text: Callable[[str], Awaitable[None]], n: int, gap_s: float) -> None:
    message_id = str(uuid.uuid4())
    for seq in range(1, n + 1):
        if seq > 1 and gap_s:
            await asyncio.sleep(gap_s)
        await send_text(token_frame(seq, message_id))
    await send_text(END_FRAME)


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"WebSocket only\n"})


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    """The protocol as a plain ASGI app: what daphne, autobahn and twisted cost alone."""
    if scope["type"] == "http":
        await _not_found(send)
        return
    if scope["type"] != "websocket":
        return

    async def send_text(text: str) -> None:
        await send({"type": "websocket.send", "text": text})

    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive" and message.get("text") is not None:
                task = asyncio.create_task(stream(send_text, *parse_request(message["text"])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif message["type"] == "websocket.disconnect":
                return
    finally:
        for task in tasks:
            task.cancel()


def _channels_app() -> Any:
    """The Channels app, built on first use so that serving ``raw`` imports neither Django nor Channels."""
    import django
    from django.conf import settings

    if not os.environ.get("DJANGO_SETTINGS_MODULE") and not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="floor-bench-not-secret", INSTALLED_APPS=[], USE_TZ=True,
                           ALLOWED_HOSTS=["127.0.0.1", "localhost"])
    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import re_path

    class FloorConsumer(AsyncWebsocketConsumer):
        """The protocol as a Channels consumer; each answer streams in a task, as the gateway's do."""

        async def connect(self) -> None:
            self.tasks: set[asyncio.Task[None]] = set()
            await self.accept()

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            if text_data is None:
                return
            task = asyncio.create_task(stream(self._send_text, *parse_request(text_data)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        async def _send_text(self, text: str) -> None:
            await self.send(text_data=text)

        async def disconnect(self, code: int) -> None:
            tasks: set[asyncio.Task[None]] = getattr(self, "tasks", set())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def http(scope: Scope, receive: Receive, send: Send) -> None:
        await _not_found(send)

    return ProtocolTypeRouter({"http": http, "websocket": URLRouter([re_path(r"", FloorConsumer.as_asgi())])})


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # daphne looks the app up with getattr(module, "channels"): built here, once.
    if name != "channels":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = _channels_app()
    return _built[name]
