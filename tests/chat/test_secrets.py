"""API keys and upstream error bodies never reach the browser or the logs, and the errors people see are written for
people.

Every failure goes through the real SDKs to the fake upstream, whose error messages here carry a secret-looking key
and internal details; the socket's frames, the history API, the saved answer and every log record (all loggers at
DEBUG, the SDKs' and their HTTP clients' included) are searched for them. The last test does the same with a real
daphne process and reads its log file.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.staticfiles import finders
from django.test import AsyncClient, Client
from websockets.asyncio.client import connect as ws_connect

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.domain.exceptions import PamError, ProviderError
from pam_hybrid.models import BreakerEvent, Message, UsageRecord
from tests.support.servers import TEST_API_KEY, daphne_log, run_daphne
from tests.support.sockets import connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]

SECRET = "sk-live-SECRET123"
UPSTREAM_ERROR = (
    f"Key {SECRET} was refused by shard db-7 (internal stack: Traceback (most recent call last): "
    'File "/srv/inference/router.py", line 88, in dispatch)'
)
# What the upstream said, in pieces that would still give it away if only part of it were echoed.
UPSTREAM_WORDS = (UPSTREAM_ERROR, SECRET, "shard db-7", "internal stack", "/srv/inference/router.py")
# What a message for people never contains: tracebacks, status lines, SDK exception texts, class names.
NOT_FOR_PEOPLE = re.compile(
    r"Traceback|HTTP ?\d{3}|Error code|status_code|Exception|[A-Z]\w+Error\b|api[_-]?key|Bearer|sk-[A-Za-z0-9-]{6,}"
)
USER_MESSAGES = frozenset(
    cls.user_message for cls in (PamError, *ProviderError.__subclasses__(),
                                 *(sub for cls in ProviderError.__subclasses__() for sub in cls.__subclasses__()))
)
LOGGERS = ("pam_hybrid", "openai", "anthropic", "httpx", "httpx2", "httpcore", "httpcore2", "django", "channels",
           "daphne", "asyncio")


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG into caplog, including pam_hybrid's, which does not propagate to the root."""
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    app = logging.getLogger("pam_hybrid")
    app.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        app.removeHandler(caplog.handler)


@pytest.fixture
def quick_failures(settings: Any) -> None:
    """One attempt per provider, at once: the failure reaches the user quickly."""
    settings.PAM_RETRIES = 0
    settings.PAM_RETRY_BACKOFF_MS = 1
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 2000


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as a handler would write it, tracebacks of logged exceptions included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def assert_secret_free(text: str, where: str) -> None:
    for secret in (TEST_API_KEY, *UPSTREAM_WORDS):
        assert secret not in text, f"{where} contains {secret!r}"


def assert_for_people(frames: list[dict[str, Any]]) -> None:
    """Frames as the browser gets them: no secrets, and any error a known message written for users."""
    for frame in frames:
        text = json.dumps(frame, ensure_ascii=False)
        assert_secret_free(text, "a frame")
        if frame.get("chunk_type") == "error":
            assert frame["content"] in USER_MESSAGES, f"not one of our messages for users: {frame['content']!r}"
        for value in (frame.get("content", ""), json.dumps(frame.get("metadata", {}))):
            found = NOT_FOR_PEOPLE.search(value) if frame.get("chunk_type") != "token" else None
            assert found is None, f"{found.group() if found else ''!r} sent to the browser in {frame}"


async def history_of(user: Any, conversation_id: str) -> str:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(f"/api/conversations/{conversation_id}/messages/")
    assert response.status_code == 200
    return response.content.decode()


FAILURES = {
    # Both providers answer with an HTTP error whose body says too much: the user gets our message for it.
    "500": ("simple", [Scenario(status=500, error_message=UPSTREAM_ERROR)] * 2, "provider_error"),
    "400": ("simple", [Scenario(status=400, error_message=UPSTREAM_ERROR)] * 2, "provider_error"),
    "401": ("complex", [Scenario(status=401, error_type="authentication_error", error_message=UPSTREAM_ERROR)] * 2,
            "provider_error"),
    "429": ("complex", [Scenario(status=429, retry_after=0, error_message=UPSTREAM_ERROR)] * 2, "provider_error"),
    # The first provider fails, the other answers: the fallback note says why, in our words.
    "500 then fallback": ("simple", [Scenario(provider="openai", status=500, error_message=UPSTREAM_ERROR),
                                     Scenario(provider="anthropic", text="A fallback answer.")], None),
    # Errors in the stream after some text (HTTP 200): OpenAI's error event, Anthropic's `error` event.
    "in-band openai": ("simple", [Scenario(text="some words before it fails", error_after_tokens=2,
                                           error_message=UPSTREAM_ERROR)], "provider_error"),
    "in-band anthropic": ("complex", [Scenario(text="some words before it fails", error_after_tokens=2,
                                               error_type="overloaded_error", error_message=UPSTREAM_ERROR)],
                          "provider_error"),
    "in-band before any text": ("simple", [Scenario(text="never seen", error_after_tokens=0,
                                                    error_message=UPSTREAM_ERROR)] * 2, "provider_error"),
    # Broken streams: a cut-off event, and a stream that ends without its final event.
    "malformed": ("complex", [Scenario(text="some words then garbage", malformed_after_tokens=2)], "provider_error"),
    "closed early": ("simple", [Scenario(text="some words then nothing", close_after_tokens=2)], "provider_error"),
}


