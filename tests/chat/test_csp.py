"""The Content-Security-Policy header (django-csp): strict on every page, no inline script or style, no eval.

That the pages really work under it (and the admin too) is checked in a browser in tests/e2e/test_browser.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import Client

from pam_project.asgi import application

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
EXPECTED_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
UNSAFE_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "*")


def directives(header: str) -> dict[str, list[str]]:
    """A policy header as {directive: [sources]}; a directive named twice is a bug, so it fails here."""
    policy: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in policy, f"{name} appears twice"
        policy[name] = sources
    return policy


def assert_strict_policy(header: str | None) -> None:
    assert header, "no Content-Security-Policy header"
    policy = directives(header)
    assert policy == EXPECTED_POLICY
    for unsafe in UNSAFE_SOURCES:
        assert unsafe not in header.split()


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(username="root", password=PASSWORD)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_pages_before_sign_in_send_the_strict_policy(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    assert_strict_policy(response.headers.get("Content-Security-Policy"))
    assert "Content-Security-Policy-Report-Only" not in response.headers


def test_signup_page_sends_the_strict_policy(client: Client, settings: Any) -> None:
    settings.PAM_SIGNUP_ENABLED = True
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert_strict_policy(response.headers.get("Content-Security-Policy"))


def test_chat_page_sends_the_strict_policy(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b'<script type="module" src="/static/pam_hybrid/chat.js">' in response.content
    assert_strict_policy(response.headers.get("Content-Security-Policy"))


def test_json_api_sends_the_strict_policy(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/api/conversations/")
    assert response.status_code == 200
    assert_strict_policy(response.headers.get("Content-Security-Policy"))


@pytest.mark.parametrize("url", ["/admin/", "/admin/pam_hybrid/message/", "/admin/pam_hybrid/conversation/add/"])
def test_admin_pages_send_the_same_policy(client: Client, superuser: Any, url: str) -> None:
    """The admin is not exempted: Django 5.2's admin runs no inline script (see the browser test)."""
    client.force_login(superuser)
    response = client.get(url)
    assert response.status_code == 200
    assert_strict_policy(response.headers.get("Content-Security-Policy"))


async def test_static_script_is_served_with_the_strict_policy() -> None:
    """Through the real ASGI application: WhiteNoise answers inside the security and CSP middleware."""
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/static/pam_hybrid/chat.js",
             "raw_path": b"/static/pam_hybrid/chat.js", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000), "scheme": "http"}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=5)
    while (await communicator.receive_output(timeout=5)).get("more_body", False):
        pass
    await communicator.wait(timeout=5)
    assert start["status"] == 200
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    assert headers["content-type"].startswith("text/javascript")
    assert_strict_policy(headers.get("content-security-policy"))
    assert headers["x-content-type-options"] == "nosniff"
