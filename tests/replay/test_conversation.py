"""replay_conversation: the command run for real (call_command), the replay answered by the real SDKs through the fake
upstream, and what it printed and saved; replays kept out of the owner's sidebar and spend cap."""

from __future__ import annotations

import asyncio
import difflib
import uuid
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import services
from pam_hybrid.gateway.stream import ChatRequest, process_request_stream
from pam_hybrid.management.commands.replay_conversation import Command
from pam_hybrid.models import Conversation, Message, ModelCallRecord, ModelPrice, UsageRecord
from pam_hybrid.pricing import forget_overrides
from pam_hybrid.runtime import limits

pytestmark = [pytest.mark.django_db(transaction=True)]

SIMPLE_Q = "What is the capital of France?"
COMPLEX_Q = "Explain step by step how to design a fault-tolerant message queue"
THIRD_Q = "What is the capital of Spain?"  # a fact on its own (rubric H4): simple whatever came before
THEN_ANSWERS = ("Paris is the capital of France.", "First, persist every message before acknowledging it.")
NOW_ANSWERS = ("Paris.", "First, persist every message.", "Madrid.")


def exchange_create(conversation: Conversation, question: str, answer: str = "", **usage: Any) -> Message:
    """A user message and, when `usage` is given, its answer with a usage record, as the gateway saves them."""
    asked = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=question)
    if usage:
        route, provider, model = usage.pop("route"), usage.pop("provider"), usage.pop("model")
        replied = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, content=answer, reply_to=asked, route=route,
            provider=provider, model=model,
        )
        record = UsageRecord.objects.create(message=replied, user=conversation.owner, route=route,
                                            provider=provider, model=model, outcome="complete", **usage)
        ModelCallRecord.objects.create(  # the provider call the usage figures and the spend cap are read from
            usage_record=record, position=0, provider=provider, model=model, input_tokens=record.input_tokens,
            output_tokens=record.output_tokens, cost_usd=record.cost_usd, basis="reported", accepted=True,
            ended="complete", started_at=record.created_at,
        )
    return asked


@pytest.fixture
def original(user: Any) -> Conversation:
    """Three turns as saved months ago: a simple one (OpenAI), a complex one (Anthropic), one never answered."""
    conversation = Conversation.objects.create(owner=user, title="Trip planning")
    exchange_create(conversation, SIMPLE_Q, THEN_ANSWERS[0], route="simple", provider="openai",
                    model="gpt-4o-mini", input_tokens=10, output_tokens=7, cost_usd=Decimal("0.00000570"),
                    ttft_ms=321.0)
    exchange_create(conversation, COMPLEX_Q, THEN_ANSWERS[1], route="complex", provider="anthropic",
                    model="claude-sonnet-5-5", input_tokens=40, output_tokens=9, cost_usd=Decimal("0.00017000"),
                    ttft_ms=876.0)
    exchange_create(conversation, THIRD_Q)
    return conversation


