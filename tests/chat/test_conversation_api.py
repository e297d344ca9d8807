"""The conversation API the chat page manages its sidebar and history with, through Django's test client (and a
real socket where an answer has to stream first): the page per conversation, paging and search, rename, delete,
the current branch with versions, usage and parts, branch switching, export, CSRF."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient, Client

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.models import Conversation, Message, UsageRecord
from tests.support.answers import saved_answer, settled
from tests.support.sockets import connect, message, receive_until_done

BASE = datetime(2025, 1, 1, tzinfo=UTC)
ZERO = "00000000-0000-4000-8000-000000000000"


def conversation_at(owner: Any, title: str, minutes: float, **extra: Any) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, **extra)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=BASE + timedelta(minutes=minutes))
    conversation.refresh_from_db()
    return conversation


def said(conversation: Conversation, role: str, content: str, parent: Message | None, minutes: int,
         **extra: Any) -> Message:
    row = Message.objects.create(conversation=conversation, role=role, content=content, parent=parent,
                                 reply_to=parent if role == "assistant" else None, **extra)
    Message.objects.filter(pk=row.pk).update(created_at=BASE + timedelta(minutes=minutes))
    row.refresh_from_db()
    return row


@pytest.fixture
def tree(user: Any) -> dict[str, Any]:
    """Q1 A1 Q2 A2, a regenerated A2b (current), and an edited Q2e with its answer A2e (older than A2b)."""
    conversation = conversation_at(user, "Branches", 1)
    q1 = said(conversation, "user", "Q1", None, 1)
    a1 = said(conversation, "assistant", "A1", q1, 2, model="gpt-4o-mini")
    q2 = said(conversation, "user", "Q2", a1, 3)
    a2 = said(conversation, "assistant", "A2", q2, 4)
    q2e = said(conversation, "user", "Q2 edited", a1, 5)
    a2e = said(conversation, "assistant", "A2e", q2e, 6)
    a2b = said(conversation, "assistant", "A2b", q2, 7, model="claude-sonnet-5-5", provider="anthropic")
    UsageRecord.objects.create(message=a2b, user=user, route="complex", provider="anthropic",
                               model="claude-sonnet-5-5", input_tokens=12, output_tokens=34,
                               cost_usd=Decimal("0.00036800"), ttft_ms=120.5, total_ms=900.0, outcome="complete")
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=a2b)
    return {"conversation": conversation, "q1": q1, "a1": a1, "q2": q2, "a2": a2, "q2e": q2e, "a2e": a2e,
            "a2b": a2b}


def ids(*messages: Message) -> list[str]:
    return [str(m.id) for m in messages]


def signed_in(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


# --- the page ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_of_a_conversation_names_it_on_body(user: Any, other_user: Any) -> None:
    mine = conversation_at(user, "Mine", 1)
    theirs = conversation_at(other_user, "Theirs", 1)
    client = signed_in(user)
    page = client.get(f"/c/{mine.id}/")
    assert page.status_code == 200
    assert f'data-conversation-id="{mine.id}"' in page.content.decode()
    assert 'data-conversation-id=""' in client.get("/").content.decode()
    assert client.get(f"/c/{theirs.id}/").status_code == 404
    assert client.get(f"/c/{ZERO}/").status_code == 404
    assert Client().get(f"/c/{mine.id}/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_the_page_sets_a_csrf_cookie_the_script_can_read(user: Any) -> None:
    response = signed_in(user).get("/")
    assert response.cookies["csrftoken"].value
    assert not getattr(settings, "CSRF_COOKIE_HTTPONLY", False)
    body = response.content.decode()
    for attribute in ("data-api-conversation=", "data-api-branch=", "data-api-export=", "data-page-conversation="):
        assert attribute in body


# --- the list: paging and search ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_paging_reaches_every_conversation_once_newest_first(user: Any) -> None:
    made = [conversation_at(user, f"c{i}", i // 3) for i in range(47)]  # threes share their updated_at
    client = signed_in(user)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        body = client.get("/api/conversations/", {"limit": 10, "cursor": cursor}).json()
        seen += [c["id"] for c in body["conversations"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert pages == 5
    expected = sorted(made, key=lambda c: (c.updated_at, str(c.id)), reverse=True)
    assert seen == [str(c.id) for c in expected]


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"cursor": "not-ours"}])
def test_bad_paging_is_400(user: Any, query: dict[str, Any]) -> None:
    response = signed_in(user).get("/api/conversations/", query)
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.django_db
def test_search_finds_titles_and_messages_of_the_users_own_conversations_only(user: Any, other_user: Any) -> None:
    by_title = conversation_at(user, "Trip to LISBON", 1)
    by_message = conversation_at(user, "Holidays", 2)
    said(by_message, "user", "flights to lisbon in May?", None, 1)
    conversation_at(user, "Groceries", 3)
    theirs = conversation_at(other_user, "Lisbon secrets", 4)
    said(theirs, "user", "lisbon", None, 1)
    replay = conversation_at(user, "Replay of Trip to Lisbon", 5, replay_of=by_title)
    body = signed_in(user).get("/api/conversations/", {"q": "lisbon"}).json()
    assert [c["id"] for c in body["conversations"]] == [str(by_message.id), str(by_title.id)]
    assert body["next_cursor"] is None
    assert str(theirs.id) not in json.dumps(body) and str(replay.id) not in json.dumps(body)


# --- rename, delete, CSRF ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rename(user: Any) -> None:
    conversation = conversation_at(user, "Old", 1)
    client = signed_in(user)
    response = client.patch(f"/api/conversations/{conversation.id}/", {"title": "  New   name "},
                            content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"conversation": {
        "id": str(conversation.id), "title": "New name", "updated_at": "2025-01-01T00:01:00Z",
    }}
    conversation.refresh_from_db()
    assert conversation.title == "New name"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"title": 7}, {}, []])
def test_rename_refuses_an_empty_or_too_long_title(user: Any, body: Any) -> None:
    conversation = conversation_at(user, "Old", 1)
    response = signed_in(user).patch(f"/api/conversations/{conversation.id}/", body,
                                     content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]
    conversation.refresh_from_db()
    assert conversation.title == "Old"


@pytest.mark.django_db
def test_delete(user: Any, tree: dict[str, Any]) -> None:
    conversation = tree["conversation"]
    client = signed_in(user)
    assert client.delete(f"/api/conversations/{conversation.id}/").status_code == 204
    assert not Conversation.objects.filter(id=conversation.id).exists()
    assert not Message.objects.filter(conversation_id=conversation.id).exists()
    assert UsageRecord.objects.filter(message__isnull=True).count() == 1  # what it cost still counts
    assert client.get(f"/api/conversations/{conversation.id}/messages/").status_code == 404
    assert client.delete(f"/api/conversations/{conversation.id}/").status_code == 404


@pytest.mark.django_db
def test_another_users_conversation_cannot_be_renamed_deleted_or_switched(other_user: Any,
                                                                        tree: dict[str, Any]) -> None:
    conversation = tree["conversation"]
    client = signed_in(other_user)
    url = f"/api/conversations/{conversation.id}/"
    assert client.patch(url, {"title": "pwned"}, content_type="application/json").status_code == 404
    assert client.delete(url).status_code == 404
    branch = client.post(f"{url}branch", {"message_id": str(tree["a2"].id)}, content_type="application/json")
    assert branch.status_code == 404
    assert client.get(f"{url}export?format=json").status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.current_leaf_id) == ("Branches", tree["a2b"].id)


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/api/conversations/", f"/api/conversations/{ZERO}/", f"/api/conversations/{ZERO}/messages/",
    f"/api/conversations/{ZERO}/export?format=md",
])
def test_signed_out_gets_401_json(url: str) -> None:
    client = Client()
    for response in (client.get(url), client.delete(url), client.patch(url), client.post(f"{ZERO}/branch")):
        if response.status_code != 405 and response.status_code != 404:
            assert response.status_code == 401 and response.json()["error"]
    assert client.post(f"/api/conversations/{ZERO}/branch").status_code == 401


@pytest.mark.django_db
def test_writes_need_the_csrf_token(user: Any, tree: dict[str, Any]) -> None:
    conversation = tree["conversation"]
    client = signed_in(user, csrf=True)
    url = f"/api/conversations/{conversation.id}/"
    branch = {"message_id": str(tree["a2"].id)}
    assert client.patch(url, {"title": "t"}, content_type="application/json").status_code == 403
    assert client.post(f"{url}branch", branch, content_type="application/json").status_code == 403
    assert client.delete(url).status_code == 403
    assert Conversation.objects.filter(id=conversation.id, title="Branches").exists()

    token = client.get("/").cookies["csrftoken"].value  # as the page's script reads it
    headers = {"X-CSRFToken": token}
    assert client.patch(url, {"title": "t"}, content_type="application/json", headers=headers).status_code == 200
    assert client.post(f"{url}branch", branch, content_type="application/json", headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 204


# --- history: the current branch ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_history_is_the_current_branch_with_versions_and_usage(user: Any, tree: dict[str, Any]) -> None:
    t = tree
    body = signed_in(user).get(f"/api/conversations/{t['conversation'].id}/messages/").json()
    messages = body["messages"]
    assert [m["id"] for m in messages] == ids(t["q1"], t["a1"], t["q2"], t["a2b"])
    assert [m["parent_id"] for m in messages] == [None, *ids(t["q1"], t["a1"], t["q2"])]
    assert [m["siblings"] for m in messages] == [
        ids(t["q1"]), ids(t["a1"]), ids(t["q2"], t["q2e"]), ids(t["a2"], t["a2b"]),
    ]
    assert messages[3]["usage"] == {"input_tokens": 12, "output_tokens": 34, "cost_usd": "0.00036800",
                                    "estimated": False, "ttft_ms": 120.5, "total_ms": 900.0}
    assert messages[1]["usage"] is None and messages[0]["usage"] is None
    assert messages[3]["parts"] == [{"type": "text", "content": "A2b"}]
    for key in ("role", "content", "status", "model", "provider", "route", "finish_reason", "client_msg_id",
                "fallback", "tool_calls", "created_at", "error"):
        assert key in messages[3]


@pytest.mark.django_db
def test_switching_branches_persists_the_leaf(user: Any, tree: dict[str, Any]) -> None:
    t = tree
    client = signed_in(user)
    url = f"/api/conversations/{t['conversation'].id}/"

    def switch(message: Message) -> list[str]:
        response = client.post(f"{url}branch", {"message_id": str(message.id)}, content_type="application/json")
        assert response.status_code == 200
        return [m["id"] for m in response.json()["messages"]]

    assert switch(t["q2e"]) == ids(t["q1"], t["a1"], t["q2e"], t["a2e"])
    assert [m["id"] for m in client.get(f"{url}messages/").json()["messages"]][-1] == str(t["a2e"].id)
    assert switch(t["a2"]) == ids(t["q1"], t["a1"], t["q2"], t["a2"])
    assert switch(t["q1"]) == ids(t["q1"], t["a1"], t["q2"], t["a2b"])  # the newest leaf under it
    t["conversation"].refresh_from_db()
    assert t["conversation"].current_leaf_id == t["a2b"].id


@pytest.mark.django_db
def test_switching_to_a_message_elsewhere_is_404_and_a_bad_body_400(user: Any, tree: dict[str, Any]) -> None:
    elsewhere = said(conversation_at(user, "Other", 2), "user", "hi", None, 1)
    client = signed_in(user)
    url = f"/api/conversations/{tree['conversation'].id}/branch"
    assert client.post(url, {"message_id": str(elsewhere.id)}, content_type="application/json").status_code == 404
    assert client.post(url, {"message_id": "nope"}, content_type="application/json").status_code == 400
    assert client.post(url, "not json", content_type="application/json").status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_history_keeps_text_either_side_of_a_tool_round_apart(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(
        Scenario(text="Let me compute.", tool_calls=[FakeToolCall("calculate", {"expression": "(17 + 4) * 2"})]),
        Scenario(text="It is 42.", input_tokens=300, output_tokens=12),
    )
    communicator = await connect(user)
    await communicator.send_json_to(message("What is (17+4)*2?", route="simple"))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    await settled()
    end = frames[-1]["metadata"]
    await saved_answer(end["message_id"])

    client = AsyncClient()
    await client.aforce_login(user)
    body = (await client.get(f"/api/conversations/{end['conversation_id']}/messages/")).json()
    question, answer = body["messages"]
    assert question["parts"] == [{"type": "text", "content": "What is (17+4)*2?"}]
    assert [p["type"] for p in answer["parts"]] == ["text", "tool_call", "tool_result", "text"]
    text1, call, result, text2 = answer["parts"]
    assert (text1["content"], text2["content"]) == ("Let me compute.", "It is 42.")
    assert (call["name"], call["arguments"]) == ("calculate", {"expression": "(17 + 4) * 2"})
    assert result["call_id"] == call["call_id"] and result["ok"] is True
    assert json.loads(result["content"])["result"]["result"] == 42
    assert result["duration_ms"] >= 0
    assert answer["content"] == "Let me compute.It is 42."
    usage = answer["usage"]
    assert usage["output_tokens"] == end["output_tokens"] and usage["cost_usd"] == end["cost_usd"]
    assert usage["estimated"] is False and usage["ttft_ms"] == end["ttft_ms"]
    assert answer["tool_calls"][0]["name"] == "calculate"


# --- export ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_markdown_is_the_current_branch(user: Any, tree: dict[str, Any]) -> None:
    Conversation.objects.filter(pk=tree["conversation"].pk).update(title="Trip: Lisbon / Porto")
    response = signed_in(user).get(f"/api/conversations/{tree['conversation'].id}/export", {"format": "md"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == 'attachment; filename="trip-lisbon-porto.md"'
    text = response.content.decode()
    assert text.startswith("# Trip: Lisbon / Porto\n")
    assert "## You\n\nQ1" in text and "## Assistant (claude-sonnet-5-5)\n\nA2b" in text
    assert "Q2 edited" not in text and "\nA2\n" not in text


@pytest.mark.django_db
def test_export_json_is_every_message_with_parents_and_usage(user: Any, tree: dict[str, Any]) -> None:
    response = signed_in(user).get(f"/api/conversations/{tree['conversation'].id}/export", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="branches.json"'
    data = json.loads(response.content)
    assert data["conversation"]["current_leaf_id"] == str(tree["a2b"].id)
    by_id = {m["id"]: m for m in data["messages"]}
    assert len(by_id) == 7
    assert by_id[str(tree["a2e"].id)]["parent_id"] == str(tree["q2e"].id)
    assert by_id[str(tree["a2b"].id)]["usage"]["cost_usd"] == "0.00036800"


@pytest.mark.django_db
def test_export_refuses_an_unknown_format(user: Any, tree: dict[str, Any]) -> None:
    response = signed_in(user).get(f"/api/conversations/{tree['conversation'].id}/export", {"format": "pdf"})
    assert response.status_code == 400
