"""Routing signals through the real path (socket → consumer → gateway → SDK → fake upstream → database): every
answer keeps the router's decision and the route asked for; a forced route, an early stop, an answer asked again on
the other route, and thumbs (the `feedback` frame) leave RoutingSignal rows with that decision and the texts the
router read; deleting the conversation keeps the counts and drops the texts."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import RoutingSignal, UsageRecord
from tests.support.answers import saved_answer, settled
from tests.support.sockets import connect, message, receive_until_done, stop_after_first_token

pytestmark = [pytest.mark.django_db(transaction=True)]

ROUTING_KEYS = {"route", "score", "threshold", "model_version", "features"}


async def ask(communicator: WebsocketCommunicator, fake_upstream: FakeUpstream, **frame: Any) -> dict[str, Any]:
    """Send a message (or a regenerate) and read its answer to the end; the answer's `start` metadata."""
    fake_upstream.enqueue(Scenario(text="An answer."))
    await communicator.send_json_to(frame if frame.get("type") == "regenerate" else message(**frame))
    frames = await receive_until_done(communicator)
    assert frames[-1]["chunk_type"] == "end", frames[-1]
    await saved_answer(frames[0]["metadata"]["message_id"])
    return dict(frames[0]["metadata"])


@database_sync_to_async
def signals(**filters: Any) -> list[RoutingSignal]:
    return list(RoutingSignal.objects.filter(**filters).order_by("created_at"))


async def feedback(communicator: WebsocketCommunicator, message_id: str, value: Any) -> dict[str, Any]:
    await communicator.send_json_to({"type": "feedback", "message_id": message_id, "value": value})
    return dict(await communicator.receive_json_from(timeout=5))


@pytest.fixture
async def socket(user: Any) -> Any:
    communicator = await connect(user)
    yield communicator
    await communicator.disconnect()
    await settled()


async def test_an_auto_answer_keeps_the_routers_decision_and_gives_no_signal(
    socket: WebsocketCommunicator, fake_upstream: FakeUpstream
) -> None:
    start = await ask(socket, fake_upstream, content="What is the capital of France?")
    _, usage = await saved_answer(start["message_id"])
    assert usage.route_requested == "auto"
    assert usage.routing.keys() >= ROUTING_KEYS
    assert usage.routing["route"] == usage.route == start["route"]
    assert 0 <= usage.routing["score"] <= 1 and usage.routing["features"]
    assert await signals() == []


async def test_a_forced_route_is_a_signal_with_the_routers_own_choice(
    socket: WebsocketCommunicator, fake_upstream: FakeUpstream, user: Any
) -> None:
    start = await ask(socket, fake_upstream, content="What is the capital of France?", route="complex")
    _, usage = await saved_answer(start["message_id"])
    assert usage.route_requested == "complex" and usage.route == "complex"
    assert usage.routing["route"] == "simple"  # what auto would have done: the disagreement is the signal
    [signal] = await signals()
    assert signal.kind == RoutingSignal.Kind.FORCED_ROUTE
    assert (signal.user_id, str(signal.message_id), signal.usage_record_id) == (user.pk, start["message_id"], usage.pk)
    assert (signal.route, signal.route_requested, signal.routing) == ("complex", "complex", usage.routing)
    assert (signal.text, signal.history) == ("What is the capital of France?", [])


async def test_asking_the_stronger_model_escalates_the_auto_answer_it_replaces(
    socket: WebsocketCommunicator, fake_upstream: FakeUpstream
) -> None:
    first = await ask(socket, fake_upstream, content="Hello there", client_msg_id="c1")
    conversation_id = first["conversation_id"]
    second = await ask(socket, fake_upstream, content="What is the capital of France?",
                       conversation_id=conversation_id, client_msg_id="c2")
    assert second["route"] == "simple"
    _, replaced = await saved_answer(second["message_id"])
    again = await ask(socket, fake_upstream, type="regenerate", message_id=second["message_id"], route="complex",
                      client_msg_id="r1")
    assert again["route"] == "complex"
    [signal] = await signals()
    assert signal.kind == RoutingSignal.Kind.ESCALATED
    assert str(signal.message_id) == second["message_id"] and signal.usage_record_id == replaced.pk
    assert (signal.route, signal.route_to, signal.route_requested) == ("simple", "complex", "auto")
    assert signal.routing == replaced.routing and signal.routing["route"] == "simple"
    assert signal.text == "What is the capital of France?"
    assert signal.history == ["Hello there", "An answer."]

    # Back to the simple model: de-escalated, about the complex answer; the same route again says nothing.
    await ask(socket, fake_upstream, type="regenerate", message_id=again["message_id"], route="simple",
              client_msg_id="r2")
    await ask(socket, fake_upstream, type="regenerate", message_id=again["message_id"], route="complex",
              client_msg_id="r3")
    kinds = [(s.kind, str(s.message_id), s.route, s.route_to) for s in await signals()]
    assert kinds == [
        ("escalated", second["message_id"], "simple", "complex"),
        ("de_escalated", again["message_id"], "complex", "simple"),
    ]


