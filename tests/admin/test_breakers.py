"""The breaker status page: staff see every provider's breaker live (the very breaker the gateway uses) with the
recent transitions, and reset or force one open; the gateway then skips a forced-open provider until it is reset.
Driven through Django's async test client on the test's own event loop (where the chat consumer runs too), and
end to end through a real daphne server. Non-staff are refused; staff need the permissions to view breaker events
(the page) and to operate breakers (the actions), else 403 and nothing changes."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.test import AsyncClient, Client
from websockets.asyncio.client import connect as ws_connect

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.breakers import BreakerStatus
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.models import BreakerEvent, Message
from tests.support.answers import saved_answer
from tests.support.servers import run_daphne
from tests.support.sockets import connect, message, receive_until_done, text_of

PAGE = "/admin/pam/breakers/"
CHANGELIST = "/admin/pam_hybrid/breakerevent/"
PASSWORD = "correct-horse-battery-staple"
ANSWER = "a complete and healthy answer"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OPENAI_FORCED = "The openai breaker is forced open (it was closed): no calls to openai until it is reset."

db = pytest.mark.django_db
async_db = pytest.mark.django_db(transaction=True)


@dataclass
class BreakerPage:
    """What the page shows: a row of fields per provider, the transitions' cells, the messages, the CSRF token."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[list[str]] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    csrf_token: str = ""
    scope: str = ""


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = BreakerPage()
        self._provider: str | None = None
        self._event: list[str] | None = None
        self._into: tuple[str, ...] | None = None
        self._in_messages = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-provider"):
            self._provider = a["data-provider"]
            self.page.rows[self._provider or ""] = {}
        elif tag == "tr" and a.get("data-event"):
            self._event = []
            self.page.events.append(self._event)
        elif tag == "td" and self._provider and a.get("data-field"):
            self._into = ("row", a["data-field"] or "")
            self.page.rows[self._provider][self._into[1]] = ""
        elif tag == "td" and self._event is not None:
            self._event.append("")
            self._into = ("event",)
        elif tag == "ul" and "messagelist" in (a.get("class") or ""):
            self._in_messages = True
        elif tag == "li" and self._in_messages:
            self.page.messages.append((a.get("class") or "", ""))
            self._into = ("message",)
        elif tag == "input" and a.get("name") == "csrfmiddlewaretoken":
            self.page.csrf_token = a.get("value") or ""
        elif tag == "p" and a.get("data-testid") == "breaker-scope":
            self._into = ("scope",)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "li", "p"):
            self._into = None
        elif tag == "tr":
            self._provider, self._event = None, None
        elif tag == "ul":
            self._in_messages = False

    def handle_data(self, data: str) -> None:
        if self._into is None:
            return
        text = " ".join(data.split())
        page = self.page
        if self._into[0] == "row" and self._provider:
            page.rows[self._provider][self._into[1]] = (page.rows[self._provider][self._into[1]] + " " + text).strip()
        elif self._into[0] == "event" and self._event is not None:
            self._event[-1] = (self._event[-1] + " " + text).strip()
        elif self._into[0] == "message":
            level, before = page.messages[-1]
            page.messages[-1] = (level, (before + " " + text).strip())
        elif self._into[0] == "scope":
            page.scope = (page.scope + " " + text).strip()


def parse(html: str) -> BreakerPage:
    parser = _Parser()
    parser.feed(html)
    return parser.page


def shown(at: datetime | None) -> str:
    assert at is not None
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def operator_create(django_user_model: Any, username: str, *codenames: str) -> Any:
    """A staff member who is not a superuser, with these pam_hybrid permissions only."""
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pam_hybrid", codename__in=codenames))
    return user


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """A staff member who is not a superuser, allowed to see breakers and to act on them."""
    return operator_create(django_user_model, "boss", "view_breakerevent", "operate_breaker")


@pytest.fixture
async def staff_client(staff: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff)
    return client


async def page_of(client: AsyncClient) -> BreakerPage:
    response = await client.get(PAGE)
    assert response.status_code == 200
    return parse(response.content.decode())


