"""How a conversation's length changes what one message costs: added time to first token and server CPU, turn by
turn, in one conversation that grows.

One daphne process as in production (``bench/harness.py``: embedded defaults, or DATABASE_URL/REDIS_URL), the fake
upstream at ``--ttft-ms`` to the first token and ``--tokens`` tokens per answer, one client, one socket, one
conversation: ``--turns`` messages one after another, each sent into the conversation the first one opened, so the
history the server reads, routes on, trims to the context budget and sends upstream grows by two turns a message.
Per message: the added TTFT (client-seen first token - send - the fake's ``--ttft-ms``) and daphne's CPU for it
(every thread's run time from /proc/PID/task/*/schedstat, read before the send and after the answer's `end` and a
short settle). Printed per ``--bucket`` of turns: median and max added TTFT, median CPU. 127.0.0.1 only, bounded by
``--timeout``; everything is torn down on exit.

    .venv/bin/python bench/long_conversation.py [--turns 40] [--route complex]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.typing import Origin  # noqa: E402

from bench.floor import cpu_seconds  # noqa: E402
from bench.harness import BenchError, Deadline, Stack, bench_stack, load_average  # noqa: E402

HOST = "127.0.0.1"
SETTLE_S = 0.05
QUESTION = "Go on: what else should I weigh about that, and why?"


@dataclass
class Turn:
    """One message of the conversation: its number, added TTFT (ms) and the server's CPU for it (ms)."""

    number: int
    added_ms: float
    cpu_ms: float


async def ask(ws: ClientConnection, conversation_id: str | None, limit_s: float, route: str) -> tuple[float, str]:
    """Send one message and read its answer to `end`: (seconds from send to the first token, conversation id)."""
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "content": QUESTION, "conversation_id": conversation_id,
                              "stream": True, "route": route, "client_msg_id": uuid.uuid4().hex}))
    first: float | None = None
    async with asyncio.timeout(limit_s):
        while True:
            data: dict[str, Any] = json.loads(await ws.recv())
            kind = data.get("chunk_type")
            if kind == "start":
                conversation_id = data["metadata"]["conversation_id"]
            elif kind == "token" and first is None:
                first = time.perf_counter() - sent
            elif kind == "error":
                raise BenchError(f"error frame: {data.get('content')}")
            elif kind == "end":
                if first is None or conversation_id is None:
                    raise BenchError("an answer ended without a token or a conversation")
                return first, conversation_id


async def converse(stack: Stack, args: argparse.Namespace, deadline: Deadline) -> list[Turn]:
    server = stack.servers[0]
    turns: list[Turn] = []
    async with connect(f"ws://{HOST}:{server.port}/ws/chat/", origin=Origin(f"http://{HOST}:{server.port}"),
                       additional_headers={"Cookie": f"sessionid={stack.session_key}"}, proxy=None,
                       open_timeout=10) as ws:
        conversation_id: str | None = None
        for _ in range(args.warmup):  # conversations of their own: the clients, the tokenizers, the first queries
            await ask(ws, None, min(deadline.remaining(), 30), args.route)
        for number in range(1, args.turns + 1):
            before = cpu_seconds(server.pid)
            first_s, conversation_id = await ask(ws, conversation_id, min(deadline.remaining(), 30), args.route)
            await asyncio.sleep(SETTLE_S)  # the answer's save, which follows its `end`
            turns.append(Turn(number, first_s * 1000 - args.ttft_ms, (cpu_seconds(server.pid) - before) * 1000))
    return turns


def report(turns: list[Turn], args: argparse.Namespace, load: tuple[float, float]) -> None:
    print(f"One conversation of {args.turns} messages, route {args.route}, answers of {args.tokens} tokens; fake "
          f"upstream {args.ttft_ms:g} ms to the first token; 1 daphne process, 1 client")
    print(f"{'turns':>9} {'added TTFT median':>18} {'max':>7} {'server CPU ms/msg median':>25}")
    for start in range(0, len(turns), args.bucket):
        bucket = turns[start:start + args.bucket]
        added = [turn.added_ms for turn in bucket]
        print(f"{bucket[0].number:>4}-{bucket[-1].number:<4} {statistics.median(added):15.1f} ms {max(added):7.1f} "
              f"{statistics.median(turn.cpu_ms for turn in bucket):22.1f} ms")
    print(f"host load average {load[0]:.1f} before, {load[1]:.1f} after (2 cores shared with the fake and the client)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=40, help="messages in the conversation (40)")
    parser.add_argument("--bucket", type=int, default=10, help="turns per printed row (10)")
    parser.add_argument("--tokens", type=int, default=60, help="tokens per answer (60)")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="the fake's time to the first token (100)")
    parser.add_argument("--token-delay-ms", type=float, default=2.0, help="the fake's delay between tokens (2)")
    parser.add_argument("--route", choices=("simple", "complex"), default="simple", help="OpenAI or Anthropic")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured one-message conversations first (3)")
    parser.add_argument("--timeout", type=float, default=300.0, help="overall time limit, seconds (300)")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.bucket < 1:
        parser.error("--turns and --bucket must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.timeout)
    load_before = load_average()
    try:
        with bench_stack(args.ttft_ms, args.token_delay_ms, args.tokens, deadline) as stack:
            turns = asyncio.run(converse(stack, args, deadline))
    except BenchError as exc:
        print(f"long_conversation: {exc}", file=sys.stderr)
        return 1
    report(turns, args, (load_before, load_average()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
