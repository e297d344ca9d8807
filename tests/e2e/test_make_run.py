"""`make run` serves the project as production does: daphne, whose SIGTERM drains the answers in flight (see
tests/e2e/test_shutdown.py for the drain itself), with the page's static files through WhiteNoise."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from tests.e2e.test_shutdown import RESTART_CODES, Server, close_code, message, open_socket, receive, until_done
from tests.support.paths import ROOT
from tests.support.servers import TEST_API_KEY, database_url, free_port, wait_for_port

pytestmark = [pytest.mark.live]

WORDS = "one two three four five six seven eight nine ten"


@pytest.fixture
def make_run(transactional_db: Any, fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[Server]:
    """`make run` in a process group of its own, on the test database."""
    port = free_port()
    env = {
        **os.environ, "DEBUG": "true", "PORT": str(port), "DATABASE_URL": database_url(),
        "OPENAI_API_KEY": TEST_API_KEY, "OPENAI_BASE_URL": fake_upstream.openai_base_url,
        "ANTHROPIC_API_KEY": TEST_API_KEY, "ANTHROPIC_BASE_URL": fake_upstream.anthropic_base_url,
        "PYTHONUNBUFFERED": "1", "PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:", "PAM_SHUTDOWN_GRACE_MS": "8000",
    }
    log_path = tmp_path / f"make-run-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for_port(port, process, timeout_s=90)
        yield Server(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def cookie(transactional_db: Any, user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", "")


async def test_sigterm_to_make_run_lets_the_answer_finish_then_exits(
    make_run: Server, cookie: str, fake_upstream: FakeUpstream
) -> None:
    assert (await asyncio.to_thread(get, make_run.url + "/static/pam_hybrid/chat.js"))[1].startswith(
        "text/javascript")
    fake_upstream.enqueue(Scenario(provider="openai", text=WORDS, token_delay_ms=150))
    async with open_socket(make_run, cookie) as ws:
        await ws.send(message("hi", str(uuid.uuid4())))
        assert (await receive(ws))["chunk_type"] == "start"
        assert (await receive(ws))["chunk_type"] == "token"

        make_run.sigterm()  # to make, which passes it on to daphne (once: a second SIGTERM would hurry the drain)

        frames = await until_done(ws)
        end = frames[-1]
        assert end["chunk_type"] == "end" and end["metadata"]["status"] == "complete", (end, make_run.log_tail())
        assert await close_code(ws) in RESTART_CODES
    await make_run.exit_code(within_s=15)
    assert "shutting down: answers settled" in make_run.log_tail()
