"""Soak: many sockets through real daphne processes while the upstream faults, clients vanish and re-send.

It starts everything itself on 127.0.0.1 (the fake upstream in a process of its own, ``--processes`` daphne
processes as in production, a migrated database: a temporary SQLite file, or ``DATABASE_URL`` if set, with
``REDIS_URL`` passed on), spreads ``--sockets`` sockets over users (``--sockets-per-user``, 1 by default) and sends
``--messages`` messages on each, one after another. A share ``--fault-rate`` of the messages carries a fault marker:
the first upstream request for such a message gets that fault (every kind in ``fake_upstream.FAULT_KINDS`` in turn;
the retry or the fallback then answers). A share ``--vanish-rate`` of the clients goes away mid-stream, then comes
back and resumes, re-sends the same ``client_msg_id``, or never returns. With ``--kill-after-s`` and two processes
or more, the last process is SIGKILLed that long after the load started; its clients reconnect to another one.

Then, from the database: every user message has exactly one finished assistant row and at most one usage record,
no ``client_msg_id`` has two user messages or two usage records, every message the clients sent was accepted or
refused with a retryable answer; from the logs: tracebacks. It prints messages/s, the healthy completion ratio
(messages with no fault whose client stayed, that ended ``complete``), TTFT p50/p95 and the problems found.
Exit status 1 on any problem.

    .venv/bin/python bench/soak.py --sockets 200 --messages 5
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/soak REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python bench/soak.py --sockets 500 --messages 4 --processes 2 --kill-after-s 10

``tests/e2e/test_chaos.py`` runs the same engine, smaller, in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus  # noqa: E402

from fake_upstream import FAULT_KINDS, FakeUpstream, Scenario, last_user_text  # noqa: E402
from fake_upstream.scenarios import FaultKind, Provider, fault_scenario  # noqa: E402

TAG = re.compile(r"\[soak:([0-9a-z-]+)(?:\|fault:([a-z0-9_]+))?\]")
RETRYABLE_CLOSES = frozenset({1006, 1011, 1012, 4012, 4013})
"""Closes after which the client (like the page) opens a new socket: 1006/1011 count as problems all the same."""
RETRYABLE_ERRORS = frozenset({"shutting_down", "too_many_answers", "rate_limited", "busy", "interrupted"})
WORDS = ("river", "copper", "lantern", "orbit", "meadow", "signal", "harbor", "quartz", "violet", "engine")
LOG_FORBIDDEN = ("Traceback", "Exception inside application")


# --------------------------------------------------------------------------------------------------
# The fake upstream: the first request of a marked message gets its fault
# --------------------------------------------------------------------------------------------------


class MarkedFaults(FakeUpstream):
    """The fake upstream, faulting the first request of each message whose text carries ``|fault:KIND``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.faulted: set[str] = set()

    def _scenario_for(self, provider: Provider, body: dict[str, Any], stream: bool,
                      request_id: str) -> tuple[Scenario, FaultKind | None]:
        tags = TAG.findall(last_user_text(body))
        if tags and tags[-1][1] and tags[-1][0] not in self.faulted:
            tag, kind = tags[-1]
            self.faulted.add(tag)
            self.fault_counts[kind] += 1  # type: ignore[index]
            return fault_scenario(kind, random.random(), 20, self.hang_limit_ms), kind  # type: ignore[arg-type]
        return super()._scenario_for(provider, body, stream, request_id)


def serve_upstream(options: dict[str, Any]) -> None:
    """Run the fake until stdin closes; each ``report`` line is answered with what it saw (one JSON line)."""
    server = MarkedFaults(**options).start()
    print(json.dumps({"port": server.port}), flush=True)
    for _ in sys.stdin:
        requests = [{"tag": (TAG.findall(last_user_text(r.json if isinstance(r.json, dict) else {})) or [("", "")])
                     [-1][0], "fault": r.fault, "outcome": r.outcome} for r in list(server.requests)]
        print(json.dumps({"requests": requests, "fault_counts": dict(server.fault_counts),
                          "active_streams": server.active_streams}), flush=True)
    server.stop()


