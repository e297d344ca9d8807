"""Time-to-first-token benchmark: how much latency the gateway adds to the upstream's own first token.

It starts everything itself, on 127.0.0.1 only:

1. the fake upstream (``bench/upstream.py``: 200 ms to the first token, 20 ms between tokens by default),
   in a process of its own;
2. a migrated database (a temporary SQLite file, or ``DATABASE_URL`` if set; ``REDIS_URL`` is passed on
   too, so the figures can be taken on PostgreSQL + Redis), a user and a logged-in session for it;
3. the server as in production (``DEBUG=false``, a random ``SECRET_KEY`` made for the run; ``--debug`` for
   ``DEBUG=true``): ``--processes`` daphne processes (1 by default) on free ports, sharing the database (and
   the Redis channel layer if ``REDIS_URL`` is set), their OpenAI and Anthropic base URLs pointed at the fake.

Then it warms up (a few messages to each process, one process after the other, not measured), and runs two
scenarios over the chat WebSocket:

* one client sending ``--sequential`` messages one after another, to process 0;
* ``--concurrent`` clients, connected first and then started together, each sending ``--per-client``
  messages one after another; client i talks to process i % ``--processes``.

For each message, the added time to first token is the client's (first ``token`` frame − send) minus
the upstream's configured ``--ttft-ms``: that is the figure the targets apply to (median under 10 ms for one
client, p99 under 100 ms at 50 clients). It is also computed against the upstream's own recorded times
(its first token − its receipt of the request) and split into "in" (client send → upstream receipt) and
"out" (upstream first token → client), which tells where added time goes. The CPU time the daphne processes
used per message (all threads of all processes, from /proc) is reported too: unlike latencies, it hardly
depends on what else runs on the machine. The fake upstream and the clients run on the same machine as the
server and compete with it for the same cores; the report says how many there are. The daphne logs are
scanned for "database is locked", tracebacks and ERROR lines.

Everything is torn down on exit (daphne terminated, the fake stopped, the temporary directory removed),
also on Ctrl-C, SIGTERM, error or the overall ``--timeout``; the children also get SIGTERM if this process
is killed outright (Linux). Exit status: 0 when every message was answered (and, with ``--check``, the
targets were met), 1 otherwise, 130 when interrupted.

Run from the repository root: ``.venv/bin/python bench/ttft.py [--json results.json]`` or ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    HOST,
    BenchError,
    CpuPlan,
    Deadline,
    Server,
    Upstream,
    _finite,
    channel_layer_name,
    cpu_plan,
    create_session,
    database_name,
    host_busy_seconds,
    load_average,
    local_backing_servers,
    migrate,
    named_processes_cpu_seconds,
    present,
    process_cpu_seconds,
    raise_keyboard_interrupt,
    run_checked,  # noqa: F401 (bench/breaker_open.py imports it from here)
    running_daphnes,
    running_fake,
    scan_logs,
    server_env,
    server_log_paths,
    summary,
    upstream_command,
)

QUESTION = "What is the capital of France?"
TARGET_SEQUENTIAL_MEDIAN_MS = 10.0
TARGET_CONCURRENT_P99_MS = 100.0
TARGET_CONCURRENT_CLIENTS = 50


R = TypeVar("R")


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One message: the client's readings (perf_counter for the figures, monotonic to match the fake's)."""

    scenario: str
    tag: str
    sent: float = math.nan
    sent_mono: float = math.nan
    first_token: float | None = None
    first_token_mono: float | None = None
    ended: float | None = None
    tokens: int = 0
    error: str | None = None
    upstream_received: float | None = None
    upstream_first_token: float | None = None
    process: int = 0
    """Index of the daphne process the message went to."""

    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.sent) * 1000

    def added_ms(self, configured_ttft_ms: float) -> float | None:
        """Client-seen TTFT minus the upstream's configured TTFT (the figure the targets apply to)."""
        ttft = self.ttft_ms()
        return None if ttft is None else ttft - configured_ttft_ms

    def inbound_ms(self) -> float | None:
        """Client send → the upstream has the request."""
        if self.upstream_received is None:
            return None
        return (self.upstream_received - self.sent_mono) * 1000

    def outbound_ms(self) -> float | None:
        """The upstream sent its first token → the client has it."""
        if self.upstream_first_token is None or self.first_token_mono is None:
            return None
        return (self.first_token_mono - self.upstream_first_token) * 1000

    def added_vs_recorded_ms(self) -> float | None:
        """Client-seen TTFT minus the upstream's recorded TTFT (= inbound + outbound)."""
        inbound, outbound = self.inbound_ms(), self.outbound_ms()
        return None if inbound is None or outbound is None else inbound + outbound


