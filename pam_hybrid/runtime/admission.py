"""Admitting a message: the one decision between a frame and a running answer.

In order: a draining process refuses it; a message re-sent with the same `client_msg_id` follows the answer it
already has (never run or charged twice); the user's limits (concurrency, rate, daily spend) may refuse it; else its
answer starts, with its place and spend released before its last chunk goes out (so a message sent the moment it
ends meets the new figures).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.gateway.stream import ChatRequest
from pam_hybrid.runtime import claims, limits, live, shutdown
from pam_hybrid.runtime.following import Followed
from pam_hybrid.runtime.resume import answer_resume


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the message was not taken: the `error` chunk to send back."""

    chunk: StreamChunk


async def answer_admit(request: ChatRequest, *, socket: shutdown.Socket, reply_to: str) -> Followed | Refusal:
    """The answer the socket should follow from its start, or the refusal to send."""
    refused = shutdown.admit(socket)
    if refused is not None:
        return Refusal(refused)
    user_id = request.user.pk
    if request.client_msg_id:
        held = await claims.claim(user_id, request.client_msg_id, request.message_id)
        if held is not None:
            existing = await answer_resume(user=request.user, message_id=held, reply_to=reply_to)
            if existing is not None:
                return existing
            await claims.reclaim(user_id, request.client_msg_id, request.message_id)
    settings = pam_settings()
    over_limit = await limits.admit(user_id, request.message_id, settings)
    if over_limit is not None:
        if request.client_msg_id:
            await claims.release(user_id, request.client_msg_id)
        return Refusal(over_limit.chunk())
    return live.start_answer(request, resume_grace_s=settings.resume_grace_ms / 1000,
                             on_settled=_limits_releaser(user_id))


def _limits_releaser(user_id: object) -> Callable[[live.LiveAnswer], Awaitable[None]]:
    async def release(answer: live.LiveAnswer) -> None:
        """Free the ended answer's place and count its cost against the user's day."""
        cost = answer.stream.answer.cost_usd if answer.stream.answer is not None else None
        await limits.release(user_id, answer.message_id, cost)

    return release
