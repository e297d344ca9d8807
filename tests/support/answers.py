"""Waiting for answers to settle: saved with their usage, and no longer live in this process."""

from __future__ import annotations

import asyncio
import time

from channels.db import database_sync_to_async

from pam_hybrid.models import Message, UsageRecord
from pam_hybrid.runtime import live


async def settled_answer(message_id: str, within_s: float = 5) -> tuple[Message, UsageRecord]:
    """The saved answer once it is no longer streaming (its task saves it after the socket has gone)."""
    return await saved_answer(message_id, within_s)


@database_sync_to_async
def _saved_answer(message_id: str) -> tuple[Message, UsageRecord] | None:
    answer = (
        Message.objects.select_related("usage", "reply_to").exclude(status=Message.Status.STREAMING)
        .filter(id=message_id, usage__isnull=False).first()
    )
    return None if answer is None else (answer, answer.usage)


async def saved_answer(message_id: str, within_s: float = 5) -> tuple[Message, UsageRecord]:
    """The answer as saved. An answer no provider accepted is saved just after its last chunk went out."""
    deadline = time.monotonic() + within_s
    while True:
        saved = await _saved_answer(message_id)
        if saved is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert saved is not None, "the answer was not saved"
    return saved


async def settled(within_s: float = 5) -> None:
    """Every answer of this loop has ended and been saved, logged and counted (a live answer lets go only then)."""
    for _ in range(int(within_s / 0.01)):
        if not any(True for _ in live.live_answers()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("answers still in flight")
