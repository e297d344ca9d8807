"""The browser tests' own harness outlives a wedged Chromium: seen once in CI, a context close that Chromium never
answered held the run until pytest-timeout failed the test that had just passed."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.support.browsing import chromium_processes, close_or_kill, launched_chromium

pytestmark = [pytest.mark.browser]


def gone(process: psutil.Process, within_s: float = 5) -> bool:
    """Whether the process ended (a zombie counts: its parent may not have reaped it yet) within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_chromium_that_never_answers_a_close_is_killed_and_the_next_test_gets_a_new_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with launched_chromium() as launcher:
        wedged = launcher.browser
        context = wedged.new_context()
        context.new_page().set_content("<p>hello</p>")
        processes = chromium_processes()
        assert processes, "no Chromium process found under this test process"
        for process in processes:
            process.suspend()  # SIGSTOP: every close request now goes unanswered

        started = time.monotonic()
        close_or_kill(context, limit_s=2)
        assert 2 <= time.monotonic() - started < 15
        assert "did not close a BrowserContext within 2 s" in capsys.readouterr().err
        assert all(gone(p) for p in processes)

        fresh = launcher.browser
        assert fresh is not wedged
        page = fresh.new_page()
        page.set_content("<p>again</p>")
        assert page.text_content("p") == "again"