async def test_a_stop_before_the_end_is_a_signal(socket: WebsocketCommunicator, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight nine ten", token_delay_ms=200))
    start, frames = await stop_after_first_token(socket, message())
    assert frames[-1]["metadata"]["finish_reason"] == "cancelled"
    _, usage = await saved_answer(start["metadata"]["message_id"])
    [signal] = await signals()
    assert (signal.kind, signal.usage_record_id, signal.route) == ("stopped_early", usage.pk, usage.route)
    assert signal.routing == usage.routing and signal.route_requested == "auto"


async def test_thumbs_are_one_per_answer_replaced_and_cleared(
    socket: WebsocketCommunicator, fake_upstream: FakeUpstream, user: Any
) -> None:
    start = await ask(socket, fake_upstream)
    answer_id = start["message_id"]
    assert await feedback(socket, answer_id, "down") == {"type": "feedback", "message_id": answer_id, "value": "down"}
    [down] = await signals()
    _, usage = await saved_answer(answer_id)
    assert (down.kind, down.route, down.usage_record_id, down.routing) == ("thumbs_down", "simple", usage.pk,
                                                                            usage.routing)
    assert down.text == "What is the capital of France?"
    assert (await feedback(socket, answer_id, "up"))["value"] == "up"
    assert [s.kind for s in await signals()] == ["thumbs_up"]
    assert (await feedback(socket, answer_id, None))["value"] is None
    assert await signals() == []


async def test_only_the_owner_rates_and_bad_frames_are_refused(
    fake_upstream: FakeUpstream, user: Any, other_user: Any
) -> None:
    owner = await connect(user)
    start = await ask(owner, fake_upstream)
    mallory = await connect(other_user)
    refused = await feedback(mallory, start["message_id"], "down")
    assert refused["code"] == "not_found" and refused["value"] is None and refused["error"]
    await mallory.send_json_to({"type": "feedback", "message_id": start["message_id"], "value": "sideways"})
    bad = await mallory.receive_json_from(timeout=5)
    assert bad["chunk_type"] == "error" and bad["metadata"]["code"] == "bad_frame" and '"up"' in bad["content"]
    await mallory.send_json_to({"type": "feedback", "message_id": "nope", "value": "up"})
    assert (await mallory.receive_json_from(timeout=5))["metadata"]["code"] == "bad_frame"
    await owner.send_json_to({"type": "feedback", "message_id": start["message_id"]})  # no value: not a clear
    assert (await owner.receive_json_from(timeout=5))["metadata"]["code"] == "bad_frame"
    assert await signals() == []
    for communicator in (owner, mallory):
        await communicator.disconnect()
    await settled()


async def test_the_history_carries_the_rating_and_deleting_the_conversation_keeps_counts_not_texts(
    socket: WebsocketCommunicator, fake_upstream: FakeUpstream, user: Any
) -> None:
    start = await ask(socket, fake_upstream, route="complex")
    await feedback(socket, start["message_id"], "up")
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    url = f"/api/conversations/{start['conversation_id']}/messages/"
    data = (await database_sync_to_async(client.get)(url)).json()
    assert [(m["role"], m["feedback"]) for m in data["messages"]] == [("user", None), ("assistant", "up")]

    response = await database_sync_to_async(client.delete)(f"/api/conversations/{start['conversation_id']}/")
    assert response.status_code == 204
    kept = await signals()
    assert sorted(s.kind for s in kept) == ["forced_route", "thumbs_up"]
    assert all(s.message_id is None and s.usage_record_id is not None for s in kept)
    assert all(s.text == "" and s.history == [] for s in kept)
    assert await UsageRecord.objects.acount() == 1
