"""Usage aggregation: the one set of reads behind the usage dashboard, its CSV and `pam_usage`, so they agree.

Two sources, grouped alike: answers (`UsageRecord`: requests, time to first token, errors, fallbacks) and their
provider calls (`ModelCallRecord`, every attempt and tool round: tokens and cost). Per provider and per model the
call figures are the calls made to it (a fallback answer spans two providers), the answer figures the answers it
gave. Counts and sums are computed by the database; time-to-first-token percentiles in Python from the period's
values, with the definition of PostgreSQL's `percentile_cont` (see `percentile_cont`), so SQLite and PostgreSQL
give the same figures. Days are UTC dates (an answer's calls count on the day of the answer).

Cost counts every priced call, estimated ones included (`estimated_cost_usd` says how much of it was estimated);
a call whose model price is unknown counts in `cost_unknown` (calls) and `unknown_tokens`, never as $0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from pam_hybrid.models import ModelCallRecord, UsageRecord

Dimension = Literal["day", "provider", "model", "route", "user"]
DIMENSIONS: tuple[Dimension, ...] = ("day", "provider", "model", "route", "user")
DEFAULT_DAYS = 30
MAX_DAYS = 366
ZERO_USD = Decimal("0")

# The field (or annotation) each dimension groups by, for answers and for calls.
_FIELDS: dict[Dimension, str] = {
    "day": "pam_day", "provider": "provider", "model": "model", "route": "route", "user": "user__username",
}
_CALL_FIELDS: dict[Dimension, str] = {
    "day": "pam_day", "provider": "provider", "model": "model", "route": "usage_record__route",
    "user": "usage_record__user__username",
}
_ANSWER_SUMS: dict[str, Any] = {
    "n_requests": Count("id"),
    "n_errors": Count("id", filter=Q(outcome=UsageRecord.Outcome.ERROR)),
    "n_fallbacks": Count("id", filter=~Q(fallback_from="")),
}
_UNKNOWN = Q(cost_usd__isnull=True)
_CALL_SUMS: dict[str, Any] = {
    "n_calls": Count("id"),
    "n_input_tokens": Sum("input_tokens"),
    "n_cache_read_tokens": Sum("cache_read_tokens"),
    "n_cache_write_tokens": Sum(F("cache_write_5m_tokens") + F("cache_write_1h_tokens")),
    "n_output_tokens": Sum("output_tokens"),
    "n_cost_usd": Sum("cost_usd"),
    "n_estimated_cost_usd": Sum("cost_usd", filter=Q(basis=ModelCallRecord.Basis.ESTIMATED)),
    "n_estimated": Count("id", filter=Q(usage_estimated=True)),
    "n_cost_unknown": Count("id", filter=_UNKNOWN),
    "n_unknown_tokens": Sum(
        F("input_tokens") + F("cache_read_tokens") + F("cache_write_5m_tokens") + F("cache_write_1h_tokens")
        + F("output_tokens"), filter=_UNKNOWN,
    ),
    "n_refused": Count("id", filter=Q(basis=ModelCallRecord.Basis.REFUSED)),
}

Key = tuple[date | str, ...]


@dataclass(frozen=True, slots=True)
class UsageStats:
    """The figures of one group; `key` holds its value of each grouping dimension, in order.

    `requests`, `errors`, `fallbacks` and the TTFTs count answers; the rest count provider calls: `input_tokens` is
    uncached input, `cache_read_tokens`/`cache_write_tokens` the cached input beside it; `cost_usd` sums the priced
    calls (estimated ones included, `estimated_cost_usd` of it); `estimated` counts calls whose tokens were
    estimated, `cost_unknown` the calls whose model has no price and `unknown_tokens` their tokens, `refused` the
    calls the provider refused before accepting them (free).
    """

    key: Key
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cost_unknown: int
    estimated: int
    errors: int
    fallbacks: int
    ttft_median_ms: float | None
    ttft_p95_ms: float | None
    calls: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated_cost_usd: Decimal = ZERO_USD
    unknown_tokens: int = 0
    refused: int = 0

    @property
    def error_rate(self) -> float:
        """Share of requests whose outcome was an error (0 to 1)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def fallback_rate(self) -> float:
        """Share of requests answered by another provider than the one first chosen (0 to 1)."""
        return self.fallbacks / self.requests if self.requests else 0.0


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` quantile by linear interpolation between the closest ranks (PostgreSQL's percentile_cont,
    numpy's default): position `fraction * (n - 1)` in the sorted values. None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def clamp_days(value: object, *, default: int = DEFAULT_DAYS) -> int:
    """A period length in days from user input: 1 to MAX_DAYS, or `default` when it is not such a number."""
    try:
        days = int(str(value))
    except ValueError:
        return default
    return days if 1 <= days <= MAX_DAYS else default


def usage_period_start(*, days: int, now: datetime | None = None) -> datetime:
    """Midnight UTC starting the last `days` UTC days, today included (1 means today only)."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)


def usage_period_days(*, days: int, now: datetime | None = None) -> list[date]:
    """Every UTC date of the period, oldest first, whether or not it has records."""
    first = usage_period_start(days=days, now=now).date()
    return [first + timedelta(days=offset) for offset in range(days)]


def usage_records(*, days: int, now: datetime | None = None, provider: str | None = None) -> QuerySet[UsageRecord]:
    """The answers of the last `days` UTC days (see `usage_period_start`); with `provider`, those that called it
    (answered by it, or fallen back from it)."""
    records = UsageRecord.objects.filter(created_at__gte=usage_period_start(days=days, now=now))
    if not provider:
        return records
    called = ModelCallRecord.objects.filter(provider=provider).values("usage_record_id")
    return records.filter(Q(provider=provider) | Q(id__in=called))


def usage_calls(*, records: QuerySet[UsageRecord], provider: str | None = None) -> QuerySet[ModelCallRecord]:
    """The provider calls of these answers (to one provider if given)."""
    calls = ModelCallRecord.objects.filter(usage_record__in=records.order_by().values("id"))
    return calls.filter(provider=provider) if provider else calls


def usage_providers(*, records: QuerySet[UsageRecord]) -> list[str]:
    """The providers these answers called, sorted."""
    return sorted(set(usage_calls(records=records).order_by().values_list("provider", flat=True).distinct()))


def usage_stats(*, records: QuerySet[UsageRecord], by: Sequence[Dimension],
                provider: str | None = None) -> list[UsageStats]:
    """The figures grouped by the given dimensions (one UsageStats per group present in the answers or their calls),
    sorted by key; `provider` keeps the calls to that provider only."""
    fields = [_FIELDS[dimension] for dimension in by]
    grouped = _with_day(records, by, "created_at").order_by()
    ttfts: defaultdict[Key, list[float]] = defaultdict(list)
    for *key, ttft_ms in grouped.filter(ttft_ms__isnull=False).values_list(*fields, "ttft_ms"):
        ttfts[tuple(key)].append(ttft_ms)
    answers = {tuple(row[f] for f in fields): row for row in grouped.values(*fields).annotate(**_ANSWER_SUMS)}
    call_fields = [_CALL_FIELDS[dimension] for dimension in by]
    calls = _with_day(usage_calls(records=records, provider=provider), by, "usage_record__created_at").order_by()
    called = {tuple(row[f] for f in call_fields): row for row in calls.values(*call_fields).annotate(**_CALL_SUMS)}
    stats = [_stats(key, answers.get(key, {}), called.get(key, {}), ttfts) for key in {*answers, *called}]
    return sorted(stats, key=lambda item: item.key)


def usage_totals(*, records: QuerySet[UsageRecord], provider: str | None = None) -> UsageStats:
    """The figures of all the answers and their calls as one group (key ())."""
    answers = records.order_by().aggregate(**_ANSWER_SUMS)
    called = usage_calls(records=records, provider=provider).order_by().aggregate(**_CALL_SUMS)
    known = records.order_by().filter(ttft_ms__isnull=False)
    ttfts = [ttft_ms for ttft_ms in known.values_list("ttft_ms", flat=True) if ttft_ms is not None]
    return _stats((), answers, called, {(): ttfts})


def by_spend(stats: Sequence[UsageStats]) -> list[UsageStats]:
    """Groups by cost, highest first; ties by requests (more first), then key."""
    ordered = sorted(stats, key=lambda item: item.key)
    return sorted(ordered, key=lambda item: (item.cost_usd, item.requests), reverse=True)


def _with_day(rows: QuerySet[Any], by: Sequence[Dimension], created: str) -> QuerySet[Any]:
    return rows.annotate(pam_day=TruncDate(created, tzinfo=UTC)) if "day" in by else rows


def _stats(key: Key, answers: dict[str, Any], calls: dict[str, Any], ttfts: dict[Key, list[float]]) -> UsageStats:
    values = ttfts.get(key, [])

    def n(row: dict[str, Any], name: str) -> Any:
        return row.get(name) or 0

    return UsageStats(
        key=key,
        requests=n(answers, "n_requests"),
        input_tokens=n(calls, "n_input_tokens"),
        output_tokens=n(calls, "n_output_tokens"),
        cost_usd=calls.get("n_cost_usd") or ZERO_USD,
        cost_unknown=n(calls, "n_cost_unknown"),
        estimated=n(calls, "n_estimated"),
        errors=n(answers, "n_errors"),
        fallbacks=n(answers, "n_fallbacks"),
        ttft_median_ms=percentile_cont(values, 0.5),
        ttft_p95_ms=percentile_cont(values, 0.95),
        calls=n(calls, "n_calls"),
        cache_read_tokens=n(calls, "n_cache_read_tokens"),
        cache_write_tokens=n(calls, "n_cache_write_tokens"),
        estimated_cost_usd=calls.get("n_estimated_cost_usd") or ZERO_USD,
        unknown_tokens=n(calls, "n_unknown_tokens"),
        refused=n(calls, "n_refused"),
    )
