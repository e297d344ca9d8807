"""The fake's model of Anthropic prompt caching, through the real SDK: breakpoints, the minimum cacheable
length, the 5-minute / 1-hour split in message_start and message_delta, lifetimes, the lookback and the 400s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest

from fake_upstream import FakeUpstream, Scenario
from fake_upstream.text import prompt_blocks

MODEL = "claude-sonnet-5-5"
EPHEMERAL = {"type": "ephemeral"}
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
WORDS = " ".join(f"w{i}" for i in range(60))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def claude(server: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    server.reset()
    server.prompt_cache.min_tokens = 50
    client = anthropic.AsyncAnthropic(api_key="k", base_url=server.anthropic_base_url, max_retries=0)
    yield client
    await client.close()


def block(text: str, marker: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "text", "text": text, **({"cache_control": marker} if marker else {})}


async def usage_of(claude: anthropic.AsyncAnthropic, messages: list[dict[str, Any]], **extra: Any) -> Any:
    stream = await claude.messages.create(model=MODEL, max_tokens=50, messages=messages, stream=True,  # type: ignore[call-overload]
                                          **extra)
    events = [event async for event in stream]
    start, delta = events[0].message.usage, next(e for e in events if e.type == "message_delta").usage
    # message_delta repeats the input counts as cumulative totals (the split rides along as an extra field).
    assert (delta.input_tokens, delta.cache_read_input_tokens, delta.cache_creation_input_tokens) == (
        start.input_tokens, start.cache_read_input_tokens, start.cache_creation_input_tokens)
    assert delta.cache_creation == start.cache_creation.model_dump()
    return start


async def test_write_then_read_with_the_split_by_ttl(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    system = [block(WORDS, ONE_HOUR)]
    history = [{"role": "user", "content": [block(WORDS + " more", EPHEMERAL)]},
               {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
    first = await usage_of(claude, history, system=system)
    blocks = prompt_blocks(server.requests[-1].json)
    system_tokens, history_tokens = blocks[0].tokens, blocks[1].tokens
    assert (system_tokens, history_tokens) == (64, 65)
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_1h_input_tokens == system_tokens
    assert first.cache_creation.ephemeral_5m_input_tokens == history_tokens
    assert first.cache_creation_input_tokens == system_tokens + history_tokens
    assert first.input_tokens == blocks[2].tokens + blocks[3].tokens

    again = await usage_of(claude, history, system=system)
    assert (again.cache_read_input_tokens, again.cache_creation_input_tokens) == (system_tokens + history_tokens, 0)
    assert again.input_tokens == first.input_tokens


async def test_a_prefix_below_the_minimum_is_not_cached(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.prompt_cache.min_tokens = None  # the model's documented minimum: 1024
    usage = await usage_of(claude, [{"role": "user", "content": [block(WORDS, EPHEMERAL)]}])
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens, usage.input_tokens) == (0, 0, 64)
    assert len(server.prompt_cache) == 0


async def test_entries_expire_after_their_ttl_and_a_read_renews_them(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    messages = [{"role": "user", "content": [block(WORDS, EPHEMERAL)]}]
    assert (await usage_of(claude, messages)).cache_creation_input_tokens == 64
    server.prompt_cache.advance(240)
    assert (await usage_of(claude, messages)).cache_read_input_tokens == 64  # read at 4 min: lives 5 more
    server.prompt_cache.advance(240)
    assert (await usage_of(claude, messages)).cache_read_input_tokens == 64
    server.prompt_cache.advance(301)
    assert (await usage_of(claude, messages)).cache_creation_input_tokens == 64


async def test_a_changed_prefix_misses_and_tool_choice_invalidates_only_messages(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    tools = [{"name": "t", "description": WORDS, "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}]
    messages = [{"role": "user", "content": [block(WORDS, EPHEMERAL)]}]
    first = await usage_of(claude, messages, tools=tools, tool_choice={"type": "auto"})
    tool_tokens = prompt_blocks(server.requests[-1].json)[0].tokens
    assert first.cache_creation_input_tokens == tool_tokens + 64
    other_choice = await usage_of(claude, messages, tools=tools, tool_choice={"type": "none"})
    assert (other_choice.cache_read_input_tokens, other_choice.cache_creation_input_tokens) == (tool_tokens, 64)
    changed = await usage_of(claude, [{"role": "user", "content": [block(WORDS + "!", EPHEMERAL)]}], tools=tools,
                             tool_choice={"type": "auto"})
    assert changed.cache_read_input_tokens == tool_tokens


async def test_the_lookback_finds_an_earlier_breakpoint_within_20_blocks(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    turns: list[dict[str, Any]] = [{"role": "user", "content": [block(WORDS, EPHEMERAL)]}]
    await usage_of(claude, turns)
    unmarked = [{"role": "user", "content": [block(WORDS)]}]
    near = unmarked + [{"role": "assistant", "content": f"a{i}"} if i % 2 == 0 else {"role": "user", "content": "u"}
                       for i in range(18)]
    near[-1] = {"role": "user", "content": [block("u", EPHEMERAL)]}
    assert (await usage_of(claude, near)).cache_read_input_tokens == 64
    server.prompt_cache.clear()  # forget near's own breakpoint, which far's prefix also holds
    await usage_of(claude, turns)
    far = unmarked + [{"role": "assistant", "content": f"a{i}"} if i % 2 == 0 else {"role": "user", "content": "u"}
                      for i in range(20)]
    far[-1] = {"role": "user", "content": [block("u", EPHEMERAL)]}
    assert (await usage_of(claude, far)).cache_read_input_tokens == 0


async def test_five_breakpoints_or_a_1h_after_a_5m_are_refused(
    server: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    five = [{"role": "user", "content": [block(f"b{i}", EPHEMERAL) for i in range(5)]}]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        await usage_of(claude, five)
    misordered = [{"role": "user", "content": [block("a", EPHEMERAL), block("b", ONE_HOUR)]}]
    with pytest.raises(anthropic.BadRequestError, match="ttl='1h'"):
        await usage_of(claude, misordered)


async def test_scripted_counts_win_over_the_cache(server: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    server.enqueue(Scenario(input_tokens=7, cached_tokens=11, cache_creation_tokens=5, cache_write_1h_tokens=2))
    usage = await usage_of(claude, [{"role": "user", "content": [block(WORDS, EPHEMERAL)]}])
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (7, 11, 5)
    assert (usage.cache_creation.ephemeral_5m_input_tokens, usage.cache_creation.ephemeral_1h_input_tokens) == (3, 2)
    assert len(server.prompt_cache) == 0
