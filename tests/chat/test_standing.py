"""A socket ends with its user's standing: a change of password or a deactivation closes the user's open sockets
(4401) and stops their answer, and a socket re-checks before every answer or resume, so a change the signals never
saw (a bulk update) refuses the next message before anything runs or is read."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.chat.consumer import ChatConsumer
from pam_hybrid.models import Message
from pam_hybrid.runtime.standing import SIGNED_OUT_TEXT
from tests.support.answers import settled_answer
from tests.support.sockets import message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]


async def signed_in_socket(user: Any) -> WebsocketCommunicator:
    """A socket opened with a real session of `user`, as the browser's cookie would give it."""
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    communicator.scope["session"] = SessionStore(session_key=browser.session.session_key)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "ping"})  # answered once connect() has joined the socket's groups
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    return communicator


async def close_code(socket: WebsocketCommunicator) -> int:
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return int(output["code"])


async def fresh(user: Any) -> Any:
    return await get_user_model()._default_manager.aget(pk=user.pk)


async def test_a_password_change_closes_the_open_socket_and_stops_its_answer(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight", token_delay_ms=150))
    socket = await signed_in_socket(user)
    await socket.send_json_to(message())
    start = await socket.receive_json_from(timeout=5)

    changed = await fresh(user)
    changed.set_password("a-new-horse-battery-staple")
    await sync_to_async(changed.save)()

    assert await close_code(socket) == 4401
    answer, usage = await settled_answer(start["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and usage.outcome == "cancelled"


async def test_a_deactivation_closes_the_open_socket(user: Any) -> None:
    socket = await signed_in_socket(user)
    deactivated = await fresh(user)
    deactivated.is_active = False
    await sync_to_async(deactivated.save)(update_fields=["is_active"])
    assert await close_code(socket) == 4401


async def test_saving_other_fields_leaves_the_socket_serving(user: Any) -> None:
    socket = await signed_in_socket(user)
    edited = await fresh(user)
    edited.first_name = "Alice"
    await sync_to_async(edited.save)()  # every field saved: the socket checks, and still stands
    await sync_to_async(edited.save)(update_fields=["last_login"])  # a login elsewhere: not even a check
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await socket.disconnect()


@pytest.mark.parametrize("change", [{"password": "pbkdf2_sha256$1$x$y"}, {"is_active": False}])
async def test_a_change_no_signal_saw_refuses_the_next_message_before_anything_runs(
    user: Any, fake_upstream: FakeUpstream, change: dict[str, Any]
) -> None:
    socket = await signed_in_socket(user)
    await get_user_model()._default_manager.filter(pk=user.pk).aupdate(**change)  # no save(), no signal

    # Asks for the search_conversations tool's history too: nothing may run for a socket no longer signed in.
    await socket.send_json_to(message("search my past conversations for 'invoice'"))
    refusal = await socket.receive_json_from(timeout=5)
    assert refusal["chunk_type"] == "error" and refusal["metadata"]["code"] == "signed_out"
    assert refusal["content"] == SIGNED_OUT_TEXT
    assert await close_code(socket) == 4401
    assert fake_upstream.requests == []
    assert await Message.objects.acount() == 0


async def test_a_refused_message_gives_back_its_client_id_and_its_place(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    """The standing is read while the claim and the limits are taken: a refusal must undo both, or the same message
    sent again once the account is back would follow an answer that never ran, or meet a limit that is not there."""
    settings.PAM_MAX_CONCURRENT_ANSWERS = 1
    socket = await signed_in_socket(user)
    await get_user_model()._default_manager.filter(pk=user.pk).aupdate(is_active=False)
    await socket.send_json_to(message("What is the capital of Peru?", client_msg_id="again"))
    assert (await socket.receive_json_from(timeout=5))["metadata"]["code"] == "signed_out"
    assert await close_code(socket) == 4401

    await get_user_model()._default_manager.filter(pk=user.pk).aupdate(is_active=True)
    fake_upstream.enqueue(Scenario(text="Lima."))
    socket = await signed_in_socket(user)
    await socket.send_json_to(message("What is the capital of Peru?", client_msg_id="again"))
    frames = await receive_until_done(socket)
    assert frames[-1]["chunk_type"] == "end" and "".join(
        frame["content"] for frame in frames if frame["chunk_type"] == "token") == "Lima."
    assert len(fake_upstream.requests) == 1
    await socket.disconnect()


async def test_a_resume_is_refused_too(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three"))
    socket = await signed_in_socket(user)
    await socket.send_json_to(message())
    start = await socket.receive_json_from(timeout=5)
    await settled_answer(start["metadata"]["message_id"])
    await get_user_model()._default_manager.filter(pk=user.pk).aupdate(is_active=False)
    await socket.send_json_to({"type": "resume", "message_id": start["metadata"]["message_id"], "last_seq": -1})
    frames = []
    while (frame := await socket.receive_json_from(timeout=5)).get("metadata", {}).get("code") != "signed_out":
        frames.append(frame)  # what was already on its way before the resume
    assert await close_code(socket) == 4401
