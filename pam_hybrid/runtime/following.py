"""One protocol for following an answer, wherever it is: streaming in this process (`live`), in another process
(`relay`) or already saved (`saved`). A socket follows any of them alike."""

from __future__ import annotations

import uuid
from typing import Protocol

from pam_hybrid.domain.chunks import StreamChunk


class Follower(Protocol):
    """Where an answer's frames go: `frame_text` is the chunk already serialised (once, for every follower)."""

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None: ...


class Followed(Protocol):
    """An answer a socket can follow: every frame after a sequence number, then each new one until the last."""

    @property
    def message_id(self) -> uuid.UUID: ...

    @property
    def done(self) -> bool: ...

    async def follow(self, follower: Follower, after_seq: int = -1) -> None: ...

    def unfollow(self, follower: Follower) -> None: ...

    def stop(self, reason: str = "cancelled") -> None: ...


def not_found_chunk() -> StreamChunk:
    return StreamChunk("error", "That answer was not found.", {"code": "not_found"})
