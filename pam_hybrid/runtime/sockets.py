"""A chat socket's place in the runtime from accept to close: its seat under the user's socket cap
(runtime.socket_cap), its channel-layer groups (its session's and its user's, so that a logout or a change of password
or `is_active` reaches it in whichever process it is open) and the runtime started for it (runtime.startup)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from pam_hybrid.conf import pam_settings
from pam_hybrid.runtime import shutdown, socket_cap, startup
from pam_hybrid.runtime.standing import session_group, user_group

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_SOCKETS = 4429
"""The user already has PAM_MAX_SOCKETS_PER_USER sockets open (in all processes together)."""
CLOSE_TRY_AGAIN = 4013
"""The socket could not be set up just now (Redis busy or unreachable): reconnect in a moment (1013, "try again
later", which daphne cannot send)."""


class ChatSocket(shutdown.Socket, Protocol):
    """What opening a socket needs of the consumer: its channel layer and its channel's name."""

    channel_layer: Any
    channel_name: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a socket was not opened: the code to close it with."""

    code: int


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """What an open socket holds, to give back when it closes."""

    user_id: object
    seat: str
    groups: tuple[str, ...]
    warm_up: asyncio.Task[None]


async def socket_open(socket: ChatSocket, *, user_id: object, session_key: str | None) -> OpenSocket | Refused:
    """Seat the user's new socket and join its groups; refused when the user is at the socket cap, or (to be tried
    again) when Redis could not take the groups in time: a socket outside its groups would miss a logout."""
    seat = await socket_cap.take(user_id, pam_settings().max_sockets_per_user)
    if seat is None:
        return Refused(CLOSE_TOO_MANY_SOCKETS)
    groups = (user_group(user_id), *((session_group(session_key),) if session_key else ()))
    try:
        for group in groups if socket.channel_layer is not None else ():
            await socket.channel_layer.group_add(group, socket.channel_name)
        warm_up = await startup.socket_opened(socket)
    except RedisError as exc:
        logger.warning("socket refused for now, Redis unavailable: %s", type(exc).__name__)
        await socket_cap.release(user_id, seat)
        await _leave(socket, groups)
        return Refused(CLOSE_TRY_AGAIN)
    except BaseException:
        await socket_cap.release(user_id, seat)
        raise
    return OpenSocket(user_id, seat, groups, warm_up)


async def socket_close(socket: ChatSocket, opened: OpenSocket) -> None:
    """Give back what `socket_open` took."""
    opened.warm_up.cancel()
    await socket_cap.release(opened.user_id, opened.seat)
    await _leave(socket, opened.groups)


async def _leave(socket: ChatSocket, groups: tuple[str, ...]) -> None:
    """Leave the groups; if Redis cannot be reached, a stale member is harmless (messages to a closed channel expire,
    and so does the membership, after channels-redis's group_expiry)."""
    for group in groups if socket.channel_layer is not None else ():
        try:
            await socket.channel_layer.group_discard(group, socket.channel_name)
        except RedisError as exc:
            logger.warning("socket closed, Redis unavailable to leave its groups: %s", type(exc).__name__)
            return
