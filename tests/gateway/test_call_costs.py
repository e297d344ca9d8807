"""What every provider call cost, one usage row each: realistic streams through the real SDKs against the fake
upstream, each row's exact tokens and exact Decimal cost from the shipped price data.

Rates used (pam_hybrid/pricing/prices.toml, USD per million): gpt-4o-mini input 0.15, cached 0.075, output 0.60;
claude-sonnet-5-5 input 2, output 10, cache read 0.10 (since 2026-10-07), 5-minute writes 2.50, 1-hour writes 4.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.models import ModelCallRecord, UsageRecord
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.tokens import estimate_input_tokens, estimate_output_tokens
from pam_hybrid.tools.registry import all_tools
from tests.support.answers import saved_answer, settled
from tests.support.sockets import answer_frames, connect, message, stop_after_first_token, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

MINI, SONNET = "gpt-4o-mini", "claude-sonnet-5-5"
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."


@pytest.fixture(autouse=True)
def quick_recovery(settings: Any) -> None:
    settings.PAM_RETRY_BACKOFF_MS = 10
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 400
    settings.PAM_IDLE_TIMEOUT_MS = 400


def usd(text: str) -> Decimal:
    return Decimal(text)


def per_million(*parts: tuple[int, str]) -> Decimal:
    """Sum of tokens x rate (USD per million), to the 8 places a cost is stored with."""
    return (sum((Decimal(tokens) * Decimal(rate) for tokens, rate in parts), Decimal(0)) / 1_000_000).quantize(
        Decimal("0.00000001"))


def sent(provider: str, model: str) -> int:
    """The input estimate of the first round of a one-message conversation, as the gateway sends it."""
    tools = tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in all_tools())
    request = ModelRequest(model=model, turns=(ChatTurn("user", QUESTION),),
                           max_output_tokens=pam_settings().max_output_tokens, tools=tools)
    return estimate_input_tokens(provider, model, request)


async def ask(user: Any, route: str) -> list[dict[str, Any]]:
    return await answer_frames(user, message(QUESTION, route=route, client_msg_id=str(uuid.uuid4())))


@database_sync_to_async
def rows_of(message_id: str) -> tuple[UsageRecord, list[ModelCallRecord]]:
    record = UsageRecord.objects.get(message_id=message_id)
    return record, list(record.calls.order_by("position"))


def tokens(row: ModelCallRecord) -> tuple[int, int, int, int, int, int]:
    return (row.input_tokens, row.cache_read_tokens, row.cache_write_5m_tokens, row.cache_write_1h_tokens,
            row.output_tokens, row.reasoning_tokens)


def assert_totals_are_the_sum(record: UsageRecord, rows: list[ModelCallRecord]) -> None:
    assert record.input_tokens == sum(r.input_tokens for r in rows)
    assert record.output_tokens == sum(r.output_tokens for r in rows)
    assert record.cached_input_tokens == sum(r.cache_read_tokens for r in rows)
    assert record.cache_creation_input_tokens == sum(r.cache_write_5m_tokens + r.cache_write_1h_tokens for r in rows)
    assert record.cache_write_1h_tokens == sum(r.cache_write_1h_tokens for r in rows)
    assert record.cost_usd == sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))


# --- reported usage -----------------------------------------------------------------------------------------------


async def test_openai_cached_prompt_tokens(user: Any, fake_upstream: FakeUpstream) -> None:
    # prompt_tokens 2000 includes the 1536 cached: 464 uncached.
    fake_upstream.enqueue(Scenario(provider="openai", text=ANSWER, input_tokens=2000, cached_tokens=1536,
                                   output_tokens=12))
    end = (await ask(user, "simple"))[-1]
    record, [row] = await rows_of(end["metadata"]["message_id"])
    assert tokens(row) == (464, 1536, 0, 0, 12, 0)
    assert row.cost_usd == per_million((464, "0.15"), (1536, "0.075"), (12, "0.60")) == usd("0.000192")
    assert (row.basis, row.ended, row.accepted, row.finish_reason) == ("reported", "complete", True, "stop")
    assert_totals_are_the_sum(record, [row])
    assert end["metadata"]["cost_usd"] == "0.00019200" and end["metadata"]["input_tokens"] == 464


async def test_anthropic_cache_read_and_5m_and_1h_writes(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER, input_tokens=1000, cached_tokens=3000,
                                   cache_creation_tokens=500, cache_write_1h_tokens=200, output_tokens=100))
    end = (await ask(user, "complex"))[-1]
    record, [row] = await rows_of(end["metadata"]["message_id"])
    assert tokens(row) == (1000, 3000, 300, 200, 100, 0)
    assert row.cost_usd == per_million((1000, "2"), (3000, "0.10"), (300, "2.50"), (200, "4"), (100, "10")) == (
        usd("0.00485"))
    assert (row.basis, row.ended) == ("reported", "complete")
    assert_totals_are_the_sum(record, [row])


async def test_anthropic_cumulative_message_delta_replaces_message_starts_output(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    # message_start says output_tokens 1; message_delta's 57 is the total, not 57 more.
    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER, input_tokens=800, output_tokens=57))
    end = (await ask(user, "complex"))[-1]
    _, [row] = await rows_of(end["metadata"]["message_id"])
    assert tokens(row) == (800, 0, 0, 0, 57, 0)
    assert row.cost_usd == per_million((800, "2"), (57, "10")) == usd("0.00217")


# --- abandoned and failed calls -----------------------------------------------------------------------------------


async def test_an_error_after_some_tokens_is_priced_as_an_estimate(user: Any, fake_upstream: FakeUpstream) -> None:
    # Anthropic's message_start gave the input (the provider's count); the output is estimated from what came.
    fake_upstream.enqueue(Scenario(provider="anthropic", text="one two three four five six", input_tokens=1200,
                                   error_after_tokens=3))
    frames = await ask(user, "complex")
    received = text_of(frames)
    assert frames[-1]["chunk_type"] == "error" and received == "one two three "
    record, [row] = await rows_of(frames[-1]["metadata"]["message_id"])
    output = estimate_output_tokens("anthropic", SONNET, received)
    assert tokens(row) == (1200, 0, 0, 0, output, 0) and output > 0
    assert row.cost_usd == per_million((1200, "2"), (output, "10")) and row.cost_usd > 0
    assert (row.basis, row.usage_estimated, row.ended, row.accepted) == ("estimated", True, "error", True)
    assert record.usage_estimated and record.cost_usd == row.cost_usd


async def test_an_openai_error_after_some_tokens_estimates_input_from_everything_sent(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", text="one two three four five six", error_after_tokens=2))
    frames = await ask(user, "simple")
    received = text_of(frames)
    _, [row] = await rows_of(frames[-1]["metadata"]["message_id"])
    sent_tokens, output = sent("openai", MINI), estimate_output_tokens("openai", MINI, received)
    assert sent_tokens > 500  # the message, and the tools' definitions too
    assert tokens(row) == (sent_tokens, 0, 0, 0, output, 0)
    assert row.cost_usd == per_million((sent_tokens, "0.15"), (output, "0.60")) and row.basis == "estimated"


async def test_a_first_token_timeout_after_acceptance_is_estimated_never_free(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(
        Scenario(provider="anthropic", hang_before_first_token=True, ping_while_hanging=True, input_tokens=900),
        Scenario(provider="anthropic", text=ANSWER, input_tokens=900, output_tokens=8),
    )
    end = (await ask(user, "complex"))[-1]
    assert end["chunk_type"] == "end"
    record, [abandoned, answered] = await rows_of(end["metadata"]["message_id"])
    assert (abandoned.ended, abandoned.accepted, abandoned.basis) == ("first_token_timeout", True, "estimated")
    # message_start's input, and its output count (1): the provider's own floor, though no text came
    assert tokens(abandoned) == (900, 0, 0, 0, 1, 0)
    assert abandoned.cost_usd == per_million((900, "2"), (1, "10")) == usd("0.00181")
    assert (answered.ended, answered.basis) == ("complete", "reported")
    assert answered.cost_usd == per_million((900, "2"), (8, "10"))
    assert record.cost_usd == abandoned.cost_usd + answered.cost_usd == usd("0.00369")
    assert_totals_are_the_sum(record, [abandoned, answered])
    assert end["metadata"]["estimated_cost_usd"] == "0.00181000"


async def test_a_timeout_before_the_response_headers_is_estimated_too(user: Any, fake_upstream: FakeUpstream) -> None:
    """README's rule: the request reached the provider, which may be working on it and bill it."""
    fake_upstream.enqueue(Scenario(provider="openai", hang_before_headers=True, hang_limit_ms=3000),
                          Scenario(provider="openai", text=ANSWER, input_tokens=100, output_tokens=7))
    end = (await ask(user, "simple"))[-1]
    _, [abandoned, answered] = await rows_of(end["metadata"]["message_id"])
    assert (abandoned.ended, abandoned.accepted, abandoned.basis) == ("first_token_timeout", False, "estimated")
    assert tokens(abandoned) == (sent("openai", MINI), 0, 0, 0, 0, 0)
    assert abandoned.cost_usd == per_million((sent("openai", MINI), "0.15")) and abandoned.cost_usd > 0
    assert answered.cost_usd == per_million((100, "0.15"), (7, "0.60"))


