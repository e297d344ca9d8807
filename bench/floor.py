"""The floor under issue 16's targets: what one daphne process costs doing our hot path's work with none of our code.

For each app of bench/floor_apps.py (``raw``: plain ASGI; ``channels``: an ``AsyncWebsocketConsumer`` behind
``URLRouter``) one daphne process is started on a free 127.0.0.1 port and warmed, then measured with websockets
clients from this process:

* CPU per token frame: K clients (``--clients``, 20) each ask for ``--frames`` (200) token frames ``--gap-ms`` (20)
  apart, then for 1 frame, on the same sockets; per frame = (daphne CPU of the long run - of the short one) /
  ((frames - 1) x K). Again at 1 client.
* CPU per message: one client asks ``--messages`` (200) times for no token frame (its reply is the one end frame)
  and waits for it each time; per message = daphne CPU / messages.
* Memory per idle socket: daphne's RSS (VmRSS) settled before and after opening ``--sockets`` (1,000) idle sockets;
  per socket = growth / sockets, KiB.
* For reference, what waking up costs on this host with no server at all: a bare asyncio loop in this process
  sleeping ``--gap-ms`` between ``--wakes`` (100) wakes, CPU per wake.

Daphne CPU is every thread's run time from /proc/PID/task/*/schedstat (nanoseconds; clock ticks from /proc/PID/stat
where that is missing). The CPU measures are repeated ``--repeats`` (3) times; the table gives the median and the
range. Everything is torn down on exit, error, Ctrl-C, SIGTERM or ``--timeout`` (170 s).

    .venv/bin/python bench/floor.py [--json floor.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.floor_apps import END_FRAME  # noqa: E402
from bench.harness import (  # noqa: E402
    HOST,
    BenchError,
    Deadline,
    Server,
    _finite,
    child_options,
    free_ports,
    load_average,
    log_tail,
    percentile,
    process_cpu_seconds,
    raise_keyboard_interrupt,
    stop_process,
    wait_for_port,
    with_handshake_retries,
)
from bench.idle_memory import settled_rss  # noqa: E402

APPS = ("raw", "channels")
TARGETS = {"frame_us": 80.0, "message_ms": 2.0, "idle_kib": 25.0}
OPEN_AT_ONCE = 50
SETTLE_S = 0.5
SETTLE_TRIES = 40
REPLY_TIMEOUT_S = 30.0


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of the process, from schedstat (ns); clock ticks where that is missing."""
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that ended since the listing
                total_ns += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ticks = process_cpu_seconds(pid)
        if ticks is None:
            raise BenchError(f"no CPU time readable for pid {pid}") from None
        return ticks
    return total_ns / 1e9


def raise_nofile(needed: int) -> None:
    """Raise this process's open-files soft limit towards the hard one when `needed` descriptors would not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard),
                                                    hard))


@contextlib.contextmanager
def running_floor(app: str, timeout_s: float, sockets: int = 0) -> Iterator[Server]:
    """One daphne process serving bench.floor_apps:<app> on a free port (Django settings of its own: none of the
    project's); stopped on exit, its log tail on stderr if anything inside failed."""
    if app not in APPS:
        raise BenchError(f"unknown app {app!r} (one of {', '.join(APPS)})")
    env = {key: value for key, value in os.environ.items()
           if key != "DJANGO_SETTINGS_MODULE" and not key.lower().endswith("_proxy")}
    env.update({"PYTHONUNBUFFERED": "1", "NO_PROXY": "*"})
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), f"bench.floor_apps:{app}"]
    with tempfile.TemporaryDirectory(prefix="pam-floor-") as workdir:
        log_path = Path(workdir) / f"daphne-{app}.log"
        raise_nofile(sockets + 256)  # the clients' sockets are ours; daphne inherits the limit
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, **child_options())
        try:
            wait_for_port(port, process, time.monotonic() + timeout_s, f"daphne ({app})")
            yield Server(index=0, port=port, pid=process.pid, log_path=log_path)
        except KeyboardInterrupt:
            raise
        except BaseException:
            stop_process(process)
            sys.stderr.write(f"--- daphne ({app}) log (tail) ---\n{log_tail(log_path)}\n")
            raise
        finally:
            stop_process(process)


async def _open_once(port: int) -> ClientConnection:
    return await connect(f"ws://{HOST}:{port}/ws/floor/", proxy=None, open_timeout=REPLY_TIMEOUT_S,
                         max_size=None)


async def open_socket(port: int) -> ClientConnection:
    return await with_handshake_retries(lambda: _open_once(port))


