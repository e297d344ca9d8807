"""The `my_usage` tool: the requesting user's own requests, tokens and spend over the last days, per model.

Every query is scoped by `user_id=context.user.pk`: no argument can widen it to another user.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from pydantic import Field

from pam_hybrid.models import UsageRecord
from pam_hybrid.tools.base import ToolArguments, ToolContext, tool

_COST_PLACES = Decimal("0.00000001")  # UsageRecord.cost_usd keeps 8 decimal places
_TOTALS = ("requests", "input_tokens", "output_tokens", "requests_with_unknown_cost")


class UsageArgs(ToolArguments):
    days: int = Field(30, ge=1, le=365, description="How many days back to count, ending now.")


@tool(
    name="my_usage",
    description=(
        "Get the current user's own usage of this chat service over the last N days: number of answers, input "
        "and output tokens, and cost in US dollars, in total and per model. Use it when the user asks how much "
        "they have used or spent. Requests whose price was unknown are counted in requests_with_unknown_cost "
        "and are not in cost_usd."
    ),
    timeout_ms=3000,
)
async def my_usage(args: UsageArgs, context: ToolContext) -> dict[str, Any]:
    since = timezone.now() - timedelta(days=args.days)
    by_model = [_model_row(row) async for row in usage_by_model_for_user(user=context.user, since=since)]
    return {"days": args.days, "since": since.isoformat(), **_totals(by_model), "by_model": by_model}


def usage_by_model_for_user(*, user: AbstractBaseUser, since: datetime) -> QuerySet[UsageRecord, Any]:
    """The user's usage records since `since`, summed per provider and model."""
    return (
        UsageRecord.objects.filter(user_id=user.pk, created_at__gte=since)
        .values("provider", "model")
        .annotate(
            requests=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            known_cost=Sum("cost_usd"),
            requests_with_unknown_cost=Count("id", filter=Q(cost_usd__isnull=True)),
        )
        .order_by("provider", "model")
    )


def _model_row(row: Mapping[str, Any]) -> dict[str, Any]:
    known_cost: Decimal | None = row["known_cost"]
    return {
        "provider": row["provider"],
        "model": row["model"],
        "requests": row["requests"],
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
        "cost_usd": format_usd(known_cost) if known_cost is not None else None,
        "requests_with_unknown_cost": row["requests_with_unknown_cost"],
    }


def _totals(by_model: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {key: sum(row[key] for row in by_model) for key in _TOTALS}
    known = [Decimal(row["cost_usd"]) for row in by_model if row["cost_usd"] is not None]
    totals["cost_usd"] = format_usd(sum(known, Decimal(0)))
    return totals


def format_usd(amount: Decimal) -> str:
    """Dollars as a plain decimal string with 8 places ("0.00123400"), never in exponent form."""
    return f"{amount.quantize(_COST_PLACES):f}"
