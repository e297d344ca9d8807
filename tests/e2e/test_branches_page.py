"""Versions on the chat page, in headless Chromium against a real daphne server and the fake upstream: regenerate an
answer (and on the stronger route), edit a question, "‹ n / m ›" between versions, Retry as a new version."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Conversation, Message

pytestmark = [pytest.mark.browser, pytest.mark.live]

PASSWORD = "correct-horse-battery-staple"
LAST_ASSISTANT = '[data-testid="message"][data-role="assistant"] >> nth=-1'
IDLE_ANSWER = '[data-testid="message-list"][data-state="idle"] [data-role="assistant"]:not([data-status="streaming"])'


def sign_in_and_ask(page: Page, base_url: str, text: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_selector('[data-testid="connection-status"][data-status="connected"]')
    page.fill('[data-testid="composer-input"]', text)
    page.press('[data-testid="composer-input"]', "Enter")
    page.wait_for_selector(IDLE_ANSWER)


def texts(page: Page) -> list[tuple[str | None, str]]:
    messages = page.locator('[data-testid="message"]')
    return [
        (messages.nth(i).get_attribute("data-role"),
         (messages.nth(i).locator('[data-testid="message-content"]').text_content() or "").strip())
        for i in range(messages.count())
    ]


def wait_versions(page: Page, label: str, role: str = "assistant") -> None:
    page.wait_for_selector(
        f'[data-testid="message-list"][data-state="idle"] [data-role="{role}"] '
        f'[data-testid="version-label"]:text-is("{label}")')


def test_regenerate_makes_a_second_version_and_versions_switch(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    fake_upstream.enqueue(Scenario(text="First answer."), Scenario(text="Second answer."),
                          Scenario(text="Third, stronger answer."))
    sign_in_and_ask(page, live_server_url, "a question")
    page.locator(LAST_ASSISTANT).locator('[data-testid="regenerate-button"]').click()
    wait_versions(page, "2 / 2")
    assert texts(page) == [("user", "a question"), ("assistant", "Second answer.")]

    page.click('[data-testid="version-prev"]')
    wait_versions(page, "1 / 2")
    assert texts(page)[1] == ("assistant", "First answer.")
    page.click('[data-testid="version-next"]')
    wait_versions(page, "2 / 2")

    page.locator(LAST_ASSISTANT).locator('[data-testid="ask-stronger-button"]').click()
    wait_versions(page, "3 / 3")
    assert texts(page)[1] == ("assistant", "Third, stronger answer.")
    assert len(fake_upstream.requests) == 3
    newest = Message.objects.filter(role=Message.Role.ASSISTANT).order_by("-created_at").first()
    assert newest is not None and newest.route == "complex"
    page.reload()  # the chosen version is the conversation's, after a reload too
    wait_versions(page, "3 / 3")


def test_edit_a_question_reruns_from_there_and_keeps_the_old_version(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    sign_in_and_ask(page, live_server_url, "first question")
    page.fill('[data-testid="composer-input"]', "second question")
    page.press('[data-testid="composer-input"]', "Enter")
    page.wait_for_selector('[data-testid="message-list"][data-state="idle"] [data-role="assistant"] >> nth=1')

    first_user = page.locator('[data-testid="message"][data-role="user"]').first
    first_user.locator('[data-testid="edit-button"]').click()
    page.fill('[data-testid="edit-input"]', "never mind")
    page.press('[data-testid="edit-input"]', "Escape")
    assert page.locator('[data-testid="edit-input"]').count() == 0
    first_user.locator('[data-testid="edit-button"]').click()
    page.fill('[data-testid="edit-input"]', "edited question")
    page.click('[data-testid="edit-save"]')
    wait_versions(page, "2 / 2", role="user")

    model = fake_upstream.requests[-1].model
    assert texts(page) == [("user", "edited question"), ("assistant", f"Echo from {model}: edited question")]
    page.click('[data-testid="version-prev"]')
    wait_versions(page, "1 / 2", role="user")
    assert [text for _, text in texts(page)][0::2] == ["first question", "second question"]
    assert Conversation.objects.filter(owner=user).count() == 1


def test_retry_after_a_failure_is_a_new_version_not_a_new_turn(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    fake_upstream.enqueue(Scenario(text="partial words here", error_after_tokens=2))
    sign_in_and_ask(page, live_server_url, "what went wrong?")
    failed = page.locator(LAST_ASSISTANT)
    assert failed.get_attribute("data-status") == "error"
    failed.locator('[data-testid="retry-button"]').click()
    wait_versions(page, "2 / 2")
    model = fake_upstream.requests[-1].model
    assert texts(page) == [("user", "what went wrong?"), ("assistant", f"Echo from {model}: what went wrong?")]
    assert Message.objects.filter(role=Message.Role.USER).count() == 1
