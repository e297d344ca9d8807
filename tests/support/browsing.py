"""What every browser test module needs: Debian's chromium launched headless as this machine allows (and launched
again when a wedged one had to be killed), and the ORM usable beside Playwright's sync API."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

import psutil
import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Closing a context takes well under a second; seen once in CI: Chromium never answered it (pytest-timeout at 120 s).
CLOSE_LIMIT_S = 20.0


@contextlib.contextmanager
def orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop marked running in this thread, which makes Django refuse
    ORM calls (the test's own, and the database flush after each test). They are plain sync calls here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


class Chromium:
    """One Playwright driver for a test module, and its browser: launched on first use and again after a wedged
    one was killed."""

    def __init__(self, playwright: Playwright) -> None:
        self._playwright = playwright
        self._browser: Browser | None = None

    @property
    def browser(self) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                             args=CHROMIUM_ARGS)
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            close_or_kill(self._browser)


@contextlib.contextmanager
def launched_chromium() -> Iterator[Chromium]:
    playwright = sync_playwright().start()
    chromium = Chromium(playwright)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


def close_or_kill(closable: BrowserContext | Browser, limit_s: float = CLOSE_LIMIT_S) -> None:
    """Close a context or a browser; when Chromium has not answered within `limit_s`, kill its processes (the
    driver then ends the close) so that the next test gets a new browser instead of the run hanging."""
    killed: list[int] = []
    watchdog = threading.Timer(limit_s, lambda: killed.extend(kill_chromium()))
    watchdog.start()
    try:
        closable.close()
    except Error:
        if not killed:
            raise
    finally:
        watchdog.cancel()
    if killed:
        print(f"chromium did not close a {type(closable).__name__} within {limit_s:g} s: killed its processes "
              f"{killed}; the next test launches a new one", file=sys.stderr)


def kill_chromium() -> list[int]:
    """SIGKILL every Chromium process this test process started (through Playwright's driver); their pids."""
    ours = chromium_processes()
    for process in ours:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return [p.pid for p in ours]


def chromium_processes() -> list[psutil.Process]:
    """The Chromium processes under this test process (browser, zygotes, renderers)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chromium" in process.name():
                found.append(process)
    return found
