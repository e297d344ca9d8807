"""Budget-aware routing through the real socket: from PAM_BUDGET_ROUTING_AT of today's cap spent, an `auto` message
the classifier would send to the stronger model takes the simple one and its `start` says why; a route the user
picked is kept, and below the share (or with the share 0) the classifier decides."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from fake_upstream import FakeUpstream
from pam_hybrid.conf import pam_settings
from pam_hybrid.runtime.limits import near_cap
from tests.support.answers import saved_answer, settled
from tests.support.factories import usage_record_create
from tests.support.sockets import answer_frames, message

pytestmark = [pytest.mark.django_db(transaction=True)]

DEMANDING = ("Prove step by step that the square root of 2 is irrational, then design and analyse an algorithm that "
             "compares the tradeoffs of both proofs in detail.")
"""A question the classifier sends to the stronger model."""
QUICK = "What is the capital of France?"


async def spent_today(user: Any, cost: str) -> None:
    await sync_to_async(usage_record_create)(user=user, route="complex", provider="anthropic",
                                            model="claude-sonnet-5-5", cost_usd=Decimal(cost))


async def ask(user: Any, content: str, route: str = "auto") -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer's `start` and last frames."""
    frames = await answer_frames(user, message(content, route=route, client_msg_id=str(uuid.uuid4())))
    assert frames[-1]["chunk_type"] == "end", frames[-1]
    return frames[0], frames[-1]


async def test_near_the_cap_auto_takes_the_simple_route_and_says_why(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "1"
    await spent_today(user, "0.80")  # the default share, 0.8, exactly
    start, end = await ask(user, DEMANDING)
    assert (start["metadata"]["route"], start["metadata"]["route_reason"]) == ("simple", "budget")
    assert end["metadata"]["route"] == "simple"
    assert fake_upstream.requests[-1].provider == "openai"

    start, _ = await ask(user, DEMANDING, route="complex")  # the user's pick is respected
    assert (start["metadata"]["route"], start["metadata"]["route_reason"]) == ("complex", "user")
    assert fake_upstream.requests[-1].provider == "anthropic"

    start, _ = await ask(user, QUICK)  # simple anyway: the budget changed nothing, so it is not named
    assert (start["metadata"]["route"], start["metadata"]["route_reason"]) == ("simple", "classifier")


async def test_below_the_share_the_classifier_decides(user: Any, fake_upstream: FakeUpstream, settings: Any) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "1"
    await spent_today(user, "0.79")
    start, _ = await ask(user, DEMANDING)
    assert (start["metadata"]["route"], start["metadata"]["route_reason"]) == ("complex", "classifier")
    assert fake_upstream.requests[-1].provider == "anthropic"


async def test_the_share_is_a_setting_and_zero_turns_it_off(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "1"
    settings.PAM_BUDGET_ROUTING_AT = 0.5
    await spent_today(user, "0.60")
    start, _ = await ask(user, DEMANDING)
    assert start["metadata"]["route_reason"] == "budget"
    settings.PAM_BUDGET_ROUTING_AT = 0
    start, _ = await ask(user, DEMANDING)
    assert (start["metadata"]["route"], start["metadata"]["route_reason"]) == ("complex", "classifier")


def test_near_cap_needs_a_cap_a_share_and_a_known_spend(settings: Any) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "2"
    settings.PAM_BUDGET_ROUTING_AT = 0.75
    s = pam_settings()
    assert near_cap(Decimal("1.5"), s) and not near_cap(Decimal("1.49999999"), s) and not near_cap(None, s)
    settings.PAM_DAILY_SPEND_CAP_USD = "0"
    assert not near_cap(Decimal("100"), pam_settings())


async def reloaded(user: Any, end: dict[str, Any]) -> dict[str, Any]:
    """The answer as the history API gives it to a page reopening its conversation."""
    await settled()
    await saved_answer(end["metadata"]["message_id"])
    client = AsyncClient()
    await client.aforce_login(user)
    body = (await client.get(f"/api/conversations/{end['metadata']['conversation_id']}/messages/")).json()
    return body["messages"][-1]


async def test_a_reloaded_answer_says_why_it_took_its_route(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "1"
    await spent_today(user, "0.80")
    start, end = await ask(user, DEMANDING)
    answer = await reloaded(user, end)
    assert (answer["route"], answer["route_reason"]) == ("simple", start["metadata"]["route_reason"]) == ("simple",
                                                                                                        "budget")
    _, end = await ask(user, DEMANDING, route="complex")
    assert (await reloaded(user, end))["route_reason"] == "user"
    _, end = await ask(user, QUICK)
    assert (await reloaded(user, end))["route_reason"] == "classifier"
