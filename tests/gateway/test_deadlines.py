"""The gateway's own clocks around a provider's events: the first token is due a fixed time after the request,
however early the provider accepted it; pings and bookkeeping never count as progress; visible thinking does,
within its own limit."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator

import pytest

from pam_hybrid.conf import PamSettings, pam_settings
from pam_hybrid.domain.chunks import Accepted, ProviderEvent, TextDelta, Thinking, Usage
from pam_hybrid.domain.exceptions import ProviderTimedOut
from pam_hybrid.gateway.deadlines import with_deadlines


async def events_at(*timed: tuple[float, ProviderEvent]) -> AsyncGenerator[ProviderEvent, None]:
    for delay_s, event in timed:
        await asyncio.sleep(delay_s)
        yield event


def limits(first_token_ms: int, idle_ms: int = 10_000, thinking_ms: int = 10_000) -> PamSettings:
    return dataclasses.replace(pam_settings(), first_token_timeout_ms=first_token_ms, idle_timeout_ms=idle_ms,
                               thinking_timeout_ms=thinking_ms)


async def test_acceptance_does_not_restart_the_first_token_clock() -> None:
    started = time.perf_counter()
    # Accepted at 0.25 s, text at 0.5 s: past the 0.4 s limit, although within 0.4 s of the acceptance.
    events = events_at((0.25, Accepted()), (0.25, TextDelta("late")))
    with pytest.raises(ProviderTimedOut, match="before the first token"):
        async for _ in with_deadlines(events, limits(400), started):
            pass
    assert time.perf_counter() - started >= 0.38


async def test_bookkeeping_is_not_progress_but_text_is() -> None:
    started = time.perf_counter()
    events = events_at((0.1, Accepted()), (0.1, Usage(1, 0)), (0.1, TextDelta("a")), (0.3, TextDelta("b")))
    seen = [e async for e in with_deadlines(events, limits(400, idle_ms=400), started)]
    assert [type(e) for e in seen] == [Accepted, Usage, TextDelta, TextDelta]


async def test_a_gap_between_tokens_longer_than_the_idle_limit_times_out() -> None:
    events = events_at((0.0, TextDelta("a")), (0.3, TextDelta("b")))
    with pytest.raises(ProviderTimedOut, match="between tokens"):
        async for _ in with_deadlines(events, limits(400, idle_ms=150), time.perf_counter()):
            pass


async def test_thinking_longer_than_the_first_token_limit_is_not_cut() -> None:
    # Thinking from 0.1 s to 0.7 s, text at 0.8 s: twice the 0.4 s first-token limit.
    thinking = [(0.1, Thinking("hmm ")) for _ in range(7)]
    events = events_at(*thinking, (0.1, TextDelta("answer")))
    seen = [e async for e in with_deadlines(events, limits(400, idle_ms=300), time.perf_counter())]
    assert seen[-1] == TextDelta("answer") and len(seen) == 8


async def test_a_stall_between_thinking_pieces_times_out() -> None:
    events = events_at((0.05, Thinking("a")), (0.5, Thinking("b")))
    with pytest.raises(ProviderTimedOut, match="between thinking pieces"):
        async for _ in with_deadlines(events, limits(2000, idle_ms=200), time.perf_counter()):
            pass


async def test_thinking_beyond_its_own_limit_times_out() -> None:
    started = time.perf_counter()
    events = events_at(*[(0.05, Thinking("more ")) for _ in range(40)], (0.0, TextDelta("late")))
    with pytest.raises(ProviderTimedOut, match="thinking beyond its limit"):
        async for _ in with_deadlines(events, limits(5000, idle_ms=200, thinking_ms=300), started):
            pass
    assert time.perf_counter() - started < 1.5
