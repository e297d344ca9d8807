"""Routing quality over time, for the usage dashboard: per UTC day and route, how many answers users asked the other
model for, rated down or up, stopped early, or had sent with a route of their own (see RoutingSignal).

Every figure counts answers, on the answer's day and route (an answer escalated twice counts once); a share is of
the group's answers. Signals about answers outside the period (or the provider filter) are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from pam_hybrid.models import RoutingSignal, UsageRecord

KINDS: tuple[str, ...] = tuple(RoutingSignal.Kind.values)


@dataclass(frozen=True, slots=True)
class RoutingQuality:
    """One day and route: its answers and, per signal kind (every kind present), how many of them had one."""

    day: date
    route: str
    answers: int
    counts: dict[str, int]

    @property
    def percents(self) -> dict[str, float]:
        """Per signal kind, the share of the answers that had one, in percent (0 without answers)."""
        return {kind: 100 * n / self.answers if self.answers else 0.0 for kind, n in self.counts.items()}


def routing_quality(*, records: QuerySet[UsageRecord]) -> list[RoutingQuality]:
    """The figures of these answers per (UTC day, route), oldest day first, routes in name order: two queries."""
    answers = (
        records.order_by().annotate(pam_day=TruncDate("created_at", tzinfo=UTC))
        .values("pam_day", "route").annotate(n=Count("id"))
    )
    signals = (
        RoutingSignal.objects.filter(usage_record__in=records.order_by().values("id")).order_by()
        .annotate(pam_day=TruncDate("usage_record__created_at", tzinfo=UTC))
        .values("pam_day", "usage_record__route", "kind").annotate(n=Count("usage_record", distinct=True))
    )
    counted: defaultdict[tuple[date, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for row in signals:
        counted[(row["pam_day"], row["usage_record__route"])][row["kind"]] = row["n"]
    rows = [
        RoutingQuality(day=row["pam_day"], route=row["route"], answers=row["n"],
                       counts=counted[(row["pam_day"], row["route"])])
        for row in answers
    ]
    return sorted(rows, key=lambda row: (row.day, row.route))