@contextlib.asynccontextmanager
async def open_sockets(port: int, count: int) -> AsyncIterator[list[ClientConnection]]:
    """`count` sockets, opened OPEN_AT_ONCE at a time; all closed on exit."""
    sockets: list[ClientConnection] = []
    try:
        for start in range(0, count, OPEN_AT_ONCE):
            burst = await asyncio.gather(*(open_socket(port) for _ in range(start, min(count, start + OPEN_AT_ONCE))),
                                         return_exceptions=True)
            sockets.extend(ws for ws in burst if isinstance(ws, ClientConnection))
            for outcome in burst:
                if isinstance(outcome, BaseException):
                    raise outcome
        yield sockets
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def ask(ws: ClientConnection, n: int, gap_ms: float) -> int:
    """Ask for n token frames; check they arrive numbered 1..n, in order, then the end frame. Returns n."""
    await ws.send(json.dumps({"n": n, "gap_ms": gap_ms}))
    expected = 1
    while True:
        text = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S)
        if text == END_FRAME:
            break
        frame = json.loads(text)
        if frame.get("chunk_type") != "token" or frame["metadata"]["seq"] != expected:
            raise BenchError(f"frame {expected} expected, got {text!r}")
        expected += 1
    if expected - 1 != n:
        raise BenchError(f"{n} token frames asked for, {expected - 1} received")
    return n


async def frames_cpu(pid: int, sockets: Sequence[ClientConnection], n: int, gap_ms: float) -> float:
    """Daphne CPU seconds while every socket asks for n frames at once and receives them all."""
    before = cpu_seconds(pid)
    await asyncio.gather(*(ask(ws, n, gap_ms) for ws in sockets))
    return cpu_seconds(pid) - before


@dataclass(frozen=True)
class FrameCost:
    clients: int
    frames: int
    long_run_cpu_s: float
    short_run_cpu_s: float

    @property
    def per_frame_us(self) -> float:
        return (self.long_run_cpu_s - self.short_run_cpu_s) / ((self.frames - 1) * self.clients) * 1e6


async def cpu_per_frame(server: Server, clients: int, frames: int, gap_ms: float) -> FrameCost:
    """Per token frame: the difference between a run of `frames` frames and one of 1, per client-frame."""
    if frames < 2:
        raise BenchError("--frames must be at least 2 (the figure is a difference against a 1-frame run)")
    async with open_sockets(server.port, clients) as sockets:
        long_run = await frames_cpu(server.pid, sockets, frames, gap_ms)
        short_run = await frames_cpu(server.pid, sockets, 1, gap_ms)
    return FrameCost(clients, frames, long_run, short_run)


async def cpu_per_message(server: Server, messages: int) -> float:
    """Daphne CPU seconds per message: one request frame in, the one end frame out, one after another."""
    async with open_sockets(server.port, 1) as (ws,):
        before = cpu_seconds(server.pid)
        for _ in range(messages):
            await ask(ws, 0, 0)
        return (cpu_seconds(server.pid) - before) / messages


@dataclass(frozen=True)
class IdleMemory:
    sockets: int
    before_kib: int
    after_kib: int

    @property
    def per_socket_kib(self) -> float:
        return (self.after_kib - self.before_kib) / self.sockets


async def idle_memory(server: Server, sockets: int, settle_s: float = SETTLE_S) -> IdleMemory:
    """RSS growth with `sockets` idle sockets open (each accepted, so its app instance exists)."""
    before = await settled_rss(server.pid, settle_s, SETTLE_TRIES)
    async with open_sockets(server.port, sockets):
        after = await settled_rss(server.pid, settle_s, SETTLE_TRIES)
    return IdleMemory(sockets, before, after)


async def warm_up(server: Server) -> None:
    """First-use work (imports, code paths, buffers) out of the way before anything is measured."""
    async with open_sockets(server.port, 10) as sockets:
        await asyncio.gather(*(ask(ws, 20, 0) for ws in sockets))
        for _ in range(20):
            await ask(sockets[0], 0, 0)


async def bare_wake_us(gap_ms: float, wakes: int) -> float:
    """CPU µs this process spends per wake of a bare asyncio loop sleeping `gap_ms` between wakes: the machine's
    own price for waking up, with no server, socket or frame involved."""
    before = time.process_time()
    for _ in range(wakes):
        await asyncio.sleep(gap_ms / 1000)
    return (time.process_time() - before) / wakes * 1e6


@dataclass(frozen=True)
class AppFloor:
    app: str
    frame_many: list[FrameCost]  # one per repeat
    frame_one: list[FrameCost]
    message_ms: list[float]
    memory: IdleMemory


async def measure_app(server: Server, app: str, args: argparse.Namespace) -> AppFloor:
    await warm_up(server)
    frame_many, frame_one, message_ms = [], [], []
    for _ in range(args.repeats):
        frame_many.append(await cpu_per_frame(server, args.clients, args.frames, args.gap_ms))
        frame_one.append(await cpu_per_frame(server, 1, args.frames, args.gap_ms))
        message_ms.append(await cpu_per_message(server, args.messages) * 1e3)
    memory = await idle_memory(server, args.sockets)
    return AppFloor(app, frame_many, frame_one, message_ms, memory)


