"""Usage aggregation: the one set of reads behind the usage dashboard, its CSV and `pam_usage`, so they agree.

Counts and sums are computed by the database; time-to-first-token percentiles in Python from the period's
values, with the definition of PostgreSQL's `percentile_cont` (see `percentile_cont`), so SQLite and PostgreSQL
give the same figures. Days are UTC dates. A record whose price was unknown (`cost_usd` NULL) counts in
`requests` and tokens but not in `cost_usd`; it is counted in `cost_unknown` instead.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from pam_hybrid.models import UsageRecord

Dimension = Literal["day", "provider", "model", "route", "user"]
DIMENSIONS: tuple[Dimension, ...] = ("day", "provider", "model", "route", "user")
DEFAULT_DAYS = 30
MAX_DAYS = 366
ZERO_USD = Decimal("0")

# The queryset field (or annotation) each dimension groups by.
_FIELDS: dict[Dimension, str] = {
    "day": "pam_day", "provider": "provider", "model": "model", "route": "route", "user": "user__username",
}
_SUMS: dict[str, Any] = {
    "n_requests": Count("id"),
    "n_input_tokens": Sum("input_tokens"),
    "n_output_tokens": Sum("output_tokens"),
    "n_cost_usd": Sum("cost_usd"),
    "n_cost_unknown": Count("id", filter=Q(cost_usd__isnull=True)),
    "n_estimated": Count("id", filter=Q(usage_estimated=True)),
    "n_errors": Count("id", filter=Q(outcome=UsageRecord.Outcome.ERROR)),
    "n_fallbacks": Count("id", filter=~Q(fallback_from="")),
}

Key = tuple[date | str, ...]


@dataclass(frozen=True, slots=True)
class UsageStats:
    """The figures of one group of usage records; `key` holds its value of each grouping dimension, in order."""

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
    """The usage records of the last `days` UTC days (see `usage_period_start`), of one provider if given."""
    records = UsageRecord.objects.filter(created_at__gte=usage_period_start(days=days, now=now))
    return records.filter(provider=provider) if provider else records


def usage_providers(*, records: QuerySet[UsageRecord]) -> list[str]:
    """The providers present in these records, sorted."""
    return sorted(set(records.order_by().values_list("provider", flat=True).distinct()))


def usage_stats(*, records: QuerySet[UsageRecord], by: Sequence[Dimension]) -> list[UsageStats]:
    """The records' figures grouped by the given dimensions (one UsageStats per group present), sorted by key."""
    fields = [_FIELDS[dimension] for dimension in by]
    grouped = _with_day(records, by).order_by()
    ttfts: defaultdict[Key, list[float]] = defaultdict(list)
    for *key, ttft_ms in grouped.filter(ttft_ms__isnull=False).values_list(*fields, "ttft_ms"):
        ttfts[tuple(key)].append(ttft_ms)
    rows = grouped.values(*fields).annotate(**_SUMS)
    stats = [_stats(tuple(row[field] for field in fields), row, ttfts) for row in rows]
    return sorted(stats, key=lambda item: item.key)


def usage_totals(*, records: QuerySet[UsageRecord]) -> UsageStats:
    """The figures of all the records as one group (key ())."""
    row = records.order_by().aggregate(**_SUMS)
    known = records.order_by().filter(ttft_ms__isnull=False)
    ttfts = [ttft_ms for ttft_ms in known.values_list("ttft_ms", flat=True) if ttft_ms is not None]
    return _stats((), row, {(): ttfts})


def by_spend(stats: Sequence[UsageStats]) -> list[UsageStats]:
    """Groups by cost, highest first; ties by requests (more first), then key."""
    ordered = sorted(stats, key=lambda item: item.key)
    return sorted(ordered, key=lambda item: (item.cost_usd, item.requests), reverse=True)


def _with_day(records: QuerySet[UsageRecord], by: Sequence[Dimension]) -> QuerySet[UsageRecord]:
    return records.annotate(pam_day=TruncDate("created_at", tzinfo=UTC)) if "day" in by else records


def _stats(key: Key, row: dict[str, Any], ttfts: dict[Key, list[float]]) -> UsageStats:
    values = ttfts.get(key, [])
    return UsageStats(
        key=key,
        requests=row["n_requests"],
        input_tokens=row["n_input_tokens"] or 0,
        output_tokens=row["n_output_tokens"] or 0,
        cost_usd=row["n_cost_usd"] if row["n_cost_usd"] is not None else ZERO_USD,
        cost_unknown=row["n_cost_unknown"],
        estimated=row["n_estimated"],
        errors=row["n_errors"],
        fallbacks=row["n_fallbacks"],
        ttft_median_ms=percentile_cont(values, 0.5),
        ttft_p95_ms=percentile_cont(values, 0.95),
    )
