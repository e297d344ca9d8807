"""A burst through the real server on the default breaker settings: a tenth of the messages hit a failing upstream
(every try of theirs on their route's provider fails; the other provider answers them), and the breakers must not
shed the healthy nine tenths. A provider that is really down still opens its breaker."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from websockets.asyncio.client import connect
from websockets.typing import Origin

from fake_upstream import FakeUpstream, Scenario, last_user_text
from fake_upstream.scenarios import FaultKind, Provider
from pam_hybrid.models import BreakerEvent
from tests.support.servers import run_daphne

pytestmark = [pytest.mark.live]

SOCKETS = 150
MESSAGES_PER_SOCKET = 3
FAILING_EVERY = 10  # one message in ten hits the failing upstream
USERS = 15
MARK = "FAIL-ON-"  # followed by the provider that fails the message
FRAME_TIMEOUT_S = 60.0
SERVER_ENV = {  # the breakers keep their defaults: only the per-user limits are lifted (not what this is about)
    "PAM_MAX_CONCURRENT_ANSWERS": "100",
    "PAM_RATE_LIMIT_MESSAGES": "1000",
    "PAM_DAILY_SPEND_CAP_USD": "0",
}


class FailingUpstream(FakeUpstream):
    """The fake upstream, answering HTTP 500 to every request to PROVIDER whose last user message says
    FAIL-ON-PROVIDER."""

    def _scenario_for(self, provider: Provider, body: dict[str, Any], stream: bool,
                      request_id: str) -> tuple[Scenario, FaultKind | None]:
        if f"{MARK}{provider}" in last_user_text(body):
            return Scenario(status=500), None
        return super()._scenario_for(provider, body, stream, request_id)


@pytest.fixture
def burst_server(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[str, FailingUpstream]]:
    # Healthy answers are slow to start (as real ones are) and failures fast: the order that used to open breakers.
    upstream = FailingUpstream(ttft_ms=300, token_delay_ms=10)
    upstream.start()
    try:
        with run_daphne(upstream, tmp_path, **SERVER_ENV) as url:  # type: ignore[arg-type]
            yield url, upstream
    finally:
        upstream.stop()


def _cookies(count: int) -> list[str]:
    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    users = []
    for n in range(USERS):
        user = get_user_model()(username=f"burst-{n:02d}")
        user.set_unusable_password()
        user.save()
        users.append(user)
    cookies = []
    for index in range(count):
        user = users[index % USERS]
        store = store_class()
        store[SESSION_KEY] = user._meta.pk.value_to_string(user)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={store.session_key}")
    return cookies


async def _ask(url: str, cookie: str, contents: list[str], route: str, start: asyncio.Event) -> list[str]:
    """One socket sending its messages one after the other; the chunk type each ended with ("end" or "error")."""
    ws_url = url.replace("http://", "ws://") + "/ws/chat/"
    ends = []
    async with connect(ws_url, origin=Origin(url), additional_headers={"Cookie": cookie}, open_timeout=FRAME_TIMEOUT_S,
                       close_timeout=2) as ws:
        await start.wait()
        for content in contents:
            await ws.send(json.dumps({"type": "message", "content": content, "conversation_id": None,
                                      "stream": True, "route": route, "client_msg_id": content}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
                if frame.get("chunk_type") in ("end", "error"):
                    ends.append(str(frame["chunk_type"]))
                    break
    return ends


async def _burst(url: str, cookies: list[str], contents: list[list[str]], routes: list[str]) -> list[list[str]]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(_ask(url, cookie, mine, route, start))
             for cookie, mine, route in zip(cookies, contents, routes, strict=True)]
    await asyncio.sleep(2)  # every socket open first, then every first message at once
    start.set()
    return await asyncio.gather(*tasks)


@pytest.mark.timeout(180)
def test_a_burst_with_a_tenth_failing_completes_the_healthy_messages(
    burst_server: tuple[str, FailingUpstream],
) -> None:
    url, _ = burst_server
    routes = ["simple" if n % 2 else "complex" for n in range(SOCKETS)]
    first = {"simple": "openai", "complex": "anthropic"}
    contents = [[f"burst {s}-{m}: tell me about rivers" + (f" {MARK}{first[routes[s]]}" if (s + m) % FAILING_EVERY == 0
                                                           else "")
                 for m in range(MESSAGES_PER_SOCKET)] for s in range(SOCKETS)]
    ends = asyncio.run(_burst(url, _cookies(SOCKETS), contents, routes))

    sent = [(content, end) for mine, theirs in zip(contents, ends, strict=True)
            for content, end in zip(mine, theirs, strict=True)]
    healthy = [end for content, end in sent if MARK not in content]
    completed = sum(end == "end" for end in healthy)
    ratio = completed / len(healthy)
    opened = list(BreakerEvent.objects.filter(to_state="open").values_list("provider", "reason"))
    print(f"\n{SOCKETS} sockets, {len(sent)} messages, {len(sent) - len(healthy)} failing: healthy completed "
          f"{completed}/{len(healthy)} = {ratio:.1%}; breakers opened: {opened or 'none'}")
    assert ratio >= 0.97


@pytest.mark.timeout(120)
def test_a_provider_that_is_down_still_opens_its_breaker(burst_server: tuple[str, FailingUpstream]) -> None:
    url, _ = burst_server
    count = 20
    contents = [[f"down {n}: {MARK}openai {MARK}anthropic"] for n in range(count)]
    ends = asyncio.run(_burst(url, _cookies(count), contents, ["simple"] * count))

    assert {end for mine in ends for end in mine} == {"error"}  # both providers fail these messages
    opened = {provider: reason for provider, reason in
              BreakerEvent.objects.filter(to_state="open").values_list("provider", "reason")}
    assert set(opened) == {"openai", "anthropic"}
    assert all("consecutive failures" in reason or "failure rate" in reason for reason in opened.values())
