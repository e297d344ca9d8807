"""Regenerate and edit through the real path (socket → consumer → gateway → SDK → fake upstream → database): new
versions become siblings, the context sent upstream follows the branch, and the conversation's current leaf moves."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Conversation, Message, UsageRecord
from tests.support.answers import saved_answer, settled
from tests.support.sockets import connect, message, receive_until_done, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]


def upstream_turns(fake_upstream: FakeUpstream) -> list[tuple[str, str]]:
    """The (role, text) turns of the last request the fake upstream got, system prompt left out (an Anthropic turn
    sent as text blocks, to mark a prompt-cache breakpoint, is read as its text)."""
    return [(m["role"], _text(m["content"])) for m in fake_upstream.requests[-1].messages if m["role"] != "system"]


def _text(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else "".join(b["text"] for b in content if b["type"] == "text")


async def ask(communicator: WebsocketCommunicator, fake_upstream: FakeUpstream, reply: str,
              **frame: Any) -> list[dict[str, Any]]:
    fake_upstream.enqueue(Scenario(text=reply))
    await communicator.send_json_to(frame if frame.get("type") == "regenerate" else message(route="simple", **frame))
    frames = await receive_until_done(communicator)
    assert frames[-1]["chunk_type"] == "end", frames[-1]
    await saved_answer(frames[-1]["metadata"]["message_id"])
    return frames


@database_sync_to_async
def current_leaf(conversation_id: str) -> uuid.UUID | None:
    return Conversation.objects.get(id=conversation_id).current_leaf_id


@database_sync_to_async
def versions(message_id: str) -> list[str]:
    message = Message.objects.get(id=message_id)
    return [str(m.id) for m in Message.objects.filter(
        conversation_id=message.conversation_id, parent_id=message.parent_id, role=message.role
    ).order_by("created_at")]


@pytest.fixture
async def two_turns(user: Any, fake_upstream: FakeUpstream) -> dict[str, Any]:
    """A conversation of two exchanges, Q1 A1 Q2 A2, on an open socket."""
    communicator = await connect(user)
    first = await ask(communicator, fake_upstream, "A1", content="Q1", client_msg_id="c1")
    conversation_id = first[0]["metadata"]["conversation_id"]
    second = await ask(communicator, fake_upstream, "A2", content="Q2", conversation_id=conversation_id,
                       client_msg_id="c2")
    yield {
        "socket": communicator, "conversation_id": conversation_id,
        "q1": first[0]["metadata"]["user_message_id"], "a1": first[0]["metadata"]["message_id"],
        "q2": second[0]["metadata"]["user_message_id"], "a2": second[0]["metadata"]["message_id"],
    }
    await communicator.disconnect()
    await settled()


async def test_a_message_follows_the_branch_and_links_its_rows(two_turns: dict[str, Any],
                                                               fake_upstream: FakeUpstream) -> None:
    assert upstream_turns(fake_upstream) == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]
    q2, a2 = await Message.objects.aget(id=two_turns["q2"]), await Message.objects.aget(id=two_turns["a2"])
    assert str(q2.parent_id) == two_turns["a1"]
    assert str(a2.parent_id) == str(a2.reply_to_id) == two_turns["q2"]
    assert str(await current_leaf(two_turns["conversation_id"])) == two_turns["a2"]
    q1 = await Message.objects.aget(id=two_turns["q1"])
    assert q1.parent_id is None


async def test_regenerate_adds_a_sibling_answer_with_the_same_context(
    two_turns: dict[str, Any], fake_upstream: FakeUpstream
) -> None:
    users_before = await Message.objects.filter(role="user").acount()
    frames = await ask(two_turns["socket"], fake_upstream, "A2 again",
                       type="regenerate", message_id=two_turns["a2"], route="complex", client_msg_id="r1")
    start = frames[0]["metadata"]
    assert start["regenerate_of"] == two_turns["a2"]
    assert start["user_message_id"] == start["parent_id"] == two_turns["q2"]
    assert start["conversation_id"] == two_turns["conversation_id"]
    assert start["provider"] == "anthropic"  # "ask the stronger model"
    assert {"route", "model", "classification_ms", "message_id"} <= start.keys()
    assert text_of(frames) == "A2 again"
    assert upstream_turns(fake_upstream) == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]
    new_id = start["message_id"]
    assert await versions(new_id) == [two_turns["a2"], new_id]
    assert str(await current_leaf(two_turns["conversation_id"])) == new_id
    assert await Message.objects.filter(role="user").acount() == users_before
    answer, usage = await saved_answer(new_id)
    assert str(answer.reply_to_id) == two_turns["q2"] and usage.outcome == "complete"


async def test_edit_adds_a_sibling_question_whose_answer_sees_only_the_branch_before_it(
    two_turns: dict[str, Any], fake_upstream: FakeUpstream
) -> None:
    frames = await ask(two_turns["socket"], fake_upstream, "A2 edited", content="Q2 edited",
                       conversation_id=two_turns["conversation_id"], edit_of=two_turns["q2"], client_msg_id="e1")
    start = frames[0]["metadata"]
    assert start["edit_of"] == two_turns["q2"]
    assert upstream_turns(fake_upstream) == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2 edited")]
    edited = start["user_message_id"]
    assert await versions(edited) == [two_turns["q2"], edited]
    assert str(await current_leaf(two_turns["conversation_id"])) == start["message_id"]

    # The next message follows the edited branch, not the first one.
    await ask(two_turns["socket"], fake_upstream, "A3", content="Q3", conversation_id=two_turns["conversation_id"],
              client_msg_id="c3")
    assert upstream_turns(fake_upstream) == [
        ("user", "Q1"), ("assistant", "A1"), ("user", "Q2 edited"), ("assistant", "A2 edited"), ("user", "Q3"),
    ]


async def test_editing_the_first_message_starts_a_second_root(
    two_turns: dict[str, Any], fake_upstream: FakeUpstream
) -> None:
    frames = await ask(two_turns["socket"], fake_upstream, "A1 bis", content="Q1 bis",
                       conversation_id=two_turns["conversation_id"], edit_of=two_turns["q1"], client_msg_id="e2")
    assert upstream_turns(fake_upstream) == [("user", "Q1 bis")]
    assert await versions(frames[0]["metadata"]["user_message_id"]) == [
        two_turns["q1"], frames[0]["metadata"]["user_message_id"]
    ]


async def test_regenerate_or_edit_of_what_is_not_yours_is_not_found(
    two_turns: dict[str, Any], other_user: Any, fake_upstream: FakeUpstream
) -> None:
    theirs = await connect(other_user)
    requests_before = len(fake_upstream.requests)
    for frame in (
        {"type": "regenerate", "message_id": two_turns["a2"]},
        {"type": "regenerate", "message_id": two_turns["q2"]},  # a user message is no answer
        {"type": "regenerate", "message_id": str(uuid.uuid4())},
    ):
        await theirs.send_json_to(frame)
        error = await theirs.receive_json_from(timeout=5)
        assert (error["chunk_type"], error["metadata"]["code"]) == ("error", "not_found"), error
    await theirs.send_json_to(message(content="mine now", conversation_id=two_turns["conversation_id"],
                                      edit_of=two_turns["q2"], client_msg_id="x"))
    error = await theirs.receive_json_from(timeout=5)
    assert error["metadata"]["code"] == "conversation_not_found"
    await theirs.disconnect()
    # An edit_of that is an answer, in the user's own conversation.
    await two_turns["socket"].send_json_to(message(content="no", conversation_id=two_turns["conversation_id"],
                                                   edit_of=two_turns["a2"], client_msg_id="y"))
    error = await two_turns["socket"].receive_json_from(timeout=5)
    assert error["metadata"]["code"] == "not_found"
    assert len(fake_upstream.requests) == requests_before


@pytest.mark.parametrize(("frame", "says"), [
    ({"type": "regenerate"}, "message_id"),
    ({"type": "regenerate", "message_id": "nope"}, "message_id"),
    ({"type": "regenerate", "message_id": str(uuid.uuid4()), "route": "fastest"}, "route"),
    ({"type": "regenerate", "message_id": str(uuid.uuid4()), "client_msg_id": 7}, "client_msg_id"),
    (message(edit_of="nope", conversation_id=str(uuid.uuid4())), "edit_of"),
    (message(edit_of=str(uuid.uuid4())), "conversation_id"),
])
async def test_bad_regenerate_and_edit_frames_are_refused_readably(user: Any, frame: dict[str, Any],
                                                                   says: str) -> None:
    communicator = await connect(user)
    await communicator.send_json_to(frame)
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["metadata"] == {"code": "bad_frame"}
    assert says in error["content"]


async def test_delete_while_streaming_stops_the_answer_and_keeps_its_usage(
    user: Any, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = await connect(user)
    first = await ask(communicator, fake_upstream, "A1", content="Q1")
    conversation_id = first[0]["metadata"]["conversation_id"]
    fake_upstream.enqueue(Scenario(text="a long answer " * 200, token_delay_ms=20))
    await communicator.send_json_to(message(content="Q2", conversation_id=conversation_id, client_msg_id="c2"))
    start = await communicator.receive_json_from(timeout=5)
    token = await communicator.receive_json_from(timeout=5)
    assert token["chunk_type"] == "token"

    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.delete(f"/api/conversations/{conversation_id}/")
    assert response.status_code == 204
    frames = await receive_until_done(communicator)
    assert frames[-1]["chunk_type"] == "end" and frames[-1]["metadata"]["finish_reason"] == "cancelled"
    await communicator.disconnect()
    await settled()
    await asyncio.sleep(0.1)

    assert not await Conversation.objects.filter(id=conversation_id).aexists()
    assert not await Message.objects.filter(conversation_id=conversation_id).aexists()
    outcomes = [u.outcome async for u in UsageRecord.objects.filter(message__isnull=True)]
    assert sorted(outcomes) == ["cancelled", "complete"]  # both answers' costs still count
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info], caplog.text
    assert start["chunk_type"] == "start"


async def test_an_answer_whose_conversation_was_deleted_elsewhere_is_saved_without_a_traceback(
    user: Any, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """As when another server process deleted it: the answer ends normally, its rows are gone, its usage stays."""
    communicator = await connect(user)
    first = await ask(communicator, fake_upstream, "A1", content="Q1")
    conversation_id = first[0]["metadata"]["conversation_id"]
    fake_upstream.enqueue(Scenario(text="a long answer " * 20, token_delay_ms=10))
    await communicator.send_json_to(message(content="Q2", conversation_id=conversation_id, client_msg_id="c2"))
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "start"
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "token"
    await Conversation.objects.filter(id=conversation_id).adelete()
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    await settled()
    assert frames[-1]["chunk_type"] == "end" and frames[-1]["metadata"]["status"] == "complete"
    assert not await Message.objects.filter(conversation_id=conversation_id).aexists()
    assert not await Conversation.objects.filter(id=conversation_id).aexists()
    assert await UsageRecord.objects.filter(message__isnull=True).acount() == 2
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info], caplog.text
