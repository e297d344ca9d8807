"""The chat page at the account's socket cap (a real daphne with PAM_MAX_SOCKETS_PER_USER=1): a second tab is refused
with 4429, says why, and does not hammer the server with reconnections; once the first tab is closed and the second
is shown again, it connects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from fake_upstream import FakeUpstream
from tests.support.chat_page import page_in, sign_in, wait_connected
from tests.support.factories import PASSWORD, user_create
from tests.support.servers import run_daphne

pytestmark = [pytest.mark.browser, pytest.mark.live]

NOTICE = '[data-testid="crowded-notice"]'


def test_a_tab_past_the_cap_says_why_waits_and_connects_once_a_place_is_free(
    chromium: Browser, transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    user_create(username="alice")
    with run_daphne(fake_upstream, tmp_path, PAM_MAX_SOCKETS_PER_USER="1") as url, \
            page_in(chromium) as first, page_in(chromium) as second:
        sign_in(first, url)
        attempts: list[str] = []
        second.on("websocket", lambda ws: attempts.append(ws.url))
        second.goto(f"{url}/")
        second.fill('input[name="username"]', "alice")
        second.fill('input[name="password"]', PASSWORD)
        second.click('[data-testid="login-submit"]')
        second.wait_for_selector('[data-testid="connection-status"][data-status="crowded"]')
        assert second.locator(NOTICE).is_visible()
        assert "too many chat tabs" in (second.locator(NOTICE).text_content() or "")
        second.screenshot(path=str(tmp_path / "crowded.png"))
        # Counted from the refusal on: a loaded host can drop a handshake before it (the page then rightly retries).
        refused_after = len(attempts)
        second.wait_for_timeout(4000)  # the ordinary backoff would have tried three or four times by now
        assert len(attempts) == refused_after, attempts

        first.close()
        second.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # the user comes back to it
        wait_connected(second)
        assert second.locator(NOTICE).is_hidden()
