"""Graceful SIGTERM and /healthz against a real daphne process of each test's own (pam_hybrid.runtime.shutdown)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Message, UsageRecord
from pam_hybrid.runtime import shutdown
from tests.support.paths import ROOT
from tests.support.servers import TEST_API_KEY, database_url, free_port, wait_for_port

pytestmark = [pytest.mark.live]

WORDS = "one two three four five six seven eight nine ten eleven twelve"
RESTART_CODES = (shutdown.CLOSE_SERVICE_RESTART, shutdown.CLOSE_SERVICE_RESTART_PRIVATE)
EXIT_SLACK_S = 8.0
"""Longest a process may take to exit once its drain is over (saves, reactor shutdown)."""


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/chat/"

    def sigterm(self) -> float:
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    async def exit_code(self, within_s: float) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, within_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daphne still running {within_s} s later:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_server(transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts a daphne process on the test database with its providers on the fake upstream; kills it afterwards."""
    started: list[Server] = []

    def start(**settings: str) -> Server:
        port = free_port()
        env = {
            **os.environ, "DEBUG": "true", "ALLOWED_HOSTS": "127.0.0.1,localhost", "DATABASE_URL": database_url(),
            "OPENAI_API_KEY": TEST_API_KEY, "OPENAI_BASE_URL": fake_upstream.openai_base_url,
            "ANTHROPIC_API_KEY": TEST_API_KEY, "ANTHROPIC_BASE_URL": fake_upstream.anthropic_base_url,
            "PYTHONUNBUFFERED": "1", "PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:", **settings,
        }
        log_path = tmp_path / f"daphne-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pam_project.asgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)
        wait_for_port(port, process)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture
def session_cookie(transactional_db: Any, user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def open_socket(server: Server, cookie: str) -> Any:
    return connect(server.ws_url, origin=server.url, additional_headers={"Cookie": cookie}, open_timeout=5)


def message(content: str, client_msg_id: str) -> str:
    return json.dumps({"type": "message", "content": content, "conversation_id": None, "stream": True,
                       "route": "simple", "client_msg_id": client_msg_id})


async def receive(ws: ClientConnection, within_s: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        return json.loads(await ws.recv())


async def until_done(ws: ClientConnection, within_s: float = 10) -> list[dict[str, Any]]:
    """Frames up to and including the answer's `end` or `error` chunk."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(within_s):
        while not frames or frames[-1]["chunk_type"] not in ("end", "error"):
            frames.append(json.loads(await ws.recv()))
    return frames


async def close_code(ws: ClientConnection, within_s: float = 5) -> int | None:
    """The code the server closes the socket with (failing if a frame comes instead)."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within_s):
            frame = await ws.recv()
            pytest.fail(f"expected the socket to close, got {frame!r}")
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def refused_or_closed(ws: ClientConnection, frame: str) -> None:
    """Sends `frame` to an idle socket of a draining server: it is refused and the socket closed, or (when the
    drain's first look came first) the socket was closed already; either way with a restart code."""
    try:
        await ws.send(frame)
        refusal = await receive(ws)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code in RESTART_CODES
        return
    assert refusal["chunk_type"] == "error" and refusal["metadata"] == {"code": "shutting_down"}
    assert refusal["content"] == shutdown.REFUSAL_TEXT
    assert await close_code(ws) in RESTART_CODES


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f["chunk_type"] == "token")


def _get_health(server: Server) -> tuple[int, dict[str, Any], str]:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
            return response.status, json.loads(response.read()), response.headers.get("Cache-Control", "")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()), refused.headers.get("Cache-Control", "")


async def health(server: Server) -> tuple[int, dict[str, Any], str]:
    return await asyncio.to_thread(_get_health, server)


async def draining_health(server: Server, within_s: float = 5) -> dict[str, Any]:
    """/healthz once the server has taken the signal in (it answers 503 from then on)."""
    deadline = time.monotonic() + within_s
    while True:
        status, body, _ = await health(server)
        if status == 503:
            return body
        assert time.monotonic() < deadline, f"/healthz still says {status} {body}"
        await asyncio.sleep(0.05)


async def saved_answer(message_id: str) -> tuple[Message, UsageRecord]:
    answer = await sync_to_async(Message.objects.get)(id=message_id)
    usage = await sync_to_async(UsageRecord.objects.get)(message_id=message_id)
    return answer, usage


