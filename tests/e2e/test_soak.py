"""A bounded soak: 200 concurrent sockets send 2,000 messages to a real daphne process while the fake upstream faults
10% of model calls at random and some clients vanish mid-stream (some never come back, some resume, some re-send).

At the end, from the database and the fake upstream's records: every user message has exactly one settled assistant
message and one usage record, no message ran twice, every upstream request is accounted for in its message's usage
record (no duplicate charges), what each client saw is what was saved, the server logged no exception and no answer
task is left running. Everything talks to 127.0.0.1 only and is bounded in time.

Three busy processes share the machine: daphne, the fake upstream and this one (the clients). The fake runs in a
process of its own because, as a thread beside 200 clients, it waited on the GIL for so long that it read requests
after the gateway's first-token timeout had already given up on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import Count
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage

from fake_upstream import FAULT_KINDS
from pam_hybrid.models import BreakerEvent, Message, UsageRecord
from tests.support.paths import ROOT
from tests.support.servers import run_daphne

pytestmark = [pytest.mark.live]

SOCKETS = 200
MESSAGES_PER_SOCKET = 10
USERS = 20  # ten sockets (browsers, each with its own session) per user
VANISH_RATE = 0.05  # messages whose client goes away after a few tokens, without a cancel
SEED = 20261125
FAULT_RATE = 0.1
SOAK_DEADLINE_S = 240.0  # the whole client side, from the first connect to the last answer
FRAME_TIMEOUT_S = 30.0  # longest wait for any one frame (or handshake)
HANDSHAKE_ATTEMPTS = 3
ARRIVAL_SPREAD_S = 5.0  # clients connect over the first seconds, not all in one millisecond
THINK_S = (1.0, 5.0)  # between an answer and the next message: people read
QUIET_WITHIN_S = 15.0  # for the server to report no answer in flight once every client is done
RESUME_GRACE_MS = 300
WORDS = ("river", "copper", "lantern", "orbit", "meadow", "signal", "harbor", "quartz", "violet", "engine",
         "summit", "pillow", "cactus", "ledger", "falcon", "marble", "tundra", "echo", "walnut", "prism")
SOAK_ID = re.compile(r"soak-\d+-\d+-[0-9a-f]{8}")
LOG_FORBIDDEN = ("Traceback", "ERROR", "Task was destroyed", "Exception inside application", "took too long to shut",
                 "left streaming by a stopped process")  # (no process stops during the soak)

# The server recovers fast so the soak stays short: one quick retry, breakers that open after 3 consecutive failures
# and cool down in half a second (so they open now and then, and answers fall back), and a 300 ms resume grace so
# abandoned answers end soon. First-token and idle timeouts are 3 s, not 1 s: at 1 s (fine on a quiet machine), other
# work on the same two cores made them fire on healthy streams whose whole answer had already arrived, and a provider's
# complete answer thrown away as a "failed attempt" fails the no-duplicate-charge check below.
SERVER_ENV = {
    "LOG_LEVEL": "INFO",
    "PAM_CONNECT_TIMEOUT_MS": "2000",
    "PAM_FIRST_TOKEN_TIMEOUT_MS": "3000",
    "PAM_IDLE_TIMEOUT_MS": "3000",
    "PAM_TOTAL_TIMEOUT_MS": "20000",
    "PAM_RETRIES": "1",
    "PAM_RETRY_BACKOFF_MS": "20",
    "PAM_RETRY_DEADLINE_MS": "4000",
    "PAM_RESUME_GRACE_MS": str(RESUME_GRACE_MS),
    # Live answers' rows get a heartbeat every 2 s; the sweep takes a row 3 intervals old for a dead process's. The
    # heartbeat and the sweep queue on the server's one thread for synchronous code: at 1 s, a 3 s backlog there
    # (seen with other work on the machine) made the sweep mark live answers as interrupted.
    "PAM_CHECKPOINT_INTERVAL_MS": "2000",
    "PAM_BREAKER_FAILURES": "3",
    "PAM_BREAKER_WINDOW_MS": "10000",
    "PAM_BREAKER_FAILURE_RATE": "0.5",
    "PAM_BREAKER_MIN_CALLS": "20",
    "PAM_BREAKER_COOLDOWN_MS": "500",
    "PAM_BREAKER_PROBES": "1",
    # Ten sockets per user, ten messages each, within a minute: the per-user limits (answers at once, messages per
    # window, spend per day) would refuse some; they are not what this soak is about, so none binds.
    "PAM_MAX_CONCURRENT_ANSWERS": "100",
    "PAM_RATE_LIMIT_MESSAGES": "1000",
    "PAM_DAILY_SPEND_CAP_USD": "0",
}
# Hangs outlast the timeouts, so the gateway is the one that gives up on them.
UPSTREAM_OPTIONS = {"ttft_ms": 20, "token_delay_ms": 5, "hang_limit_ms": 3500, "fault_rate": FAULT_RATE,
                    "fault_seed": SEED}


# --------------------------------------------------------------------------------------------------
# The fake upstream, in a process of its own, reporting what it saw on request
# --------------------------------------------------------------------------------------------------

UPSTREAM_SCRIPT = """
import json, sys
from fake_upstream import FakeUpstream, default_reply, input_token_count, last_user_text

