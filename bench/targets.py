"""Issue 16's targets, each with the figure measured now and whether it is met.

One run, bounded by ``--timeout`` (600 s; about 5-7 minutes on this 2-core host), everything on 127.0.0.1 through
``bench/harness.py`` (one daphne process as in production, the fake upstream in its own process):

1. **Added TTFT** (fake: 100 ms to the first token, 40 tokens 20 ms apart; embedded defaults: temporary SQLite,
   in-memory layer): 1 client x ``--sequential`` messages, 20 clients and 100 clients (``bench/compare.py``'s
   scenarios, the WebSocket client of ``bench/ttft.py``). Targets: p50 <= 2 ms at 1 client, p99 <= 20 ms at 20,
   p99 <= 100 ms at 100.
2. **Server CPU per message and per token frame**, from two runs of 20 clients that differ only in the answer's
   length (40 tokens, the 20-client run above, and ``--long-tokens`` 240): per token = the difference in daphne CPU
   per message / the difference in tokens; per message = the 40-token figure less 40 x the per-token one (what a
   message costs besides its token frames). Targets: <= 2 ms per message, <= 80 µs per token frame.
3. **Sustained streams per core**: ``bench/sustained.py``'s knee (one process, so one core). Target >= 128.
4. **Idle memory per socket** at 1,000 idle sockets: ``bench/idle_memory.py``'s ``measure`` when that module is
   there (else the row says "not measured"). Target <= 25 KiB.
5. **PostgreSQL + Redis within 1.5x of embedded**: step 1 again with ``--database-url`` / ``--redis-url``
   (default: ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``; not measured when unset). The figure is the largest of the
   three ratios (PostgreSQL + Redis / embedded) of step 1's target figures.

Prints a table (target, figure, met / not met / not measured) and the host's load; ``--json PATH`` writes it too;
``--check`` exits 1 unless every target is met. Figures taken on a busy host are pessimistic: the load is printed.

Run from the repository root: ``.venv/bin/python bench/targets.py`` or ``make bench-targets``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import compare, sustained  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    Deadline,
    _finite,
    bench_stack,
    load_average,
    raise_keyboard_interrupt,
)
from bench.ttft import Target  # noqa: E402

TTFT_MS, TOKEN_DELAY_MS, TOKENS = 100.0, 20.0, 40
IDLE_SOCKETS = 1000


@dataclass
class Row:
    """One target: its figure (None when not measured), the limit, and how the figure was taken."""

    name: str
    limit: float
    unit: str
    figure: float | None = None
    note: str = ""
    at_least: bool = False
    """The target is a floor (figure >= limit), not a ceiling."""

    @property
    def verdict(self) -> str:
        if self.figure is None or math.isnan(self.figure):
            return "not measured"
        return "met" if (self.figure >= self.limit if self.at_least else self.figure <= self.limit) else "not met"


@dataclass
class TtftFigures:
    """Step 1's figures on one configuration, and daphne's CPU per message of the 20-client run."""

    p50_at_1: float
    p99_at_20: float
    p99_at_100: float
    cpu_ms_per_message_at_20: float
    errors: int


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """os.environ with these variables set (None: removed), restored after."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _target(stack: Any) -> Target:
    return Target(servers=stack.servers, session_key=stack.session_key, message_timeout_s=60.0,
                  upstream_pid=stack.upstream.process.pid)


async def _ttft_scenarios(target: Target, sequential: int) -> TtftFigures:
    await compare.ours(target, 1, 3, TTFT_MS, "warmup")
    one = (await compare.ours(target, 1, sequential, TTFT_MS, "t1")).stats()
    twenty = (await compare.ours(target, 20, compare.per_client(20, sequential), TTFT_MS, "t20")).stats()
    hundred = (await compare.ours(target, 100, compare.per_client(100, sequential), TTFT_MS, "t100")).stats()
    return TtftFigures(one["p50_ms"], twenty["p99_ms"], hundred["p99_ms"], twenty["server_cpu_ms_per_message"],
                       one["errors"] + twenty["errors"] + hundred["errors"])


def ttft_figures(sequential: int, deadline: Deadline) -> TtftFigures:
    with bench_stack(TTFT_MS, TOKEN_DELAY_MS, TOKENS, deadline) as stack:
        return asyncio.run(asyncio.wait_for(_ttft_scenarios(_target(stack), sequential), deadline.remaining()))


