"""Open-breaker benchmark: how long a message takes to get its ``error`` chunk when every usable provider's
circuit breaker is open (the claim: "an open breaker costs nothing", under 5 ms).

It starts everything itself, on 127.0.0.1 only, through the real path (the helpers of ``bench/ttft.py``):

1. the fake upstream (the ``fake_upstream`` package) in a process of its own (this script with
   ``--serve-upstream``, the same line protocol as ``bench/upstream.py``), with two scenarios queued: the
   first OpenAI request and the first Anthropic request get HTTP 503; any later request would be answered
   normally (so a breaker that is not open shows as an answer, and as a request the fake records);
2. a migrated database (a temporary SQLite file, or ``DATABASE_URL``; ``REDIS_URL`` is passed on too), a user
   and a logged-in session;
3. one daphne process as in production (``DEBUG=false``), with ``PAM_BREAKER_FAILURES=1``, ``PAM_RETRIES=0``
   and ``PAM_BREAKER_COOLDOWN_MS=3600000`` (the breakers stay open for the run), per-user message limits
   raised out of the way (``PAM_RATE_LIMIT_MESSAGES``, ``PAM_MAX_CONCURRENT_ANSWERS``,
   ``PAM_DAILY_SPEND_CAP_USD``: one user sends every message), and a ``PAM_REDIS_PREFIX`` of its own (so the
   breakers it opens in a shared Redis are this run's only; its keys are deleted at the end).

Then:

* **open**: one message on the ``simple`` route: OpenAI answers 503, the breaker opens (one failure), the
  gateway falls back to Anthropic, 503, that breaker opens too; the message ends with an ``error`` chunk;
* **verify**: one more message must end with an ``error`` chunk saying "temporarily unavailable", with no new
  request at the fake (else the run stops: the breakers are not open);
* ``--warmup`` messages (not measured), then one client sending ``--sequential`` messages one after another,
  then ``--concurrent`` clients, connected first and started together, ``--per-client`` messages each; each
  client sends its next message as soon as the previous ``error`` has come, or ``--think-ms`` later;
* the fake's request count must not move during all that (reported; non-zero fails the run).

Per message it records (client clocks: ``perf_counter`` for the figures, ``time.time()`` to compare with the
server's chunk timestamps, the same wall clock of the same host): send → ``start`` chunk and send → ``error``
chunk. Up to ``211fc3c`` the server sent the ``error`` only after saving the exchange (the user's message with
its placeholder, then the answer with its usage record: two small transactions); since ``e967e4f`` it sends it
first and saves the exchange in one transaction after, while the client may already send its next message.
Either way it is what the client waits for. The split, from the chunks' own ``timestamp`` (made when the server
creates the chunk) and the error's ``total_ms`` (from the answer's creation to just before the error chunk is
made):

* *pre*: client send → the answer is created (frame received and parsed, claim of the ``client_msg_id``,
  per-user limits);
* *answer*: ``total_ms`` (the ``start`` chunk made and sent, both breakers asked, the error settled);
* *save+send*: the error chunk made → the client has it (the saves where they come first, the frame).

Also the ping → pong round trip on the same socket (the transport's own floor), CPU per message of the daphne
process (and of local PostgreSQL/Redis), what the rest of the host used meanwhile (*others %CPU*) and
``/proc/loadavg`` before and after each scenario.

Everything is torn down on exit (Ctrl-C, SIGTERM, errors and the overall ``--timeout`` included). Exit
status: 0 when every measured message got its "temporarily unavailable" error and the fake saw no request
(with ``--check``: and the 5 ms target was met), 1 otherwise, 130 when interrupted.

Run from the repository root: ``.venv/bin/python bench/breaker_open.py [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from bench.ttft import (  # noqa: E402
    BenchError,
    Deadline,
    Target,
    Upstream,
    _finite,
    create_session,
    local_backing_servers,
    measured,
    migrate,
    open_socket,
    other_cpu_seconds,
    present,
    run_checked,
    running_daphnes,
    running_fake,
    scan_logs,
    server_env,
    server_log_paths,
    summary,
)

TARGET_MS = 5.0
QUESTION = "What is the capital of France?"
OPEN_TEXT = "temporarily unavailable"
BREAKER_ENV = {
    "PAM_BREAKER_FAILURES": "1",
    "PAM_RETRIES": "0",
    "PAM_BREAKER_COOLDOWN_MS": "3600000",
}
LIMITS_ENV = {
    # The bench sends hundreds of messages a minute, 20 at once, all from one user: per-user limits (where the
    # server has them) would refuse most of them before they reach the breakers. Unknown settings are ignored.
    "PAM_MAX_CONCURRENT_ANSWERS": "100000",
    "PAM_MAX_SOCKETS_PER_USER": "0",  # every client is the same user
    "PAM_RATE_LIMIT_MESSAGES": "100000",
    "PAM_DAILY_SPEND_CAP_USD": "0",
}


# --------------------------------------------------------------------------------------------------
# The fake upstream, scripted: the first OpenAI and the first Anthropic request get HTTP 503
# --------------------------------------------------------------------------------------------------


def serve_upstream() -> None:
    """Run in the child process: the fake with two 503s queued; the line protocol of bench/upstream.py."""
    from bench.upstream import serve_fake
    from fake_upstream import FakeUpstream, Scenario

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    # Later requests (none expected) are answered at once, in 5 tokens: a breaker that is not open shows quickly.
    server = FakeUpstream(default_tokens=5)
    server.enqueue(Scenario(provider="openai", status=503), Scenario(provider="anthropic", status=503))
    serve_fake(server)


def running_upstream() -> contextlib.AbstractContextManager[Upstream]:
    return running_fake([sys.executable, "-m", "bench.breaker_open", "--serve-upstream"])


# --------------------------------------------------------------------------------------------------
# The database probe: the two saves of an open-breaker answer, timed outside the server
# --------------------------------------------------------------------------------------------------


def db_probe(count: int, directory: str) -> None:
    """Run in a child process with the server's environment, after the server stopped: save `count` answers as
    the gateway saves an answer it streamed (services.exchanges_open, then services.answers_save, each of one
    item, through database_sync_to_async as in the server) and as it saves an open-breaker answer
    (services.exchange_save), timing each step; and `count` fsyncs of a 4 KiB write in
    `directory` (where the SQLite file is). Prints one JSON object of lists of ms."""
    import django

    django.setup()
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model
    from django.db import connection

    from pam_hybrid.conversations import services
    from pam_hybrid.domain.answer import Answer

    user, _ = get_user_model().objects.get_or_create(username="bench")
    timings: dict[str, list[float]] = {"hop": [], "exchange_open": [], "answer_save": [], "fsync": []}

    def new_answer() -> Answer:
        answer = Answer(conversation_id=uuid.uuid4(), user_message_id=uuid.uuid4(), route="simple",
                        provider="anthropic", model="claude-sonnet-5-5", client_msg_id=uuid.uuid4().hex,
                        classification_ms=0.01)
        answer.attempts = [{"provider": provider, "model": "m", "error": "CircuitOpen",
                            "detail": f"{provider}: circuit open", "ms": 0.0} for provider in ("openai", "anthropic")]
        answer.fallback_from, answer.fallback_from_model = "openai", "gpt-4o-mini"
        answer.fallback_reason = "openai circuit open"
        answer.error = "The model provider is temporarily unavailable after repeated failures."
        answer.stream_log = [{"type": "stream", "chunk_type": "start", "content": "", "metadata": {"seq": 0}},
                             {"type": "stream", "chunk_type": "error", "content": answer.error,
                              "metadata": {"seq": 1}}]
        answer.total_ms = 0.5
        return answer

    def timed(name: str, started: float) -> None:
        timings[name].append((time.perf_counter() - started) * 1000)

    statements: dict[str, int] = {}

    def counted(name: str, function: Any) -> Any:
        """`function` counting the SQL statements it runs (the last call's count, in `statements`)."""

        def wrapper(**kwargs: Any) -> None:
            count = 0

            def count_statement(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
                nonlocal count
                count += 1
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count_statement):
                function(**kwargs)
            statements[name] = count

        return wrapper

    async def run() -> None:
        nothing = database_sync_to_async(lambda: None)
        opened = database_sync_to_async(counted("exchange_open", services.exchanges_open))
        saved = database_sync_to_async(counted("answer_save", services.answers_save))
        for index in range(count + 3):  # the first 3 are a warm-up
            answer = new_answer()
            started = time.perf_counter()
            await nothing()
            hop = time.perf_counter()
            await opened(exchanges=[services.Exchange(user, answer, f"{QUESTION} [bench:probe-{index}]")])
            between = time.perf_counter()
            await saved(saves=[services.AnswerSave(user, answer)])
            if index >= 3:
                timings["hop"].append((hop - started) * 1000)
                timings["exchange_open"].append((between - hop) * 1000)
                timed("answer_save", between)
        if hasattr(services, "exchange_save"):  # since e967e4f: the whole exchange in one transaction
            timings["exchange_save"] = []
            whole = database_sync_to_async(counted("exchange_save", services.exchange_save))
            for index in range(count + 3):
                answer = new_answer()
                started = time.perf_counter()
                await whole(user=user, answer=answer, content=f"{QUESTION} [bench:probe-one-{index}]")
                if index >= 3:
                    timed("exchange_save", started)

    asyncio.run(run())
    path = Path(directory) / "fsync-probe.bin"
    with open(path, "wb") as handle:
        for _ in range(count):
            handle.write(os.urandom(4096))
            started = time.perf_counter()
            handle.flush()
            os.fsync(handle.fileno())
            timed("fsync", started)
    path.unlink()
    print(json.dumps({**timings, "statements": statements}))


def run_db_probe(env: dict[str, str], count: int, directory: Path, timeout: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.breaker_open", "--db-probe", str(count), "--probe-dir", str(directory)]
    output = run_checked(command, env, timeout, "the database probe")
    return dict(json.loads(output.strip().splitlines()[-1]))


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    scenario: str
    tag: str
    sent: float = math.nan
    sent_wall: float = math.nan
    start: float | None = None
    error: float | None = None
    error_wall: float | None = None
    start_ts: float | None = None
    """Server wall-clock time the start chunk was made (its `timestamp`)."""
    error_ts: float | None = None
    total_ms: float | None = None
    """The error's metadata: the answer's creation → just before the error chunk was made."""
    content: str = ""
    code: str = ""
    failed_attempts: int | None = None
    failure: str | None = None
    busy_refusals: int = 0
    """`busy` refusals before the message was taken (see send_message)."""

    def error_ms(self) -> float | None:
        return None if self.error is None or self.failure else (self.error - self.sent) * 1000

    def start_ms(self) -> float | None:
        return None if self.start is None or self.failure else (self.start - self.sent) * 1000

    def pre_ms(self) -> float | None:
        """Client send → the answer created (server clock, from the error's timestamp minus total_ms)."""
        if self.failure or self.error_ts is None or self.total_ms is None:
            return None
        return (self.error_ts - self.sent_wall) * 1000 - self.total_ms

    def error_made_ms(self) -> float | None:
        """Client send → the error chunk made (server clock): pre + answer, everything but the saves and the send."""
        if self.failure or self.error_ts is None:
            return None
        return (self.error_ts - self.sent_wall) * 1000

    def answer_ms(self) -> float | None:
        return None if self.failure else self.total_ms

    def start_to_error_chunk_ms(self) -> float | None:
        """The start chunk made → the error chunk made (start sent, both breakers asked, error settled)."""
        if self.failure or self.error_ts is None or self.start_ts is None:
            return None
        return (self.error_ts - self.start_ts) * 1000

    def save_send_ms(self) -> float | None:
        """The error chunk made → the client has it (the two transactions, the log line, the frame)."""
        if self.failure or self.error_ts is None or self.error_wall is None:
            return None
        return (self.error_wall - self.error_ts) * 1000


@dataclass
class ScenarioResult:
    name: str
    label: str
    clients: int
    per_client: int
    samples: list[Sample] = field(default_factory=list)
    pings_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float | None = None
    backing_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    other_cpu_s: float | None = None
    loadavg_before: str = ""
    loadavg_after: str = ""

    @property
    def failures(self) -> int:
        return sum(1 for sample in self.samples if sample.failure)


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:4])
    return "-"


