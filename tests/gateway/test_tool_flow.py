"""Tool calls through the real path: fake upstream -> real SDK -> provider -> gateway -> consumer -> database.

Each scenario mirrors what the providers really stream (see fake_upstream/) and checks what the
user and the database end up with: text, tool calls and results, usage and cost.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.domain.chunks import ToolCall
from pam_hybrid.models import Message, UsageRecord
from pam_hybrid.tools import registry
from pam_hybrid.tools.base import ToolArguments, ToolContext, tool
from tests.support.sockets import answer_frames, message, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

TWO_TOOLS = [
    FakeToolCall("calculate", {"expression": "(17 + 4) * 2"}),
    FakeToolCall("current_datetime", {"timezone": "Europe/Paris"}),
]


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f["chunk_type"] for f in frames]


async def ask(user: Any, route: str, content: str = "What is (17+4)*2, and what time is it in Paris?") -> list[Any]:
    return await answer_frames(user, message(content, route=route))


async def usage_of(message_id: str) -> UsageRecord:
    return await UsageRecord.objects.select_related("message").aget(message_id=message_id)


@pytest.mark.parametrize(("route", "provider"), [("simple", "openai"), ("complex", "anthropic")])
async def test_two_tools_in_one_turn_then_the_answer(
    user: Any, fake_upstream: FakeUpstream, route: str, provider: str
) -> None:
    fake_upstream.enqueue(
        Scenario(tool_calls=TWO_TOOLS, split_arguments=5, input_tokens=120, output_tokens=30),
        Scenario(text="It is 42, and in Paris it is evening.", input_tokens=300, output_tokens=12),
    )
    frames = await ask(user, route)

    assert kinds(frames)[:3] == ["start", "tool_call", "tool_call"]
    calls = [f["metadata"] for f in frames if f["chunk_type"] == "tool_call"]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("calculate", {"expression": "(17 + 4) * 2"}),
        ("current_datetime", {"timezone": "Europe/Paris"}),
    ]
    results = {f["metadata"]["name"]: f for f in frames if f["chunk_type"] == "tool_result"}
    assert set(results) == {"calculate", "current_datetime"}
    assert json.loads(results["calculate"]["content"]) == {"ok": True, "result": {"expression": "(17 + 4) * 2",
                                                                                   "result": 42}}
    assert results["current_datetime"]["metadata"]["ok"] is True
    assert text_of(frames) == "It is 42, and in Paris it is evening."

    end = frames[-1]
    assert end["chunk_type"] == "end" and end["metadata"]["provider"] == provider
    assert end["metadata"]["model_calls"] == 2
    assert (end["metadata"]["input_tokens"], end["metadata"]["output_tokens"]) == (420, 42)
    usage = await usage_of(end["metadata"]["message_id"])
    assert (usage.input_tokens, usage.output_tokens, usage.usage_estimated) == (420, 42, False)
    assert [(c["input_tokens"], c["output_tokens"]) for c in usage.model_calls] == [(120, 30), (300, 12)]
    assert usage.cost_usd == sum((Decimal(c["cost_usd"]) for c in usage.model_calls), Decimal(0))
    assert Decimal(end["metadata"]["cost_usd"]) == usage.cost_usd
    assert [t["name"] for t in usage.message.tool_calls] == ["calculate", "current_datetime"]

    # The second request carried the calls and their results back in the provider's own format.
    follow_up = fake_upstream.requests[-1].json
    if provider == "openai":
        assert [m["role"] for m in follow_up["messages"]] == ["user", "assistant", "tool", "tool"]
        assert [c["function"]["name"] for c in follow_up["messages"][1]["tool_calls"]] == [
            "calculate", "current_datetime"]
        assert follow_up["tools"][0]["type"] == "function"
    else:
        assert [m["role"] for m in follow_up["messages"]] == ["user", "assistant", "user"]
        assert [b["type"] for b in follow_up["messages"][1]["content"]] == ["tool_use", "tool_use"]
        assert [b["type"] for b in follow_up["messages"][2]["content"]] == ["tool_result", "tool_result"]
        assert "input_schema" in follow_up["tools"][0]


async def test_interleaved_openai_calls_are_assembled_by_index(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(
        Scenario(tool_calls=TWO_TOOLS, split_arguments=3, interleave_tool_calls=True),
        Scenario(text="Done."),
    )
    frames = await ask(user, "simple")
    calls = sorted(f["metadata"]["name"] for f in frames if f["chunk_type"] == "tool_call")
    assert calls == ["calculate", "current_datetime"]
    assert all(f["metadata"]["ok"] for f in frames if f["chunk_type"] == "tool_result")


@pytest.fixture
def slow_tools() -> Any:
    class NapArgs(ToolArguments):
        seconds: float

    @tool(name="nap", description="Sleeps (test tool).", timeout_ms=2000, arguments=NapArgs)
    async def nap(args: NapArgs, context: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(args.seconds)
        return {"slept": args.seconds}

    registry.register(nap)
    yield
    registry.unregister("nap")


async def test_calls_in_one_turn_run_concurrently(user: Any, fake_upstream: FakeUpstream, slow_tools: Any) -> None:
    fake_upstream.enqueue(
        Scenario(tool_calls=[FakeToolCall("nap", {"seconds": 0.5}), FakeToolCall("nap", {"seconds": 0.6})]),
        Scenario(text="Rested."),
    )
    started = time.perf_counter()
    frames = await ask(user, "simple")
    elapsed = time.perf_counter() - started
    durations = [f["metadata"]["duration_ms"] for f in frames if f["chunk_type"] == "tool_result"]
    assert len(durations) == 2 and min(durations) >= 450
    # Run one after the other they would need 1.1 s; together, about the slower one's 0.6 s.
    assert elapsed < 1.05
    assert text_of(frames) == "Rested."


async def test_failing_and_unknown_tools_become_error_results(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(
        Scenario(tool_calls=[
            FakeToolCall("calculate", {"expression": "1 / 0"}),
            FakeToolCall("launch_rockets", {}),
            FakeToolCall("calculate", '{"expression": '),
        ]),
        Scenario(text="Sorry, I could not compute that."),
    )
    frames = await ask(user, "complex")
    results = [f for f in frames if f["chunk_type"] == "tool_result"]
    assert len(results) == 3 and not any(r["metadata"]["ok"] for r in results)
    assert all(json.loads(r["content"])["ok"] is False for r in results)
    assert frames[-1]["chunk_type"] == "end" and text_of(frames) == "Sorry, I could not compute that."


@pytest.mark.parametrize(("route", "reason"), [("simple", "length"), ("complex", "max_tokens")])
async def test_call_cut_by_the_length_limit_never_runs(
    user: Any, fake_upstream: FakeUpstream, route: str, reason: str
) -> None:
    fake_upstream.enqueue(Scenario(text="Let me compute. ", tool_calls=[
        FakeToolCall("calculate", {"expression": "2 ** 10 + 1234567 * 7654321"})], split_arguments=4, finish=reason))
    frames = await ask(user, route)
    assert "tool_call" not in kinds(frames) and "tool_result" not in kinds(frames)
    end = frames[-1]
    assert end["chunk_type"] == "end" and end["metadata"]["finish_reason"] == reason
    assert end["metadata"]["status"] == "partial" and "length limit" in end["metadata"]["note"]
    assert len(fake_upstream.requests) == 1


async def test_tool_rounds_are_bounded(user: Any, fake_upstream: FakeUpstream, settings: Any) -> None:
    settings.PAM_MAX_TOOL_ROUNDS = 1
    fake_upstream.enqueue(
        Scenario(tool_calls=[FakeToolCall("calculate", {"expression": "1+1"})]),
        Scenario(text="Two."),
    )
    frames = await ask(user, "simple")
    assert text_of(frames) == "Two."
    assert [r.json.get("tool_choice") for r in fake_upstream.requests] == ["auto", "none"]


async def test_cached_input_is_priced_at_its_own_rate(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="Cached.", input_tokens=1_000_000, cached_tokens=800_000, output_tokens=0))
    frames = await ask(user, "simple", "hello again")
    meta = frames[-1]["metadata"]
    # gpt-4o-mini: 200k uncached x $0.15/M + 800k cached x $0.075/M.
    assert meta["cached_input_tokens"] == 800_000 and Decimal(meta["cost_usd"]) == Decimal("0.09")


async def test_anthropic_cache_reads_and_writes_are_priced(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text="Cached.", input_tokens=1_000_000, cached_tokens=2_000_000,
                                   cache_creation_tokens=400_000, output_tokens=100_000))
    frames = await ask(user, "complex", "hello again")
    meta = frames[-1]["metadata"]
    assert (meta["cached_input_tokens"], meta["cache_creation_input_tokens"]) == (2_000_000, 400_000)
    # claude-sonnet-5-5: 1M x $2 + 2M cache reads x $0.10 + 400k 5-minute writes x $2.50 + 100k x $10 output
    assert Decimal(meta["cost_usd"]) == Decimal("4.2")


async def test_unknown_model_records_tokens_with_cost_unknown(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_SIMPLE_MODEL = "llama-3.3-70b-local"
    fake_upstream.enqueue(Scenario(text="Local.", input_tokens=10, output_tokens=2))
    frames = await ask(user, "simple", "hi")
    meta = frames[-1]["metadata"]
    assert meta["cost_usd"] is None and (meta["input_tokens"], meta["output_tokens"]) == (10, 2)
    usage = await usage_of(meta["message_id"])
    assert usage.cost_usd is None and usage.input_tokens == 10


async def test_openai_refusal_is_shown(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(refusal="I can't help with that."))
    frames = await ask(user, "simple", "something bad")
    assert text_of(frames) == "I can't help with that."
    assert frames[-1]["metadata"]["status"] == "complete"


async def test_anthropic_thinking_is_not_shown_but_the_answer_is(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(thinking="Let me weigh this carefully first.", text="Here is the answer."))
    frames = await ask(user, "complex", "think about it")
    assert text_of(frames) == "Here is the answer."
    assert frames[-1]["metadata"]["finish_reason"] == "end_turn"


async def test_tools_never_see_another_users_data(
    user: Any, other_user: Any, fake_upstream: FakeUpstream
) -> None:
    secret = "mallory-secret-launch-code"
    conversation = await other_user.conversations.acreate(title="private")
    await Message.objects.acreate(conversation=conversation, role="user", content=f"please remember {secret}")
    fake_upstream.enqueue(
        Scenario(tool_calls=[FakeToolCall("search_conversations", {"query": secret}),
                             FakeToolCall("my_usage", {"days": 30})]),
        Scenario(text="Nothing found."),
    )
    frames = await ask(user, "simple", "find the launch code")
    results = {f["metadata"]["name"]: json.loads(f["content"]) for f in frames if f["chunk_type"] == "tool_result"}
    assert results["search_conversations"]["ok"] and results["search_conversations"]["result"]["count"] == 0
    assert results["my_usage"]["result"]["requests"] == 0
    assert "please remember" not in json.dumps(frames) and "private" not in json.dumps(frames)


def test_tool_call_value_is_what_providers_yield() -> None:
    call = ToolCall(call_id="call_1", name="calculate", arguments_json='{"expression": "1+1"}')
    assert json.loads(call.arguments_json) == {"expression": "1+1"}

