"""axe-core (tests/support/axe) on the chat page in each of its states (a saved answer with its controls included),
light and dark, at desktop and phone width, and on the sign-in pages: no serious or critical violation. And a
phone-width page never scrolls sideways, even with a long line of code in an answer (the code block scrolls inside
itself)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize

from fake_upstream import FakeUpstream, Scenario
from tests.e2e.test_branches_page import sign_in_and_ask
from tests.support.chat_page import ScriptedSocket, page_in, scripted, send, wait_answer_done, wait_until
from tests.support.factories import user_create
from tests.support.paths import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.live]

AXE = (ROOT / "tests/support/axe/axe.min.js").read_text()
# axe's own checks, run where the page's script runs; only what a person would be blocked by is reported.
RUN_AXE = """async () => {
  // Colours are judged as they settle: entry animations (fades) finish first; endless ones (a cursor) are left be.
  const settling = document.getAnimations().filter((a) => a.effect.getComputedTiming().endTime !== Infinity);
  await Promise.all(settling.map((a) => a.finished.catch(() => null)));
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", ")}`);
}"""
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
ANSWER = "## Plan\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n\nMore to come"
LONG_CODE = "```python\nresult = " + " + ".join(f"value_{i}" for i in range(60)) + "\n```\n\nAfter the code."


@pytest.fixture
def alice(live_server_url: str) -> Any:
    return user_create(username="alice")


def violations(page: Page) -> list[str]:
    """Serious and critical axe violations on the page as it is now. axe goes in through the DevTools protocol, which
    the Content-Security-Policy does not govern (the page itself stays under its real policy)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    result: list[str] = page.evaluate(RUN_AXE)
    return result


def start_answer(page: Page, socket: ScriptedSocket, text: str) -> str:
    send(page, "question")
    wait_until(page, lambda: len(socket.messages()) >= 1)
    conversation_id = str(uuid.uuid4())
    socket.start(conversation_id)
    socket.send("token", text)
    page.wait_for_selector('[data-role="assistant"][data-status="streaming"] [data-testid="message-content"] p')
    return conversation_id


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_chat_page_states_have_no_serious_violations(
    chromium: Browser, live_server_url: str, alice: Any, scheme: str, viewport: ViewportSize
) -> None:
    found: dict[str, list[str]] = {}
    with page_in(chromium, viewport=viewport, color_scheme=scheme) as page:
        socket = scripted(page, live_server_url)
        found["idle"] = violations(page)

        start_answer(page, socket, ANSWER)
        found["streaming"] = violations(page)

        socket.send("error", "The model took too long to respond. Please try again.", code="provider_error")
        wait_answer_done(page)
        found["error"] = violations(page)

        if viewport == PHONE:
            page.click('[data-testid="sidebar-toggle"]')
            page.wait_for_selector('[data-testid="sidebar"][data-open="true"]')
            page.wait_for_timeout(300)  # the slide-in transition
            found["sidebar open"] = violations(page)
            page.click('[data-testid="sidebar-backdrop"]', position={"x": 370, "y": 400})

        page.click('[data-testid="help-button"]')
        page.wait_for_selector('[data-testid="help-dialog"][open]')
        found["help dialog"] = violations(page)
    assert {state: v for state, v in found.items() if v} == {}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_saved_answer_and_its_controls_have_no_serious_violations(
    chromium: Browser, live_server_url: str, fake_upstream: FakeUpstream, user: Any, scheme: str,
    viewport: ViewportSize
) -> None:
    """A real answer, saved: Edit in the question's bubble, Regenerate, Ask the stronger model and the thumbs."""
    fake_upstream.enqueue(Scenario(text="Paris is the capital of France."))
    with page_in(chromium, viewport=viewport, color_scheme=scheme) as page:
        sign_in_and_ask(page, live_server_url, "What is the capital of France?")
        for control in ("edit-button", "regenerate-button", "ask-stronger-button", "thumbs-up", "thumbs-down"):
            page.wait_for_selector(f'[data-testid="{control}"]')
        assert violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_sign_in_pages_have_no_serious_violations(
    chromium: Browser, live_server_url: str, scheme: str, path: str
) -> None:
    with page_in(chromium, viewport=PHONE, color_scheme=scheme) as page:
        page.goto(f"{live_server_url}{path}")
        assert violations(page) == []
        page.set_viewport_size(DESKTOP)
        assert violations(page) == []


def test_phone_width_never_scrolls_sideways(chromium: Browser, live_server_url: str, alice: Any) -> None:
    with page_in(chromium, viewport=PHONE) as page:
        socket = scripted(page, live_server_url)
        start_answer(page, socket, LONG_CODE)
        socket.send("end", conversation_id=str(uuid.uuid4()), message_id=str(uuid.uuid4()), model="gpt-4o",
                    finish_reason="stop", cost_usd="0.0001", input_tokens=3, output_tokens=40)
        wait_answer_done(page)
        pre = page.locator('[data-role="assistant"] .code-block pre')
        assert pre.evaluate("(el) => el.scrollWidth > el.clientWidth")  # the long line scrolls inside the block
        overflow = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], overflow
