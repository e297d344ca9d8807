"""The usage dashboard's routing-quality table, server-rendered from known answers and signals: per UTC day and
route, answers and how many of them (and what share) users escalated, de-escalated, rated, stopped or forced."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client

from pam_hybrid.models import RoutingSignal, UsageRecord
from tests.admin.test_usage import DASHBOARD, html, table_rows
from tests.support.factories import usage_record_create, user_create

pytestmark = pytest.mark.django_db


def answers(user: Any, route: str, at: datetime, n: int) -> list[UsageRecord]:
    provider = {"simple": {"provider": "openai", "model": "gpt-4o-mini"},
                "complex": {"provider": "anthropic", "model": "claude-sonnet-5-5"}}[route]
    return [usage_record_create(user=user, route=route, created_at=at, **provider) for _ in range(n)]


def signal(record: UsageRecord, kind: str, route_to: str = "") -> None:
    RoutingSignal.objects.create(user=record.user, message=record.message, usage_record=record, kind=kind,
                                 route=record.route, route_to=route_to, route_requested="auto")


@pytest.fixture
def quality(today: date) -> None:
    """today: 4 simple answers (one escalated twice, one rated down, one stopped and rated down), 3 complex (one
    forced, one de-escalated, one rated up); yesterday: 3 simple (one escalated); 40 days ago: one escalated."""
    alice = user_create(username="alice")

    def at(days_ago: int) -> datetime:
        return datetime.combine(today - timedelta(days=days_ago), time(12), tzinfo=UTC)

    simple = answers(alice, "simple", at(0), 4)
    signal(simple[0], "escalated", "complex")
    signal(simple[0], "escalated", "complex")
    signal(simple[1], "thumbs_down")
    signal(simple[2], "stopped_early")
    signal(simple[2], "thumbs_down")
    complex_ = answers(alice, "complex", at(0), 3)
    signal(complex_[0], "forced_route")
    signal(complex_[1], "de_escalated", "simple")
    signal(complex_[2], "thumbs_up")
    yesterday = answers(alice, "simple", at(1), 3)
    signal(yesterday[0], "escalated", "complex")
    signal(answers(alice, "simple", at(40), 1)[0], "escalated", "complex")


def test_routing_quality_per_day_and_route(client: Client, quality: None, today: date) -> None:
    client.force_login(user_create(username="staff", staff=True))
    rows = table_rows(html(client, DASHBOARD), "routing-quality")
    yesterday = (today - timedelta(days=1)).isoformat()
    assert rows == [
        # day, route, answers, escalated, de-escalated, thumbs down, thumbs up, stopped early, forced
        [yesterday, "simple", "3", "1 (33.3%)", "0 (0.0%)", "0 (0.0%)", "0 (0.0%)", "0 (0.0%)", "0 (0.0%)"],
        [today.isoformat(), "complex", "3", "0 (0.0%)", "1 (33.3%)", "0 (0.0%)", "1 (33.3%)", "0 (0.0%)",
         "1 (33.3%)"],
        [today.isoformat(), "simple", "4", "1 (25.0%)", "0 (0.0%)", "2 (50.0%)", "0 (0.0%)", "1 (25.0%)",
         "0 (0.0%)"],
    ]


def test_routing_quality_follows_the_period_and_provider(client: Client, quality: None, today: date) -> None:
    client.force_login(user_create(username="staff", staff=True))
    rows = table_rows(html(client, f"{DASHBOARD}?days=1&provider=anthropic"), "routing-quality")
    assert [row[:4] for row in rows] == [[today.isoformat(), "complex", "3", "0 (0.0%)"]]
    rows = table_rows(html(client, f"{DASHBOARD}?days=90"), "routing-quality")
    oldest = rows[0]
    assert oldest[:4] == [(today - timedelta(days=40)).isoformat(), "simple", "1", "1 (100.0%)"]


def test_no_answers_no_rows(client: Client) -> None:
    client.force_login(user_create(username="staff", staff=True))
    assert table_rows(html(client, DASHBOARD), "routing-quality") == [["No answers in this period."]]
