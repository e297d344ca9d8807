"""The chat page outliving a server restart: a real daphne stopped for 20 s and started again on the same port. The
page keeps trying with a capped backoff (connection.js), says so calmly, tries at once when the browser is back
online or the page is shown again, and a message sent afterwards gets its answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from fake_upstream import FakeUpstream
from tests.support.chat_page import page_in, send, sign_in, wait_answer_done, wait_connected
from tests.support.factories import user_create
from tests.support.servers import free_port, run_daphne

pytestmark = [pytest.mark.browser, pytest.mark.live]

DOWN_S = 20
STATUS = '[data-testid="connection-status"]'


def status_of(page: Page) -> tuple[str | None, str]:
    status = page.locator(STATUS)
    return status.get_attribute("data-status"), status.inner_text() if status.is_visible() else ""


def assistant_count(page: Page) -> int:
    return page.locator('[data-testid="message"][data-role="assistant"]').count()


def test_page_reconnects_by_itself_after_a_20_s_restart(
    chromium: Browser, transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    user_create(username="alice")
    port = free_port()
    with page_in(chromium) as page:
        with run_daphne(fake_upstream, tmp_path, port=port) as url:
            sign_in(page, url)
            send(page, "before the restart")
            wait_answer_done(page)
        # The server is gone: the page keeps trying, for longer than the old give-up time (11.5 s).
        stopped_at = time.monotonic()
        page.wait_for_selector(f'{STATUS}[data-status="reconnecting"]')
        page.context.set_offline(True)
        page.wait_for_selector(f'{STATUS}[data-status="offline"]')
        assert page.locator(STATUS).get_attribute("title") == "Offline — will reconnect"
        page.context.set_offline(False)
        page.wait_for_selector(f'{STATUS}[data-status="reconnecting"]')
        seen = set()
        while time.monotonic() - stopped_at < DOWN_S:
            seen.add(status_of(page)[0])
            page.wait_for_timeout(250)
        assert seen <= {"reconnecting", "connecting"}, seen
        assert page.locator(STATUS).get_attribute("title") == "Reconnecting…"


        with run_daphne(fake_upstream, tmp_path, port=port):
            started_at = time.monotonic()
            wait_connected(page, timeout_ms=15_000)  # by itself: the backoff is capped at 10 s (+25 % jitter)
            print(f"\nreconnected {time.monotonic() - started_at:.1f} s after the server was back")
            send(page, "after the restart")
            page.wait_for_function("() => document.querySelectorAll('[data-role=\"assistant\"]').length === 2")
            wait_answer_done(page)
            answer = page.locator('[data-testid="message"][data-role="assistant"] >> nth=-1')
            assert answer.get_attribute("data-status") == "complete"
            assert "after the restart" in (answer.locator('[data-testid="message-content"]').text_content() or "")


def test_showing_the_page_again_reconnects_at_once(
    chromium: Browser, transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    user_create(username="alice")
    port = free_port()
    with page_in(chromium) as page:
        with run_daphne(fake_upstream, tmp_path, port=port) as url:
            sign_in(page, url)
        page.wait_for_timeout(16_000)  # the backoff has grown to several seconds
        with run_daphne(fake_upstream, tmp_path, port=port):
            started_at = time.monotonic()
            page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
            wait_connected(page, timeout_ms=3_000)
            assert time.monotonic() - started_at < 3
