"""Following an answer that streams in another server process, through the channel layer.

With several processes behind a load balancer, a client that reconnects (or a second tab) may land on a process
that is not running its answer. Each process announces the answers it runs in Redis (answer id → the process's
own channel) and listens on that channel: a process that needs a remote answer asks its owner to forward the
frames after a given sequence number to the asking socket's channel, in batches. Without REDIS_URL there is one
process and nothing here is used.

Only followers from other processes pay the channel layer's cost; the owner's own sockets get frames directly.

A process that is killed stops reading its channel and stops its heartbeat (pam_hybrid.runtime.owners): a follower
whose owner cannot be sent to, or whose heartbeat has lapsed, takes the answer as its process left it (marked
interrupted at once), instead of waiting for the answer's lease to run out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.process import process_state
from pam_hybrid.runtime import live, owners
from pam_hybrid.runtime.following import Followed, Follower, not_found_chunk
from pam_hybrid.runtime.saved import interrupted_chunk

logger = logging.getLogger(__name__)

_FINAL = frozenset({"end", "error"})


class _Process:
    """This process's listening channel and the remote sockets following its answers."""

    def __init__(self) -> None:
        self.channel = ""
        self.followers: dict[tuple[str, str], _RemoteFollower] = {}
        self.task: asyncio.Task[None] | None = None
        self.heart: asyncio.Task[None] | None = None


async def ensure_listening() -> str | None:
    """This process's channel (listening on it from the first call), or None in a single-process setup."""
    if not owners.shared():
        return None
    state = process_state()
    process = state.part(_Process)
    if not process.channel:
        layer = get_channel_layer()
        assert layer is not None
        # The default prefix: channels-redis fetches every process-local channel from one list, and a channel with
        # its own prefix would have its reader block that list's readers (every consumer of the process) in turn.
        channel = await layer.new_channel()
        if not process.channel:
            await owners.beat(channel)  # alive before any answer names this channel as its owner
        process.channel = process.channel or channel
        owners.set_local_channel(process.channel)
    if process.task is None or process.task.done():
        process.task = state.loop.create_task(_listen(process), name="pam-relay")
    if process.heart is None or process.heart.done():
        process.heart = state.loop.create_task(_beat(process.channel), name="pam-heartbeat")
    return process.channel


async def _beat(channel: str) -> None:
    while True:
        await owners.beat(channel)
        await asyncio.sleep(owners.HEARTBEAT_INTERVAL_S)


async def owner_of(message_id: uuid.UUID) -> str | None:
    """The channel of the other process running this answer, if one is."""
    owner = await owners.owner_of(message_id)
    return None if owner is None or owner == await ensure_listening() else owner


async def stop_elsewhere(message_id: uuid.UUID, user_id: object) -> bool:
    """Ask the other process running this answer to stop it (as the user's cancel); False if none runs it."""
    owner = await owner_of(message_id)
    if owner is None:
        return False
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(owner, {"type": "answer.stop", "message_id": str(message_id), "user_id": str(user_id),
                             "reply_to": ""})
    return True


