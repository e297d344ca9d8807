"""A saved answer followed as frames: those after a given sequence number, rebuilt from its stream log, for a client
that resumes an answer which has already ended (or was checkpointed by a process that is gone)."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid.conversations import selectors
from pam_hybrid.conversations.services import INTERRUPTED_ERROR
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.models import Message
from pam_hybrid.runtime.following import Follower


def frames_after(stream_log: list[Any], text: str, after_seq: int) -> list[StreamChunk]:
    """The chunks numbered after `after_seq`. Consecutive tokens are sent as one, numbered as the last of them."""
    offset = 0
    for entry in stream_log[: max(after_seq + 1, 0)]:
        if isinstance(entry, int):
            offset = entry
    chunks: list[StreamChunk] = []
    pending_end: int | None = None
    for seq in range(max(after_seq + 1, 0), len(stream_log)):
        entry = stream_log[seq]
        if isinstance(entry, int):
            pending_end = entry
            if seq + 1 < len(stream_log) and isinstance(stream_log[seq + 1], int):
                continue
            chunks.append(StreamChunk("token", text[offset:pending_end], {"seq": seq}))
            offset = pending_end
        else:
            chunks.append(StreamChunk.from_frame(entry))
    return chunks


class SavedAnswer:
    """An answer no process runs: everything it has is in its row (a `Followed` that is always done)."""

    done = True

    def __init__(self, message: Message) -> None:
        self.message = message

    @property
    def message_id(self) -> uuid.UUID:
        return self.message.id

    async def follow(self, follower: Follower, after_seq: int = -1) -> None:
        message = self.message
        for chunk in frames_after(message.stream_log, message.content, after_seq):
            await follower.deliver(chunk, chunk.frame_text())
        if message.status == Message.Status.STREAMING:
            # Saved as streaming, yet no process runs it: its process died (the sweep will mark it so).
            interrupted = StreamChunk("error", INTERRUPTED_ERROR, {
                "code": "interrupted", "message_id": str(message.id),
                "status": "partial" if message.content else "error",
            })
            await follower.deliver(interrupted, interrupted.frame_text())

    def unfollow(self, follower: Follower) -> None:
        """Nothing to undo: a saved answer sends everything at once."""

    def stop(self, reason: str = "cancelled") -> None:
        """Nothing to stop: it has ended."""


async def saved_answer(*, user: AbstractBaseUser, message_id: uuid.UUID) -> SavedAnswer | None:
    """The user's saved answer, if they have one with this id."""
    message = await database_sync_to_async(selectors.answer_get_for_user)(user=user, message_id=message_id)
    return None if message is None else SavedAnswer(message)
