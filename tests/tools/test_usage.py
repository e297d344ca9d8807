"""`my_usage` sums the requesting user's own usage over the period asked for, and never another user's."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from pam_hybrid.domain.chunks import ToolCall
from pam_hybrid.tools.base import ToolContext
from pam_hybrid.tools.runner import run_tool_call
from pam_hybrid.tools.usage import UsageArgs, format_usd, my_usage
from tests.support.factories import usage_record_create

pytestmark = pytest.mark.django_db(transaction=True)


def _records(alice: Any, mallory: Any) -> None:
    now = timezone.now()
    usage_record_create(user=alice, input_tokens=100, output_tokens=50, cost_usd=Decimal("0.00125000"))
    usage_record_create(user=alice, input_tokens=200, output_tokens=25, cost_usd=Decimal("0.00000500"))
    usage_record_create(
        user=alice, provider="anthropic", model="claude-sonnet-5-5", input_tokens=1000, output_tokens=400,
        cost_usd=Decimal("0.01500000"), created_at=now - timedelta(days=10),
    )
    usage_record_create(user=alice, provider="local", model="llama", input_tokens=7, output_tokens=3, cost_usd=None)
    usage_record_create(user=alice, input_tokens=5000, output_tokens=5000, created_at=now - timedelta(days=40))
    usage_record_create(user=mallory, input_tokens=99999, output_tokens=99999, cost_usd=Decimal("123.45000000"))


async def test_totals_and_per_model_breakdown(alice: Any, mallory: Any) -> None:
    await sync_to_async(_records)(alice, mallory)
    result = await my_usage.run(UsageArgs(), ToolContext(user=alice))
    assert result["days"] == 30
    assert (result["requests"], result["input_tokens"], result["output_tokens"]) == (4, 1307, 478)
    assert result["cost_usd"] == "0.01625500"
    assert result["requests_with_unknown_cost"] == 1
    assert result["by_model"] == [
        {"provider": "anthropic", "model": "claude-sonnet-5-5", "requests": 1, "input_tokens": 1000,
         "output_tokens": 400, "cost_usd": "0.01500000", "requests_with_unknown_cost": 0},
        {"provider": "local", "model": "llama", "requests": 1, "input_tokens": 7, "output_tokens": 3,
         "cost_usd": None, "requests_with_unknown_cost": 1},
        {"provider": "openai", "model": "gpt-4o-mini", "requests": 2, "input_tokens": 300, "output_tokens": 75,
         "cost_usd": "0.00125500", "requests_with_unknown_cost": 0},
    ]


async def test_period_bounds_the_records(alice: Any, mallory: Any) -> None:
    await sync_to_async(_records)(alice, mallory)
    assert (await my_usage.run(UsageArgs(days=7), ToolContext(user=alice)))["requests"] == 3
    assert (await my_usage.run(UsageArgs(days=60), ToolContext(user=alice)))["requests"] == 5


async def test_never_counts_another_users_usage(alice: Any, mallory: Any) -> None:
    await sync_to_async(_records)(alice, mallory)
    mine = await my_usage.run(UsageArgs(days=365), ToolContext(user=alice))
    assert (mine["requests"], mine["input_tokens"]) == (5, 6307)
    assert Decimal(mine["cost_usd"]) < Decimal("1")
    theirs = await my_usage.run(UsageArgs(days=365), ToolContext(user=mallory))
    assert (theirs["requests"], theirs["input_tokens"], theirs["cost_usd"]) == (1, 99999, "123.45000000")


async def test_arguments_cannot_name_another_user(alice: Any, mallory: Any) -> None:
    await sync_to_async(_records)(alice, mallory)
    arguments = f'{{"days": 30, "user_id": {mallory.pk}}}'
    result = await run_tool_call(ToolCall("c", "my_usage", arguments), ToolContext(user=alice))
    assert not result.ok
    assert "123.45" not in result.content


async def test_no_usage_is_zero(alice: Any) -> None:
    result = await my_usage.run(UsageArgs(), ToolContext(user=alice))
    summary = (result["requests"], result["input_tokens"], result["cost_usd"], result["by_model"])
    assert summary == (0, 0, "0.00000000", [])


def test_days_is_between_1_and_365() -> None:
    with pytest.raises(ValueError, match="less than or equal to 365"):
        UsageArgs(days=366)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        UsageArgs(days=0)


def test_dollars_are_never_in_exponent_form() -> None:
    assert format_usd(Decimal("0E-8")) == "0.00000000"
    assert format_usd(Decimal("1.5")) == "1.50000000"
