"""Fixtures of the browser test modules (those marked `browser`): the ORM usable beside Playwright's sync API, one
Chromium per module, and a fresh page per test (a module needing other page options overrides `page`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browsing import Chromium, launched_chromium, orm_beside_playwright
from tests.support.chat_page import page_in


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("browser") is None:
        yield
        return
    with orm_beside_playwright():
        yield


@pytest.fixture(scope="module")
def chromium_launcher() -> Iterator[Chromium]:
    with launched_chromium() as launcher:
        yield launcher


@pytest.fixture
def chromium(chromium_launcher: Chromium) -> Browser:
    """The module's browser; a new one if the last test's had wedged and was killed."""
    return chromium_launcher.browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    with page_in(chromium) as page:
        yield page
