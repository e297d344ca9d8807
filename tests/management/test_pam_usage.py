"""`pam_usage` through `call_command`: its table, CSV and JSON against known usage records, its options and help."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from pam_hybrid.models import UsageRecord
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pam_usage", *args, stdout=out)
    return out.getvalue()


HEADER = [
    "requests", "calls", "input tokens", "cache read/write", "output tokens", "cost (USD)", "estimated (USD)",
    "cost unknown", "refused", "median TTFT (ms)", "p95 TTFT (ms)", "error rate", "fallback rate",
]


def table_lines(output: str, by: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (the total row last), cells split on runs of two or more spaces;
    checks the header row on the way."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = re.split(r" {2,}", line.strip())
        if len(cells) == 14:
            rows[cells[0]] = cells[1:]
    assert rows.pop(by) == HEADER
    return rows


def test_table_by_day_has_a_row_per_day_and_a_total(usage_sample: dict[str, Any], today: date) -> None:
    output = run()
    assert f"Usage by day, {(today - timedelta(days=29)).isoformat()} to {today.isoformat()} (UTC)" in output
    rows = table_lines(output, "day")
    # requests, calls, input, cache read/write, output, cost, estimated (calls), cost unknown (its tokens), refused,
    # median ttft, p95 ttft, error rate, fallback rate
    assert rows[(today - timedelta(days=6)).isoformat()] == [
        "1", "1", "50", "0/0", "25", "$0.000500", "$0.000000 (0)", "0", "0", "1,000", "1,000", "0.0%", "0.0%"]
    assert rows[(today - timedelta(days=1)).isoformat()] == [
        "2", "2", "700", "0/0", "150", "$0.001200", "$0.000000 (1)", "1 (450 tok)", "0", "200", "200", "50.0%", "0.0%"]
    assert rows[today.isoformat()] == [
        "3", "3", "1,300", "0/0", "650", "$0.018000", "$0.000000 (0)", "0", "0", "300", "480", "0.0%", "33.3%"]
    assert rows["total"] == [
        "6", "6", "2,050", "0/0", "825", "$0.019700", "$0.000000 (1)", "1 (450 tok)", "0", "300", "900", "16.7%",
        "16.7%"]
    assert list(rows) == [(today - timedelta(days=n)).isoformat() for n in (6, 1, 0)] + ["total"]
    assert "\x1b[" not in output  # no colour codes when the output is not a terminal


def test_table_by_user_is_sorted_by_spend(usage_sample: dict[str, Any]) -> None:
    rows = table_lines(run("--by", "user"), "user")
    assert [(name, cells[0], cells[5]) for name, cells in rows.items()] == [
        ("bob", "2", "$0.016200"),
        ("alice", "3", "$0.003000"),
        ("carol", "1", "$0.000500"),
        ("total", "6", "$0.019700"),
    ]


def test_csv_by_model(usage_sample: dict[str, Any]) -> None:
    rows = list(csv.reader(io.StringIO(run("--by", "model", "--format", "csv"))))
    assert rows == [
        ["model", "requests", "calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
         "cost_usd", "estimated_cost_usd", "estimated_calls", "cost_unknown", "unknown_tokens", "refused_calls",
         "ttft_median_ms", "ttft_p95_ms", "error_rate", "fallback_rate"],
        ["claude-sonnet-5-5", "2", "2", "1400", "0", "0", "500", "0.01620000", "0.00000000", "0", "0", "0", "0",
         "500.0", "500.0", "0.5", "0.5"],
        ["gpt-4o-mini", "3", "3", "600", "0", "0", "300", "0.00300000", "0.00000000", "1", "1", "450", "0", "200.0",
         "290.0", "0.0", "0.0"],
        ["gpt-4o", "1", "1", "50", "0", "0", "25", "0.00050000", "0.00000000", "0", "0", "0", "0", "1000.0",
         "1000.0", "0.0", "0.0"],
    ]


def test_json_by_provider_over_a_year(usage_sample: dict[str, Any]) -> None:
    objects = json.loads(run("--by", "provider", "--format", "json", "--days", "366"))
    # The record 40 days old counts now: openai gains 9999 + 9999 tokens, $1 and a 50 ms first token.
    assert objects == [
        {"provider": "openai", "requests": 5, "calls": 5, "input_tokens": 10649, "cache_read_tokens": 0,
         "cache_write_tokens": 0, "output_tokens": 10324, "cost_usd": "1.00350000", "estimated_cost_usd": "0.00000000",
         "estimated_calls": 1, "cost_unknown": 1, "unknown_tokens": 450, "refused_calls": 0, "ttft_median_ms": 200.0,
         "ttft_p95_ms": 860.0, "error_rate": 0.0, "fallback_rate": 0.0},
        {"provider": "anthropic", "requests": 2, "calls": 2, "input_tokens": 1400, "cache_read_tokens": 0,
         "cache_write_tokens": 0, "output_tokens": 500, "cost_usd": "0.01620000", "estimated_cost_usd": "0.00000000",
         "estimated_calls": 0, "cost_unknown": 0, "unknown_tokens": 0, "refused_calls": 0, "ttft_median_ms": 500.0,
         "ttft_p95_ms": 500.0, "error_rate": 0.5, "fallback_rate": 0.5},
    ]


def test_json_by_route_for_today(usage_sample: dict[str, Any]) -> None:
    objects = json.loads(run("--by", "route", "--format", "json", "--days", "1"))
    assert [(o["route"], o["requests"], o["cost_usd"], o["fallback_rate"]) for o in objects] == [
        ("complex", 1, "0.01500000", 1.0),
        ("simple", 2, "0.00300000", 0.0),
    ]


def test_json_by_day_for_two_days(usage_sample: dict[str, Any], today: date) -> None:
    objects = json.loads(run("--format", "json", "--days", "2"))
    assert [(o["day"], o["requests"], o["cost_unknown"], o["ttft_median_ms"], o["error_rate"]) for o in objects] == [
        ((today - timedelta(days=1)).isoformat(), 2, 1, 200.0, 0.5),
        (today.isoformat(), 3, 0, 300.0, 0.0),
    ]


def test_json_has_a_missing_time_as_null(usage_sample: dict[str, Any]) -> None:
    UsageRecord.objects.exclude(outcome=UsageRecord.Outcome.ERROR).delete()
    objects = json.loads(run("--format", "json", "--by", "provider"))
    assert objects == [
        {"provider": "anthropic", "requests": 1, "calls": 1, "input_tokens": 400, "cache_read_tokens": 0,
         "cache_write_tokens": 0, "output_tokens": 0, "cost_usd": "0.00120000", "estimated_cost_usd": "0.00000000",
         "estimated_calls": 0, "cost_unknown": 0, "unknown_tokens": 0, "refused_calls": 0, "ttft_median_ms": None,
         "ttft_p95_ms": None, "error_rate": 1.0, "fallback_rate": 0.0},
    ]


def test_empty_period(usage_sample: dict[str, Any]) -> None:
    UsageRecord.objects.all().delete()
    assert json.loads(run("--format", "json")) == []
    assert run("--format", "csv").splitlines() == [
        "day,requests,calls,input_tokens,cache_read_tokens,cache_write_tokens,output_tokens,cost_usd,"
        "estimated_cost_usd,estimated_calls,cost_unknown,unknown_tokens,refused_calls,ttft_median_ms,ttft_p95_ms,"
        "error_rate,fallback_rate"
    ]
    assert "No usage in this period." in run()


@pytest.mark.parametrize("days", ["0", "367", "-1"])
def test_days_out_of_range_is_an_error(days: str) -> None:
    with pytest.raises(CommandError, match="--days must be from 1 to 366"):
        run("--days", days)


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'colour'"):
        run("--by", "colour")


def test_help_explains_the_options_and_columns() -> None:
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "manage.py", "pam_usage", "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=60,
    )
    text = result.stdout
    expected_parts = (
        "--days DAYS", "--by {day,provider,model,route,user}", "--format {table,csv,json}", "today included",
        "cost_unknown", "percentile_cont", "fallback rate", "manage.py pam_usage --days 7",
    )
    for expected in expected_parts:
        assert expected in text, expected


def test_force_color_colours_the_table(usage_sample: dict[str, Any]) -> None:
    assert "\x1b[" in run("--force-color")
    assert "\x1b[" not in run("--format", "csv", "--force-color")
