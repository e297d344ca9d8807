"""Template filters showing usage figures in the admin: money, milliseconds, rates."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

MISSING = "—"


@register.filter
def usd(value: Decimal | None) -> str:
    """Dollars with 6 places (a single answer often costs under a cent)."""
    return MISSING if value is None else f"${value:,.6f}"


@register.filter
def ms(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f} ms"


@register.filter
def percent(value: float) -> str:
    return f"{value * 100:.1f}%"
