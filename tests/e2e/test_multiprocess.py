"""Several server processes behind one address: a client that reconnects to another process resumes its answer,
a re-sent message joins the answer running elsewhere, a stop reaches the process that runs it, and the circuit
breaker is shared. Needs Redis (REDIS_URL): with one process there is nothing to share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Message, UsageRecord
from tests.e2e.test_chaos import daphne_pid
from tests.support.servers import run_daphne

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="several processes share state through Redis"),
]

WORDS = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture
def two_servers(
    transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Any, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    shared = {"PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:", "PAM_BREAKER_FAILURES": "1",
              "PAM_RETRIES": "0", "PAM_RESUME_GRACE_MS": "5000", **getattr(request, "param", {})}
    with (run_daphne(fake_upstream, tmp_path, **shared) as first,
          run_daphne(fake_upstream, tmp_path, **shared) as second):
        yield first, second


@pytest.fixture
def cookie(user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def socket_to(server: str, cookie: str) -> Any:
    return connect(server.replace("http://", "ws://") + "/ws/chat/", origin=server,
                   additional_headers={"Cookie": cookie})


async def send(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))


async def ask(ws: ClientConnection, client_msg_id: str, content: str = "hello") -> None:
    await send(ws, type="message", content=content, conversation_id=None, stream=True, route="simple",
               client_msg_id=client_msg_id)


async def frames_until_done(ws: ClientConnection, wait_s: float = 10) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
        frames.append(frame)
        if frame.get("chunk_type") in ("end", "error"):
            return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f["chunk_type"] == "token")


async def test_reconnecting_to_another_process_resumes_the_answer(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=80))
    async with socket_to(first, cookie) as ws:
        await ask(ws, "mp-1")
        seen = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
    async with socket_to(second, cookie) as ws:
        await send(ws, type="resume", message_id=seen[0]["metadata"]["message_id"],
                   last_seq=seen[-1]["metadata"]["seq"])
        rest = await frames_until_done(ws)
    everything = seen + rest
    assert all("seq" in f["metadata"] for f in everything), everything
    assert [f["metadata"]["seq"] for f in everything] == list(range(len(everything)))
    assert text_of(everything) == WORDS and rest[-1]["metadata"]["status"] == "complete"
    assert len(fake_upstream.requests) == 1


async def test_resent_message_on_another_process_joins_and_its_stop_reaches_the_owner(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(text=WORDS * 4, token_delay_ms=80))
    async with socket_to(first, cookie) as ws:
        await ask(ws, "mp-2")
        start = json.loads(await asyncio.wait_for(ws.recv(), 10))
    async with socket_to(second, cookie) as ws:
        await ask(ws, "mp-2")  # the client never saw the answer start: it sends again
        joined = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
        await send(ws, type="cancel")
        rest = await frames_until_done(ws)
    assert joined[0] == start
    assert rest[-1]["chunk_type"] == "end" and rest[-1]["metadata"]["finish_reason"] == "cancelled"
    assert await fake_upstream.wait_until(lambda: fake_upstream.active_streams == 0, within=3)
    assert len(fake_upstream.requests) == 1
    message_id = start["metadata"]["message_id"]
    answer = await sync_to_async(Message.objects.get)(id=message_id)
    assert answer.status == "partial" and answer.finish_reason == "cancelled"
    assert await sync_to_async(Message.objects.filter(role="user").count)() == 1
    assert await sync_to_async(UsageRecord.objects.count)() == 1


async def test_deleting_a_conversation_on_another_process_stops_its_answer_first(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(text=WORDS * 4, token_delay_ms=80))
    async with socket_to(first, cookie) as ws:
        await ask(ws, "mp-delete")
        start = json.loads(await asyncio.wait_for(ws.recv(), 10))
        conversation_id = start["metadata"]["conversation_id"]
        await ws.recv()  # a token: the answer is under way, its rows saved
        csrf, csrf_cookie = await sync_to_async(_csrf_token)(second, cookie)
        status = await sync_to_async(_delete_conversation)(second, f"{cookie}; {csrf_cookie}", csrf, conversation_id)
        rest = await frames_until_done(ws)
    assert status == 204
    assert rest[-1]["chunk_type"] == "end" and rest[-1]["metadata"]["finish_reason"] == "cancelled"
    assert await fake_upstream.wait_until(lambda: fake_upstream.active_streams == 0, within=3)
    assert not await sync_to_async(Message.objects.filter(conversation_id=conversation_id).exists)()


async def test_a_breaker_opened_by_one_process_is_open_for_the_other(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(provider="openai", status=503), Scenario(provider="anthropic", text=WORDS),
                          Scenario(provider="anthropic", text=WORDS))
    async with socket_to(first, cookie) as ws:
        await ask(ws, "mp-3")
        assert (await frames_until_done(ws))[-1]["metadata"]["provider"] == "anthropic"
    async with socket_to(second, cookie) as ws:
        await ask(ws, "mp-4")
        end = (await frames_until_done(ws))[-1]
    assert end["metadata"]["provider"] == "anthropic"
    assert end["metadata"]["fallback"]["reason"] == "openai paused after repeated failures"
    assert [r.provider for r in fake_upstream.requests] == ["openai", "anthropic", "anthropic"]


@pytest.mark.parametrize("two_servers", [{"PAM_CHECKPOINT_INTERVAL_MS": "500"}], indirect=True)
async def test_a_resend_after_its_process_is_killed_gets_the_saved_partial_well_within_the_lease(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(text=WORDS * 20, token_delay_ms=100))
    async with socket_to(second, cookie) as ws:
        await ask(ws, "mp-killed")
        seen = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(6)]
        await asyncio.sleep(1.2)  # past two checkpoints: the row holds some of the text
        os.kill(daphne_pid(second), signal.SIGKILL)
    message_id = seen[0]["metadata"]["message_id"]
    started = time.monotonic()
    async with socket_to(first, cookie) as ws:
        await ask(ws, "mp-killed")  # the client never saw the answer end: it sends again, to the survivor
        frames = await asyncio.wait_for(frames_until_done(ws, wait_s=25), 25)
    waited_s = time.monotonic() - started
    print(f"re-send after the kill settled in {waited_s:.1f} s")
    answer = await sync_to_async(Message.objects.get)(id=message_id)

    assert waited_s < 15, waited_s  # the owner's lease is 30 s; its heartbeat lapses within 10
    assert frames[-1]["chunk_type"] == "error" and frames[-1]["metadata"]["code"] == "interrupted"
    assert frames[-1]["metadata"]["status"] == "partial" and frames[-1]["metadata"]["message_id"] == message_id
    assert text_of(frames) and (WORDS * 20).startswith(text_of(frames))
    assert answer.status == "partial" and answer.finish_reason == "interrupted" and answer.content == text_of(frames)
    assert len(fake_upstream.requests) == 1
    assert await sync_to_async(Message.objects.filter(role="assistant").count)() == 1
    assert await sync_to_async(Message.objects.filter(role="user").count)() == 1


PRICED = Scenario(text="priced", input_tokens=1000, output_tokens=2000)  # $0.00135 on gpt-4o-mini


async def code_of_reply(server: str, cookie: str) -> str:
    async with socket_to(server, cookie) as ws:
        await ask(ws, str(uuid.uuid4()))
        last = (await frames_until_done(ws))[-1]
    return str(last["metadata"].get("code", last["chunk_type"]))


@pytest.mark.parametrize("two_servers", [{"PAM_MAX_CONCURRENT_ANSWERS": "1", "PAM_RATE_LIMIT_MESSAGES": "3"}],
                         indirect=True)
async def test_concurrency_and_rate_limits_hold_across_processes(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=60))
    async with socket_to(first, cookie) as slow:
        await ask(slow, "slow")
        await asyncio.wait_for(slow.recv(), 10)
        assert await code_of_reply(second, cookie) == "too_many_answers"
        await frames_until_done(slow)
    assert await code_of_reply(second, cookie) == "end"
    assert await code_of_reply(first, cookie) == "end"
    assert await code_of_reply(second, cookie) == "rate_limited"  # the fourth message within the window
    assert len(fake_upstream.requests) == 3


@pytest.mark.parametrize("two_servers", [{"PAM_DAILY_SPEND_CAP_USD": "0.002"}], indirect=True)
async def test_the_daily_spend_cap_holds_across_processes(
    two_servers: tuple[str, str], cookie: str, fake_upstream: FakeUpstream
) -> None:
    first, second = two_servers
    fake_upstream.enqueue(PRICED, PRICED, PRICED)
    assert await code_of_reply(first, cookie) == "end"  # $0.00135 spent
    assert await code_of_reply(second, cookie) == "end"  # under the cap when it started: $0.0027 spent
    assert await code_of_reply(first, cookie) == "spend_cap"
    assert await code_of_reply(second, cookie) == "spend_cap"
    assert len(fake_upstream.requests) == 2


async def test_logging_out_closes_the_sessions_socket_on_another_process(
    two_servers: tuple[str, str], cookie: str
) -> None:
    first, second = two_servers
    async with socket_to(second, cookie) as ws:
        await send(ws, type="ping")
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
        csrf, csrf_cookie = await sync_to_async(_csrf_token)(first, cookie)
        await sync_to_async(_post_logout)(first, f"{cookie}; {csrf_cookie}", csrf)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def _csrf_token(server: str, cookie: str) -> tuple[str, str]:
    """The logout form's CSRF token, and the CSRF cookie it pairs with."""
    with urllib.request.urlopen(urllib.request.Request(server + "/", headers={"Cookie": cookie})) as response:
        page = response.read().decode()
        set_cookies = response.headers.get_all("Set-Cookie") or []
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    csrf_cookie = next(c.split(";")[0] for c in set_cookies if c.startswith("csrftoken="))
    assert match is not None
    return match.group(1), csrf_cookie


def _post_logout(server: str, cookie: str, csrf: str) -> None:
    request = urllib.request.Request(
        server + "/accounts/logout/", data=urllib.parse.urlencode({"csrfmiddlewaretoken": csrf}).encode(),
        headers={"Cookie": cookie, "Referer": server + "/", "Origin": server}, method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with contextlib.suppress(urllib.error.HTTPError):
        opener.open(request)


def _delete_conversation(server: str, cookie: str, csrf: str, conversation_id: str) -> int:
    request = urllib.request.Request(
        f"{server}/api/conversations/{conversation_id}/", method="DELETE",
        headers={"Cookie": cookie, "X-CSRFToken": csrf, "Referer": server + "/", "Origin": server},
    )
    with urllib.request.urlopen(request) as response:
        return int(response.status)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None
