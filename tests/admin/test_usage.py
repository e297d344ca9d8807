"""The staff side's usage pages through Django's test client: the conversation, message and usage-record lists
(usage totals of the filtered set), and the usage dashboard with its charts and CSV. Figures are checked
against the known records of `usage_sample_create`; non-staff are refused everywhere."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from pam_hybrid.admin.usage import UsageRecordAdmin
from pam_hybrid.models import Conversation, Message, UsageRecord
from tests.support.factories import conversation_create, message_create, user_create

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/pam/usage/"
USAGE_LIST = "/admin/pam_hybrid/usagerecord/"
CONVERSATION_LIST = "/admin/pam_hybrid/conversation/"
MESSAGE_LIST = "/admin/pam_hybrid/message/"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the bodies of inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def tags_of(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(user_create(username="staff", staff=True))
    return client


def html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def table_rows(page: str, testid: str) -> list[list[str]]:
    """The cells' text of each body row of the table with this data-testid."""
    table = re.search(rf'<table[^>]*data-testid="{testid}".*?</table>', page, re.S)
    assert table, testid
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(0), re.S)
    assert body
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in rows]


def days_before(today: date) -> Callable[[int], str]:
    """n -> the ISO date n days before today."""
    return lambda n: (today - timedelta(days=n)).isoformat()


def totals_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', page))


# --- who may see the pages ---


STAFF_PAGES = [
    "/admin/", USAGE_LIST, CONVERSATION_LIST, MESSAGE_LIST, DASHBOARD, f"{DASHBOARD}?format=csv",
]


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_non_staff_and_anonymous_are_sent_to_the_admin_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    client.force_login(user_create(username="alice"))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_the_usage_permission_cannot_open_the_dashboard(client: Client) -> None:
    clerk = user_create(username="clerk")
    clerk.is_staff = True
    clerk.save()
    client.force_login(clerk)
    assert client.get(DASHBOARD).status_code == 403
    assert 'data-testid="usage-dashboard-link"' not in html(client, "/admin/")
    clerk.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))
    assert client.get(DASHBOARD).status_code == 200


# --- the admin index and the usage-record list ---


def test_admin_index_links_to_the_dashboard_and_the_breakers_page(staff: Client) -> None:
    page = tags_of(html(staff, "/admin/"))
    links = {attrs.get("data-testid"): attrs.get("href") for tag, attrs in page.tags if tag == "a"}
    assert links["usage-dashboard-link"] == DASHBOARD
    assert links["breakers-link"] == "/admin/pam/breakers/"


def test_usage_list_shows_the_totals_of_every_record(staff: Client, usage_sample: dict[str, Any]) -> None:
    page = html(staff, USAGE_LIST)
    # All seven records, the one 40 days old included: 12049 = 2050 + 9999 input tokens, $1.0197 known cost.
    assert totals_of(page) == {
        "requests": "7", "input_tokens": "12049", "output_tokens": "10824", "cost_usd": "$1.019700",
        "cost_unknown": "1", "estimated": "1", "calls": "7", "cache_tokens": "0 / 0", "estimated_cost_usd": "$0.000000",
        "unknown_tokens": "450", "refused": "0",
    }
    assert 'href="/admin/pam/usage/"' in page


def test_usage_totals_cover_every_page_of_the_filtered_set(
    staff: Client, usage_sample: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(UsageRecordAdmin, "list_per_page", 2)
    page = html(staff, f"{USAGE_LIST}?provider__exact=openai")
    assert page.count('name="_selected_action"') == 2  # this page lists two records of the five
    assert totals_of(page) == {
        "requests": "5", "input_tokens": "10649", "output_tokens": "10324", "cost_usd": "$1.003500",
        "cost_unknown": "1", "estimated": "1", "calls": "5", "cache_tokens": "0 / 0", "estimated_cost_usd": "$0.000000",
        "unknown_tokens": "450", "refused": "0",
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("provider__exact=anthropic", ("2", "1400", "500", "$0.016200", "0", "0")),
        ("model__exact=gpt-4o", ("1", "50", "25", "$0.000500", "0", "0")),
        ("route__exact=complex", ("3", "1450", "525", "$0.016700", "0", "0")),
        ("outcome__exact=error", ("1", "400", "0", "$0.001200", "0", "0")),
        ("usage=estimated", ("1", "300", "150", "$0.000000", "1", "1")),
        ("usage=reported", ("6", "11749", "10674", "$1.019700", "0", "0")),
        ("fallback_from__exact=openai", ("1", "1000", "500", "$0.015000", "0", "0")),
        ("q=carol", ("2", "10049", "10024", "$1.000500", "0", "0")),
    ],
)
def test_usage_totals_follow_the_filters(
    staff: Client, usage_sample: dict[str, Any], query: str, expected: tuple[str, ...]
) -> None:
    totals = totals_of(html(staff, f"{USAGE_LIST}?{query}"))
    keys = ("requests", "input_tokens", "output_tokens", "cost_usd", "cost_unknown", "estimated")
    assert tuple(totals[key] for key in keys) == expected


