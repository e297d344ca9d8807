"""The README's screenshots, taken from the real pages: the chat page with a markdown answer (light and dark) and the
usage dashboard. Written to docs/screenshots/ only when PAM_SCREENSHOTS=1, so a test run never changes the
repository: `PAM_SCREENSHOTS=1 .venv/bin/pytest tests/e2e/test_screenshots.py`."""

from __future__ import annotations

import os
import uuid
from datetime import UTC

import pytest
from django.utils import timezone
from playwright.sync_api import Browser

from tests.support.chat_page import end_metadata, page_in, scripted, send, wait_answer_done, wait_until
from tests.support.factories import PASSWORD, usage_sample_create, user_create
from tests.support.paths import ROOT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.skipif(os.environ.get("PAM_SCREENSHOTS") != "1", reason="set PAM_SCREENSHOTS=1 to write them"),
]

SHOTS = ROOT / "docs" / "screenshots"
QUESTION = "How do I time each step of a request in Python, and what should I expect?"
ANSWER = """## Timing each step

Wrap every step in a **context manager** that records how long it took:

```python
import time
from contextlib import contextmanager

@contextmanager
def timed(name: str, timings: dict[str, float]):
    start = time.perf_counter()
    yield
    timings[name] = (time.perf_counter() - start) * 1000
```

Typical numbers for a short answer:

| step | simple route | complex route |
|---|--:|--:|
| classify | 0.4 ms | 0.4 ms |
| first token | 180 ms | 420 ms |
| whole answer | 0.9 s | 2.6 s |

- Measure *time to first token* separately: it is what people feel.
- Keep the numbers in **milliseconds** with `_ms` in the name.
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chat_page_screenshot(chromium: Browser, live_server_url: str, scheme: str) -> None:
    user_create(username="alice")
    with page_in(chromium, viewport={"width": 1280, "height": 900}, color_scheme=scheme) as page:
        socket = scripted(page, live_server_url)
        page.select_option('[data-testid="route-select"]', "auto")
        send(page, QUESTION)
        wait_until(page, lambda: len(socket.messages()) == 1)
        conversation_id = str(uuid.uuid4())
        socket.start(conversation_id, route="complex", model="gpt-4o")
        for index in range(0, len(ANSWER), 12):
            socket.send("token", ANSWER[index:index + 12])
        socket.send("end", **end_metadata(conversation_id, route="complex", model="gpt-4o", input_tokens=412,
                                          output_tokens=236, cost_usd="0.00339000", ttft_ms=412.0))
        wait_answer_done(page)
        page.locator('[data-testid="composer-input"]').blur()
        page.evaluate("document.querySelector('[data-testid=\"conversation\"]').scrollTop = 0")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"chat-{scheme}.png"))


def test_dashboard_screenshot(chromium: Browser, live_server_url: str) -> None:
    usage_sample_create(today=timezone.now().astimezone(UTC).date())
    user_create(username="staff", staff=True)
    with page_in(chromium, viewport={"width": 1280, "height": 900}, color_scheme="light") as page:
        page.goto(f"{live_server_url}/admin/login/")
        page.fill('input[name="username"]', "staff")
        page.fill('input[name="password"]', PASSWORD)
        page.click('input[type="submit"]')
        page.wait_for_url(f"{live_server_url}/admin/")
        page.goto(f"{live_server_url}/admin/pam/usage/")
        page.locator('[data-testid="cost-chart"] [data-testid="chart-bar"]').first.wait_for()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
