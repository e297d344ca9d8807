"""Sockets across two real daphne processes on Redis: a password change or a deactivation saved anywhere closes the
user's socket in the other process (4401), and the per-user socket cap counts the sockets of both processes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fake_upstream import FakeUpstream
from tests.support.servers import run_daphne

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="several processes share state through Redis"),
]


@pytest.fixture
def two_servers(transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Any) -> Iterator[tuple[str, str]]:
    shared = {"PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:", "PAM_MAX_SOCKETS_PER_USER": "2"}
    with (run_daphne(fake_upstream, tmp_path, **shared) as first,
          run_daphne(fake_upstream, tmp_path, **shared) as second):
        yield first, second


@pytest.fixture
def cookie(user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def socket_to(server: str, cookie: str) -> Any:
    return connect(server.replace("http://", "ws://") + "/ws/chat/", origin=server,
                   additional_headers={"Cookie": cookie})


async def close_code(ws: ClientConnection) -> int | None:
    """The code the server closes `ws` with; None if it is still open after a ping."""
    try:
        await ws.send('{"type": "ping"}')
        while True:
            await asyncio.wait_for(ws.recv(), 10)
            return None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def closed_with(ws: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


@pytest.mark.parametrize("change", ["password", "is_active"])
async def test_a_change_saved_anywhere_closes_the_socket_in_another_process(
    two_servers: tuple[str, str], cookie: str, user: Any, change: str
) -> None:
    first, second = two_servers
    async with socket_to(first, cookie) as on_first, socket_to(second, cookie) as on_second:
        assert await close_code(on_first) is None and await close_code(on_second) is None
        changed = await get_user_model()._default_manager.aget(pk=user.pk)
        if change == "password":
            changed.set_password("a-new-horse-battery-staple")
        else:
            changed.is_active = False
        await sync_to_async(changed.save)()  # in this process: neither server saw it happen
        assert await closed_with(on_first) == 4401
        assert await closed_with(on_second) == 4401


async def test_the_socket_cap_counts_both_processes(two_servers: tuple[str, str], cookie: str) -> None:
    first, second = two_servers
    async with socket_to(first, cookie) as on_first, socket_to(second, cookie) as on_second:
        assert await close_code(on_first) is None and await close_code(on_second) is None
        async with socket_to(first, cookie) as third:
            assert await close_code(third) == 4429
        await on_first.close()
        for _ in range(50):  # the closed socket's seat is given back as its server handles the close
            async with socket_to(second, cookie) as after_one_closed:
                if await close_code(after_one_closed) is None:
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the closed socket's seat was never given back")
