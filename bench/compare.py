"""This project against the LiteLLM proxy: added time to first token at the same concurrencies, in one run.

Both servers stream from the SAME fake upstream process (``bench/upstream.py``, OpenAI protocol: ``--ttft-ms`` 100
to the first token, then ``--tokens`` 40 tokens ``--token-delay-ms`` 20 apart), one server process each, on
127.0.0.1:

* this project: one daphne process as in production (``bench/harness.py``: DEBUG off, a migrated temporary SQLite
  database or ``DATABASE_URL``'s, the bench user's session), over the chat WebSocket as ``bench/ttft.py`` measures
  it (the ``simple`` route, which is OpenAI);
* LiteLLM: ``litellm --num_workers 1`` from its own virtualenv (``bench/.venv-litellm``, see requirements-bench.txt
  and bench/README.md), one model whose ``api_base`` is the fake's OpenAI URL, over its OpenAI-compatible
  ``/v1/chat/completions`` with ``stream: true`` (server-sent events, one keep-alive HTTP/1.1 connection per
  client, read with asyncio streams: no client library's cost in the figure), timed to the first event that carries
  content.

For each concurrency (``--clients``, 1, 20 and 100 by default) the clients connect first, then start together,
each sending its messages one after another; this project's side and LiteLLM's take turns at each concurrency.
Added TTFT = client-seen time to first token − ``--ttft-ms``. It prints p50 and p99 for both, the ratio
(LiteLLM / this project) and each server's CPU per message. When LiteLLM is not installed it says so and prints
this project's figures only: it never makes up the other side.

Run from the repository root: ``.venv/bin/python bench/compare.py [--json PATH]`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    HOST,
    BenchError,
    Deadline,
    _finite,
    bench_stack,
    child_options,
    free_ports,
    load_average,
    log_tail,
    percentile,
    process_cpu_seconds,
    stop_process,
    wait_for_port,
)
from bench.ttft import QUESTION, ScenarioResult, Target, measured, run_scenario  # noqa: E402

LITELLM = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
LITELLM_MODEL = "bench"


def per_client(clients: int, sequential: int) -> int:
    """Messages per client: `sequential` for one client, else enough for about that many samples (at least 3)."""
    return sequential if clients == 1 else max(3, math.ceil(sequential / clients))


# --------------------------------------------------------------------------------------------------
# This project's side: bench/ttft.py's WebSocket scenario
# --------------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One server's figures at one concurrency."""

    clients: int
    added_ms: list[float] = field(default_factory=list)
    errors: int = 0
    server_cpu_s: float | None = None
    wall_s: float = 0.0

    def stats(self) -> dict[str, Any]:
        answered = len(self.added_ms)
        return {
            "clients": self.clients,
            "samples": answered + self.errors,
            "errors": self.errors,
            "p50_ms": percentile(self.added_ms, 50),
            "p99_ms": percentile(self.added_ms, 99),
            "max_ms": max(self.added_ms, default=math.nan),
            "server_cpu_ms_per_message": (
                math.nan if self.server_cpu_s is None or not answered else self.server_cpu_s * 1000 / answered
            ),
            "wall_s": self.wall_s,
        }


async def ours(target: Target, clients: int, messages: int, ttft_ms: float, name: str) -> Side:
    """This project at `clients` concurrent WebSocket clients, `messages` each (bench/ttft.py's scenario)."""
    result = await run_scenario(ScenarioResult(name, f"{clients} clients x {messages}", clients, messages), target)
    side = Side(clients, wall_s=result.wall_s, server_cpu_s=result.server_cpu_s, errors=result.errors)
    side.added_ms = [added for sample in result.samples if (added := sample.added_ms(ttft_ms)) is not None
                     and sample.error is None]
    return side


# --------------------------------------------------------------------------------------------------
# LiteLLM's side: the proxy in its own virtualenv, an SSE client on asyncio streams
# --------------------------------------------------------------------------------------------------


def litellm_missing(path: Path) -> str | None:
    """Why LiteLLM cannot be run from `path` (None when it can)."""
    if not path.exists():
        return (f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} not found: install it with "
                "`make bench-litellm` (a separate virtualenv, see bench/README.md)")
    return None