def table_rows(output: str) -> dict[str, list[str]]:
    """The table's body rows by their first cell (turn number, or "" for the totals row)."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            if cells[0] != "#":
                rows[cells[0] or cells[1]] = cells
    return rows


def run(*args: str) -> str:
    out = StringIO()
    call_command("replay_conversation", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def similarity(then: str, now: str) -> str:
    return f"{difflib.SequenceMatcher(None, then, now).ratio():.0%}"


PROVIDERS = [
    # provider, model, USD per million tokens in and out (pam_hybrid/pricing/prices.toml)
    pytest.param("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.60"), id="openai"),
    pytest.param("anthropic", "claude-sonnet-5-5", Decimal("2.00"), Decimal("10.00"), id="anthropic"),
]


@pytest.mark.parametrize(("provider", "model", "price_in", "price_out"), PROVIDERS)
def test_replay_through_a_forced_provider_saves_a_linked_conversation_and_prints_then_and_now(
    original: Conversation, user: Any, fake_upstream: FakeUpstream, provider: str, model: str, price_in: Decimal,
    price_out: Decimal,
) -> None:
    usages = [(1000, 2000), (3000, 500), (700, 30)]
    fake_upstream.enqueue(*(Scenario(provider=provider, text=text, input_tokens=i, output_tokens=o)
                            for text, (i, o) in zip(NOW_ANSWERS, usages, strict=True)))

    output = run(str(original.id), "--provider", provider)

    replay = Conversation.objects.get(replay_of=original)
    assert replay.owner == user and replay.title == "Replay of Trip planning"
    messages = list(replay.messages.order_by("created_at"))
    assert [(m.role, m.content) for m in messages] == [
        ("user", SIMPLE_Q), ("assistant", NOW_ANSWERS[0]), ("user", COMPLEX_Q), ("assistant", NOW_ANSWERS[1]),
        ("user", THIRD_Q), ("assistant", NOW_ANSWERS[2]),
    ]
    answers = messages[1::2]
    assert [a.reply_to_id for a in answers] == [m.id for m in messages[0::2]]
    assert {(a.provider, a.model, a.status) for a in answers} == {(provider, model, "complete")}
    assert [a.route for a in answers] == ["simple", "complex", "simple"]  # today's classifier, the provider forced
    records = [a.usage for a in answers]
    costs = [(Decimal(i) * price_in + Decimal(o) * price_out) / 1_000_000 for i, o in usages]
    assert [(r.input_tokens, r.output_tokens, r.cost_usd, r.user_id) for r in records] == [
        (i, o, cost, user.pk) for (i, o), cost in zip(usages, costs, strict=True)
    ]
    # The fake upstream saw every turn on the forced provider, each with the replay's own earlier answers as context.
    assert [(r.provider, r.model) for r in fake_upstream.requests] == [(provider, model)] * 3
    third_context = str(fake_upstream.requests[2].messages)
    assert NOW_ANSWERS[0] in third_context and NOW_ANSWERS[1] in third_context
    assert THEN_ANSWERS[0] not in third_context
    assert Conversation.objects.count() == 2 and UsageRecord.objects.count() == 5

    rows = table_rows(output)
    first, second, third, totals = rows["1"], rows["2"], rows["3"], rows["total"]
    assert first[2:] == [
        "simple → simple", f"gpt-4o-mini → {model}", "10/7", "1000/2000", "0.00000570", f"{costs[0]:.8f}", "321",
        f"{records[0].ttft_ms:.0f}", similarity(THEN_ANSWERS[0], NOW_ANSWERS[0]), "complete",
    ]
    assert second[2:] == [
        "complex → complex", f"claude-sonnet-5-5 → {model}", "40/9", "3000/500", "0.00017000", f"{costs[1]:.8f}",
        "876", f"{records[1].ttft_ms:.0f}", similarity(THEN_ANSWERS[1], NOW_ANSWERS[1]), "complete",
    ]
    assert third[2:] == ["— → simple", f"— → {model}", "—", "700/30", "—", f"{costs[2]:.8f}", "—",
                         f"{records[2].ttft_ms:.0f}", "—", "complete"]
    assert totals[4:8] == ["50/16", "4700/2530", "0.00017570 + ?", f"{sum(costs):.8f}"]
    assert f"Replay saved as conversation {replay.id} ('Replay of Trip planning'): 3 turns, 0 failed." in output


def test_a_replay_prices_its_answers_at_the_staff_overrides_in_force(original: Conversation,
                                                                   fake_upstream: FakeUpstream) -> None:
    ModelPrice.objects.create(
        model="gpt-4o-mini", effective_from=timezone.now() - timedelta(days=1), input=Decimal("1"),
        output=Decimal("2"), cache_read=Decimal("0.5"), cache_write_5m=Decimal("1"), cache_write_1h=Decimal("1"),
        note="negotiated rate",
    )
    forget_overrides()  # a fresh command process: it has read no override yet
    fake_upstream.enqueue(*(Scenario(provider="openai", text=text, input_tokens=1000, output_tokens=500)
                            for text in NOW_ANSWERS))
    try:
        output = run(str(original.id), "--provider", "openai")
    finally:
        forget_overrides()

    replay = Conversation.objects.get(replay_of=original)
    costs = [m.usage.cost_usd for m in replay.messages.filter(role="assistant")]
    assert costs == [Decimal("0.002")] * 3  # 1,000 x $1 + 500 x $2 per million, not the file's $0.15 / $0.60
    assert table_rows(output)["total"][7] == "0.00600000"


async def gateway_ask(user: Any, content: str, conversation_id: str | None = None) -> dict[str, Any]:
    """One message through the gateway, as the chat socket sends it; the last chunk's metadata."""
    chunks = [c async for c in process_request_stream(ChatRequest(user=user, content=content,
                                                                  conversation_id=conversation_id))]
    assert chunks[-1].chunk_type == "end"
    return chunks[-1].metadata


