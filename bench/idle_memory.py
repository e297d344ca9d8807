"""Server memory per idle socket: open N authenticated chat sockets to one daphne process and read its RSS growth.

The set-up is bench/harness.py's (temporary SQLite database, a logged-in session, the production server, all on
127.0.0.1). The server is warmed first (one whole answer, then a few sockets opened, pinged and closed), so that
first-use imports, pools and tokenizers are not counted, and its memory is left to settle. Then N sockets open, each
pinged until it answers (its consumer is then connected and in its groups); once the RSS (VmRSS) settles again, the
growth divided by N is what an idle socket costs. Every socket closes and the server stops at the end; `--timeout`
bounds the whole run.

    .venv/bin/python bench/idle_memory.py                 # 1,000 sockets
    .venv/bin/python bench/idle_memory.py --sockets 200

`measure(n)` returns the KiB per socket, for other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import HOST, BenchError, Deadline, Server, bench_stack, with_handshake_retries  # noqa: E402

TARGET_KIB = 25.0
WARM_SOCKETS = 20
SETTLE_S = 1.0
SETTLE_TRIES = 60
OPEN_AT_ONCE = 50


def rss_kib(pid: int) -> int:
    """The process's resident set size, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class _Retries:
    count = 0


    @classmethod
    def counted(cls) -> None:
        cls.count += 1


async def _open(stack: contextlib.AsyncExitStack, server: Server, session_key: str) -> ClientConnection:
    """An authenticated socket the server has served a ping on; a dropped handshake is retried and counted."""
    return await with_handshake_retries(lambda: _open_once(stack, server, session_key), _Retries.counted)


async def _open_once(stack: contextlib.AsyncExitStack, server: Server, session_key: str) -> ClientConnection:
    ws = await stack.enter_async_context(connect(
        f"ws://{HOST}:{server.port}/ws/chat/", origin=Origin(f"http://{HOST}:{server.port}"),
        additional_headers={"Cookie": f"sessionid={session_key}"}, proxy=None, open_timeout=30,
    ))
    await ws.send('{"type": "ping"}')
    reply = await asyncio.wait_for(ws.recv(), 30)
    if '"pong"' not in str(reply):
        raise RuntimeError(f"the socket was not served: {reply!r}")
    return ws


async def _answer(ws: ClientConnection) -> None:
    """One whole answer on this socket: the server's first answer builds what every later one reuses (SDK clients,
    tokenizers, the database connection), none of which is an idle socket's."""
    await ws.send(json.dumps({"type": "message", "content": "Warm up.", "conversation_id": None, "stream": True,
                              "route": "simple", "client_msg_id": uuid.uuid4().hex}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame.get("chunk_type") == "end":
            return
        if frame.get("chunk_type") == "error" or frame.get("type") == "error":
            raise RuntimeError(f"the warm-up answer failed: {frame}")


async def settled_rss(pid: int, settle_s: float = SETTLE_S, tries: int = SETTLE_TRIES) -> int:
    """VmRSS (KiB) once two readings `settle_s` apart differ by at most 0.2 %: the first socket starts warm-ups in the
    background (SDK clients, tokenizers) whose memory must not be counted as the sockets'."""
    previous = rss_kib(pid)
    for _ in range(tries):
        await asyncio.sleep(settle_s)
        current = rss_kib(pid)
        if abs(current - previous) <= previous * 0.002:
            return current
        previous = current
    raise BenchError(f"daphne's memory did not settle within {settle_s * tries:g} s")


async def _sockets(server: Server, session_key: str, n: int, cold: bool) -> tuple[int, int]:
    """RSS (KiB) with the warm-up sockets closed (or of the cold server), then with `n` sockets open and idle."""
    if not cold:
        async with contextlib.AsyncExitStack() as warm:
            await _answer(await _open(warm, server, session_key))
            await asyncio.gather(*(_open(warm, server, session_key) for _ in range(WARM_SOCKETS)))
    before = await settled_rss(server.pid)
    async with contextlib.AsyncExitStack() as stack:
        for start in range(0, n, OPEN_AT_ONCE):
            burst = range(start, min(n, start + OPEN_AT_ONCE))
            await asyncio.gather(*(_open(stack, server, session_key) for _ in burst))
        after = await settled_rss(server.pid)
    return before, after


def measure(n: int, *, timeout_s: float = 300.0) -> float:
    """KiB of server RSS per idle authenticated socket, with `n` sockets open to one warmed daphne process."""
    return _run(n, timeout_s)[2]


def _extra_env() -> dict[str, str]:
    """PYTHONPATH for the server when IDLE_MEMORY_SITE names a directory to load a sitecustomize from (to profile its
    allocations with tracemalloc, say); nothing otherwise."""
    site = os.environ.get("IDLE_MEMORY_SITE")
    return {"PYTHONPATH": site} if site else {}


def _run(n: int, timeout_s: float, cold: bool = False) -> tuple[int, int, float]:
    deadline = Deadline(timeout_s)
    with bench_stack(100, 20, 5, deadline, extra_env=_extra_env()) as run:
        before, after = asyncio.run(asyncio.wait_for(_sockets(run.servers[0], run.session_key, n, cold),
                                                     deadline.remaining()))
    return before, after, (after - before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000, help="idle sockets to open (1000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="overall time limit, seconds (300)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up: the sockets are the server's first (what a burst of reconnects to a restarted"
                             " server costs, first-use work included)")
    args = parser.parse_args()
    started = time.monotonic()
    before, after, per_socket = _run(args.sockets, args.timeout, args.cold)
    state = "cold" if args.cold else "warm"
    print(f"daphne RSS: {before / 1024:.1f} MiB {state}, {after / 1024:.1f} MiB with {args.sockets} idle sockets "
          f"({time.monotonic() - started:.0f} s; {_Retries.count} handshakes retried)")
    if args.cold:
        return 0  # first-use work included: not the idle-socket figure the target is about
    met = "met" if per_socket <= TARGET_KIB else "NOT MET"
    print(f"target  idle socket: server memory <= {TARGET_KIB:g} KiB: {per_socket:.1f} KiB  {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