def test_usage_totals_by_date(staff: Client, usage_sample: dict[str, Any], today: date) -> None:
    query = f"created_at__year={today.year}&created_at__month={today.month}&created_at__day={today.day}"
    totals = totals_of(html(staff, f"{USAGE_LIST}?{query}"))
    assert (totals["requests"], totals["input_tokens"], totals["cost_usd"]) == ("3", "1300", "$0.018000")
    since = urlencode({"created_at__gte": f"{today - timedelta(days=1)} 00:00:00+00:00"})
    totals = totals_of(html(staff, f"{USAGE_LIST}?{since}"))
    assert (totals["requests"], totals["input_tokens"], totals["cost_usd"]) == ("5", "2000", "$0.019200")


def test_usage_record_page_is_read_only(staff: Client, usage_sample: dict[str, Any]) -> None:
    record: UsageRecord = usage_sample["records"][2]
    page = html(staff, f"{USAGE_LIST}{record.pk}/change/")
    assert "claude-sonnet-5-5" in page and "0.01500000" in page
    assert 'data-testid="model-calls"' in page and "reported" in page  # its provider call, read-only
    inputs = [attrs for tag, attrs in tags_of(page).tags if tag in ("input", "textarea", "select")]
    assert [attrs.get("name") for attrs in inputs if attrs.get("name") not in (None, "csrfmiddlewaretoken")] == []
    assert staff.get(f"{USAGE_LIST}add/").status_code == 403


# --- conversations and messages ---


@pytest.fixture
def conversations(today: date) -> dict[str, Conversation]:
    alice, bob = user_create(username="alice"), user_create(username="bob")
    old = timezone.now() - timedelta(days=40)
    kettle = conversation_create(owner=alice, title="Descaling the kettle")
    message_create(conversation=kettle, content="How do I descale a kettle?")
    message_create(conversation=kettle, content="Use citric acid.", role=Message.Role.ASSISTANT,
                   provider="openai", model="gpt-4o-mini")
    return {
        "kettle": kettle,
        "bikes": conversation_create(owner=bob, title="Bicycle gears"),
        "old": conversation_create(owner=alice, title="An old chat about ferns", created_at=old),
    }


def listed_titles(page: str) -> set[str]:
    return set(re.findall(r'<th class="field-title"><a href="[^"]+">([^<]+)</a>', page))


def test_conversation_search_by_title_and_by_user(staff: Client, conversations: dict[str, Conversation]) -> None:
    assert listed_titles(html(staff, CONVERSATION_LIST)) == {
        "Descaling the kettle", "Bicycle gears", "An old chat about ferns",
    }
    assert listed_titles(html(staff, f"{CONVERSATION_LIST}?q=kettle")) == {"Descaling the kettle"}
    assert listed_titles(html(staff, f"{CONVERSATION_LIST}?q=bob")) == {"Bicycle gears"}


def test_conversation_filters_by_user_and_date(
    staff: Client, conversations: dict[str, Conversation], today: date
) -> None:
    bob = conversations["bikes"].owner
    page = html(staff, CONVERSATION_LIST)
    assert f"?owner__id__exact={bob.pk}" in page
    assert listed_titles(html(staff, f"{CONVERSATION_LIST}?owner__id__exact={bob.pk}")) == {"Bicycle gears"}
    alice = conversations["kettle"].owner
    week = urlencode({"owner__id__exact": alice.pk, "created_at__gte": f"{today - timedelta(days=7)} 00:00:00+00:00"})
    assert listed_titles(html(staff, f"{CONVERSATION_LIST}?{week}")) == {"Descaling the kettle"}


def test_conversation_page_shows_its_messages_read_only(
    staff: Client, conversations: dict[str, Conversation]
) -> None:
    kettle = conversations["kettle"]
    page = html(staff, f"{CONVERSATION_LIST}{kettle.pk}/change/")
    assert "How do I descale a kettle?" in page and "Use citric acid." in page
    names = [attrs.get("name") or "" for tag, attrs in tags_of(page).tags if tag in ("input", "textarea", "select")]
    assert not [name for name in names if name.startswith("messages-") and "-content" in name]
    assert 'name="messages-MAX_NUM_FORMS" value="0"' in page  # no rows can be added


def test_message_list_and_page(staff: Client, conversations: dict[str, Conversation]) -> None:
    page = html(staff, f"{MESSAGE_LIST}?role__exact=assistant")
    assert page.count('class="field-role"') == 1 and 'class="field-role">Assistant<' in page
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert "Use citric acid." in html(staff, f"{MESSAGE_LIST}{answer.pk}/change/")
    assert 'class="field-role"' in html(staff, f"{MESSAGE_LIST}?q=alice")


