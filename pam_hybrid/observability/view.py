"""/metrics for Prometheus: for staff sessions, or a scraper sending `Authorization: Bearer <PAM_METRICS_TOKEN>`.

Anyone else gets a 401 (403 for a signed-in non-staff user) and no metrics, never a login redirect: a scraper
cannot follow one. Async, so it runs on the server's loop and reads that loop's breakers.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from pam_hybrid.conf import pam_settings
from pam_hybrid.observability.exposition import metrics_page


def _bearer_matches(authorization: str, token: str) -> bool:
    """Whether the Authorization header carries `token` (compared in constant time); never with no token set."""
    scheme, _, credentials = authorization.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


async def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None if the request may read the metrics, else the response that says why not."""
    token = pam_settings().metrics_token
    if _bearer_matches(request.headers.get("Authorization", ""), token):
        return None
    user = await request.auser()
    if user.is_active and getattr(user, "is_staff", False):
        return None
    if user.is_authenticated:
        return HttpResponse("Staff only.\n", status=403, content_type="text/plain; charset=utf-8")
    refused = HttpResponse("Authentication required.\n", status=401, content_type="text/plain; charset=utf-8")
    refused["WWW-Authenticate"] = 'Bearer realm="metrics"' if token else 'Session realm="metrics"'
    return refused


@require_GET
@never_cache
async def metrics(request: HttpRequest) -> HttpResponse:
    refusal = await _refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = await metrics_page(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
