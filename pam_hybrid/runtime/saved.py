"""A saved answer followed as frames: those after a given sequence number, rebuilt from its stream log, for a client
that resumes an answer which has already ended (or was checkpointed by a process that is gone)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid.conversations import selectors, services
from pam_hybrid.conversations.services import INTERRUPTED_ERROR
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.models import Message
from pam_hybrid.runtime.following import Follower

logger = logging.getLogger(__name__)

_FINAL = frozenset({"end", "error"})


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
        if message.status != Message.Status.COMPLETE and not _ended(message.stream_log):
            # Its process died before the answer ended: saved as streaming (and about to be swept), or swept, with
            # the text of its last checkpoint and no last chunk of its own.
            interrupted = interrupted_chunk(message.id, partial=bool(message.content))
            await follower.deliver(interrupted, interrupted.frame_text())

    def unfollow(self, follower: Follower) -> None:
        """Nothing to undo: a saved answer sends everything at once."""

    def stop(self, reason: str = "cancelled") -> None:
        """Nothing to stop: it has ended."""


def _ended(stream_log: list[Any]) -> bool:
    return bool(stream_log) and isinstance(stream_log[-1], dict) and stream_log[-1].get("chunk_type") in _FINAL


def interrupted_chunk(message_id: uuid.UUID, *, partial: bool) -> StreamChunk:
    """The last chunk of an answer whose process stopped before it ended."""
    return StreamChunk("error", INTERRUPTED_ERROR, {
        "code": "interrupted", "message_id": str(message_id), "status": "partial" if partial else "error",
    })


async def saved_answer(*, user: AbstractBaseUser, message_id: uuid.UUID) -> SavedAnswer | None:
    """The user's saved answer, if they have one with this id."""
    message = await database_sync_to_async(selectors.answer_get_for_user)(user=user, message_id=message_id)
    return None if message is None else SavedAnswer(message)


async def settled_answer(*, user: AbstractBaseUser, message_id: uuid.UUID) -> SavedAnswer | None:
    """The user's saved answer, for when no live process runs it: one still marked streaming (its process is dead)
    is first marked interrupted, as the sweep would, with its last checkpoint's text. Conditional and atomic: an
    answer saved meanwhile is left as it is, and a process that was only slow saves its answer over the mark."""
    saved = await saved_answer(user=user, message_id=message_id)
    if saved is None or saved.message.status != Message.Status.STREAMING:
        return saved
    swept = await database_sync_to_async(services.stale_answers_sweep)(older_than=timedelta(0), only=[message_id])
    if swept:
        logger.warning("answer %s: its process is gone, marked interrupted", message_id)
    return await saved_answer(user=user, message_id=message_id)
