"""`manage.py pam_breaker`: its help, status as a rich table, and reset/open on the breaker state every server
process shares through Redis (those tests skip without REDIS_URL); without REDIS_URL, status shows the recorded
transitions and says the live state is per process, and reset/open refuse."""

from __future__ import annotations

import asyncio
import getpass
import io
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command, load_command_class

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers import BreakerStatus, CircuitBreaker, RedisBreakerStore
from pam_hybrid.breakers.wiring import breaker_config
from pam_hybrid.models import BreakerEvent
from pam_hybrid.redis_client import redis_key
from tests.support.sockets import connect, message, receive_until_done, text_of

REDIS_URL = os.environ.get("REDIS_URL", "")
ACTOR = f"manage.py pam_breaker (unix user {getpass.getuser()})"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

needs_redis = pytest.mark.skipif(not REDIS_URL, reason="breaker state is shared (and reachable) only through Redis")
# The command records a change through asgiref's threads: the tests' writes must be committed, not rolled back.
pytestmark = [pytest.mark.django_db(transaction=True)]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pam_breaker", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def known(fake_upstream: FakeUpstream) -> None:
    """openai and anthropic configured (API keys set), as in a server's environment; offline always is."""


@pytest.fixture
def in_process(settings: Any, known: None) -> None:
    settings.REDIS_URL = ""


@pytest.fixture
def events() -> list[BreakerEvent]:
    return [
        BreakerEvent.objects.create(provider="openai", from_state="closed", to_state="open", at=AT,
                                    reason="5 consecutive failures (last: HTTP 503)"),
        BreakerEvent.objects.create(provider="anthropic", from_state="open", to_state="closed", actor="boss",
                                    at=AT + timedelta(minutes=5), reason="reset from the admin page"),
    ]


@asynccontextmanager
async def shared_store() -> AsyncIterator[CircuitBreaker]:
    """The servers' shared breaker read independently of the command: a client of its own, the same keys."""
    store = RedisBreakerStore.from_url(REDIS_URL, prefix=redis_key("breaker:"))
    try:
        yield CircuitBreaker(store, breaker_config())
    finally:
        await store.client.aclose()


async def _shared_status(provider: str) -> BreakerStatus:
    async with shared_store() as breaker:
        return await breaker.status(provider)


def shared_status(provider: str) -> BreakerStatus:
    return asyncio.run(_shared_status(provider))


async def _fail(provider: str, times: int) -> None:
    async with shared_store() as breaker:
        for _ in range(times):
            permit = await breaker.acquire(provider)
            assert permit is not None
            await breaker.failure(permit, reason="HTTP 503")


def line_of(output: str, start: str) -> str:
    """The table line whose first cell is `start`."""
    return next(line for line in output.splitlines() if line.strip().startswith(start))


