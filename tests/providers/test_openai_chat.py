"""What an OpenAI(-compatible) stream says besides text, read through the real SDK from the fake upstream:
reasoning tokens in the usage, cached prompt tokens, and reasoning streamed by compatible servers as `Thinking`."""

from __future__ import annotations

import pytest

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn, ProviderEvent, TextDelta, Thinking, Usage
from pam_hybrid.providers.base import ModelRequest
from pam_hybrid.providers.openai_chat import OpenAIProvider


async def events_of() -> list[ProviderEvent]:
    request = ModelRequest(model="gpt-4o-mini", turns=(ChatTurn("user", "Why?"),), max_output_tokens=200)
    return [event async for event in OpenAIProvider().stream(request, pam_settings())]


async def test_reasoning_and_cached_tokens_are_read_from_the_usage(fake_upstream: FakeUpstream) -> None:
    # Official OpenAI: the reasoning is not streamed, but counts in completion_tokens and reasoning_tokens.
    fake_upstream.enqueue(Scenario(thinking="one two three four", text="Because.", input_tokens=2000,
                                   cached_tokens=1536))
    events = await events_of()
    assert not any(isinstance(e, Thinking) for e in events)
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage == Usage(input_tokens=2000, output_tokens=5, cached_input_tokens=1536, input_includes_cached=True,
                          reasoning_tokens=4)
    assert (usage.uncached_input_tokens, usage.total_input_tokens) == (464, 2000)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_streamed_reasoning_is_thinking_not_text(fake_upstream: FakeUpstream, field: str) -> None:
    fake_upstream.enqueue(Scenario(thinking="First, the premise.", text="So yes.", reasoning_field=field))  # type: ignore[arg-type]
    events = await events_of()
    assert "".join(e.text for e in events if isinstance(e, Thinking)) == "First, the premise."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "So yes."
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert (usage.output_tokens, usage.reasoning_tokens) == (5, 3)
