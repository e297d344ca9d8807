"""bench/floor.py's measuring functions, small, against real daphne processes serving bench/floor_apps.py's apps:
frames arrive whole and in order, the CPU readings move, memory grows with sockets, and nothing is left running."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from bench.floor import (
    ask,
    cpu_per_frame,
    cpu_per_message,
    cpu_seconds,
    idle_memory,
    open_sockets,
    parse_args,
    running_floor,
    table,
)
from bench.floor_apps import END_FRAME, parse_request, token_frame
from bench.harness import BenchError

pytestmark = pytest.mark.live


def test_a_token_frame_is_shaped_like_the_gateways() -> None:
    frame = token_frame(12, "0b3c4c8e-54a1-4d3e-9a53-0f6f3e1e2a77")
    assert 90 <= len(frame.encode()) <= 130
    assert json.loads(frame) == {"chunk_type": "token", "content": " fox",
                                 "metadata": {"seq": 12, "message_id": "0b3c4c8e-54a1-4d3e-9a53-0f6f3e1e2a77"}}
    assert parse_request('{"n": 3, "gap_ms": 20}') == (3, 0.02)
    assert parse_request("not json") == (0, 0.0)


@pytest.mark.parametrize("app", ["raw", "channels"])
def test_the_floor_is_measured_against_a_real_daphne(app: str) -> None:
    with running_floor(app, 30, sockets=10) as server:
        pid = server.pid

        async def measure() -> None:
            async with open_sockets(server.port, 2) as sockets:
                await sockets[0].send(json.dumps({"n": 5, "gap_ms": 1}))
                frames = [json.loads(await asyncio.wait_for(sockets[0].recv(), 10)) for _ in range(6)]
            assert [frame["metadata"]["seq"] for frame in frames[:5]] == [1, 2, 3, 4, 5]
            assert len({frame["metadata"]["message_id"] for frame in frames[:5]}) == 1
            assert frames[5] == json.loads(END_FRAME)

            cost = await cpu_per_frame(server, clients=2, frames=5, gap_ms=1)  # checks count and order itself
            assert cost.long_run_cpu_s > 0 and cost.short_run_cpu_s > 0
            assert cost.long_run_cpu_s > cost.short_run_cpu_s
            assert await cpu_per_message(server, 5) > 0
            memory = await idle_memory(server, 10, settle_s=0.2)
            assert memory.after_kib > memory.before_kib

        asyncio.run(measure())
        assert cpu_seconds(pid) > 0
    assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped


def test_a_frame_out_of_order_or_missing_is_refused() -> None:
    with running_floor("raw", 30) as server:

        async def ask_wrong() -> None:
            async with open_sockets(server.port, 1) as (ws,):
                await ws.send(json.dumps({"n": 3, "gap_ms": 0}))  # the server answers 3; ask() then waits for 2
                await asyncio.wait_for(ws.recv(), 10)
                with pytest.raises(BenchError, match="frame 1 expected"):
                    await ask(ws, 2, 0)

        asyncio.run(ask_wrong())


def test_an_unknown_app_is_refused_and_the_table_says_what_did_not_run() -> None:
    with pytest.raises(BenchError, match="unknown app"), running_floor("nope", 5):
        pass
    rows = table([], parse_args(["--clients", "3", "--sockets", "10"]))
    assert rows[1] == ("CPU per token frame, 3 clients", "not run", "not run", "<= 80 µs")
