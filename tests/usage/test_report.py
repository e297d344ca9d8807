"""The usage aggregation shared by the dashboard, its CSV and `pam_usage`: figures checked against known records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pam_hybrid.models import ModelCallRecord
from pam_hybrid.usage.report import (
    by_spend,
    clamp_days,
    percentile_cont,
    usage_period_days,
    usage_period_start,
    usage_providers,
    usage_records,
    usage_stats,
    usage_totals,
)
from tests.support.factories import usage_record_create, user_create

pytestmark = pytest.mark.django_db

NOON = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)


def figures(stats: Any) -> tuple[Any, ...]:
    return (
        stats.key, stats.requests, stats.input_tokens, stats.output_tokens, stats.cost_usd, stats.cost_unknown,
        stats.estimated, stats.errors, stats.fallbacks, stats.ttft_median_ms, stats.ttft_p95_ms,
    )


# --- percentiles and the period ---


def test_percentile_cont_interpolates_between_ranks_like_postgresql() -> None:
    values = [1000.0, 100.0, 500.0, 300.0, 200.0]
    assert percentile_cont(values, 0.5) == 300.0
    assert percentile_cont(values, 0.95) == pytest.approx(900.0)  # rank 3.8: 500 + 0.8 * (1000 - 500)
    assert percentile_cont([100.0, 300.0], 0.5) == 200.0
    assert percentile_cont([42.0], 0.95) == 42.0
    assert percentile_cont([], 0.5) is None


def test_period_is_whole_utc_days_ending_today() -> None:
    assert usage_period_start(days=1, now=NOON) == datetime(2025, 3, 10, tzinfo=UTC)
    assert usage_period_start(days=30, now=NOON) == datetime(2025, 2, 9, tzinfo=UTC)
    days = usage_period_days(days=3, now=NOON)
    assert days == [date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), ("1", 1), ("366", 366), ("0", 30), ("367", 30), ("-3", 30), ("abc", 30), ("", 30), (None, 30),
     ("1e3", 30), ("7.5", 30)],
)
def test_clamp_days_falls_back_to_30(value: Any, expected: int) -> None:
    assert clamp_days(value) == expected


def test_records_on_the_first_midnight_are_in_the_period_and_a_second_before_is_not() -> None:
    user = user_create(username="dora")
    start = usage_period_start(days=30, now=NOON)
    inside = usage_record_create(user=user, created_at=start)
    usage_record_create(user=user, created_at=start - timedelta(seconds=1))
    assert list(usage_records(days=30, now=NOON)) == [inside]


# --- the figures ---


def test_totals_of_the_default_period(usage_sample: dict[str, Any]) -> None:
    totals = usage_totals(records=usage_records(days=30))
    # Six records in 30 days; the one 40 days ago is left out. TTFTs 100, 300, 500, 200, 1000 (the error had none).
    assert figures(totals) == ((), 6, 2050, 825, Decimal("0.0197"), 1, 1, 1, 1, 300.0, pytest.approx(900.0))
    assert totals.error_rate == pytest.approx(1 / 6)
    assert totals.fallback_rate == pytest.approx(1 / 6)


def test_by_provider_and_model(usage_sample: dict[str, Any]) -> None:
    rows = usage_stats(records=usage_records(days=30), by=("provider", "model"))
    assert [figures(row) for row in rows] == [
        (("anthropic", "claude-sonnet-5-5"), 2, 1400, 500, Decimal("0.0162"), 0, 0, 1, 1, 500.0, 500.0),
        (("openai", "gpt-4o"), 1, 50, 25, Decimal("0.0005"), 0, 0, 0, 0, 1000.0, 1000.0),
        (("openai", "gpt-4o-mini"), 3, 600, 300, Decimal("0.003"), 1, 1, 0, 0, 200.0, pytest.approx(290.0)),
    ]
    assert (rows[0].error_rate, rows[0].fallback_rate) == (0.5, 0.5)


def test_by_day_uses_utc_dates(usage_sample: dict[str, Any], today: date) -> None:
    rows = usage_stats(records=usage_records(days=30), by=("day",))
    assert [figures(row) for row in rows] == [
        ((today - timedelta(days=6),), 1, 50, 25, Decimal("0.0005"), 0, 0, 0, 0, 1000.0, 1000.0),
        ((today - timedelta(days=1),), 2, 700, 150, Decimal("0.0012"), 1, 1, 1, 0, 200.0, 200.0),
        ((today,), 3, 1300, 650, Decimal("0.018"), 0, 0, 0, 1, 300.0, pytest.approx(480.0)),
    ]


def test_by_day_provider_and_model_as_in_the_csv(usage_sample: dict[str, Any], today: date) -> None:
    rows = usage_stats(records=usage_records(days=30), by=("day", "provider", "model"))
    keys_and_requests = [(row.key, row.requests, row.cost_usd) for row in rows]
    assert keys_and_requests == [
        ((today - timedelta(days=6), "openai", "gpt-4o"), 1, Decimal("0.0005")),
        ((today - timedelta(days=1), "anthropic", "claude-sonnet-5-5"), 1, Decimal("0.0012")),
        ((today - timedelta(days=1), "openai", "gpt-4o-mini"), 1, Decimal("0")),
        ((today, "anthropic", "claude-sonnet-5-5"), 1, Decimal("0.015")),
        ((today, "openai", "gpt-4o-mini"), 2, Decimal("0.003")),
    ]
    unknown_only = rows[2]
    assert (unknown_only.cost_unknown, unknown_only.estimated, unknown_only.ttft_median_ms) == (1, 1, 200.0)


def test_by_user_sorted_by_spend(usage_sample: dict[str, Any]) -> None:
    rows = by_spend(usage_stats(records=usage_records(days=30), by=("user",)))
    assert [(row.key, row.requests, row.cost_usd, row.cost_unknown) for row in rows] == [
        (("bob",), 2, Decimal("0.0162"), 0),
        (("alice",), 3, Decimal("0.003"), 1),
        (("carol",), 1, Decimal("0.0005"), 0),
    ]


def test_by_route(usage_sample: dict[str, Any]) -> None:
    rows = usage_stats(records=usage_records(days=30), by=("route",))
    assert [(row.key, row.requests, row.input_tokens, row.cost_usd) for row in rows] == [
        (("complex",), 3, 1450, Decimal("0.0167")),
        (("simple",), 3, 600, Decimal("0.003")),
    ]


def test_one_day_and_one_provider(usage_sample: dict[str, Any], today: date) -> None:
    today_only = usage_totals(records=usage_records(days=1))
    assert (today_only.requests, today_only.cost_usd, today_only.fallbacks) == (3, Decimal("0.018"), 1)
    anthropic = usage_totals(records=usage_records(days=30, provider="anthropic"))
    assert figures(anthropic) == ((), 2, 1400, 500, Decimal("0.0162"), 0, 0, 1, 1, 500.0, 500.0)
    assert usage_providers(records=usage_records(days=30)) == ["anthropic", "openai"]
    assert usage_totals(records=usage_records(days=366)).requests == 7


def test_no_records_gives_zeros_and_no_times() -> None:
    totals = usage_totals(records=usage_records(days=30))
    assert figures(totals) == ((), 0, 0, 0, Decimal("0"), 0, 0, 0, 0, None, None)
    assert (totals.error_rate, totals.fallback_rate) == (0.0, 0.0)
    assert usage_stats(records=usage_records(days=30), by=("day",)) == []


# --- provider calls: a fallback answer spans two providers; estimated and unknown costs stay visible ---


def test_per_provider_figures_come_from_the_calls_made_to_it(today: date) -> None:
    alice = user_create(username="alice")
    answered = usage_record_create(user=alice, provider="anthropic", model="claude-sonnet-5-5", route="simple",
                                   input_tokens=300, output_tokens=20, cost_usd=Decimal("0.0008"),
                                   fallback_from="openai")
    # Before Anthropic answered, OpenAI was tried: refused once (free), then abandoned at its first-token timeout.
    ModelCallRecord.objects.filter(usage_record=answered).update(position=2)
    ModelCallRecord.objects.create(usage_record=answered, position=0, provider="openai", model="gpt-4o-mini",
                                   cost_usd=Decimal(0), basis="refused", accepted=False, ended="refused",
                                   started_at=answered.created_at)
    ModelCallRecord.objects.create(usage_record=answered, position=1, provider="openai", model="gpt-4o-mini",
                                   input_tokens=1000, cost_usd=Decimal("0.00015"), basis="estimated",
                                   usage_estimated=True, accepted=True, ended="first_token_timeout",
                                   started_at=answered.created_at)
    usage_record_create(user=alice, model="llama-local", input_tokens=70, output_tokens=30, cost_usd=None)

    records = usage_records(days=1)
    by_provider = {s.key: s for s in usage_stats(records=records, by=("provider",))}
    openai, anthropic = by_provider[("openai",)], by_provider[("anthropic",)]
    # openai gave one answer (llama-local's provider) but was called three times: 2 priced, 1 refused, 1 unknown.
    assert (openai.requests, openai.calls, openai.input_tokens, openai.output_tokens) == (1, 3, 1070, 30)
    assert (openai.cost_usd, openai.estimated_cost_usd, openai.estimated) == (Decimal("0.00015"),) * 2 + (1,)
    assert (openai.cost_unknown, openai.unknown_tokens, openai.refused) == (1, 100, 1)
    assert (anthropic.requests, anthropic.calls, anthropic.cost_usd, anthropic.fallbacks) == (
        1, 1, Decimal("0.0008"), 1)
    totals = usage_totals(records=records)
    assert (totals.requests, totals.calls, totals.cost_usd, totals.estimated_cost_usd) == (
        2, 4, Decimal("0.00095"), Decimal("0.00015"))
    assert (totals.cost_unknown, totals.unknown_tokens, totals.refused) == (1, 100, 1)
    assert usage_providers(records=records) == ["anthropic", "openai"]
    # One provider's dashboard: the answers that called it, and only its calls.
    only_openai = usage_totals(records=usage_records(days=1, provider="openai"), provider="openai")
    assert (only_openai.requests, only_openai.calls, only_openai.cost_usd) == (2, 3, Decimal("0.00015"))
