"""Answers in flight in this process, each streaming from a task of its own that no socket owns.

Sockets follow an answer and may come and go: one that reconnects (a network blip, a refresh, a second tab)
names the answer and the last sequence number it saw and gets exactly the frames after it, then the rest as
they come. A stop ends the answer; a disconnect does not, unless nobody follows it again within the resume
grace period (then the upstream request is stopped and the partial answer saved).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.gateway.stream import AnswerStream, ChatRequest
from pam_hybrid.observability import metrics
from pam_hybrid.process import process_state
from pam_hybrid.runtime import owners
from pam_hybrid.runtime.following import Follower

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Seat:
    follower: Follower
    next_seq: int


class LiveAnswer:
    """One answer streaming in this process, with the frames sent so far and the sockets following it."""

    def __init__(self, request: ChatRequest, *, resume_grace_s: float,
                 on_settled: Callable[[LiveAnswer], Awaitable[None]] | None = None) -> None:
        self.stream = AnswerStream(request)
        self._on_settled = on_settled
        """Run once the answer is saved (or ended without a word), before its last chunk goes out."""
        self.user_id = str(request.user.pk)
        self.resume_grace_s = resume_grace_s
        self.frames: list[tuple[StreamChunk, str]] = []
        self._seats: list[_Seat] = []
        self._grace: asyncio.TimerHandle | None = None
        self._stopping = False
        self._finished = False
        self._counted = True
        _registry()[self.message_id] = self
        self.task = asyncio.create_task(self._run(), name=f"answer-{self.message_id}")
        metrics.stream_opened()
        self.task.add_done_callback(lambda _: self._forget())

    @property
    def message_id(self) -> uuid.UUID:
        return self.stream.message_id

    @property
    def done(self) -> bool:
        """True once the last chunk is out (the task may still be tidying up: no socket should wait for that)."""
        return self._finished or self.task.done()

    async def _run(self) -> None:
        channel = owners.local_channel()
        announced = asyncio.ensure_future(owners.announce(self.message_id, channel)) if channel else None
        try:
            async with contextlib.aclosing(self.stream.chunks()) as chunks:
                async for chunk in chunks:
                    if chunk is self.stream.final:
                        await self._settle()
                    await self._publish(chunk)
            if self.stream.saved is not None:
                await asyncio.shield(self.stream.saved)  # registered (so resumable) until it is saved
        except asyncio.CancelledError:
            # Stopped: the stream saved what it had and settled its last chunk; followers still get it.
            if self.stream.saved is not None:
                await asyncio.shield(self.stream.saved)
            await self._settle()
            await self._publish(self.stream.final or StreamChunk(
                "error", "Stopped before the answer began.", {"code": "cancelled"}
            ))
        finally:
            await self._settle()
            if announced is not None:
                await asyncio.shield(announced)
                await asyncio.shield(owners.retract(self.message_id))

    async def _settle(self) -> None:
        hook, self._on_settled = self._on_settled, None
        if hook is not None:
            await asyncio.shield(hook(self))

    def _uncount(self) -> None:
        """Leave `pam_active_streams` once: before the last chunk goes out, so no scrape made after a client has
        read it still counts the answer, or when the task ends without one."""
        if self._counted:
            self._counted = False
            metrics.stream_closed()

    def _forget(self) -> None:
        self._uncount()
        if self._grace is not None:
            self._grace.cancel()
        _registry(self.task.get_loop()).pop(self.message_id, None)
        self._seats.clear()

    async def _publish(self, chunk: StreamChunk) -> None:
        text = chunk.frame_text()
        self.frames.append((chunk, text))
        self._finished = chunk.chunk_type in _FINAL
        if self._finished:
            self._uncount()
        seq = len(self.frames) - 1
        for seat in tuple(self._seats):
            if seat.next_seq == seq:
                seat.next_seq += 1
                await self._deliver(seat, chunk, text)

    async def _deliver(self, seat: _Seat, chunk: StreamChunk, text: str) -> None:
        try:
            await seat.follower.deliver(chunk, text)
        except Exception:
            # A socket that cannot take a frame has gone; the answer goes on for the others (and for resuming).
            logger.debug("follower of answer %s dropped", self.message_id, exc_info=True)
            self.unfollow(seat.follower)

    async def follow(self, follower: Follower, after_seq: int = -1) -> None:
        """Send the follower every frame after `after_seq` so far, then each new one as it comes."""
        self._seats = [seat for seat in self._seats if seat.follower is not follower]
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        seat = _Seat(follower, max(after_seq + 1, 0))
        while seat.next_seq < len(self.frames):
            chunk, text = self.frames[seat.next_seq]
            seat.next_seq += 1
            await seat.follower.deliver(chunk, text)
        if not self.done:
            self._seats.append(seat)

    def unfollow(self, follower: Follower) -> None:
        """Stop sending to `follower`; with nobody left, the answer waits the grace period for a resume."""
        self._seats = [seat for seat in self._seats if seat.follower is not follower]
        if self._seats or self.done or self._stopping or self._grace is not None:
            return
        if self.resume_grace_s <= 0:
            self.stop("disconnected")
        else:
            self._grace = asyncio.get_running_loop().call_later(self.resume_grace_s, self._abandon)

    def _abandon(self) -> None:
        self._grace = None
        if not self._seats:
            logger.info("answer %s abandoned: nobody resumed it within %.1f s", self.message_id, self.resume_grace_s)
            self.stop("disconnected")

    def stop(self, reason: str = "cancelled") -> None:
        """End the answer now (the upstream request is closed, the partial answer saved)."""
        if not self.done and not self._stopping:
            # Once: a second cancel would interrupt the saving and settling that the first one started.
            self._stopping = True
            self.stream.cancel_reason = reason
            self.task.cancel()


_FINAL = frozenset({"end", "error"})
class _LiveAnswers(dict[uuid.UUID, "LiveAnswer"]):
    """This process's answers in flight, by id."""


def _registry(loop: asyncio.AbstractEventLoop | None = None) -> dict[uuid.UUID, LiveAnswer]:
    return process_state(loop).part(_LiveAnswers)


def start_answer(request: ChatRequest, *, resume_grace_s: float,
                 on_settled: Callable[[LiveAnswer], Awaitable[None]] | None = None) -> LiveAnswer:
    return LiveAnswer(request, resume_grace_s=resume_grace_s, on_settled=on_settled)


def live_answer(message_id: uuid.UUID, user_id: object) -> LiveAnswer | None:
    """The user's answer streaming in this process, if any."""
    live = _registry().get(message_id)
    return live if live is not None and live.user_id == str(user_id) else None


def live_answers() -> Iterator[LiveAnswer]:
    return iter(tuple(_registry().values()))


async def conversation_answers_stop(conversation_id: uuid.UUID, user_id: object, *, wait_s: float = 5.0) -> None:
    """Stop the user's answers in this conversation streaming in this process, and wait (at most `wait_s`) until
    each is saved: before the conversation is deleted, so nothing of it is written afterwards."""
    stopping = [
        answer for answer in live_answers()
        if answer.user_id == str(user_id) and answer.stream.conversation_id == str(conversation_id)
    ]
    for answer in stopping:
        answer.stop("cancelled")
    if stopping:
        await asyncio.wait([answer.task for answer in stopping], timeout=wait_s)
