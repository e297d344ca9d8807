"""Sustained streams: how many answers one daphne process keeps streaming at the upstream's pace before frames stall.

It starts one daphne process on the embedded defaults (temporary SQLite, in-memory channel layer) through
``bench/harness.py``, with the fake upstream pacing tokens ``--token-delay-ms`` apart (20 ms: 50 tokens/s) in long
answers. After a warm-up, step by step (``--steps``, up to ``--max-streams``), it opens that many chat WebSockets
from one asyncio process, sends one streamed message on each at once, and once every stream has its first token
(at most ``--settle-s`` later) records for ``--step-s`` seconds the time between consecutive token frames on every
socket; then it cancels the answers (the socket's ``cancel`` frame) and waits for each to end.

Per step it prints the per-socket largest gap (p50 / p99 / max over the sockets), the p99 of all gaps, token frames
per second against the upstream's pace, and the CPU used by the server, the fake upstream and the benchmark
client (each in % of one core, so a client or fake that is the bottleneck shows as one, not as the server's).

A step *holds* when at most 1% of its streams saw a gap longer than ``--gap-limit-ms`` (2 x the pacing: 40 ms), i.e.
the p99 of the per-socket largest gaps is within the limit, and when at least 95% of the expected token frames
arrived and no message failed. The knee is the largest step that holds (with every smaller step holding too);
streams per core = knee / 1 (one daphne process uses at most one core). A looser knee, by the p99 of all gaps, is
printed for the trend. The run stops after the first step that does not hold even loosely (``--all-steps``: goes
on), at ``--max-streams``, or when ``--timeout`` leaves too little time for
another step.

Run from the repository root: ``.venv/bin/python bench/sustained.py [--json PATH]`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from bench.harness import (  # noqa: E402
    Deadline,
    _finite,
    bench_stack,
    load_average,
    percentile,
    process_cpu_seconds,
    scan_logs,
    with_handshake_retries,
)
from bench.ttft import Target, frame_kind, measured, message_frame, open_socket  # noqa: E402

DEFAULT_STEPS = (16, 32, 64, 128, 192, 256, 384, 512)
TOKEN_PREFIX = '{"type": "stream", "chunk_type": "token"'
"""How a token frame starts as the server serialises it (a fast path; any other frame is parsed)."""
HOLD_STREAM_SHARE = 0.99
MIN_FRAME_SHARE = 0.95
CONNECT_CONCURRENCY = 32


@dataclass
class Stream:
    """One socket's readings during a step."""

    frames: int = 0
    """Token frames received inside the measuring window."""
    gaps_ms: list[float] = field(default_factory=list)
    """Time without a token frame inside the window: from its start to the first frame, between consecutive
    frames, from the last frame to its end (a stream with no frame in it has one gap: the whole window)."""
    first_token: float | None = None
    last_in_window: float | None = None
    error: str | None = None

    def close_window(self, window: Window) -> None:
        """Add the gap from the last frame (or the window's start) to the window's end."""
        self.gaps_ms.append((window.end - (self.last_in_window or window.start)) * 1000)

    @property
    def max_gap_ms(self) -> float:
        return max(self.gaps_ms, default=math.nan)


@dataclass
class StepResult:
    streams: int
    window_s: float
    per_stream_max_gap_ms: dict[str, float]
    all_gaps_p99_ms: float
    over_limit_streams: int
    frames_per_s: float
    expected_frames_per_s: float
    errors: int
    server_cpu_percent: float
    upstream_cpu_percent: float
    client_cpu_percent: float
    holds: bool
    holds_loosely: bool
    """The p99 of all gaps (not of each stream's largest) within the limit, with the same frame and error rules."""
    error_samples: list[str] = field(default_factory=list)


def is_token(raw: str | bytes) -> bool:
    if isinstance(raw, str) and raw.startswith(TOKEN_PREFIX):
        return True
    return frame_kind(raw)[0] == "token"


@dataclass
class Window:
    """The measuring window of a step: open from `start` to `end` (perf_counter), both unknown until set."""

    start: float = math.inf
    end: float = math.inf
    started_streams: int = 0
    all_started: asyncio.Event = field(default_factory=asyncio.Event)


