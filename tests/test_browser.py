"""The chat page in headless Chromium against a real daphne server and the fake upstream.

Covers the whole path a person takes: sign in, send, watch the answer stream in, reload, reopen the
conversation from the sidebar; and that model output is only ever shown as text. The last tests put a
scripted socket in place of the server's (Playwright's WebSocket routing) to drive frames and closes that
the real server cannot be made to send on demand: tool chunks, unknown cost, drops, auth closes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, WebSocketRoute, sync_playwright

from pam_hybrid.models import Conversation
from tests.fake_upstream import FakeUpstream, Scenario

pytestmark = [pytest.mark.browser, pytest.mark.live]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple"
SCREENSHOT = "/tmp/pam_chat.png"
TOKEN_DELAY_MS = 60
INJECTED = '[data-testid="message-content"] img, [data-testid="message-content"] b'
LAST_ASSISTANT = '[data-testid="message"][data-role="assistant"] >> nth=-1'

# Records every length the streaming answer's text passes through, as the page sees it.
RECORD_LENGTHS = """() => {
  window.__lengths = [];
  const list = document.querySelector('[data-testid="message-list"]');
  new MutationObserver(() => {
    const answers = list.querySelectorAll('[data-role="assistant"]');
    const last = answers[answers.length - 1];
    if (last && last.dataset.status === "streaming") {
      window.__lengths.push(last.querySelector('[data-testid="message-content"]').textContent.length);
    }
  }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop marked running in this thread, which makes Django refuse
    ORM calls (the test's own, and the database flush after each test). They are plain sync calls here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def alice(django_user_model: Any, live_server_url: str) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/accounts/login/")
    page.fill('input[name="username"]', "alice")
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
    page.wait_for_selector(
        '[data-testid="message-list"][data-state="idle"] [data-role="assistant"]:not([data-status="streaming"])'
    )


def message_texts(page: Page) -> list[tuple[str | None, str]]:
    messages = page.locator('[data-testid="message"]')
    return [
        (
            messages.nth(i).get_attribute("data-role"),
            messages.nth(i).locator('[data-testid="message-content"]').text_content() or "",
        )
        for i in range(messages.count())
    ]


def test_answer_streams_in_and_history_reopens(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    fake_upstream.token_delay_ms = TOKEN_DELAY_MS
    sign_in(page, live_server_url)
    assert page.locator('[data-testid="username"]').text_content() == "alice"
    page.evaluate(RECORD_LENGTHS)
    text = "Tell me a short story about a lighthouse keeper and a curious seagull"

    send(page, text)
    page.wait_for_selector('[data-testid="message-list"][data-state="streaming"]')
    page.wait_for_selector('[data-testid="message"][data-role="assistant"][data-status="streaming"]')
    wait_answer_done(page)

    model = fake_upstream.requests[-1].model
    expected = f"Echo from {model}: {text}"
    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "complete"
    assert answer.locator('[data-testid="message-content"]').text_content() == expected
    partial_lengths = {n for n in page.evaluate("window.__lengths") if 0 < n < len(expected)}
    assert len(partial_lengths) >= 2, partial_lengths
    meta = answer.locator('[data-testid="message-meta"]')
    assert meta.get_attribute("data-model") == model
    assert model in (meta.text_content() or "")
    assert "first token" in (meta.text_content() or "")

    conversation = Conversation.objects.get(owner=alice)
    item = page.locator(f'[data-testid="conversation-item"][data-conversation-id="{conversation.id}"]')
    item.wait_for()
    page.screenshot(path=SCREENSHOT)

    page.reload()
    wait_connected(page)
    assert page.locator('[data-testid="message"]').count() == 0
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{conversation.id}"]')
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    assert message_texts(page) == [("user", text), ("assistant", expected)]


def test_follow_up_continues_the_conversation(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    sign_in(page, live_server_url)
    send(page, "first question")
    wait_answer_done(page)
    send(page, "second question")
    page.wait_for_selector('[data-testid="message"][data-role="assistant"] >> nth=1')
    wait_answer_done(page)
    assert Conversation.objects.filter(owner=alice).count() == 1
    last_request = fake_upstream.requests[-1].messages
    assert [m["role"] for m in last_request if m["role"] != "system"][-3:] == ["user", "assistant", "user"]
    assert page.locator('[data-testid="conversation-item"]').count() == 1


def test_model_output_is_shown_as_text_never_html(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    payload = '<img src=x onerror="window.__xss=1"><b>bold</b>'
    sign_in(page, live_server_url)
    send(page, payload)
    wait_answer_done(page)

    expected = f"Echo from {fake_upstream.requests[-1].model}: {payload}"
    assert page.locator(LAST_ASSISTANT).locator('[data-testid="message-content"]').text_content() == expected
    assert page.locator(INJECTED).count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"

    page.reload()
    wait_connected(page)
    page.click('[data-testid="conversation-item"]')
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    assert message_texts(page)[1] == ("assistant", expected)
    assert page.locator(INJECTED).count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def test_fenced_code_becomes_a_code_block_of_text(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    code = "<script>window.__xss=2</script>\nprint('hi')"
    fake_upstream.enqueue(Scenario(text=f"Run this:\n\n```html\n{code}\n```\nDone."))
    sign_in(page, live_server_url)
    send(page, "show me some code")
    wait_answer_done(page)

    content = page.locator(LAST_ASSISTANT).locator('[data-testid="message-content"]')
    assert content.locator("pre code").text_content() == code
    assert content.locator(".code-head span").text_content() == "html"
    assert [t.strip() for t in content.locator(".message-text").all_text_contents()] == ["Run this:", "Done."]
    assert content.locator("script").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_stop_ends_the_answer_early(page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any) -> None:
    fake_upstream.token_delay_ms = 200
    sign_in(page, live_server_url)
    send(page, "please write a rather long answer about the sea and ships and harbours")
    page.wait_for_selector('[data-testid="message"][data-role="assistant"][data-status="streaming"]')
    page.wait_for_function(
        """() => document.querySelector('[data-role="assistant"] [data-testid="message-content"]')
                   .textContent.length > 0"""
    )
    stop = page.locator('[data-testid="stop-button"]')
    assert stop.is_visible()
    stop.click()
    wait_answer_done(page)
    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "partial"
    assert "Stopped" in (answer.locator('[data-testid="message-note"]').text_content() or "")
    assert not stop.is_visible()
    assert page.locator('[data-testid="composer-input"]').is_enabled()


# --- the page's side of the socket protocol, against a scripted socket ---


class ScriptedSocket:
    """Stands in for the server's chat socket: records the page's frames, sends and closes when told."""

    def __init__(self, on_connect: Callable[[ScriptedSocket, WebSocketRoute], None] | None = None) -> None:
        self.routes: list[WebSocketRoute] = []
        self.received: list[dict[str, Any]] = []
        self.on_connect = on_connect

    def handle(self, route: WebSocketRoute) -> None:
        self.routes.append(route)
        route.on_message(lambda message: self.received.append(json.loads(message)))
        if self.on_connect is not None:
            self.on_connect(self, route)

    def send(self, chunk_type: str, content: str = "", **metadata: Any) -> None:
        frame = {
            "type": "stream",
            "chunk_type": chunk_type,
            "content": content,
            "metadata": metadata,
            "timestamp": "2025-01-01T00:00:00Z",
        }
        self.routes[-1].send(json.dumps(frame))

    def messages(self) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame["type"] == "message"]


def scripted(page: Page, base_url: str, socket: ScriptedSocket | None = None) -> ScriptedSocket:
    socket = socket or ScriptedSocket()
    page.route_web_socket("**/ws/chat/", socket.handle)
    sign_in(page, base_url)
    return socket


def wait_until(page: Page, predicate: Callable[[], bool], within_s: float = 10) -> None:
    """Wait for something the test process observes; page waits let Playwright deliver socket events."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(20)


def end_metadata(conversation_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "message_id": str(uuid.uuid4()),
        "route": "simple",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 5,
        "output_tokens": 7,
        "cost_usd": "0.00012300",
        "classification_ms": 0.4,
        "ttft_ms": 12.0,
        "total_ms": 50.0,
        "finish_reason": "stop",
        **overrides,
    }


def test_message_frame_and_follow_up_carry_the_conversation(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    first = socket.messages()[0]
    assert {k: first[k] for k in ("type", "content", "conversation_id", "stream", "route")} == {
        "type": "message",
        "content": "hello",
        "conversation_id": None,
        "stream": True,
        "route": "auto",
    }
    assert uuid.UUID(first["client_msg_id"])

    conversation_id = str(uuid.uuid4())
    socket.send("start", conversation_id=conversation_id, route="simple", provider="openai", model="gpt-4o-mini")
    socket.send("token", "Hi")
    socket.send("end", **end_metadata(conversation_id))
    wait_answer_done(page)
    meta = page.locator(LAST_ASSISTANT).locator('[data-testid="message-meta"]').text_content() or ""
    assert "$0.000123" in meta and "first token 12 ms" in meta and "5 in · 7 out tokens" in meta
    assert page.locator(LAST_ASSISTANT).locator('[data-testid="message-note"]').count() == 0

    page.select_option('[data-testid="route-select"]', "complex")
    send(page, "more")
    wait_until(page, lambda: len(socket.messages()) == 2)
    second = socket.messages()[1]
    assert (second["conversation_id"], second["route"]) == (conversation_id, "complex")
    assert second["client_msg_id"] != first["client_msg_id"]


def test_tool_chunks_unknown_cost_and_length_cut(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "weather?")
    wait_until(page, lambda: len(socket.messages()) == 1)
    conversation_id = str(uuid.uuid4())
    socket.send("start", conversation_id=conversation_id, route="complex", provider="anthropic", model="claude-x")
    socket.send("token", "Let me look. ")
    socket.send("tool_call", name="weather", arguments={"city": "<b>Oslo</b>"})
    socket.send("tool_result", name="weather", result="sunny")
    socket.send("token", "It is sunny")
    socket.send("end", **end_metadata(conversation_id, model="claude-x", cost_usd=None, finish_reason="max_tokens"))
    wait_answer_done(page)

    answer = page.locator(LAST_ASSISTANT)
    tools = answer.locator('[data-testid="tool-block"]')
    assert tools.count() == 2
    assert [tools.nth(i).get_attribute("open") for i in range(2)] == [None, None]
    assert "weather" in (tools.nth(0).locator("summary").text_content() or "")
    assert '"city": "<b>Oslo</b>"' in (tools.nth(0).locator("pre").text_content() or "")
    assert tools.nth(1).locator("pre").text_content() == "sunny"
    assert answer.locator("b").count() == 0
    content = answer.locator('[data-testid="message-content"] .message-text').all_text_contents()
    assert content == ["Let me look. ", "It is sunny"]
    meta = answer.locator('[data-testid="message-meta"]')
    assert meta.get_attribute("data-model") == "claude-x"
    assert "cost unknown" in (meta.text_content() or "")
    assert "length limit" in (answer.locator('[data-testid="message-note"]').text_content() or "")


def test_error_keeps_partial_text_and_frees_the_composer(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    socket.send("start", conversation_id=str(uuid.uuid4()), route="simple", provider="openai", model="gpt-4o-mini")
    socket.send("token", "Half an ans")
    socket.send("error", "The model took too long to respond. Please try again.", code="provider_error")
    wait_answer_done(page)

    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "error"
    assert answer.locator('[data-testid="message-content"]').text_content() == "Half an ans"
    note = answer.locator('[data-testid="message-note"]').text_content() or ""
    assert "took too long" in note and "interrupted" in note
    assert page.locator('[data-testid="message-list"]').get_attribute("data-state") == "idle"
    page.fill('[data-testid="composer-input"]', "again")
    assert page.locator('[data-testid="send-button"]').is_enabled()


def test_reconnects_after_an_unexpected_close(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    socket.send("start", conversation_id=str(uuid.uuid4()), route="simple", provider="openai", model="gpt-4o-mini")
    socket.send("token", "Some")
    socket.routes[0].close(code=1011, reason="server restarting")

    status = page.locator('[data-testid="connection-status"]')
    page.wait_for_selector('[data-testid="connection-status"][data-status="reconnecting"]')
    assert "Reconnecting" in (status.text_content() or "")
    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "error"
    assert "connection was lost" in (answer.locator('[data-testid="message-note"]').text_content() or "")
    wait_connected(page)
    assert len(socket.routes) == 2
    assert "Connected" in (status.text_content() or "")


def test_gives_up_after_three_attempts(page: Page, live_server_url: str, alice: Any) -> None:
    def refuse_after_first(socket: ScriptedSocket, route: WebSocketRoute) -> None:
        if len(socket.routes) > 1:
            route.close(code=1011, reason="down")

    socket = scripted(page, live_server_url, ScriptedSocket(refuse_after_first))
    socket.routes[0].close(code=1011, reason="down")
    page.wait_for_selector('[data-testid="connection-status"][data-status="disconnected"]')
    assert "Disconnected — reload" in (page.locator('[data-testid="connection-status"]').text_content() or "")
    page.wait_for_timeout(2500)
    assert len(socket.routes) == 4


def test_page_works_under_a_strict_content_security_policy(page: Page, live_server_url: str, alice: Any) -> None:
    # The socket is scripted: Chromium refuses a real socket to 127.0.0.1 from a document Playwright fulfilled
    # (local network access checks), whatever the policy says.
    socket = scripted(page, live_server_url)

    def add_csp(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.route(f"{live_server_url}/", add_csp)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    page.reload()
    wait_connected(page)
    page.fill('[data-testid="composer-input"]', "line one")
    page.press('[data-testid="composer-input"]', "Shift+Enter")
    page.type('[data-testid="composer-input"]', "line two")
    page.press('[data-testid="composer-input"]', "Enter")
    wait_until(page, lambda: len(socket.messages()) == 1)
    assert socket.messages()[0]["content"] == "line one\nline two"
    conversation_id = str(uuid.uuid4())
    socket.send("start", conversation_id=conversation_id, route="simple", provider="openai", model="gpt-4o-mini")
    socket.send("token", "Fine:\n```\nx\n```")
    socket.send("end", **end_metadata(conversation_id))
    wait_answer_done(page)
    assert page.locator(LAST_ASSISTANT).locator("pre code").text_content() == "x"
    assert page.evaluate("window.__cspViolations") == []


def test_auth_close_sends_the_user_to_login(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    page.context.clear_cookies()
    socket.routes[0].close(code=4401, reason="unauthenticated")
    page.wait_for_url(f"{live_server_url}/accounts/login/?next=%2F")
    assert len(socket.routes) == 1
