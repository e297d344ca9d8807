"""What the Anthropic stream says about usage and thinking, read through the real SDK from the fake upstream's
documented wire format: message_start's counts kept when the stream breaks, message_delta's cumulative counts
replacing (never added to) them, the 5-minute / 1-hour split of cache writes, thinking as `Thinking` events."""

from __future__ import annotations

from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn, ProviderEvent, TextDelta, Thinking, Usage
from pam_hybrid.domain.exceptions import ProviderError
from pam_hybrid.providers.anthropic_messages import AnthropicProvider, _UsageTally
from pam_hybrid.providers.base import ModelRequest

MODEL = "claude-sonnet-5-5"


def request(*turns: ChatTurn) -> ModelRequest:
    return ModelRequest(model=MODEL, turns=turns or (ChatTurn("user", "Explain caching."),), max_output_tokens=200)


async def events_of(model_request: ModelRequest) -> list[ProviderEvent]:
    return [event async for event in AnthropicProvider().stream(model_request, pam_settings())]


def usages(events: list[Any]) -> list[Usage]:
    return [event for event in events if isinstance(event, Usage)]


async def test_message_start_counts_come_at_once_and_survive_a_break(fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four", input_tokens=1200, cached_tokens=3000,
                                   cache_creation_tokens=500, cache_write_1h_tokens=200, reset_after_tokens=2))
    seen: list[ProviderEvent] = []
    with pytest.raises(ProviderError):
        async for event in AnthropicProvider().stream(request(), pam_settings()):
            seen.append(event)
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["one ", "two "]
    (start,) = usages(seen)
    assert start == Usage(input_tokens=1200, output_tokens=1, cached_input_tokens=3000,
                          cache_creation_input_tokens=500, cache_write_1h_tokens=200, partial=True)
    assert start.cache_write_5m_tokens == 300
    assert seen.index(start) < next(i for i, e in enumerate(seen) if isinstance(e, TextDelta))


async def test_message_delta_counts_are_cumulative_and_replace_the_start(fake_upstream: FakeUpstream) -> None:
    # message_start and message_delta both carry the input and cache counts: added, they would double.
    fake_upstream.enqueue(Scenario(text="a b c", input_tokens=40, cached_tokens=900, cache_creation_tokens=60,
                                   cache_write_1h_tokens=60, output_tokens=7))
    start, final = usages(await events_of(request()))
    assert start.partial and not final.partial
    assert final == Usage(input_tokens=40, output_tokens=7, cached_input_tokens=900, cache_creation_input_tokens=60,
                          cache_write_1h_tokens=60)
    assert (final.cache_write_5m_tokens, final.total_input_tokens) == (0, 1000)
    wire = fake_upstream.requests[-1]
    assert wire.outcome == "completed"


async def test_thinking_pieces_are_thinking_not_text(fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(thinking="Let me weigh this carefully.", text="Yes."))
    events = await events_of(request())
    thinking = [e for e in events if isinstance(e, Thinking)]
    assert "".join(t.text for t in thinking) == "Let me weigh this carefully."
    assert thinking[-1] == Thinking("")  # the signature_delta that closes the block
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Yes."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(events.index(t) < first_text for t in thinking)


async def test_a_redacted_thinking_block_is_thinking(fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(redacted_thinking=True, text="Fine."))
    events = await events_of(request())
    assert [type(e).__name__ for e in events if not isinstance(e, Usage)] == [
        "Accepted", "Thinking", "TextDelta", "Finish"]


def test_counts_a_message_delta_leaves_out_keep_message_starts() -> None:
    # An older message_delta carries only output_tokens: the SDK keeps message_start's other counts, and so do we.
    start_usage = {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 700,
                   "cache_creation_input_tokens": 90,
                   "cache_creation": {"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 40}}
    tally = _UsageTally()
    tally.take(start_usage)
    tally.take({"output_tokens": 12})
    assert tally.usage(partial=False) == Usage(input_tokens=30, output_tokens=12, cached_input_tokens=700,
                                               cache_creation_input_tokens=90, cache_write_1h_tokens=40)
