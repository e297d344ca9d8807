"""Resuming an answer: whatever the user's answer is now — streaming here, streaming in another process, or
saved — one `Followed` that gets a socket every frame after the last one it saw."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid.runtime import live, owners, relay
from pam_hybrid.runtime.following import Followed
from pam_hybrid.runtime.saved import SavedAnswer, saved_answer, settled_answer


async def answer_resume(*, user: AbstractBaseUser, message_id: uuid.UUID, reply_to: str) -> Followed | None:
    """The user's answer to follow (live, remote or saved), or None if they have no such answer.

    `reply_to` is the asking socket's channel: an answer running in another process sends its frames there. An
    answer whose process is known dead is taken as it was saved, marked interrupted at once; one that no process
    claims any more (its lease ran out) as it was saved, for the sweep to mark.
    """
    answer = live.live_answer(message_id, user.pk)
    if answer is not None:
        return answer

    async def saved() -> SavedAnswer | None:
        return await settled_answer(user=user, message_id=message_id)

    owner = await relay.owner_of(message_id)
    if owner is not None:
        if await owners.alive(owner):
            return relay.RemoteAnswer(owner, message_id, user.pk, reply_to, saved=saved)
        await owners.retract_dead(message_id, owner)
        return await saved()
    return await saved_answer(user=user, message_id=message_id)
