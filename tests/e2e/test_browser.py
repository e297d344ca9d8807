"""The chat page in headless Chromium against a real daphne server and the fake upstream.

Covers the whole path a person takes: sign in, send, watch the answer stream in, reload, reopen the
conversation from the sidebar; and that model output is only ever shown as text. Then the answer in flight
surviving a reload and a cut socket (resumed by sequence number, every piece shown once) and a failed answer's
Retry, against the real server. The other tests put a scripted socket in place of the server's (Playwright's
WebSocket routing) to drive frames and closes that the real server cannot be made to send on demand: tool chunks,
unknown cost, drops, auth closes, overlapping resumed frames, messages queued or sent again, fallbacks.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, Response, Route, WebSocketRoute

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.conversations.titles import title_from_message
from pam_hybrid.models import Conversation, Message
from tests.support.chat_page import (
    LAST_ASSISTANT,
    ScriptedSocket,
    end_metadata,
    scripted,
    send,
    sign_in,
    wait_answer_done,
    wait_connected,
    wait_until,
)
from tests.support.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.live]

SCREENSHOT = "/tmp/pam_chat.png"
TOKEN_DELAY_MS = 60
INJECTED = '[data-testid="message-content"] img, [data-testid="message-content"] b'

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


@pytest.fixture
def alice(django_user_model: Any, live_server_url: str) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


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
    assert model is not None and model in (meta.text_content() or "")
    assert "first token" in (meta.text_content() or "")

    conversation = Conversation.objects.get(owner=alice)
    item = page.locator(f'[data-testid="conversation-item"][data-conversation-id="{conversation.id}"]')
    item.wait_for()
    page.screenshot(path=SCREENSHOT)

    page.goto(f"{live_server_url}/")  # a new chat (a reload of /c/<id>/ reopens it: test_conversations_page.py)
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
    assert content.locator('[data-testid="code-language"]').text_content() == "html"
    assert content.locator(".message-text > p").all_text_contents() == ["Run this:", "Done."]
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
    assert content == ["Let me look.", "It is sunny"]  # markdown: a paragraph's trailing space is not kept
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


def test_keeps_trying_past_the_resume_grace_with_a_growing_backoff(
    page: Page, live_server_url: str, alice: Any
) -> None:
    def refuse_after_first(socket: ScriptedSocket, route: WebSocketRoute) -> None:
        if len(socket.routes) > 1:
            route.close(code=1011, reason="down")

    socket = scripted(page, live_server_url, ScriptedSocket(refuse_after_first))
    socket.routes[0].close(code=1011, reason="down")
    page.wait_for_timeout(14_000)  # past the old give-up time (11.5 s): 0.5 + 1 + 2 + 4 s, ±25 %, then 8 s
    assert page.locator('[data-testid="connection-status"]').get_attribute("data-status") == "reconnecting"
    assert "Reconnecting" in (page.locator('[data-testid="connection-status"]').text_content() or "")
    assert 5 <= len(socket.routes) <= 7


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


# --- the server's own Content-Security-Policy (no routing: its real header) and payloads that must stay text ---

XSS_PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    '<a href="javascript:window.__pwned=1">x</a>',
    "<svg onload=window.__pwned=1>",
    '"><iframe srcdoc="<script>top.__pwned=1;alert(1)</script>"></iframe>',
    "[x](javascript:window.__pwned=1)",
    "<details open ontoggle=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1>",
]
XSS_TEXT = "\n".join(XSS_PAYLOADS)
# What the payloads would leave in the page if any were parsed as HTML (the answer's avatar and tool blocks aside).
XSS_ELEMENTS = (
    "script, img:not(.message-avatar), a, svg:not(.conversation-action svg, .feedback-button svg), iframe, object, "
    "embed, math, style, "
    "link, form, input, base, meta, details:not(.tool-block)"
)


def record_dialogs(page: Page) -> list[str]:
    """Every alert/confirm/prompt the page opens (dismissed at once)."""
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def assert_inert(page: Page, dialogs: list[str]) -> None:
    """No payload ran, opened a dialog, added an element or a frame, or was blocked trying (a CSP violation)."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    for area in ("message-list", "conversation-list"):
        assert page.locator(f'[data-testid="{area}"] :is({XSS_ELEMENTS})').count() == 0, area
    assert len(page.frames) == 1
    assert page.evaluate("window.__cspViolations") == []


