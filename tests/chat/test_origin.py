"""The socket's Origin check compares scheme, host and port with the request's own (behind the configured proxy) and
CSRF_TRUSTED_ORIGINS, as Django's CSRF check does: through the project's ASGI application in process, and through a
real daphne server."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pam_project.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]

HOST = "127.0.0.1:8000"


async def handshake(origin: str | None, host: str = HOST, scheme: str = "ws",
                    extra: list[tuple[bytes, bytes]] | None = None) -> bool:
    """Whether the handshake is accepted (a socket without a session is then closed with 4401, not refused)."""
    headers = [(b"host", host.encode()), *(extra or [])]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return bool(connected)


@pytest.mark.parametrize(("origin", "accepted"), [
    (f"http://{HOST}", True),
    (f"https://{HOST}", False),  # another scheme
    ("http://127.0.0.1:9000", False),  # another port
    ("http://127.0.0.1", False),
    ("http://localhost:8000", False),  # an allowed host, but not the one asked
    ("null", False),
    (None, False),
])
async def test_only_the_requests_own_origin_is_accepted(origin: str | None, accepted: bool) -> None:
    assert await handshake(origin) is accepted


async def test_a_host_outside_allowed_hosts_is_refused_even_with_its_own_origin() -> None:
    assert await handshake("http://evil.example", host="evil.example") is False


async def test_over_tls_the_origin_is_https() -> None:
    assert await handshake(f"https://{HOST}", scheme="wss") is True
    assert await handshake(f"http://{HOST}", scheme="wss") is False


async def test_behind_the_configured_proxy_its_scheme_counts(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = [(b"x-forwarded-proto", b"https")]
    assert await handshake(f"https://{HOST}", extra=forwarded) is True
    assert await handshake(f"http://{HOST}", extra=forwarded) is False
    assert await handshake(f"http://{HOST}", extra=[(b"x-forwarded-proto", b"http")]) is True


async def test_csrf_trusted_origins_are_accepted_with_their_scheme(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    assert await handshake("https://chat.example.com") is True
    assert await handshake("http://chat.example.com") is False
    assert await handshake("https://a.example.org") is True
    assert await handshake("http://a.example.org") is False
    assert await handshake("https://example.net") is False


async def real_handshake(server: str, origin: str) -> bool:
    try:
        async with connect(server.replace("http://", "ws://") + "/ws/chat/", origin=origin):  # type: ignore[arg-type]
            return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False


@pytest.mark.live
async def test_a_real_server_refuses_another_scheme_or_port(live_server_url: str) -> None:
    port = int(live_server_url.rsplit(":", 1)[1])
    assert await real_handshake(live_server_url, live_server_url) is True
    assert await real_handshake(live_server_url, live_server_url.replace("http://", "https://")) is False
    assert await real_handshake(live_server_url, f"http://127.0.0.1:{port + 1}") is False
