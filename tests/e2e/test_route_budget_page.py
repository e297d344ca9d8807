"""The route toggle's cost preview and the budget notice, in headless Chromium against a real daphne and the fake
upstream: typing shows each route's estimated cost once typing pauses (one request, not one per keystroke), and near
today's spending limit an auto answer says, once, that it took the faster model and how to override it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from fake_upstream import FakeUpstream, Scenario
from tests.support.chat_page import LAST_ASSISTANT, page_in, sign_in, wait_answer_done
from tests.support.factories import user_create
from tests.support.servers import run_daphne

pytestmark = [pytest.mark.browser, pytest.mark.live]

PREVIEW = '[data-testid="route-preview"]'
INPUT = '[data-testid="composer-input"]'
NOTE = '[data-testid="message-route-note"]'
DEMANDING = ("Prove step by step that the square root of 2 is irrational, then design and analyse an algorithm that "
             "compares the tradeoffs of both proofs in detail.")


def test_typing_shows_each_routes_cost_and_near_the_cap_auto_says_it_took_the_faster_model(
    chromium: Browser, transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    user_create(username="alice")
    with run_daphne(fake_upstream, tmp_path, PAM_DAILY_SPEND_CAP_USD="1") as url, page_in(chromium) as page:
        previews: list[str] = []
        page.on("request", lambda r: previews.append(r.url) if r.url.endswith("/api/route-preview") else None)
        sign_in(page, url)
        assert page.locator(PREVIEW).is_hidden()
        page.locator(INPUT).press_sequentially(DEMANDING[:60], delay=15)
        page.wait_for_selector(f"{PREVIEW}:visible")
        text = page.locator(PREVIEW).text_content() or ""
        assert re.fullmatch(r"Simple ~\$0\.\d+ · Complex ~\$0\.\d+", text), text
        assert "gpt-4o-mini" in (page.locator(PREVIEW).get_attribute("title") or "")
        assert page.get_by_test_id("route-select").get_attribute("aria-describedby") == "route-preview"
        assert 1 <= len(previews) <= 6, previews  # after pauses in typing, not for each of 60 keystrokes
        page.screenshot(path=str(tmp_path / "preview.png"))

        page.fill(INPUT, "")
        page.wait_for_selector(PREVIEW, state="hidden")  # nothing typed: nothing to price

        # $0.902 on claude-sonnet-5-5 ($2 in, $10 out per million): past 0.8 of the $1 cap once it has ended.
        fake_upstream.enqueue(Scenario(text="A proof, then the algorithm.", input_tokens=1000, output_tokens=90_000))
        page.fill(INPUT, DEMANDING)
        page.press(INPUT, "Enter")
        wait_answer_done(page)
        assert page.locator(LAST_ASSISTANT).locator(NOTE).is_hidden()  # under the share: the classifier decided
        assert fake_upstream.requests[-1].provider == "anthropic"
        assert page.locator(PREVIEW).is_hidden()  # the message was sent: its preview went with it

        fake_upstream.enqueue(Scenario(text="A shorter proof."))
        page.fill(INPUT, DEMANDING)
        page.press(INPUT, "Enter")
        wait_answer_done(page)
        note = page.locator(LAST_ASSISTANT).locator(NOTE)
        assert note.is_visible()
        assert note.text_content() == ("Near today's spending limit: using the faster model. "
                                       "Pick the Complex route to override.")
        assert fake_upstream.requests[-1].provider == "openai"
        assert page.locator('[data-testid="message"][data-role="assistant"]').locator(NOTE).count() == 2
        assert page.locator(f"{NOTE}:visible").count() == 1  # once, on the answer it applied to
        page.screenshot(path=str(tmp_path / "budget-note.png"))

        page.reload()  # reopened from the history API: the answer still says why it took the faster model
        page.wait_for_selector(f"{LAST_ASSISTANT} >> {NOTE}:visible")
        assert page.locator(LAST_ASSISTANT).locator(NOTE).text_content() == note.text_content()
        assert page.locator(f"{NOTE}:visible").count() == 1
