"""The writes every answer makes, batched: its exchange when the provider accepts the request, its answer and usage
when it ends.

Channels runs every database call of a process on one thread, whose Python work holds the GIL the event loop needs.
When many messages arrive (or many answers end) together, one transaction for all of them replaces a few statements
and a commit each, so the next messages' requests go out sooner. A write that finds none queued goes at once: a lone
message waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from channels.db import database_sync_to_async
from django.db import DatabaseError

from pam_hybrid.conversations import services
from pam_hybrid.conversations.services import AnswerSave, Exchange
from pam_hybrid.process import process_state

T = TypeVar("T")


class BatchedWrites(Generic[T]):
    """Queues items and writes what has queued, one batch (one transaction) at a time. A failed batch is retried one
    item at a time, so one bad row (its user deleted meanwhile) fails only its own item."""

    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write_batch = database_sync_to_async(write)
        self._queued: list[tuple[T, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[None]:
        """A future done once the item is committed (or with the database's error)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queued.append((item, done))
        if self._writing is None or self._writing.done():
            self._writing = loop.create_task(self._write_queued())
        return done

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await self._write(batch)
            finally:
                for _, done in batch:
                    if not done.done():
                        done.cancel()

    async def _write(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._write_batch([item for item, _ in batch])
        except DatabaseError as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for item, done in batch:
                try:
                    await self._write_batch([item])
                except DatabaseError as one_exc:
                    _settle(done, one_exc)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class _Writers:
    """One event loop's writers (one per process in a server)."""

    def __init__(self) -> None:
        # Looked up at each write, so the service functions stay the one place these rows are written.
        self.exchanges = BatchedWrites[Exchange](lambda batch: services.exchanges_open(exchanges=batch))
        self.answers = BatchedWrites[AnswerSave](lambda batch: services.answers_save(saves=batch))


def _loop_writers() -> _Writers:
    return process_state().part(_Writers)


def exchange_writes() -> BatchedWrites[Exchange]:
    """Where the gateway saves a user's message and its answer's placeholder, at the provider's acceptance."""
    return _loop_writers().exchanges


def answer_writes() -> BatchedWrites[AnswerSave]:
    """Where the gateway saves a finished answer with its usage record."""
    return _loop_writers().answers