def iso_seconds(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def message_frame(tag: str) -> str:
    return json.dumps({
        "type": "message",
        "content": f"{QUESTION} [bench:{tag}]",
        "conversation_id": None,
        "stream": True,
        "route": "simple",
        "client_msg_id": uuid.uuid4().hex,
    })


BUSY_RETRY_S = 0.001
MAX_BUSY_REFUSALS = 100


async def send_message(ws: ClientConnection, sample: Sample, limit_s: float, expect_open: bool = True) -> None:
    """Send one message, read its frames up to `error` (or `end`): the start and the error timed.

    A `busy` refusal (the socket's previous answer not yet over on the server, though its last chunk has come)
    is counted in `sample.busy_refusals` and the message sent again 1 ms later, timed from that send."""
    async with asyncio.timeout(limit_s):
        while True:
            await _send_once(ws, sample, expect_open)
            if sample.code != "busy" or sample.busy_refusals >= MAX_BUSY_REFUSALS:
                return
            sample.busy_refusals += 1
            sample.failure, sample.code, sample.content, sample.start, sample.start_ts = None, "", "", None, None
            await asyncio.sleep(BUSY_RETRY_S)


async def _send_once(ws: ClientConnection, sample: Sample, expect_open: bool) -> None:
    frame = message_frame(sample.tag)
    sample.sent, sample.sent_wall = time.perf_counter(), time.time()
    await ws.send(frame)
    while True:
        raw = await ws.recv()
        now, now_wall = time.perf_counter(), time.time()
        data = json.loads(raw)
        kind = data.get("chunk_type") if data.get("type") == "stream" else data.get("type")
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        if kind == "start":
            sample.start, sample.start_ts = now, iso_seconds(data.get("timestamp"))
        elif kind == "error":
            sample.error, sample.error_wall = now, now_wall
            sample.error_ts = iso_seconds(data.get("timestamp"))
            sample.content, sample.code = str(data.get("content", "")), str(metadata.get("code", ""))
            total = metadata.get("total_ms")
            sample.total_ms = float(total) if isinstance(total, int | float) else None
            sample.failed_attempts = metadata.get("failed_attempts")
            if expect_open and OPEN_TEXT not in sample.content:
                sample.failure = f"error without {OPEN_TEXT!r}: {sample.code}: {sample.content[:80]}"
            elif sample.start is None and sample.code == "provider_error":
                sample.failure = "error without a start chunk"
            return
        elif kind in ("token", "tool_call", "end", "response"):
            sample.failure = f"got a {kind!r} frame: the breakers are not open"
            # Read on to the end of this answer, so the socket is free for the next message.
            if kind in ("end", "response"):
                return


async def run_client(ws: ClientConnection, samples: list[Sample], limit_s: float, think_s: float = 0.0) -> None:
    """Send the samples' messages one after another, `think_s` apart (after each error, before the next send)."""
    for index, sample in enumerate(samples):
        if index and think_s:
            await asyncio.sleep(think_s)
        try:
            await send_message(ws, sample, limit_s)
        except (TimeoutError, ConnectionClosed) as exc:
            sample.failure = "timeout" if isinstance(exc, TimeoutError) else f"socket closed: {exc}"
            for skipped in samples[index + 1:]:
                skipped.failure = "skipped after an earlier failure"
            return


async def ping_rtts(ws: ClientConnection, count: int, limit_s: float) -> list[float]:
    """Round trips of `ping` → `pong` on this socket, ms (the transport's floor)."""
    rtts = []
    async with asyncio.timeout(limit_s):
        for _ in range(count):
            sent = time.perf_counter()
            await ws.send('{"type":"ping"}')
            while json.loads(await ws.recv()).get("type") != "pong":
                pass
            rtts.append((time.perf_counter() - sent) * 1000)
    return rtts


async def run_scenario(result: ScenarioResult, target: Target, limit_s: float, pings: int,
                       think_s: float = 0.0) -> ScenarioResult:
    plans = [
        [Sample(result.name, f"{result.name}-{client:03d}-{index:04d}") for index in range(result.per_client)]
        for client in range(result.clients)
    ]
    server = target.servers[0]
    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(open_socket(stack, target, server) for _ in plans))
        if pings:
            result.pings_ms = await ping_rtts(sockets[0], pings, limit_s)
        result.loadavg_before = loadavg()
        cpu_before, reading_before = target.server_cpu_seconds()[0], target.cpu_reading()
        started = time.perf_counter()
        await asyncio.gather(*(
            run_client(ws, plan, limit_s, think_s) for ws, plan in zip(sockets, plans, strict=True)
        ))
        result.wall_s = time.perf_counter() - started
        reading_after, cpu_after = target.cpu_reading(), target.server_cpu_seconds()[0]
        result.loadavg_after = loadavg()
        result.client_cpu_s = reading_after.client - reading_before.client
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu_s = cpu_after - cpu_before
        if reading_before.backing is not None and reading_after.backing is not None:
            result.backing_cpu_s = reading_after.backing - reading_before.backing
        result.other_cpu_s = other_cpu_seconds(reading_before, reading_after, result.server_cpu_s)
    result.samples = [sample for plan in plans for sample in plan]
    return result


