"""The admin's Model prices page through Django's test client: staff add an override, it is priced at once in
this process (after the commit), the add form can start from the price in force, and deleting it restores the
file's price. Non-staff cannot reach it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.models import ModelPrice
from pam_hybrid.pricing import call_cost, price_for, refresh_overrides
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db

ADD = "/admin/pam_hybrid/modelprice/add/"
LIST = "/admin/pam_hybrid/modelprice/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(user_create(username="root", staff=True))
    return client


def form(**values: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-5-5", "effective_from_0": "2026-11-01", "effective_from_1": "00:00:00",
        "note": "price cut announced", "source": "https://platform.claude.com/docs/en/about-claude/pricing",
        "input": "1.5", "output": "8", "cache_read": "0.1", "cache_write_5m": "1.875", "cache_write_1h": "3",
        "long_context_above": "", "long_context_input": "", "long_context_output": "", "long_context_cache_read": "",
        "long_context_cache_write_5m": "", "long_context_cache_write_1h": "", **values,
    }


def test_saving_an_override_in_the_admin_prices_calls_with_it_at_once(
    staff: Client, django_capture_on_commit_callbacks: Any
) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000)
    assert call_cost("claude-sonnet-5-5", usage) == Decimal("3")  # the file: $2 in, $10 out
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(ADD, form())
    assert response.status_code == 302, response.content.decode()[:2000]
    row = ModelPrice.objects.get()
    assert (row.created_by.username, row.input, row.note) == ("root", Decimal("1.5"), "price cut announced")
    assert call_cost("claude-sonnet-5-5", usage) == Decimal("2.3")
    listing = staff.get(LIST).content.decode()
    assert "claude-sonnet-5-5" in listing and "price cut announced" in listing

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"{LIST}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert call_cost("claude-sonnet-5-5", usage) == Decimal("3")


def test_a_long_context_threshold_without_its_rates_is_refused_by_the_form(staff: Client) -> None:
    response = staff.post(ADD, form(long_context_above="200000", long_context_input="3"))
    assert response.status_code == 200 and "all five long-context rates" in response.content.decode()
    assert not ModelPrice.objects.exists()


def test_the_add_form_starts_from_the_price_in_force(staff: Client) -> None:
    page = staff.get(ADD, {"model": "claude-haiku-5-5"}).content.decode()
    assert 'name="cache_read" value="0.01"' in page and 'name="long_context_above" value="100000"' in page
    assert price_for("claude-haiku-5-5") is not None


def test_non_staff_cannot_reach_the_prices(client: Client) -> None:
    client.force_login(user_create(username="bob"))
    assert client.get(LIST).status_code == 302
    assert client.post(ADD, form()).status_code == 302
    assert not ModelPrice.objects.exists()


def test_the_list_shows_every_price_in_force_with_its_origin_and_a_link_to_override_it(staff: Client) -> None:
    ModelPrice.objects.create(
        model="claude-opus-5-5", effective_from=datetime(2026, 11, 1, tzinfo=UTC), input=Decimal("3"),
        output=Decimal("15"), cache_read=Decimal("0.15"), cache_write_5m=Decimal("3.75"), cache_write_1h=Decimal("6"),
    )
    refresh_overrides()
    page = staff.get(LIST).content.decode()
    rows = dict(re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', page, re.S))
    opus = re.findall(r"<td[^>]*>(.*?)</td>", rows["claude-opus-5-5"], re.S)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in opus]
    assert cells[:8] == ["claude-opus-5-5", "3.000000", "15.000000", "0.150000", "3.750000", "6.000000", "—",
                         "override from 2026-11-01 00:00"]
    assert "file from 2026-10-07 00:00" in rows["claude-sonnet-5-5"] and "(unconfirmed)" in rows["claude-sonnet-5-5"]
    assert "above 200,000: 6.00 / 22.50 / 0.60 / 7.50 / 12.00" in rows["claude-sonnet-4-5"]
    assert f'{ADD}?model=claude-fable-5-1"' in rows["claude-fable-5-1"]
