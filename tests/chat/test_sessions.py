"""A logout ends the open sockets of that session: they stop serving the user at once (4401), and the answer they
were following is stopped."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.chat.consumer import ChatConsumer
from pam_hybrid.models import Message
from tests.support.answers import settled_answer
from tests.support.sockets import message

pytestmark = [pytest.mark.django_db(transaction=True)]


async def session_socket(user: Any, session_key: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    communicator.scope["session"] = SessionStore(session_key=session_key)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_logout_closes_that_sessions_sockets_and_stops_their_answer(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    browser, other_browser = Client(), Client()
    await sync_to_async(browser.force_login)(user)
    await sync_to_async(other_browser.force_login)(user)
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight", token_delay_ms=150))
    socket = await session_socket(user, browser.session.session_key)
    other = await session_socket(user, other_browser.session.session_key)
    await socket.send_json_to(message())
    start = await socket.receive_json_from(timeout=5)

    await sync_to_async(browser.post)("/accounts/logout/")

    frames = []
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        frames.append(output)
    assert output == {"type": "websocket.close", "code": 4401}
    answer, usage = await settled_answer(start["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and usage.outcome == "cancelled"
    assert await fake_upstream.wait_until(lambda: fake_upstream.active_streams == 0, within=2)

    await other.send_json_to({"type": "ping"})  # another session of the same user is not affected
    assert await other.receive_json_from(timeout=5) == {"type": "pong"}
    await other.disconnect()