async def test_a_retry_then_a_fallback_leaves_a_row_for_every_attempt(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(
        Scenario(provider="openai", status=500), Scenario(provider="openai", status=429),
        Scenario(provider="openai", status=503),
        Scenario(provider="anthropic", text=ANSWER, input_tokens=300, output_tokens=20),
    )
    end = (await ask(user, "simple"))[-1]
    assert end["metadata"]["provider"] == "anthropic" and end["metadata"]["model_calls"] == 4
    record, rows = await rows_of(end["metadata"]["message_id"])
    assert [(r.provider, r.model, r.ended, r.basis, r.accepted, r.cost_usd) for r in rows] == [
        ("openai", MINI, "refused", "refused", False, 0),
        ("openai", MINI, "refused", "refused", False, 0),
        ("openai", MINI, "refused", "refused", False, 0),
        ("anthropic", SONNET, "complete", "reported", True, per_million((300, "2"), (20, "10"))),
    ]
    assert [tokens(r) for r in rows[:3]] == [(0, 0, 0, 0, 0, 0)] * 3
    assert "HTTP 429" in rows[1].error
    assert record.cost_usd == usd("0.0008") and record.fallback_from == "openai"
    assert_totals_are_the_sum(record, rows)


async def test_an_open_circuit_is_a_refused_free_row(user: Any, fake_upstream: FakeUpstream) -> None:
    await provider_breaker().force_open("openai", actor="test")
    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER, input_tokens=10, output_tokens=2))
    end = (await ask(user, "simple"))[-1]
    _, rows = await rows_of(end["metadata"]["message_id"])
    assert [(r.provider, r.ended, r.basis, r.cost_usd) for r in rows] == [
        ("openai", "circuit_open", "refused", 0), ("anthropic", "complete", "reported", usd("0.00004")),
    ]


async def test_a_cancelled_call_is_priced_from_what_was_sent_and_received(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(provider="anthropic", text="one two three four five six seven eight nine ten",
                                   input_tokens=700, token_delay_ms=150))
    communicator = await connect(user)
    start, _ = await stop_after_first_token(communicator, message(QUESTION, route="complex",
                                                                   client_msg_id=str(uuid.uuid4())))
    await communicator.disconnect()
    await settled()
    answer, _ = await saved_answer(start["metadata"]["message_id"])
    record, [row] = await rows_of(start["metadata"]["message_id"])
    output = estimate_output_tokens("anthropic", SONNET, answer.content)
    assert (row.ended, row.accepted, row.basis) == ("cancelled", True, "estimated")
    assert tokens(row) == (700, 0, 0, 0, output, 0) and output > 0
    assert row.cost_usd == per_million((700, "2"), (output, "10"))
    assert record.outcome == "cancelled" and record.cost_usd == row.cost_usd
