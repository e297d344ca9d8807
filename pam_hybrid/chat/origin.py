"""The chat socket's Origin check, made as Django's CSRF check compares a form post's Origin: scheme, host and port
must be the request's own (its Host header, valid for ALLOWED_HOSTS, and its scheme, `https` behind a proxy that says
so in SECURE_PROXY_SSL_HEADER) or one of CSRF_TRUSTED_ORIGINS (where `https://*.example.com` takes subdomains).
Anything else, a missing Origin included, is refused at the handshake (HTTP 403)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

Scope = Mapping[str, Any]
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]
"""What Django allows with DEBUG and an empty ALLOWED_HOSTS."""


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}


def _request_host(headers: Mapping[str, str]) -> str | None:
    """The Host the request was made to, if ALLOWED_HOSTS allows it (as HttpRequest.get_host, without raising)."""
    host = headers.get("host", "")
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"].split(",")[-1].strip()
    allowed = settings.ALLOWED_HOSTS or (DEBUG_HOSTS if settings.DEBUG else [])
    domain, _ = split_domain_port(host)
    return host if domain and validate_host(domain, allowed) else None


def _request_scheme(scope: Scope, headers: Mapping[str, str]) -> str:
    """`https` or `http`, as HttpRequest.is_secure judges it (the proxy's header wins when it is configured)."""
    secure = scope.get("scheme") in ("wss", "https")
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = headers.get(meta_name.removeprefix("HTTP_").lower().replace("_", "-"))
        if forwarded is not None:
            secure = forwarded.split(",", 1)[0].strip() == secure_value
    return "https" if secure else "http"


def _trusted(origin: str) -> bool:
    trusted: list[str] = list(settings.CSRF_TRUSTED_ORIGINS)
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in map(urlsplit, (t for t in trusted if "*" in t))
        if pattern.scheme == parsed.scheme
    )


def origin_allowed(scope: Scope) -> bool:
    headers = _headers(scope)
    origin = headers.get("origin")
    if not origin:
        return False
    host = _request_host(headers)
    if host is not None and origin == f"{_request_scheme(scope, headers)}://{host}":
        return True
    return _trusted(origin)


class SameOriginValidator:
    """ASGI middleware for the socket: refuses a handshake whose Origin `origin_allowed` does not accept."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