@dataclass
class Run:
    opener: Sample
    verify: Sample
    opened_by: list[dict[str, Any]]
    """The fake's records of the requests the opener made (expected: openai 503, anthropic 503)."""
    results: list[ScenarioResult]
    requests_before: int = 0
    requests_after: int = 0
    log_findings: dict[str, int] = field(default_factory=dict)
    db_probe: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_during(self) -> int:
        return self.requests_after - self.requests_before


async def open_breakers(target: Target, upstream: Upstream, limit_s: float) -> tuple[Sample, Sample, list[Any], int]:
    """The opener message (both providers 503) and the verify message (breakers open: no request)."""
    async with contextlib.AsyncExitStack() as stack:
        ws = await open_socket(stack, target, target.servers[0])
        opener = Sample("open", "open")
        await send_message(ws, opener, limit_s, expect_open=False)
        opened_by = upstream.recorded()["requests"]
        problems = []
        if opener.error is None or opener.code != "provider_error":
            problems.append(f"the opener message did not end with a provider_error ({opener.failure or opener.code})")
        statuses = sorted((record["provider"], record["status"]) for record in opened_by)
        if statuses != [("anthropic", 503), ("openai", 503)]:
            problems.append(f"the opener message's upstream requests were {statuses}, not one 503 per provider")
        verify = Sample("verify", "verify")
        await send_message(ws, verify, limit_s)
        after_verify = len(upstream.recorded()["requests"])
        if verify.failure:
            problems.append(f"verify message: {verify.failure}")
        if after_verify != len(opened_by):
            problems.append(f"the verify message reached the upstream ({after_verify - len(opened_by)} request(s))")
        if problems:
            raise BenchError("the breakers are not open: " + "; ".join(problems))
        return opener, verify, opened_by, after_verify