def test_help_explains_the_actions_and_where_the_state_lives(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        call_command("pam_breaker", "--help")
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "{status,reset,open}" in text
    assert "status [PROVIDER]" in text and "reset PROVIDER" in text and "open PROVIDER" in text
    assert "no calls to the provider, and no probes, until it is reset" in text
    assert "with REDIS_URL every server process shares it through Redis" in text
    assert "reset and open refuse (exit status 1); use\nthe admin page /admin/pam/breakers/ instead" in text
    assert 'manage.py pam_breaker open anthropic --reason "provider maintenance until 15:00 UTC"' in text


# --- without REDIS_URL: the state is per process ----------------------------------------------------------------


def test_status_without_redis_shows_the_recorded_transitions_and_says_why(
    in_process: None, events: list[BreakerEvent]
) -> None:
    output = run("status")

    assert "lives inside each server process (REDIS_URL is not set)" in output
    assert "See the admin page /admin/pam/breakers/" in output
    assert "Circuit breakers (shared" not in output  # no live table: it would show this command's empty state
    newest, oldest = line_of(output, "2025-03-01 12:05:00 UTC"), line_of(output, "2025-03-01 12:00:00 UTC")
    assert output.index(newest) < output.index(oldest)
    assert newest.split() == ["2025-03-01", "12:05:00", "UTC", "anthropic", "open", "closed", "reset", "from", "the",
                              "admin", "page", "boss"]
    assert oldest.split()[3:7] == ["openai", "closed", "open", "5"]
    assert oldest.split()[-1] == "automatic"

    only_openai = run("status", "openai")

    assert "openai" in only_openai and "anthropic" not in only_openai
    assert "Recent transitions recorded for openai" in only_openai


@pytest.mark.parametrize("action", ["reset", "open"])
def test_reset_and_open_without_redis_refuse_and_change_nothing(in_process: None, action: str) -> None:
    with pytest.raises(CommandError) as refused:
        run(action, "openai")
    assert str(refused.value) == (
        "Breaker state lives inside each server process (REDIS_URL is not set), so a command cannot reach it: "
        "nothing changed. Use the admin page /admin/pam/breakers/ on the server instead."
    )
    assert not BreakerEvent.objects.exists()


def test_from_the_command_line_a_refusal_exits_with_status_1(
    in_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_command_class("pam_hybrid", "pam_breaker").run_from_argv(["manage.py", "pam_breaker", "open", "openai"])
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("CommandError: Breaker state lives inside each server process")


def test_an_unknown_provider_is_refused_with_the_known_ones(in_process: None, events: list[BreakerEvent]) -> None:
    BreakerEvent.objects.create(provider="retired", from_state="open", to_state="closed", at=AT, reason="x")
    for args in (("status", "nonesuch"), ("reset", "nonesuch"), ("open", "nonesuch")):
        with pytest.raises(CommandError) as refused:
            run(*args)
        known_ones = "anthropic, offline, openai, retired"
        assert str(refused.value) == f"Unknown provider 'nonesuch'. Known providers: {known_ones}."


def test_an_unreachable_redis_is_an_error_and_changes_nothing(known: None, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with pytest.raises(CommandError) as refused:
        run("open", "openai")
    assert str(refused.value) == "The shared breaker store (Redis) could not be reached: nothing changed."

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("pam_breaker", "status", "openai", stdout=out)
    assert "unknown: Redis unreachable" in line_of(out.getvalue(), "openai")
    assert not BreakerEvent.objects.exists()


# --- with REDIS_URL: the state every server process shares ------------------------------------------------------


@needs_redis
def test_open_then_reset_act_on_the_shared_state_and_are_recorded(known: None) -> None:
    output = run("open", "openai", "--reason", "provider maintenance")

    assert output == "The openai breaker is forced open (it was closed): no calls to openai until it is reset.\n"
    status = shared_status("openai")
    assert (status.state, status.forced_by, status.retry_at) == ("open", ACTOR, None)
    event = BreakerEvent.objects.get()
    assert (event.provider, event.from_state, event.to_state, event.actor) == ("openai", "closed", "open", ACTOR)
    assert event.reason == "forced open with manage.py pam_breaker: provider maintenance"
    assert status.opened_at == event.at

    assert run("open", "openai") == (
        f"The openai breaker was already forced open by {ACTOR}: nothing changed.\n"
    )
    assert BreakerEvent.objects.count() == 1

    assert run("reset", "openai") == "The openai breaker is reset to closed (it was open).\n"

    status = shared_status("openai")
    assert (status.state, status.forced_by, status.opened_at) == ("closed", "", None)
    reset = BreakerEvent.objects.latest("at")
    assert (reset.from_state, reset.to_state, reset.reason, reset.actor) == (
        "open", "closed", "reset with manage.py pam_breaker", ACTOR
    )


@needs_redis
def test_status_with_redis_shows_the_live_shared_state_as_a_table(known: None, settings: Any) -> None:
    settings.PAM_BREAKER_FAILURES = 2
    asyncio.run(_fail("openai", 1))  # one failure: closed, 1 in a row
    asyncio.run(_fail("anthropic", 2))  # two in a row: open
    anthropic = shared_status("anthropic")
    run("open", "offline")

    output = run("status")

    assert "Circuit breakers (shared by every server process through Redis)" in output
    assert line_of(output, "openai").split() == ["openai", "closed", "1", "1", "1", "0", "—", "—", "—"]
    assert anthropic.opened_at is not None and anthropic.retry_at is not None
    opened, retry = (at.strftime("%Y-%m-%d %H:%M:%S UTC") for at in (anthropic.opened_at, anthropic.retry_at))
    assert line_of(output, "anthropic").split()[:6] == ["anthropic", "open", "0", "0", "0", "0"]
    assert opened in line_of(output, "anthropic") and retry in line_of(output, "anthropic")
    offline = line_of(output, "offline")
    assert offline.split()[:7] == ["offline", "open", "(forced)", "0", "0", "0", "0"]
    assert offline.rstrip().endswith(f"not until reset           {ACTOR}")
    assert "Recent transitions recorded (newest first)" in output
    transitions = output[output.index("Recent transitions recorded (newest first)"):].splitlines()
    assert [line.split()[3:] for line in transitions if "UTC" in line] == [
        ["offline", "closed", "open", "forced", "open", "with", "manage.py", "pam_breaker", *ACTOR.split()]
    ]


@needs_redis
async def test_a_provider_forced_open_by_the_command_is_skipped_by_the_gateway(
    known: None, user: Any, fake_upstream: FakeUpstream
) -> None:
    await sync_to_async(run)("open", "openai")
    fake_upstream.enqueue(Scenario(provider="anthropic", text="answered by the other provider"))

    communicator = await connect(user)
    await communicator.send_json_to(message("hi", route="simple", client_msg_id=str(uuid.uuid4())))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()

    assert frames[-1]["metadata"]["provider"] == "anthropic"
    assert text_of(frames) == "answered by the other provider"
    assert [r.provider for r in fake_upstream.requests] == ["anthropic"]