def test_replay_of_a_conversation_the_gateway_saved(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", text=THEN_ANSWERS[0], input_tokens=11, output_tokens=6),
                          Scenario(provider="anthropic", text=THEN_ANSWERS[1], input_tokens=60, output_tokens=9))
    first = asyncio.run(gateway_ask(user, SIMPLE_Q))
    second = asyncio.run(gateway_ask(user, COMPLEX_Q, first["conversation_id"]))
    fake_upstream.reset()
    fake_upstream.enqueue(Scenario(provider="anthropic", text=THEN_ANSWERS[0], input_tokens=20, output_tokens=6),
                          Scenario(provider="anthropic", text=NOW_ANSWERS[1], input_tokens=80, output_tokens=5))

    output = run(first["conversation_id"], "--provider", "anthropic")

    assert [r.provider for r in fake_upstream.requests] == ["anthropic"] * 2
    replay = Conversation.objects.get(replay_of_id=first["conversation_id"])
    assert replay.messages.count() == 4
    now_ttft = [f"{a.usage.ttft_ms:.0f}" for a in replay.messages.filter(role="assistant").order_by("created_at")]
    rows = table_rows(output)
    # Then: the figures the gateway saved (and reported in its end chunks); now: the replay's.
    assert rows["1"][2:] == [
        "simple → simple", "gpt-4o-mini → claude-sonnet-5-5", "11/6", "20/6", first["cost_usd"], "0.00010000",
        f"{first['ttft_ms']:.0f}", now_ttft[0], "100%", "complete",
    ]
    assert rows["2"][2:] == [
        "complex → complex", "claude-sonnet-5-5 → claude-sonnet-5-5", "60/9", "80/5", second["cost_usd"],
        "0.00021000", f"{second['ttft_ms']:.0f}", now_ttft[1], similarity(THEN_ANSWERS[1], NOW_ANSWERS[1]),
        "complete",
    ]


def test_route_and_model_forced_without_a_provider_keep_the_routes_provider(
    original: Conversation, fake_upstream: FakeUpstream
) -> None:
    output = run(str(original.id), "--route", "complex", "--model", "claude-haiku-4-5")
    assert [(r.provider, r.model) for r in fake_upstream.requests] == [("anthropic", "claude-haiku-4-5")] * 3
    replay = Conversation.objects.get(replay_of=original)
    answers = replay.messages.filter(role="assistant").order_by("created_at")
    # Without a scenario the fake echoes: "Echo from {model}: {question}".
    assert [a.content for a in answers] == [f"Echo from claude-haiku-4-5: {q}" for q in (SIMPLE_Q, COMPLEX_Q, THIRD_Q)]
    assert [a.route for a in answers] == ["complex"] * 3
    assert table_rows(output)["1"][2:4] == ["simple → complex", "gpt-4o-mini → claude-haiku-4-5"]


def test_a_failing_turn_is_reported_and_the_replay_goes_on(original: Conversation, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(provider="openai", text=NOW_ANSWERS[0], input_tokens=5, output_tokens=1),
                          Scenario(provider="openai", status=400),
                          Scenario(provider="openai", text=NOW_ANSWERS[2], input_tokens=9, output_tokens=1))
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 3 turns failed"):
        call_command("replay_conversation", str(original.id), "--provider", "openai", stdout=out, stderr=StringIO())
    output = out.getvalue()

    # A forced provider has no fallback: the 400 was not retried, and Anthropic was never called.
    assert [r.provider for r in fake_upstream.requests] == ["openai"] * 3
    replay = Conversation.objects.get(replay_of=original)
    messages = list(replay.messages.order_by("created_at"))
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "error"),
        ("user", "complete"), ("assistant", "complete"),
    ]
    failed = messages[3]
    assert failed.usage.outcome == "error" and failed.usage.cost_usd == Decimal(0)
    rows = table_rows(output)
    assert rows["2"][-1] == "error" and rows["2"][5] == "0/0"
    assert rows["1"][-1] == rows["3"][-1] == "complete"
    assert f"Turn 2 failed: {failed.error}" in output and failed.error
    assert "3 turns, 1 failed" in output


def test_dry_run_classifies_only(original: Conversation, fake_upstream: FakeUpstream) -> None:
    counts = (Conversation.objects.count(), Message.objects.count(), UsageRecord.objects.count())
    output = run(str(original.id), "--dry-run")
    forced = run(str(original.id), "--dry-run", "--route", "complex")

    assert fake_upstream.requests == []
    assert (Conversation.objects.count(), Message.objects.count(), UsageRecord.objects.count()) == counts
    rows = table_rows(output)
    assert [rows[n][2:3] + rows[n][4:] for n in ("1", "2", "3")] == [
        ["simple → simple", "gpt-4o-mini → gpt-4o-mini", "openai"],
        ["complex → complex", "claude-sonnet-5-5 → claude-sonnet-5-5", "anthropic"],
        ["— → simple", "— → gpt-4o-mini", "openai"],
    ]
    # The router gives its reasons for either route (they change with the trained model); a forced route has none.
    assert all(rows[n][3] not in ("", "—") for n in ("1", "2", "3"))
    assert "Dry run: 3 turns classified; nothing was sent or saved." in output
    assert table_rows(forced)["1"][2:] == ["simple → complex", "—", "gpt-4o-mini → claude-sonnet-5-5", "anthropic"]