def litellm_config(openai_base_url: str) -> str:
    """The proxy's config: one model on the fake's OpenAI endpoint; no database, no callbacks, no telemetry."""
    return json.dumps({
        "model_list": [{
            "model_name": LITELLM_MODEL,
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": openai_base_url,
                               "api_key": "sk-bench-not-a-real-key"},
        }],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    })


@dataclass(frozen=True)
class LiteLLM:
    port: int
    pid: int
    log_path: Path
    master_key: str
    """Made for the run: the proxy refuses to start without one; the clients send it as their bearer token."""


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and all its descendants now alive (LiteLLM may serve from a child process)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        cpu = process_cpu_seconds(current)
        if cpu is None and current == pid:
            return None
        total += cpu or 0.0
        todo.extend(children.get(current, []))
    return total


@contextlib.contextmanager
def running_litellm(executable: Path, openai_base_url: str, deadline: Deadline) -> Iterator[LiteLLM]:
    """The LiteLLM proxy with one worker on a free port (JSON is YAML, so the config is written as JSON)."""
    with tempfile.TemporaryDirectory(prefix="pam-bench-litellm-") as workdir:
        config = Path(workdir) / "config.yaml"
        config.write_text(litellm_config(openai_base_url))
        log_path = Path(workdir) / "litellm.log"
        port, master_key = free_ports(1)[0], f"sk-bench-{secrets.token_hex(16)}"
        env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
        env.update({
            "NO_PROXY": "*", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False", "PYTHONUNBUFFERED": "1", "LITELLM_MASTER_KEY": master_key,
        })
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        command = [str(executable), "--config", str(config), "--host", HOST, "--port", str(port), "--num_workers", "1"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, **child_options())
        try:
            try:
                wait_for_port(port, process, time.monotonic() + min(deadline.remaining(), 120), "the LiteLLM proxy")
            except BenchError as exc:
                raise BenchError(f"{exc}\n--- LiteLLM log (tail) ---\n{log_tail(log_path)}") from exc
            print(f"LiteLLM proxy (pid {process.pid}) listening on {HOST}:{port}", flush=True)
            yield LiteLLM(port, process.pid, log_path, master_key)
        finally:
            stop_process(process)


class SseClient:
    """One keep-alive HTTP/1.1 connection to the proxy, streaming chat completions."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None

    async def first_token_s(self, tag: str, limit_s: float) -> float:
        """Send one streamed request; seconds from the send to the first content event. Reads the whole response
        (the connection is reused); BenchError on a bad answer."""
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        body = json.dumps({
            "model": LITELLM_MODEL, "stream": True,
            "messages": [{"role": "user", "content": f"{QUESTION} [bench:{tag}]"}],
        }).encode()
        head = "\r\n".join([
            "POST /v1/chat/completions HTTP/1.1", f"Host: {HOST}:{self.port}", "Content-Type: application/json",
            f"Authorization: Bearer {self.key}", "Accept: text/event-stream", f"Content-Length: {len(body)}", "", "",
        ]).encode()
        sent = time.perf_counter()
        self.writer.write(head + body)
        first: float | None = None
        async with asyncio.timeout(limit_s):
            status, headers = await self._head()
            if status != 200:
                await self.close()
                raise BenchError(f"HTTP {status}")
            async for line in self._lines(headers):
                if first is None and line.startswith(b"data:") and _has_content(line[5:]):
                    first = time.perf_counter()
            if headers.get("connection", "").lower() == "close":
                await self.close()
        if first is None:
            raise BenchError("no content in the stream")
        return first - sent

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _lines(self, headers: dict[str, str]) -> Any:
        """The body's lines (chunked or with a length), without their line ends."""
        assert self.reader is not None
        buffer = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                buffer += (await self.reader.readexactly(size + 2))[:-2]
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r")
        else:
            buffer = await self.reader.readexactly(int(headers.get("content-length", "0")))
        for line in buffer.split(b"\n"):
            yield line.rstrip(b"\r")