@dataclass
class ScenarioResult:
    name: str
    label: str
    clients: int
    per_client: int
    one_at_a_time: bool = False
    """Run the clients one after another instead of together (the warm-up: each process in turn)."""
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float | None = None
    """CPU time the daphne processes used during the scenario (Linux /proc), all threads, summed."""
    server_cpu_by_process_s: list[float | None] = field(default_factory=list)
    client_cpu_s: float = 0.0
    """CPU time this benchmark process used during the scenario."""
    upstream_cpu_s: float | None = None
    """CPU time the fake upstream used during the scenario: its work sits inside the measured "in" and "out"."""
    backing_cpu_s: float | None = None
    """CPU time the local PostgreSQL and Redis servers used during the scenario (None when neither is local)."""
    other_cpu_s: float | None = None
    """CPU time the rest of the host used during the scenario: all CPUs' busy time (/proc/stat) minus that of
    the daphne processes, the fake upstream, this process and the local PostgreSQL/Redis servers. Anything else
    running shows here."""

    @property
    def errors(self) -> int:
        return sum(1 for sample in self.samples if sample.error is not None)


# --------------------------------------------------------------------------------------------------
# Processes: the fake upstream, migrate, the session, daphne
# --------------------------------------------------------------------------------------------------


def running_upstream(args: argparse.Namespace) -> contextlib.AbstractContextManager[Upstream]:
    return running_fake(upstream_command(args.ttft_ms, args.token_delay_ms, args.tokens))


# --------------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far: the whole host busy, the fake upstream, this process, the local PostgreSQL/Redis."""

    host_busy: float | None
    upstream: float | None
    client: float
    backing: float | None


@dataclass(frozen=True)
class Target:
    """Where and how the clients connect."""

    servers: tuple[Server, ...]
    session_key: str
    message_timeout_s: float
    upstream_pid: int
    backing_servers: tuple[str, ...] = ()
    """Process names of the local PostgreSQL/Redis servers (their CPU is the server's work too)."""

    def server_for(self, client: int) -> Server:
        """Client i talks to process i % N (round robin, as a proxy in front of N processes would)."""
        return self.servers[client % len(self.servers)]

    def server_cpu_seconds(self) -> list[float | None]:
        return [process_cpu_seconds(server.pid) for server in self.servers]

    def cpu_reading(self) -> CpuReading:
        return CpuReading(
            host_busy=host_busy_seconds(),
            upstream=process_cpu_seconds(self.upstream_pid),
            client=time.process_time(),
            backing=named_processes_cpu_seconds(self.backing_servers),
        )


def message_frame(tag: str) -> str:
    return json.dumps({
        "type": "message",
        "content": f"{QUESTION} [bench:{tag}]",
        "conversation_id": None,
        "stream": True,
        "route": "simple",
        "client_msg_id": uuid.uuid4().hex,
    })


