"""Sending one answer: tokens paced by the server's knobs, the scenario's faults and hangs, as an event stream or
as one JSON body."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from fake_upstream.connection import HttpConnection, StopConnection
from fake_upstream.dialects import Dialect
from fake_upstream.records import RecordedRequest, conclude
from fake_upstream.scenarios import Scenario


class Knobs(Protocol):
    """The server's knobs an answer reads as it goes (see FakeUpstream): a change reaches answers under way."""

    ttft_ms: float
    token_delay_ms: float
    ping_interval_ms: float
    hang_limit_ms: float | None


async def stream(
    conn: HttpConnection, record: RecordedRequest, dialect: Dialect, scenario: Scenario, knobs: Knobs
) -> None:
    """The answer as an event stream: status line, preamble, one step per output unit on time, then the finale,
    unless a fault of the scenario ends it first."""
    answer = dialect.answer
    ttft_ms, token_delay_ms = _delays(scenario, knobs)
    hang_at = scenario.hang_point()
    fault_points = {
        scenario.error_after_tokens,
        scenario.close_after_tokens,
        scenario.reset_after_tokens,
        scenario.malformed_after_tokens,
        hang_at,
    }

    if scenario.hang_before_headers:
        await _hang(conn, record, scenario, knobs)
    record.status = 200
    # A server that means to close after the body says so (RFC 9112 9.6): without it the client may pool the
    # connection and send its next request into the closing socket.
    closes = scenario.close_after_tokens is not None
    await conn.start_event_stream({**dialect.response_headers(), **scenario.headers}, keep_alive=not closes)
    for event in dialect.preamble():
        await conn.send_chunk(event)

    steps = dialect.steps()
    n_units = len(answer.schedule)
    for sent in range(n_units + 1):
        if sent < n_units or sent in fault_points:
            # Token k is due ttft + k * delay after the request came in: a late token does not delay the
            # next ones, so the stream keeps its nominal duration even when the process is busy.
            await _sleep_until(record.received_at + (ttft_ms + sent * token_delay_ms) / 1000)
        if sent == hang_at:
            await _hang(conn, record, scenario, knobs, dialect.ping() if scenario.ping_while_hanging else None)
        if await _ended_by_fault(conn, record, dialect, scenario, sent):
            return
        if sent < n_units:
            events = next(steps)
            record.tokens_sent = sent + 1
            if record.first_token_at is None and events:
                record.first_token_at = time.monotonic()
            for event in events:
                await conn.send_chunk(event)

    for event in dialect.finale(answer.default_output_tokens()):
        await conn.send_chunk(event)
    conclude(record, "completed")
    await conn.end_chunks()


async def reply_json(
    conn: HttpConnection,
    record: RecordedRequest,
    dialect: Dialect,
    scenario: Scenario,
    keep_alive: bool,
    knobs: Knobs,
) -> None:
    """Minimal non-streaming answer: waits as long as the stream would take, then one JSON body. Any hang
    of the scenario happens before the status line; faults inside the stream do not apply."""
    answer = dialect.answer
    if scenario.hang_before_headers or scenario.hang_point() is not None:
        await _hang(conn, record, scenario, knobs)
    ttft_ms, token_delay_ms = _delays(scenario, knobs)
    units = len(answer.schedule)
    await _sleep_until(record.received_at + (ttft_ms + token_delay_ms * max(units - 1, 0)) / 1000)
    headers = {**dialect.response_headers(), **scenario.headers}
    record.tokens_sent = units
    record.status = 200
    conclude(record, "completed")
    await conn.send_json(200, dialect.complete_body(answer.default_output_tokens()), headers, keep_alive)


async def _ended_by_fault(
    conn: HttpConnection, record: RecordedRequest, dialect: Dialect, scenario: Scenario, sent: int
) -> bool:
    """Play the scenario's fault due after ``sent`` units, if any: True when it ended the stream cleanly (an
    in-band error); StopConnection when it left the connection unusable; False when there is none."""
    if sent == scenario.error_after_tokens:
        conclude(record, "error_in_band")
        await conn.send_chunk(dialect.in_band_error())
        await conn.end_chunks()
        return True
    if sent == scenario.close_after_tokens:
        conclude(record, "closed_early")
        await conn.end_chunks()
        raise StopConnection
    if sent == scenario.reset_after_tokens:
        conclude(record, "reset")
        conn.reset()
        raise StopConnection
    if sent == scenario.malformed_after_tokens:
        conclude(record, "malformed")
        await conn.send_chunk(dialect.malformed(sent))
        raise StopConnection  # closed without the terminating chunk
    return False


def _delays(scenario: Scenario, knobs: Knobs) -> tuple[float, float]:
    """This request's (ttft_ms, token_delay_ms): the scenario's overrides, else the server's knobs."""
    ttft_ms = scenario.ttft_ms if scenario.ttft_ms is not None else knobs.ttft_ms
    token_delay_ms = scenario.token_delay_ms if scenario.token_delay_ms is not None else knobs.token_delay_ms
    return ttft_ms, token_delay_ms


async def _pause(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def _sleep_until(deadline: float) -> None:
    """Sleep until a ``time.monotonic()`` deadline (the event loop's clock too); no-op if it has passed."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _hang(
    conn: HttpConnection, record: RecordedRequest, scenario: Scenario, knobs: Knobs, ping: bytes | None = None
) -> None:
    """Send nothing (or only ``ping`` chunks) until cancelled by the client's disconnect or the server's
    stop; or, once the hang limit has passed, conclude "hang_expired" and leave the connection to close."""
    limit_ms = scenario.hang_limit_ms if scenario.hang_limit_ms is not None else knobs.hang_limit_ms

    async def silence() -> None:
        while ping is not None:
            await _pause(knobs.ping_interval_ms)
            await conn.send_chunk(ping)
        await asyncio.Event().wait()

    try:
        await asyncio.wait_for(silence(), None if limit_ms is None else limit_ms / 1000)
    except TimeoutError:
        conclude(record, "hang_expired")
        raise StopConnection from None
