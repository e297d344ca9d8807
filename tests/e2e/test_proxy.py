"""deploy/nginx.conf in front of two daphne processes (run as deploy/pam-daphne@.service runs them) on PostgreSQL +
Redis: through a real nginx, the page, /healthz and the static files answer and a socket streams; a process SIGKILLed
mid-answer is left for the other, where the client resumes its answer; a process told to stop (SIGTERM) drains while
nginx sends new sockets to the other; the app sees each client's own address. Needs Redis and PostgreSQL (several
processes share state through them) and Debian's nginx."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Message
from pam_hybrid.runtime.shutdown import CLOSE_SERVICE_RESTART, CLOSE_SERVICE_RESTART_PRIVATE
from tests.e2e.test_chaos import daphne_pid
from tests.support.nginx import (
    NGINX,
    check_in_debian_layout,
    nginx_required,
    render_site,
    run_nginx,
    upstreams_of,
)
from tests.support.paths import ROOT
from tests.support.servers import run_daphne

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("REDIS_URL") or "postgresql" not in settings.DATABASES["default"]["ENGINE"],
                       reason="processes behind a proxy share state through Redis and PostgreSQL (REDIS_URL and a "
                              "postgres DATABASE_URL)"),
]

WORDS = "one two three four five six seven eight nine ten eleven twelve"
UNIT = ROOT / "deploy" / "pam-daphne@.service"
MARKER = "only-in-static-root.txt"
"""A file only the collectstatic output holds: the daphne processes cannot serve it, so nginx answered it."""


@dataclass
class Site:
    url: str
    backends: list[str]
    prefix: Path

    def socket(self, cookie: str) -> Any:
        return connect(self.url.replace("http://", "ws://") + "/ws/chat/", origin=Origin(self.url),
                       additional_headers={"Cookie": cookie}, open_timeout=10)


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`manage.py collectstatic` output, as a deployment makes it, plus the marker file."""
    root = tmp_path_factory.mktemp("staticfiles")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "DEBUG": "true", "STATIC_ROOT": str(root)}, timeout=120)
    (root / MARKER).write_text("served by nginx\n")
    return root


@pytest.fixture
def site(transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path, static_root: Path) -> Iterator[Site]:
    require_nginx()
    shared = {"PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:", "PAM_RETRIES": "0",
              "PAM_RESUME_GRACE_MS": "5000", "PAM_CHECKPOINT_INTERVAL_MS": "500", "PAM_SHUTDOWN_GRACE_MS": "5000"}
    options = unit_daphne_options()
    with (run_daphne(fake_upstream, tmp_path, None, daphne_args=options, **shared) as first,
          run_daphne(fake_upstream, tmp_path, None, daphne_args=options, **shared) as second,
          run_nginx(tmp_path / "nginx", upstream_ports=[port_of(first), port_of(second)],
                    static_root=static_root) as url):
        yield Site(url, [first, second], tmp_path / "nginx")


@pytest.fixture
def cookie(user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def require_nginx() -> None:
    """Skips the test without nginx, except under CI, where it fails."""
    if not NGINX.exists():
        message = f"{NGINX} is not installed (apt-get install nginx)"
        if nginx_required():
            pytest.fail(message)
        pytest.skip(message)


def unit_daphne_options() -> list[str]:
    """The options deploy/pam-daphne@.service gives daphne (its own, not the address and port the test chooses)."""
    exec_start = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    return [word for word in exec_start.split() if word.startswith("--")]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def get(url: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def health(url: str) -> dict[str, Any]:
    status, _, body = get(url + "/healthz")
    return {"http": status, **json.loads(body)}


async def ask(ws: ClientConnection, client_msg_id: str) -> None:
    await ws.send(json.dumps({"type": "message", "content": "hello", "conversation_id": None, "stream": True,
                              "route": "simple", "client_msg_id": client_msg_id}))


async def frames_until_done(ws: ClientConnection, wait_s: float = 10) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("chunk_type") not in ("end", "error"):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), wait_s)))
    return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f.get("chunk_type") == "token")