def frame_kind(raw: str | bytes) -> tuple[str, str]:
    """(kind, error text) of a frame: the stream chunk type, or the frame type for anything else."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        return "unknown", ""
    kind = data.get("chunk_type") if data.get("type") == "stream" else data.get("type")
    metadata = data.get("metadata")
    detail = (metadata.get("code") if isinstance(metadata, dict) else None) or data.get("content") or ""
    return str(kind), str(detail)


async def send_message(ws: ClientConnection, sample: Sample, limit_s: float) -> None:
    """Send one message and read its answer up to `end` (or `error`), timing the first token."""
    frame = message_frame(sample.tag)
    sample.sent, sample.sent_mono = time.perf_counter(), time.monotonic()
    await ws.send(frame)
    async with asyncio.timeout(limit_s):
        while True:
            raw = await ws.recv()
            now, now_mono = time.perf_counter(), time.monotonic()
            kind, detail = frame_kind(raw)
            if kind == "token":
                sample.tokens += 1
                if sample.first_token is None:
                    sample.first_token, sample.first_token_mono = now, now_mono
            elif kind == "end":
                sample.ended = now
                return
            elif kind == "error":
                sample.error = f"error frame: {detail}"
                return


async def run_client(ws: ClientConnection, samples: list[Sample], limit_s: float) -> None:
    """Send the samples' messages one after another; after a timeout or a closed socket, skip the rest."""
    for index, sample in enumerate(samples):
        try:
            await send_message(ws, sample, limit_s)
        except (TimeoutError, ConnectionClosed) as exc:
            sample.error = "timeout" if isinstance(exc, TimeoutError) else f"socket closed: {exc}"
            for skipped in samples[index + 1:]:
                skipped.error = "skipped after an earlier failure"
            return


async def open_socket(stack: contextlib.AsyncExitStack, target: Target, server: Server) -> ClientConnection:
    ws = await stack.enter_async_context(connect(
        f"ws://{HOST}:{server.port}/ws/chat/",
        origin=Origin(f"http://{HOST}:{server.port}"),
        additional_headers={"Cookie": f"sessionid={target.session_key}"},
        proxy=None,
        open_timeout=10,
    ))
    return ws


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def other_cpu_seconds(before: CpuReading, after: CpuReading, server_cpu_s: float | None) -> float | None:
    """Busy CPU time of the host between two readings, minus the daphne processes', the fake's, ours and the
    local PostgreSQL/Redis servers'."""
    busy, upstream = _delta(before.host_busy, after.host_busy), _delta(before.upstream, after.upstream)
    if busy is None or upstream is None or server_cpu_s is None:
        return None
    own = server_cpu_s + upstream + (after.client - before.client) + (_delta(before.backing, after.backing) or 0.0)
    return max(0.0, busy - own)


async def run_scenario(result: ScenarioResult, target: Target) -> ScenarioResult:
    """Connect all clients first, then start them together (or one after another, for the warm-up).

    Client i talks to daphne process i % N. Fills result.samples, the wall time and the CPU times.
    """
    plans = [
        [
            Sample(result.name, f"{result.name}-{client:03d}-{index:04d}", process=target.server_for(client).index)
            for index in range(result.per_client)
        ]
        for client in range(result.clients)
    ]
    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(open_socket(stack, target, target.server_for(c)) for c in range(len(plans))))
        server_cpu, host_before = target.server_cpu_seconds(), target.cpu_reading()
        started = time.perf_counter()
        if result.one_at_a_time:
            for ws, plan in zip(sockets, plans, strict=True):
                await run_client(ws, plan, target.message_timeout_s)
        else:
            await asyncio.gather(*(
                run_client(ws, plan, target.message_timeout_s) for ws, plan in zip(sockets, plans, strict=True)
            ))
        result.wall_s = time.perf_counter() - started
        host_after, server_cpu_end = target.cpu_reading(), target.server_cpu_seconds()
        result.client_cpu_s = host_after.client - host_before.client
        result.upstream_cpu_s = _delta(host_before.upstream, host_after.upstream)
        result.backing_cpu_s = _delta(host_before.backing, host_after.backing)
        result.server_cpu_by_process_s = [
            None if before is None or after is None else after - before
            for before, after in zip(server_cpu, server_cpu_end, strict=True)
        ]
        if all(cpu is not None for cpu in result.server_cpu_by_process_s):
            result.server_cpu_s = sum(cpu for cpu in result.server_cpu_by_process_s if cpu is not None)
        result.other_cpu_s = other_cpu_seconds(host_before, host_after, result.server_cpu_s)
    result.samples = [sample for plan in plans for sample in plan]
    return result


