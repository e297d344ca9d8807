"""What the app asks Redis, as Redis saw it (MONITOR on a connection of its own): the commands clients sent, one per
round trip here (the app pipelines nothing on a message's path), with the keys of a namespace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as redis


@dataclass(frozen=True, slots=True)
class Sent:
    """One command a client sent (not one a script ran), with Redis's wall-clock time."""

    at: float
    command: str

    @property
    def name(self) -> str:
        return self.command.split(" ", 1)[0].upper()


@dataclass(slots=True)
class Watch:
    """The commands naming `namespace` that clients sent while watching."""

    namespace: str
    sent: list[Sent] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Sent]:
        return [command for command in self.sent if start <= command.at < end]


@contextlib.asynccontextmanager
async def watching(url: str, namespace: str) -> AsyncIterator[Watch]:
    """Record the commands naming `namespace` (a key prefix) until the block ends."""
    watch = Watch(namespace)
    client = redis.Redis.from_url(url)
    ready = asyncio.Event()

    async def listen() -> None:
        async with client.monitor() as monitor:
            ready.set()
            while True:
                info = await monitor.next_command()
                if info["client_type"] != "lua" and namespace in info["command"]:
                    watch.sent.append(Sent(float(info["time"]), info["command"]))

    task = asyncio.ensure_future(listen())
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield watch
        await asyncio.sleep(0.2)  # what was sent just before the end reaches the monitor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, redis.RedisError):
            await task
        await client.aclose()
