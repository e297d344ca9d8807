"""Translation of SDK errors into the app's ProviderError tree, by cause rather than by exception class alone.

Both SDKs share a shape: status errors carry `status_code` (200 for an error that arrived in-band after the
stream started), connection and timeout errors have their own classes, and the base `APIError` covers an
in-band `error` payload with no status at all.
"""

from __future__ import annotations

import re
from typing import Any

from pam_hybrid.domain.exceptions import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimedOut,
    ProviderUnavailable,
)

_REJECTED_STATUSES = frozenset({400, 401, 403, 404, 413, 422})
_RATE_LIMIT_TYPES = frozenset({"rate_limit_error", "rate_limit_exceeded", "insufficient_quota"})


_ERROR_TYPE = re.compile(r"[a-z_]{1,40}")


def _error_type(body: Any) -> str:
    """The error body's type (e.g. "overloaded_error"), only if it looks like one: it goes into logs and records,
    and nothing else of an upstream body may."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            kind = str(inner.get("type") or inner.get("code") or "")
            return kind if _ERROR_TYPE.fullmatch(kind) else ("unrecognised" if kind else "")
    return ""


def retry_after_s(headers: Any) -> float | None:
    """Seconds from a Retry-After header (seconds form; an HTTP date is rare from these APIs and ignored)."""
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def error_for_status(provider: str, status: int | None, body: Any, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for an HTTP status (None or 200 meaning an in-band stream error) and error body."""
    kind = _error_type(body)
    detail = f"{provider}: HTTP {status} {kind}".strip()
    error: ProviderError
    if status == 429 or kind in _RATE_LIMIT_TYPES:
        error = ProviderRateLimited(detail)
    elif status in _REJECTED_STATUSES:
        error = ProviderRejected(detail)
    else:
        error = ProviderUnavailable(detail)
    error.retry_after_s = retry_after
    return error


def translate(provider: str, exc: Exception, *, timeout_types: tuple[type[Exception], ...],
              connection_types: tuple[type[Exception], ...]) -> ProviderError:
    """Map one SDK exception to a ProviderError; the caller raises it `from exc`."""
    if isinstance(exc, timeout_types):
        return ProviderTimedOut(f"{provider}: request timed out")
    if isinstance(exc, connection_types):
        return ProviderUnavailable(f"{provider}: connection failed")
    if isinstance(exc, ValueError):
        return ProviderUnavailable(f"{provider}: malformed stream ({type(exc).__name__})")
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    retry_after = retry_after_s(response.headers) if status and response is not None else None
    return error_for_status(provider, status, getattr(exc, "body", None), retry_after)