async def run_all(args: argparse.Namespace, target: Target, limit_s: float) -> list[ScenarioResult]:
    """Warm-up, then the sequential and the concurrent scenario, within `limit_s` seconds overall."""
    scenarios = [
        ScenarioResult("warmup", "warm-up (not measured)", args.processes, args.warmup, one_at_a_time=True),
        ScenarioResult("sequential", f"1 client x {args.sequential} seq", 1, args.sequential),
        ScenarioResult("concurrent", f"{args.concurrent} clients x {args.per_client}", args.concurrent,
                       args.per_client),
    ]
    async with asyncio.timeout(limit_s):
        for scenario in scenarios:
            if scenario.clients and scenario.per_client:
                print(f"running: {scenario.label} ...", flush=True)
                await run_scenario(scenario, target)
    return scenarios


def attach_upstream_times(results: list[ScenarioResult], recorded: list[dict[str, Any]]) -> None:
    """Match each sample to the fake's record of its request, by the tag in the message text."""
    by_tag = {record["tag"]: record for record in recorded if record.get("tag")}
    for result in results:
        for sample in result.samples:
            record = by_tag.get(sample.tag)
            if record is not None:
                sample.upstream_received = record["received_at"]
                sample.upstream_first_token = record["first_token_at"]


@dataclass
class Run:
    """Everything one benchmark run produced."""

    results: list[ScenarioResult]
    upstream_requests: int = 0
    upstream_connections: int = 0
    load_before: float = math.nan
    load_after: float = math.nan
    processes: int = 1
    log_findings: dict[str, int] = field(default_factory=dict)
    """Lines of the daphne logs matching each of LOG_PATTERNS, all processes together."""
    pinning: CpuPlan | None = None


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def scenario_stats(result: ScenarioResult, configured_ttft_ms: float) -> dict[str, Any]:
    samples = result.samples
    answered = len(samples) - result.errors
    cpu = result.server_cpu_s
    return {
        "label": result.label,
        "clients": result.clients,
        "per_client": result.per_client,
        "samples": len(samples),
        "errors": result.errors,
        "wall_s": result.wall_s,
        "server_cpu_ms_per_message": math.nan if cpu is None or not answered else cpu * 1000 / answered,
        "server_cpu_s_by_process": result.server_cpu_by_process_s,
        "samples_by_process": [
            sum(1 for sample in samples if sample.process == index)
            for index in range(len(result.server_cpu_by_process_s))
        ],
        "client_cpu_s": result.client_cpu_s,
        "client_cpu_ms_per_message": math.nan if not samples else result.client_cpu_s * 1000 / len(samples),
        "upstream_cpu_ms_per_message": (
            math.nan if result.upstream_cpu_s is None or not samples else result.upstream_cpu_s * 1000 / len(samples)
        ),
        "backing_cpu_ms_per_message": (
            math.nan if result.backing_cpu_s is None or not answered else result.backing_cpu_s * 1000 / answered
        ),
        "other_cpu_s": result.other_cpu_s,
        "other_cpu_percent": (
            math.nan if result.other_cpu_s is None or not result.wall_s else result.other_cpu_s * 100 / result.wall_s
        ),
        "added_ms": summary(present([sample.added_ms(configured_ttft_ms) for sample in samples])),
        "added_vs_recorded_ms": summary(present([sample.added_vs_recorded_ms() for sample in samples])),
        "inbound_ms": summary(present([sample.inbound_ms() for sample in samples])),
        "outbound_ms": summary(present([sample.outbound_ms() for sample in samples])),
        "upstream_ttft_ms": summary(present([
            (s.upstream_first_token - s.upstream_received) * 1000
            for s in samples if s.upstream_first_token is not None and s.upstream_received is not None
        ])),
    }


def target_checks(stats: dict[str, dict[str, Any]], clients: int) -> list[tuple[str, float, float, bool]]:
    """(description, measured, limit, met) for each target whose scenario ran; a failed message misses it."""
    checks = []
    if "sequential" in stats:
        measured = stats["sequential"]["added_ms"]["median"]
        limit = TARGET_SEQUENTIAL_MEDIAN_MS
        description = "1 client: median added TTFT" + _failures_note(stats["sequential"])
        checks.append((description, measured, limit, measured < limit and not stats["sequential"]["errors"]))
    if "concurrent" in stats:
        measured = stats["concurrent"]["added_ms"]["p99"]
        limit = TARGET_CONCURRENT_P99_MS
        note = "" if clients == TARGET_CONCURRENT_CLIENTS else f" (the target is for {TARGET_CONCURRENT_CLIENTS})"
        description = f"{clients} clients: p99 added TTFT{note}" + _failures_note(stats["concurrent"])
        checks.append((description, measured, limit, measured < limit and not stats["concurrent"]["errors"]))
    return checks