class Upstream:
    """The fake upstream in a subprocess (so its work does not wait on the clients' interpreter)."""

    def __init__(self, **options: Any) -> None:
        self.process = subprocess.Popen([sys.executable, str(Path(__file__)), "--serve-upstream", json.dumps(options)],
                                        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(json.loads(self.process.stdout.readline())["port"])
        self.openai_base_url = f"http://127.0.0.1:{self.port}/v1"
        self.anthropic_base_url = f"http://127.0.0.1:{self.port}"

    def report(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        report: dict[str, Any] = json.loads(self.process.stdout.readline())
        return report

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()


# --------------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one soak does (see the module's docstring and --help)."""

    sockets: int = 200
    messages: int = 5
    sockets_per_user: int = 1
    fault_rate: float = 0.1
    vanish_rate: float = 0.05
    seed: int = 20261205
    arrival_spread_s: float = 3.0
    think_s: tuple[float, float] = (0.1, 0.5)
    frame_timeout_s: float = 30.0
    deadline_s: float = 300.0
    kill_after_s: float | None = None


@dataclass
class Exchange:
    """One user message as its client saw it."""

    client_msg_id: str
    fault: str | None
    plan: str  # stay | abandon | resume | resend
    sent_at: float = 0.0
    first_token_at: float | None = None
    message_id: str | None = None
    last_seq: int = -1
    final: dict[str, Any] | None = None
    refused: str | None = None  # a retryable refusal (error code or close code) the client gave up on
    closes: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.fault is None and self.plan == "stay"

    @property
    def complete(self) -> bool:
        return self.final is not None and self.final["chunk_type"] == "end" and (
            self.final["metadata"].get("status") == "complete")


class Gone(Exception):
    """The socket closed under the client."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code or 1006


class Client:
    """One browser tab: a logged-in socket sending its messages one after another, reconnecting like the page."""

    def __init__(self, index: int, urls: Callable[[], Sequence[str]], cookie: str, plan: Plan) -> None:
        self.index, self.urls, self.cookie, self.plan = index, urls, cookie, plan
        self.rng = random.Random(plan.seed * 1000 + index)
        self.exchanges: list[Exchange] = []
        self.conversation_id: str | None = None
        self.ws: ClientConnection | None = None
        self.handshake_failures = 0

    async def _open(self) -> ClientConnection:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.transport.abort()
                await asyncio.wait_for(self.ws.close(), 2)
        for attempt in range(8):
            live = self.urls()
            url = live[(self.index + attempt) % len(live)]
            try:
                self.ws = await connect(url.replace("http://", "ws://") + "/ws/chat/", origin=url,
                                        additional_headers={"Cookie": self.cookie}, close_timeout=2,
                                        open_timeout=self.plan.frame_timeout_s, max_size=2**22)
                return self.ws
            except (OSError, InvalidMessage, InvalidStatus, TimeoutError):
                self.handshake_failures += 1
                await asyncio.sleep(min(4.0, 0.25 * 2**attempt))
        raise RuntimeError(f"client {self.index}: could not open a socket")

    async def _recv(self) -> dict[str, Any]:
        assert self.ws is not None
        try:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), self.plan.frame_timeout_s))
        except ConnectionClosed as exc:
            raise Gone(exc.rcvd.code if exc.rcvd else None) from exc
        return frame

    async def run(self, faults: Iterator[str]) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.plan.arrival_spread_s))
        await self._open()
        try:
            for number in range(self.plan.messages):
                fault = next(faults) if self.rng.random() < self.plan.fault_rate else None
                vanish = self.rng.random() < self.plan.vanish_rate
                plan = self.rng.choice(("abandon", "resume", "resend")) if vanish else "stay"
                exchange = Exchange(f"c{self.index}-{number}-{uuid.uuid4().hex[:8]}", fault, plan)
                self.exchanges.append(exchange)
                await self._exchange(exchange)
                await asyncio.sleep(self.rng.uniform(*self.plan.think_s))
        finally:
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(), 2)

    def _frame(self, exchange: Exchange) -> str:
        marker = f"|fault:{exchange.fault}" if exchange.fault else ""
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 30)))
        return json.dumps({"type": "message", "content": f"[soak:{exchange.client_msg_id}{marker}] {words}",
                           "conversation_id": self.conversation_id, "stream": True,
                           "route": self.rng.choice(("auto", "simple", "complex")),
                           "client_msg_id": exchange.client_msg_id})

    async def _exchange(self, exchange: Exchange) -> None:
        frame = self._frame(exchange)
        exchange.sent_at = time.monotonic()
        resend, tries = True, 0
        while exchange.final is None and tries < 6:
            tries += 1
            try:
                assert self.ws is not None
                if resend:
                    await self.ws.send(frame)
                elif exchange.message_id is not None:
                    await self.ws.send(json.dumps({"type": "resume", "message_id": exchange.message_id,
                                                   "last_seq": exchange.last_seq}))
                await self._follow(exchange)
            except (Gone, ConnectionClosed, TimeoutError) as exc:
                # Gone: closed (1000: by this client, vanishing); a timeout: no frame for frame_timeout_s (code 0).
                code = exc.code if isinstance(exc, Gone) else 0 if isinstance(exc, TimeoutError) else 1006
                exchange.closes.append(code)
                if self.ws is not None and code == 0:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.ws.close(), 2)
                await asyncio.sleep(self.rng.uniform(0.1, 0.6))
                await self._open()
                if exchange.plan == "abandon" and code == 1000:
                    break  # gone for good: the server stops and saves the answer after its grace period
                resend = exchange.message_id is None or exchange.plan == "resend"
            else:
                final = exchange.final
                if final is not None and final["chunk_type"] == "error":
                    code = final["metadata"].get("code")
                    if code in RETRYABLE_ERRORS and code != "interrupted":
                        exchange.refused, exchange.final, resend = code, None, True
                        await asyncio.sleep(min(5.0, float(final["metadata"].get("retry_after_s") or 0.5)))
        if exchange.final is not None:
            metadata = exchange.final["metadata"]
            self.conversation_id = metadata.get("conversation_id") or self.conversation_id
            if exchange.final["chunk_type"] == "error" and metadata.get("code") not in RETRYABLE_ERRORS:
                exchange.refused = None

    async def _follow(self, exchange: Exchange) -> None:
        tokens = 0
        leave_after = self.rng.randint(1, 3) if exchange.plan != "stay" and not exchange.closes else None
        while True:
            chunk = await self._recv()
            if chunk.get("type") == "pong":
                continue
            metadata = chunk.get("metadata", {})
            exchange.last_seq = metadata.get("seq", exchange.last_seq)
            if chunk.get("chunk_type") == "start":
                exchange.message_id = metadata.get("message_id")
            elif chunk.get("chunk_type") == "token":
                tokens += 1
                exchange.first_token_at = exchange.first_token_at or time.monotonic()
                if leave_after is not None and tokens >= leave_after:
                    assert self.ws is not None
                    if self.rng.random() < 0.5:
                        self.ws.transport.abort()  # a lost network
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.ws.close(), 2)  # a closed tab
                    raise Gone(1000)
            elif chunk.get("chunk_type") in ("end", "error"):
                exchange.final = chunk
                return


async def drive(urls: Callable[[], Sequence[str]], cookies: Sequence[str], plan: Plan,
                kill: Callable[[], None] | None = None) -> tuple[list[Client], list[str], float]:
    """Run every client; their exchanges, the clients that failed outright, and the seconds it took."""
    kinds = iter(FAULT_KINDS * (plan.sockets * plan.messages))
    clients = [Client(i, urls, cookies[i], plan) for i in range(plan.sockets)]
    started = time.monotonic()

    async def killer() -> None:
        if kill is not None and plan.kill_after_s is not None:
            await asyncio.sleep(plan.kill_after_s)
            kill()

    killing = asyncio.create_task(killer())
    try:
        async with asyncio.timeout(plan.deadline_s):
            results = await asyncio.gather(*(c.run(kinds) for c in clients), return_exceptions=True)
    except TimeoutError:
        results = [TimeoutError(f"not done within {plan.deadline_s:g} s")] * len(clients)
    finally:
        killing.cancel()
    failures = [f"client {c.index}: {r!r}" for c, r in zip(clients, results, strict=True)
                if isinstance(r, BaseException)]
    return clients, failures, time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# Users, checks and figures (Django configured by the caller)
# --------------------------------------------------------------------------------------------------


def make_cookies(sockets: int, sockets_per_user: int, prefix: str) -> list[str]:
    """One logged-in session per socket, `sockets_per_user` sockets per user (no password hashing)."""
    import importlib

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    cookies, user = [], None
    for index in range(sockets):
        if index % max(1, sockets_per_user) == 0:
            user = get_user_model()(username=f"{prefix}-{index:05d}")
            user.set_unusable_password()
            user.save()
        assert user is not None
        store = store_class()
        store[SESSION_KEY] = user._meta.pk.value_to_string(user)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={store.session_key}")
    return cookies


def wait_until_settled(timeout_s: float) -> int:
    """Wait until no answer row is streaming (a killed process's rows are swept); how many still are."""
    from pam_hybrid.models import Message

    deadline = time.monotonic() + timeout_s
    while (left := Message.objects.filter(status=Message.Status.STREAMING).count()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def check_database(exchanges: Sequence[Exchange]) -> list[str]:
    """The invariants, from the database: one finished answer per user message, no double charge, nothing lost."""
    from django.db.models import Count

    from pam_hybrid.models import Message, UsageRecord

    problems = []
    ids = [e.client_msg_id for e in exchanges]
    users = Message.objects.filter(role=Message.Role.USER, client_msg_id__in=ids)
    for row in users.values("client_msg_id").annotate(n=Count("id")).filter(n__gt=1):
        problems.append(f"{row['client_msg_id']}: {row['n']} user messages")
    answers: dict[str, list[Any]] = {}
    for answer in Message.objects.filter(role=Message.Role.ASSISTANT, reply_to__client_msg_id__in=ids).select_related(
            "reply_to"):
        answers.setdefault(answer.reply_to.client_msg_id, []).append(answer)
    usage = Counter(UsageRecord.objects.filter(message__reply_to__client_msg_id__in=ids).values_list(
        "message__reply_to__client_msg_id", flat=True))
    accepted = set(users.values_list("client_msg_id", flat=True))
    for exchange in exchanges:
        rows = answers.get(exchange.client_msg_id, [])
        if exchange.client_msg_id not in accepted:
            if exchange.refused is None and not (exchange.final and exchange.final["chunk_type"] == "error"):
                problems.append(f"{exchange.client_msg_id}: never accepted, and the client got no retryable answer "
                                f"(closes {exchange.closes}, final {exchange.final})")
            continue
        if len(rows) != 1:
            problems.append(f"{exchange.client_msg_id}: {len(rows)} assistant rows")
        elif rows[0].status == Message.Status.STREAMING:
            problems.append(f"{exchange.client_msg_id}: its answer is still streaming")
        if usage[exchange.client_msg_id] > 1:
            problems.append(f"{exchange.client_msg_id}: charged {usage[exchange.client_msg_id]} times")
    return problems


def log_problems(texts: Sequence[str]) -> list[str]:
    return [line for text in texts for line in text.splitlines() if any(w in line for w in LOG_FORBIDDEN)]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Figures:
    messages: int
    seconds: float
    healthy: int
    healthy_complete: int
    ttft_ms: list[float]
    outcomes: Counter[str]
    closes: Counter[int]

    @property
    def healthy_ratio(self) -> float:
        return self.healthy_complete / self.healthy if self.healthy else 1.0

    def __str__(self) -> str:
        return (f"{self.messages} messages in {self.seconds:.1f} s: {self.messages / self.seconds:.1f} messages/s; "
                f"healthy completed {self.healthy_complete}/{self.healthy} = {self.healthy_ratio:.1%}; "
                f"TTFT p50 {percentile(self.ttft_ms, 0.5):.0f} ms, p95 {percentile(self.ttft_ms, 0.95):.0f} ms\n"
                f"  outcomes {dict(self.outcomes)}; socket closes seen {dict(self.closes)}")


def figures(exchanges: Sequence[Exchange], seconds: float) -> Figures:
    def outcome(e: Exchange) -> str:
        if e.final is None:
            return f"refused:{e.refused}" if e.refused else "no final chunk"
        if e.final["chunk_type"] == "end":
            return str(e.final["metadata"].get("status"))
        return f"error:{e.final['metadata'].get('code')}"

    healthy = [e for e in exchanges if e.healthy]
    return Figures(len(exchanges), seconds, len(healthy), sum(e.complete for e in healthy),
                   [(e.first_token_at - e.sent_at) * 1000 for e in healthy if e.first_token_at and not e.closes],
                   Counter(outcome(e) for e in exchanges), Counter(c for e in exchanges for c in e.closes))


# --------------------------------------------------------------------------------------------------
# The command: servers of its own
# --------------------------------------------------------------------------------------------------

SERVER_ENV = {
    "PAM_CONNECT_TIMEOUT_MS": "2000",
    "PAM_FIRST_TOKEN_TIMEOUT_MS": "3000",
    "PAM_IDLE_TIMEOUT_MS": "3000",
    "PAM_TOTAL_TIMEOUT_MS": "30000",
    "PAM_RESUME_GRACE_MS": "2000",
    "PAM_CHECKPOINT_INTERVAL_MS": "1000",
    "PAM_SHUTDOWN_GRACE_MS": "2000",
    # The per-user limits are not what this is about: none binds.
    "PAM_MAX_CONCURRENT_ANSWERS": "1000",
    "PAM_RATE_LIMIT_MESSAGES": "100000",
    "PAM_DAILY_SPEND_CAP_USD": "0",
}
UPSTREAM_OPTIONS = {"ttft_ms": 200, "token_delay_ms": 10, "default_tokens": 20, "hang_limit_ms": 4000}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("daphne did not start listening")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="per socket")
    parser.add_argument("--sockets-per-user", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--vanish-rate", type=float, default=0.05)
    parser.add_argument("--kill-after-s", type=float, default=None, help="SIGKILL the last process (needs 2+)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--deadline-s", type=float, default=600.0)
    parser.add_argument("--keep-logs", type=Path, default=None, help="a directory for the daphne logs")
    parser.add_argument("--serve-upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(json.loads(args.serve_upstream))
        return 0
    plan = Plan(sockets=args.sockets, messages=args.messages, sockets_per_user=args.sockets_per_user,
                fault_rate=args.fault_rate, vanish_rate=args.vanish_rate, seed=args.seed, deadline_s=args.deadline_s,
                kill_after_s=args.kill_after_s if args.processes > 1 else None)
    workdir = Path(tempfile.mkdtemp(prefix="pam-soak-"))
    logs = args.keep_logs or workdir
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **SERVER_ENV, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50),
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "pam_project.settings",
           "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'soak.sqlite3'}",
           "PAM_REDIS_PREFIX": f"pam-soak-{uuid.uuid4().hex[:8]}:", "PYTHONUNBUFFERED": "1",
           "OPENAI_API_KEY": "sk-soak", "ANTHROPIC_API_KEY": "sk-ant-soak"}
    os.environ.update({k: env[k] for k in ("DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")})
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    cookies = make_cookies(plan.sockets, plan.sockets_per_user, f"soak{uuid.uuid4().hex[:6]}")
    upstream = Upstream(**UPSTREAM_OPTIONS)
    env.update({"OPENAI_BASE_URL": upstream.openai_base_url, "ANTHROPIC_BASE_URL": upstream.anthropic_base_url})
    servers: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(args.processes):
            port = _free_port()
            log_path = logs / f"daphne-{index}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                            "pam_project.asgi:application"], cwd=ROOT, env=env, stdout=log,
                                           stderr=subprocess.STDOUT)
            servers.append((f"http://127.0.0.1:{port}", process, log_path))
            _wait_for_port(port, process)
        killed: list[int] = []

        def kill() -> None:
            servers[-1][1].send_signal(signal.SIGKILL)
            killed.append(len(servers) - 1)

        def live() -> list[str]:
            return [url for i, (url, _, _) in enumerate(servers) if i not in killed]

        print(f"soak: {plan.sockets} sockets x {plan.messages} messages, {plan.sockets_per_user} socket(s) per user, "
              f"{args.processes} process(es), database {env['DATABASE_URL'].split(':')[0]}, "
              f"channel layer {'Redis' if os.environ.get('REDIS_URL') else 'in memory'}, fault rate "
              f"{plan.fault_rate:g}, vanish rate {plan.vanish_rate:g}"
              + (f", SIGKILL of process {args.processes - 1} at {plan.kill_after_s:g} s" if plan.kill_after_s else ""),
              flush=True)
        clients, failures, seconds = asyncio.run(drive(live, cookies, plan, kill))
        left = wait_until_settled(30)
        exchanges = [e for c in clients for e in c.exchanges]
        problems = failures + check_database(exchanges)
        if left:
            problems.append(f"{left} answers still streaming 30 s after the load")
        tracebacks = log_problems([path.read_text(errors="replace") for _, _, path in servers])
        report = upstream.report()
        print(figures(exchanges, seconds))
        print(f"  faults injected {dict(sorted(report['fault_counts'].items()))}; handshake failures "
              f"{sum(c.handshake_failures for c in clients)}")
        print(f"  server log: {sum('Traceback' in line for line in tracebacks)} tracebacks"
              + (f", {len(tracebacks)} lines" if tracebacks else "") + f" (logs in {logs})")
        print(f"  problems: {len(problems)}")
        for problem in problems[:30]:
            print(f"    {problem}")
        return 1 if problems or tracebacks else 0
    finally:
        for _, process, _ in servers:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
                if process.poll() is None:
                    process.kill()
        upstream.stop()


if __name__ == "__main__":
    sys.exit(main())
