"""The theme picker (static/pam_hybrid/theme.js) and the keyboard shortcuts with their help dialog (keys.js), in
headless Chromium under the server's own Content-Security-Policy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.chat_page import (
    RECORD_CSP_VIOLATIONS,
    page_in,
    scripted,
    send,
    wait_answer_done,
    wait_until,
)
from tests.support.factories import user_create

pytestmark = [pytest.mark.browser, pytest.mark.live]

BACKGROUND = "getComputedStyle(document.body).backgroundColor"
LIGHT_BG, DARK_BG = "rgb(247, 247, 248)", "rgb(15, 17, 21)"
SHEET_MEDIA = "[...document.querySelectorAll('link[data-theme-sheet]')].map((l) => l.media)"
FOCUSED = "document.activeElement?.dataset.testid ?? null"


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    with page_in(chromium, color_scheme="dark") as page:
        page.add_init_script(RECORD_CSP_VIOLATIONS)
        yield page


@pytest.fixture
def alice(live_server_url: str) -> Any:
    return user_create(username="alice")


def test_theme_follows_the_system_until_chosen_and_is_kept(page: Page, live_server_url: str, alice: Any) -> None:
    scripted(page, live_server_url)
    assert page.evaluate("document.documentElement.dataset.theme ?? null") is None
    assert page.evaluate(BACKGROUND) == DARK_BG  # the system's (emulated) dark scheme
    assert page.evaluate(SHEET_MEDIA) == ["(prefers-color-scheme: light)", "(prefers-color-scheme: dark)"]

    page.select_option('[data-testid="theme-select"]', "light")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(BACKGROUND) == LIGHT_BG
    assert page.evaluate(SHEET_MEDIA) == ["all", "not all"]

    # Kept, and applied by a classic script in <head> before the page is drawn: no flash of the other theme.
    page.reload()
    assert page.evaluate("document.querySelector('head script[src$=\"theme.js\"]:not([type], [defer], [async])')")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(BACKGROUND) == LIGHT_BG
    assert page.locator('[data-testid="theme-select"]').input_value() == "light"

    page.select_option('[data-testid="theme-select"]', "system")
    assert page.evaluate("localStorage.getItem('pam-theme')") == "system"
    assert page.evaluate(BACKGROUND) == DARK_BG
    assert page.evaluate("window.__cspViolations") == []


def test_help_dialog_lists_the_shortcuts_and_closes_with_escape(page: Page, live_server_url: str, alice: Any) -> None:
    scripted(page, live_server_url)
    dialog = page.locator('[data-testid="help-dialog"]')
    page.click('[data-testid="help-button"]')
    assert dialog.is_visible()
    assert page.evaluate(FOCUSED) == "help-close"  # a modal dialog takes the focus
    shortcuts = dialog.locator("dd").all_text_contents()
    assert {"New chat", "Focus the message box", "Stop the answer", "Show these shortcuts"} <= set(shortcuts)
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate(FOCUSED) == "help-button"  # back where it was

    page.locator("body").click(position={"x": 640, "y": 300})
    page.keyboard.press("Control+/")
    assert dialog.is_visible()
    page.click('[data-testid="help-close"]')
    assert not dialog.is_visible()
    page.locator("body").click(position={"x": 640, "y": 300})
    page.keyboard.press("?")
    assert dialog.is_visible()
    page.keyboard.press("Escape")
    page.fill('[data-testid="composer-input"]', "what?")  # "?" typed in the composer stays there
    assert not dialog.is_visible()


def test_shortcuts_focus_the_composer_stop_and_start_a_new_chat(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    page.locator("body").click(position={"x": 640, "y": 300})
    assert page.evaluate(FOCUSED) != "composer-input"
    page.keyboard.press("/")
    assert page.evaluate(FOCUSED) == "composer-input"
    assert page.locator('[data-testid="composer-input"]').input_value() == ""  # the "/" is not typed
    page.locator('[data-testid="help-button"]').focus()
    page.keyboard.press("Shift+Escape")
    assert page.evaluate(FOCUSED) == "composer-input"

    send(page, "tell me a long story")
    wait_until(page, lambda: len(socket.messages()) == 1)
    conversation_id = str(uuid.uuid4())
    socket.start(conversation_id)
    socket.send("token", "Once upon a time")
    page.wait_for_selector('[data-role="assistant"][data-status="streaming"]')
    page.locator("body").click(position={"x": 640, "y": 300})
    page.keyboard.press("Escape")
    wait_until(page, lambda: any(frame["type"] == "cancel" for frame in socket.received))
    socket.send("end", conversation_id=conversation_id, message_id=str(uuid.uuid4()), finish_reason="cancelled",
                status="partial", model="gpt-4o")
    wait_answer_done(page)

    page.keyboard.press("Control+Shift+O")
    page.wait_for_selector('[data-testid="message"]', state="detached")
    assert page.locator('[data-testid="conversation-title"]').text_content() == "New chat"
    assert page.evaluate(FOCUSED) == "composer-input"