# --- the dashboard ---


def test_dashboard_figures_for_the_default_30_days(staff: Client, usage_sample: dict[str, Any], today: date) -> None:
    page = html(staff, DASHBOARD)
    # requests, calls, input, cache read / write, output, cost, estimated (calls), cost unknown (tokens), refused,
    # median ttft, p95 ttft, error rate, fallback rate
    assert table_rows(page, "totals") == [
        ["6", "6", "2050", "0 / 0", "825",
         "$0.019700", "$0.000000 (1)", "1 (450 tokens)", "0", "300 ms", "900 ms", "16.7%", "16.7%"],
    ]
    assert table_rows(page, "by-model") == [
        ["anthropic", "claude-sonnet-5-5", "2", "2", "1400", "0 / 0", "500",
         "$0.016200", "$0.000000 (0)", "0", "0", "500 ms", "500 ms", "50.0%", "50.0%"],
        ["openai", "gpt-4o", "1", "1", "50", "0 / 0", "25",
         "$0.000500", "$0.000000 (0)", "0", "0", "1,000 ms", "1,000 ms", "0.0%", "0.0%"],
        ["openai", "gpt-4o-mini", "3", "3", "600", "0 / 0", "300",
         "$0.003000", "$0.000000 (1)", "1 (450 tokens)", "0", "200 ms", "290 ms", "0.0%", "0.0%"],
    ]
    assert table_rows(page, "top-users") == [
        ["bob", "2", "2", "1400", "0 / 0", "500",
         "$0.016200", "$0.000000 (0)", "0", "0", "500 ms", "500 ms", "50.0%", "50.0%"],
        ["alice", "3", "3", "600", "0 / 0", "300",
         "$0.003000", "$0.000000 (1)", "1 (450 tokens)", "0", "200 ms", "290 ms", "0.0%", "0.0%"],
        ["carol", "1", "1", "50", "0 / 0", "25",
         "$0.000500", "$0.000000 (0)", "0", "0", "1,000 ms", "1,000 ms", "0.0%", "0.0%"],
    ]
    day = days_before(today)
    assert table_rows(page, "by-day") == [
        [day(6), "1", "1", "50", "0 / 0", "25",
         "$0.000500", "$0.000000 (0)", "0", "0", "1,000 ms", "1,000 ms", "0.0%", "0.0%"],
        [day(1), "2", "2", "700", "0 / 0", "150",
         "$0.001200", "$0.000000 (1)", "1 (450 tokens)", "0", "200 ms", "200 ms", "50.0%", "0.0%"],
        [day(0), "3", "3", "1300", "0 / 0", "650",
         "$0.018000", "$0.000000 (0)", "0", "0", "300 ms", "480 ms", "0.0%", "33.3%"],
    ]
    assert len(table_rows(page, "by-day-model")) == 5
    assert f"{day(29)} to {day(0)} (UTC days)" in page


def test_dashboard_charts_are_inline_svg_with_the_data(
    staff: Client, usage_sample: dict[str, Any], today: date
) -> None:
    page = html(staff, DASHBOARD)
    tags = tags_of(page).tags
    bars = re.findall(
        r'<rect class="pam-bar (pam-series-\d)" data-testid="chart-bar" [^>]*height="([\d.]+)"><title>([^<]+)</title>',
        page,
    )
    # Cost per (day, provider) with a known cost, anthropic (series 0) under openai (series 1). The axis tops at
    # $0.020 (today's $0.018 rounded up) over a plot 200 units high, so $0.0001 is one unit.
    day = days_before(today)
    assert bars == [
        ("pam-series-1", "5.0", f"{day(6)} openai: $0.000500"),
        ("pam-series-0", "12.0", f"{day(1)} anthropic: $0.001200"),
        ("pam-series-0", "150.0", f"{day(0)} anthropic: $0.015000"),
        ("pam-series-1", "30.0", f"{day(0)} openai: $0.003000"),
    ]
    for label in ("$0.000", "$0.005", "$0.010", "$0.015", "$0.020"):
        assert f">{label}</text>" in page
    # Median and p95 lines: a dot per day with a first token (3 days); a line joins yesterday and today, not the
    # day 6 days ago, alone after a gap.
    dots = [attrs for tag, attrs in tags if tag == "circle" and attrs.get("data-testid") == "chart-dot"]
    lines = [attrs["points"] for tag, attrs in tags if tag == "polyline"]
    assert len(dots) == 6 and len(lines) == 2
    assert [len((points or "").split()) for points in lines] == [2, 2]
    assert f"{today.isoformat()} p95: 480.0 ms" in page and f"{today.isoformat()} median: 300.0 ms" in page
    assert "Cost (USD)" in page and "Time to first token (ms)" in page and "Day (UTC)" in page
    legend = re.findall(r'<g class="pam-legend">(.*?)</g>', page, re.S)
    assert ">anthropic<" in legend[0] and ">openai<" in legend[0]
    assert ">median<" in legend[1] and ">p95<" in legend[1]


