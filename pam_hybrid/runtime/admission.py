"""Admitting a message: the one decision between a frame and a running answer.

In order: a draining process refuses it; so does a user no longer signed in (checked while the Redis work below
runs, which is then undone); a message re-sent with the same `client_msg_id` follows the answer it
already has (never run or charged twice; one whose process died is taken as it was saved, and one that process
never saved runs here, once); the user's limits (concurrency, rate, daily spend) may refuse it; else its
answer starts (an `auto` one from a user near the daily cap on the simple route: budget-aware routing), with its
place and spend released before its last chunk goes out (so a message sent the moment it ends meets the new
figures). With Redis the claim, the limits and the first provider's breaker are one round trip (`preflight`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from pam_hybrid.breakers import Ahead, CircuitBreaker
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.gateway.stream import ChatRequest
from pam_hybrid.runtime import claims, limits, live, preflight, shutdown
from pam_hybrid.runtime.following import Followed
from pam_hybrid.runtime.resume import answer_resume
from pam_hybrid.runtime.standing import signed_out_chunk, still_signed_in


def _already_taken() -> StreamChunk:
    return StreamChunk("error", "This message is being answered already: try again in a moment.",
                       {"code": "busy", "retry_after_s": 1})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the message was not taken: the `error` chunk to send back; `signed_out`: the socket's user no longer
    stands signed in, so the socket is to be ended too."""

    chunk: StreamChunk
    signed_out: bool = False


async def answer_admit(request: ChatRequest, *, socket: shutdown.Socket, reply_to: str,
                       scope: Mapping[str, Any]) -> Followed | Refusal:
    """The answer the socket should follow from its start, or the refusal to send."""
    refused = shutdown.admit(socket)
    if refused is not None:
        return Refusal(refused)
    settings = pam_settings()
    breaker = provider_breaker()
    # The standing is a database read and the preflight a Redis round trip (or the claim's database read): together.
    standing, checked = await asyncio.gather(still_signed_in(scope), preflight.check(request, settings),
                                             return_exceptions=True)
    if isinstance(checked, BaseException):
        raise checked
    await breaker.hold_ahead(checked.ahead)
    if standing is not True:
        await _undo(request, checked, breaker)
        if isinstance(standing, BaseException):
            raise standing
        return Refusal(signed_out_chunk(), signed_out=True)
    admitted = checked.admitted
    if checked.held is not None:
        followed = await _follow_held(request, checked.held, reply_to)
        if followed is not None:
            return followed
        admitted = await limits.admit(request.user.pk, request.message_id, settings)
    assert admitted is not None
    if isinstance(admitted, limits.Refusal):
        if request.client_msg_id and (checked.claimed or checked.held is not None):
            await claims.release(request.user, request.client_msg_id)
        await preflight.release_unused(breaker, checked.ahead)
        return Refusal(admitted.chunk())
    if request.route == "auto" and limits.near_cap(admitted.spent_usd, settings):
        request = replace(request, prefer_simple=True)
    return live.start_answer(request, resume_grace_s=settings.resume_grace_ms / 1000,
                             on_settled=_releaser(request.user.pk, breaker, checked.ahead))


async def _undo(request: ChatRequest, checked: preflight.Checked, breaker: CircuitBreaker) -> None:
    """Give back what the preflight took for a message that will not run: its client id, its place, its permit."""
    admitted = isinstance(checked.admitted, limits.Admitted)
    if request.client_msg_id and checked.held is None and (checked.claimed or admitted):
        await claims.release(request.user, request.client_msg_id)
    if admitted:
        await limits.release(request.user.pk, request.message_id, Decimal(0))
    await preflight.release_unused(breaker, checked.ahead)


async def _follow_held(request: ChatRequest, held: uuid.UUID, reply_to: str) -> Followed | Refusal | None:
    """What a message whose client id `held` holds follows: that answer, as it runs or was saved; None when that
    answer's process died before saving it and this message has taken its claim over (so it runs here, once)."""
    existing = await answer_resume(user=request.user, message_id=held, reply_to=reply_to)
    if existing is not None:
        return existing
    taken = await claims.reclaim(request.user, request.client_msg_id, held, request.message_id)
    if taken is None:
        return None
    # another re-send took the dead answer's claim over first: one of them runs
    existing = await answer_resume(user=request.user, message_id=taken, reply_to=reply_to)
    return existing if existing is not None else Refusal(_already_taken())


def _releaser(user_id: object, breaker: CircuitBreaker,
              ahead: Ahead | None) -> Callable[[live.LiveAnswer], Awaitable[None]]:
    async def release(answer: live.LiveAnswer) -> None:
        """Free the ended answer's place and count its cost against the user's day."""
        await preflight.settle(user_id, answer.message_id, limits.spend_of(answer.stream.answer), breaker=breaker,
                               ahead=ahead)

    return release
