"""A chat socket's place in the runtime from accept to close: its seat under the user's socket cap
(runtime.socket_cap), its channel-layer groups (its session's and its user's, so that a logout or a change of password
or `is_active` reaches it in whichever process it is open) and the runtime started for it (runtime.startup)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pam_hybrid.conf import pam_settings
from pam_hybrid.runtime import shutdown, socket_cap, startup
from pam_hybrid.runtime.standing import session_group, user_group

CLOSE_TOO_MANY_SOCKETS = 4429
"""The user already has PAM_MAX_SOCKETS_PER_USER sockets open (in all processes together)."""


class ChatSocket(shutdown.Socket, Protocol):
    """What opening a socket needs of the consumer: its channel layer and its channel's name."""

    channel_layer: Any
    channel_name: str


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """What an open socket holds, to give back when it closes."""

    user_id: object
    seat: str
    groups: tuple[str, ...]
    warm_up: asyncio.Task[None]


async def socket_open(socket: ChatSocket, *, user_id: object, session_key: str | None) -> OpenSocket | None:
    """Seat the user's new socket and join its groups; None when the user is at the socket cap."""
    seat = await socket_cap.take(user_id, pam_settings().max_sockets_per_user)
    if seat is None:
        return None
    groups = (user_group(user_id), *((session_group(session_key),) if session_key else ()))
    try:
        for group in groups if socket.channel_layer is not None else ():
            await socket.channel_layer.group_add(group, socket.channel_name)
        warm_up = await startup.socket_opened(socket)
    except BaseException:
        await socket_cap.release(user_id, seat)
        raise
    return OpenSocket(user_id, seat, groups, warm_up)


async def socket_close(socket: ChatSocket, opened: OpenSocket) -> None:
    """Give back what `socket_open` took."""
    opened.warm_up.cancel()
    await socket_cap.release(opened.user_id, opened.seat)
    for group in opened.groups if socket.channel_layer is not None else ():
        await socket.channel_layer.group_discard(group, socket.channel_name)
