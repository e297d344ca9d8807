"""Conversations on the chat page, in headless Chromium against a real daphne server and the fake upstream: an address
per conversation (reload, back/forward), rename, delete, search, paging, exports, reopened answers with their usage
line and tool blocks, and switching conversations while an answer streams."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.models import Conversation, Message
from tests.support.chat_page import page_in
from tests.support.factories import conversation_create, message_create

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "correct-horse-battery-staple"
LAST_ASSISTANT = '[data-testid="message"][data-role="assistant"] >> nth=-1'
IDLE_ANSWER = '[data-testid="message-list"][data-state="idle"] [data-role="assistant"]:not([data-status="streaming"])'
LONG_ANSWER = " ".join(f"word{i}" for i in range(60)) + "."


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    with page_in(chromium, accept_downloads=True) as page:
        yield page


def sign_in(page: Page, base_url: str, username: str = "alice") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(f"{base_url}/")
    wait_connected(page)


def wait_connected(page: Page) -> None:
    page.wait_for_selector('[data-testid="connection-status"][data-status="connected"]')


def send(page: Page, text: str) -> None:
    page.fill('[data-testid="composer-input"]', text)
    page.press('[data-testid="composer-input"]', "Enter")


def wait_answer_done(page: Page) -> None:
    page.wait_for_selector(IDLE_ANSWER)


def wait_until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def roles_and_texts(page: Page) -> list[tuple[str | None, str]]:
    messages = page.locator('[data-testid="message"]')
    return [
        (messages.nth(i).get_attribute("data-role"),
         (messages.nth(i).locator('[data-testid="message-content"]').text_content() or "").strip())
        for i in range(messages.count())
    ]


def items(page: Page) -> list[str]:
    return page.locator('[data-testid="conversation-item"] .conversation-title').all_text_contents()


def saved_conversation(owner: Any, title: str, question: str = "hello", answer: str = "hi there") -> Conversation:
    conversation = conversation_create(owner=owner, title=title)
    asked = message_create(conversation=conversation, role=Message.Role.USER, content=question)
    answered = message_create(conversation=conversation, role=Message.Role.ASSISTANT, content=answer,
                              model="gpt-4o-mini")
    Message.objects.filter(id=answered.id).update(parent=asked, status=Message.Status.COMPLETE)
    Conversation.objects.filter(id=conversation.id).update(current_leaf=answered)
    return conversation


def test_reload_on_the_address_restores_usage_line_and_tool_blocks(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    fake_upstream.enqueue(
        Scenario(text="Let me work that out. ", tool_calls=[FakeToolCall("calculate", {"expression": "(17 + 4) * 2"})],
                 input_tokens=120, output_tokens=30),
        Scenario(text="It is 42.", input_tokens=300, output_tokens=12),
    )
    sign_in(page, live_server_url)
    send(page, "What is (17 + 4) * 2? Use the calculator.")
    wait_answer_done(page)
    conversation = Conversation.objects.get(owner=user)
    page.wait_for_url(f"{live_server_url}/c/{conversation.id}/")
    live_meta = page.locator(LAST_ASSISTANT).locator('[data-testid="message-meta"]').text_content() or ""
    live_tools = page.locator(LAST_ASSISTANT).locator('[data-testid="tool-block"]').count()
    assert live_tools == 2 and "first token" in live_meta

    page.reload()
    wait_connected(page)
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    answer = page.locator(LAST_ASSISTANT)
    blocks = answer.locator('[data-testid="tool-block"]')
    assert [blocks.nth(i).get_attribute("data-tool-kind") for i in range(blocks.count())] == [
        "tool_call", "tool_result"]
    assert "calculate" in (blocks.nth(0).locator("summary").text_content() or "")
    assert "42" in (blocks.nth(1).locator("pre").text_content() or "")
    # Text on either side of the tool round stays apart, in its place.
    order = answer.locator('[data-testid="message-content"] > *').evaluate_all(
        "nodes => nodes.map(n => n.dataset.testid === 'tool-block' ? 'tool' : n.textContent.trim())")
    assert order == ["Let me work that out.", "tool", "tool", "It is 42."]
    meta = answer.locator('[data-testid="message-meta"]').text_content() or ""
    assert "first token" in meta and "420 in · 42 out tokens" in meta and "$" in meta
    assert page.locator('[data-testid="conversation-title"]').text_content() == conversation.title


def test_back_and_forward_switch_between_conversations(page: Page, live_server_url: str, user: Any) -> None:
    first = saved_conversation(user, "First chat", "first question", "first answer")
    second = saved_conversation(user, "Second chat", "second question", "second answer")
    sign_in(page, live_server_url)
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{first.id}"]')
    page.wait_for_url(f"{live_server_url}/c/{first.id}/")
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{second.id}"]')
    page.wait_for_url(f"{live_server_url}/c/{second.id}/")
    page.wait_for_selector('[data-testid="message-content"]:has-text("second answer")')

    page.go_back()
    page.wait_for_url(f"{live_server_url}/c/{first.id}/")
    page.wait_for_selector('[data-testid="message-content"]:has-text("first answer")')
    assert page.locator('[data-testid="conversation-title"]').text_content() == "First chat"
    page.go_back()
    page.wait_for_url(f"{live_server_url}/")
    page.wait_for_selector('[data-testid="empty-state"]:not([hidden])')
    page.go_forward()
    page.wait_for_selector('[data-testid="message-content"]:has-text("first answer")')
    page.click('[data-testid="new-chat"]')
    page.wait_for_url(f"{live_server_url}/")
    assert page.locator('[data-testid="message"]').count() == 0


def test_rename_delete_and_search(page: Page, live_server_url: str, user: Any, other_user: Any) -> None:
    keep = saved_conversation(user, "Trip to Lisbon", "where to eat in lisbon", "Try the pastéis.")
    doomed = saved_conversation(user, "Old notes", "remember the milk", "Noted.")
    saved_conversation(other_user, "Mallory's Lisbon plans", "lisbon secrets", "shh")
    sign_in(page, live_server_url)
    page.wait_for_selector('[data-testid="conversation-item"] >> nth=1')

    row = page.locator(f'li[data-conversation-id="{keep.id}"]')
    row.hover()
    row.locator('[data-testid="rename-conversation"]').click()
    page.fill('[data-testid="rename-input"]', "Lisbon food")
    page.press('[data-testid="rename-input"]', "Escape")
    assert "Trip to Lisbon" in items(page)
    row.hover()
    row.locator('[data-testid="rename-conversation"]').click()
    page.fill('[data-testid="rename-input"]', "  Lisbon   food ")
    page.press('[data-testid="rename-input"]', "Enter")
    wait_until(lambda: Conversation.objects.get(id=keep.id).title == "Lisbon food")
    assert "Lisbon food" in items(page)

    row = page.locator(f'li[data-conversation-id="{doomed.id}"]')
    row.hover()
    row.locator('[data-testid="delete-conversation"]').click()
    dialog = page.locator('[data-testid="delete-dialog"]')
    assert dialog.is_visible() and "Old notes" in (dialog.text_content() or "")
    page.click('[data-testid="delete-cancel"]')
    assert not dialog.is_visible() and Conversation.objects.filter(id=doomed.id).exists()
    row.hover()
    row.locator('[data-testid="delete-conversation"]').click()
    page.click('[data-testid="delete-confirm"]')
    wait_until(lambda: not Conversation.objects.filter(id=doomed.id).exists())
    assert items(page) == ["Lisbon food"]

    page.fill('[data-testid="conversation-search"]', "pastéis")  # a word only in a message
    page.wait_for_selector('[data-testid="conversation-list-label"]:has-text("Search results")')
    assert items(page) == ["Lisbon food"]
    page.fill('[data-testid="conversation-search"]', "lisbon")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"conversation-item\"]').length === 1")
    page.wait_for_timeout(400)
    assert items(page) == ["Lisbon food"]  # never another user's
    page.fill('[data-testid="conversation-search"]', "no such thing")
    page.wait_for_selector('[data-testid="conversation-empty"]:not([hidden])')
    page.fill('[data-testid="conversation-search"]', "")
    page.wait_for_selector('[data-testid="conversation-list-label"]:has-text("Recent")')
    assert items(page) == ["Lisbon food"]


def test_the_whole_list_is_reachable_page_by_page(page: Page, live_server_url: str, user: Any) -> None:
    total = 45  # the API's pages hold 30
    for i in range(total):
        conversation_create(owner=user, title=f"Conversation {i:02d}")
    sign_in(page, live_server_url)
    page.wait_for_selector('[data-testid="conversation-item"] >> nth=29')
    page.locator('[data-testid="load-more"]').scroll_into_view_if_needed()
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=\"conversation-item\"]').length === {total}")
    assert sorted(items(page)) == [f"Conversation {i:02d}" for i in range(total)]
    assert page.locator('[data-testid="load-more"]').is_hidden()


def test_export_downloads_markdown_and_json(page: Page, live_server_url: str, user: Any) -> None:
    conversation = saved_conversation(user, "Exported chat", "export me", "exported answer")
    sign_in(page, live_server_url)
    assert page.locator('[data-testid="export-md"]').is_hidden()
    page.goto(f"{live_server_url}/c/{conversation.id}/")
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    with page.expect_download() as markdown:
        page.click('[data-testid="export-md"]')
    text = markdown.value.path().read_text(encoding="utf-8")
    assert markdown.value.suggested_filename == "exported-chat.md"
    assert "# Exported chat" in text and "export me" in text and "exported answer" in text
    with page.expect_download() as exported:
        page.click('[data-testid="export-json"]')
    data = json.loads(exported.value.path().read_text(encoding="utf-8"))
    assert [m["content"] for m in data["messages"]] == ["export me", "exported answer"]


def test_switching_away_while_an_answer_streams_and_coming_back(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    other = saved_conversation(user, "Elsewhere", "other question", "other answer")
    fake_upstream.enqueue(Scenario(text=LONG_ANSWER, token_delay_ms=60))
    sign_in(page, live_server_url)
    send(page, "tell me something long")
    page.wait_for_selector('[data-role="assistant"][data-status="streaming"]')
    page.wait_for_function("() => location.pathname.startsWith('/c/')")
    streaming_url = page.url

    # The sidebar and New chat stay usable while it streams.
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{other.id}"]')
    page.wait_for_selector('[data-testid="message-content"]:has-text("other answer")')
    assert page.locator('[data-testid="stop-button"]').is_hidden()
    page.click('[data-testid="new-chat"]')
    page.wait_for_url(f"{live_server_url}/")

    page.go_back()
    page.go_back()
    page.wait_for_url(streaming_url)
    page.wait_for_selector('[data-testid="message-list"][data-state="streaming"]')
    wait_answer_done(page)
    assert roles_and_texts(page) == [("user", "tell me something long"), ("assistant", LONG_ANSWER)]
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert len(fake_upstream.requests) == 1
    answer = Message.objects.get(role=Message.Role.ASSISTANT, conversation__title__startswith="tell me")
    assert answer.status == Message.Status.COMPLETE