def test_dashboard_has_no_inline_script_or_style(staff: Client, usage_sample: dict[str, Any]) -> None:
    response = staff.get(DASHBOARD)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    page = tags_of(response.content.decode())
    assert [tag for tag, attrs in page.tags if "style" in attrs or tag == "style"] == []
    assert "".join(page.scripts).strip() == ""
    stylesheets = [attrs["href"] for tag, attrs in page.tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    assert "/static/pam_hybrid/admin/dashboard.css" in stylesheets


@pytest.mark.parametrize(
    ("query", "requests", "rows"),
    [("days=1", "3", 2), ("days=7", "6", 3), ("days=366", "7", 3), ("days=abc", "6", 3), ("days=0", "6", 3),
     ("days=9999", "6", 3), ("provider=anthropic", "2", 1), ("provider=nobody", "0", 0),
     ("days=1&provider=openai", "2", 1)],
)
def test_dashboard_period_and_provider(
    staff: Client, usage_sample: dict[str, Any], query: str, requests: str, rows: int
) -> None:
    page = html(staff, f"{DASHBOARD}?{query}")
    assert table_rows(page, "totals")[0][0] == requests
    assert len(re.findall(r"<tr data-provider=", page)) == rows


def test_dashboard_keeps_a_chosen_provider_without_usage_in_the_period(
    staff: Client, usage_sample: dict[str, Any]
) -> None:
    page = html(staff, f"{DASHBOARD}?days=1&provider=gemini")
    select = page.split('id="pam-provider"')[1].split("</select>")[0]
    options = re.findall(r'<option value="(\w*)"( selected)?>', select)
    assert options == [("", ""), ("anthropic", ""), ("gemini", " selected"), ("openai", "")]
    assert table_rows(page, "by-model") == [["No usage in this period."]]


def test_dashboard_without_usage_says_so(staff: Client) -> None:
    page = html(staff, DASHBOARD)
    assert table_rows(page, "totals") == [["0", "0", "0", "0 / 0", "0",
     "$0.000000", "$0.000000 (0)", "0", "0", "—", "—", "0.0%", "0.0%"]]
    assert page.count("No data in this period") == 2
    assert 'data-testid="chart-bar"' not in page


def test_dashboard_csv_has_one_row_per_day_provider_and_model(
    staff: Client, usage_sample: dict[str, Any], today: date
) -> None:
    response = staff.get(f"{DASHBOARD}?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="pam-usage-{today.isoformat()}-30d.csv"'
    day = days_before(today)
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["day", "provider", "model", "requests", "calls", "input_tokens", "cache_read_tokens", "cache_write_tokens",
         "output_tokens", "cost_usd", "estimated_cost_usd", "estimated_calls", "cost_unknown", "unknown_tokens",
         "refused_calls", "ttft_median_ms", "ttft_p95_ms", "error_rate", "fallback_rate"],
        [day(6), "openai", "gpt-4o", "1", "1", "50", "0", "0", "25", "0.00050000", "0.00000000", "0", "0", "0", "0",
         "1000.0", "1000.0", "0.0", "0.0"],
        [day(1), "anthropic", "claude-sonnet-5-5", "1", "1", "400", "0", "0", "0", "0.00120000", "0.00000000", "0",
         "0", "0", "0", "", "", "1.0", "0.0"],
        [day(1), "openai", "gpt-4o-mini", "1", "1", "300", "0", "0", "150", "0.00000000", "0.00000000", "1", "1",
         "450", "0", "200.0", "200.0", "0.0", "0.0"],
        [day(0), "anthropic", "claude-sonnet-5-5", "1", "1", "1000", "0", "0", "500", "0.01500000", "0.00000000", "0",
         "0", "0", "0", "500.0", "500.0", "0.0", "1.0"],
        [day(0), "openai", "gpt-4o-mini", "2", "2", "300", "0", "0", "150", "0.00300000", "0.00000000", "0", "0", "0",
         "0", "200.0", "290.0", "0.0", "0.0"],
    ]


def test_dashboard_csv_follows_the_period_and_provider(
    staff: Client, usage_sample: dict[str, Any], today: date
) -> None:
    response = staff.get(f"{DASHBOARD}?format=csv&days=1&provider=anthropic")
    assert response["Content-Disposition"] == f'attachment; filename="pam-usage-{today.isoformat()}-1d-anthropic.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [row[:4] for row in rows[1:]] == [[today.isoformat(), "anthropic", "claude-sonnet-5-5", "1"]]