def long_answer_cpu(tokens: int, sequential: int, deadline: Deadline) -> float:
    """daphne CPU ms per message at 20 clients with `tokens`-token answers (after a warm-up)."""

    async def run(target: Target) -> float:
        await compare.ours(target, 1, 2, TTFT_MS, "warmup")
        side = await compare.ours(target, 20, compare.per_client(20, sequential), TTFT_MS, "long")
        if side.errors:
            raise BenchError(f"{side.errors} long answers failed")
        return float(side.stats()["server_cpu_ms_per_message"])

    with bench_stack(TTFT_MS, TOKEN_DELAY_MS, tokens, deadline) as stack:
        return asyncio.run(asyncio.wait_for(run(_target(stack)), deadline.remaining()))


def part(label: str, budget_s: float, deadline: Deadline, work: Callable[[Deadline], Any]) -> tuple[Any, str]:
    """Run one step within its budget (and what is left overall): (its result or None, why it is missing)."""
    print(f"\n== {label} ...", flush=True)
    started = time.monotonic()
    try:
        result = work(Deadline(min(budget_s, deadline.remaining())))
    except (BenchError, TimeoutError, RuntimeError, OSError) as exc:
        print(f"   {label}: not measured ({type(exc).__name__}: {exc})", flush=True)
        return None, f"not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    print(f"   {label}: done in {time.monotonic() - started:.0f} s", flush=True)
    return result, ""