server = FakeUpstream(**json.loads(sys.argv[1])).start()
print(json.dumps({"port": server.port}), flush=True)

def record(request):
    body = request.json if isinstance(request.json, dict) else {}
    return {"provider": request.provider, "outcome": request.outcome, "fault": request.fault,
            "tokens_sent": request.tokens_sent, "input_tokens": input_token_count(body),
            "last_user_text": last_user_text(body), "reply": default_reply(body), "received_at": request.received_at,
            "first_token_at": request.first_token_at, "ended_at": request.ended_at}

for line in sys.stdin:
    print(json.dumps({
        "requests": [record(request) for request in list(server.requests)],
        "fault_counts": dict(server.fault_counts), "active_streams": server.active_streams,
        "peak_active_streams": server.peak_active_streams,
    }), flush=True)
server.stop()
"""


class RemoteUpstream:
    """The fake upstream (the fake_upstream package) running in a subprocess; `report()` returns what it has seen."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", UPSTREAM_SCRIPT, json.dumps(options)], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdin is not None
        try:
            self.port = json.loads(self.process.stdout.readline())["port"]
        except ValueError:
            self.stop()
            raise

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def report(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        report: dict[str, Any] = json.loads(self.process.stdout.readline())
        return report

    def stop(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process.stdout.close()


@dataclass
class SoakServer:
    url: str
    upstream: RemoteUpstream
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/chat/"


@pytest.fixture
def soak_server(transactional_db: Any, tmp_path: Path) -> Iterator[SoakServer]:
    upstream = RemoteUpstream(UPSTREAM_OPTIONS)
    try:
        with run_daphne(upstream, tmp_path, **SERVER_ENV) as url:  # type: ignore[arg-type]
            log_path = next(tmp_path.glob("daphne-*.log"), None)
            assert log_path is not None, "run_daphne no longer logs to daphne-*.log in its log directory"
            yield SoakServer(url, upstream, log_path)
    finally:
        upstream.stop()


def _sessions(count: int) -> list[str]:
    """`count` logged-in session cookies spread over USERS users (no password hashing: unusable passwords)."""
    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    users = []
    for n in range(USERS):
        user = get_user_model()(username=f"soak-{n:02d}")
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


# --------------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One user message as its client saw it."""

    socket: int
    client_msg_id: str
    content: str
    plan: str
    """stay (follow to the end), abandon (vanish for good), resume (reconnect and resume), resend (reconnect and
    send the same message again)."""
    vanished: bool = False
    message_id: str | None = None
    before: list[dict[str, Any]] = field(default_factory=list)
    """Frames seen before vanishing (all of them when the client stayed)."""
    after: list[dict[str, Any]] = field(default_factory=list)
    """Frames seen after reconnecting."""
    last_seq: int = -1
    sent_at: float = 0.0
    first_token_at: float | None = None
    done_at: float | None = None

    @property
    def followed_to_the_end(self) -> bool:
        return not (self.vanished and self.plan == "abandon")

    @property
    def final(self) -> dict[str, Any] | None:
        frames = self.after if self.vanished else self.before
        return frames[-1] if frames and frames[-1].get("chunk_type") in ("end", "error") else None

    @property
    def seen_text(self) -> str:
        """The answer's text as the client put it together."""
        if self.vanished and self.plan == "resend":
            return text_of(self.after)  # a re-sent message replays the answer from its start
        return text_of(self.before) + text_of(self.after)


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f.get("chunk_type") == "token")


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
    return frame


async def _until_final(ws: ClientConnection, sink: list[dict[str, Any]], exchange: Exchange) -> None:
    while not sink or sink[-1].get("chunk_type") not in ("end", "error"):
        sink.append(await _recv(ws))
        if exchange.first_token_at is None and sink[-1].get("chunk_type") == "token":
            exchange.first_token_at = time.monotonic()


class Client:
    """One browser: a socket of a logged-in session sending its messages one after the other."""

    def __init__(self, index: int, server: SoakServer, cookie: str) -> None:
        self.index = index
        self.server = server
        self.cookie = cookie
        self.rng = random.Random(SEED * 1000 + index)
        self.exchanges: list[Exchange] = []
        self.conversation_id: str | None = None
        self.sockets: list[ClientConnection] = []
        self.refused_handshakes = 0

    async def _connect(self) -> ClientConnection:
        """Open a socket, retrying like the chat page does when the server drops the handshake: daphne does after
        5 s (its --websocket_connect_timeout) while the session lookup waits behind the database thread's queue."""
        for attempt in range(HANDSHAKE_ATTEMPTS):
            try:
                ws = await connect(self.server.ws_url, origin=self.server.url, open_timeout=FRAME_TIMEOUT_S,
                                   additional_headers={"Cookie": self.cookie}, close_timeout=2)
            except InvalidMessage:
                self.refused_handshakes += 1
                if attempt == HANDSHAKE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
            else:
                self.sockets.append(ws)
                return ws
        raise AssertionError("unreachable")

    async def run(self) -> None:
        try:
            await asyncio.sleep(self.rng.uniform(0, ARRIVAL_SPREAD_S))
            ws = await self._connect()
            for number in range(MESSAGES_PER_SOCKET):
                ws = await self._exchange(ws, number)
                await asyncio.sleep(self.rng.uniform(*THINK_S))
        finally:
            for ws in self.sockets:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2)

    async def _exchange(self, ws: ClientConnection, number: int) -> ClientConnection:
        rng = self.rng
        client_msg_id = f"soak-{self.index}-{number}-{uuid.uuid4().hex[:8]}"
        plan = rng.choice(("abandon", "resume", "resend")) if rng.random() < VANISH_RATE else "stay"
        # A client about to vanish asks for a long answer (about a second of tokens), so the grace period may end it.
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40) if plan == "stay" else 200))
        content = f"{client_msg_id}: {words}"
        exchange = Exchange(self.index, client_msg_id, content, plan)
        self.exchanges.append(exchange)
        frame = json.dumps({"type": "message", "content": content, "conversation_id": self.conversation_id,
                            "stream": True, "route": rng.choice(("auto", "auto", "simple", "complex")),
                            "client_msg_id": client_msg_id})
        exchange.sent_at = time.monotonic()
        await ws.send(frame)
        if plan == "stay":
            await _until_final(ws, exchange.before, exchange)
        else:
            ws = await self._vanish_and_return(ws, exchange, frame, tokens_first=rng.randint(1, 3))
        exchange.done_at = time.monotonic()
        final = exchange.final
        if final is not None:
            self.conversation_id = final["metadata"].get("conversation_id")
        elif exchange.vanished:
            self.conversation_id = None  # the abandoned answer may not be saved yet: start a new conversation
        return ws

    async def _vanish_and_return(self, ws: ClientConnection, exchange: Exchange, frame: str, *,
                                 tokens_first: int) -> ClientConnection:
        tokens = 0
        while tokens < tokens_first:
            chunk = await _recv(ws)
            exchange.before.append(chunk)
            exchange.last_seq = chunk["metadata"].get("seq", exchange.last_seq)  # (a refusal has none)
            if chunk["chunk_type"] == "start":
                exchange.message_id = chunk["metadata"]["message_id"]
            elif chunk["chunk_type"] == "token":
                tokens += 1
            elif chunk["chunk_type"] in ("end", "error"):
                return ws  # it ended before the client meant to leave: nothing left to vanish from
        exchange.vanished = True
        # Gone without a cancel: a closed tab (close handshake) or a lost network (the TCP connection aborted).
        if self.rng.random() < 0.5:
            ws.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
        if exchange.plan != "abandon":
            await asyncio.sleep(self.rng.uniform(0, 2 * RESUME_GRACE_MS / 1000))  # within the grace period or not
        ws = await self._connect()
        if exchange.plan == "resume":
            await ws.send(json.dumps({"type": "resume", "message_id": exchange.message_id,
                                      "last_seq": exchange.last_seq}))
        elif exchange.plan == "resend":
            await ws.send(frame)
        if exchange.plan != "abandon":
            await _until_final(ws, exchange.after, exchange)
        return ws