def _failures_note(entry: dict[str, Any]) -> str:
    errors = entry["errors"]
    return f" (answered messages only; {errors} of {entry['samples']} failed)" if errors else ""


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return f"{first:<{widths[0]}}" + "".join(f"{cell:>{width}}" for cell, width in zip(rest, widths[1:], strict=True))


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([24, *(len(row[0]) + 2 for row in rows)])] + [max(8, len(cell) + 2) for cell in header[1:]]
    return [_row(header, widths)] + [_row(row, widths) for row in rows]


def added_table(measured: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for entry in measured.values():
        added = entry["added_ms"]
        rows.append([
            entry["label"], str(entry["samples"]), _ms(added["median"]), _ms(added["p90"]), _ms(added["p99"]),
            _ms(added["max"]), f"{entry['wall_s']:.1f}", str(entry["errors"]), _ms(entry["server_cpu_ms_per_message"]),
            _ms(entry["backing_cpu_ms_per_message"]), _pct(entry["other_cpu_percent"]),
        ])
    header = ["scenario", "samples", "median", "p90", "p99", "max", "total s", "errors", "srv CPU ms/msg",
              "pg+redis ms/msg", "others %CPU"]
    return _table(header, rows)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def recorded_table(measured: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for entry in measured.values():
        recorded, inbound, outbound = entry["added_vs_recorded_ms"], entry["inbound_ms"], entry["outbound_ms"]
        rows.append([
            entry["label"], _ms(recorded["median"]), _ms(recorded["p90"]), _ms(recorded["p99"]), _ms(recorded["max"]),
            _ms(inbound["median"]), _ms(inbound["p99"]), _ms(outbound["median"]), _ms(outbound["p99"]),
        ])
    return _table(["scenario", "median", "p90", "p99", "max", "in med", "in p99", "out med", "out p99"], rows)


BUSY_OTHERS_PERCENT = 10.0
"""Above this share of one core used by other processes during a scenario, the report warns of noisy figures."""


def host_lines(run: Run, measured: dict[str, dict[str, Any]]) -> list[str]:
    cpus = os.cpu_count() or 1
    servers = "the daphne process" if run.processes == 1 else f"the {run.processes} daphne processes"
    share = (
        f"host: {cpus} CPUs, shared by {servers}, the fake upstream and the benchmark clients "
        "(all on this machine, competing for the same cores)"
    ) if run.pinning is None else f"host: {cpus} CPUs, {run.pinning.describe()}"
    load = f"load average {run.load_before:.1f} before the run, {run.load_after:.1f} after"
    others = [entry["other_cpu_percent"] for entry in measured.values()]
    if run.load_before >= cpus / 2 or any(value > BUSY_OTHERS_PERCENT for value in others):
        load += " (other processes were busy: expect noisy, pessimistic figures)"
    gauge = ", ".join(f"{entry['label']} {_ms(entry['client_cpu_ms_per_message'])}" for entry in measured.values())
    speed = (
        f"benchmark client CPU ms/msg: {gauge} (the same work in every run: where it differs between runs, "
        "the machine ran at another speed)"
    )
    upstream = ", ".join(
        f"{entry['label']} {_ms(entry['upstream_cpu_ms_per_message'])}" for entry in measured.values()
    )
    fake = f"fake upstream CPU ms/msg: {upstream} (part of the measured time whenever it waits for a core)"
    return [share, load, speed, fake]


def log_line(run: Run) -> str:
    findings = ", ".join(f"{count} {name}" for name, count in run.log_findings.items())
    servers = "1 process" if run.processes == 1 else f"{run.processes} processes"
    return f"daphne logs ({servers}): {findings}"


def warmup_line(config: dict[str, Any]) -> str:
    by_process = config["warmup_added_ms_by_process"]
    if len(by_process) == 1:
        return f"warm-up (not measured), added ms per message in order: {by_process[0]}"
    listed = "; ".join(f"process {index}: {values}" for index, values in enumerate(by_process))
    return f"warm-up (not measured, one process after the other), added ms per message in order: {listed}"


def error_lines(run: Run) -> list[str]:
    """One line per distinct failure, with its count (none when every message was answered)."""
    reasons = Counter(sample.error for result in run.results for sample in result.samples if sample.error)
    return [f"failed  {count} x {reason}" for reason, count in reasons.most_common()] + ([""] if reasons else [])


def render_report(run: Run, stats: dict[str, dict[str, Any]], config: dict[str, Any], clients: int) -> str:
    measured = {name: value for name, value in stats.items() if name != "warmup"}
    lines = [
        f"Added time to first token, ms = client-seen TTFT - the upstream's configured {config['ttft_ms']:g} ms "
        f"({config['token_delay_ms']:g} ms/token, {config['tokens']} tokens/answer; database {config['database']}, "
        f"channel layer {config['channel_layer']}, {_processes(config['processes'])}, "
        f"DEBUG {'on' if config['debug'] else 'off'})",
        *added_table(measured),
        "srv CPU: all daphne processes together; pg+redis: the local PostgreSQL and Redis servers "
        "(- when neither is local); others %CPU: the rest of the host meanwhile (all CPUs' busy time minus "
        "daphne's, pg+redis, the fake's and the clients'), % of one core",
        "",
        "Against the upstream's recorded times, ms (client TTFT - upstream's own TTFT = in + out; "
        "in: client send -> upstream has the request; out: upstream sent the first token -> client has it)",
        *recorded_table(measured),
        "",
        warmup_line(config),
        f"upstream: {run.upstream_requests} requests over {run.upstream_connections} connections",
        *host_lines(run, measured),
        log_line(run),
        "",
    ]
    lines += error_lines(run)
    for description, value, limit, met in target_checks(stats, clients):
        lines.append(f"target  {description} < {limit:g} ms: {_ms(value)} ms  {'MET' if met else 'NOT MET'}")
    return "\n".join(lines)


def _processes(count: int) -> str:
    return "1 daphne process" if count == 1 else f"{count} daphne processes (round robin)"


def build_config(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    warmup = next((result for result in run.results if result.name == "warmup"), None)
    return {
        "ttft_ms": args.ttft_ms,
        "token_delay_ms": args.token_delay_ms,
        "tokens": args.tokens,
        "sequential": args.sequential,
        "concurrent": args.concurrent,
        "per_client": args.per_client,
        "warmup": args.warmup,
        "database": database_name(),
        "channel_layer": channel_layer_name(),
        "processes": args.processes,
        "debug": args.debug,
        "cpus": os.cpu_count(),
        "same_machine": "the daphne processes, the fake upstream and the clients share the host's CPUs"
        if run.pinning is None else run.pinning.describe(),
        "server_log_findings": run.log_findings,
        "load_before": run.load_before,
        "load_after": run.load_after,
        "upstream_requests": run.upstream_requests,
        "upstream_connections": run.upstream_connections,
        "warmup_added_ms_by_process": [
            [
                None if (added := sample.added_ms(args.ttft_ms)) is None else round(added, 1)
                for sample in (warmup.samples if warmup else []) if sample.process == index
            ]
            for index in range(args.processes)
        ],
    }


def write_json(path: Path, config: dict[str, Any], stats: dict[str, Any], results: list[ScenarioResult]) -> None:
    payload = {
        "config": config,
        "targets": {
            "sequential_median_ms": TARGET_SEQUENTIAL_MEDIAN_MS,
            "concurrent_p99_ms": TARGET_CONCURRENT_P99_MS,
        },
        "scenarios": stats,
        "samples": [
            {**asdict(sample), "added_ms": sample.added_ms(config["ttft_ms"]),
             "added_vs_recorded_ms": sample.added_vs_recorded_ms()}
            for result in results for sample in result.samples
        ],
    }
    path.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/ttft.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=50, help="messages sent by the single client (50)")
    parser.add_argument("--concurrent", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--per-client", type=int, default=4, help="messages per concurrent client (4)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured messages sent first, per process (3)")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="upstream delay to the first token (200)")
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="upstream delay between tokens (20)")
    parser.add_argument("--tokens", type=int, default=20, help="answer length in tokens (20)")
    parser.add_argument("--timeout", type=float, default=300.0, help="overall time limit, seconds (300)")
    parser.add_argument("--message-timeout", type=float, default=30.0, help="per-answer time limit, seconds (30)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results and samples here")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a target is not met")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="daphne processes; client i talks to process i %% N (1)")
    parser.add_argument("--debug", action="store_true", help="run the server with DEBUG=true (default: false)")
    parser.add_argument("--pin", action="store_true",
                        help="give each daphne process a CPU of its own, the fake upstream and the clients the rest "
                             "(Linux; needs more CPUs than --processes)")
    parser.add_argument("--server-log", type=Path, metavar="PATH",
                        help="keep daphne's output: this file with 1 process; with several, this directory "
                             "(daphne-<i>.log for process i)")
    args = parser.parse_args(argv)
    if min(args.sequential, args.concurrent, args.per_client, args.warmup) < 0 or args.tokens < 1:
        parser.error("counts must be >= 0 and --tokens >= 1")
    if args.processes < 1:
        parser.error("--processes must be >= 1")
    return args


def measure(args: argparse.Namespace, deadline: Deadline) -> Run:
    """Set everything up, run the scenarios, tear everything down; returns the results with upstream times."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pam-bench-")))
        plan = cpu_plan(args.processes) if args.pin else None
        if plan is not None:
            # Inherited by the fake upstream and the set-up commands started from here.
            stack.callback(os.sched_setaffinity, 0, os.sched_getaffinity(0))
            os.sched_setaffinity(0, plan.rest)
            print(plan.describe(), flush=True)
        print("starting the fake upstream, migrating, starting daphne ...", flush=True)
        upstream = stack.enter_context(running_upstream(args))
        env = server_env(upstream, workdir, args.debug)
        migrate(env, min(deadline.remaining(), 120))
        session_key = create_session(env, min(deadline.remaining(), 60))
        log_paths = server_log_paths(args.server_log, workdir, args.processes)
        with running_daphnes(env, log_paths, min(deadline.remaining(), 60), plan) as servers:
            target = Target(servers=tuple(servers), session_key=session_key,
                            message_timeout_s=args.message_timeout, upstream_pid=upstream.process.pid,
                            backing_servers=local_backing_servers())
            load_before = load_average()
            results = asyncio.run(run_all(args, target, deadline.remaining()))
            load_after = load_average()
        # The daphne processes have stopped (their logs are complete); the temporary directory is still there.
        recorded = upstream.recorded()
        attach_upstream_times(results, recorded["requests"])
        return Run(
            results=results,
            upstream_requests=len(recorded["requests"]),
            upstream_connections=int(recorded.get("connections", 0)),
            load_before=load_before,
            load_after=load_after,
            processes=args.processes,
            log_findings=scan_logs(log_paths),
            pinning=plan,
        )


def report(args: argparse.Namespace, run: Run) -> bool:
    """Print the tables (and write --json); True if the run is a success for the exit status."""
    config = build_config(args, run)
    stats = {result.name: scenario_stats(result, args.ttft_ms) for result in run.results if result.samples}
    print()
    print(render_report(run, stats, config, args.concurrent))
    if args.json:
        write_json(args.json, config, stats, run.results)
        print(f"\nresults written to {args.json}")
    errors = sum(result.errors for result in run.results)
    if errors:
        print(f"\n{errors} message(s) failed", file=sys.stderr)
    targets_met = all(met for *_, met in target_checks(stats, args.concurrent))
    return errors == 0 and (targets_met or not args.check)


def measured(measure_run: Callable[[argparse.Namespace, Deadline], R], args: argparse.Namespace) -> R | int:
    """Run `measure_run` from the repository root with SIGTERM as Ctrl-C, under the overall --timeout; on failure
    the exit status (everything it started has been stopped)."""
    os.chdir(ROOT)
    previous = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        return measure_run(args, Deadline(args.timeout))
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"bench failed: overall timeout ({args.timeout:g} s) reached; everything was stopped", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench interrupted; everything was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = measured(measure, args)
    if isinstance(run, int):
        return run
    return 0 if report(args, run) else 1


if __name__ == "__main__":
    sys.exit(main())
