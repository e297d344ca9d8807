"""Fixtures of the browser test modules (those marked `browser`): the ORM usable beside Playwright's sync API, one
Chromium per module, and a fresh page per test (a module needing other page options overrides `page`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browsing import launched_chromium, orm_beside_playwright
from tests.support.chat_page import page_in


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("browser") is None:
        yield
        return
    with orm_beside_playwright():
        yield


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    with page_in(chromium) as page:
        yield page
