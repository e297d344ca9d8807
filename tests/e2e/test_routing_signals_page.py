"""Routing signals from the chat page, in headless Chromium against a real daphne server and the fake upstream: thumbs
down on an answer is stored (and shown pressed after a reload), clearing it removes it, and "Ask the stronger model"
records the auto answer as escalated with the router's decision and features."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import RoutingSignal
from tests.e2e.test_branches_page import LAST_ASSISTANT, sign_in_and_ask, wait_versions
from tests.support.chat_page import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.live]

QUESTION = "What is the capital of France?"


def thumb(page: Page, which: str) -> Any:
    return page.locator(LAST_ASSISTANT).locator(f'[data-testid="thumbs-{which}"]')


def kinds() -> list[str]:
    return list(RoutingSignal.objects.order_by("created_at").values_list("kind", flat=True))


def test_thumbs_down_is_stored_shown_after_a_reload_and_cleared(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    fake_upstream.enqueue(Scenario(text="Paris."))
    sign_in_and_ask(page, live_server_url, QUESTION)
    down = thumb(page, "down")
    assert down.get_attribute("aria-pressed") == "false" and down.get_attribute("aria-label") == "Bad answer"
    down.click()
    wait_until(page, lambda: kinds() == ["thumbs_down"])
    signal = RoutingSignal.objects.get()
    assert signal.user_id == user.pk and signal.route == "simple" and signal.text == QUESTION
    assert signal.message is not None and signal.message.content == "Paris."

    page.reload()
    page.wait_for_selector(f'{LAST_ASSISTANT} >> [data-testid="thumbs-down"][aria-pressed="true"]')
    assert thumb(page, "up").get_attribute("aria-pressed") == "false"

    thumb(page, "down").click()  # pressed again: the rating is cleared
    wait_until(page, lambda: kinds() == [])
    assert thumb(page, "down").get_attribute("aria-pressed") == "false"


def test_asking_the_stronger_model_records_an_escalation_with_the_routers_features(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, user: Any
) -> None:
    fake_upstream.enqueue(Scenario(text="Paris."), Scenario(text="Paris, on the Seine."))
    sign_in_and_ask(page, live_server_url, QUESTION)
    page.locator(LAST_ASSISTANT).locator('[data-testid="ask-stronger-button"]').click()
    wait_versions(page, "2 / 2")
    wait_until(page, lambda: kinds() == ["escalated"])
    signal = RoutingSignal.objects.select_related("usage_record").get()
    assert (signal.route, signal.route_to, signal.route_requested) == ("simple", "complex", "auto")
    assert signal.usage_record is not None and signal.routing == signal.usage_record.routing
    assert signal.routing["route"] == "simple" and signal.routing["features"]
    assert {"score", "threshold", "model_version"} <= signal.routing.keys()
    assert signal.text == QUESTION
    # The stronger answer can be rated too.
    thumb(page, "up").click()
    wait_until(page, lambda: sorted(kinds()) == ["escalated", "thumbs_up"])
    rated = RoutingSignal.objects.get(kind="thumbs_up")
    assert rated.route == "complex" and rated.route_requested == "complex"
