"""One JSON line per answer, written by the handler and formatter settings' LOGGING configures: for a complete
answer, an error, a cancel and an answer every breaker refused; never the message text nor a secret."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from fake_upstream import FakeUpstream, Scenario
from tests.support.answers import saved_answer, settled
from tests.support.servers import TEST_API_KEY
from tests.support.sockets import connect, message, receive_until_done, stop_after_first_token

pytestmark = [pytest.mark.django_db(transaction=True)]

QUESTION = "What is the secret ingredient of my grandmother's soup?"
FIELDS = {"level", "logger", "message", "timestamp", "request_id", "user_id", "conversation_id", "route", "provider",
          "model", "input_tokens", "output_tokens", "usage_estimated", "cost_usd", "ttft_ms", "total_ms", "outcome",
          "finish_reason", "fallback_from", "model_calls", "failed_attempts", "saved", "cache_read_tokens",
          "cache_write_tokens", "estimated_cost_usd", "unknown_cost_calls"}


@pytest.fixture(autouse=True)
def quick_failures(settings: Any) -> None:
    settings.PAM_RETRIES = 0
    settings.PAM_RETRY_BACKOFF_MS = 1


@pytest.fixture
def answer_log() -> Iterator[io.StringIO]:
    """What the configured `pam_hybrid.answers` handler writes, captured by pointing its stream at a buffer."""
    logger = logging.getLogger("pam_hybrid.answers")
    # pytest adds its own capturing handlers; the one settings configured is the one with the JSON formatter.
    [handler] = [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]
    assert isinstance(handler, logging.StreamHandler) and not logger.propagate
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def ask(user: Any, route: str = "simple") -> list[dict[str, Any]]:
    communicator = await connect(user)
    await communicator.send_json_to(message(QUESTION, route=route, client_msg_id=str(uuid.uuid4())))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    return frames


async def test_a_complete_answer_logs_one_line_matching_its_usage_record(
    user: Any, fake_upstream: FakeUpstream, answer_log: io.StringIO
) -> None:
    fake_upstream.enqueue(Scenario(text="Paris.", input_tokens=1000, output_tokens=2000, ttft_ms=30))
    end = (await ask(user))[-1]
    await settled()
    answer, usage = await saved_answer(end["metadata"]["message_id"])
    [line] = lines(answer_log)
    assert set(line) == FIELDS
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "pam_hybrid.answers", "answer")
    assert line["timestamp"].endswith("+00:00")
    assert line["request_id"] == str(answer.id) and line["conversation_id"] == str(answer.conversation_id)
    assert line["user_id"] == str(user.pk)
    assert (line["route"], line["provider"], line["model"]) == ("simple", "openai", "gpt-4o-mini")
    assert (line["input_tokens"], line["output_tokens"]) == (usage.input_tokens, usage.output_tokens) == (1000, 2000)
    assert Decimal(line["cost_usd"]) == usage.cost_usd == Decimal("0.00135")
    assert line["ttft_ms"] == pytest.approx(usage.ttft_ms, abs=0.001) and line["ttft_ms"] >= 30
    assert line["total_ms"] == pytest.approx(usage.total_ms, abs=0.001)
    assert (line["outcome"], line["finish_reason"]) == ("complete", "stop") == (usage.outcome, usage.finish_reason)
    assert line["fallback_from"] is None and line["failed_attempts"] == 0
    assert line["model_calls"] == 1 and line["saved"] is True


async def test_an_error_logs_one_line_without_the_text_or_any_secret(
    user: Any, fake_upstream: FakeUpstream, answer_log: io.StringIO
) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", status=500), Scenario(provider="anthropic", status=500))
    end = (await ask(user))[-1]
    assert end["chunk_type"] == "error"
    await settled()
    _, usage = await saved_answer(end["metadata"]["message_id"])
    [line] = lines(answer_log)
    assert (line["outcome"], line["finish_reason"]) == ("error", usage.finish_reason)
    assert (line["provider"], line["fallback_from"]) == ("anthropic", "openai")
    assert line["failed_attempts"] == 2 and line["ttft_ms"] is None and line["model_calls"] == 2  # both refused
    assert line["cost_usd"] == "0.00000000" and usage.cost_usd == 0 and line["estimated_cost_usd"] == "0.00000000"
    assert [(c.provider, c.basis, c.ended, c.cost_usd) async for c in usage.calls.all()] == [
        ("openai", "refused", "refused", 0), ("anthropic", "refused", "refused", 0)
    ]
    written = answer_log.getvalue()
    assert QUESTION not in written and "grandmother" not in written and TEST_API_KEY not in written


async def test_a_cancelled_answer_logs_one_line(user: Any, fake_upstream: FakeUpstream,
                                                answer_log: io.StringIO) -> None:
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight", token_delay_ms=150))
    communicator = await connect(user)
    start, _ = await stop_after_first_token(communicator, message(QUESTION, route="simple",
                                                                   client_msg_id=str(uuid.uuid4())))
    await communicator.disconnect()
    await settled()
    _, usage = await saved_answer(start["metadata"]["message_id"])
    [line] = lines(answer_log)
    assert line["request_id"] == start["metadata"]["message_id"]
    assert (line["outcome"], line["finish_reason"]) == ("cancelled", "cancelled") == (usage.outcome,
                                                                                       usage.finish_reason)
    assert line["output_tokens"] == usage.output_tokens > 0 and line["usage_estimated"] is True


async def test_an_answer_every_breaker_refused_logs_one_line(
    user: Any, fake_upstream: FakeUpstream, answer_log: io.StringIO, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 1
    fake_upstream.enqueue(Scenario(provider="openai", status=503), Scenario(provider="anthropic", status=503))
    await ask(user)  # opens both breakers
    end = (await ask(user))[-1]
    assert end["chunk_type"] == "error"
    await settled()
    assert len(fake_upstream.requests) == 2  # the second answer reached no provider
    _, usage = await saved_answer(end["metadata"]["message_id"])
    first, second = lines(answer_log)
    assert first["request_id"] != second["request_id"] == end["metadata"]["message_id"]
    assert second["outcome"] == usage.outcome == "error" and second["saved"] is True
    assert second["failed_attempts"] == len(usage.attempts) == 2
    assert {a["error"] for a in usage.attempts} == {"CircuitOpen"}
