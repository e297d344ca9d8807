"""`current_datetime` tells the time now in the zone asked for, and names an unknown zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model

from pam_hybrid.tools.base import ToolContext, ToolError
from pam_hybrid.tools.clock import ClockArgs, current_datetime, format_offset


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(user=get_user_model()(username="clock"))


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
async def test_now_in_the_zone_asked_for(context: ToolContext, zone: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = await current_datetime.run(ClockArgs(timezone=zone), context)
    after = datetime.now(UTC)
    moment = datetime.fromisoformat(result["iso"])
    assert before <= moment <= after
    expected = moment.astimezone(ZoneInfo(zone))
    assert moment.utcoffset() == expected.utcoffset()
    assert result["timezone"] == zone
    assert result["date"] == expected.date().isoformat()
    assert result["time"] == expected.strftime("%H:%M:%S")
    assert result["weekday"] == expected.strftime("%A")
    assert result["utc_offset"] == format_offset(expected.utcoffset() or timedelta(0))
    assert result["abbreviation"] == expected.tzname()


async def test_default_is_utc(context: ToolContext) -> None:
    result = await current_datetime.run(ClockArgs(), context)
    assert (result["timezone"], result["utc_offset"]) == ("UTC", "+00:00")


@pytest.mark.parametrize("alias", ["utc", "Z", "gmt", "Etc/UTC"])
async def test_utc_spellings(context: ToolContext, alias: str) -> None:
    assert (await current_datetime.run(ClockArgs(timezone=alias), context))["timezone"] == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe", "../../etc/passwd", "/etc/passwd", "zone.tab"])
async def test_unknown_zone_is_a_tool_error_naming_it(context: ToolContext, zone: str) -> None:
    with pytest.raises(ToolError) as caught:
        await current_datetime.run(ClockArgs(timezone=zone), context)
    assert caught.value.user_message.startswith(f"Unknown time zone {zone!r}")


@pytest.mark.parametrize(
    ("offset", "text"),
    [(timedelta(0), "+00:00"), (timedelta(hours=5, minutes=30), "+05:30"), (timedelta(hours=-3, minutes=-30), "-03:30"),
     (timedelta(hours=13, minutes=45), "+13:45")],
)
def test_offsets_are_formatted_with_sign_hours_and_minutes(offset: timedelta, text: str) -> None:
    assert format_offset(offset) == text
