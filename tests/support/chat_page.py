"""The chat page driven from a test: signing in, sending, waiting for answers, and a scripted socket standing in for
the server's (Playwright's WebSocket routing) to play any frames into the page."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from playwright.sync_api import Browser, Page, WebSocketRoute

from tests.support.browsing import close_or_kill
from tests.support.factories import PASSWORD

LAST_ASSISTANT = '[data-testid="message"][data-role="assistant"] >> nth=-1'
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def sign_in(page: Page, base_url: str, username: str = "alice") -> None:
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/accounts/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(f"{base_url}/")
    wait_connected(page)


def wait_connected(page: Page, timeout_ms: float = 15_000) -> None:
    page.wait_for_selector('[data-testid="connection-status"][data-status="connected"]', timeout=timeout_ms)


def send(page: Page, text: str) -> None:
    page.fill('[data-testid="composer-input"]', text)
    page.press('[data-testid="composer-input"]', "Enter")


def wait_answer_done(page: Page, timeout_ms: float = 15_000) -> None:
    page.wait_for_selector(
        '[data-testid="message-list"][data-state="idle"] [data-role="assistant"]:not([data-status="streaming"])',
        timeout=timeout_ms,
    )


def wait_until(page: Page, predicate: Callable[[], bool], within_s: float = 10) -> None:
    """Wait for something the test process observes; page waits let Playwright deliver socket events."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(20)


def end_metadata(conversation_id: str, **overrides: Any) -> dict[str, Any]:
    """An `end` chunk's metadata, as the server sends it for a complete answer."""
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

    def start(self, conversation_id: str, **metadata: Any) -> None:
        """The `start` chunk of an answer in `conversation_id`."""
        fields = {"message_id": str(uuid.uuid4()), "route": "complex", "provider": "openai", "model": "gpt-4o"}
        self.send("start", conversation_id=conversation_id, **{**fields, **metadata})

    def answer(self, text: str) -> None:
        """A whole answer in a new conversation, as the server streams it: start, one token, end."""
        conversation_id = str(uuid.uuid4())
        self.send("start", conversation_id=conversation_id, message_id=str(uuid.uuid4()), model="gpt-4o-mini", seq=0)
        self.send("token", text, seq=1)
        self.send("end", **end_metadata(conversation_id), seq=2)

    def answer_in_pieces(self, pieces: list[str], conversation_id: str | None = None) -> str:
        """A whole answer streamed as these token frames; returns its conversation id."""
        conversation_id = conversation_id or str(uuid.uuid4())
        self.start(conversation_id)
        for piece in pieces:
            self.send("token", piece)
        self.send("end", **end_metadata(conversation_id, route="complex", model="gpt-4o"))
        return conversation_id


def scripted(page: Page, base_url: str, socket: ScriptedSocket | None = None) -> ScriptedSocket:
    """Sign in with the page's chat socket answered by a ScriptedSocket."""
    socket = socket or ScriptedSocket()
    page.route_web_socket("**/ws/chat/", socket.handle)
    sign_in(page, base_url)
    return socket


@contextlib.contextmanager
def page_in(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (1280×800 unless `options` say otherwise); fails the test on an uncaught error in the
    page's script."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **options})
    page = context.new_page()
    page.set_default_timeout(15_000)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield page
    finally:
        close_or_kill(context)
    assert script_errors == [], "uncaught errors in the page's script"
