"""The route toggle's cost preview (POST api/route-preview): for a known message and context, each route's
estimate is the tokens of exactly what the gateway would send, at the price file's rates to the exact Decimal;
the context follows the conversation's current branch and budget; owner-only, login required, rate limited."""

from __future__ import annotations

import json
import time
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from fake_upstream import FakeUpstream
from pam_hybrid.chat import preview
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.domain.routes import Route
from pam_hybrid.gateway.preview import TYPICAL_OUTPUT_TOKENS
from pam_hybrid.models import Conversation, Message
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.tokens import estimate_input_tokens
from pam_hybrid.tools.registry import all_tools
from tests.support.sockets import connect, message, receive_until_done

PRICES = Path(__file__).resolve().parents[2] / "pam_hybrid" / "pricing" / "prices.toml"
NEW = "And how long would the same trip take by night train, with one change in Munich?"
BRANCH: list[tuple[Literal["user", "assistant"], str]] = [
    ("user", "Plan a three-day trip from Paris to Vienna by train, with a stop on the way."),
    ("assistant", "Day one: Paris to Strasbourg on the TGV, about two hours; walk the Petite France quarter."),
    ("user", "Make the stop Munich instead, and keep each leg under six hours."),
    ("assistant", "Day one: Paris to Munich via Stuttgart, about five and a half hours; day two in Munich."),
]


def said(conversation: Conversation, role: str, content: str, parent: Message | None) -> Message:
    return Message.objects.create(conversation=conversation, role=role, content=content, parent=parent,
                                  reply_to=parent if role == "assistant" else None)


def conversation_with_branch(owner: Any) -> Conversation:
    """BRANCH as the current branch, and an older version of the last answer that is not on it."""
    conversation = Conversation.objects.create(owner=owner, title="Trip")
    parent = None
    for role, content in BRANCH[:-1]:
        parent = said(conversation, role, content, parent)
    said(conversation, "assistant", "An answer the user regenerated: not on the branch " * 20, parent)
    leaf = said(conversation, BRANCH[-1][0], BRANCH[-1][1], parent)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=leaf)
    return conversation


def rates(model: str) -> tuple[Decimal, Decimal]:
    """Input and output USD per million tokens of the model's newest row in the shipped price file."""
    rows = [row for row in tomllib.loads(PRICES.read_text())["price"] if row["model"] == model]
    newest = max(rows, key=lambda row: str(row.get("since", "")))
    return Decimal(str(newest["input"])), Decimal(str(newest["output"]))


def expected(model: str, provider: str, turns: tuple[ChatTurn, ...], output_tokens: int) -> tuple[int, str]:
    tools = tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in all_tools())
    request = ModelRequest(model=model, turns=turns, max_output_tokens=1024, tools=tools)
    input_tokens = estimate_input_tokens(provider, model, request)
    per_input, per_output = rates(model)
    cost = (Decimal(input_tokens) * per_input + Decimal(output_tokens) * per_output) / Decimal(1_000_000)
    return input_tokens, f"{cost.quantize(Decimal('0.00000001')):f}"


def ask(client: Client, content: str, conversation_id: Any = None) -> Any:
    return client.post("/api/route-preview", json.dumps({"content": content, "conversation_id": conversation_id}),
                       content_type="application/json")


@pytest.fixture
def client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_each_routes_estimate_is_the_context_and_message_at_the_price_files_rates(
    client: Client, user: Any, fake_upstream: FakeUpstream
) -> None:
    conversation = conversation_with_branch(user)
    response = ask(client, NEW, str(conversation.id))
    assert response.status_code == 200
    routes = response.json()["routes"]
    turns = (*(ChatTurn(role, content) for role, content in BRANCH), ChatTurn("user", NEW))
    targets: list[tuple[Route, str, str]] = [("simple", "openai", "gpt-4o-mini"),
                                             ("complex", "anthropic", "claude-sonnet-5-5")]
    for row, (route, provider, model) in zip(routes, targets, strict=True):
        input_tokens, cost = expected(model, provider, turns, TYPICAL_OUTPUT_TOKENS[route])
        assert row == {"route": route, "provider": provider, "model": model, "input_tokens": input_tokens,
                       "output_tokens": TYPICAL_OUTPUT_TOKENS[route], "cost_usd": cost}
    assert Decimal(routes[1]["cost_usd"]) > 10 * Decimal(routes[0]["cost_usd"])  # the stronger model costs more

    alone = ask(client, NEW).json()["routes"][0]  # a new conversation: the message alone
    assert alone["input_tokens"] == expected("gpt-4o-mini", "openai", (ChatTurn("user", NEW),), 350)[0]


