"""Over a real socket, `auto` messages are routed by the router with the conversation's earlier turns, and
PAM_ROUTER_THRESHOLD moves the boundary."""

from __future__ import annotations

from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.routing import classify
from tests.support.answers import saved_answer
from tests.support.sockets import connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]

FIRST = "Design a database schema for a multi-tenant invoicing app in postgres, with audit history and soft deletes"
FIRST_ANSWER = "Here is a schema with tenants, invoices and an audit table. " * 20
FOLLOW_UP = "same for payments"


async def _ask(user: Any, text: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
    communicator = await connect(user)
    await communicator.send_json_to(message(text, conversation_id=conversation_id, client_msg_id=f"c{len(text)}"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    return frames


async def test_a_follow_up_is_routed_with_its_earlier_turns(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text=FIRST_ANSWER))
    first = await _ask(user, FIRST)
    assert first[0]["metadata"]["route"] == classify(FIRST).route == "complex"
    fake_upstream.enqueue(Scenario(text="Payments follow the same pattern."))
    follow_up = await _ask(user, FOLLOW_UP, first[0]["metadata"]["conversation_id"])

    with_history = classify(FOLLOW_UP, (FIRST, FIRST_ANSWER))
    assert follow_up[0]["metadata"]["route"] == with_history.route
    _, usage = await saved_answer(follow_up[-1]["metadata"]["message_id"])
    # The usage record keeps the score to 4 places.
    assert usage.routing["score"] == round(with_history.score, 4)
    assert usage.routing["score"] != round(classify(FOLLOW_UP).score, 4)  # the history was read
    assert usage.routing["model_version"] == with_history.model_version
    assert usage.routing["features"]["earlier_turns"] == 0.5


@pytest.mark.parametrize(("threshold", "text", "route"), [
    (0.0, "hi", "complex"),
    (1.0, "Explain step by step how to design a fault-tolerant message queue", "simple"),
])
async def test_the_threshold_setting_moves_the_boundary_on_the_socket(
    user: Any, fake_upstream: FakeUpstream, settings: Any, threshold: float, text: str, route: str
) -> None:
    settings.PAM_ROUTER_THRESHOLD = threshold
    fake_upstream.enqueue(Scenario(text="ok"))
    frames = await _ask(user, text)
    assert frames[0]["metadata"]["route"] == route
    _, usage = await saved_answer(frames[-1]["metadata"]["message_id"])
    assert usage.routing["threshold"] == threshold and usage.route == route
