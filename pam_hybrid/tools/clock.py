"""The `current_datetime` tool: the date and time now in an IANA time zone (models have no clock of their own)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from pam_hybrid.tools.base import ToolArguments, ToolContext, ToolError, tool

_UTC_ALIASES = frozenset({"UTC", "Z", "GMT", "ETC/UTC"})


class ClockArgs(ToolArguments):
    timezone: str = Field(
        "UTC", max_length=64, description="IANA time zone name, e.g. Europe/Paris, America/New_York or UTC."
    )


@tool(
    name="current_datetime",
    description=(
        "Get the current date, time, weekday and UTC offset in a time zone. Use it whenever an answer depends on "
        "today's date or the time now (e.g. 'what day is it', 'how long until Friday', 'what time is it in Tokyo'); "
        "you do not know the current date otherwise."
    ),
    timeout_ms=1000,
)
async def current_datetime(args: ClockArgs, context: ToolContext) -> dict[str, Any]:
    zone = zone_for(args.timezone)
    now = datetime.now(zone)
    return {
        "timezone": zone.key,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M:%S"),
        "weekday": now.strftime("%A"),
        "utc_offset": format_offset(now.utcoffset() or timedelta(0)),
        "abbreviation": now.tzname(),
    }


def zone_for(name: str) -> ZoneInfo:
    """The named zone (ZoneInfo reads its small file once and caches it); ToolError naming it if unknown."""
    if name.upper() in _UTC_ALIASES:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(f"Unknown time zone {name!r}. Use an IANA name such as Europe/Paris or UTC.") from None


def format_offset(offset: timedelta) -> str:
    """`+02:00`, `-03:30`, `+00:00`."""
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"
