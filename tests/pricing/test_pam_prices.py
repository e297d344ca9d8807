"""`pam_prices` through `call_command`: `list` shows every model's price in force with its origin, date and
source (overrides marked); `missing` names the models in the usage records that have no price, with their
calls and tokens."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command

from pam_hybrid.models import ModelCallRecord, ModelPrice
from tests.support.factories import usage_record_create, user_create

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pam_prices", *args, stdout=out)
    return out.getvalue()


def row(output: str, first: str) -> list[str]:
    """The cells of the table row starting with `first` (cells are separated by two or more spaces)."""
    for line in output.splitlines():
        cells = re.split(r" {2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_list_shows_each_models_price_now_with_its_origin_and_long_context_tier() -> None:
    ModelPrice.objects.create(
        model="claude-opus-5-5", effective_from=datetime(2026, 11, 1, tzinfo=UTC), input=Decimal("3"),
        output=Decimal("15"), cache_read=Decimal("0.15"), cache_write_5m=Decimal("3.75"), cache_write_1h=Decimal("6"),
    )
    output = run("list")
    assert row(output, "claude-opus-5-5")[1:8] == [
        "3.000000", "15.000000", "0.150000", "3.750000", "6.000000", "—", "override 2026-11-01 00:00",
    ]
    assert row(output, "claude-fable-5-1")[1:8] == ["10.00", "50.00", "0.25", "12.50", "20.00", "—", "file"]
    sonnet = row(output, "claude-sonnet-5-5")
    assert sonnet[3] == "0.10" and sonnet[7] == "file 2026-10-07 00:00" and sonnet[8] == "2026-12-05 ?"
    assert row(output, "claude-sonnet-4-5")[6] == "> 200,000: 6.00 / 22.50 / 0.60 / 7.50 / 12.00"
    assert "\x1b[" not in output


def test_missing_lists_only_the_models_in_use_that_have_no_price() -> None:
    alice = user_create(username="alice")
    usage_record_create(user=alice, model="llama-3.3-70b-local", provider="local", input_tokens=1200,
                        output_tokens=300, cost_usd=None)
    usage_record_create(user=alice, model="llama-3.3-70b-local", provider="local", input_tokens=800,
                        output_tokens=100, cost_usd=None)
    usage_record_create(user=alice, model="mystery-model", provider="local", input_tokens=5, output_tokens=5,
                        cost_usd=None)
    usage_record_create(user=alice, model="gpt-4o-mini-2024-07-18")
    usage_record_create(user=alice, model="claude-sonnet-4-5-20250929", provider="anthropic")
    # a priced answer whose first attempt went to an unpriced model (fallen back from)
    answered = usage_record_create(user=alice, model="gpt-4o-mini")
    ModelCallRecord.objects.create(
        usage_record=answered, position=1, provider="local", model="mystery-model", input_tokens=10,
        cache_read_tokens=20, output_tokens=0, cost_usd=None, basis="unknown", accepted=True, ended="error",
        started_at=answered.created_at,
    )
    # an answer recorded before calls had rows of their own
    older = usage_record_create(user=alice, model="llama-3.3-70b-local", provider="local", input_tokens=1,
                                output_tokens=2, cost_usd=None)
    older.calls.all().delete()
    output = run("missing")
    assert row(output, "llama-3.3-70b-local")[1:4] == ["3", "2,001", "402"]
    assert row(output, "mystery-model")[1:4] == ["2", "35", "5"]
    assert "gpt-4o-mini" not in output and "claude-sonnet" not in output
    assert output.index("llama-3.3-70b-local") < output.index("mystery-model")


def test_missing_says_so_when_every_model_has_a_price() -> None:
    usage_record_create(user=user_create(username="alice"), model="gpt-4o-mini")
    assert "Every model in the usage records has a price." in run("missing")


def test_help_explains_both_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        call_command("pam_prices", "--help")
    text = capsys.readouterr().out
    assert "list" in text and "missing" in text and "prices.toml" in text
