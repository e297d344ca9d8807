"""Shared fixtures: the fake upstream (both providers' wire protocols), users, and a real daphne server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from tests.factories import usage_sample_create
from tests.fake_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "sk-test-not-a-real-key"


@pytest.fixture(scope="session", autouse=True)
def _close_thread_connections(django_db_setup: Any) -> Iterator[None]:
    """Close the connections opened by `database_sync_to_async` in asgiref's worker thread before the test
    database is dropped; PostgreSQL refuses to drop a database that still has sessions."""
    yield
    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


@pytest.fixture(autouse=True)
def _own_redis_namespace(settings: Any) -> None:
    """Breaker state and message claims live in Redis when REDIS_URL is set: each test gets keys of its own."""
    settings.PAM_REDIS_PREFIX = f"pam-test:{uuid.uuid4().hex}:"


@pytest.fixture(scope="session")
def _upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_upstream(_upstream_server: FakeUpstream, settings: Any) -> Iterator[FakeUpstream]:
    """The fake upstream, with both providers pointed at it; knobs and scenarios reset after each test."""
    settings.OPENAI_API_KEY = TEST_API_KEY
    settings.OPENAI_BASE_URL = _upstream_server.openai_base_url
    settings.ANTHROPIC_API_KEY = TEST_API_KEY
    settings.ANTHROPIC_BASE_URL = _upstream_server.anthropic_base_url
    _upstream_server.reset()
    yield _upstream_server
    _upstream_server.reset()


@pytest.fixture
def today() -> date:
    """Today's UTC date, the day usage reports end on."""
    return timezone.now().astimezone(UTC).date()


@pytest.fixture
def usage_sample(today: date) -> dict[str, Any]:
    """Known usage records over the last days (see tests.factories.usage_sample_create)."""
    return usage_sample_create(today=today)


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="correct-horse-battery-staple")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="mallory", password="correct-horse-battery-staple")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    """The test database (already created by pytest-django) as a URL for another process."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("daphne did not start listening")


@contextlib.contextmanager
def run_daphne(upstream: FakeUpstream, log_dir: Path, **extra_env: str) -> Iterator[str]:
    """A real daphne process serving the project on the test database, its providers on the fake upstream;
    yields its base URL. `extra_env` overrides settings (e.g. PAM_RESUME_GRACE_MS)."""
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "true",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": _database_url(),
        "OPENAI_API_KEY": TEST_API_KEY,
        "OPENAI_BASE_URL": upstream.openai_base_url,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": upstream.anthropic_base_url,
        "PYTHONUNBUFFERED": "1",
        "PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:",
        "PAM_SHUTDOWN_GRACE_MS": "2000",
        **extra_env,
    }
    log_path = log_dir / f"daphne-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pam_project.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:] if process.returncode not in (0, -15) else "")


@pytest.fixture(scope="session")
def daphne_server(django_db_setup: Any, _upstream_server: FakeUpstream, tmp_path_factory: Any) -> Iterator[str]:
    """The session's real daphne server (see run_daphne)."""
    with run_daphne(_upstream_server, tmp_path_factory.mktemp("daphne")) as url:
        yield url


@pytest.fixture
def live_server_url(daphne_server: str, transactional_db: Any, fake_upstream: FakeUpstream) -> str:
    """The real server's base URL; data made in the test is committed, so the server sees it."""
    return daphne_server


CHROMIUM = Path("/usr/bin/chromium")


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    """Browser tests need Debian's chromium: skipped without it locally, but a failure under CI (.ci/run)."""
    if CHROMIUM.exists() or os.environ.get("PAM_REQUIRE_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