def measure(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    deadline = Deadline(args.timeout)
    load_before = load_average()
    rows = {
        "p50_1": Row("added TTFT p50, 1 client", 2.0, "ms"),
        "p99_20": Row("added TTFT p99, 20 clients", 20.0, "ms"),
        "p99_100": Row("added TTFT p99, 100 clients", 100.0, "ms"),
        "cpu_msg": Row("server CPU per message (besides its token frames)", 2.0, "ms"),
        "cpu_token": Row("server CPU per token frame", 80.0, "µs"),
        "streams": Row("sustained streams per core at 50 tokens/s", 128.0, "streams", at_least=True),
        "idle": Row(f"server memory per idle socket ({IDLE_SOCKETS:,} sockets)", 25.0, "KiB"),
        "pg": Row("PostgreSQL + Redis / embedded, worst of the three TTFT figures", 1.5, "x"),
    }
    extra: dict[str, Any] = {"load_before": load_before}

    with environment(DATABASE_URL=None, REDIS_URL=None):
        embedded, why = part("added TTFT, embedded (SQLite, in-memory layer)", 180, deadline,
                             lambda d: ttft_figures(args.sequential, d))
    if embedded is not None:
        note = f"{embedded.errors} messages failed" if embedded.errors else ""
        rows["p50_1"].figure, rows["p99_20"].figure, rows["p99_100"].figure = (
            embedded.p50_at_1, embedded.p99_at_20, embedded.p99_at_100)
        for key in ("p50_1", "p99_20", "p99_100"):
            rows[key].note = note or (f"1 client x {args.sequential}, 20 clients x "
                                      f"{compare.per_client(20, args.sequential)}, 100 clients x "
                                      f"{compare.per_client(100, args.sequential)}")
        extra["embedded"] = asdict(embedded)
    else:
        for key in ("p50_1", "p99_20", "p99_100", "cpu_msg", "cpu_token", "pg"):
            rows[key].note = why

    if embedded is not None:
        with environment(DATABASE_URL=None, REDIS_URL=None):
            long_cpu, why = part(f"CPU per message at {args.long_tokens} tokens", 90, deadline,
                                 lambda d: long_answer_cpu(args.long_tokens, args.sequential, d))
        if long_cpu is not None:
            per_token_ms = (long_cpu - embedded.cpu_ms_per_message_at_20) / (args.long_tokens - TOKENS)
            rows["cpu_token"].figure = per_token_ms * 1000
            rows["cpu_msg"].figure = embedded.cpu_ms_per_message_at_20 - TOKENS * per_token_ms
            shared = (f"20 clients: {embedded.cpu_ms_per_message_at_20:.2f} ms/msg at {TOKENS} tokens, "
                      f"{long_cpu:.2f} at {args.long_tokens}")
            rows["cpu_token"].note = rows["cpu_msg"].note = shared
            extra["cpu_ms_per_message"] = {str(TOKENS): embedded.cpu_ms_per_message_at_20,
                                           str(args.long_tokens): long_cpu}
        else:
            rows["cpu_token"].note = rows["cpu_msg"].note = why

    with environment(DATABASE_URL=None, REDIS_URL=None):
        sustained_args = sustained.parse_args(["--step-s", str(args.step_s), "--max-streams", str(args.max_streams)])
        ramp, why = part("sustained streams", 200, deadline, lambda d: sustained.measure(sustained_args, d))
    if ramp is not None:
        print(sustained.render(ramp, sustained_args), flush=True)
        rows["streams"].figure = ramp.streams_per_core
        rows["streams"].note = (f"knee {ramp.knee} streams on 1 process (steps up to {args.max_streams}); "
                                f"by the p99 of all gaps: {ramp.loose_knee}")
        extra["sustained"] = sustained.as_json(ramp)
    else:
        rows["streams"].note = why

    try:
        idle_memory = importlib.import_module("bench.idle_memory")
    except ModuleNotFoundError:
        rows["idle"].note = "not measured: bench/idle_memory.py is not there"
    else:
        with environment(DATABASE_URL=None, REDIS_URL=None):
            kib, why = part(f"idle memory, {IDLE_SOCKETS:,} sockets", 150, deadline,
                            lambda d: idle_memory.measure(IDLE_SOCKETS, timeout_s=d.remaining()))
        rows["idle"].figure, rows["idle"].note = kib, why or "bench/idle_memory.py, RSS growth / sockets"

    if embedded is not None and args.database_url and args.redis_url:
        with environment(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url):
            backed, why = part("added TTFT, PostgreSQL + Redis", 180, deadline,
                               lambda d: ttft_figures(args.sequential, d))
        if backed is not None:
            ratios = {
                "p50 at 1": backed.p50_at_1 / embedded.p50_at_1,
                "p99 at 20": backed.p99_at_20 / embedded.p99_at_20,
                "p99 at 100": backed.p99_at_100 / embedded.p99_at_100,
            }
            worst = max(ratios, key=lambda key: ratios[key])
            rows["pg"].figure = ratios[worst]
            rows["pg"].note = (f"worst: {worst} ({_n(getattr(backed, _FIELD[worst]))} ms against "
                               f"{_n(getattr(embedded, _FIELD[worst]))}); "
                               + ", ".join(f"{key} {value:.2f}x" for key, value in ratios.items()))
            extra["postgres_redis"] = asdict(backed)
        else:
            rows["pg"].note = why
    elif embedded is not None:
        rows["pg"].note = "not measured: set --database-url and --redis-url (or BENCH_DATABASE_URL, BENCH_REDIS_URL)"

    extra["load_after"] = load_average()
    return list(rows.values()), extra


_FIELD = {"p50 at 1": "p50_at_1", "p99 at 20": "p99_at_20", "p99 at 100": "p99_at_100"}


def _n(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def _figure(row: Row) -> str:
    if row.figure is None or math.isnan(row.figure):
        return "-"
    value = row.figure
    return f"{value:.2f}" if row.unit == "x" else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _limit(row: Row) -> str:
    return f"{'>=' if row.at_least else '<='} {row.limit:g}"


def render(rows: list[Row], extra: dict[str, Any]) -> str:
    cpus = os.cpu_count() or 1
    width = max(len(row.name) for row in rows)
    lines = [
        "",
        f"Issue 16 targets (one daphne process; fake upstream {TTFT_MS:g} ms to the first token, {TOKENS} tokens "
        f"{TOKEN_DELAY_MS:g} ms apart)",
        f"{'target':<{width}}  {'limit':>10}  {'figure':>9}  {'unit':<7}  verdict        how",
    ]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {_limit(row):>10}  {_figure(row):>9}  {row.unit:<7}  "
                     f"{row.verdict:<13}  {row.note}")
    busy = extra["load_before"] >= cpus / 2
    lines += [
        "",
        f"host: {cpus} CPUs shared by daphne, the fake upstream and the benchmark clients; load average "
        f"{extra['load_before']:.1f} before, {extra['load_after']:.1f} after"
        + (" (other processes were busy: these figures are pessimistic, re-run on a quiet host)" if busy else ""),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/targets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=30,
                        help="messages at 1 client; at 20 and 100 clients each sends max(3, this / clients) (30)")
    parser.add_argument("--long-tokens", type=int, default=240,
                        help="answer length of the second CPU run, tokens (240)")
    parser.add_argument("--step-s", type=float, default=5.0, help="sustained.py's window per step, seconds (5)")
    parser.add_argument("--max-streams", type=int, default=512, help="sustained.py's largest step (512)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="PostgreSQL for the last row (BENCH_DATABASE_URL; a scratch database: the bench user "
                             "and its conversations stay in it)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"),
                        help="Redis for the last row (BENCH_REDIS_URL)")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall time limit, seconds (600)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the table here")
    parser.add_argument("--check", action="store_true", help="exit with status 1 unless every target is met")
    args = parser.parse_args(argv)
    if args.long_tokens <= TOKENS:
        parser.error(f"--long-tokens must be more than {TOKENS}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        rows, extra = measure(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench interrupted; everything was stopped", file=sys.stderr)
        return 130
    print(render(rows, extra))
    if args.json:
        payload = {
            "targets": [
                {**asdict(row), "verdict": row.verdict}
                for row in rows
            ],
            **extra,
        }
        args.json.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if args.check and any(row.verdict != "met" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
