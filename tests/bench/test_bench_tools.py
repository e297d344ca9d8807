"""The benchmarks' own logic: bench/compare.py's SSE client against the fake upstream's real OpenAI stream, and
bench/sustained.py's verdict on a step (holds, holds loosely, breaks) and its knee."""

from __future__ import annotations

import pytest

from bench.compare import SseClient
from bench.harness import BenchError
from bench.sustained import StepResult, Stream, knee, parse_args, step_result
from fake_upstream import FakeUpstream, Scenario


async def test_sse_client_times_the_first_content_event_and_keeps_its_connection() -> None:
    async with FakeUpstream(ttft_ms=80, token_delay_ms=5, default_tokens=10) as server:
        client = SseClient(server.port, "sk-bench-test")
        try:
            first = await client.first_token_s("one", 10)
            writer = client.writer
            second = await client.first_token_s("two", 10)
            assert client.writer is writer
        finally:
            await client.close()
        assert server.connections == 1
    assert 0.08 <= first < 2 and 0.08 <= second < 2


async def test_sse_client_refuses_an_error_status() -> None:
    async with FakeUpstream(default_tokens=3) as server:
        server.enqueue(Scenario(status=503))
        client = SseClient(server.port, "sk-bench-test")
        try:
            with pytest.raises(BenchError, match="HTTP 503"):
                await client.first_token_s("refused", 10)
            assert await client.first_token_s("after", 10) < 2  # a new connection after the refusal
        finally:
            await client.close()


def _step(streams: list[Stream]) -> StepResult:
    args = parse_args(["--step-s", "1"])
    return step_result(len(streams), streams, args, (0.0, 0.0, 0.0), (0.5, 0.1, 0.1))


def _steady(gaps: list[float] | None = None) -> Stream:
    return Stream(frames=50, gaps_ms=gaps or [20.0] * 50)


def test_a_step_holds_when_no_stream_waits_past_twice_the_pacing() -> None:
    result = _step([_steady() for _ in range(16)])
    assert result.holds and result.holds_loosely
    assert result.per_stream_max_gap_ms["max"] == 20.0 and result.server_cpu_percent == 50.0


def test_one_stalled_stream_of_sixteen_breaks_the_strict_rule_but_not_the_loose_one() -> None:
    result = _step([_steady([20.0] * 49 + [45.0])] + [_steady() for _ in range(15)])
    assert not result.holds and result.holds_loosely
    assert result.over_limit_streams == 1


def test_missing_frames_or_a_failed_message_break_both_rules() -> None:
    short = _step([Stream(frames=30, gaps_ms=[20.0] * 30) for _ in range(16)])
    failed = _step([_steady() for _ in range(15)] + [Stream(error="timeout")])
    assert not short.holds_loosely and not failed.holds_loosely


def test_the_knee_is_the_last_step_before_the_first_that_breaks() -> None:
    holding, broken = _step([_steady()]), _step([Stream()])
    loose = _step([_steady([20.0] * 49 + [45.0])] + [_steady() for _ in range(15)])
    holding.streams, loose.streams, broken.streams = 16, 32, 64
    assert knee([holding, loose, broken]) == 16
    assert knee([holding, loose, broken], loosely=True) == 32
    assert knee([broken, holding]) == 0