def message_text_boxes(page: Page, role: str) -> list[str]:
    """The text paragraphs of each message of `role` (tool blocks and notes left out), in order."""
    return [
        "".join(message.locator(".message-text").all_text_contents())
        for message in page.locator(f'[data-testid="message"][data-role="{role}"]').all()
    ]


def test_page_works_under_the_servers_own_content_security_policy(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    documents: list[Response] = []
    page.on("response", lambda r: documents.append(r) if r.request.resource_type == "document" else None)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    fake_upstream.token_delay_ms = TOKEN_DELAY_MS
    answer = "Here is some code:\n```python\nprint('hi')\n```\nThat is all, with a few more words to stream."
    fake_upstream.enqueue(Scenario(text=answer))

    page.goto(f"{live_server_url}/accounts/login/")
    page.locator('[data-testid="login-form"]').wait_for()
    assert page.evaluate("window.__cspViolations") == []
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(f"{live_server_url}/")
    wait_connected(page)  # the real socket, allowed by connect-src 'self'
    page.locator('[data-testid="conversation-empty"]').wait_for()  # the conversation list was fetched
    page.evaluate(RECORD_LENGTHS)
    page.fill('[data-testid="composer-input"]', "line one")
    page.press('[data-testid="composer-input"]', "Shift+Enter")
    page.type('[data-testid="composer-input"]', "line two")
    page.press('[data-testid="composer-input"]', "Enter")
    wait_answer_done(page)

    content = page.locator(LAST_ASSISTANT).locator('[data-testid="message-content"]')
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert content.locator("pre code").text_content() == "print('hi')"
    assert len({n for n in page.evaluate("window.__lengths") if 0 < n < len(answer)}) >= 2
    assert fake_upstream.requests[-1].messages[-1]["content"] == "line one\nline two"
    assert page.evaluate("window.__cspViolations") == []

    page.reload()
    wait_connected(page)
    page.click('[data-testid="conversation-item"]')
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    assert page.locator(LAST_ASSISTANT).locator("pre code").text_content() == "print('hi')"
    assert page.evaluate("window.__cspViolations") == []

    # The chat page is served at / and, once a conversation exists, at /c/<id>/ (a reload lands there).
    paths = {d.url.removeprefix(live_server_url) for d in documents}
    assert {"/accounts/login/", "/"} <= paths
    assert all(p in ("/accounts/login/", "/") or p.startswith("/c/") for p in paths)
    for document in documents:
        policy = document.headers.get("content-security-policy", "")
        assert "script-src 'self';" in f"{policy};" and "connect-src 'self';" in f"{policy};", document.url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_admin_works_under_the_content_security_policy(
    page: Page, live_server_url: str, django_user_model: Any, alice: Any
) -> None:
    django_user_model.objects.create_superuser(username="root", password=PASSWORD)
    conversation = Conversation.objects.create(owner=alice, title=XSS_PAYLOADS[1])
    Message.objects.create(conversation=conversation, role="user", content=XSS_TEXT)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    dialogs = record_dialogs(page)

    page.goto(f"{live_server_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click('input[type="submit"]')
    page.wait_for_url(f"{live_server_url}/admin/")
    assert page.evaluate("window.__cspViolations") == []
    for path in (
        "/admin/pam_hybrid/message/",
        f"/admin/pam_hybrid/conversation/{conversation.id}/change/",
        "/admin/pam_hybrid/message/?q=script",
    ):
        response = page.goto(f"{live_server_url}{path}")
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in response.headers.get("content-security-policy", ""), path
        page.locator("#footer").wait_for(state="attached")
        assert page.evaluate("window.__cspViolations") == [], path
    page.locator("#action-toggle").check()  # the changelist's own script (actions.js) runs
    assert page.locator("tr.selected").count() == 1
    assert page.evaluate("window.__cspViolations") == []
    assert page.evaluate("typeof window.__pwned") == "undefined" and dialogs == []


def test_payloads_in_user_text_and_model_output_stay_text(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    dialogs = record_dialogs(page)
    fake_upstream.enqueue(Scenario(text=XSS_TEXT))
    sign_in(page, live_server_url)
    send(page, XSS_TEXT)
    wait_answer_done(page)

    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert message_text_boxes(page, "user") == [XSS_TEXT]
    assert message_text_boxes(page, "assistant") == [XSS_TEXT]
    title = title_from_message(XSS_TEXT)  # the conversation's title, generated from the first message
    page.wait_for_function(
        "t => document.querySelector('[data-testid=\"conversation-item\"] .conversation-title')?.textContent === t",
        arg=title,
    )
    assert_inert(page, dialogs)

    page.reload()  # history and sidebar rendered from the API
    wait_connected(page)
    page.click('[data-testid="conversation-item"]')
    page.wait_for_selector('[data-testid="message"] >> nth=1')
    assert message_text_boxes(page, "user") == [XSS_TEXT]
    assert message_text_boxes(page, "assistant") == [XSS_TEXT]
    assert page.locator('[data-testid="conversation-item"] .conversation-title').text_content() == title
    assert page.locator('[data-testid="conversation-title"]').text_content() == title
    assert page.title() == f"{title} · PAM Hybrid"
    assert_inert(page, dialogs)


def test_payloads_in_tool_calls_and_results_stay_text(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    tool_name = '<img src=x onerror="alert(1)">'
    arguments = {"q": XSS_TEXT}
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    dialogs = record_dialogs(page)
    fake_upstream.enqueue(Scenario(text="Let me look. ", tool_calls=[FakeToolCall(tool_name, arguments)]))
    fake_upstream.enqueue(Scenario(text=XSS_TEXT))
    sign_in(page, live_server_url)
    send(page, "use a tool")
    wait_answer_done(page)

    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "complete"
    call, result = answer.locator('[data-testid="tool-block"]').all()
    assert call.locator("summary").text_content() == f"Used tool: {tool_name}"
    assert call.locator("pre").text_content() == json.dumps(arguments, indent=2, ensure_ascii=False)
    assert result.locator("summary").text_content() == f"Result from {tool_name}"
    assert tool_name in json.loads(result.locator("pre").text_content() or "")["error"]  # "Unknown tool '<img…'"
    assert answer.locator(".message-text").all_text_contents() == ["Let me look.", XSS_TEXT]
    assert_inert(page, dialogs)


def test_auth_close_sends_the_user_to_login(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    page.context.clear_cookies()
    socket.routes[0].close(code=4401, reason="unauthenticated")
    page.wait_for_url(f"{live_server_url}/accounts/login/?next=%2F")
    assert len(socket.routes) == 1


# --- answers that survive drops and reloads: resume by sequence number, re-sent messages, retry, fallback ---

LONG_ANSWER = " ".join(f"word{i}" for i in range(36)) + "."
SLOW_TOKEN_MS = 45  # the answer above then takes about 1.7 s

# Records, on every change of the message list, how many answers it shows and the last one's text: a resumed answer
# must never show twice, nor show text that is not a prefix of the final answer.
SNAPSHOT_OBSERVER = """
  window.__snapshots = [];
  const list = document.querySelector('[data-testid="message-list"]');
  new MutationObserver(() => {
    const answers = list.querySelectorAll('[data-role="assistant"]');
    const last = answers[answers.length - 1];
    const text = last ? last.querySelector('[data-testid="message-content"]').textContent : "";
    window.__snapshots.push([answers.length, text]);
  }).observe(list, { subtree: true, childList: true, characterData: true });
"""
RECORD_SNAPSHOTS = f"() => {{{SNAPSHOT_OBSERVER}}}"
RECORD_SNAPSHOTS_FROM_LOAD = f'document.addEventListener("DOMContentLoaded", () => {{{SNAPSHOT_OBSERVER}}});'


def wait_answer_text(page: Page) -> None:
    """Until the streaming answer shows some text."""
    page.wait_for_function(
        """() => {
             const answer = document.querySelector('[data-role="assistant"][data-status="streaming"]');
             return answer !== null && answer.querySelector('[data-testid="message-content"]').textContent.length > 0;
           }"""
    )


def assert_never_shown_twice(page: Page, expected: str) -> None:
    snapshots = page.evaluate("window.__snapshots")
    assert snapshots, "nothing was recorded"
    for count, text in snapshots:
        assert count <= 1 and expected.startswith(text), (count, text)


def test_reload_mid_answer_resumes_it_exactly_once(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    fake_upstream.enqueue(Scenario(text=LONG_ANSWER, token_delay_ms=SLOW_TOKEN_MS))
    sign_in(page, live_server_url)
    send(page, "tell me something long")
    wait_answer_text(page)

    page.add_init_script(RECORD_SNAPSHOTS_FROM_LOAD)
    page.reload()
    page.wait_for_selector('[data-testid="message-list"][data-state="streaming"]', timeout=5_000)
    assert page.locator('[data-testid="stop-button"]').is_visible()
    wait_answer_done(page)

    assert message_texts(page) == [("user", "tell me something long"), ("assistant", LONG_ANSWER)]
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert_never_shown_twice(page, LONG_ANSWER)
    assert len(fake_upstream.requests) == 1
    assert page.locator('[data-testid="conversation-title"]').text_content() == "tell me something long"
    assert not page.locator('[data-testid="stop-button"]').is_visible()
    assert page.evaluate("sessionStorage.getItem('pam.inflight')") is None


def test_second_tab_follows_the_answer_streaming_in_the_first(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    fake_upstream.enqueue(Scenario(text=LONG_ANSWER, token_delay_ms=SLOW_TOKEN_MS))
    sign_in(page, live_server_url)
    send(page, "tell me something long")
    wait_answer_text(page)

    other = page.context.new_page()
    other.set_default_timeout(15_000)
    other.goto(f"{live_server_url}/")
    wait_connected(other)
    other.click('[data-testid="conversation-item"]')
    other.wait_for_selector('[data-testid="message-list"][data-state="streaming"]', timeout=5_000)
    wait_answer_done(other)
    wait_answer_done(page)

    expected = [("user", "tell me something long"), ("assistant", LONG_ANSWER)]
    assert message_texts(other) == expected and message_texts(page) == expected
    assert other.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert len(fake_upstream.requests) == 1


class ProxiedSocket:
    """Passes the page's chat socket through to the real server, records what the page sends, and can cut the
    connection as a network failure would (Chromium's offline emulation leaves open WebSockets alone)."""

    def __init__(self) -> None:
        self.pages: list[WebSocketRoute] = []
        self.servers: list[WebSocketRoute] = []
        self.received: list[dict[str, Any]] = []

    def handle(self, route: WebSocketRoute) -> None:
        server = route.connect_to_server()
        self.pages.append(route)
        self.servers.append(server)

        def forward(message: str | bytes) -> None:
            self.received.append(json.loads(message))
            server.send(message)

        route.on_message(forward)

    def cut(self) -> None:
        self.servers[-1].close()
        self.pages[-1].close(code=1011, reason="network lost")


def test_dropped_socket_mid_answer_resumes_with_the_exact_text(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    proxy = ProxiedSocket()
    page.route_web_socket("**/ws/chat/", proxy.handle)
    fake_upstream.enqueue(Scenario(text=LONG_ANSWER, token_delay_ms=SLOW_TOKEN_MS))
    sign_in(page, live_server_url)
    page.evaluate(RECORD_SNAPSHOTS)
    send(page, "tell me something long")
    wait_answer_text(page)

    proxy.cut()
    page.wait_for_selector('[data-testid="connection-status"][data-status="reconnecting"]', timeout=5_000)
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "streaming"
    wait_until(page, lambda: len(proxy.pages) == 2, within_s=5)
    wait_answer_done(page)

    resume = proxy.received[-1]
    assert resume["type"] == "resume" and resume["last_seq"] >= 1, resume
    assert uuid.UUID(resume["message_id"])
    assert message_texts(page) == [("user", "tell me something long"), ("assistant", LONG_ANSWER)]
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert_never_shown_twice(page, LONG_ANSWER)
    assert len(fake_upstream.requests) == 1


def test_provider_error_offers_a_retry_that_answers(
    page: Page, live_server_url: str, fake_upstream: FakeUpstream, alice: Any
) -> None:
    fake_upstream.enqueue(Scenario(text="partial words here", error_after_tokens=2))
    sign_in(page, live_server_url)
    send(page, "what went wrong?")
    wait_answer_done(page)

    failed = page.locator(LAST_ASSISTANT)
    assert failed.get_attribute("data-status") == "error"
    assert (failed.locator('[data-testid="message-note"]').text_content() or "").strip()
    retry = failed.locator('[data-testid="retry-button"]')
    assert retry.is_visible()
    retry.click()  # a new version of the failed answer, not a new turn
    page.wait_for_selector(
        '[data-testid="message-list"][data-state="idle"] [data-testid="version-label"]:text-is("2 / 2")')

    model = fake_upstream.requests[-1].model
    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "complete"
    assert answer.locator('[data-testid="message-content"]').text_content() == f"Echo from {model}: what went wrong?"
    assert [role for role, _ in message_texts(page)] == ["user", "assistant"]
    assert page.locator('[data-testid="retry-button"]').count() == 0
    assert len(fake_upstream.requests) == 2
    assert Conversation.objects.filter(owner=alice).count() == 1


def stream_frame(chunk_type: str, content: str = "", **metadata: Any) -> str:
    return json.dumps({"type": "stream", "chunk_type": chunk_type, "content": content, "metadata": metadata,
                       "timestamp": "2025-01-01T00:00:00Z"})


def test_reconnect_resumes_after_the_last_frame_and_drops_repeats(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    conversation_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    socket.send("start", conversation_id=conversation_id, message_id=message_id, model="gpt-4o-mini", seq=0)
    socket.send("token", "Some", seq=1)
    page.wait_for_function("() => document.querySelector('[data-role=\"assistant\"]')?.textContent.includes('Some')")
    socket.routes[0].close(code=1011, reason="server restarting")

    wait_until(page, lambda: len(socket.routes) == 2)
    wait_until(page, lambda: len(socket.received) > 1 and socket.received[-1]["type"] == "resume")
    assert socket.received[-1] == {"type": "resume", "message_id": message_id, "last_seq": 1}
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "streaming"
    assert page.locator('[data-testid="stop-button"]').is_visible()
    socket.send("token", "Some", seq=1)  # overlaps what was already shown
    socket.send("token", " more", seq=2)
    socket.send("token", " more", seq=2)
    socket.send("end", **end_metadata(conversation_id, message_id=message_id), seq=3)
    wait_answer_done(page)
    assert message_texts(page) == [("user", "hello"), ("assistant", "Some more")]
    assert page.locator(LAST_ASSISTANT).get_attribute("data-status") == "complete"
    assert len(socket.messages()) == 1


def test_stop_while_reconnecting_is_sent_after_the_resume(page: Page, live_server_url: str, alice: Any) -> None:
    def refuse_second(socket: ScriptedSocket, route: WebSocketRoute) -> None:
        if len(socket.routes) == 2:
            route.close(code=1011, reason="still down")

    socket = scripted(page, live_server_url, ScriptedSocket(refuse_second))
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    conversation_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    socket.send("start", conversation_id=conversation_id, message_id=message_id, model="gpt-4o-mini", seq=0)
    socket.send("token", "Half", seq=1)
    socket.routes[0].close(code=1011, reason="down")
    page.wait_for_selector('[data-testid="connection-status"][data-status="reconnecting"]')
    page.click('[data-testid="stop-button"]')
    assert page.locator('[data-testid="stop-button"]').is_disabled()

    wait_until(page, lambda: len(socket.routes) == 3 and len(socket.received) >= 3)
    assert [f["type"] for f in socket.received[-2:]] == ["resume", "cancel"]
    socket.send("end", **end_metadata(conversation_id, message_id=message_id, finish_reason="cancelled",
                                      status="partial"), seq=2)
    wait_answer_done(page)
    answer = page.locator(LAST_ASSISTANT)
    assert answer.get_attribute("data-status") == "partial"
    assert "Stopped" in (answer.locator('[data-testid="message-note"]').text_content() or "")
    assert answer.locator('[data-testid="retry-button"]').count() == 0


def test_message_typed_while_disconnected_is_queued_then_sent(page: Page, live_server_url: str, alice: Any) -> None:
    down = {"now": False}

    def refuse_while_down(socket: ScriptedSocket, route: WebSocketRoute) -> None:
        if down["now"]:
            route.close(code=1011, reason="down")

    socket = scripted(page, live_server_url, ScriptedSocket(refuse_while_down))
    down["now"] = True
    socket.routes[0].close(code=1011, reason="down")
    page.wait_for_selector('[data-testid="connection-status"][data-status="reconnecting"]')
    send(page, "sent while offline")
    user = page.locator('[data-testid="message"][data-role="user"]')
    user.wait_for()
    assert user.get_attribute("data-status") == "queued"
    assert page.locator('[data-testid="composer-input"]').input_value() == ""
    wait_until(page, lambda: len(socket.routes) >= 2)
    assert socket.messages() == []

    down["now"] = False
    wait_until(page, lambda: len(socket.messages()) == 1)
    assert socket.messages()[0]["content"] == "sent while offline"
    assert user.get_attribute("data-status") == "complete"
    socket.answer("Got it")
    wait_answer_done(page)
    assert message_texts(page) == [("user", "sent while offline"), ("assistant", "Got it")]


def test_message_is_sent_again_with_its_id_when_the_socket_drops_before_start(
    page: Page, live_server_url: str, alice: Any
) -> None:
    socket = scripted(page, live_server_url)
    send(page, "did you get this?")
    wait_until(page, lambda: len(socket.messages()) == 1)
    socket.routes[0].close(code=1011, reason="down")
    wait_until(page, lambda: len(socket.messages()) == 2)
    first, again = socket.messages()
    assert again == first
    assert socket.routes[1] is not socket.routes[0]

    socket.answer("Yes")
    wait_answer_done(page)
    assert message_texts(page) == [("user", "did you get this?"), ("assistant", "Yes")]


def test_reload_before_start_sends_the_same_message_again(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "are you there?")
    wait_until(page, lambda: len(socket.messages()) == 1)
    page.reload()
    wait_until(page, lambda: len(socket.messages()) == 2)
    first, again = socket.messages()
    assert again == first
    assert message_texts(page) == [("user", "are you there?")]

    socket.answer("Here")
    wait_answer_done(page)
    assert message_texts(page) == [("user", "are you there?"), ("assistant", "Here")]


def test_streaming_answer_in_history_is_resumed_in_place_of_its_checkpoint(
    page: Page, live_server_url: str, alice: Any
) -> None:
    conversation_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    serve_history(page, conversation_id, [
        saved_row("user", "Say hello"),
        saved_row("assistant", "Hello wor", id=message_id, status="streaming", model="gpt-4o-mini", route="simple"),
    ])
    socket = scripted(page, live_server_url)
    page.evaluate(RECORD_SNAPSHOTS)
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]')

    wait_until(page, lambda: any(f["type"] == "resume" for f in socket.received))
    assert [f for f in socket.received if f["type"] == "resume"] == [
        {"type": "resume", "message_id": message_id, "last_seq": -1}
    ]
    assert message_texts(page) == [("user", "Say hello"), ("assistant", "Hello wor")]
    assert page.locator('[data-testid="stop-button"]').is_visible()
    socket.send("start", conversation_id=conversation_id, message_id=message_id, model="gpt-4o-mini", seq=0)
    socket.send("token", "Hello", seq=1)
    socket.send("token", " world", seq=2)
    page.wait_for_function(
        "() => document.querySelector('[data-role=\"assistant\"] [data-testid=\"message-content\"]')"
        ".textContent === 'Hello world'"
    )
    socket.send("token", "!", seq=3)
    socket.send("end", **end_metadata(conversation_id, message_id=message_id), seq=4)
    wait_answer_done(page)
    assert message_texts(page) == [("user", "Say hello"), ("assistant", "Hello world!")]
    assert_never_shown_twice(page, "Hello world!")


def test_fallback_shows_which_model_answered_and_why(page: Page, live_server_url: str, alice: Any) -> None:
    socket = scripted(page, live_server_url)
    send(page, "hello")
    wait_until(page, lambda: len(socket.messages()) == 1)
    conversation_id = str(uuid.uuid4())
    fallback = {"from_provider": "openai", "from_model": "gpt-4o-mini", "reason": "OpenAI returned errors (HTTP 500)."}
    socket.send("start", conversation_id=conversation_id, message_id=str(uuid.uuid4()), provider="openai",
                model="gpt-4o-mini", seq=0)
    socket.send("token", "Hi", provider="anthropic", model="claude-x", fallback=fallback, seq=1)
    answer = page.locator(LAST_ASSISTANT)
    chip = answer.locator('[data-testid="message-model"]')
    page.wait_for_function(
        "() => document.querySelector('[data-role=\"assistant\"] [data-testid=\"message-model\"]').textContent"
        " === 'claude-x'"
    )
    note = answer.locator('[data-testid="message-fallback"]')
    assert note.is_visible() and note.text_content() == "(OpenAI unavailable)"
    assert "gpt-4o-mini" in (note.get_attribute("title") or "") and "HTTP 500" in (note.get_attribute("title") or "")
    socket.send("end", **end_metadata(conversation_id, provider="anthropic", model="claude-x", fallback=fallback),
                seq=2)
    wait_answer_done(page)
    assert chip.text_content() == "claude-x"
    assert answer.locator('[data-testid="message-meta"]').get_attribute("data-model") == "claude-x"
    assert note.text_content() == "(OpenAI unavailable)"


def saved_row(role: str, content: str, **fields: Any) -> dict[str, Any]:
    """One row as the history API lists it."""
    return {"id": str(uuid.uuid4()), "role": role, "content": content, "status": "complete", "error": "",
            "model": "", "provider": "", "route": "", "created_at": "2025-01-01T00:00:00Z", **fields}


def serve_history(page: Page, conversation_id: str, messages: list[dict[str, Any]]) -> None:
    """The history API answers with these rows for the conversation (and lists it in the sidebar)."""
    listing = {"conversations": [{"id": conversation_id, "title": "Saved", "updated_at": "2025-01-01T00:00:01Z"}]}
    history = {"conversation": {"id": conversation_id, "title": "Saved"}, "messages": messages}
    page.route("**/api/conversations/", lambda route: route.fulfill(json=listing))
    page.route(f"**/api/conversations/{conversation_id}/messages/", lambda route: route.fulfill(json=history))


def test_saved_answer_that_failed_midway_offers_a_retry(page: Page, live_server_url: str, alice: Any) -> None:
    conversation_id = str(uuid.uuid4())
    serve_history(page, conversation_id, [
        saved_row("user", "first"),
        saved_row("assistant", "Stopped by its user", status="partial", model="gpt-4o-mini", route="simple"),
        saved_row("user", "second"),
        saved_row("assistant", "Half", status="partial", error="The model provider is unavailable.",
                  model="gpt-4o-mini", route="complex"),
    ])
    socket = scripted(page, live_server_url)
    page.click(f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]')
    page.wait_for_selector('[data-testid="message"] >> nth=3')

    answers = page.locator('[data-testid="message"][data-role="assistant"]')
    assert answers.nth(0).locator('[data-testid="retry-button"]').count() == 0
    failed = answers.nth(1)
    assert failed.get_attribute("data-status") == "error"
    assert "provider is unavailable" in (failed.locator('[data-testid="message-note"]').text_content() or "")
    failed_id = failed.get_attribute("data-message-id")
    failed.locator('[data-testid="retry-button"]').click()
    wait_until(page, lambda: any(frame["type"] == "regenerate" for frame in socket.received))
    frame = next(frame for frame in socket.received if frame["type"] == "regenerate")
    assert (frame["message_id"], frame["route"]) == (failed_id, "complex")  # a new version, not a new turn
    assert socket.messages() == []
    assert page.locator('[data-testid="retry-button"]').count() == 0


def test_message_refused_by_a_restarting_server_goes_again_on_the_next_socket(
    page: Page, live_server_url: str, alice: Any
) -> None:
    socket = scripted(page, live_server_url)
    send(page, "still there?")
    wait_until(page, lambda: len(socket.messages()) == 1)
    socket.send("error", "The server is restarting: send your message again in a moment.", code="shutting_down")
    page.wait_for_timeout(200)
    assert page.locator('[data-testid="message"][data-role="assistant"]').count() == 0
    assert page.locator('[data-testid="message-list"]').get_attribute("data-state") == "streaming"
    socket.routes[0].close(code=4012, reason="service restart")

    wait_until(page, lambda: len(socket.messages()) == 2)
    first, again = socket.messages()
    assert again == first
    socket.answer("Yes")
    wait_answer_done(page)
    assert message_texts(page) == [("user", "still there?"), ("assistant", "Yes")]
    assert page.locator('[data-testid="message-note"]').count() == 0