async def act(client: AsyncClient, provider: str, action: str, note: str = "") -> BreakerPage:
    """Post an action from the page's form and follow the redirect back to the page."""
    response = await client.post(PAGE, {"provider": provider, "action": action, "note": note}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    return parse(response.content.decode())


async def ask(user: Any) -> tuple[list[dict[str, Any]], float]:
    """One message through the chat socket: its frames, and how long the answer took in seconds."""
    communicator = await connect(user)
    started = time.perf_counter()
    await communicator.send_json_to(message("hi", route="simple", client_msg_id=str(uuid.uuid4())))
    frames = await receive_until_done(communicator)
    elapsed_s = time.perf_counter() - started
    await communicator.disconnect()
    return frames, elapsed_s


async def status_of(provider: str) -> BreakerStatus:
    return await provider_breaker().status(provider)


@database_sync_to_async
def events_of(provider: str) -> list[tuple[str, str, str, str]]:
    return [(e.from_state, e.to_state, e.reason, e.actor)
            for e in BreakerEvent.objects.filter(provider=provider).order_by("at", "id")]


# --- who may see it ---------------------------------------------------------------------------------------------


@db
@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_the_page_and_its_actions_are_refused_to_non_staff(client: Client, user: Any, who: str) -> None:
    if who == "non-staff":
        client.force_login(user)
    page = client.get(PAGE)
    post = client.post(PAGE, {"provider": "openai", "action": "open"})
    for response in (page, post):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=/admin/pam/breakers/")
    assert not BreakerEvent.objects.exists()


@async_db
@pytest.mark.parametrize("action", ["open", "reset"])
async def test_staff_without_the_operate_permission_may_look_but_not_act(
    django_user_model: Any, fake_upstream: FakeUpstream, action: str
) -> None:
    breaker = provider_breaker()
    if action == "reset":
        await breaker.force_open("openai", actor="boss")
    before = await status_of("openai")
    client = AsyncClient()
    await client.aforce_login(await database_sync_to_async(operator_create)(
        django_user_model, "viewer", "view_breakerevent"
    ))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'data-testid="breaker-view-only"' in page.content.decode()
    assert 'data-action="open"' not in page.content.decode()

    response = await client.post(PAGE, {"provider": "openai", "action": action})

    assert response.status_code == 403
    after = await status_of("openai")
    assert (after.state, after.forced_by) == (before.state, before.forced_by)
    assert await database_sync_to_async(BreakerEvent.objects.filter(actor="viewer").count)() == 0


@db
def test_staff_without_any_breaker_permission_are_refused_the_page(client: Client, django_user_model: Any) -> None:
    client.force_login(operator_create(django_user_model, "clerk"))
    for response in (client.get(PAGE), client.post(PAGE, {"provider": "openai", "action": "open"})):
        assert response.status_code == 403
    assert not BreakerEvent.objects.exists()


@db
def test_an_action_without_the_csrf_token_is_refused(staff: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(PAGE, {"provider": "offline", "action": "open"})
    assert response.status_code == 403
    assert not BreakerEvent.objects.exists()


@db
def test_the_recorded_transitions_list_links_to_the_page_and_shows_who(django_user_model: Any, client: Client) -> None:
    client.force_login(django_user_model.objects.create_superuser(username="root", password=PASSWORD))
    BreakerEvent.objects.create(provider="openai", from_state="closed", to_state="open", reason="forced open: test",
                                actor="boss", at=AT)
    response = client.get(CHANGELIST)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="{PAGE}" data-testid="breaker-status-link"' in html
    assert "<td class=\"field-actor\">boss</td>" in html


# --- what staff see ---------------------------------------------------------------------------------------------


@async_db
async def test_the_page_shows_each_providers_breaker_with_its_figures(
    staff_client: AsyncClient, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 3
    settings.PAM_BREAKER_COOLDOWN_MS = 30_000
    await database_sync_to_async(BreakerEvent.objects.create)(
        provider="retired", from_state="open", to_state="closed", reason="probe succeeded", at=AT
    )
    breaker = provider_breaker()  # the test's loop is the one the page's view reaches, as a server's is
    for failed in (True, False, True, True):  # openai: 4 calls in the window, 3 failed, the last 2 in a row
        permit = await breaker.acquire("openai")
        assert permit is not None
        await (breaker.failure(permit, reason="HTTP 503") if failed else breaker.success(permit))
    for _ in range(3):  # anthropic: 3 in a row, so open
        permit = await breaker.acquire("anthropic")
        assert permit is not None
        await breaker.failure(permit, reason="HTTP 529")
    anthropic = await breaker.status("anthropic")

    page = await page_of(staff_client)

    assert sorted(page.rows) == ["anthropic", "offline", "openai", "retired"]
    assert page.rows["openai"] == {
        "state": "closed", "consecutive_failures": "2", "window_calls": "4", "window_failures": "3",
        "probes_in_flight": "0", "opened_at": "—", "retry_at": "—", "forced_by": "—",
    }
    assert page.rows["anthropic"] == {
        "state": "open", "consecutive_failures": "0", "window_calls": "0", "window_failures": "0",
        "probes_in_flight": "0", "opened_at": shown(anthropic.opened_at), "retry_at": shown(anthropic.retry_at),
        "forced_by": "—",
    }
    assert anthropic.retry_at is not None and anthropic.opened_at is not None
    assert anthropic.retry_at - anthropic.opened_at == timedelta(seconds=30)
    assert page.rows["offline"]["state"] == page.rows["retired"]["state"] == "closed"
    assert page.events[0][1:] == ["anthropic", "closed", "open", "3 consecutive failures (last: HTTP 529)",
                                  "automatic"]
    assert page.events[1] == [shown(AT), "retired", "open", "closed", "probe succeeded", "automatic"]
    shared = bool(os.environ.get("REDIS_URL"))
    assert page.scope.startswith("Breaker state is shared" if shared else "Breaker state lives inside each")


@async_db
async def test_the_page_lists_the_last_twenty_transitions_newest_first(
    staff_client: AsyncClient, fake_upstream: FakeUpstream
) -> None:
    for minute in range(25):
        await database_sync_to_async(BreakerEvent.objects.create)(
            provider="openai", from_state="closed", to_state="open", reason=f"event {minute}",
            at=AT + timedelta(minutes=minute),
        )
    page = await page_of(staff_client)
    assert [event[4] for event in page.events] == [f"event {minute}" for minute in range(24, 4, -1)]


# --- what staff do ----------------------------------------------------------------------------------------------


@async_db
async def test_force_open_from_the_page_stops_the_gateway_calling_the_provider_until_reset(
    staff_client: AsyncClient, user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_COOLDOWN_MS = 100

    page = await act(staff_client, "openai", "open", note="provider maintenance")

    assert page.messages == [("success", OPENAI_FORCED)]
    assert page.rows["openai"]["state"] == "open (forced)"
    assert (page.rows["openai"]["forced_by"], page.rows["openai"]["retry_at"]) == ("boss", "not until reset")
    assert await events_of("openai") == [
        ("closed", "open", "forced open from the admin page: provider maintenance", "boss")
    ]
    assert page.events[0][1:] == ["openai", "closed", "open", "forced open from the admin page: provider maintenance",
                                  "boss"]
    for _ in range(2):  # the second one well past the cool-down: a forced-open breaker never probes
        fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER))
        frames, _ = await ask(user)
        assert frames[-1]["metadata"]["provider"] == "anthropic" and text_of(frames) == ANSWER
        assert frames[-1]["metadata"]["fallback"]["from_provider"] == "openai"
        await asyncio.sleep(0.2)
    assert [r.provider for r in fake_upstream.requests] == ["anthropic", "anthropic"]

    page = await act(staff_client, "openai", "reset")

    assert page.messages == [("success", "The openai breaker is reset to closed (it was open).")]
    assert page.rows["openai"]["state"] == "closed" and page.rows["openai"]["forced_by"] == "—"
    assert (await events_of("openai"))[-1] == ("open", "closed", "reset from the admin page", "boss")
    fake_upstream.enqueue(Scenario(provider="openai", text=ANSWER))
    frames, _ = await ask(user)
    assert frames[-1]["metadata"]["provider"] == "openai" and "fallback" not in frames[-1]["metadata"]


@async_db
async def test_every_provider_forced_open_gives_the_user_the_error_at_once(
    staff_client: AsyncClient, user: Any, fake_upstream: FakeUpstream
) -> None:
    for provider in ("openai", "anthropic"):
        await act(staff_client, provider, "open")

    frames, elapsed_s = await ask(user)

    error = frames[-1]
    assert error["chunk_type"] == "error" and "taken out of service" in error["content"]
    assert elapsed_s < 1
    assert fake_upstream.requests == []
    answer, usage = await saved_answer(error["metadata"]["message_id"])
    assert answer.status == Message.Status.ERROR
    assert [a["error"] for a in usage.attempts] == ["CircuitOpen", "CircuitOpen"]


@async_db
async def test_repeating_an_action_changes_nothing_and_records_nothing(
    staff_client: AsyncClient, fake_upstream: FakeUpstream, django_user_model: Any
) -> None:
    page = await act(staff_client, "anthropic", "reset")
    assert page.messages == [("success", "The anthropic breaker was already closed: its failure counts were cleared.")]
    await act(staff_client, "anthropic", "open")
    other = AsyncClient()
    await other.aforce_login(await database_sync_to_async(operator_create)(
        django_user_model, "deputy", "view_breakerevent", "operate_breaker"
    ))

    page = await act(other, "anthropic", "open")

    assert page.messages == [("success", "The anthropic breaker was already forced open by boss: nothing changed.")]
    assert page.rows["anthropic"]["forced_by"] == "boss"
    assert await events_of("anthropic") == [("closed", "open", "forced open from the admin page", "boss")]


@async_db
@pytest.mark.parametrize(
    ("data", "problem"),
    [({"provider": "nonesuch", "action": "open"}, "provider: Select a valid choice."),
     ({"provider": "openai", "action": "explode"}, "action: Select a valid choice."),
     ({"action": "reset"}, "provider: This field is required.")],
    ids=["unknown-provider", "unknown-action", "no-provider"],
)
async def test_a_bad_action_changes_nothing_and_says_why(
    staff_client: AsyncClient, fake_upstream: FakeUpstream, data: dict[str, str], problem: str
) -> None:
    response = await staff_client.post(PAGE, data, follow=True)
    page = parse(response.content.decode())
    assert len(page.messages) == 1
    level, text = page.messages[0]
    assert level == "error" and text.startswith(f"Nothing changed ({problem}")
    assert page.rows["openai"]["state"] == "closed"
    assert await database_sync_to_async(BreakerEvent.objects.count)() == 0


@async_db
async def test_an_unreachable_redis_is_shown_and_refuses_actions(
    staff_client: AsyncClient, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    page = await page_of(staff_client)
    assert {row["state"] for row in page.rows.values()} == {
        "unknown: the shared breaker store (Redis) could not be reached"
    }
    page = await act(staff_client, "openai", "open")
    assert page.messages == [("error", "The shared breaker store (Redis) could not be reached: nothing changed.")]
    assert await database_sync_to_async(BreakerEvent.objects.count)() == 0


# --- end to end: a real server ----------------------------------------------------------------------------------


class Browser:
    """A cookie-keeping HTTP client for the real server (blocking: call it through asyncio.to_thread)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> tuple[str, str]:
        with self._opener.open(self.base + path, timeout=10) as response:
            return response.url, response.read().decode()

    def post(self, path: str, data: dict[str, str]) -> tuple[str, str]:
        body = urllib.parse.urlencode(data).encode()
        with self._opener.open(urllib.request.Request(self.base + path, data=body), timeout=10) as response:
            return response.url, response.read().decode()

    def cookie(self, name: str) -> str:
        return next(cookie.value or "" for cookie in self.cookies if cookie.name == name)

    def log_in(self, username: str) -> None:
        """Through the admin's own login form, as a person would."""
        _, html = self.get(f"/admin/login/?next={PAGE}")
        url, _ = self.post(f"/admin/login/?next={PAGE}", {
            "csrfmiddlewaretoken": parse(html).csrf_token, "username": username, "password": PASSWORD,
        })
        assert url == self.base + PAGE

    def act(self, provider: str, action: str) -> BreakerPage:
        _, html = self.get(PAGE)
        url, html = self.post(PAGE, {"csrfmiddlewaretoken": parse(html).csrf_token, "provider": provider,
                                     "action": action, "note": ""})
        assert url == self.base + PAGE
        return parse(html)


@pytest.fixture(params=["in-process", "redis"])
def server(request: pytest.FixtureRequest, transactional_db: Any, fake_upstream: FakeUpstream,
           tmp_path: Path) -> Iterator[str]:
    """A real daphne server with its breakers in process (no REDIS_URL) or in Redis (when the suite has one)."""
    if request.param == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    extra = {"REDIS_URL": ""} if request.param == "in-process" else {}
    with run_daphne(fake_upstream, tmp_path, PAM_BREAKER_COOLDOWN_MS="100", **extra) as url:
        yield url


async def ask_server(server: str, session: str) -> dict[str, Any]:
    """One message through the real server's socket: the answer's last frame."""
    async with ws_connect(server.replace("http://", "ws://") + "/ws/chat/", origin=server,  # type: ignore[arg-type]
                          additional_headers={"Cookie": f"sessionid={session}"}) as ws:
        await ws.send(json.dumps(message("hi", route="simple", client_msg_id=str(uuid.uuid4()))))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("chunk_type") in ("end", "error"):
                return dict(frame)


@pytest.mark.live
async def test_on_a_real_server_the_page_acts_on_the_breaker_its_answers_use(
    server: str, staff: Any, fake_upstream: FakeUpstream
) -> None:
    browser = Browser(server)
    await asyncio.to_thread(browser.log_in, "boss")
    session = browser.cookie("sessionid")

    page = await asyncio.to_thread(browser.act, "openai", "open")

    assert page.messages == [("success", OPENAI_FORCED)]
    assert page.rows["openai"]["state"] == "open (forced)" and page.rows["openai"]["forced_by"] == "boss"
    fake_upstream.enqueue(Scenario(provider="anthropic", text=ANSWER))
    await asyncio.sleep(0.2)  # past the server's cool-down: still no probe
    end = await ask_server(server, session)
    assert end["metadata"]["provider"] == "anthropic"
    assert end["metadata"]["fallback"]["from_provider"] == "openai"
    assert [r.provider for r in fake_upstream.requests] == ["anthropic"]

    page = await asyncio.to_thread(browser.act, "openai", "reset")

    assert page.rows["openai"]["state"] == "closed"
    fake_upstream.enqueue(Scenario(provider="openai", text=ANSWER))
    end = await ask_server(server, session)
    assert end["metadata"]["provider"] == "openai" and "fallback" not in end["metadata"]
    assert await events_of("openai") == [
        ("closed", "open", "forced open from the admin page", "boss"),
        ("open", "closed", "reset from the admin page", "boss"),
    ]


@async_db  # the breaker's record of the change is written through asgiref's threads: committed, not rolled back
def test_without_a_server_loop_the_page_still_reaches_this_processes_breaker(
    client: Client, staff: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    """Under the sync test client each request runs the breaker on an event loop of its own (there is no server
    loop to reach): the in-process state is still the process's one, whichever loop asks."""
    settings.REDIS_URL = ""
    client.force_login(staff)

    response = client.post(PAGE, {"provider": "openai", "action": "open"}, follow=True)

    assert parse(response.content.decode()).rows["openai"]["state"] == "open (forced)"
    assert asyncio.run(status_of("openai")).forced_by == "boss"
    assert parse(client.get(PAGE).content.decode()).rows["openai"]["forced_by"] == "boss"