def test_unknown_conversation_is_an_error(user: Any, fake_upstream: FakeUpstream) -> None:
    with pytest.raises(CommandError, match="No conversation with id"):
        run(str(uuid.uuid4()))
    with pytest.raises(CommandError, match="No conversation with id 'not-a-uuid'"):
        run("not-a-uuid")
    assert not Conversation.objects.exists()


def test_conversation_without_user_turns_is_an_error(user: Any, fake_upstream: FakeUpstream) -> None:
    empty = Conversation.objects.create(owner=user, title="Empty")
    with pytest.raises(CommandError, match="has no user messages"):
        run(str(empty.id))
    assert Conversation.objects.count() == 1


def test_unknown_or_unconfigured_provider_is_refused_before_any_call(
    original: Conversation, fake_upstream: FakeUpstream, settings: Any
) -> None:
    with pytest.raises(CommandError, match=r"unknown provider 'mistral'; configured: anthropic, offline, openai"):
        run(str(original.id), "--provider", "mistral")
    settings.ANTHROPIC_API_KEY = ""
    with pytest.raises(CommandError, match=r"provider 'anthropic' is not configured .*; configured: offline, openai"):
        run(str(original.id), "--provider", "anthropic")
    # A model alone forces the route's provider: Anthropic, for the complex turn.
    with pytest.raises(CommandError, match="provider 'anthropic' is not configured"):
        run(str(original.id), "--model", "claude-haiku-4-5")
    with pytest.raises(CommandError, match="the offline provider has only the model 'pam-offline'"):
        run(str(original.id), "--provider", "offline", "--model", "gpt-4o")
    assert fake_upstream.requests == []
    assert not Conversation.objects.filter(replay_of=original).exists()


def test_help_explains_the_table_and_the_options() -> None:
    text = " ".join(Command().create_parser("manage.py", "replay_conversation").format_help().split())
    for phrase in ("[--route {auto,simple,complex}] [--provider PROVIDER] [--model MODEL] [--dry-run]",
                   "SequenceMatcher", "no model call, nothing saved, no spend", "per-user limits",
                   "exits with status 1", "hidden from the owner's chat sidebar", "A forced provider has no fallback"):
        assert phrase in text


# --- replays in the rest of the app ------------------------------------------------------------------------------


def test_replays_stay_out_of_the_sidebar_but_open_by_id(client: Client, original: Conversation, user: Any) -> None:
    replay = services.conversation_replay_create(original=original)
    exchange_create(replay, SIMPLE_Q, NOW_ANSWERS[0], route="simple", provider="openai", model="gpt-4o-mini",
                    input_tokens=1, output_tokens=1)
    client.force_login(user)
    listed = client.get("/api/conversations/").json()["conversations"]
    assert [c["id"] for c in listed] == [str(original.id)]
    opened = client.get(f"/api/conversations/{replay.id}/messages/").json()
    assert opened["conversation"]["title"] == "Replay of Trip planning"
    assert [m["content"] for m in opened["messages"]] == [SIMPLE_Q, NOW_ANSWERS[0]]


def test_a_replays_cost_does_not_count_against_the_owners_spend_cap(
    original: Conversation, user: Any, settings: Any
) -> None:
    settings.PAM_DAILY_SPEND_CAP_USD = "0.001"
    replay = services.conversation_replay_create(original=original)
    exchange_create(replay, SIMPLE_Q, NOW_ANSWERS[0], route="complex", provider="anthropic",
                    model="claude-opus-4", input_tokens=100_000, output_tokens=0, cost_usd=Decimal("1.5"))
    assert isinstance(asyncio.run(limits.admit(user.pk, uuid.uuid4(), pam_settings())), limits.Admitted)
    # The user's own answers do count: 0.00017570 so far, then one over the cap.
    exchange_create(original, "More?", "More.", route="simple", provider="openai", model="gpt-4o-mini",
                    input_tokens=1, output_tokens=1, cost_usd=Decimal("0.002"))
    settings.PAM_REDIS_PREFIX = f"pam-test:{uuid.uuid4().hex}:"  # a fresh book: the day's spend is read again
    refusal = asyncio.run(limits.admit(user.pk, uuid.uuid4(), pam_settings()))
    assert isinstance(refusal, limits.Refusal) and refusal.code == "spend_cap"
