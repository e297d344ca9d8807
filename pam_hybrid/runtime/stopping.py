"""Stopping a conversation's answers wherever they stream, before the conversation is deleted."""

from __future__ import annotations

import asyncio
import time
import uuid

from asgiref.sync import sync_to_async

from pam_hybrid.conversations.selectors import conversation_streaming_answer_ids
from pam_hybrid.runtime import live, relay

_POLL_S = 0.05


async def conversation_answers_stop(conversation_id: uuid.UUID, user_id: object, *, wait_s: float = 5.0) -> None:
    """Stop the user's answers in this conversation, in this process and any other, and wait (at most `wait_s`)
    until each is saved, so that nothing of the conversation is written after it is deleted."""
    await live.conversation_answers_stop(conversation_id, user_id, wait_s=wait_s)
    streaming = await sync_to_async(conversation_streaming_answer_ids)(conversation_id=conversation_id)
    elsewhere = [m for m in streaming if await relay.stop_elsewhere(m, user_id)]
    deadline = time.monotonic() + wait_s
    while elsewhere and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
        still = set(await sync_to_async(conversation_streaming_answer_ids)(conversation_id=conversation_id))
        elsewhere = [m for m in elsewhere if m in still]