def measure(args: argparse.Namespace, deadline: Deadline) -> tuple[list[AppFloor], float]:
    """Each app's floor, and the bare asyncio wake's CPU (µs) at --gap-ms."""
    wake_us = asyncio.run(bare_wake_us(args.gap_ms, args.wakes))
    floors = []
    for app in args.apps:
        with running_floor(app, min(deadline.remaining(), 60), args.sockets) as server:
            print(f"daphne ({app}) pid {server.pid} on {HOST}:{server.port}", flush=True)
            floors.append(asyncio.run(asyncio.wait_for(measure_app(server, app, args), deadline.remaining())))
    return floors, wake_us


def spread(values: Sequence[float], unit: str, digits: int) -> str:
    """The median, and the range when there are several values: ``138 µs (125-163)``."""
    text = f"{percentile(values, 50):.{digits}f} {unit}"
    return text if len(values) < 2 else f"{text} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(floors: Sequence[AppFloor], args: argparse.Namespace) -> list[tuple[str, ...]]:
    by_app = {floor.app: floor for floor in floors}

    def row(label: str, target: str, figure: Callable[[AppFloor], str]) -> tuple[str, ...]:
        return (label, *(figure(by_app[app]) if app in by_app else "not run" for app in APPS), target)

    return [
        ("measure", "raw daphne", "daphne + channels", "issue 16 target"),
        row(f"CPU per token frame, {args.clients} clients", f"<= {TARGETS['frame_us']:g} µs",
            lambda f: spread([cost.per_frame_us for cost in f.frame_many], "µs", 0)),
        row("CPU per token frame, 1 client", f"<= {TARGETS['frame_us']:g} µs",
            lambda f: spread([cost.per_frame_us for cost in f.frame_one], "µs", 0)),
        row("CPU per message (1 frame in, 1 out)", f"<= {TARGETS['message_ms']:g} ms",
            lambda f: spread(f.message_ms, "ms", 2)),
        row(f"memory per idle socket, {args.sockets:,} sockets", f"<= {TARGETS['idle_kib']:g} KiB",
            lambda f: f"{f.memory.per_socket_kib:.1f} KiB"),
    ]


def report(floors: Sequence[AppFloor], wake_us: float, args: argparse.Namespace, load: tuple[float, float],
           took_s: float) -> None:
    rows = table(floors, args)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for number, row in enumerate(rows):
        print("| " + " | ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) + " |")
        if number == 0:
            print("| " + " | ".join("-" * width for width in widths) + " |")
    print(f"(median of {args.repeats} repeats, range in brackets)")
    for floor in floors:
        print(f"{floor.app}: RSS {floor.memory.before_kib / 1024:.1f} -> {floor.memory.after_kib / 1024:.1f} MiB; "
              f"CPU of the {args.frames}-frame / 1-frame runs, ms: {args.clients} clients "
              + ", ".join(f"{c.long_run_cpu_s * 1e3:.0f} / {c.short_run_cpu_s * 1e3:.1f}" for c in floor.frame_many)
              + "; 1 client "
              + ", ".join(f"{c.long_run_cpu_s * 1e3:.0f} / {c.short_run_cpu_s * 1e3:.2f}" for c in floor.frame_one))
    print(f"this host, no server: a bare asyncio loop costs {wake_us:.1f} µs CPU per wake {args.gap_ms:g} ms apart "
          f"({args.wakes} wakes)")
    print(f"load average {load[0]:.2f} before, {load[1]:.2f} after; {os.cpu_count()} CPUs; {took_s:.0f} s")
    if args.json:
        payload = {
            "args": {key: value for key, value in vars(args).items() if key != "json"},
            "load_average": {"before": load[0], "after": load[1]},
            "seconds": took_s,
            "bare_wake_us": wake_us,
            "table": rows,
            "apps": [{**asdict(floor), "frame_many_us": [cost.per_frame_us for cost in floor.frame_many],
                      "frame_one_us": [cost.per_frame_us for cost in floor.frame_one],
                      "idle_kib_per_socket": floor.memory.per_socket_kib} for floor in floors],
        }
        Path(args.json).write_text(json.dumps(_finite(payload), indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="clients in the per-frame run (20)")
    parser.add_argument("--frames", type=int, default=200, help="token frames per client in the long run (200)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="between token frames, ms (20)")
    parser.add_argument("--messages", type=int, default=200, help="messages in the per-message run (200)")
    parser.add_argument("--sockets", type=int, default=1000, help="idle sockets (1000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the CPU measures (3)")
    parser.add_argument("--wakes", type=int, default=100, help="wakes of the bare asyncio loop (100)")
    parser.add_argument("--apps", nargs="+", choices=APPS, default=list(APPS), help="apps to measure (both)")
    parser.add_argument("--timeout", type=float, default=170.0, help="overall time limit, seconds (170)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started = time.monotonic()
    load_before = load_average()
    try:
        floors, wake_us = measure(args, Deadline(args.timeout))
    except (BenchError, TimeoutError) as exc:
        print(f"floor bench failed: {exc or 'overall timeout reached'}; everything was stopped", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(floors, wake_us, args, (load_before, load_average()), time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
