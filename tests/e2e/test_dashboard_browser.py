"""The usage dashboard in headless Chromium against a real daphne server: a staff user signs in to the admin and
sees the charts drawn from known usage, styled by the dashboard's stylesheet in the light and dark themes, with
nothing blocked by the Content-Security-Policy. Leaves a full-page screenshot in /tmp/pam_dashboard.png."""

from __future__ import annotations

import shutil
import struct
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page

from tests.support.browsing import close_or_kill
from tests.support.factories import PASSWORD, usage_sample_create, user_create

pytestmark = [pytest.mark.browser, pytest.mark.live]

SCREENSHOT = "/tmp/pam_dashboard.png"
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""
SERIES_FILL = "(selector) => getComputedStyle(document.querySelector(selector)).fill"


def open_page(chromium: Browser, color_scheme: Any) -> Page:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def sign_in_to_admin(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/")
    assert page.url.startswith(f"{base_url}/admin/login/")
    page.fill('input[name="username"]', "staff")
    page.fill('input[name="password"]', PASSWORD)
    page.click('input[type="submit"]')
    page.wait_for_url(f"{base_url}/admin/")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_dashboard_draws_the_charts_with_data(chromium: Browser, live_server_url: str, tmp_path: Path) -> None:
    today = timezone.now().astimezone(UTC).date()
    usage_sample_create(today=today)
    user_create(username="staff", staff=True)
    page = open_page(chromium, "light")
    try:
        sign_in_to_admin(page, live_server_url)
        page.click('[data-testid="usage-dashboard-link"]')
        page.wait_for_url(f"{live_server_url}/admin/pam/usage/")

        bars = page.locator('[data-testid="cost-chart"] [data-testid="chart-bar"]')
        assert bars.count() == 4
        for index in range(4):
            box = bars.nth(index).bounding_box()
            assert bars.nth(index).is_visible() and box is not None and box["height"] > 0
        lines = page.locator('[data-testid="ttft-chart"] [data-testid="chart-line"]')
        assert lines.count() == 2 and all(lines.nth(i).is_visible() for i in range(2))
        assert page.locator('[data-testid="ttft-chart"] [data-testid="chart-dot"]').count() == 6
        # The tallest bar is today's anthropic $0.015 of an axis topped at $0.020.
        heights = sorted(bars.nth(i).bounding_box()["height"] for i in range(4))  # type: ignore[index]
        assert heights[-1] == pytest.approx(heights[0] * 30, rel=0.02)  # $0.015 against $0.0005
        assert page.evaluate(SERIES_FILL, ".pam-bar.pam-series-0") == "rgb(31, 111, 178)"
        assert page.locator('[data-testid="totals"] td[data-col="requests"]').text_content() == "6"
        assert page.evaluate("window.__cspViolations") == []

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        width, height = png_size(shot)
        assert width == 1280 and height > 900 and shot.stat().st_size > 30_000
        shutil.copyfile(shot, SCREENSHOT)
    finally:
        close_or_kill(page.context)


def test_dashboard_colours_follow_the_dark_theme(chromium: Browser, live_server_url: str) -> None:
    usage_sample_create(today=timezone.now().astimezone(UTC).date())
    user_create(username="staff", staff=True)
    page = open_page(chromium, "dark")
    try:
        sign_in_to_admin(page, live_server_url)
        page.goto(f"{live_server_url}/admin/pam/usage/?days=7")
        assert page.locator('[data-testid="chart-bar"]').count() == 4
        assert page.evaluate(SERIES_FILL, ".pam-bar.pam-series-0") == "rgb(90, 176, 240)"
        assert page.evaluate(SERIES_FILL, ".pam-bar.pam-series-1") == "rgb(240, 160, 64)"
        text_fill = page.evaluate("getComputedStyle(document.querySelector('.pam-chart .pam-tick')).fill")
        assert text_fill == "rgb(208, 208, 208)"  # the admin's --body-quiet-color in the dark theme
        assert page.evaluate("window.__cspViolations") == []
    finally:
        close_or_kill(page.context)