def _has_content(data: bytes) -> bool:
    data = data.strip()
    if not data or data == b"[DONE]":
        return False
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
        return bool(json.loads(data)["choices"][0]["delta"].get("content"))
    return False


async def theirs(proxy: LiteLLM, clients: int, messages: int, ttft_ms: float, name: str, limit_s: float) -> Side:
    """LiteLLM at `clients` concurrent SSE clients, `messages` each, one after another."""
    connections = [SseClient(proxy.port, proxy.master_key) for _ in range(clients)]
    await asyncio.gather(*(connection.connect() for connection in connections))
    side = Side(clients)

    async def client(index: int, connection: SseClient) -> None:
        for message in range(messages):
            try:
                side.added_ms.append(
                    await connection.first_token_s(f"{name}-{index:03d}-{message:04d}", limit_s) * 1000 - ttft_ms
                )
            except (BenchError, TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                side.errors += 1
                await connection.close()

    try:
        cpu_before, started = tree_cpu_seconds(proxy.pid), time.perf_counter()
        await asyncio.gather(*(client(index, connection) for index, connection in enumerate(connections)))
        side.wall_s, cpu_after = time.perf_counter() - started, tree_cpu_seconds(proxy.pid)
        side.server_cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    return side


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    ours: list[Side]
    theirs: list[Side]
    litellm_note: str | None
    """Why LiteLLM was not measured (None when it was)."""
    litellm_version: str | None
    load_before: float
    load_after: float


def litellm_version(executable: Path) -> str | None:
    python = executable.parent / "python"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or None
    return None


async def compare(args: argparse.Namespace, target: Target, proxy: LiteLLM | None) -> tuple[list[Side], list[Side]]:
    mine: list[Side] = []
    other: list[Side] = []
    print("warming up both (not measured) ...", flush=True)
    await ours(target, 1, args.warmup, args.ttft_ms, "warmup")
    if proxy is not None:
        await theirs(proxy, 1, args.warmup, args.ttft_ms, "warmup-litellm", args.message_timeout)
    for clients in args.clients:
        messages = per_client(clients, args.sequential)
        print(f"{clients} client(s) x {messages}: this project ...", flush=True)
        mine.append(await ours(target, clients, messages, args.ttft_ms, f"ours-{clients}"))
        if proxy is not None:
            print(f"{clients} client(s) x {messages}: LiteLLM ...", flush=True)
            other.append(await theirs(proxy, clients, messages, args.ttft_ms, f"litellm-{clients}",
                                      args.message_timeout))
    return mine, other


def measure(args: argparse.Namespace, deadline: Deadline) -> Comparison:
    note = litellm_missing(args.litellm)
    print("starting the fake upstream, migrating, starting daphne ...", flush=True)
    with bench_stack(args.ttft_ms, args.token_delay_ms, args.tokens, deadline) as stack, contextlib.ExitStack() as more:
        target = Target(servers=stack.servers, session_key=stack.session_key,
                        message_timeout_s=args.message_timeout, upstream_pid=stack.upstream.process.pid)
        proxy = None
        if note is None:
            print("starting the LiteLLM proxy ...", flush=True)
            proxy = more.enter_context(running_litellm(args.litellm, stack.upstream.openai_base_url, deadline))
        load_before = load_average()
        mine, other = asyncio.run(asyncio.wait_for(compare(args, target, proxy), deadline.remaining()))
        load_after = load_average()
    version = litellm_version(args.litellm) if note is None else None
    return Comparison(mine, other, note, version, load_before, load_after)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _ratio(theirs_ms: float, ours_ms: float) -> str:
    if math.isnan(theirs_ms) or math.isnan(ours_ms):
        return "-"
    if ours_ms <= 0.05:
        return "n/a (ours ~0)"
    return f"{theirs_ms / ours_ms:.1f}x"


def render(run: Comparison, args: argparse.Namespace) -> str:
    cpus = os.cpu_count() or 1
    lines = [
        f"Added time to first token, ms (client-seen TTFT - the fake's {args.ttft_ms:g} ms; {args.tokens} tokens "
        f"{args.token_delay_ms:g} ms apart, OpenAI protocol), one server process each, the same fake upstream",
        "this project: 1 daphne process, WebSocket, DEBUG off"
        + (", " + ("PostgreSQL" if os.environ.get("DATABASE_URL") else "temporary SQLite")
           + (" + Redis" if os.environ.get("REDIS_URL") else ", in-memory layer")),
        "LiteLLM: " + (f"proxy {run.litellm_version or '(version unknown)'}, 1 worker, SSE /v1/chat/completions"
                       if run.litellm_note is None else f"NOT MEASURED: {run.litellm_note}"),
        "",
        f"{'clients':>7}  {'ours p50':>9} {'p99':>7} {'err':>4} {'CPU ms/msg':>10}   "
        f"{'LiteLLM p50':>11} {'p99':>7} {'err':>4} {'CPU ms/msg':>10}   {'ratio p50':>9} {'ratio p99':>9}",
    ]
    theirs_by_clients = {side.clients: side.stats() for side in run.theirs}
    for side in run.ours:
        mine = side.stats()
        other = theirs_by_clients.get(side.clients)
        other_cells = (
            f"{_ms(other['p50_ms']):>11} {_ms(other['p99_ms']):>7} {other['errors']:>4} "
            f"{_ms(other['server_cpu_ms_per_message']):>10}   {_ratio(other['p50_ms'], mine['p50_ms']):>9} "
            f"{_ratio(other['p99_ms'], mine['p99_ms']):>9}"
            if other else f"{'-':>11} {'-':>7} {'-':>4} {'-':>10}   {'-':>9} {'-':>9}"
        )
        lines.append(
            f"{side.clients:>7}  {_ms(mine['p50_ms']):>9} {_ms(mine['p99_ms']):>7} {mine['errors']:>4} "
            f"{_ms(mine['server_cpu_ms_per_message']):>10}   {other_cells}"
        )
    lines += [
        "",
        "ratio = LiteLLM / this project (above 1: this project adds less)",
        f"host: {cpus} CPUs shared by both servers, the fake upstream and the clients; load average "
        f"{run.load_before:.1f} before, {run.load_after:.1f} after"
        + (" (other processes were busy: expect noisy, pessimistic figures)" if run.load_before >= cpus / 2 else ""),
    ]
    return "\n".join(lines)


def as_json(run: Comparison, args: argparse.Namespace) -> dict[str, Any]:
    return _finite({
        "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "litellm_version": run.litellm_version,
        "litellm_not_measured": run.litellm_note,
        "ours": [side.stats() for side in run.ours],
        "litellm": [side.stats() for side in run.theirs],
        "load_before": run.load_before, "load_after": run.load_after,
    })


def parse_clients(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("client counts are positive integers, comma-separated")
    return values


def add_upstream_options(parser: argparse.ArgumentParser) -> None:
    """The fake's timings of issue 16's comparison: 100 ms to the first token, 40 tokens 20 ms apart."""
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="upstream delay to the first token (100)")
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="upstream delay between tokens (20)")
    parser.add_argument("--tokens", type=int, default=40, help="answer length in tokens (40)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=parse_clients, default=(1, 20, 100),
                        help="concurrencies, comma-separated (1,20,100)")
    parser.add_argument("--sequential", type=int, default=30,
                        help="messages for 1 client; at more clients, each sends max(3, this / clients) (30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured messages to each server first (3)")
    add_upstream_options(parser)
    parser.add_argument("--litellm", type=Path, default=LITELLM, help="the litellm executable (bench/.venv-litellm)")
    parser.add_argument("--message-timeout", type=float, default=60.0, help="per answer, seconds (60)")
    parser.add_argument("--timeout", type=float, default=420.0, help="overall time limit, seconds (420)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = measured(measure, args)
    if isinstance(result, int):
        return result
    print()
    print(render(result, args))
    if args.json:
        args.json.write_text(json.dumps(as_json(result, args), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
    failed = sum(side.errors for side in result.ours + result.theirs)
    return 1 if failed or result.litellm_note else 0


if __name__ == "__main__":
    sys.exit(main())