async def _probe_loop_lag(server: SoakServer, cookie: str, stop: asyncio.Event) -> list[float]:
    """WebSocket ping round trips on an idle socket of its own: daphne answers pings on its event loop without
    touching the application, so their latency is the loop's lag."""
    rtts: list[float] = []
    with contextlib.suppress(Exception):  # a probe, not a check: whatever it measured is reported
        async with connect(server.ws_url, origin=server.url, additional_headers={"Cookie": cookie},
                           open_timeout=FRAME_TIMEOUT_S, ping_interval=None) as ws:
            while not stop.is_set():
                started = time.monotonic()
                await asyncio.wait_for(await ws.ping(), FRAME_TIMEOUT_S)
                rtts.append((time.monotonic() - started) * 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
    return rtts


async def _drive(server: SoakServer, cookies: list[str]) -> tuple[list[Client], list[str], list[float]]:
    """Every client's messages, within the soak's deadline; also the failures of clients and the loop lag probed."""
    probe_cookie, *cookies = cookies
    clients = [Client(index, server, cookie) for index, cookie in enumerate(cookies)]
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe_loop_lag(server, probe_cookie, stop))
    try:
        async with asyncio.timeout(SOAK_DEADLINE_S):
            results = await asyncio.gather(*(client.run() for client in clients), return_exceptions=True)
    except TimeoutError:
        failures = [f"the clients were not done within the soak's deadline of {SOAK_DEADLINE_S:g} s"]
    else:
        failures = [
            f"client {client.index}: " + "".join(traceback.format_exception_only(result)).strip()
            for client, result in zip(clients, results, strict=True) if isinstance(result, BaseException)
        ]
    stop.set()
    return clients, failures, await probe