class RemoteAnswer:
    """An answer running in another process, as followed by one socket here (a `Followed`).

    The owner sends its frames to the socket's channel (`reply_to`): the socket hands each such event to
    `receive`, or to `gone` when the answer had ended before the owner was asked; the saved answer then has the rest.
    Meanwhile the owner's heartbeat is checked: an owner that died takes the answer with it, as it was last saved.
    """

    def __init__(self, owner: str, message_id: uuid.UUID, user_id: object, reply_to: str,
                 saved: Callable[[], Awaitable[Followed | None]]) -> None:
        self.owner = owner
        self.message_id = message_id
        self.user_id = str(user_id)
        self.reply_to = reply_to
        self.last_seq = -1
        self.done = False
        self.follower: Follower | None = None
        self._saved = saved
        self._watch: asyncio.Task[None] | None = None

    async def follow(self, follower: Follower, after_seq: int = -1) -> None:
        self.follower, self.last_seq = follower, after_seq
        if not await self._send("answer.follow", after_seq=after_seq):
            await self._owner_lost()
        elif self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_owner())

    async def _watch_owner(self) -> None:
        while not self.done and self.follower is not None:
            await asyncio.sleep(owners.HEARTBEAT_INTERVAL_S)
            if not self.done and self.follower is not None and not await owners.alive(self.owner):
                await self._owner_lost()

    async def _owner_lost(self) -> None:
        """Its process is gone (cannot be sent to, or its heartbeat lapsed): the rest is what it saved, marked
        interrupted; an answer it never saved ends as interrupted too, with nothing."""
        if self.follower is None or self.done:
            return
        self.done = True
        logger.warning("relay: the process running answer %s is gone", self.message_id)
        await owners.retract_dead(self.message_id, self.owner)
        saved = await self._saved()
        follower = self.follower
        if follower is None:
            return
        if saved is None:
            chunk = interrupted_chunk(self.message_id, partial=False)
            await follower.deliver(chunk, chunk.frame_text())
        else:
            await saved.follow(follower, self.last_seq)

    async def receive(self, event: dict[str, Any]) -> None:
        """A batch of frames forwarded by the owner."""
        if event["message_id"] != str(self.message_id) or self.follower is None or self.done:
            return
        for text in event["frames"]:
            await self.follower.deliver(StreamChunk.from_frame(json.loads(text)), text)
        self.last_seq = max(self.last_seq, event["last_seq"])
        self.done = self.done or event["final"]

    async def gone(self, event: dict[str, Any]) -> None:
        """The owner no longer runs the answer: follow the rest from what was saved."""
        if event["message_id"] != str(self.message_id) or self.follower is None or self.done:
            return
        self.done = True
        saved = await self._saved()
        if saved is None:
            chunk = not_found_chunk()
            await self.follower.deliver(chunk, chunk.frame_text())
        else:
            await saved.follow(self.follower, self.last_seq)

    def stop(self, reason: str = "cancelled") -> None:
        asyncio.get_running_loop().create_task(self._send("answer.stop"))

    def unfollow(self, follower: Follower) -> None:
        if not self.done:
            asyncio.get_running_loop().create_task(self._send("answer.unfollow"))
        self.follower = None
        if self._watch is not None:
            self._watch.cancel()

    async def _send(self, kind: str, **extra: Any) -> bool:
        """Send to the owner; False when that cannot be done: its channel is full (a process killed with answers
        still announced stops reading it) or Redis is unreachable."""
        layer = get_channel_layer()
        assert layer is not None
        try:
            await layer.send(self.owner, {
                "type": kind, "message_id": str(self.message_id), "user_id": self.user_id,
                "reply_to": self.reply_to, **extra,
            })
        except (ChannelFull, RedisError) as exc:
            logger.warning("relay: the owner of answer %s cannot be reached (%s)", self.message_id, type(exc).__name__)
            return False
        return True


class _RemoteFollower:
    """Forwards an answer's frames to a socket in another process, batched: one channel message per burst."""

    def __init__(self, reply_to: str, message_id: str, registry: dict[tuple[str, str], _RemoteFollower]) -> None:
        self.reply_to = reply_to
        self.message_id = message_id
        self.registry = registry
        self.pending: list[str] = []
        self.last_seq = -1
        self.final = False
        self.flushing: asyncio.Task[None] | None = None

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None:
        self.pending.append(frame_text)
        self.last_seq = chunk.metadata.get("seq", self.last_seq)
        self.final = self.final or chunk.chunk_type in _FINAL
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the burst of frames being published right now join this batch
        layer = get_channel_layer()
        assert layer is not None
        while self.pending:
            frames, self.pending = self.pending, []
            try:
                await layer.send(self.reply_to, {
                    "type": "answer.frames", "message_id": self.message_id, "frames": frames,
                    "last_seq": self.last_seq, "final": self.final and not self.pending,
                })
            except Exception:
                logger.warning("relay: follower %s of answer %s is gone", self.reply_to, self.message_id)
                self.pending.clear()
                self.final = True
                raise
            finally:
                if self.final and not self.pending:
                    self.registry.pop((self.reply_to, self.message_id), None)


async def _listen(process: _Process) -> None:
    layer = get_channel_layer()
    assert layer is not None
    while True:
        event = await layer.receive(process.channel)
        try:
            await _handle(process, event)
        except Exception:
            logger.exception("relay: could not handle %s", event.get("type"))


async def _handle(process: _Process, event: dict[str, Any]) -> None:
    message_id, reply_to = event["message_id"], event["reply_to"]
    answer = live.live_answer(uuid.UUID(message_id), event["user_id"])
    key = (reply_to, message_id)
    if event["type"] == "answer.follow":
        if answer is None:
            layer = get_channel_layer()
            assert layer is not None
            await layer.send(reply_to, {"type": "answer.gone", "message_id": message_id})
            return
        follower = process.followers[key] = _RemoteFollower(reply_to, message_id, process.followers)
        await answer.follow(follower, int(event["after_seq"]))
    elif event["type"] == "answer.unfollow":
        remote = process.followers.pop(key, None)
        if answer is not None and remote is not None:
            answer.unfollow(remote)
    elif event["type"] == "answer.stop" and answer is not None:
        answer.stop()
