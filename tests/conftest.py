"""Shared fixtures: the fake upstream (both providers' wire protocols), users, and a real daphne server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from fake_upstream import FakeUpstream
from tests.support.factories import usage_sample_create
from tests.support.servers import TEST_API_KEY, run_daphne


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
    """Known usage records over the last days (see tests.support.factories.usage_sample_create)."""
    return usage_sample_create(today=today)


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="correct-horse-battery-staple")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="mallory", password="correct-horse-battery-staple")


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