# --------------------------------------------------------------------------------------------------
# The server's health: watched during the soak (load and lag), and at the end (nothing left running)
# --------------------------------------------------------------------------------------------------


def _health(server: SoakServer) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
            health: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        health = {"http_status": exc.code}
    return health, (time.monotonic() - started) * 1000


class HealthWatch:
    """Polls /healthz every quarter second in a thread while the soak runs. Its latency includes the wait for the
    server's one thread for synchronous code (Django's middleware runs there), where the database work queues."""

    def __init__(self, server: SoakServer) -> None:
        self.server = server
        self.samples: list[tuple[dict[str, Any], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with contextlib.suppress(OSError):
                self.samples.append(_health(self.server))

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(15)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pid(port: int) -> int | None:
    """This process's child serving `port` (the daphne process)."""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        with contextlib.suppress(OSError, ValueError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and b"daphne" in b" ".join(argv) and str(port).encode() in argv:
                return int(entry.name)
    return None


class CpuWatch:
    """CPU seconds used by daphne, the fake upstream and this process (the clients) while the soak runs."""

    def __init__(self, server: SoakServer) -> None:
        daphne = _child_pid(int(server.url.rsplit(":", 1)[1]))
        self.pids = {"daphne": daphne, "upstream": server.upstream.process.pid}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {"clients": time.process_time(), "wall": time.monotonic()}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):  # (no /proc: not reported)
                now[name] = _cpu_s(pid) if pid is not None else 0.0
        return now

    def __enter__(self) -> CpuWatch:
        self.used = self._now()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.used = {name: value - self.used[name] for name, value in self._now().items() if name in self.used}

    def __str__(self) -> str:
        wall = self.used.get("wall", 0.0)
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.used.items() if name != "wall") + (
            f" of CPU over {wall:.1f} s")


def _wait_until_quiet(server: SoakServer) -> dict[str, Any]:
    """Poll /healthz until no answer is in flight, no answer task is left and no upstream stream is open (or
    QUIET_WITHIN_S passes); the last report, with the fake upstream's open streams as `upstream_streams`."""
    deadline = time.monotonic() + QUIET_WITHIN_S
    while True:
        health, _ = _health(server)
        health["upstream_streams"] = server.upstream.report()["active_streams"]
        quiet = health.get("answers_in_flight") == 0 and health.get("answer_tasks") == 0
        if (quiet and health["upstream_streams"] == 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _client_problems(exchange: Exchange, row: Message | None) -> list[str]:
    """Whether what one client saw agrees with the saved answer."""
    where = f"{exchange.client_msg_id} ({exchange.plan}{', vanished' if exchange.vanished else ''})"
    if row is None:
        return [f"{where}: no assistant row; the client's last frame: {(exchange.after or exchange.before)[-1:]}"]
    problems = []
    if exchange.message_id is not None and exchange.message_id != str(row.id):
        problems.append(f"{where}: the client followed answer {exchange.message_id}, the row is {row.id}")
    if not exchange.followed_to_the_end:
        return problems
    final = exchange.final
    if final is None:
        return [*problems, f"{where}: no final chunk"]
    metadata = final["metadata"]
    if final["chunk_type"] == "error" and metadata.get("code") != "provider_error":
        problems.append(f"{where}: error chunk {metadata.get('code')!r}: {final['content']!r}")
    if metadata.get("message_id") != str(row.id):
        problems.append(f"{where}: final chunk names {metadata.get('message_id')}, the row is {row.id}")
    if metadata.get("status") != row.status:
        problems.append(f"{where}: final chunk says {metadata.get('status')!r}, the row {row.status!r}")
    if not row.stream_log or final != row.stream_log[-1]:
        problems.append(f"{where}: final chunk {final} is not the saved one {row.stream_log[-1:]}")
    if exchange.seen_text != row.content:
        problems.append(f"{where}: the client saw {exchange.seen_text!r}, the row holds {row.content!r}")
    seqs = [f["metadata"].get("seq") for f in exchange.after if exchange.vanished and exchange.plan == "resume"]
    if seqs and (None in seqs or seqs[0] <= exchange.last_seq or seqs != sorted(set(seqs))):
        problems.append(f"{where}: resumed after seq {exchange.last_seq} with seqs {seqs}")
    before_seqs = [f["metadata"].get("seq") for f in exchange.before]
    if not exchange.vanished and before_seqs != list(range(len(before_seqs))):
        problems.append(f"{where}: seqs not 0..n: {before_seqs}")
    return problems


def _message_id_of(request: dict[str, Any]) -> str:
    """The client_msg_id of the message an upstream request answers (the last one in its last user turn: Anthropic
    requests join consecutive user turns, left when an earlier answer failed, into one)."""
    found = SOAK_ID.findall(request["last_user_text"])
    return found[-1] if found else ""


def _timeline(request: dict[str, Any], sent_at: float) -> str:
    """When the fake received a request, sent its first token and ended it, in ms after the client sent the message."""
    times = [request[key] for key in ("received_at", "first_token_at", "ended_at")]
    return "/".join("-" if t is None else f"{(t - sent_at) * 1000:.0f}" for t in times)


def _charge_problems(exchange: Exchange, row: Message, requests: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Whether the upstream requests made for one message are its usage record's model calls, one each, in order
    (a call an open breaker refused was never sent: it is free and matches a CircuitOpen attempt): no request the
    gateway made is missing from the record, none the provider answered in full was thrown away, a completed call's
    usage is recorded as reported, and a complete answer is the last call's text. Also the errors of failed attempts
    the fake never saw (given up on before the fake had read the request)."""
    usage: UsageRecord = row.usage
    refused = [c for c in usage.model_calls if c["ended"] == "circuit_open"]
    calls = [c for c in usage.model_calls if c["ended"] != "circuit_open"]
    client_msg_id = exchange.client_msg_id
    seen = [(r["provider"], r["outcome"], r["fault"], _timeline(r, exchange.sent_at)) for r in requests]
    described = (f"upstream saw {seen}; the usage record has "
                 f"attempts {[(a['provider'], a['error'], a['ms']) for a in usage.attempts]}, calls "
                 f"{[(c['provider'], c['ended']) for c in usage.model_calls]}, outcome {usage.outcome}")
    earlier, answering = requests[: len(requests) - len(calls)], requests[len(requests) - len(calls):]
    if len(requests) < len(calls) or [r["provider"] for r in answering] != [c["provider"] for c in calls]:
        return [f"{client_msg_id}: the model calls charged are not the last upstream requests: {described}"], []
    problems, unseen, matched = [], [], 0
    breaker_refusals = [a["provider"] for a in usage.attempts if a["error"] == "CircuitOpen"]
    if [c["provider"] for c in refused] != breaker_refusals or any(Decimal(c["cost_usd"]) != 0 for c in refused):
        problems.append(f"{client_msg_id}: the calls an open breaker refused are not one free call each: {described}")
    if earlier:
        problems.append(f"{client_msg_id}: upstream requests missing from the usage record: {described}")
    for attempt in usage.attempts:  # each failed try is also a call: find its request among the calls', in order
        if attempt["error"] == "CircuitOpen":
            continue
        while matched < len(answering) and (answering[matched]["provider"] != attempt["provider"]
                                            or answering[matched]["outcome"] == "completed"):
            matched += 1
        if matched < len(answering):
            matched += 1
        else:
            unseen.append(attempt["error"])
    if any(r["outcome"] == "completed" for r in answering[:-1]):
        problems.append(f"{client_msg_id}: a whole answer upstream was thrown away as a failed attempt: {described}")
    for request, call in zip(answering, calls, strict=True):
        if call["finish_reason"] and request["outcome"] != "completed":
            problems.append(f"{client_msg_id}: a call recorded as finished ({call['finish_reason']}) was not: "
                            f"{described}")
        if request["outcome"] != "completed" or (usage.outcome == "cancelled" and call["estimated"]):
            continue  # (stopped after the last token, before the usage came: an estimate is all there is)
        reported = (request["input_tokens"], request["tokens_sent"], False)
        cached = call["cached_input_tokens"] + call["cache_creation_input_tokens"]
        cached = 0 if call["input_includes_cached"] else cached
        recorded = (call["input_tokens"] + cached, call["output_tokens"], call["estimated"])
        if recorded != reported:
            problems.append(f"{client_msg_id}: a completed call reported {reported}, recorded {recorded}: {described}")
    if row.status == Message.Status.COMPLETE and (
        not answering or answering[-1]["outcome"] != "completed" or row.content != answering[-1]["reply"]
    ):
        problems.append(f"{client_msg_id}: complete answer {row.content!r} is not what upstream sent: {described}")
    return problems, unseen


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Findings:
    """What the database checks found wrong, and the failed attempts the fake upstream never saw (not wrong)."""

    problems: list[str] = field(default_factory=list)
    unseen_attempts: Counter[str] = field(default_factory=Counter)


def _check_database(exchanges: list[Exchange], requests: list[dict[str, Any]]) -> tuple[Findings, dict[Any, Message]]:
    """Every message sent has exactly one settled answer with one usage record matching what the client saw and what
    the upstream did; returns the findings and the answers by the id of the message they reply to."""
    found = Findings()
    problems = found.problems
    user_rows = list(Message.objects.filter(role="user"))
    answer_rows = list(Message.objects.filter(role="assistant").select_related("usage"))
    answers = {row.reply_to_id: row for row in answer_rows}
    replies = Counter(row.reply_to_id for row in answer_rows)
    users_by_client_id = {row.client_msg_id: row for row in user_rows}

    duplicates = Message.objects.filter(role="user").values("conversation__owner", "client_msg_id").annotate(
        n=Count("id")).filter(n__gt=1)
    problems += [f"{d['client_msg_id']}: {d['n']} user messages" for d in duplicates]
    if missing := {e.client_msg_id for e in exchanges} - set(users_by_client_id):
        problems.append(f"{len(missing)} messages sent but never saved, e.g. {sorted(missing)[:3]}")
    problems += [f"{row.client_msg_id}: {replies[row.id]} assistant messages" for row in user_rows
                 if replies[row.id] != 1]
    problems += [f"{replies[None]} assistant messages reply to nothing"] if replies[None] else []
    problems += [f"{row.id}: still streaming" for row in answer_rows if row.status == Message.Status.STREAMING]
    problems += [f"{row.id}: no usage record" for row in answer_rows if not hasattr(row, "usage")]
    if (records := UsageRecord.objects.count()) != len(answer_rows):
        problems.append(f"{records} usage records for {len(answer_rows)} answers")

    requests_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in requests:
        requests_by_id[_message_id_of(request)].append(request)
    for exchange in exchanges:
        user_row = users_by_client_id.get(exchange.client_msg_id)
        row = answers.get(user_row.id) if user_row is not None else None
        problems += _client_problems(exchange, row)
        if row is not None and hasattr(row, "usage"):
            made = requests_by_id.pop(exchange.client_msg_id, [])
            charged, unseen = _charge_problems(exchange, row, made)
            problems += charged
            found.unseen_attempts.update(unseen)
    problems += [f"{len(left)} upstream requests for no message sent: {key!r}" for key, left in requests_by_id.items()]
    return found, answers


@dataclass
class Observed:
    """Everything the soak saw besides the database: the clients, the server's health and load, the upstream."""

    clients: list[Client]
    client_failures: list[str]
    client_s: float
    ping_ms: list[float]
    health_polls: list[tuple[dict[str, Any], float]]
    cpu: CpuWatch
    health_after: dict[str, Any]
    upstream: dict[str, Any]
    log: str

    @property
    def exchanges(self) -> list[Exchange]:
        return [exchange for client in self.clients for exchange in client.exchanges]


def _ms(values: list[float]) -> str:
    """Median, 99th percentile and maximum of durations in ms."""
    p50, p99 = (_percentile(values, q) for q in (0.5, 0.99))
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(values, default=0):.0f} ms"


def _breaker_summary() -> str:
    """Each provider's breaker: how often it opened, and how long it spent open and half-open in all."""
    parts = []
    for provider in ("openai", "anthropic"):
        events = list(BreakerEvent.objects.filter(provider=provider).order_by("at"))
        spent: Counter[str] = Counter()
        for event, following in itertools.pairwise(events):
            spent[event.to_state] += (following.at - event.at).total_seconds()
        opened = sum(e.to_state == "open" for e in events)
        parts.append(f"{provider} opened {opened}x, {spent['open']:.1f} s open, {spent['half_open']:.1f} s half-open")
    return "; ".join(parts)


def _summary(seen: Observed, answers: dict[Any, Message], found: Findings, problems: int) -> str:
    exchanges, requests = seen.exchanges, seen.upstream["requests"]
    rows = list(answers.values())
    usages = [row.usage for row in rows if hasattr(row, "usage")]
    followed = [e for e in exchanges if not e.vanished and e.done_at is not None]
    total_ms = [(e.done_at - e.sent_at) * 1000 for e in followed if e.done_at is not None]
    first_ms = [(e.first_token_at - e.sent_at) * 1000 for e in followed if e.first_token_at is not None]
    unfaulted = Counter(r["outcome"] for r in requests if r["fault"] is None and r["outcome"] != "completed")
    in_flight = max((sample.get("answers_in_flight", 0) for sample, _ in seen.health_polls), default=0)
    return (
        f"\nsoak: {len(exchanges)} messages on {SOCKETS} sockets of {USERS} users in {seen.client_s:.1f} s; "
        f"{len(requests)} upstream requests, at most {seen.upstream['peak_active_streams']} at once\n"
        f"  faults injected: {dict(sorted(seen.upstream['fault_counts'].items()))}\n"
        f"  upstream outcomes: {dict(Counter(r['outcome'] for r in requests))}; "
        f"unfaulted requests not completed: {dict(unfaulted)}\n"
        f"  answers: {dict(Counter(row.status for row in rows))}; finish reasons: "
        f"{dict(Counter(row.finish_reason for row in rows))}; logged: {seen.log.count('pam_hybrid.answers')}\n"
        f"  failed attempts: {dict(Counter(a['error'] for u in usages for a in u.attempts))} "
        f"(upstream never saw {dict(found.unseen_attempts)}); fallbacks: {sum(bool(u.fallback_from) for u in usages)}\n"
        f"  breakers: {_breaker_summary()}\n"
        f"  clients vanished: {dict(Counter(e.plan for e in exchanges if e.vanished))}; handshakes refused: "
        f"{sum(c.refused_handshakes for c in seen.clients)}\n"
        f"  followed answers: first token {_ms(first_ms)}; last chunk {_ms(total_ms)}\n"
        f"  server: loop lag (WebSocket ping) {_ms(seen.ping_ms)}; /healthz (waits for the sync thread) "
        f"{_ms([latency for _, latency in seen.health_polls])}; answers in flight at most {in_flight}\n"
        f"  CPU: {seen.cpu}; after: {seen.health_after}\n"
        f"  problems: {problems}"
    )


def _coverage_problems(seen: Observed, answers: dict[Any, Message]) -> list[str]:
    """What the soak must have exercised for its verdict to mean anything."""
    usages = [row.usage for row in answers.values() if hasattr(row, "usage")]
    problems = [f"no {kind} fault was injected" for kind in FAULT_KINDS if not seen.upstream["fault_counts"].get(kind)]
    problems += [f"no client vanished and then {plan}" for plan in ("abandon", "resume", "resend")
                 if not any(e.vanished and e.plan == plan for e in seen.exchanges)]
    if not any(u.fallback_from for u in usages):
        problems.append("no answer fell back to the other provider")
    if not any(row.status == Message.Status.PARTIAL for row in answers.values()):
        problems.append("no answer was partial")
    if not any(row.finish_reason == "disconnected" for row in answers.values()):
        problems.append("no answer was stopped for want of a resume within the grace period")
    return problems


@pytest.mark.timeout(SOAK_DEADLINE_S + 120)
def test_soak_every_message_gets_exactly_one_answer(soak_server: SoakServer) -> None:
    cookies = _sessions(SOCKETS + 1)
    started = time.monotonic()
    with HealthWatch(soak_server) as watch, CpuWatch(soak_server) as cpu:
        clients, client_failures, ping_ms = asyncio.run(_drive(soak_server, cookies))
    seen = Observed(
        clients=clients, client_failures=client_failures, client_s=time.monotonic() - started, ping_ms=ping_ms,
        health_polls=watch.samples, cpu=cpu, health_after=_wait_until_quiet(soak_server),
        upstream=soak_server.upstream.report(), log=soak_server.log_path.read_text(errors="replace"),
    )

    found, answers = _check_database(seen.exchanges, seen.upstream["requests"])
    problems = [*seen.client_failures, *found.problems, *_coverage_problems(seen, answers)]
    problems += [f"server log: {line}" for line in seen.log.splitlines() if any(w in line for w in LOG_FORBIDDEN)]
    health = seen.health_after
    if "answer_tasks" not in health:
        problems.append(f"GET /healthz answered {health}: needed to prove no answer task is left")
    elif health["answers_in_flight"] or health["answer_tasks"] or health["upstream_streams"]:
        problems.append(f"still running {QUIET_WITHIN_S:g} s after the last client finished: {health}")
    if len(seen.exchanges) != SOCKETS * MESSAGES_PER_SOCKET:
        problems.append(f"{len(seen.exchanges)} messages sent, not {SOCKETS * MESSAGES_PER_SOCKET}")
    print(_summary(seen, answers, found, len(problems)))
    assert not problems, "\n".join(problems[:40])
