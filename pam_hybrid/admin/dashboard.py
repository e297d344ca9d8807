"""The usage dashboard inside the admin: a period's usage per day, provider and model, with charts, and as CSV; and
routing quality per day and route (what users' signals say about the routes answers took).

Mounted in pam_project/urls.py through `admin.site.admin_view`, which keeps it to staff. Query string:
`days` (1 to 366, default 30; anything else means 30), `provider` (optional: one provider's records, none if it
had no usage in the period), `format=csv` for the download.
Staff also need the permission to view usage records (superusers have it), as the usage-record list does.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from pam_hybrid.admin.charts import cost_per_day_chart, ttft_per_day_chart
from pam_hybrid.models import UsageRecord
from pam_hybrid.usage.export import usage_csv_write
from pam_hybrid.usage.report import (
    Dimension,
    UsageStats,
    by_spend,
    clamp_days,
    usage_period_days,
    usage_providers,
    usage_records,
    usage_stats,
    usage_totals,
)
from pam_hybrid.usage.routing_quality import routing_quality

TEMPLATE = "admin/pam_hybrid/dashboard.html"
CSV_BY: tuple[Dimension, ...] = ("day", "provider", "model")
TOP_USERS = 10
PERIOD_CHOICES = (1, 7, 30, 90, 366)
PROVIDER_CHARS = 32  # UsageRecord.provider's length: a longer value matches nothing anyway


def usage_dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard page, or with `format=csv` its figures per (day, provider, model) as a CSV attachment."""
    if not request.user.has_perm("pam_hybrid.view_usagerecord"):
        raise PermissionDenied
    now = timezone.now()
    days = clamp_days(request.GET.get("days", ""))
    provider = request.GET.get("provider", "")[:PROVIDER_CHARS]
    providers = sorted({*usage_providers(records=usage_records(days=days, now=now)), *([provider] if provider else [])})
    records = usage_records(days=days, now=now, provider=provider or None)
    if request.GET.get("format") == "csv":
        return _csv_response(records, days=days, provider=provider, today=now.date().isoformat())
    context = {
        **admin.site.each_context(request),
        "title": "Usage dashboard",
        **_figures(records, days=days, now=now, provider=provider or None),
        "days": days,
        "period_choices": PERIOD_CHOICES,
        "provider": provider,
        "providers": providers,
    }
    return TemplateResponse(request, TEMPLATE, context)


def _figures(records: QuerySet[UsageRecord], *, days: int, now: datetime, provider: str | None) -> dict[str, Any]:
    period = usage_period_days(days=days, now=now)

    def stats(*by: Dimension) -> list[UsageStats]:
        return usage_stats(records=records, by=by, provider=provider)

    by_day = stats("day")
    return {
        "period_start": period[0],
        "period_end": period[-1],
        "totals": usage_totals(records=records, provider=provider),
        "by_model": stats("provider", "model"),
        "by_day": by_day,
        "by_day_model": stats(*CSV_BY),
        "top_users": by_spend(stats("user"))[:TOP_USERS],
        "cost_chart": cost_per_day_chart(days=period, stats=stats("day", "provider")),
        "ttft_chart": ttft_per_day_chart(days=period, stats=by_day),
        "routing_quality": routing_quality(records=records),
    }


def _csv_response(records: QuerySet[UsageRecord], *, days: int, provider: str, today: str) -> HttpResponse:
    buffer = io.StringIO()
    usage_csv_write(out=buffer, by=CSV_BY, stats=usage_stats(records=records, by=CSV_BY, provider=provider or None))
    suffix = f"-{re.sub(r'[^A-Za-z0-9_-]', '', provider)}" if provider else ""
    name = f"pam-usage-{today}-{days}d{suffix}.csv"
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response