@pytest.mark.parametrize(("route", "scenarios", "error_code"), FAILURES.values(), ids=FAILURES.keys())
async def test_upstream_errors_reach_neither_browser_nor_logs(
    user: Any, fake_upstream: FakeUpstream, quick_failures: None, everything_logged: pytest.LogCaptureFixture,
    route: str, scenarios: list[Scenario], error_code: str | None,
) -> None:
    fake_upstream.enqueue(*scenarios)
    communicator = await connect(user)
    await communicator.send_json_to(message("Tell me something", route=route, client_msg_id=str(uuid.uuid4())))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()

    last = frames[-1]
    if error_code is None:
        assert last["chunk_type"] == "end" and "fallback" in last["metadata"]
    else:
        assert last["chunk_type"] == "error" and last["metadata"]["code"] == error_code
    assert_for_people(frames)
    message_id, conversation_id = last["metadata"]["message_id"], last["metadata"]["conversation_id"]
    saved = await Message.objects.aget(id=message_id)
    usage = await UsageRecord.objects.aget(message_id=message_id)
    assert_secret_free(f"{saved.content} {saved.error}", "the saved answer")
    # What staff see in the admin: the failed attempts, the fallback's reason, the breakers' events.
    reasons = [reason async for reason in BreakerEvent.objects.values_list("reason", flat=True)]
    assert_secret_free(json.dumps([usage.attempts, usage.fallback_reason, reasons]), "the usage record")
    assert_secret_free(await history_of(user, conversation_id), "the history API")
    assert any(r.name.startswith(("openai", "anthropic")) for r in everything_logged.records), "SDKs not logging?"
    assert_secret_free(logged_text(everything_logged), "the logs")


async def test_api_key_is_not_logged_even_at_debug_on_a_healthy_answer(
    user: Any, fake_upstream: FakeUpstream, everything_logged: pytest.LogCaptureFixture
) -> None:
    for route in ("simple", "complex"):
        communicator = await connect(user)
        await communicator.send_json_to(message("hello", route=route, client_msg_id=str(uuid.uuid4())))
        frames = await receive_until_done(communicator)
        await communicator.disconnect()
        assert frames[-1]["chunk_type"] == "end"
        assert_for_people(frames)
    # The key did go upstream from both SDKs, so its absence from their logs means something.
    assert [r.provider for r in fake_upstream.requests] == ["openai", "anthropic"]
    assert all(any(TEST_API_KEY in value for value in r.headers.values()) for r in fake_upstream.requests)
    assert_secret_free(logged_text(everything_logged), "the logs")


def test_chat_page_and_its_scripts_never_carry_the_api_keys(client: Client, user: Any, settings: Any) -> None:
    settings.OPENAI_API_KEY = "sk-proj-PAGECHECK-openai-0123456789"
    settings.ANTHROPIC_API_KEY = "sk-ant-api03-PAGECHECK-anthropic-0123456789"
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200
    texts = {"GET /": page.content.decode()}
    for url in ("/api/conversations/", "/accounts/login/"):
        texts[f"GET {url}"] = client.get(url).content.decode()
    static_dir = Path(finders.find("pam_hybrid/chat.js")).parent
    scripts = sorted(static_dir.glob("*.js"))
    assert len(scripts) > 3
    texts |= {script.name: script.read_text() for script in scripts}
    for where, text in texts.items():
        for key in (settings.OPENAI_API_KEY, settings.ANTHROPIC_API_KEY, "PAGECHECK"):
            assert key not in text, f"{where} contains an API key"


async def test_a_real_server_process_logs_no_secrets(
    django_db_setup: Any, user: Any, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A daphne process with the app at DEBUG and the SDKs' own debug logging on (OPENAI_LOG, ANTHROPIC_LOG): an
    answer, two HTTP errors and an in-band error later, neither its socket nor its log holds the key or the
    upstream's words."""
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    fake_upstream.enqueue(
        Scenario(text="A healthy answer."),
        Scenario(status=500, error_message=UPSTREAM_ERROR), Scenario(status=401, error_message=UPSTREAM_ERROR),
        Scenario(text="words before it fails", error_after_tokens=2, error_message=UPSTREAM_ERROR),
    )
    answers: list[list[dict[str, Any]]] = []
    with run_daphne(fake_upstream, tmp_path, LOG_LEVEL="DEBUG", OPENAI_LOG="debug", ANTHROPIC_LOG="debug",
                    PAM_RETRIES="0", PAM_RETRY_BACKOFF_MS="1") as url:
        log_path = daphne_log(tmp_path, url)
        async with ws_connect(url.replace("http://", "ws://") + "/ws/chat/", origin=url,
                              additional_headers={"Cookie": cookie}) as ws:
            for content in ("hello", "a 500 then a 401", "an error mid-stream"):
                await ws.send(json.dumps(message(content, route="simple", client_msg_id=str(uuid.uuid4()))))
                frames = [json.loads(await ws.recv())]
                while frames[-1]["chunk_type"] not in ("end", "error"):
                    frames.append(json.loads(await ws.recv()))
                answers.append(frames)
    assert [frames[-1]["chunk_type"] for frames in answers] == ["end", "error", "error"]
    for frames in answers:
        assert_for_people(frames)
    log = await sync_to_async(log_path.read_text)(errors="replace")
    # The app logged the failures, and the SDKs logged theirs at DEBUG (without the bodies).
    assert "failed: anthropic: HTTP 401" in log and "Encountered an HTTP status error: 500" in log
    assert_secret_free(log, "the server's log")
