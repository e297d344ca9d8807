"""`search_conversations` finds the requesting user's own messages, newest first, and never another user's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from pam_hybrid.domain.chunks import ToolCall
from pam_hybrid.tools.base import ToolContext
from pam_hybrid.tools.conversation_search import SearchArgs, search_conversations, snippet
from pam_hybrid.tools.runner import run_tool_call
from tests.support.factories import conversation_create, message_create

pytestmark = pytest.mark.django_db(transaction=True)


def _history(alice: Any, mallory: Any) -> dict[str, Any]:
    """Alice's two conversations and Mallory's one, all mentioning sourdough, a day apart."""
    now = timezone.now()
    bread = conversation_create(owner=alice, title="Bread")
    trip = conversation_create(owner=alice, title="Trip to Lyon")
    secret = conversation_create(owner=mallory, title="Mallory's secrets")
    message_create(conversation=bread, content="How do I feed a SOURDOUGH starter?", created_at=now - timedelta(days=3))
    message_create(
        conversation=bread, role="assistant", content="Feed your sourdough starter daily.",
        created_at=now - timedelta(days=2),
    )
    message_create(conversation=trip, content="Any sourdough bakeries in Lyon?", created_at=now - timedelta(days=1))
    message_create(conversation=trip, content="Nothing to see here.", created_at=now)
    message_create(conversation=secret, content="My sourdough recipe and my PIN 4321", created_at=now)
    return {"bread": bread, "trip": trip, "secret": secret}


async def test_finds_own_messages_case_insensitively_newest_first(alice: Any, mallory: Any) -> None:
    data = await sync_to_async(_history)(alice, mallory)
    result = await search_conversations.run(SearchArgs(query="sourdough"), ToolContext(user=alice))
    assert result["count"] == 3
    matches = result["matches"]
    assert [m["snippet"] for m in matches] == [
        "Any sourdough bakeries in Lyon?",
        "Feed your sourdough starter daily.",
        "How do I feed a SOURDOUGH starter?",
    ]
    assert [m["conversation_title"] for m in matches] == ["Trip to Lyon", "Bread", "Bread"]
    assert [m["role"] for m in matches] == ["user", "assistant", "user"]
    assert matches[0]["conversation_id"] == str(data["trip"].id)
    created = [m["created_at"] for m in matches]
    assert created == sorted(created, reverse=True)


async def test_never_returns_another_users_messages(alice: Any, mallory: Any) -> None:
    await sync_to_async(_history)(alice, mallory)
    found = await search_conversations.run(SearchArgs(query="sourdough", limit=20), ToolContext(user=alice))
    assert found["count"] == 3
    assert all("PIN" not in m["snippet"] for m in found["matches"])
    assert (await search_conversations.run(SearchArgs(query="4321"), ToolContext(user=alice)))["count"] == 0
    theirs = await search_conversations.run(SearchArgs(query="sourdough", limit=20), ToolContext(user=mallory))
    assert [m["conversation_title"] for m in theirs["matches"]] == ["Mallory's secrets"]


async def test_arguments_cannot_name_another_user(alice: Any, mallory: Any) -> None:
    await sync_to_async(_history)(alice, mallory)
    arguments = f'{{"query": "4321", "user_id": {mallory.pk}}}'
    result = await run_tool_call(ToolCall("c", "search_conversations", arguments), ToolContext(user=alice))
    assert not result.ok
    assert "PIN" not in result.content
    assert "user_id: Extra inputs are not permitted" in result.content


async def test_limit_keeps_the_newest(alice: Any, mallory: Any) -> None:
    await sync_to_async(_history)(alice, mallory)
    result = await search_conversations.run(SearchArgs(query="sourdough", limit=1), ToolContext(user=alice))
    assert [m["snippet"] for m in result["matches"]] == ["Any sourdough bakeries in Lyon?"]


async def test_leaves_out_the_conversation_the_call_came_from(alice: Any, mallory: Any) -> None:
    data = await sync_to_async(_history)(alice, mallory)
    context = ToolContext(user=alice, conversation_id=data["trip"].id)
    result = await search_conversations.run(SearchArgs(query="sourdough"), context)
    assert {m["conversation_title"] for m in result["matches"]} == {"Bread"}


async def test_query_is_literal_not_a_pattern(alice: Any) -> None:
    conversation = await sync_to_async(conversation_create)(owner=alice)
    await sync_to_async(message_create)(conversation=conversation, content="It grew by 1000 percent")
    context = ToolContext(user=alice)
    assert (await search_conversations.run(SearchArgs(query="100%"), context))["count"] == 0
    assert (await search_conversations.run(SearchArgs(query="1_00"), context))["count"] == 0
    assert (await search_conversations.run(SearchArgs(query="1000"), context))["count"] == 1


def test_limit_is_between_1_and_20() -> None:
    with pytest.raises(ValueError, match="less than or equal to 20"):
        SearchArgs(query="x", limit=21)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SearchArgs(query="x", limit=0)
    with pytest.raises(ValueError, match="at least 1 character"):
        SearchArgs(query="   ")


def test_snippet_is_centred_on_the_match_with_ellipses() -> None:
    content = "a" * 500 + " NEEDLE " + "b" * 500
    text = snippet(content, "needle", width=100)
    assert text.startswith("…") and text.endswith("…")
    assert "NEEDLE" in text
    assert len(text) == 102
    middle = text.index("NEEDLE")
    assert 40 <= middle <= 55


def test_snippet_of_a_short_message_is_the_message_with_whitespace_collapsed() -> None:
    assert snippet("  hello\n\n  world  ", "world") == "hello world"


def test_snippet_near_the_start_or_end_is_not_padded_with_an_ellipsis() -> None:
    content = "needle " + "x" * 400
    assert snippet(content, "needle", width=50) == "needle " + "x" * 43 + "…"
    content = "x" * 400 + " needle"
    assert snippet(content, "needle", width=50) == "…" + "x" * 43 + " needle"
