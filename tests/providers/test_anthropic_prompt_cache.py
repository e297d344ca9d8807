"""Prompt caching on the complex route: where the Anthropic provider puts its cache_control breakpoints (as the
fake upstream received them), and what the next turn then reads from the cache (the fake's model of Anthropic's
documented rules, fake_upstream/prompt_cache.py)."""

from __future__ import annotations

from typing import Any

from fake_upstream import FakeUpstream
from fake_upstream.text import prompt_blocks
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn, TextDelta, Usage
from pam_hybrid.providers.anthropic_messages import AnthropicProvider
from pam_hybrid.providers.base import ModelRequest, ToolSpec

TOOLS = (
    ToolSpec("clock", "The current time in a time zone.", {"type": "object", "properties": {"tz": {"type": "string"}}}),
    ToolSpec("calculator", "Evaluate arithmetic.", {"type": "object", "properties": {"expr": {"type": "string"}}}),
)
EPHEMERAL = {"type": "ephemeral"}


def request(*turns: ChatTurn, system: str = "") -> ModelRequest:
    return ModelRequest(model="claude-sonnet-5-5", turns=turns, max_output_tokens=100, system=system, tools=TOOLS)


async def ask(model_request: ModelRequest) -> tuple[str, Usage]:
    text, final = "", None
    async for event in AnthropicProvider().stream(model_request, pam_settings()):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Usage) and not event.partial:
            final = event
    assert final is not None
    return text, final


def markers(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where the request's cache_control markers are: ("tool", name), ("system", i) or ("message", (i, j))."""
    found: list[tuple[str, Any]] = []
    found += [("tool", t["name"]) for t in body.get("tools", []) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += [("system", i) for i, block in enumerate(system) if "cache_control" in block]
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            found += [("message", (i, j)) for j, block in enumerate(message["content"]) if "cache_control" in block]
    return found


async def test_breakpoints_on_system_last_tool_and_the_history_before_the_newest_turn(
    fake_upstream: FakeUpstream,
) -> None:
    turns = (ChatTurn("user", "first"), ChatTurn("assistant", "reply"), ChatTurn("user", "second"))
    await ask(request(*turns, system="You are careful."))
    body = fake_upstream.requests[-1].json
    assert markers(body) == [("tool", "calculator"), ("system", 0), ("message", (1, 0))]
    assert body["system"] == [{"type": "text", "text": "You are careful.", "cache_control": EPHEMERAL}]
    assert body["messages"][1] == {"role": "assistant",
                                   "content": [{"type": "text", "text": "reply", "cache_control": EPHEMERAL}]}
    assert body["messages"][2] == {"role": "user", "content": "second"}


async def test_a_first_turn_marks_only_what_it_has(fake_upstream: FakeUpstream) -> None:
    await ask(request(ChatTurn("user", "hello")))
    body = fake_upstream.requests[-1].json
    assert markers(body) == [("tool", "calculator")] and "system" not in body


async def test_one_hour_ttl_when_configured(fake_upstream: FakeUpstream, settings: Any) -> None:
    settings.PAM_ANTHROPIC_CACHE_TTL = "1h"
    fake_upstream.prompt_cache.min_tokens = 1
    _, usage = await ask(request(ChatTurn("user", "a"), ChatTurn("assistant", "b"), ChatTurn("user", "c"), system="s"))
    body = fake_upstream.requests[-1].json
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert usage.cache_creation_input_tokens > 0 and usage.cache_write_1h_tokens == usage.cache_creation_input_tokens


async def test_caching_off_sends_no_marker(fake_upstream: FakeUpstream, settings: Any) -> None:
    settings.PAM_ANTHROPIC_PROMPT_CACHE = False
    _, usage = await ask(request(ChatTurn("user", "a"), ChatTurn("assistant", "b"), ChatTurn("user", "c"), system="s"))
    body = fake_upstream.requests[-1].json
    assert markers(body) == [] and body["system"] == [{"type": "text", "text": "s"}]
    assert (usage.cached_input_tokens, usage.cache_creation_input_tokens) == (0, 0)


async def test_the_second_turn_reads_what_the_first_wrote(fake_upstream: FakeUpstream) -> None:
    fake_upstream.prompt_cache.min_tokens = 1
    system = "You answer questions about the weather."
    first = (ChatTurn("user", "Is it raining in Paris today?"),)
    reply, usage_1 = await ask(request(*first, system=system))
    blocks_1 = prompt_blocks(fake_upstream.requests[-1].json)
    # Turn 1: tools and system written (their breakpoints), the question is plain input.
    assert [b.part for b in blocks_1] == ["tools", "tools", "system", "messages"]
    written_1 = sum(b.tokens for b in blocks_1[:3])
    assert (usage_1.cached_input_tokens, usage_1.cache_creation_input_tokens, usage_1.input_tokens) == (
        0, written_1, blocks_1[3].tokens)

    second = (*first, ChatTurn("assistant", reply), ChatTurn("user", "And tomorrow?"))
    _, usage_2 = await ask(request(*second, system=system))
    blocks_2 = prompt_blocks(fake_upstream.requests[-1].json)
    # Turn 2: reads tools + system, writes the first question and answer, the new question is plain input.
    assert (usage_2.cached_input_tokens, usage_2.cache_creation_input_tokens, usage_2.input_tokens) == (
        written_1, blocks_2[3].tokens + blocks_2[4].tokens, blocks_2[5].tokens)
    assert usage_2.cache_write_1h_tokens == 0

    third = (*second, ChatTurn("assistant", "Dry."), ChatTurn("user", "Thanks."))
    _, usage_3 = await ask(request(*third, system=system))
    blocks_3 = prompt_blocks(fake_upstream.requests[-1].json)
    assert usage_3.cached_input_tokens == sum(b.tokens for b in blocks_3[:5])
    assert usage_3.total_input_tokens == sum(b.tokens for b in blocks_3)