async def run_all(args: argparse.Namespace, target: Target, upstream: Upstream, limit_s: float) -> Run:
    async with asyncio.timeout(limit_s):
        print("opening both breakers ...", flush=True)
        opener, verify, opened_by, requests_before = await open_breakers(target, upstream, args.message_timeout)
        scenarios = [
            ScenarioResult("warmup", f"warm-up x {args.warmup} (not measured)", 1, args.warmup),
            ScenarioResult("sequential", f"1 client x {args.sequential} seq", 1, args.sequential),
            ScenarioResult("concurrent", f"{args.concurrent} clients x {args.per_client}", args.concurrent,
                           args.per_client),
        ]
        for scenario in scenarios:
            if scenario.clients and scenario.per_client:
                print(f"running: {scenario.label} ...", flush=True)
                pings = args.pings if scenario.name == "sequential" else 0
                await run_scenario(scenario, target, args.message_timeout, pings, args.think_ms / 1000)
        requests_after = len(upstream.recorded()["requests"])
    return Run(opener=opener, verify=verify, opened_by=opened_by, results=scenarios,
               requests_before=requests_before, requests_after=requests_after)


# --------------------------------------------------------------------------------------------------
# Set-up and tear-down
# --------------------------------------------------------------------------------------------------


def delete_redis_keys(prefix: str) -> int:
    """Delete this run's keys (breakers, claims, owners) from REDIS_URL; the number deleted."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return 0
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def cleanup_redis(prefix: str) -> None:
    try:
        print(f"deleted {delete_redis_keys(prefix)} Redis keys {prefix}*", flush=True)
    except Exception as exc:  # teardown goes on; the keys expire by themselves (the breakers' after ~2 h)
        print(f"could not delete the Redis keys {prefix}*: {exc}", file=sys.stderr)


def measure(args: argparse.Namespace, deadline: Deadline) -> Run:
    prefix = f"pam-bench-breaker-{secrets.token_hex(4)}:"
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pam-bench-breaker-")))
        print("starting the fake upstream, migrating, starting daphne ...", flush=True)
        upstream = stack.enter_context(running_upstream())
        env = server_env(upstream, workdir, debug=False)
        env.update(BREAKER_ENV, **LIMITS_ENV, PAM_REDIS_PREFIX=prefix)
        if os.environ.get("REDIS_URL"):
            stack.callback(cleanup_redis, prefix)
        migrate(env, min(deadline.remaining(), 120))
        session_key = create_session(env, min(deadline.remaining(), 60))
        log_paths = server_log_paths(args.server_log, workdir, 1)
        with running_daphnes(env, log_paths, min(deadline.remaining(), 60)) as servers:
            target = Target(servers=tuple(servers), session_key=session_key,
                            message_timeout_s=args.message_timeout, upstream_pid=upstream.process.pid,
                            backing_servers=local_backing_servers())
            run = asyncio.run(run_all(args, target, upstream, deadline.remaining()))
        run.log_findings = scan_logs(log_paths)
        if args.db_probe:
            print(f"timing the two saves outside the server ({args.db_probe} answers) ...", flush=True)
            run.db_probe = run_db_probe(env, args.db_probe, workdir, min(deadline.remaining(), 120))
        return run


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def scenario_stats(result: ScenarioResult) -> dict[str, Any]:
    samples, answered = result.samples, len(result.samples) - result.failures

    def per(seconds: float | None) -> float:
        return math.nan if seconds is None or not answered else seconds * 1000 / answered

    errors = present([s.error_ms() for s in samples])
    return {
        "label": result.label,
        "samples": len(samples),
        "failures": result.failures,
        "wall_s": result.wall_s,
        "error_ms": summary(errors),
        "start_ms": summary(present([s.start_ms() for s in samples])),
        "pre_ms": summary(present([s.pre_ms() for s in samples])),
        "answer_total_ms": summary(present([s.answer_ms() for s in samples])),
        "start_to_error_chunk_ms": summary(present([s.start_to_error_chunk_ms() for s in samples])),
        "save_send_ms": summary(present([s.save_send_ms() for s in samples])),
        "error_made_ms": summary(present([s.error_made_ms() for s in samples])),
        "over_target": sum(1 for value in errors if value >= TARGET_MS),
        "busy_refusals": sum(s.busy_refusals for s in samples),
        "messages_refused_busy": sum(1 for s in samples if s.busy_refusals),
        "ping_ms": summary(result.pings_ms),
        "server_cpu_ms_per_message": per(result.server_cpu_s),
        "backing_cpu_ms_per_message": per(result.backing_cpu_s),
        "client_cpu_ms_per_message": math.nan if not samples else result.client_cpu_s * 1000 / len(samples),
        "other_cpu_percent": (math.nan if result.other_cpu_s is None or not result.wall_s
                              else result.other_cpu_s * 100 / result.wall_s),
        "loadavg_before": result.loadavg_before,
        "loadavg_after": result.loadavg_after,
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([26, *(len(row[0]) + 2 for row in rows)])] + [
        max(8, len(cell) + 2, *(len(row[index]) + 2 for row in rows)) for index, cell in enumerate(header) if index
    ]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return f"{first:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))

    return [line(header)] + [line(row) for row in rows]


def _quad(entry: dict[str, float]) -> list[str]:
    return [_ms(entry["median"]), _ms(entry["p90"]), _ms(entry["p99"]), _ms(entry["max"])]


def render_report(run: Run, stats: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    measured = {name: entry for name, entry in stats.items() if name != "warmup"}
    database = (os.environ.get("DATABASE_URL") or "temporary sqlite").split(":", 1)[0]
    breakers = "Redis" if os.environ.get("REDIS_URL") else "in process"
    lines = [
        f"Open breakers: message sent -> its error chunk, ms (database {database}, breakers {breakers}, "
        f"1 daphne process, DEBUG off, clients pause {args.think_ms:g} ms between messages)",
        *_table(
            ["scenario", "samples", "median", "p90", "p99", "max", f">={TARGET_MS:g}ms", "failed", "srv CPU ms/msg",
             "pg+redis ms/msg", "others %CPU"],
            [[entry["label"], str(entry["samples"]), *_quad(entry["error_ms"]), str(entry["over_target"]),
              str(entry["failures"]), _ms(entry["server_cpu_ms_per_message"]),
              _ms(entry["backing_cpu_ms_per_message"]), _ms(entry["other_cpu_percent"])]
             for entry in stats.values()],
        ),
        "",
        "message sent -> its start chunk, ms",
        *_table(["scenario", "median", "p90", "p99", "max"],
                [[entry["label"], *_quad(entry["start_ms"])] for entry in stats.values()]),
        "",
        "where the time goes, medians (p99), ms: pre = sent -> answer created; answer = the error's total_ms "
        "(start chunk made and sent, both breakers asked); start->error = start chunk made -> error chunk made; "
        "save+send = error chunk made -> client has it (the saves if the server makes them first, the frame); "
        "sent->error made = pre + answer (everything but the saves and the send)",
        *_table(["scenario", "pre", "answer", "start->error", "save+send", "sent->error made"],
                [[entry["label"], *(f"{_ms(entry[key]['median'])} ({_ms(entry[key]['p99'])})"
                                    for key in ("pre_ms", "answer_total_ms", "start_to_error_chunk_ms",
                                                "save_send_ms", "error_made_ms"))]
                 for entry in stats.values()]),
        "",
    ]
    if args.pings and "sequential" in measured:
        ping = measured["sequential"]["ping_ms"]
        lines.append(f"ping -> pong on the same socket ({args.pings}x, before the sequential scenario): median "
                     f"{_ms(ping['median'])}, p99 {_ms(ping['p99'])} ms")
    if run.db_probe:
        probe = {name: summary(values) for name, values in run.db_probe.items() if name != "statements"}
        statements = run.db_probe.get("statements", {})
        where = "the temporary directory" if not os.environ.get("DATABASE_URL") else "the temporary directory (not "\
            "PostgreSQL's)"
        lines.append(
            f"database probe ({args.db_probe} open-breaker answers saved outside the server, after it stopped; "
            "median / p90 / max ms): "
            + "; ".join(f"{label} {_ms(probe[key]['median'])} / {_ms(probe[key]['p90'])} / {_ms(probe[key]['max'])}"
                        for key, label in (("hop", "thread hop"),
                                           ("exchange_open", f"exchange_open (tx 1, {statements.get('exchange_open')} "
                                                             "SQL statements)"),
                                           ("answer_save", f"answer_save (tx 2, {statements.get('answer_save')} "
                                                           "SQL statements)")))
            + ("" if "exchange_save" not in probe else
               f"; exchange_save (both in one transaction, {statements.get('exchange_save')} SQL statements) "
               f"{_ms(probe['exchange_save']['median'])} / {_ms(probe['exchange_save']['p90'])} / "
               f"{_ms(probe['exchange_save']['max'])}")
            + f"; a 4 KiB write + fsync in {where}: {_ms(probe['fsync']['median'])} / {_ms(probe['fsync']['p90'])}"
            f" / {_ms(probe['fsync']['max'])}")
    opened = ", ".join(f"{record['provider']} HTTP {record['status']}" for record in run.opened_by)
    lines += [
        f"opener message: {_ms(run.opener.error_ms() if not run.opener.failure else None)} ms, upstream: {opened}; "
        f"its error: {run.opener.content[:90]!r}",
        f"verify message: {_ms(run.verify.error_ms())} ms, error: {run.verify.content[:90]!r}, "
        f"failed_attempts {run.verify.failed_attempts}, upstream requests {run.requests_before} before and after",
        f"upstream requests during warm-up + measurement: {run.requests_during} (must be 0)",
        "load (/proc/loadavg 1/5/15 min, running/total) before -> after: "
        + "; ".join(f"{entry['label']}: {entry['loadavg_before']} -> {entry['loadavg_after']}"
                    for entry in stats.values()),
        "busy refusals (the previous answer's error chunk had come, yet the next message was refused as busy; "
        f"sent again {BUSY_RETRY_S * 1000:g} ms later): "
        + ", ".join(f"{entry['label']} {entry['busy_refusals']} (of {entry['messages_refused_busy']} messages)"
                    for entry in stats.values()),
        "benchmark client CPU ms/msg: " + ", ".join(
            f"{entry['label']} {_ms(entry['client_cpu_ms_per_message'])}" for entry in measured.values()),
        "daphne log: " + ", ".join(f"{count} {name}" for name, count in run.log_findings.items())
        + " (3 WARNING lines per message are expected: two attempts refused by the breakers, the answer failed)",
        "",
    ]
    reasons = Counter(s.failure for result in run.results for s in result.samples if s.failure)
    lines += [f"failed  {count} x {reason}" for reason, count in reasons.most_common()]
    for entry in measured.values():
        p99 = entry["error_ms"]["p99"]
        met = p99 < TARGET_MS and not entry["failures"]
        lines.append(f"target  {entry['label']}: p99 error chunk < {TARGET_MS:g} ms: {_ms(p99)} ms "
                     f"(median {_ms(entry['error_ms']['median'])}, {entry['over_target']} of {entry['samples']} "
                     f"at or over)  {'MET' if met else 'NOT MET'}")
    return "\n".join(lines)


def report(args: argparse.Namespace, run: Run) -> bool:
    stats = {result.name: scenario_stats(result) for result in run.results if result.samples}
    print()
    print(render_report(run, stats, args))
    if args.json:
        payload = {
            "config": {**vars(args), "json": str(args.json), "server_log": str(args.server_log),
                       "database": os.environ.get("DATABASE_URL", "temporary sqlite").split("@")[-1],
                       "redis": bool(os.environ.get("REDIS_URL")), "env": {**BREAKER_ENV, **LIMITS_ENV},
                       "cpus": os.cpu_count(),
                       "date": datetime.now().astimezone().isoformat(timespec="seconds")},
            "upstream_requests_during": run.requests_during,
            "opened_by": run.opened_by,
            "log_findings": run.log_findings,
            "db_probe": {name: values if name == "statements" else summary(values)
                         for name, values in run.db_probe.items()},
            "scenarios": stats,
            "samples": [asdict(sample) for result in run.results for sample in result.samples],
        }
        args.json.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
    failures = sum(result.failures for result in run.results)
    ok = failures == 0 and run.requests_during == 0
    if args.check:
        ok = ok and all(entry["error_ms"]["p99"] < TARGET_MS for name, entry in stats.items() if name != "warmup")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/breaker_open.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=200, help="messages sent by the single client (200)")
    parser.add_argument("--concurrent", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--per-client", type=int, default=10, help="messages per concurrent client (10)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured messages sent first (20)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="pause of each client between an error and its next message (0: at once)")
    parser.add_argument("--pings", type=int, default=50, help="ping round trips timed before the sequential run")
    parser.add_argument("--timeout", type=float, default=180.0, help="overall time limit, seconds (180)")
    parser.add_argument("--message-timeout", type=float, default=15.0, help="per-message limit, seconds (15)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results and samples here")
    parser.add_argument("--server-log", type=Path, metavar="PATH", help="keep daphne's output in this file")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a p99 is not under {TARGET_MS:g} ms")
    parser.add_argument("--db-probe", type=int, default=50, metavar="N",
                        help="after the run, time the two saves of N answers outside the server (50; 0: skip)")
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.sequential, args.concurrent, args.per_client, args.warmup, args.pings, args.db_probe,
           args.think_ms) < 0:
        parser.error("counts must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_upstream:
        serve_upstream()
        return 0
    if args.probe_dir:
        db_probe(args.db_probe, args.probe_dir)
        return 0
    run = measured(measure, args)
    if isinstance(run, int):
        return run
    return 0 if report(args, run) else 1


if __name__ == "__main__":
    sys.exit(main())
