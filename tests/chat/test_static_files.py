"""Static files through WhiteNoise on a real daphne server, with DEBUG (straight from the source directories) and
without it (from STATIC_ROOT after collectstatic): the pages' scripts and styles are served with the security
headers, and a path reaching outside the static files is a plain 404 with no traceback in the server's log."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fake_upstream import FakeUpstream
from tests.support.paths import ROOT
from tests.support.servers import daphne_log, run_daphne

pytestmark = [pytest.mark.live]

TRAVERSALS = [
    "/static/../pam_project/settings.py",
    "/static/%2e%2e/pam_project/settings.py",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/pam_hybrid/../../../../etc/passwd",
    "/static/admin/%2e%2e/%2e%2e/%2e%2e/manage.py",
]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 60 + "static-files-test-secret-key",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
}


def fetch(base: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    """GET the path exactly as written (no client-side normalisation of `..`)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", raw_path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assets_of(page: str) -> list[str]:
    """The page's own scripts and stylesheets."""
    return re.findall(r'(?:src|href)="(/static/[^"]+\.(?:js|css))"', page)


@pytest.fixture(params=["debug", "production"])
def server(request: pytest.FixtureRequest, transactional_db: Any, fake_upstream: FakeUpstream,
           tmp_path: Path) -> Iterator[str]:
    """A real server with DEBUG on, or off with its static files collected into a STATIC_ROOT of its own."""
    extra: dict[str, str] = {}
    if request.param == "production":
        extra = {**PRODUCTION, "STATIC_ROOT": str(tmp_path / "static-root")}
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, check=True,
                       env={**os.environ, **extra}, capture_output=True, timeout=120)
    with run_daphne(fake_upstream, tmp_path, **extra) as url:
        yield url


def test_the_pages_scripts_and_styles_are_served_with_the_security_headers(server: str) -> None:
    status, _, body = fetch(server, "/accounts/login/")
    assert status == 200
    assets = assets_of(body.decode())
    assert any(path.endswith(".css") for path in assets)
    status, _, body = fetch(server, "/admin/login/")
    assert status == 200
    assets += assets_of(body.decode())
    for path in assets:
        status, headers, content = fetch(server, path)
        assert status == 200, path
        assert content
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["content-type"].startswith("text/javascript" if path.endswith(".js") else "text/css")


def test_a_path_outside_the_static_files_is_a_404_without_a_traceback(server: str, tmp_path: Path) -> None:
    for path in TRAVERSALS:
        status, headers, body = fetch(server, path)
        assert status == 404, path
        assert b"django_stubs_ext" not in body and b"root:x:" not in body  # no file outside came back
        assert headers["x-content-type-options"] == "nosniff"
    log = daphne_log(tmp_path, server).read_text(errors="replace")
    assert "Traceback" not in log
    assert "SuspiciousFileOperation" not in log