async def owner_of_answer(site: Site) -> str:
    """The process running the one answer in flight, from each process's own /healthz."""
    for _ in range(50):
        busy = [b for b in site.backends if (await asyncio.to_thread(health, b))["answers_in_flight"]]
        if len(busy) == 1:
            return busy[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no single process runs the answer")


async def ws_upstreams(site: Site, count: int) -> list[str]:
    """The upstreams nginx passed the first `count` sockets to (logged once each socket closed): for each, the last
    address it tried, the one that served it."""
    for _ in range(50):
        entries = upstreams_of(site.prefix, "/ws/")
        if len(entries) >= count:
            return [e.rsplit(" ", 1)[-1] for e in entries[:count]]
        await asyncio.sleep(0.1)
    raise AssertionError(f"nginx logged {upstreams_of(site.prefix, '/ws/')}, expected {count} sockets")


def refuses_connections(url: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=0.5):
            return False
    except OSError:
        return True


async def test_page_healthz_static_files_and_a_streamed_answer_through_nginx(
    site: Site, cookie: str, fake_upstream: FakeUpstream, static_root: Path
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=10))
    status, _, page = await asyncio.to_thread(get, site.url + "/", cookie)
    assert status == 200 and b"data-conversation-id" in page
    healthz = await asyncio.to_thread(health, site.url)
    assert (healthz["http"], healthz["status"], healthz["answers_in_flight"]) == (200, "ok", 0)
    status, headers, script = await asyncio.to_thread(get, site.url + "/static/pam_hybrid/chat.js")
    assert status == 200 and script == (ROOT / "static" / "pam_hybrid" / "chat.js").read_bytes()
    assert headers["Content-Type"] == "application/javascript" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "max-age=60"
    status, _, marker = await asyncio.to_thread(get, site.url + "/static/" + MARKER)
    assert (status, marker) == (200, b"served by nginx\n")
    assert (await asyncio.to_thread(get, site.backends[0] + "/static/" + MARKER))[0] == 404

    # The Origin check passes through the proxy: nginx forwards the Host the page was loaded from, port included.
    async with site.socket(cookie) as ws:
        await ask(ws, "proxy-1")
        frames = await frames_until_done(ws)
    assert text_of(frames) == WORDS and frames[-1]["metadata"]["status"] == "complete"
    assert (await ws_upstreams(site, 1))[0] in {b.removeprefix("http://") for b in site.backends}


@pytest.mark.timeout(150)
async def test_a_process_killed_mid_answer_is_left_for_the_other_where_the_client_resumes(
    site: Site, cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS * 20, token_delay_ms=100))
    seen: list[dict[str, Any]] = []
    async with site.socket(cookie) as ws:
        await ask(ws, "proxy-killed")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # past two checkpoints: the row holds some of the text
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        owner = await owner_of_answer(site)
        os.kill(daphne_pid(owner), signal.SIGKILL)
        with pytest.raises(ConnectionClosed):  # nginx ends the client's socket when its process's goes
            while True:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    survivor = next(b for b in site.backends if b != owner)
    message_id = seen[0]["metadata"]["message_id"]
    last_seq = seen[-1]["metadata"]["seq"]

    resumed_at = time.monotonic()
    async with site.socket(cookie) as ws:  # the page reconnects, to the same address: nginx picks the survivor
        await ws.send(json.dumps({"type": "resume", "message_id": message_id, "last_seq": last_seq}))
        rest = await frames_until_done(ws, wait_s=25)
    print(f"resumed through nginx on the other process in {time.monotonic() - resumed_at:.1f} s")
    answer = await sync_to_async(Message.objects.get)(id=message_id)

    assert [f["metadata"]["seq"] for f in seen] == list(range(len(seen)))
    assert all(f["metadata"]["seq"] > last_seq for f in rest if "seq" in f["metadata"]), rest
    assert rest[-1]["chunk_type"] == "error" and rest[-1]["metadata"]["code"] == "interrupted"
    assert rest[-1]["metadata"]["message_id"] == message_id and rest[-1]["metadata"]["status"] == "partial"
    # Saved as far as its last checkpoint, which the client had shown: nothing it showed contradicts the row.
    assert answer.status == "partial" and answer.finish_reason == "interrupted" and answer.content
    assert (text_of(seen) + text_of(rest)).startswith(answer.content) and (WORDS * 20).startswith(answer.content)
    assert len(fake_upstream.requests) == 1
    assert await sync_to_async(Message.objects.filter(role="user").count)() == 1
    assert await sync_to_async(Message.objects.filter(role="assistant").count)() == 1
    assert (await ws_upstreams(site, 2)) == [owner.removeprefix("http://"), survivor.removeprefix("http://")]


