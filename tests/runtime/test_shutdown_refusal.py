"""While the process drains for a restart, a message is refused with a retry hint and never reaches a provider
(tests/e2e/test_shutdown drives the drain itself through a real SIGTERM, where an idle socket may be closed before
its message lands)."""

from __future__ import annotations

from typing import Any

import pytest

from fake_upstream import FakeUpstream
from pam_hybrid.models import Message
from pam_hybrid.runtime import shutdown
from tests.support.sockets import connect, message

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_a_message_sent_while_draining_is_refused_and_nothing_runs(
    user: Any, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutdown, "_process", shutdown._Process(draining=True))
    socket = await connect(user)
    await socket.send_json_to(message("too late"))
    refusal = await socket.receive_json_from(timeout=5)
    assert refusal["chunk_type"] == "error" and refusal["metadata"] == {"code": "shutting_down"}
    assert refusal["content"] == "The server is restarting. Send your message again in a moment."
    assert fake_upstream.requests == []
    assert not await Message.objects.aexists()  # nothing saved: the user sends it again once reconnected
    await socket.disconnect()
