"""The per-user socket cap: the socket past PAM_MAX_SOCKETS_PER_USER is closed with 4429, a closed socket gives its
seat back, other users are not counted against it, and with Redis a seat whose process stopped renewing it (killed)
frees itself when its lease ends."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from pam_hybrid.chat.consumer import ChatConsumer
from pam_hybrid.runtime import socket_cap
from pam_hybrid.runtime.sockets import CLOSE_TOO_MANY_SOCKETS

pytestmark = [pytest.mark.django_db(transaction=True)]


async def opened(user: Any) -> tuple[WebsocketCommunicator, int | None]:
    """A socket of `user` and, when the server closed it at once, its close code."""
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so that the browser sees the close code
    await communicator.send_json_to({"type": "ping"})
    output = await communicator.receive_output(timeout=5)
    return communicator, (int(output["code"]) if output["type"] == "websocket.close" else None)


async def test_the_socket_past_the_cap_is_refused_with_its_code(user: Any, other_user: Any, settings: Any) -> None:
    settings.PAM_MAX_SOCKETS_PER_USER = 2
    first, first_code = await opened(user)
    second, second_code = await opened(user)
    _third, third_code = await opened(user)
    assert (first_code, second_code, third_code) == (None, None, CLOSE_TOO_MANY_SOCKETS)

    others, others_code = await opened(other_user)
    assert others_code is None

    await first.disconnect()
    again, again_code = await opened(user)
    assert again_code is None
    for socket in (second, others, again):
        await socket.disconnect()


def _seat_taken_by_a_process_that_then_dies(user_id: str, lease_s: float) -> str | None:
    """Another process's seat: taken on an event loop of its own (its own process state), which then ends without
    releasing or renewing it, as a killed process would."""
    return asyncio.run(socket_cap.take(user_id, 1, lease_s=lease_s))


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="seats are leased in Redis only")
async def test_a_renewed_seat_holds_and_a_dead_process_seat_frees_itself() -> None:
    held = await socket_cap.take("alive", 1, lease_s=0.5)
    assert held is not None
    for _ in range(3):
        await asyncio.sleep(0.3)
        assert await socket_cap.renew(lease_s=0.5) == 1
        assert await socket_cap.take("alive", 1, lease_s=0.5) is None  # renewed: still counted

    assert await asyncio.to_thread(_seat_taken_by_a_process_that_then_dies, "dead", 0.5) is not None
    assert await socket_cap.take("dead", 1, lease_s=0.5) is None
    await asyncio.sleep(0.7)  # past the lease: nobody renewed it
    assert await socket_cap.take("dead", 1, lease_s=0.5) is not None