@pytest.mark.django_db
def test_the_context_budget_and_output_limit_bound_the_estimate(
    client: Client, user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    conversation = conversation_with_branch(user)
    settings.PAM_CONTEXT_TOKEN_BUDGET = 50  # room for the last answer and the message only (4 characters a token)
    settings.PAM_MAX_OUTPUT_TOKENS = 200
    simple, complex_ = ask(client, NEW, str(conversation.id)).json()["routes"]
    turns = (ChatTurn(*BRANCH[-1]), ChatTurn("user", NEW))
    assert simple["input_tokens"] == expected("gpt-4o-mini", "openai", turns, 200)[0]
    assert (simple["output_tokens"], complex_["output_tokens"]) == (200, 200)


@pytest.mark.django_db
def test_a_new_message_on_the_branch_is_in_the_next_preview(
    client: Client, user: Any, fake_upstream: FakeUpstream
) -> None:
    conversation = conversation_with_branch(user)
    before = ask(client, NEW, str(conversation.id)).json()["routes"][0]["input_tokens"]
    assert ask(client, NEW, str(conversation.id)).json()["routes"][0]["input_tokens"] == before  # cached
    conversation.refresh_from_db()
    leaf = conversation.current_leaf
    question = said(conversation, "user", "What about sleeper cabins?", leaf)
    answer = said(conversation, "assistant", "Sleeper cabins run nightly on the Nightjet.", question)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=answer)  # as a saved answer does
    conversation.save(update_fields=["updated_at"])
    assert ask(client, NEW, str(conversation.id)).json()["routes"][0]["input_tokens"] > before


@pytest.mark.django_db
def test_only_the_owner_signed_in_with_good_input_gets_a_preview(
    client: Client, user: Any, other_user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    theirs = conversation_with_branch(other_user)
    assert ask(client, NEW, str(theirs.id)).status_code == 404
    assert ask(client, NEW, "not-an-id").status_code == 400
    assert ask(client, 42).json() == {"error": "content must be the message's text"}  # type: ignore[arg-type]
    settings.PAM_MAX_MESSAGE_CHARS = 10
    assert ask(client, NEW).status_code == 400
    assert ask(Client(), "hi").status_code == 401
    assert Client().get("/api/route-preview").status_code == 405


@pytest.mark.django_db
def test_previews_past_the_limit_are_refused_with_when_to_retry(
    client: Client, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview, "PREVIEW_LIMIT", 3)
    window_end = (int(time.time()) // 60 + 10) * 60  # a window of its own, so no earlier run's count is in it
    monkeypatch.setattr(preview, "_clock", lambda: window_end - 30.02)
    assert [ask(client, "hi").status_code for _ in range(3)] == [200, 200, 200]
    refused = ask(client, "hi")
    assert refused.status_code == 429 and refused.json()["retry_after_s"] == 30.1
    assert refused["Retry-After"] == "31"
    monkeypatch.setattr(preview, "_clock", lambda: window_end - 0.001)  # the last instant: still never "retry in 0 s"
    assert ask(client, "hi").json()["retry_after_s"] == 0.1
    monkeypatch.setattr(preview, "_clock", lambda: window_end)  # the next window takes previews again
    assert ask(client, "hi").status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_the_previewed_context_is_what_the_gateway_sends(user: Any, fake_upstream: FakeUpstream) -> None:
    conversation = await sync_to_async(conversation_with_branch)(user)
    client = AsyncClient()
    await client.aforce_login(user)
    await client.post("/api/route-preview", {"content": NEW, "conversation_id": str(conversation.id)},
                      content_type="application/json")
    communicator = await connect(user)
    await communicator.send_json_to(message(NEW, conversation_id=str(conversation.id), route="simple"))
    assert (await receive_until_done(communicator))[-1]["chunk_type"] == "end"
    await communicator.disconnect()
    sent = [(m["role"], m["content"]) for m in fake_upstream.requests[-1].json["messages"]]
    assert sent == [*BRANCH, ("user", NEW)]  # the turns the preview counted (first test)
