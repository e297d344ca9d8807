"""Translation of SDK errors into the app's ProviderError tree, by cause rather than by exception class alone.

Both SDKs share a shape: status errors carry `status_code` (200 for an error that arrived in-band after the
stream started), connection and timeout errors have their own classes, and the base `APIError` covers an
in-band `error` payload with no status at all.
"""

from __future__ import annotations

from typing import Any

from pam_hybrid.exceptions import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimedOut,
    ProviderUnavailable,
)

_REJECTED_STATUSES = frozenset({400, 401, 403, 404, 413, 422})
_RATE_LIMIT_TYPES = frozenset({"rate_limit_error", "rate_limit_exceeded", "insufficient_quota"})


def _error_type(body: Any) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type") or inner.get("code") or "")
    return ""


def error_for_status(provider: str, status: int | None, body: Any) -> ProviderError:
    """The ProviderError for an HTTP status (None or 200 meaning an in-band stream error) and error body."""
    kind = _error_type(body)
    detail = f"{provider}: HTTP {status} {kind}".strip()
    if status == 429 or kind in _RATE_LIMIT_TYPES:
        return ProviderRateLimited(detail)
    if status in _REJECTED_STATUSES:
        return ProviderRejected(detail)
    return ProviderUnavailable(detail)


def translate(provider: str, exc: Exception, *, timeout_types: tuple[type[Exception], ...],
              connection_types: tuple[type[Exception], ...]) -> ProviderError:
    """Map one SDK exception to a ProviderError; the caller raises it `from exc`."""
    if isinstance(exc, timeout_types):
        return ProviderTimedOut(f"{provider}: request timed out")
    if isinstance(exc, connection_types):
        return ProviderUnavailable(f"{provider}: connection failed")
    status = getattr(exc, "status_code", None)
    return error_for_status(provider, status, getattr(exc, "body", None))