async def stream_one(ws: ClientConnection, stream: Stream, tag: str, window: Window, streams: int,
                     limit_s: float) -> None:
    """Send one message and read its answer to its end (the step cancels it after the window), recording the
    token frames inside the window."""
    try:
        await ws.send(message_frame(tag))
        async with asyncio.timeout(limit_s):
            while True:
                raw = await ws.recv()
                now = time.perf_counter()
                if is_token(raw):
                    if stream.first_token is None:
                        stream.first_token = now
                        window.started_streams += 1
                        if window.started_streams == streams:
                            window.all_started.set()
                    if window.start <= now <= window.end:
                        stream.frames += 1
                        stream.gaps_ms.append((now - (stream.last_in_window or window.start)) * 1000)
                        stream.last_in_window = now
                    continue
                kind, detail = frame_kind(raw)
                if kind in ("end", "error"):
                    if now < window.end:
                        stream.error = f"answer ended before the window did: {kind} {detail}".strip()
                    return
    except TimeoutError:
        stream.error = "timeout"
    except ConnectionClosed as exc:
        stream.error = f"socket closed: {exc}"


CANCEL = json.dumps({"type": "cancel"})


async def run_step(target: Target, streams: int, args: argparse.Namespace, upstream_pid: int) -> StepResult:
    """Open `streams` sockets, start one answer on each; once every stream has its first token (or --settle-s
    has passed), measure --step-s seconds, then cancel the answers and wait for each to end."""
    server = target.servers[0]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    async with contextlib.AsyncExitStack() as stack:

        async def connect_one() -> ClientConnection:
            async with gate:
                return await with_handshake_retries(lambda: open_socket(stack, target, server))

        sockets = await asyncio.gather(*(connect_one() for _ in range(streams)))
        readings = [Stream() for _ in range(streams)]
        window = Window()
        limit = args.settle_s + args.step_s + args.message_timeout
        tasks = [
            asyncio.create_task(stream_one(ws, reading, f"sustained-{streams}-{index}", window, streams, limit))
            for index, (ws, reading) in enumerate(zip(sockets, readings, strict=True))
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(window.all_started.wait(), args.settle_s)
        await asyncio.sleep(args.token_delay_ms / 1000)  # every stream past its first token
        window.start = time.perf_counter()
        window.end = window.start + args.step_s
        cpu_before = (process_cpu_seconds(server.pid), process_cpu_seconds(upstream_pid), time.process_time())
        await asyncio.sleep(args.step_s)
        cpu_after = (process_cpu_seconds(server.pid), process_cpu_seconds(upstream_pid), time.process_time())
        for reading in readings:
            reading.close_window(window)
        for ws in sockets:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(CANCEL)
        await asyncio.gather(*tasks)
    return step_result(streams, readings, args, cpu_before, cpu_after)


async def warm_up(target: Target, count: int, limit_s: float) -> None:
    """A few answers started together and cancelled once streaming (the first message of a fresh process loads
    what later ones reuse); not measured."""
    window = Window(start=math.inf, end=-math.inf)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await open_socket(stack, target, target.servers[0]) for _ in range(count)]
        readings = [Stream() for _ in sockets]
        tasks = [
            asyncio.create_task(stream_one(ws, reading, f"warmup-{index}", window, count, limit_s))
            for index, (ws, reading) in enumerate(zip(sockets, readings, strict=True))
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(window.all_started.wait(), limit_s)
        for ws in sockets:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(CANCEL)
        await asyncio.gather(*tasks)


def _percent(before: float | None, after: float | None, seconds: float) -> float:
    return math.nan if before is None or after is None else (after - before) * 100 / seconds


def step_result(streams: int, readings: Sequence[Stream], args: argparse.Namespace,
                cpu_before: tuple[float | None, ...], cpu_after: tuple[float | None, ...]) -> StepResult:
    window = args.step_s
    max_gaps = [reading.max_gap_ms for reading in readings if reading.gaps_ms]
    all_gaps = [gap for reading in readings for gap in reading.gaps_ms]
    errors = [reading.error for reading in readings if reading.error]
    frames = sum(reading.frames for reading in readings)
    expected = streams * 1000 / args.token_delay_ms
    p99_max_gap = percentile(max_gaps, HOLD_STREAM_SHARE * 100)
    delivered = not errors and len(max_gaps) == streams and frames / window >= MIN_FRAME_SHARE * expected
    holds = delivered and p99_max_gap <= args.gap_limit_ms
    holds_loosely = delivered and percentile(all_gaps, 99) <= args.gap_limit_ms
    return StepResult(
        streams=streams,
        window_s=window,
        per_stream_max_gap_ms={
            "p50": percentile(max_gaps, 50), "p99": p99_max_gap, "max": max(max_gaps, default=math.nan),
        },
        all_gaps_p99_ms=percentile(all_gaps, 99),
        over_limit_streams=sum(1 for gap in max_gaps if gap > args.gap_limit_ms),
        frames_per_s=frames / window,
        expected_frames_per_s=expected,
        errors=len(errors),
        server_cpu_percent=_percent(cpu_before[0], cpu_after[0], window),
        upstream_cpu_percent=_percent(cpu_before[1], cpu_after[1], window),
        client_cpu_percent=_percent(cpu_before[2], cpu_after[2], window),
        holds=holds,
        holds_loosely=holds_loosely,
        error_samples=sorted(set(errors))[:3],
    )


def knee(results: Sequence[StepResult], loosely: bool = False) -> int:
    """The largest step that holds (`loosely`: by the p99 of all gaps), every smaller one holding too (0 when the
    first does not)."""
    best = 0
    for result in results:
        if not (result.holds_loosely if loosely else result.holds):
            break
        best = result.streams
    return best


async def ramp(target: Target, args: argparse.Namespace, upstream_pid: int, deadline: Deadline) -> list[StepResult]:
    print("warming up (not measured) ...", flush=True)
    await warm_up(target, 4, 30.0)
    results: list[StepResult] = []
    for streams in args.steps:
        needed = args.settle_s + args.step_s + 15
        if deadline.remaining() < needed:
            print(f"stopping before {streams} streams: the overall --timeout leaves too little time", flush=True)
            break
        print(f"step: {streams} streams ...", flush=True)
        result = await run_step(target, streams, args, upstream_pid)
        print("  " + step_line(result, args.gap_limit_ms), flush=True)
        results.append(result)
        if not result.holds_loosely and not args.all_steps:
            break
    return results


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def step_line(result: StepResult, gap_limit_ms: float) -> str:
    gaps = result.per_stream_max_gap_ms
    return (
        f"{result.streams:>5} streams  max gap per stream p50 {_f(gaps['p50'])} / p99 {_f(gaps['p99'])} / "
        f"max {_f(gaps['max'])} ms  (all gaps p99 {_f(result.all_gaps_p99_ms)}; {result.over_limit_streams} "
        f"over {gap_limit_ms:g} ms)  frames/s {result.frames_per_s:,.0f} of {result.expected_frames_per_s:,.0f}  "
        f"CPU % srv {_f(result.server_cpu_percent, 0)} fake {_f(result.upstream_cpu_percent, 0)} "
        f"client {_f(result.client_cpu_percent, 0)}  errors {result.errors}  "
        f"{'HOLDS' if result.holds else 'holds loosely' if result.holds_loosely else 'BREAKS'}"
        + "".join(f"\n        error: {error}" for error in result.error_samples)
    )


@dataclass
class SustainedRun:
    steps: list[StepResult]
    knee: int
    loose_knee: int
    """The knee by the p99 of all gaps: where streams stall often, not just once (for the trend)."""
    streams_per_core: float
    load_before: float
    load_after: float
    log_findings: dict[str, int]
    config: dict[str, Any]


def measure(args: argparse.Namespace, deadline: Deadline) -> SustainedRun:
    print("starting the fake upstream, migrating, starting daphne ...", flush=True)
    with bench_stack(args.ttft_ms, args.token_delay_ms, args.tokens, deadline) as stack:
        target = Target(servers=stack.servers, session_key=stack.session_key,
                        message_timeout_s=args.message_timeout, upstream_pid=stack.upstream.process.pid)
        load_before = load_average()
        results = asyncio.run(ramp(target, args, stack.upstream.process.pid, deadline))
        load_after = load_average()
        log_paths = stack.log_paths
    found = knee(results)
    return SustainedRun(
        steps=results, knee=found, loose_knee=knee(results, loosely=True), streams_per_core=float(found),
        load_before=load_before, load_after=load_after,
        log_findings=scan_logs(log_paths),
        config={key: value for key, value in vars(args).items() if key not in {"json"}},
    )


def render(run: SustainedRun, args: argparse.Namespace) -> str:
    cpus = os.cpu_count() or 1
    broke = next((step for step in run.steps if not step.holds), None)
    loose_broke = next((step for step in run.steps if not step.holds_loosely), None)
    lines = [
        f"Sustained streams, 1 daphne process (temporary SQLite, in-memory layer), upstream {args.ttft_ms:g} ms to "
        f"first token then a token every {args.token_delay_ms:g} ms ({1000 / args.token_delay_ms:g}/s), "
        f"window {args.step_s:g} s per step, from every stream's first token (at most {args.settle_s:g} s after "
        "the messages were sent); the answers are cancelled after it",
        f"a step holds when the p99 over streams of each stream's largest gap between token frames is "
        f"<= {args.gap_limit_ms:g} ms, >= {MIN_FRAME_SHARE:.0%} of the expected frames arrived and no message failed",
        "",
        *(step_line(step, args.gap_limit_ms) for step in run.steps),
        "",
        f"knee: {run.knee} streams (the largest step that holds"
        + (f"; {broke.streams} does not)" if broke else "; no step broke: raise --max-streams)"),
        f"loosely (p99 of all gaps <= {args.gap_limit_ms:g} ms, for the trend): {run.loose_knee} streams"
        + (f"; {loose_broke.streams} does not" if loose_broke else "; no step broke"),
        f"streams per core: {run.streams_per_core:g} (one daphne process uses at most one core; target >= 128)",
        f"host: {cpus} CPUs shared by daphne, the fake upstream and the benchmark client; load average "
        f"{run.load_before:.1f} before, {run.load_after:.1f} after"
        + (" (other processes were busy: expect pessimistic figures)" if run.load_before >= cpus / 2 else ""),
        "a client or fake near 100% CPU is itself the bottleneck at that step: read its gaps with care",
        "daphne log: " + ", ".join(f"{count} {name}" for name, count in run.log_findings.items()),
    ]
    return "\n".join(lines)


def as_json(run: SustainedRun) -> dict[str, Any]:
    return _finite({
        "config": run.config, "knee": run.knee, "loose_knee": run.loose_knee, "streams_per_core": run.streams_per_core,
        "load_before": run.load_before, "load_after": run.load_after, "log_findings": run.log_findings,
        "steps": [asdict(step) for step in run.steps],
    })


def parse_steps(text: str) -> tuple[int, ...]:
    steps = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("steps are positive integers, comma-separated")
    return steps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/sustained.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=parse_steps, default=DEFAULT_STEPS,
                        help="concurrent streams per step, comma-separated (16,32,64,128,192,256,384,512)")
    parser.add_argument("--max-streams", type=int, default=512, help="skip steps above this (512)")
    parser.add_argument("--step-s", type=float, default=8.0, help="measuring window per step, seconds (8)")
    parser.add_argument("--settle-s", type=float, default=5.0,
                        help="longest wait for every stream's first token before the window opens, seconds (5)")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="upstream delay to the first token (100)")
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="upstream pacing between tokens (20)")
    parser.add_argument("--gap-limit-ms", type=float, default=None,
                        help="largest acceptable gap between token frames (2 x --token-delay-ms)")
    parser.add_argument("--message-timeout", type=float, default=60.0,
                        help="per answer, past the window's end, seconds (60)")
    parser.add_argument("--timeout", type=float, default=300.0, help="overall time limit, seconds (300)")
    parser.add_argument("--all-steps", action="store_true",
                        help="go on after a step that does not hold (the knee is still the last step before it)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    args.steps = tuple(step for step in args.steps if step <= args.max_streams)
    if not args.steps:
        parser.error("no step at or below --max-streams")
    if args.gap_limit_ms is None:
        args.gap_limit_ms = 2 * args.token_delay_ms
    # Answers longer than the settle time and the window together: the step cancels them when it is done.
    args.tokens = math.ceil((args.settle_s + args.step_s + 10.0) * 1000 / args.token_delay_ms)
    return args


def run(argv: list[str] | None = None) -> SustainedRun | int:
    """Measure and print (and write --json); the run, or an exit status when it could not be measured."""
    args = parse_args(argv)
    result = measured(measure, args)
    if isinstance(result, int):
        return result
    print()
    print(render(result, args))
    if args.json:
        args.json.write_text(json.dumps(as_json(result), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
    return result


def main(argv: list[str] | None = None) -> int:
    result = run(argv)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