@pytest.mark.timeout(150)
async def test_a_process_told_to_stop_drains_while_nginx_sends_new_sockets_to_the_other(
    site: Site, cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(*[Scenario(text=WORDS, token_delay_ms=150) for _ in range(6)])
    async with site.socket(cookie) as ws, site.socket(cookie) as idle:
        # least_conn puts the second socket on the other process: each holds one, so they tie for what comes next.
        await ask(ws, "proxy-drained")
        first = [json.loads(await asyncio.wait_for(ws.recv(), 10))]
        owner = await owner_of_answer(site)
        survivor = next(b for b in site.backends if b != owner)
        os.kill(daphne_pid(owner), signal.SIGTERM)
        for _ in range(50):
            if (await asyncio.to_thread(health, owner))["status"] == "draining":
                break
            await asyncio.sleep(0.05)
        draining = await asyncio.to_thread(health, owner)
        # Through nginx the site stays healthy: the draining process's 503 is passed on to the other process, and
        # counts as a failure, so nginx sends the draining one nothing new for fail_timeout.
        through_proxy = [await asyncio.to_thread(health, site.url) for _ in range(3)]
        for n in range(2):
            async with site.socket(cookie) as other:
                await ask(other, f"proxy-during-drain-{n}")
                during = await frames_until_done(other)
            assert text_of(during) == WORDS and during[-1]["metadata"]["status"] == "complete"
        rest = await frames_until_done(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        await idle.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(idle.recv(), 10)) == {"type": "pong"}
    assert draining["http"] == 503 and draining["status"] == "draining"
    assert all(h["http"] == 200 and h["status"] == "ok" for h in through_proxy), through_proxy
    owner_addr, survivor_addr = owner.removeprefix("http://"), survivor.removeprefix("http://")
    assert f"{owner_addr}, {survivor_addr}" in upstreams_of(site.prefix, "/healthz"), upstreams_of(site.prefix, "/")
    # The answer in flight finished on the draining process, then its socket was closed as "restarting", the close
    # code passed through nginx to the client (the page reconnects on it).
    assert text_of(first + rest) == WORDS and rest[-1]["metadata"]["status"] == "complete"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code in (CLOSE_SERVICE_RESTART, CLOSE_SERVICE_RESTART_PRIVATE)

    deadline = time.monotonic() + 15
    while not refuses_connections(owner):
        assert time.monotonic() < deadline, "the drained process did not exit"
        await asyncio.sleep(0.1)
    # Once it is gone (and past fail_timeout), every new socket is still answered: a handshake nginx passes to the
    # closed port is passed on to the process left.
    await asyncio.sleep(5.5)
    for n in range(3):
        async with site.socket(cookie) as ws:
            await ask(ws, f"proxy-after-{n}")
            after = await frames_until_done(ws)
        assert text_of(after) == WORDS and after[-1]["metadata"]["status"] == "complete"
    served = await ws_upstreams(site, 7)  # in the order the sockets closed
    assert sorted(served) == sorted([owner_addr] + [survivor_addr] * 6), served
    # nginx tried the closed port again once fail_timeout was over, and passed that handshake on.
    assert f"{owner_addr}, {survivor_addr}" in upstreams_of(site.prefix, "/ws/")[-3:]


def test_the_app_sees_each_clients_own_address_and_a_client_cannot_choose_it(site: Site, user: Any) -> None:
    """Login throttling (django-axes) counts failures per client address: through nginx that is the client's own
    (from 127.0.0.2 here), not the proxy's, nor one the client wrote into X-Forwarded-For."""
    proxy = http.client.HTTPConnection("127.0.0.1", port_of(site.url), timeout=10, source_address=("127.0.0.2", 0))
    proxy.request("GET", "/accounts/login/")
    response = proxy.getresponse()
    page = response.read().decode()
    csrf_cookie = next(c.split(";")[0] for c in response.headers.get_all("Set-Cookie") or []
                       if c.startswith("csrftoken="))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "username": user.username,
                                   "password": "not-the-password"})
    proxy.request("POST", "/accounts/login/", body=form, headers={
        "Cookie": csrf_cookie, "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": "203.0.113.9",
    })
    failed = proxy.getresponse()
    failed.read()
    proxy.close()

    assert failed.status == 200  # the form again, with its error
    assert [a.ip_address for a in AccessAttempt.objects.filter(username=user.username)] == ["127.0.0.2"]


def test_the_config_as_shipped_passes_nginx_t_inside_debians_nginx_conf(tmp_path: Path) -> None:
    require_nginx()
    checked = check_in_debian_layout(tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_config_the_rendering_no_longer_fits_fails_loudly() -> None:
    with pytest.raises(ValueError):
        render_site("server { listen 8080; }", upstream_ports=[1], listen_port=2, static_root=Path("/x"))