async def test_sigterm_lets_the_answer_in_flight_finish_refuses_new_messages_then_exits(
    start_server: Callable[..., Server], session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    grace_s = 15
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=150))  # about 1.8 s of answer
    server = start_server(PAM_SHUTDOWN_GRACE_MS=str(grace_s * 1000))
    async with open_socket(server, session_cookie) as first, open_socket(server, session_cookie) as second:
        await first.send(message("hello", "in-flight"))
        frames = [await receive(first), await receive(first)]
        assert [f["chunk_type"] for f in frames] == ["start", "token"]
        signalled_at = server.sigterm()

        assert await draining_health(server) == {"status": "draining", "answers_in_flight": 1, "answer_tasks": 1}
        await refused_or_closed(second, message("too late", "refused"))  # nothing to wait for on this one

        frames += await until_done(first)
        assert await close_code(first) in RESTART_CODES

    end = frames[-1]
    assert end["chunk_type"] == "end" and end["metadata"]["status"] == "complete"
    assert end["metadata"]["finish_reason"] == "stop" and text_of(frames) == WORDS
    assert await server.exit_code(within_s=grace_s + EXIT_SLACK_S) == 0, server.log_tail()
    assert time.monotonic() - signalled_at < grace_s  # done when the answer was, not at the end of the grace
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    assert answer.status == Message.Status.COMPLETE and answer.content == WORDS
    assert usage.outcome == UsageRecord.Outcome.COMPLETE
    assert len(fake_upstream.requests) == 1  # the refused message never reached a provider


async def test_sigterm_stops_an_answer_longer_than_the_grace_and_saves_it_partial(
    start_server: Callable[..., Server], session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=400))  # about 4.8 s of answer
    server = start_server(PAM_SHUTDOWN_GRACE_MS="800")
    async with open_socket(server, session_cookie) as ws:
        await ws.send(message("hello", "cut-short"))
        frames = [await receive(ws), await receive(ws)]
        server.sigterm()
        frames += await until_done(ws)
        assert await close_code(ws) in RESTART_CODES

    end = frames[-1]
    assert end["chunk_type"] == "end", end
    assert end["metadata"]["finish_reason"] == "shutdown" and end["metadata"]["status"] == "partial"
    assert 0 < len(text_of(frames)) < len(WORDS)
    assert await server.exit_code(within_s=0.8 + EXIT_SLACK_S) == 0, server.log_tail()
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.finish_reason == "shutdown"
    assert answer.content == text_of(frames)
    assert usage.outcome == UsageRecord.Outcome.CANCELLED and usage.finish_reason == "shutdown"
    assert usage.output_tokens > 0
    assert fake_upstream.requests[0].outcome == "client_disconnected"  # the upstream request was closed


async def test_second_sigterm_stops_waiting_but_still_saves(
    start_server: Callable[..., Server], session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    grace_s = 30
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=400))
    server = start_server(PAM_SHUTDOWN_GRACE_MS=str(grace_s * 1000))
    async with open_socket(server, session_cookie) as ws:
        await ws.send(message("hello", "hurried"))
        frames = [await receive(ws), await receive(ws)]
        server.sigterm()
        await draining_health(server)
        second_signal_at = server.sigterm()
        frames += await until_done(ws)
        assert await close_code(ws) in RESTART_CODES

    end = frames[-1]
    assert end["chunk_type"] == "end" and end["metadata"]["finish_reason"] == "shutdown"
    assert await server.exit_code(within_s=EXIT_SLACK_S) == 0, server.log_tail()
    assert time.monotonic() - second_signal_at < EXIT_SLACK_S < grace_s
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    assert answer.status == Message.Status.PARTIAL and answer.finish_reason == "shutdown"
    assert answer.content == text_of(frames) and usage.finish_reason == "shutdown"


async def test_healthz_on_an_idle_server(start_server: Callable[..., Server]) -> None:
    server = start_server()
    status, body, cache_control = await health(server)
    assert status == 200 and body == {"status": "ok", "answers_in_flight": 0, "answer_tasks": 0}
    assert "no-store" in cache_control
    server.sigterm()
    assert await server.exit_code(within_s=EXIT_SLACK_S) == 0, server.log_tail()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a PostgreSQL table lock (CI's PostgreSQL run)")
async def test_a_process_stuck_after_its_drain_writes_its_threads_stacks_and_exits(
    start_server: Callable[..., Server], session_cookie: str
) -> None:
    """A database that stops answering (here: a table lock another client holds) leaves daphne's shutdown waiting on
    a thread that cannot be cancelled; the watchdog ends the process and its log says where each thread was."""
    server = start_server(PAM_SHUTDOWN_GRACE_MS="300")
    locker = await asyncio.to_thread(psycopg.connect, database_url())
    try:
        await asyncio.to_thread(locker.execute, f"LOCK TABLE {Message._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        async with open_socket(server, session_cookie) as ws:
            await ws.send(message("hello", "stuck"))
            await asyncio.sleep(1)  # the database thread now waits on the lock (the upkeep's sweep or the answer)
            server.sigterm()
            code = await server.exit_code(within_s=shutdown.SAVE_WAIT_S + shutdown.EXIT_WATCHDOG_S + EXIT_SLACK_S)
    finally:
        await asyncio.to_thread(locker.close)
    log = server.log_path.read_text(errors="replace")
    assert code == 1, log[-4000:]
    assert f"Timeout ({timedelta(seconds=shutdown.EXIT_WATCHDOG_S)})!" in log and "most recent call first" in log, log
    assert "psycopg" in log, log  # the stuck thread's stack names what it waited on
